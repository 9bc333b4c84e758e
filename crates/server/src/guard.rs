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
    let store = gw.store.as_ref();
    // A period that ended since the last sweep ends now, before the check.
    store.reset_budgets(gw.now()).await?;
    if let Some(key_id) = &caller.key_id {
        if let Some(key) = store.key_by_id(key_id).await? {
            if let Some(max) = key.max_budget {
                if key.spend >= max {
                    return Err(exceeded(&format!("key {key_id}"), key.spend, max));
                }
            }
        }
    }
    if let Some(team_id) = &caller.team_id {
        if let Some(team) = store.team(team_id).await? {
            if let Some(max) = team.max_budget {
                if team.spend >= max {
                    return Err(exceeded(&format!("team {team_id}"), team.spend, max));
                }
            }
        }
    }
    Ok(())
}

fn exceeded(who: &str, spend: rust_decimal::Decimal, max: rust_decimal::Decimal) -> ApiError {
    ApiError::invalid_request(format!(
        "Budget has been exceeded for {who}: spend {spend} ≥ max_budget {max}."
    ))
    .with_code("budget_exceeded")
}
