//! Drives one batch through its lifecycle, resuming from whatever state the
//! store holds: `validating`, `in_progress`, `finalizing` or `cancelling`.

use std::sync::Arc;

use batchgate_core::{ApiError, BatchError, BatchErrors, BatchStatus};
use batchgate_store::{BatchRecord, Transition};
use tokio_util::sync::CancellationToken;

use super::execute::{execute, Ending};
use super::finalize::{fill_unfinished, finalize};
use super::shared::{Shared, MAX_LINE_BYTES};
use super::upstream::{budget_line, expired_line};
use crate::{validate_stream, Outcome, Rules};

use BatchStatus::*;

/// Runs `key` until it ends or `stop` fires (lease lost, shutdown).
pub async fn run(
    shared: Arc<Shared>,
    key: String,
    stop: CancellationToken,
) -> Result<(), ApiError> {
    loop {
        if stop.is_cancelled() {
            return Ok(());
        }
        let Some(rec) = shared.gw.store.get_batch(&key).await? else {
            return Ok(());
        };
        match rec.batch.status {
            Validating => validate(&shared, &rec).await?,
            InProgress => match execute(&shared, &rec, &stop).await? {
                Ending::Done => {
                    let t = Transition::new(&[InProgress], Finalizing, shared.gw.now());
                    shared.gw.store.transition(&key, &t).await?;
                }
                Ending::Expired => {
                    fill_unfinished(&shared, &rec, expired_line).await?;
                    finalize(&shared, &rec, &[InProgress], Expired).await?;
                }
                // Re-read: the status says what happens next.
                // Every line gets a result; those never sent say why.
                Ending::BudgetExceeded => {
                    fill_unfinished(&shared, &rec, budget_line).await?;
                    let t = Transition::new(&[InProgress], Finalizing, shared.gw.now());
                    shared.gw.store.transition(&key, &t).await?;
                }
                Ending::Cancelled | Ending::Stopped => {}
            },
            Finalizing => finalize(&shared, &rec, &[Finalizing], Completed).await?,
            Cancelling => finalize(&shared, &rec, &[Cancelling], Cancelled).await?,
            Completed | Failed | Expired | Cancelled => return Ok(()),
        }
    }
}

/// Reads the whole input once, checking every line; the batch moves to
/// `in_progress` (with its total) or `failed` (with every error found).
async fn validate(shared: &Shared, rec: &BatchRecord) -> Result<(), ApiError> {
    let store = &shared.gw.store;
    let now = || shared.gw.now();
    let fail = |errors: Vec<BatchError>| {
        Transition::new(&[Validating], Failed, now()).with_errors(BatchErrors::new(errors))
    };
    let Some(deployment) = shared.deployment_of(rec) else {
        let e = error(
            "model_not_found",
            "The deployment this batch was created for is no longer configured.",
            None,
        );
        store.transition(&rec.key, &fail(vec![e])).await?;
        return Ok(());
    };
    let Some(stream) = shared.input_stream(rec).await? else {
        let e = error(
            "input_file_missing",
            "The input file was deleted before the batch could run.",
            None,
        );
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
    let outcome = match validate_stream(stream, rules, MAX_LINE_BYTES).await {
        Ok(outcome) => outcome,
        Err(e) => {
            tracing::error!(batch = %rec.batch.id, error = %e, "cannot read the input file");
            return Err(ApiError::internal("could not read the input file"));
        }
    };
    let t = match outcome {
        Outcome::Valid { lines } => {
            Transition::new(&[Validating], InProgress, now()).with_total(lines)
        }
        Outcome::Invalid {
            errors,
            total_errors,
        } => {
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
