//! Drives one batch through its lifecycle, resuming from whatever state the
//! store holds: `validating`, `in_progress`, `finalizing` or `cancelling`.

use std::sync::Arc;

use batchgate_core::{ApiError, BatchError, BatchErrors, BatchStatus};
use batchgate_store::{BatchRecord, Lease, Transition};
use tokio_util::sync::CancellationToken;
use tracing::field::Empty;
use tracing::{Instrument, Span};

use super::coordinate::{record, settle_chunks, watch};
use super::finalize::finalize;
use super::plan::Planner;
use super::shared::{Shared, MAX_LINE_BYTES};
use crate::{validate_stream_with, Outcome, Rules};

use BatchStatus::*;

/// The span of one phase: `batch.id`, the public model as
/// `gen_ai.request.model`, and `batchgate.outcome` once it ends.
macro_rules! phase_span {
    ($name:literal, $rec:expr) => {
        tracing::info_span!(
            $name,
            batch.id = $rec.batch.id.as_str(),
            gen_ai.request.model = $rec.batch.model.as_deref(),
            batchgate.outcome = Empty,
            otel.status_code = Empty,
            error.type = Empty,
        )
    };
}

/// Runs the leased batch until it ends, `stop` fires (lease lost) or the
/// engine shuts down. Every status move and journal write is fenced by
/// `lease`.
pub async fn run(
    shared: Arc<Shared>,
    lease: &Lease,
    stop: CancellationToken,
) -> Result<(), ApiError> {
    loop {
        if stop.is_cancelled() || shared.shutdown.is_cancelled() {
            return Ok(());
        }
        let Some(rec) = shared.gw.store.get_batch(&lease.key).await? else {
            return Ok(());
        };
        match rec.batch.status {
            Validating => {
                let span = phase_span!("batch.validate", rec);
                let r = validate(&shared, &rec, lease)
                    .instrument(span.clone())
                    .await;
                end_phase(&span, r)?;
            }
            InProgress => {
                let span = phase_span!("batch.execute", rec);
                let r = in_progress(&shared, &rec, lease, &stop)
                    .instrument(span.clone())
                    .await;
                end_phase(&span, r)?;
            }
            Finalizing => finalize_phase(&shared, &rec, lease, &[Finalizing], Completed).await?,
            Cancelling => finalize_phase(&shared, &rec, lease, &[Cancelling], Cancelled).await?,
            Completed | Failed | Expired | Cancelled => return Ok(()),
        }
    }
}

/// Marks a phase that failed with an error on its span.
fn end_phase(span: &Span, r: Result<(), ApiError>) -> Result<(), ApiError> {
    if let Err(e) = &r {
        span.record("batchgate.outcome", "error");
        span.record("otel.status_code", "error");
        span.record("error.type", e.body.kind.as_str());
    }
    r
}

/// The `in_progress` phase: chunks run on every instance; this runner
/// (the batch's lease holder) watches for the end and moves the batch on.
async fn in_progress(
    shared: &Arc<Shared>,
    rec: &BatchRecord,
    lease: &Lease,
    stop: &CancellationToken,
) -> Result<(), ApiError> {
    let watched = watch(shared, rec, lease, stop).await?;
    record(watched);
    Ok(())
}

/// [`finalize`] in a `batch.finalize` span, once no chunk runner can
/// journal another line.
pub(super) async fn finalize_phase(
    shared: &Shared,
    rec: &BatchRecord,
    lease: &Lease,
    from: &[BatchStatus],
    to: BatchStatus,
) -> Result<(), ApiError> {
    let span = phase_span!("batch.finalize", rec);
    let r = async {
        settle_chunks(shared, lease).await?;
        finalize(shared, rec, lease, from, to).await
    }
    .instrument(span.clone())
    .await;
    end_phase(&span, r)
}

/// Reads the whole input once, checking every line; the batch moves to
/// `in_progress` (with its total) or `failed` (with every error found).
async fn validate(shared: &Shared, rec: &BatchRecord, lease: &Lease) -> Result<(), ApiError> {
    let store = &shared.gw.store;
    let now = || shared.gw.now();
    let fail = |errors: Vec<BatchError>| {
        Transition::new(&[Validating], Failed, now())
            .with_errors(BatchErrors::new(errors))
            .fenced(lease)
    };
    let Some(deployment) = shared.deployment_of(rec) else {
        let e = error(
            "model_not_found",
            "The deployment this batch was created for is no longer configured.",
            None,
        );
        Span::current().record("batchgate.outcome", e.code.as_str());
        store.transition(&rec.key, &fail(vec![e])).await?;
        return Ok(());
    };
    let Some(stream) = shared.input_stream(rec).await? else {
        let e = error(
            "input_file_missing",
            "The input file was deleted before the batch could run.",
            None,
        );
        Span::current().record("batchgate.outcome", e.code.as_str());
        store.transition(&rec.key, &fail(vec![e])).await?;
        return Ok(());
    };
    let settings = &shared.gw.batch;
    let rules = Rules {
        endpoint: rec.batch.endpoint.clone(),
        accepted_models: vec![
            deployment.model_name.clone(),
            deployment.served_model.clone(),
        ],
        max_lines: settings.max_lines,
        max_bytes: settings.max_input_bytes(),
        max_reported_errors: settings.max_reported_errors,
    };
    let mut planner = Planner::new(settings.chunk_lines);
    let seen = |line: &crate::RawLine| planner.see(line);
    let outcome = match validate_stream_with(stream, rules, MAX_LINE_BYTES, seen).await {
        Ok(outcome) => outcome,
        Err(e) => {
            tracing::error!(batch = %rec.batch.id, error = %e, "cannot read the input file");
            return Err(ApiError::internal("could not read the input file"));
        }
    };
    let t = match outcome {
        Outcome::Valid { lines } => {
            Span::current().record("batchgate.outcome", "valid");
            // Planned before the batch runs, so a running batch always has
            // its chunks (a crash in between re-validates and plans again).
            store.plan_chunks(lease, &planner.finish()).await?;
            Transition::new(&[Validating], InProgress, now())
                .with_total(lines)
                .fenced(lease)
        }
        Outcome::Invalid {
            errors,
            total_errors,
        } => {
            Span::current().record("batchgate.outcome", "invalid");
            tracing::info!(batch = %rec.batch.id, total_errors, "batch input is invalid");
            fail(errors)
        }
    };
    store.transition(&rec.key, &t).await?;
    Ok(())
}

fn error(code: &str, message: &str, line: Option<u64>) -> BatchError {
    BatchError {
        code: code.into(),
        message: message.into(),
        param: None,
        line,
    }
}
