//! Streaming JSONL line splitting with bounded memory.
//!
//! Batch input files can be hundreds of megabytes and arrive as a
//! [`ByteStream`] of arbitrarily cut chunks, so [`LineReader`] never buffers
//! the whole file: it holds the current chunk plus at most one pending line
//! (capped at `max_line_bytes`), and hands out lines with the 1-based number
//! and byte offset that error reports need.

use batchgate_core::ByteStream;
use bytes::{Bytes, BytesMut};
use futures::StreamExt;

/// The UTF-8 byte-order mark some editors (Windows Notepad, Excel exports)
/// put at the start of a file; it is not part of the first JSON line.
const BOM: &[u8] = b"\xEF\xBB\xBF";

/// Bytes buffered beyond `max_line_bytes` before a line is given up on: room
/// for a trailing `\r` and, on line 1, a BOM, so the exact limit is decided
/// on the line's real content.
const SLACK: usize = 1 + BOM.len();

/// One line of a JSONL file, as an editor would show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawLine {
    /// 1-based line number, so error reports match what the user sees.
    pub number: u64,
    /// The line's content without its `\n` / `\r\n` terminator (and without
    /// the BOM on line 1). Empty when [`RawLine::too_long`] is set.
    pub bytes: Bytes,
    /// Byte offset in the file where [`RawLine::bytes`] starts, so that
    /// `file[offset..offset + bytes.len()] == bytes` for every line that is
    /// not too long (line 1 of a file with a BOM starts at 3).
    pub offset: u64,
    /// The line's content exceeded `max_line_bytes`; its bytes were dropped
    /// rather than buffered without bound, and reading went on after it.
    pub too_long: bool,
}

/// Splits a [`ByteStream`] into [`RawLine`]s.
///
/// Handles `\n` and `\r\n` endings (even when a chunk boundary falls between
/// the `\r` and the `\n`), a last line without a newline, a trailing newline
/// (no phantom empty last line) and a leading UTF-8 BOM. Blank lines are
/// returned as empty lines: deciding what they mean is the validator's job.
pub struct LineReader {
    stream: ByteStream,
    max_line_bytes: usize,
    /// Unconsumed rest of the current chunk.
    chunk: Bytes,
    /// Start of a line whose end has not arrived yet (copied out of earlier
    /// chunks); never longer than `max_line_bytes + SLACK`.
    pending: BytesMut,
    /// Bytes of the current line seen so far, terminator excluded.
    line_len: u64,
    /// The current line grew past the buffer cap: its bytes are discarded
    /// until its newline.
    overflow: bool,
    /// File offset of the current line's first byte.
    line_start: u64,
    /// File offset of `chunk[0]`, i.e. bytes consumed so far.
    pos: u64,
    /// Number the next returned line gets.
    next_number: u64,
    eof: bool,
}

impl std::fmt::Debug for LineReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LineReader")
            .field("max_line_bytes", &self.max_line_bytes)
            .field("pos", &self.pos)
            .field("next_number", &self.next_number)
            .field("eof", &self.eof)
            .finish_non_exhaustive()
    }
}

impl LineReader {
    /// Reads lines from `stream`; a line whose content (terminator and BOM
    /// excluded) is longer than `max_line_bytes` comes back flagged
    /// [`RawLine::too_long`] with empty bytes.
    pub fn new(stream: ByteStream, max_line_bytes: usize) -> Self {
        LineReader {
            stream,
            max_line_bytes,
            chunk: Bytes::new(),
            pending: BytesMut::new(),
            line_len: 0,
            overflow: false,
            line_start: 0,
            pos: 0,
            next_number: 1,
            eof: false,
        }
    }

    /// Reads lines from `stream`, which starts at byte `offset` of a file
    /// where line `number` begins there (a chunk of a batch's input).
    pub fn starting_at(
        stream: ByteStream,
        max_line_bytes: usize,
        number: u64,
        offset: u64,
    ) -> Self {
        let mut reader = LineReader::new(stream, max_line_bytes);
        reader.next_number = number.max(1);
        reader.pos = offset;
        reader.line_start = offset;
        reader
    }

    /// Bytes of the stream consumed so far; once [`LineReader::next_line`]
    /// has returned `None`, the size of the whole file.
    pub fn bytes_read(&self) -> u64 {
        self.pos
    }

    /// The next line, or `None` at the end of the input. An I/O error of the
    /// underlying stream is passed through; the reader should not be used
    /// after it.
    pub async fn next_line(&mut self) -> Result<Option<RawLine>, std::io::Error> {
        loop {
            if !self.chunk.is_empty() {
                if let Some(i) = memchr::memchr(b'\n', &self.chunk) {
                    let head = self.chunk.split_to(i + 1);
                    self.pos += (i + 1) as u64;
                    return Ok(Some(self.complete(head.slice(..i))));
                }
                let rest = std::mem::take(&mut self.chunk);
                self.pos += rest.len() as u64;
                self.absorb(&rest);
            }
            if self.eof {
                if self.line_len == 0 {
                    return Ok(None);
                }
                return Ok(Some(self.complete(Bytes::new())));
            }
            match self.stream.next().await {
                Some(Ok(chunk)) => self.chunk = chunk,
                Some(Err(e)) => return Err(e),
                None => self.eof = true,
            }
        }
    }

    /// Keeps `part` (a piece of the current line with no newline in it) as
    /// long as the line fits the buffer cap, and drops it after that.
    fn absorb(&mut self, part: &[u8]) {
        self.line_len += part.len() as u64;
        if self.overflow {
            return;
        }
        let cap = self.max_line_bytes.saturating_add(SLACK);
        if self.pending.len() + part.len() > cap {
            self.overflow = true;
            self.pending = BytesMut::new();
        } else {
            self.pending.extend_from_slice(part);
        }
    }

    /// Ends the current line with `tail` (its last piece, newline excluded)
    /// and resets the state for the next line.
    fn complete(&mut self, tail: Bytes) -> RawLine {
        let number = self.next_number;
        let mut offset = self.line_start;
        let mut too_long = self.overflow;
        let mut bytes = if too_long {
            Bytes::new()
        } else if self.pending.is_empty() {
            // Fast path: the whole line sits in one chunk, no copy.
            tail
        } else {
            self.absorb(&tail);
            too_long = self.overflow;
            if too_long {
                Bytes::new()
            } else {
                // Copy out so `pending` keeps its capacity for the next line.
                Bytes::copy_from_slice(&self.pending)
            }
        };
        if bytes.last() == Some(&b'\r') {
            bytes.truncate(bytes.len() - 1);
        }
        if number == 1 && bytes.starts_with(BOM) {
            bytes = bytes.slice(BOM.len()..);
            offset += BOM.len() as u64;
        }
        if bytes.len() > self.max_line_bytes {
            too_long = true;
            bytes = Bytes::new();
        }
        self.next_number += 1;
        self.pending.clear();
        self.line_len = 0;
        self.overflow = false;
        self.line_start = self.pos;
        RawLine {
            number,
            bytes,
            offset,
            too_long,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn stream(chunks: &[&[u8]]) -> ByteStream {
        let owned: Vec<Result<Bytes, std::io::Error>> = chunks
            .iter()
            .map(|c| Ok(Bytes::copy_from_slice(c)))
            .collect();
        futures::stream::iter(owned).boxed()
    }

    async fn all(chunks: &[&[u8]], max: usize) -> Vec<RawLine> {
        let mut reader = LineReader::new(stream(chunks), max);
        let mut out = Vec::new();
        while let Some(line) = reader.next_line().await.unwrap() {
            out.push(line);
        }
        let total: usize = chunks.iter().map(|c| c.len()).sum();
        assert_eq!(reader.bytes_read(), total as u64);
        out
    }

    fn texts(lines: &[RawLine]) -> Vec<&[u8]> {
        lines.iter().map(|l| &l.bytes[..]).collect()
    }

    /// Every way of cutting `input` into two or three chunks gives the same
    /// lines as reading it whole.
    async fn same_for_every_split(input: &[u8], max: usize) -> Vec<RawLine> {
        let whole = all(&[input], max).await;
        for i in 0..=input.len() {
            assert_eq!(
                all(&[&input[..i], &input[i..]], max).await,
                whole,
                "split {i}"
            );
            for j in i..=input.len() {
                let parts = [&input[..i], &input[i..j], &input[j..]];
                assert_eq!(all(&parts, max).await, whole, "split {i},{j}");
            }
        }
        whole
    }

    #[tokio::test]
    async fn empty_input_has_no_lines() {
        assert!(all(&[], 10).await.is_empty());
        assert!(all(&[b"", b""], 10).await.is_empty());
    }

    #[tokio::test]
    async fn lf_crlf_and_offsets() {
        let input = b"ab\r\ncd\n\nef";
        let lines = same_for_every_split(input, 10).await;
        assert_eq!(texts(&lines), vec![&b"ab"[..], b"cd", b"", b"ef"]);
        let numbers: Vec<u64> = lines.iter().map(|l| l.number).collect();
        assert_eq!(numbers, vec![1, 2, 3, 4]);
        let offsets: Vec<u64> = lines.iter().map(|l| l.offset).collect();
        assert_eq!(offsets, vec![0, 4, 7, 8]);
        assert!(lines.iter().all(|l| !l.too_long));
    }

    #[tokio::test]
    async fn trailing_newline_gives_no_phantom_line() {
        let lines = same_for_every_split(b"a\nb\r\n", 10).await;
        assert_eq!(texts(&lines), vec![&b"a"[..], b"b"]);
        let lines = all(&[b"\n"], 10).await;
        assert_eq!(texts(&lines), vec![&b""[..]]);
    }

    #[tokio::test]
    async fn lone_carriage_return_at_end_is_an_empty_line() {
        let lines = all(&[b"a\n\r"], 10).await;
        assert_eq!(texts(&lines), vec![&b"a"[..], b""]);
    }

    #[tokio::test]
    async fn bom_is_stripped_from_line_one_only() {
        let lines = same_for_every_split(b"\xEF\xBB\xBFab\n\xEF\xBB\xBFc", 10).await;
        assert_eq!(texts(&lines), vec![&b"ab"[..], b"\xEF\xBB\xBFc"]);
        assert_eq!(lines[0].offset, 3);
        assert_eq!(lines[1].offset, 6);
    }

    #[tokio::test]
    async fn limit_counts_content_not_terminator_or_bom() {
        let lines = same_for_every_split(b"\xEF\xBB\xBFabcd\r\nefgh\r\nijklm\nno", 4).await;
        assert_eq!(texts(&lines), vec![&b"abcd"[..], b"efgh", b"", b"no"]);
        let flags: Vec<bool> = lines.iter().map(|l| l.too_long).collect();
        assert_eq!(flags, vec![false, false, true, false]);
        assert_eq!(lines[3].offset, 21);
        assert_eq!(lines[3].number, 4);
    }

    #[tokio::test]
    async fn huge_line_is_not_buffered() {
        let big = vec![b'x'; 10_000];
        let chunks: Vec<&[u8]> = big.chunks(7).chain([&b"\nok"[..]]).collect();
        let mut reader = LineReader::new(stream(&chunks), 16);
        let first = reader.next_line().await.unwrap().unwrap();
        assert!(first.too_long);
        assert!(first.bytes.is_empty());
        assert!(reader.pending.capacity() <= 64);
        let second = reader.next_line().await.unwrap().unwrap();
        assert_eq!(
            (&second.bytes[..], second.offset, second.number),
            (&b"ok"[..], 10_001, 2)
        );
        assert!(reader.next_line().await.unwrap().is_none());
    }

    #[tokio::test]
    async fn too_long_last_line_without_newline() {
        let lines = all(&[b"a\n", b"0123456789"], 4).await;
        assert_eq!(lines.len(), 2);
        assert!(lines[1].too_long);
    }

    #[tokio::test]
    async fn io_error_is_passed_through() {
        let items: Vec<Result<Bytes, std::io::Error>> = vec![
            Ok(Bytes::from_static(b"a\nb")),
            Err(std::io::Error::other("boom")),
        ];
        let mut reader = LineReader::new(futures::stream::iter(items).boxed(), 10);
        assert_eq!(&reader.next_line().await.unwrap().unwrap().bytes[..], b"a");
        assert!(reader.next_line().await.is_err());
    }
}
