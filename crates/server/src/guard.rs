//! What a caller may do: models (a key's allow-list). Budgets are
//! [`batchgate_engine::Accounts::check_budget`]'s.

use batchgate_core::{ApiError, Caller};

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
