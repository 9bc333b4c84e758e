//! File bytes, streamed in and out of an `object_store` backend.

use std::path::Path;
use std::sync::Arc;

use batchgate_core::ByteStream;
use futures::{StreamExt, TryStreamExt};
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, WriteMultipart};

use crate::StoreError;

/// Bytes are written in parts of this size; at most [`MAX_PARTS_IN_FLIGHT`]
/// parts are buffered, which bounds upload memory whatever the file size.
const PART_SIZE: usize = 4 * 1024 * 1024;
const MAX_PARTS_IN_FLIGHT: usize = 2;

/// How a streamed write ended.
#[derive(Debug)]
pub enum PutOutcome {
    /// Every byte is durable under the path.
    Stored { bytes: u64 },
    /// The stream passed `max_bytes`; nothing was kept.
    TooLarge,
    /// The incoming stream failed (client went away, malformed body);
    /// nothing was kept.
    BodyError(std::io::Error),
}

/// The blob store.
#[derive(Debug, Clone)]
pub struct Blobs {
    store: Arc<dyn ObjectStore>,
}

impl Blobs {
    /// Any `object_store` backend.
    pub fn new(store: Arc<dyn ObjectStore>) -> Blobs {
        Blobs { store }
    }

    /// Files under a local directory (created if missing).
    pub fn local(dir: &Path) -> Result<Blobs, StoreError> {
        std::fs::create_dir_all(dir)?;
        let fs = LocalFileSystem::new_with_prefix(dir)?;
        Ok(Blobs::new(Arc::new(fs)))
    }

    /// Streams `body` to `path`. The object appears only when complete: a
    /// partial write (crash, error, limit) is never visible under `path`.
    pub async fn put_stream(
        &self,
        path: &str,
        mut body: ByteStream,
        max_bytes: u64,
    ) -> Result<PutOutcome, StoreError> {
        let location = ObjectPath::parse(path)?;
        let upload = self.store.put_multipart(&location).await?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, PART_SIZE);
        let mut written: u64 = 0;
        while let Some(chunk) = body.next().await {
            let chunk = match chunk {
                Ok(c) => c,
                Err(e) => {
                    abort(writer).await;
                    return Ok(PutOutcome::BodyError(e));
                }
            };
            written += chunk.len() as u64;
            if written > max_bytes {
                abort(writer).await;
                return Ok(PutOutcome::TooLarge);
            }
            if let Err(e) = writer.wait_for_capacity(MAX_PARTS_IN_FLIGHT).await {
                abort(writer).await;
                return Err(e.into());
            }
            writer.put(chunk);
        }
        writer.finish().await?;
        Ok(PutOutcome::Stored { bytes: written })
    }

    /// Streams the object at `path`, with its size.
    pub async fn get_stream(&self, path: &str) -> Result<(u64, ByteStream), StoreError> {
        let location = ObjectPath::parse(path)?;
        let result = self.store.get(&location).await?;
        let size = result.meta.size;
        let stream = result
            .into_stream()
            .map_err(|e| std::io::Error::other(e.to_string()))
            .boxed();
        Ok((size, stream))
    }

    /// Removes the object; a missing one is not an error.
    pub async fn delete(&self, path: &str) -> Result<(), StoreError> {
        let location = ObjectPath::parse(path)?;
        match self.store.delete(&location).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

async fn abort(writer: WriteMultipart) {
    if let Err(e) = writer.abort().await {
        tracing::warn!(error = %e, "could not abort a partial upload");
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use bytes::Bytes;

    fn body(chunks: Vec<&'static [u8]>) -> ByteStream {
        futures::stream::iter(chunks.into_iter().map(|c| Ok(Bytes::from_static(c)))).boxed()
    }

    async fn read_all(blobs: &Blobs, path: &str) -> Vec<u8> {
        let (_, mut s) = blobs.get_stream(path).await.unwrap();
        let mut out = Vec::new();
        while let Some(c) = s.next().await {
            out.extend_from_slice(&c.unwrap());
        }
        out
    }

    #[tokio::test]
    async fn round_trips_and_enforces_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = Blobs::local(dir.path()).unwrap();
        let ok = blobs
            .put_stream("files/a", body(vec![b"hello ", b"world"]), 100)
            .await
            .unwrap();
        assert!(matches!(ok, PutOutcome::Stored { bytes: 11 }));
        assert_eq!(read_all(&blobs, "files/a").await, b"hello world");

        let big = blobs
            .put_stream("files/b", body(vec![b"0123456789", b"x"]), 10)
            .await
            .unwrap();
        assert!(matches!(big, PutOutcome::TooLarge));
        assert!(
            blobs.get_stream("files/b").await.is_err(),
            "a refused upload must not be visible"
        );

        let empty = blobs.put_stream("files/c", body(vec![]), 10).await.unwrap();
        assert!(matches!(empty, PutOutcome::Stored { bytes: 0 }));
        assert!(read_all(&blobs, "files/c").await.is_empty());

        blobs.delete("files/a").await.unwrap();
        blobs.delete("files/a").await.unwrap();
        assert!(blobs.get_stream("files/a").await.is_err());
    }

    #[tokio::test]
    async fn a_failing_body_leaves_nothing_visible() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = Blobs::local(dir.path()).unwrap();
        let failing = futures::stream::iter(vec![
            Ok(Bytes::from_static(b"partial")),
            Err(std::io::Error::other("client went away")),
        ])
        .boxed();
        let out = blobs.put_stream("files/d", failing, 100).await.unwrap();
        assert!(matches!(out, PutOutcome::BodyError(_)));
        assert!(blobs.get_stream("files/d").await.is_err());
    }
}
