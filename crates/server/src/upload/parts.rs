//! Reading the whole multipart body, part by part, in one place.
//!
//! A file part whose form is already known is streamed to the provider as it
//! is read; the provider stores the bytes but cannot commit (make the file
//! visible) before the stream ends, and the stream only ends cleanly once
//! this reader has read the *entire* body and accepted the final form. Any
//! refusal, an early return, a panic or a dropped request leaves the verdict
//! unsent, so the stream ends in an error and the provider commits nothing.

use std::sync::Arc;

use axum::extract::multipart::Field;
use axum::extract::Multipart;
use batchgate_core::{ApiError, Deployment, Upload};
use bytes::Bytes;
use futures::StreamExt;
use tokio::io::AsyncWriteExt;
use tokio::sync::{mpsc, oneshot};
use tokio_stream::wrappers::ReceiverStream;

use super::form::{file_name, read_text, settle, Form, Settled, NAMELESS};
use super::{bad_multipart, internal};
use crate::app::AppState;

/// Chunks of a streamed file part in flight between reader and provider.
const STREAM_CHUNKS: usize = 4;

/// A file part streaming to the provider: handed over once, when it starts.
pub(super) struct Started {
    pub deployment: Arc<Deployment>,
    pub upload: Upload,
}

/// Why the body was not accepted.
pub(super) enum Refusal {
    /// The client's body is at fault: answer this.
    Client(ApiError),
    /// The provider stopped reading the streamed part; its answer says why.
    ProviderStopped,
}

impl From<ApiError> for Refusal {
    fn from(e: ApiError) -> Self {
        Refusal::Client(e)
    }
}

/// The whole body, read and accepted.
pub(super) struct Accepted {
    /// What the final form asks for.
    pub settled: Settled,
    pub file: FilePart,
}

pub(super) enum FilePart {
    /// Streamed to the provider under these settings; it commits now.
    Streamed { as_sent: Settled },
    /// Written to a spool file, to be stored now.
    Spooled(Spooled),
}

/// A file part written to disk because the form was not complete yet. The
/// temporary file is deleted when this is dropped, on every path.
pub(super) struct Spooled {
    pub file: tempfile::NamedTempFile,
    pub filename: Option<String>,
}

/// The file part as far as the reader got with it.
enum Slot {
    Empty,
    Streamed {
        as_sent: Settled,
        filename: Option<String>,
        /// Sent only once the whole body is accepted; dropped unsent on
        /// any other path, which fails the provider's stream.
        verdict: oneshot::Sender<()>,
    },
    Spooled(Spooled),
}

/// Reads every part of the body; see the module docs. `start` hands a
/// streamed file part to the provider side.
pub(super) async fn read_all(
    st: &AppState,
    ctx: &batchgate_core::RequestCtx,
    explicit_model: Option<String>,
    multipart: &mut Multipart,
    start: oneshot::Sender<Started>,
) -> Result<Accepted, Refusal> {
    let mut start = Some(start);
    let mut form = Form::default();
    let mut slot = Slot::Empty;
    while let Some(field) = multipart.next_field().await.map_err(bad_multipart)? {
        let name = field.name().unwrap_or_default().to_string();
        if name != "file" {
            let value = read_text(field).await?;
            form.set(&name, value);
            continue;
        }
        if !matches!(slot, Slot::Empty) {
            return Err(
                ApiError::invalid_request("Only one 'file' part is allowed.")
                    .with_param("file")
                    .into(),
            );
        }
        let filename = file_name(field.file_name())?;
        let model = explicit_model.clone().or_else(|| form.model.clone());
        let ready = form.purpose.is_some()
            && (model.is_some() || st.catalog.ids().router().sole_model().is_some());
        // Only one file part gets here, so `start` is still there.
        slot = match (ready, start.take()) {
            (true, Some(start)) => {
                let as_sent = settle(st, ctx, &form, model.as_deref(), filename.as_deref()).await?;
                let verdict = stream(field, &as_sent, filename.clone(), start).await?;
                Slot::Streamed {
                    as_sent,
                    filename,
                    verdict,
                }
            }
            _ => Slot::Spooled(spool(st, field, filename).await?),
        };
    }
    accept(st, ctx, explicit_model, &form, slot).await
}

/// The body ended cleanly: check the form as it finally stands, then let a
/// streamed file commit.
async fn accept(
    st: &AppState,
    ctx: &batchgate_core::RequestCtx,
    explicit_model: Option<String>,
    form: &Form,
    slot: Slot,
) -> Result<Accepted, Refusal> {
    let model = explicit_model.or_else(|| form.model.clone());
    match slot {
        Slot::Empty => Err(
            ApiError::invalid_request("Missing required parameter: 'file'.")
                .with_param("file")
                .into(),
        ),
        Slot::Streamed {
            as_sent,
            filename,
            verdict,
        } => {
            let settled = settle(st, ctx, form, model.as_deref(), filename.as_deref()).await?;
            // The provider may have stopped already (e.g. over the size
            // limit); its own answer then says so.
            let _ = verdict.send(());
            Ok(Accepted {
                settled,
                file: FilePart::Streamed { as_sent },
            })
        }
        Slot::Spooled(spooled) => {
            let settled =
                settle(st, ctx, form, model.as_deref(), spooled.filename.as_deref()).await?;
            Ok(Accepted {
                settled,
                file: FilePart::Spooled(spooled),
            })
        }
    }
}

/// Starts the provider on `field` and pumps the field's chunks to it.
/// Returns the verdict sender: the stream ends cleanly only if it is sent.
async fn stream(
    mut field: Field<'_>,
    as_sent: &Settled,
    filename: Option<String>,
    start: oneshot::Sender<Started>,
) -> Result<oneshot::Sender<()>, Refusal> {
    let (chunks, rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(STREAM_CHUNKS);
    let (verdict, verdict_rx) = oneshot::channel::<()>();
    let end = futures::stream::once(async move {
        match verdict_rx.await {
            Ok(()) => None,
            Err(_) => Some(Err(std::io::Error::other(
                "the upload was refused before its body ended",
            ))),
        }
    })
    .filter_map(futures::future::ready);
    let upload = Upload {
        filename: filename.unwrap_or_else(|| NAMELESS.to_string()),
        purpose: as_sent.purpose,
        expires_after: as_sent.expires_after.clone(),
        body: ReceiverStream::new(rx).chain(end).boxed(),
    };
    let started = Started {
        deployment: as_sent.deployment.clone(),
        upload,
    };
    if start.send(started).is_err() {
        return Err(Refusal::ProviderStopped);
    }
    while let Some(chunk) = field.chunk().await.map_err(bad_multipart)? {
        if chunks.send(Ok(chunk)).await.is_err() {
            return Err(Refusal::ProviderStopped);
        }
    }
    Ok(verdict)
}

async fn spool(
    st: &AppState,
    mut field: Field<'_>,
    filename: Option<String>,
) -> Result<Spooled, ApiError> {
    std::fs::create_dir_all(&st.spool_dir).map_err(|e| internal("create spool dir", e))?;
    let file = tempfile::NamedTempFile::new_in(&st.spool_dir)
        .map_err(|e| internal("create spool file", e))?;
    let spooled = Spooled { file, filename };
    let std_file = spooled
        .file
        .reopen()
        .map_err(|e| internal("open spool file", e))?;
    let mut out = tokio::fs::File::from_std(std_file);
    let limit = st.catalog.general().max_file_bytes();
    let mut written: u64 = 0;
    while let Some(chunk) = field.chunk().await.map_err(bad_multipart)? {
        written = written.saturating_add(chunk.len() as u64);
        if written > limit {
            return Err(ApiError::too_large(format!(
                "File is larger than the limit of {} MB.",
                st.catalog.general().max_file_size_mb
            ))
            .with_param("file"));
        }
        out.write_all(&chunk)
            .await
            .map_err(|e| internal("write spool file", e))?;
    }
    out.flush()
        .await
        .map_err(|e| internal("flush spool file", e))?;
    Ok(spooled)
}
