//! One file, one meaning in both modes: a batch input forwarded to an
//! upstream's own batch API gets the same model rewriting the engine does
//! per line — `body.model` from the public name to the served name — while
//! it streams, so the upstream does not answer 404 for every line.

use batchgate_core::ByteStream;
use bytes::{Bytes, BytesMut};
use futures::{StreamExt, TryStreamExt};
use serde_json::{Map, Value};

/// Longest line rewritten; the engine refuses longer lines too.
const MAX_LINE_BYTES: usize = 32 * 1024 * 1024;

/// `input` with every line whose `body.model` is `public` rewritten to
/// `served`. Every other line passes byte for byte; line endings are kept.
pub fn served_model_names(input: ByteStream, public: String, served: String) -> ByteStream {
    struct State {
        input: ByteStream,
        pending: BytesMut,
        done: bool,
    }
    let state = State {
        input,
        pending: BytesMut::new(),
        done: false,
    };
    futures::stream::try_unfold(state, move |mut st| {
        let (public, served) = (public.clone(), served.clone());
        async move {
            loop {
                // Whole lines buffered so far go out, rewritten.
                if let Some(end) = st.pending.iter().rposition(|b| *b == b'\n') {
                    let lines = st.pending.split_to(end + 1);
                    return Ok(Some((rewrite_lines(&lines, &public, &served), st)));
                }
                if st.done {
                    if st.pending.is_empty() {
                        return Ok(None);
                    }
                    let last = st.pending.split();
                    return Ok(Some((rewrite_lines(&last, &public, &served), st)));
                }
                if st.pending.len() > MAX_LINE_BYTES {
                    return Err(std::io::Error::other(format!(
                        "a line of the input is longer than {MAX_LINE_BYTES} bytes"
                    )));
                }
                match st.input.try_next().await? {
                    Some(chunk) => st.pending.extend_from_slice(&chunk),
                    None => st.done = true,
                }
            }
        }
    })
    .boxed()
}

/// Rewrites each line of `text` (whole lines, the last perhaps without its
/// newline).
fn rewrite_lines(text: &[u8], public: &str, served: &str) -> Bytes {
    let mut out = Vec::with_capacity(text.len());
    for piece in text.split_inclusive(|b| *b == b'\n') {
        let (line, end) = match piece.strip_suffix(b"\n") {
            Some(line) => (line, &b"\n"[..]),
            None => (piece, &b""[..]),
        };
        let (line, cr) = match line.strip_suffix(b"\r") {
            Some(line) => (line, &b"\r"[..]),
            None => (line, &b""[..]),
        };
        match rewrite_line(line, public, served) {
            Some(new) => out.extend_from_slice(&new),
            None => out.extend_from_slice(line),
        }
        out.extend_from_slice(cr);
        out.extend_from_slice(end);
    }
    Bytes::from(out)
}

/// The line with `body.model` set to `served`, if it named `public`.
fn rewrite_line(line: &[u8], public: &str, served: &str) -> Option<Vec<u8>> {
    let mut obj: Map<String, Value> = serde_json::from_slice(line).ok()?;
    let model = obj.get_mut("body")?.as_object_mut()?.get_mut("model")?;
    if model.as_str() != Some(public) {
        return None;
    }
    *model = Value::String(served.to_string());
    serde_json::to_vec(&obj).ok()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    async fn run(file: &str, chunk: usize) -> String {
        let chunks: Vec<Result<Bytes, std::io::Error>> = file
            .as_bytes()
            .chunks(chunk)
            .map(|c| Ok(Bytes::copy_from_slice(c)))
            .collect();
        let out = served_model_names(
            futures::stream::iter(chunks).boxed(),
            "public".into(),
            "org/served".into(),
        );
        let parts: Vec<Bytes> = out.try_collect().await.unwrap();
        String::from_utf8(parts.concat()).unwrap()
    }

    #[tokio::test]
    async fn rewrites_the_public_name_whatever_the_chunking() {
        let file = "{\"custom_id\":\"a\",\"body\":{\"model\":\"public\",\"x\":\"é\"}}\r\n\
                    \n\
                    {\"custom_id\":\"b\",\"body\":{\"model\":\"other\"}}\n\
                    not json\n\
                    {\"custom_id\":\"c\",\"body\":{\"model\":\"public\"}}";
        let expected = "{\"custom_id\":\"a\",\"body\":{\"model\":\"org/served\",\"x\":\"é\"}}\r\n\
                        \n\
                        {\"custom_id\":\"b\",\"body\":{\"model\":\"other\"}}\n\
                        not json\n\
                        {\"custom_id\":\"c\",\"body\":{\"model\":\"org/served\"}}";
        for chunk in [1, 2, 3, 7, 64, file.len()] {
            assert_eq!(run(file, chunk).await, expected, "chunk {chunk}");
        }
    }
}
