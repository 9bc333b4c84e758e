//! `POST /v1/files`: a multipart upload streamed straight to the provider.
//!
//! Parts may come in any order. When `purpose` (and the model, unless it is
//! given by header or query or there is only one) arrive before the file,
//! the file part is piped to the provider as it is read. When the file comes
//! first, it is spooled to a temporary file on disk (never to memory) until
//! the rest of the form is known. Fields that arrive after a streamed file
//! part (curl sends parts in the order typed) are applied: if they change
//! anything the file is stored again from its stored copy. When an upload is
//! refused, the rest of its body is read and discarded (for up to 30 s) so
//! the client, still sending, reads the error instead of a reset connection.

use std::sync::Arc;

use axum::extract::multipart::{Field, MultipartError, MultipartRejection};
use axum::extract::{Multipart, State};
use axum::http::HeaderMap;
use axum::Json;
use batchgate_core::{ApiError, Deployment, ExpiresAfter, FileObject, FilePurpose, Upload};
use bytes::Bytes;
use futures::StreamExt;
use serde::Deserialize;
use tokio::io::AsyncWriteExt;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::io::ReaderStream;

use crate::app::AppState;
use crate::error::HttpResult;
use crate::extract::{ApiQuery, Ctx};

/// The longest value accepted for a text field.
const MAX_FIELD_BYTES: usize = 64 * 1024;
/// How long the rest of a refused upload is read and discarded.
const LINGER: std::time::Duration = std::time::Duration::from_secs(30);

#[derive(Debug, Default, Deserialize)]
pub struct UploadQuery {
    model: Option<String>,
}

/// The text fields seen so far.
#[derive(Debug, Default)]
struct Form {
    purpose: Option<String>,
    model: Option<String>,
    anchor: Option<String>,
    seconds: Option<String>,
}

impl Form {
    fn set(&mut self, name: &str, value: String) {
        match name {
            "purpose" => self.purpose = Some(value),
            "model" => self.model = Some(value),
            // LiteLLM's spelling: a list of names; the first routes.
            "target_model_names" => {
                self.model = value
                    .split(',')
                    .map(str::trim)
                    .find(|s| !s.is_empty())
                    .map(String::from)
            }
            "expires_after[anchor]" => self.anchor = Some(value),
            "expires_after[seconds]" => self.seconds = Some(value),
            _ => {}
        }
    }

    fn purpose(&self) -> Result<FilePurpose, ApiError> {
        let raw = self.purpose.as_deref().ok_or_else(|| {
            ApiError::invalid_request("Missing required parameter: 'purpose'.")
                .with_param("purpose")
        })?;
        FilePurpose::parse(raw)
            .filter(|p| p.is_uploadable())
            .ok_or_else(|| {
                let allowed: Vec<_> = FilePurpose::ALL
                    .iter()
                    .filter(|p| p.is_uploadable())
                    .map(|p| format!("'{p}'"))
                    .collect();
                ApiError::invalid_request(format!(
                    "'{raw}' is not one of [{}] - 'purpose'",
                    allowed.join(", ")
                ))
                .with_param("purpose")
            })
    }

    fn expires_after(&self) -> Result<Option<ExpiresAfter>, ApiError> {
        let (anchor, seconds) =
            match (&self.anchor, &self.seconds) {
                (None, None) => return Ok(None),
                (Some(a), Some(s)) => (a, s),
                _ => return Err(ApiError::invalid_request(
                    "expires_after needs both expires_after[anchor] and expires_after[seconds].",
                )
                .with_param("expires_after")),
            };
        if anchor != "created_at" {
            return Err(ApiError::invalid_request(format!(
                "expires_after[anchor] must be 'created_at', got '{anchor}'."
            ))
            .with_param("expires_after[anchor]"));
        }
        let seconds = seconds
            .trim()
            .parse::<u64>()
            .ok()
            .filter(|s| ExpiresAfter::SECONDS_RANGE.contains(s))
            .ok_or_else(|| {
                ApiError::invalid_request(format!(
                    "expires_after[seconds] must be an integer from {} to {}, got '{seconds}'.",
                    ExpiresAfter::SECONDS_RANGE.start(),
                    ExpiresAfter::SECONDS_RANGE.end()
                ))
                .with_param("expires_after[seconds]")
            })?;
        Ok(Some(ExpiresAfter {
            anchor: anchor.clone(),
            seconds,
        }))
    }
}

/// A file part written to disk because the form was not complete yet.
struct Spooled {
    file: tempfile::NamedTempFile,
    filename: String,
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
    let result = receive(&st, &ctx, &headers, query, &mut multipart).await;
    if let Ok(Json(file)) = &result {
        metrics::counter!("batchgate_bytes_uploaded_total").increment(file.bytes);
    }
    if result.is_err() {
        // A client still sending the body would otherwise see the
        // connection reset instead of the error.
        let _ = tokio::time::timeout(LINGER, drain(&mut multipart)).await;
    }
    result
}

/// Reads the form; see the module docs.
async fn receive(
    st: &AppState,
    ctx: &batchgate_core::RequestCtx,
    headers: &HeaderMap,
    query: UploadQuery,
    multipart: &mut Multipart,
) -> HttpResult<Json<FileObject>> {
    let explicit_model = headers
        .get("x-litellm-model")
        .and_then(|v| v.to_str().ok())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .or(query.model);
    let mut form = Form::default();
    let mut spooled: Option<Spooled> = None;
    // The file stored while streaming, with the expiry it was stored under.
    let mut created: Option<(FileObject, Option<ExpiresAfter>)> = None;
    let mut fields_after_file = false;

    while let Some(field) = multipart.next_field().await.map_err(bad_multipart)? {
        let name = field.name().unwrap_or_default().to_string();
        if name == "file" {
            if created.is_some() || spooled.is_some() {
                return Err(
                    ApiError::invalid_request("Only one 'file' part is allowed.")
                        .with_param("file")
                        .into(),
                );
            }
            let filename = clean_filename(field.file_name());
            let model = explicit_model.clone().or_else(|| form.model.clone());
            let ready =
                form.purpose.is_some() && (model.is_some() || st.gw.router.sole_model().is_some());
            if ready {
                let (purpose, deployment) =
                    check(st, ctx, &form, model.as_deref(), &filename).await?;
                let expires_after = form.expires_after()?;
                let file = stream_to_provider(
                    st,
                    ctx,
                    &deployment,
                    field,
                    filename,
                    purpose,
                    expires_after.clone(),
                )
                .await?;
                created = Some((file, expires_after));
            } else {
                spooled = Some(spool(st, field, filename).await?);
            }
            continue;
        }
        let value = read_text(field).await?;
        if created.is_some()
            && matches!(
                name.as_str(),
                "purpose"
                    | "model"
                    | "target_model_names"
                    | "expires_after[anchor]"
                    | "expires_after[seconds]"
            )
        {
            fields_after_file = true;
        }
        form.set(&name, value);
    }

    if let Some((file, stored_expiry)) = created {
        if fields_after_file {
            // curl sends parts in the order typed (`-F purpose=batch -F
            // file=@x -F model=m`): settle the form as it finally stands.
            let model = explicit_model.or_else(|| form.model.clone());
            return Ok(Json(
                settle_late_fields(st, ctx, file, stored_expiry, &form, model.as_deref()).await?,
            ));
        }
        return Ok(Json(file));
    }
    let Some(spooled) = spooled else {
        return Err(
            ApiError::invalid_request("Missing required parameter: 'file'.")
                .with_param("file")
                .into(),
        );
    };
    let model = explicit_model.or_else(|| form.model.clone());
    let (purpose, deployment) = check(st, ctx, &form, model.as_deref(), &spooled.filename).await?;
    let expires_after = form.expires_after()?;
    let reader = tokio::fs::File::open(spooled.file.path())
        .await
        .map_err(|e| internal("reopen spooled upload", e))?;
    let upload = Upload {
        filename: spooled.filename.clone(),
        purpose,
        expires_after,
        body: ReaderStream::new(reader).boxed(),
    };
    let provider = st.providers.for_deployment(&deployment)?;
    let file = provider.create_file(ctx, &deployment, upload).await?;
    drop(spooled);
    Ok(Json(file))
}

/// A file was stored before later form fields arrived. If they change
/// nothing it stands; otherwise it is stored again from the stored copy under
/// the complete form. The first copy is removed unless it is the answer.
async fn settle_late_fields(
    st: &AppState,
    ctx: &batchgate_core::RequestCtx,
    file: FileObject,
    stored_expiry: Option<ExpiresAfter>,
    form: &Form,
    model: Option<&str>,
) -> Result<FileObject, ApiError> {
    let routed = st.gw.route(batchgate_ids::Kind::File, &file.id)?;
    let provider = st.providers.for_deployment(&routed.deployment)?;
    let restored = async {
        let (purpose, deployment) = check(st, ctx, form, model, &file.filename).await?;
        let expires_after = form.expires_after()?;
        if purpose == file.purpose
            && deployment.model_name == routed.deployment.model_name
            && expires_after == stored_expiry
        {
            return Ok(None);
        }
        let content = provider.file_content(ctx, &routed).await?;
        let upload = Upload {
            filename: file.filename.clone(),
            purpose,
            expires_after,
            body: content.body,
        };
        let target = st.providers.for_deployment(&deployment)?;
        target.create_file(ctx, &deployment, upload).await.map(Some)
    }
    .await;
    match restored {
        Ok(None) => Ok(file),
        other => {
            let _ = provider.delete_file(ctx, &routed).await;
            other.map(|f| f.unwrap_or(file))
        }
    }
}

/// Reads and discards what is left of the body.
async fn drain(multipart: &mut Multipart) {
    while let Ok(Some(mut field)) = multipart.next_field().await {
        while let Ok(Some(_)) = field.chunk().await {}
    }
}

/// Purpose, filename and model checks shared by both paths.
async fn check(
    st: &AppState,
    ctx: &batchgate_core::RequestCtx,
    form: &Form,
    model: Option<&str>,
    filename: &str,
) -> Result<(FilePurpose, Arc<Deployment>), ApiError> {
    let purpose = form.purpose()?;
    if purpose == FilePurpose::Batch && !filename.to_ascii_lowercase().ends_with(".jsonl") {
        return Err(
            ApiError::invalid_request("Invalid file format for Batch API. Must be .jsonl")
                .with_param("file"),
        );
    }
    let deployment = st.resolve_model(model)?;
    crate::guard::check_model(&ctx.caller, &deployment.model_name)?;
    if purpose == FilePurpose::Batch {
        crate::guard::check_budget(&st.gw, &ctx.caller).await?;
    }
    Ok((purpose, deployment))
}

async fn stream_to_provider(
    st: &AppState,
    ctx: &batchgate_core::RequestCtx,
    deployment: &Arc<Deployment>,
    mut field: Field<'_>,
    filename: String,
    purpose: FilePurpose,
    expires_after: Option<ExpiresAfter>,
) -> Result<FileObject, ApiError> {
    let provider = st.providers.for_deployment(deployment)?;
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(4);
    let upload = Upload {
        filename,
        purpose,
        expires_after,
        body: ReceiverStream::new(rx).boxed(),
    };
    // The pump and the provider run side by side in this task; the bounded
    // channel keeps at most a few chunks in memory.
    let pump = async move {
        loop {
            let next = field.chunk().await;
            let item = match next {
                Ok(Some(chunk)) => Ok(chunk),
                Ok(None) => break,
                Err(e) => Err(std::io::Error::other(e.body_text())),
            };
            let failed = item.is_err();
            if tx.send(item).await.is_err() || failed {
                break;
            }
        }
    };
    let ((), result) = tokio::join!(pump, provider.create_file(ctx, deployment, upload));
    result
}

async fn spool(st: &AppState, mut field: Field<'_>, filename: String) -> Result<Spooled, ApiError> {
    std::fs::create_dir_all(&st.spool_dir).map_err(|e| internal("create spool dir", e))?;
    let file = tempfile::NamedTempFile::new_in(&st.spool_dir)
        .map_err(|e| internal("create spool file", e))?;
    let std_file = file.reopen().map_err(|e| internal("open spool file", e))?;
    let mut out = tokio::fs::File::from_std(std_file);
    let limit = st.gw.general.max_file_bytes();
    let mut written: u64 = 0;
    while let Some(chunk) = field.chunk().await.map_err(bad_multipart)? {
        written += chunk.len() as u64;
        if written > limit {
            return Err(ApiError::too_large(format!(
                "File is larger than the limit of {} MB.",
                st.gw.general.max_file_size_mb
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
    Ok(Spooled { file, filename })
}

async fn read_text(mut field: Field<'_>) -> Result<String, ApiError> {
    let name = field.name().unwrap_or_default().to_string();
    let mut buf = Vec::new();
    while let Some(chunk) = field.chunk().await.map_err(bad_multipart)? {
        if buf.len() + chunk.len() > MAX_FIELD_BYTES {
            return Err(
                ApiError::invalid_request(format!("Form field '{name}' is too long."))
                    .with_param(name),
            );
        }
        buf.extend_from_slice(&chunk);
    }
    String::from_utf8(buf)
        .map(|s| s.trim().to_string())
        .map_err(|_| {
            ApiError::invalid_request(format!("Form field '{name}' is not UTF-8.")).with_param(name)
        })
}

/// The last path component, so a name like `../../x.jsonl` stays a name.
fn clean_filename(raw: Option<&str>) -> String {
    let name = raw
        .unwrap_or_default()
        .rsplit(['/', '\\'])
        .next()
        .unwrap_or_default()
        .trim();
    let name: String = name.chars().filter(|c| !c.is_control()).take(255).collect();
    if name.is_empty() {
        "upload".to_string()
    } else {
        name
    }
}

fn bad_multipart(e: MultipartError) -> ApiError {
    ApiError::invalid_request(format!("Malformed multipart body: {}", e.body_text()))
}

fn internal(what: &str, e: std::io::Error) -> ApiError {
    tracing::error!(error = %e, "{what}");
    ApiError::internal("The gateway could not buffer the upload.")
}

#[cfg(test)]
mod tests {
    use super::clean_filename;

    #[test]
    fn filenames_lose_their_paths() {
        assert_eq!(clean_filename(Some("../../etc/x.jsonl")), "x.jsonl");
        assert_eq!(clean_filename(Some("C:\\data\\b.jsonl")), "b.jsonl");
        assert_eq!(clean_filename(None), "upload");
        assert_eq!(clean_filename(Some("dir/")), "upload");
    }
}
