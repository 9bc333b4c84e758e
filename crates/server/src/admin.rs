//! Key and team management, LiteLLM's routes: `/key/generate`,
//! `/key/update`, `/key/delete`, `/key/info`, `/team/new`, `/team/update`,
//! `/team/info`. Master key only.

use axum::extract::State;
use axum::Json;
use batchgate_config::window_seconds;
use batchgate_core::ApiError;
use batchgate_engine::Gateway;
use batchgate_store::{KeyRecord, TeamRecord};
use rand::RngCore;
use rust_decimal::Decimal;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::auth::{key_hash, Auth};
use crate::error::HttpResult;
use crate::extract::{ApiJson, ApiQuery, Ctx};

#[derive(Clone, Debug)]
pub struct AdminState {
    pub gw: Gateway,
    pub auth: Auth,
}

pub(crate) fn master_only(ctx: &batchgate_core::RequestCtx) -> Result<(), ApiError> {
    if ctx.caller.is_master {
        Ok(())
    } else {
        Err(
            ApiError::forbidden("Only the master key may manage keys, teams and spend.")
                .with_code("admin_only"),
        )
    }
}

/// Fields settable on a key (all optional on update).
#[derive(Debug, Default, Deserialize)]
pub struct KeyFields {
    key: Option<String>,
    key_alias: Option<String>,
    team_id: Option<String>,
    models: Option<Vec<String>>,
    max_budget: Option<Value>,
    budget_duration: Option<String>,
    metadata: Option<Value>,
}

fn budget_seconds(duration: &Option<String>) -> Result<Option<i64>, ApiError> {
    duration
        .as_deref()
        .map(|d| {
            window_seconds(d)
                .and_then(|s| i64::try_from(s).ok())
                .ok_or_else(|| {
                    ApiError::invalid_request(format!(
                        "budget_duration '{d}' is not like 30s, 30m, 24h or 30d."
                    ))
                    .with_param("budget_duration")
                })
        })
        .transpose()
}

/// `max_budget` as an exact, non-negative decimal (`null` means none).
fn budget_value(v: &Option<Value>) -> Result<Option<Decimal>, ApiError> {
    let bad =
        |m: String| ApiError::invalid_request(format!("max_budget: {m}")).with_param("max_budget");
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(v) => {
            let d = batchgate_cost::decimal_of(v).map_err(bad)?;
            if d.is_sign_negative() {
                return Err(bad("must not be negative".into()));
            }
            Ok(Some(d))
        }
    }
}

fn key_json(k: &KeyRecord, key: Option<&str>) -> Value {
    let mut v = serde_json::to_value(k).unwrap_or_default();
    v["token"] = json!(k.key_id);
    if let Some(key) = key {
        v["key"] = json!(key);
    }
    v
}

pub async fn generate(
    State(st): State<AdminState>,
    Ctx(ctx): Ctx,
    ApiJson(f): ApiJson<KeyFields>,
) -> HttpResult<Json<Value>> {
    master_only(&ctx)?;
    let max_budget = budget_value(&f.max_budget)?;
    let seconds = budget_seconds(&f.budget_duration)?;
    let now = st.gw.now();
    let key = match f.key {
        Some(k) if k.len() >= 8 => k,
        Some(_) => {
            return Err(
                ApiError::invalid_request("A custom key must be at least 8 characters.")
                    .with_param("key")
                    .into(),
            )
        }
        None => format!("sk-{}", hex(24)),
    };
    let record = KeyRecord {
        key_id: format!("key_{}", hex(12)),
        key_hash: key_hash(&key),
        key_alias: f.key_alias,
        team_id: f.team_id,
        models: f.models.unwrap_or_default(),
        max_budget,
        budget_duration: f.budget_duration,
        budget_seconds: seconds,
        budget_reset_at: seconds.map(|s| now + s),
        spend: Decimal::ZERO,
        metadata: f.metadata.unwrap_or_else(|| json!({})),
        created_at: now,
    };
    st.gw.store.insert_key(&record).await.map_err(|e| {
        tracing::warn!(error = %e, "cannot store key");
        ApiError::conflict("That key already exists.")
    })?;
    Ok(Json(key_json(&record, Some(&key))))
}

/// A key named by its value or its `key_…` id.
async fn find_key(st: &AdminState, key: &str) -> Result<KeyRecord, ApiError> {
    let found = if key.starts_with("key_") {
        st.gw.store.key_by_id(key).await?
    } else {
        st.gw.store.key_by_hash(&key_hash(key)).await?
    };
    found.ok_or_else(|| ApiError::not_found("key", "(redacted)"))
}

pub async fn update(
    State(st): State<AdminState>,
    Ctx(ctx): Ctx,
    ApiJson(f): ApiJson<KeyFields>,
) -> HttpResult<Json<Value>> {
    master_only(&ctx)?;
    let name = f
        .key
        .clone()
        .ok_or_else(|| ApiError::invalid_request("Missing 'key'.").with_param("key"))?;
    let mut k = find_key(&st, &name).await?;
    let max_budget = budget_value(&f.max_budget)?;
    if f.key_alias.is_some() {
        k.key_alias = f.key_alias;
    }
    if f.team_id.is_some() {
        k.team_id = f.team_id;
    }
    if let Some(m) = f.models {
        k.models = m;
    }
    if f.max_budget.is_some() {
        k.max_budget = max_budget;
    }
    if f.budget_duration.is_some() {
        k.budget_seconds = budget_seconds(&f.budget_duration)?;
        k.budget_reset_at = k.budget_seconds.map(|s| st.gw.now() + s);
        k.budget_duration = f.budget_duration;
    }
    if let Some(m) = f.metadata {
        k.metadata = m;
    }
    st.gw.store.update_key(&k).await?;
    st.auth.invalidate();
    Ok(Json(key_json(&k, None)))
}

#[derive(Debug, Deserialize)]
pub struct DeleteKeys {
    keys: Vec<String>,
}

pub async fn delete(
    State(st): State<AdminState>,
    Ctx(ctx): Ctx,
    ApiJson(d): ApiJson<DeleteKeys>,
) -> HttpResult<Json<Value>> {
    master_only(&ctx)?;
    let mut deleted = Vec::new();
    for name in &d.keys {
        let k = find_key(&st, name).await?;
        if st.gw.store.delete_key(&k.key_id).await? {
            deleted.push(k.key_id);
        }
    }
    st.auth.invalidate();
    Ok(Json(json!({ "deleted_keys": deleted })))
}

#[derive(Debug, Deserialize)]
pub struct KeyQuery {
    key: Option<String>,
}

pub async fn info(
    State(st): State<AdminState>,
    Ctx(ctx): Ctx,
    ApiQuery(q): ApiQuery<KeyQuery>,
) -> HttpResult<Json<Value>> {
    // A key may read its own info; the master key may read any.
    let k = match (q.key, &ctx.caller.key_id) {
        (Some(name), _) => {
            let k = find_key(&st, &name).await?;
            if !ctx.caller.is_master && ctx.caller.key_id.as_deref() != Some(k.key_id.as_str()) {
                return Err(ApiError::forbidden("A key may only read its own info.").into());
            }
            k
        }
        (None, Some(own)) => find_key(&st, own).await?,
        (None, None) => {
            return Err(ApiError::invalid_request("Missing 'key'.")
                .with_param("key")
                .into())
        }
    };
    Ok(Json(json!({ "key": k.key_id, "info": key_json(&k, None) })))
}

#[derive(Debug, Default, Deserialize)]
pub struct TeamFields {
    team_id: Option<String>,
    team_alias: Option<String>,
    max_budget: Option<Value>,
    budget_duration: Option<String>,
}

pub async fn team_upsert(
    State(st): State<AdminState>,
    Ctx(ctx): Ctx,
    ApiJson(f): ApiJson<TeamFields>,
) -> HttpResult<Json<TeamRecord>> {
    master_only(&ctx)?;
    let max_budget = budget_value(&f.max_budget)?;
    let seconds = budget_seconds(&f.budget_duration)?;
    let now = st.gw.now();
    let team_id = f.team_id.unwrap_or_else(|| format!("team_{}", hex(8)));
    let existing = st.gw.store.team(&team_id).await?;
    let team = TeamRecord {
        team_alias: f
            .team_alias
            .or(existing.as_ref().and_then(|t| t.team_alias.clone())),
        max_budget: max_budget.or(existing.as_ref().and_then(|t| t.max_budget)),
        budget_seconds: seconds.or(existing.as_ref().and_then(|t| t.budget_seconds)),
        budget_reset_at: seconds
            .map(|s| now + s)
            .or(existing.as_ref().and_then(|t| t.budget_reset_at)),
        budget_duration: f
            .budget_duration
            .or(existing.as_ref().and_then(|t| t.budget_duration.clone())),
        spend: existing.as_ref().map_or(Decimal::ZERO, |t| t.spend),
        created_at: existing.as_ref().map_or(now, |t| t.created_at),
        team_id,
    };
    st.gw.store.upsert_team(&team).await?;
    Ok(Json(team))
}

#[derive(Debug, Deserialize)]
pub struct TeamQuery {
    team_id: String,
}

pub async fn team_info(
    State(st): State<AdminState>,
    Ctx(ctx): Ctx,
    ApiQuery(q): ApiQuery<TeamQuery>,
) -> HttpResult<Json<Value>> {
    if !ctx.caller.is_master && ctx.caller.team_id.as_deref() != Some(q.team_id.as_str()) {
        return Err(ApiError::forbidden("A key may only read its own team.").into());
    }
    let team = st
        .gw
        .store
        .team(&q.team_id)
        .await?
        .ok_or_else(|| ApiError::not_found("team", &q.team_id))?;
    Ok(Json(json!({ "team_id": team.team_id, "team_info": team })))
}

fn hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::thread_rng().fill_bytes(&mut buf);
    buf.iter().map(|b| format!("{b:02x}")).collect()
}
