//! File bytes, streamed in and out of an `object_store` backend.

use std::path::Path;
use std::sync::Arc;

use batchgate_core::ByteStream;
use futures::{StreamExt, TryStreamExt};
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::prefix::PrefixStore;
use object_store::{ObjectStore, WriteMultipart};

use crate::StoreError;

/// Bytes are written in parts of this size; at most [`MAX_PARTS_IN_FLIGHT`]
/// parts are buffered, which bounds upload memory whatever the file size.
const PART_SIZE: usize = 4 * 1024 * 1024;
/// S3 refuses to complete a multipart upload with a part (but the last)
/// under 5 MiB.
const S3_PART_SIZE: usize = 5 * 1024 * 1024;
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
    part_size: usize,
}

impl Blobs {
    /// Any `object_store` backend.
    pub fn new(store: Arc<dyn ObjectStore>) -> Blobs {
        Blobs {
            store,
            part_size: PART_SIZE,
        }
    }

    /// Files under a local directory (created if missing).
    pub fn local(dir: &Path) -> Result<Blobs, StoreError> {
        std::fs::create_dir_all(dir)?;
        let fs = LocalFileSystem::new_with_prefix(dir)?;
        Ok(Blobs::new(Arc::new(fs)))
    }

    /// Blobs at a storage URL:
    /// - `s3://bucket/prefix` (or `s3a://`): any S3-compatible service;
    ///   credentials, region and endpoint come from the standard AWS
    ///   environment variables (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
    ///   `AWS_REGION`, `AWS_ENDPOINT_URL`, `AWS_ALLOW_HTTP` for a local
    ///   server). Uploads are S3 multipart uploads, completed only when the
    ///   whole file is in, so an interrupted upload leaves no object.
    /// - `file:///dir` or a plain path: a local directory.
    pub fn from_url(url: &str) -> Result<Blobs, StoreError> {
        Blobs::from_url_with(url, std::env::vars())
    }

    /// [`Blobs::from_url`] reading the `AWS_*` settings from `vars` instead
    /// of the process environment.
    pub fn from_url_with(
        url: &str,
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Blobs, StoreError> {
        if let Some(rest) = url
            .strip_prefix("s3://")
            .or_else(|| url.strip_prefix("s3a://"))
        {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(StoreError::Config(format!(
                    "storage URL {url:?} names no bucket (s3://BUCKET/PREFIX)"
                )));
            }
            let mut builder = AmazonS3Builder::new();
            for (key, value) in vars {
                if key.starts_with("AWS_") {
                    if let Ok(config) = key.to_ascii_lowercase().parse() {
                        builder = builder.with_config(config, value);
                    }
                }
            }
            let s3 = builder.with_bucket_name(bucket).build()?;
            let prefix = prefix.trim_matches('/');
            let store: Arc<dyn ObjectStore> = if prefix.is_empty() {
                Arc::new(s3)
            } else {
                Arc::new(PrefixStore::new(s3, prefix))
            };
            return Ok(Blobs {
                store,
                part_size: S3_PART_SIZE,
            });
        }
        if let Some(path) = url.strip_prefix("file://") {
            return Blobs::local(Path::new(path));
        }
        if url.contains("://") {
            return Err(StoreError::Config(format!(
                "storage URL {url:?}: only s3://bucket/prefix and file:///dir are supported"
            )));
        }
        Blobs::local(Path::new(url))
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
        let mut writer = WriteMultipart::new_with_chunk_size(upload, self.part_size);
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

    /// Streams the object at `path` from byte `offset` on (a chunk of a
    /// batch reads only its own part of the input: a ranged GET on S3).
    pub async fn get_stream_from(&self, path: &str, offset: u64) -> Result<ByteStream, StoreError> {
        if offset == 0 {
            return Ok(self.get_stream(path).await?.1);
        }
        let location = ObjectPath::parse(path)?;
        let options = object_store::GetOptions {
            range: Some(object_store::GetRange::Offset(offset)),
            ..Default::default()
        };
        let result = self.store.get_opts(&location, options).await?;
        Ok(result
            .into_stream()
            .map_err(|e| std::io::Error::other(e.to_string()))
            .boxed())
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
