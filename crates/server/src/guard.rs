//! What a caller may do: models (a key's allow-list) and budgets.

use batchgate_core::{ApiError, Caller};
use batchgate_engine::Gateway;

/// 403 unless the caller's key may use `model_name`.
pub fn check_model(caller: &Caller, model_name: &str) -> Result<(), ApiError> {
    if caller.may_use(model_name) {
        Ok(())
    } else {
        Err(ApiError::forbidden(format!(
            "This key may not use model '{model_name}'. Allowed: {}.",
            caller.models.join(", ")
        ))
        .with_code("model_not_allowed"))
    }
}

/// 400 `budget_exceeded` when the caller's key or team has spent its
/// budget: no new batch files or batches until the period resets.
pub async fn check_budget(gw: &Gateway, caller: &Caller) -> Result<(), ApiError> {
    if caller.is_master {
        return Ok(());
    }
    // A period that ended since the last sweep ends now, before the check.
    gw.store.reset_budgets(gw.now()).await?;
    let (key, team) = (caller.key_id.as_deref(), caller.team_id.as_deref());
    match gw.overspent(key, team).await? {
        Some(o) => Err(exceeded(&o.who, o.spend, o.max)),
        None => Ok(()),
    }
}

fn exceeded(who: &str, spend: rust_decimal::Decimal, max: rust_decimal::Decimal) -> ApiError {
    ApiError::invalid_request(format!(
        "Budget has been exceeded for {who}: spend {spend} ≥ max_budget {max}."
    ))
    .with_code("budget_exceeded")
}
