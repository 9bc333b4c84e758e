//! `POST /v1/files`: a multipart upload streamed straight to the provider.
//!
//! Parts may come in any order. When `purpose` (and the model, unless it is
//! given by header or query or there is only one) arrive before the file,
//! the file part is piped to the provider as it is read. When the file comes
//! first, it is spooled to a temporary file on disk (never to memory) until
//! the rest of the form is known.
//!
//! Either way the file is committed (becomes visible) only as the very last
//! step, once the whole body has been read and the final form accepted: a
//! refusal at any point — a second file part, a bad field, a truncated body
//! — leaves no row, no blob and no spool file (see [`parts`]). Fields that
//! arrive after a streamed file part (curl sends parts in the order typed)
//! are applied: if they change how the file is stored, it is stored again
//! from its stored copy. When an upload is refused, the rest of its body is
//! read and discarded (for up to 30 s) so the client, still sending, reads
//! the error instead of a reset connection.

mod form;
mod parts;

use std::sync::Arc;

use axum::extract::multipart::{MultipartError, MultipartRejection};
use axum::extract::{Multipart, State};
use axum::http::HeaderMap;
use axum::Json;
use batchgate_core::{ApiError, FileObject, ObjectRef, Provider, RequestCtx, Upload};
use futures::StreamExt;
use serde::Deserialize;
use tokio_util::io::ReaderStream;

use self::form::{Settled, NAMELESS};
use self::parts::{Accepted, FilePart, Refusal, Spooled, Started};
use crate::app::AppState;
use crate::error::HttpResult;
use crate::extract::{ApiQuery, Ctx};

/// How long the rest of a refused upload is read and discarded.
const LINGER: std::time::Duration = std::time::Duration::from_secs(30);

#[derive(Debug, Default, Deserialize)]
pub struct UploadQuery {
    model: Option<String>,
}

pub async fn upload(
    State(st): State<Arc<AppState>>,
    Ctx(ctx): Ctx,
    headers: HeaderMap,
    ApiQuery(query): ApiQuery<UploadQuery>,
    multipart: Result<Multipart, MultipartRejection>,
) -> HttpResult<Json<FileObject>> {
    let mut multipart = multipart.map_err(|e| {
        ApiError::invalid_request(format!(
            "Expected a multipart/form-data body: {}",
            e.body_text()
        ))
    })?;
    let explicit_model = crate::files::model_hint(&headers, query.model);
    let result = receive(&st, &ctx, explicit_model, &mut multipart).await;
    match result {
        Ok(file) => {
            metrics::counter!("batchgate_bytes_uploaded_total").increment(file.bytes);
            Ok(Json(file))
        }
        Err(e) => {
            // A client still sending the body would otherwise see the
            // connection reset instead of the error.
            let _ = tokio::time::timeout(LINGER, drain(&mut multipart)).await;
            Err(e.into())
        }
    }
}

/// Reads the body while the provider stores a streamed file part, then
/// commits the file or leaves nothing; see the module docs.
async fn receive(
    st: &AppState,
    ctx: &RequestCtx,
    explicit_model: Option<String>,
    multipart: &mut Multipart,
) -> Result<FileObject, ApiError> {
    let (start, started) = tokio::sync::oneshot::channel::<Started>();
    let reader = parts::read_all(st, ctx, explicit_model, multipart, start);
    // Runs only if the reader starts streaming a file part to it.
    let provider = async {
        let Started { deployment, upload } = started.await.ok()?;
        let stored = match st.providers.for_deployment(&deployment) {
            Ok(p) => p.create_file(ctx, &deployment, upload).await,
            Err(e) => Err(e),
        };
        Some(stored)
    };
    let (read, stored) = tokio::join!(reader, provider);
    match (read, stored) {
        (Ok(accepted), stored) => finish(st, ctx, accepted, stored).await,
        (Err(refusal), stored) => {
            // The provider cannot commit without the reader's verdict, so a
            // stored file here would be a bug; never let it stand.
            let provider_error = match stored {
                Some(Ok(file)) => {
                    drop(Provisional::of(st, ctx, &file)?);
                    None
                }
                Some(Err(e)) => Some(e),
                None => None,
            };
            Err(match (refusal, provider_error) {
                (Refusal::Client(e), _) | (Refusal::ProviderStopped, Some(e)) => e,
                (Refusal::ProviderStopped, None) => {
                    ApiError::internal("The gateway could not store the upload.")
                }
            })
        }
    }
}

/// The body was accepted: the streamed file stands (or is stored again if
/// late fields changed how), or the spooled file is stored now.
async fn finish(
    st: &AppState,
    ctx: &RequestCtx,
    accepted: Accepted,
    stored: Option<Result<FileObject, ApiError>>,
) -> Result<FileObject, ApiError> {
    let Accepted { settled, file } = accepted;
    match (file, stored) {
        (FilePart::Streamed { as_sent }, Some(Ok(file))) => {
            let first = Provisional::of(st, ctx, &file)?;
            if as_sent.same_as(&settled) {
                first.keep();
                return Ok(file);
            }
            // curl sends parts in the order typed (`-F purpose=batch -F
            // file=@x -F expires_after[seconds]=3600`): store the file
            // as the form finally stands; the first copy goes either way.
            let again = restore(st, ctx, &first, &file, settled).await;
            first.remove().await;
            again
        }
        (FilePart::Streamed { .. }, Some(Err(e))) => Err(e),
        (FilePart::Streamed { .. }, None) => Err(ApiError::internal(
            "The gateway could not store the upload.",
        )),
        (FilePart::Spooled(spooled), _) => store_spooled(st, ctx, spooled, settled).await,
    }
}

/// Stores `file` again from its stored copy under `settled`.
async fn restore(
    st: &AppState,
    ctx: &RequestCtx,
    first: &Provisional,
    file: &FileObject,
    settled: Settled,
) -> Result<FileObject, ApiError> {
    let content = first.provider.file_content(ctx, &first.file).await?;
    let upload = Upload {
        filename: file.filename.clone(),
        purpose: settled.purpose,
        expires_after: settled.expires_after,
        body: content.body,
    };
    let target = st.providers.for_deployment(&settled.deployment)?;
    target.create_file(ctx, &settled.deployment, upload).await
}

async fn store_spooled(
    st: &AppState,
    ctx: &RequestCtx,
    spooled: Spooled,
    settled: Settled,
) -> Result<FileObject, ApiError> {
    let reader = tokio::fs::File::open(spooled.file.path())
        .await
        .map_err(|e| internal("reopen spooled upload", e))?;
    let upload = Upload {
        filename: spooled
            .filename
            .clone()
            .unwrap_or_else(|| NAMELESS.to_string()),
        purpose: settled.purpose,
        expires_after: settled.expires_after,
        body: ReaderStream::new(reader).boxed(),
    };
    let provider = st.providers.for_deployment(&settled.deployment)?;
    let file = provider
        .create_file(ctx, &settled.deployment, upload)
        .await?;
    // The spool file goes now, whatever happened above (it is removed
    // when `spooled` drops on the error paths too).
    drop(spooled);
    Ok(file)
}

/// A committed file that is not the answer (yet): unless kept, it is
/// deleted — by [`Provisional::remove`], or in the background when dropped
/// (an error, or the request cancelled midway).
struct Provisional {
    provider: Arc<dyn Provider>,
    ctx: RequestCtx,
    file: ObjectRef,
    armed: bool,
}

impl Provisional {
    fn of(st: &AppState, ctx: &RequestCtx, file: &FileObject) -> Result<Provisional, ApiError> {
        let file = st.catalog.route(batchgate_ids::Kind::File, &file.id)?;
        Ok(Provisional {
            provider: st.providers.for_deployment(&file.deployment)?,
            ctx: ctx.clone(),
            file,
            armed: true,
        })
    }

    /// It is the answer: leave it.
    fn keep(mut self) {
        self.armed = false;
    }

    async fn remove(mut self) {
        self.armed = false;
        if let Err(e) = self.provider.delete_file(&self.ctx, &self.file).await {
            tracing::warn!(error = %e, file = %self.file.public_id, "could not remove a superseded upload");
        }
    }
}

impl Drop for Provisional {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let (provider, ctx, file) = (self.provider.clone(), self.ctx.clone(), self.file.clone());
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                if let Err(e) = provider.delete_file(&ctx, &file).await {
                    tracing::warn!(error = %e, file = %file.public_id, "could not remove an unanswered upload");
                }
            });
        }
    }
}

/// Reads and discards what is left of the body.
async fn drain(multipart: &mut Multipart) {
    while let Ok(Some(mut field)) = multipart.next_field().await {
        while let Ok(Some(_)) = field.chunk().await {}
    }
}

fn bad_multipart(e: MultipartError) -> ApiError {
    ApiError::invalid_request(format!("Malformed multipart body: {}", e.body_text()))
}

fn internal(what: &str, e: std::io::Error) -> ApiError {
    tracing::error!(error = %e, "{what}");
    ApiError::internal("The gateway could not buffer the upload.")
}
