//! Retrying the failed lines of an ended batch — batchgate's extension
//! `POST /v1/batches/{id}/retry`: a new batch over the input lines whose
//! results say they failed for a reason other than the request itself
//! (or over every failed line, when asked), linked by `metadata.retry_of`.
//!
//! The input, the error file and (for a cancelled batch) the output file
//! are read side by side, each streamed once. Finalization writes result
//! files in input-line order, so the next result line not yet matched is
//! always that of the next input line that has one: the merge holds one
//! line of each file, never a whole file nor a set of IDs.

use std::collections::BTreeMap;

use batchgate_core::{
    ApiError, Batch, BatchStatus, ByteStream, Caller, CreateBatchRequest, ObjectRef,
    OutputExpiresAfter, RequestCtx,
};
use batchgate_ids::Kind;
use batchgate_store::{BatchRecord, FileRecord, Owner};
use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use serde::Deserialize;
use tokio::sync::mpsc;

use super::finalize::custom_id_of;
use super::shared::{Shared, MAX_LINE_BYTES};
use super::upstream::retryable_status;
use super::Engine;
use crate::{is_blank, LineReader, RawLine};

/// The metadata key that links a retry to the batch it retries.
const RETRY_OF: &str = "retry_of";

/// Selected lines go to the blob writer in chunks of about this size.
const CHUNK: usize = 256 * 1024;

/// Codes of error lines that got no answer for a reason outside the
/// request: the upstream failed or was unreachable, the window ran out, the
/// budget did, or the gateway never sent the line. Any other code (a line
/// the gateway could not send as written) is the request's own fault.
const NOT_THE_REQUEST: &[&str] = &[
    "upstream_error",
    "upstream_unreachable",
    "batch_expired",
    "budget_exceeded",
    "request_not_executed",
];

impl Engine {
    /// A new batch over the failed lines of the ended batch `b`: by default
    /// those that failed for a reason other than the request itself, all
    /// of them when `all`; for a cancelled batch also the lines that never
    /// ran. It belongs to the original's owner (who sees and pays for it)
    /// and runs on the same deployment, endpoint and window.
    pub async fn retry(
        &self,
        ctx: &RequestCtx,
        b: &ObjectRef,
        all: bool,
    ) -> Result<Batch, ApiError> {
        let rec = self.visible(ctx, b).await?;
        check_retryable(ctx, &rec)?;
        self.shared
            .gw
            .accounts
            .check_budget(&payer(&rec.owner))
            .await?;
        let sources = Sources::open(&self.shared, &rec).await?;
        if sources.errors.is_none() && sources.outputs.is_none() {
            return Err(nothing_to_retry(&rec.batch.id, 0));
        }
        let file = self.write_selection(&rec, b, sources, all).await?;
        let files = &self.shared.files;
        files.insert(&file).await?;
        let input = ObjectRef {
            public_id: file.object.id.clone(),
            local_key: file.key.clone(),
            upstream_id: None,
            deployment: b.deployment.clone(),
        };
        let req = CreateBatchRequest {
            input_file_id: file.object.id.clone(),
            endpoint: rec.batch.endpoint.clone(),
            completion_window: rec.batch.completion_window.clone(),
            metadata: Some(retry_metadata(&rec.batch)),
            output_expires_after: rec
                .output_expires_seconds
                .map(|seconds| OutputExpiresAfter {
                    anchor: "created_at".into(),
                    seconds,
                }),
        };
        match self.insert_new(&input, &file, req, rec.owner.clone()).await {
            Ok(batch) => {
                tracing::info!(batch = %batch.id, retry_of = %rec.batch.id, "retry batch created");
                Ok(batch)
            }
            Err(e) => {
                // No batch reads the new file: it must not linger.
                if let Err(del) = self.shared.gw.store.delete_file(&file.key).await {
                    tracing::warn!(error = %del, "could not remove a retry's unused input file");
                }
                files.discard(&file).await;
                Err(e)
            }
        }
    }

    /// Streams the selected input lines into a new (uncommitted) input
    /// file; "nothing to retry" when none is selected.
    async fn write_selection(
        &self,
        rec: &BatchRecord,
        b: &ObjectRef,
        sources: Sources,
        all: bool,
    ) -> Result<FileRecord, ApiError> {
        let (body, picking) = pick_lines(sources, all);
        let name = format!("{}_retry.jsonl", rec.batch.id);
        let files = &self.shared.files;
        let written = files
            .write_input(&b.deployment, rec.owner.clone(), &name, body)
            .await;
        let picked = picking.await.unwrap_or_else(|e| {
            tracing::error!(error = %e, "retry line selection panicked");
            Err(ApiError::internal("could not select the lines to retry"))
        });
        match (written, picked) {
            (Ok(file), Ok(p)) if p.lines > 0 => Ok(file),
            (Ok(file), Ok(p)) => {
                files.discard(&file).await;
                Err(nothing_to_retry(&rec.batch.id, p.refused))
            }
            (Ok(file), Err(e)) => {
                files.discard(&file).await;
                Err(e)
            }
            // A failed read also fails the write: the reading side says why.
            (Err(_), Err(e)) | (Err(e), Ok(_)) => Err(e),
        }
    }
}

/// What refuses a retry before anything is read: a forwarded batch (its
/// lines ran on the upstream's own batch API), one not ended, a model the
/// key may not use.
fn check_retryable(ctx: &RequestCtx, rec: &BatchRecord) -> Result<(), ApiError> {
    let id = &rec.batch.id;
    if rec.upstream_id.is_some() {
        return Err(ApiError::invalid_request(format!(
            "Batch '{id}' ran on the upstream's own batch API, so the gateway cannot retry its lines: download its error file and submit those lines in a new batch."
        ))
        .with_code("retry_not_supported"));
    }
    let status = rec.batch.status;
    if !status.is_terminal() {
        return Err(ApiError::conflict(format!(
            "Cannot retry batch '{id}' with status '{}': only an ended batch (completed, failed, expired or cancelled) can be retried.",
            status.as_str()
        )));
    }
    let model = rec.batch.model.as_deref().unwrap_or_default();
    if !ctx.caller.may_use(model) {
        return Err(ApiError::forbidden(format!(
            "This key may not use model '{model}'. Allowed: {}.",
            ctx.caller.models.join(", ")
        ))
        .with_code("model_not_allowed"));
    }
    Ok(())
}

/// The caller whose budget a retry spends: the original batch's owner.
fn payer(owner: &Owner) -> Caller {
    Caller {
        key_id: owner.key_id.clone(),
        team_id: owner.team_id.clone(),
        is_master: owner.key_id.is_none() && owner.team_id.is_none(),
        models: Vec::new(),
    }
}

fn nothing_to_retry(id: &str, refused: u64) -> ApiError {
    let hint = if refused > 0 {
        format!(
            " {refused} failed line(s) were refused for the request itself; send {{\"all\": true}} to retry them too."
        )
    } else {
        String::new()
    };
    ApiError::invalid_request(format!("Batch '{id}' has no failed lines to retry.{hint}"))
        .with_code("nothing_to_retry")
}

/// The original's metadata (at most 15 of its pairs, so the link fits the
/// limit of 16) plus `retry_of`: the batch this one retries.
fn retry_metadata(batch: &Batch) -> BTreeMap<String, String> {
    let keep = CreateBatchRequest::MAX_METADATA_PAIRS - 1;
    let mut meta: BTreeMap<String, String> = batch
        .metadata
        .iter()
        .flatten()
        .filter(|(k, _)| k.as_str() != RETRY_OF)
        .take(keep)
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    meta.insert(RETRY_OF.into(), batch.id.clone());
    meta
}

/// The files a retry reads.
struct Sources {
    input: ByteStream,
    errors: Option<ByteStream>,
    /// For a cancelled batch, whose lines may have no result at all: the
    /// lines that succeeded (an empty stream when none did). `None` for a
    /// batch that ran to its end, where every line has a result.
    outputs: Option<ByteStream>,
}

impl Sources {
    async fn open(shared: &Shared, rec: &BatchRecord) -> Result<Sources, ApiError> {
        let now = shared.gw.now();
        let gone = |what: &str| {
            ApiError::invalid_request(format!(
                "The {what} of batch '{}' no longer exists (deleted or expired), so its lines cannot be retried.",
                rec.batch.id
            ))
            .with_code("file_not_found")
        };
        let input = stream_of(shared, &rec.input_key, now)
            .await?
            .ok_or_else(|| gone("input file"))?;
        let result = |id: &Option<String>, what: &'static str| {
            let id = id.clone();
            async move {
                let Some(id) = id else { return Ok(None) };
                let key = shared.gw.route(Kind::File, &id)?.local_key;
                stream_of(shared, &key, now)
                    .await?
                    .map(Some)
                    .ok_or_else(|| gone(what))
            }
        };
        let errors = result(&rec.batch.error_file_id, "error file").await?;
        let outputs = if rec.batch.status == BatchStatus::Cancelled {
            let out = result(&rec.batch.output_file_id, "output file").await?;
            Some(out.unwrap_or_else(|| futures::stream::empty().boxed()))
        } else {
            None
        };
        Ok(Sources {
            input,
            errors,
            outputs,
        })
    }
}

/// The bytes of the file stored under `key`, unless it is gone or expired.
async fn stream_of(shared: &Shared, key: &str, now: i64) -> Result<Option<ByteStream>, ApiError> {
    let Some(path) = shared
        .gw
        .store
        .get_file(key, now)
        .await?
        .and_then(|f| f.blob_path)
    else {
        return Ok(None);
    };
    Ok(Some(shared.gw.blobs.get_stream(&path).await?.1))
}

/// How the selection went.
#[derive(Debug, Default, Clone, Copy)]
struct Picked {
    /// Input lines selected.
    lines: u64,
    /// Failed lines left out because the request itself was refused.
    refused: u64,
}

/// The selected input lines as a stream, filled by a task whose result
/// says how many were selected (or why reading failed; the stream then
/// ends in an error so that the half-written file is not kept).
fn pick_lines(
    sources: Sources,
    all: bool,
) -> (
    ByteStream,
    tokio::task::JoinHandle<Result<Picked, ApiError>>,
) {
    let (tx, rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(2);
    let task = tokio::spawn(async move {
        let result = Picker::new(sources, all).run(&tx).await;
        if let Err(e) = &result {
            let _ = tx
                .send(Err(std::io::Error::other(e.body.message.clone())))
                .await;
        }
        result
    });
    let body = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    })
    .boxed();
    (body, task)
}

/// The first keys of a result line: enough to match it to its input line
/// and to say why it failed.
#[derive(Debug, Deserialize)]
struct ResultHead {
    #[serde(default)]
    custom_id: Option<String>,
    #[serde(default)]
    response: Option<ResponseHead>,
    #[serde(default)]
    error: Option<ErrorHead>,
}

#[derive(Debug, Deserialize)]
struct ResponseHead {
    status_code: u16,
}

#[derive(Debug, Deserialize)]
struct ErrorHead {
    #[serde(default)]
    code: Option<String>,
}

impl ResultHead {
    /// Whether the line failed for a reason other than the request itself:
    /// an upstream answer the engine would retry (408, 409, 429, 5xx), or
    /// no answer for one of [`NOT_THE_REQUEST`].
    fn not_the_request(&self) -> bool {
        match (&self.response, &self.error) {
            (Some(r), _) => retryable_status(r.status_code),
            (None, Some(e)) => e
                .code
                .as_deref()
                .is_some_and(|c| NOT_THE_REQUEST.contains(&c)),
            (None, None) => false,
        }
    }
}

/// A result file read one line ahead.
struct Results {
    reader: Option<LineReader>,
    next: Option<ResultHead>,
    what: &'static str,
}

impl Results {
    fn new(stream: Option<ByteStream>, what: &'static str) -> Results {
        Results {
            reader: stream.map(|s| LineReader::new(s, MAX_LINE_BYTES)),
            next: None,
            what,
        }
    }

    async fn peek(&mut self) -> Result<Option<&ResultHead>, ApiError> {
        if self.next.is_none() {
            if let Some(reader) = &mut self.reader {
                while let Some(line) = read(reader, self.what).await? {
                    if is_blank(&line) {
                        continue;
                    }
                    let head = serde_json::from_slice(&line.bytes).map_err(|_| {
                        tracing::error!(file = self.what, line = line.number, "not a result line");
                        ApiError::internal(format!(
                            "Line {} of the batch's {} is not a result line.",
                            line.number, self.what
                        ))
                    })?;
                    self.next = Some(head);
                    break;
                }
            }
        }
        Ok(self.next.as_ref())
    }

    /// The next result line, if it is that of `custom_id`.
    async fn take_if(
        &mut self,
        custom_id: &Option<String>,
    ) -> Result<Option<ResultHead>, ApiError> {
        let matches = self
            .peek()
            .await?
            .is_some_and(|h| &h.custom_id == custom_id);
        Ok(if matches { self.next.take() } else { None })
    }
}

async fn read(reader: &mut LineReader, what: &str) -> Result<Option<RawLine>, ApiError> {
    reader.next_line().await.map_err(|e| {
        tracing::error!(error = %e, file = what, "cannot read a file to retry");
        ApiError::internal(format!("Could not read the batch's {what}."))
    })
}

/// The merge of input and result files.
struct Picker {
    input: LineReader,
    errors: Results,
    outputs: Option<Results>,
    all: bool,
    buf: BytesMut,
    picked: Picked,
}

impl Picker {
    fn new(s: Sources, all: bool) -> Picker {
        Picker {
            input: LineReader::new(s.input, MAX_LINE_BYTES),
            errors: Results::new(s.errors, "error file"),
            outputs: s.outputs.map(|o| Results::new(Some(o), "output file")),
            all,
            buf: BytesMut::new(),
            picked: Picked::default(),
        }
    }

    /// Sends the selected lines to `tx`; stops early (without error) if
    /// the writer went away, which then reports its own failure.
    async fn run(
        mut self,
        tx: &mpsc::Sender<Result<Bytes, std::io::Error>>,
    ) -> Result<Picked, ApiError> {
        while let Some(line) = read(&mut self.input, "input file").await? {
            if is_blank(&line) {
                continue;
            }
            if !self.selects(&custom_id_of(&line.bytes)).await? {
                continue;
            }
            self.buf.extend_from_slice(&line.bytes);
            self.buf.extend_from_slice(b"\n");
            self.picked.lines += 1;
            if self.buf.len() >= CHUNK && tx.send(Ok(self.buf.split().freeze())).await.is_err() {
                return Ok(self.picked);
            }
        }
        // Every result line must have matched an input line: anything left
        // means the files disagree, and a selection from them would be wrong.
        if self.errors.peek().await?.is_some() {
            tracing::error!("the error file has lines that match no input line in order");
            return Err(ApiError::internal(
                "The batch's error file does not match its input file.",
            ));
        }
        if !self.buf.is_empty() {
            let _ = tx.send(Ok(self.buf.split().freeze())).await;
        }
        Ok(self.picked)
    }

    /// Whether the input line of `custom_id` is retried.
    async fn selects(&mut self, custom_id: &Option<String>) -> Result<bool, ApiError> {
        if let Some(head) = self.errors.take_if(custom_id).await? {
            let retried = self.all || head.not_the_request();
            if !retried {
                self.picked.refused += 1;
            }
            return Ok(retried);
        }
        match &mut self.outputs {
            // A batch that ran to its end has a result for every line: one
            // not in the error file succeeded.
            None => Ok(false),
            // A cancelled batch: a line with no result at all never ran.
            Some(out) => Ok(out.take_if(custom_id).await?.is_none()),
        }
    }
}
