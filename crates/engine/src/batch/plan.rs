//! Splitting a batch's input into chunks: runs of `chunk_lines`
//! consecutive lines, each with the byte offset of its first line, found
//! on a pass the gateway makes anyway (validation).

use batchgate_core::ApiError;
use batchgate_store::Chunk;

use super::shared::{Shared, MAX_LINE_BYTES};
use batchgate_store::BatchRecord;

use crate::{LineReader, RawLine};

/// Collects chunk boundaries from the lines of a file read in order.
#[derive(Debug)]
pub struct Planner {
    lines_per_chunk: u64,
    chunks: Vec<Chunk>,
    last_line: u64,
}

impl Planner {
    pub fn new(lines_per_chunk: u64) -> Planner {
        Planner {
            lines_per_chunk: lines_per_chunk.max(1),
            chunks: Vec::new(),
            last_line: 0,
        }
    }

    /// Takes the next line of the file.
    pub fn see(&mut self, line: &RawLine) {
        self.last_line = line.number;
        if (line.number - 1) % self.lines_per_chunk != 0 {
            return;
        }
        if let Some(prev) = self.chunks.last_mut() {
            prev.end_line = line.number;
        }
        self.chunks.push(Chunk {
            number: self.chunks.len() as u64,
            first_line: line.number,
            end_line: line.number,
            // Line 1 starts at 0 even when its content starts after a BOM:
            // its reader must see (and drop) the BOM itself.
            offset: if line.number == 1 { 0 } else { line.offset },
        });
    }

    /// The chunks, the last one ending after the last line seen.
    pub fn finish(mut self) -> Vec<Chunk> {
        if let Some(last) = self.chunks.last_mut() {
            last.end_line = self.last_line + 1;
        }
        self.chunks
    }
}

/// Plans the chunks of a batch that is running without any (it started
/// before chunks existed) by reading its input once more.
pub async fn plan_by_reading(shared: &Shared, rec: &BatchRecord) -> Result<Vec<Chunk>, ApiError> {
    let Some(stream) = shared.input_stream(rec).await? else {
        return Err(ApiError::internal(
            "the input file of a running batch is gone",
        ));
    };
    let mut reader = LineReader::new(stream, MAX_LINE_BYTES);
    let mut planner = Planner::new(shared.gw.batch.chunk_lines);
    loop {
        match reader.next_line().await {
            Ok(Some(line)) => planner.see(&line),
            Ok(None) => return Ok(planner.finish()),
            Err(e) => {
                tracing::error!(batch = %rec.batch.id, error = %e, "cannot read the input file");
                return Err(ApiError::internal("could not read the input file"));
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use futures::StreamExt;

    async fn plan(input: &[u8], per: u64) -> Vec<Chunk> {
        let stream = futures::stream::iter(vec![Ok(Bytes::copy_from_slice(input))]).boxed();
        let mut reader = LineReader::new(stream, 1024);
        let mut planner = Planner::new(per);
        while let Some(line) = reader.next_line().await.unwrap() {
            planner.see(&line);
        }
        planner.finish()
    }

    /// Every chunk, read from its offset, yields exactly its own lines
    /// with their numbers in the whole file.
    #[tokio::test]
    async fn chunks_cover_every_line_once_from_their_offsets() {
        let input = b"\xEF\xBB\xBFa\r\nbb\n\nccc\ndddd\r\ne";
        let chunks = plan(input, 2).await;
        let bounds: Vec<_> = chunks.iter().map(|c| (c.first_line, c.end_line)).collect();
        assert_eq!(bounds, [(1, 3), (3, 5), (5, 7)]);
        let mut seen = Vec::new();
        for c in &chunks {
            let rest = Bytes::copy_from_slice(&input[c.offset as usize..]);
            let stream = futures::stream::iter(vec![Ok(rest)]).boxed();
            let mut reader = LineReader::starting_at(stream, 1024, c.first_line, c.offset);
            while let Some(line) = reader.next_line().await.unwrap() {
                if line.number >= c.end_line {
                    break;
                }
                seen.push((line.number, line.bytes.to_vec(), line.offset));
            }
        }
        let mut whole = Vec::new();
        let stream = futures::stream::iter(vec![Ok(Bytes::copy_from_slice(input))]).boxed();
        let mut reader = LineReader::new(stream, 1024);
        while let Some(line) = reader.next_line().await.unwrap() {
            whole.push((line.number, line.bytes.to_vec(), line.offset));
        }
        assert_eq!(seen, whole);
    }

    #[tokio::test]
    async fn an_exact_multiple_leaves_no_empty_chunk() {
        let chunks = plan(b"a\nb\nc\nd\n", 2).await;
        assert_eq!(chunks.len(), 2);
        assert_eq!(chunks[1].end_line, 5);
        assert!(plan(b"", 2).await.is_empty());
    }
}
