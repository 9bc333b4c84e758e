//! Key and team management, LiteLLM's routes: `/key/generate`,
//! `/key/update`, `/key/delete`, `/key/info`, `/team/new`, `/team/update`,
//! `/team/info`. Master key only.

use axum::extract::State;
use axum::Json;
use batchgate_core::ApiError;
use batchgate_engine::Accounts;
use batchgate_store::{KeyRecord, TeamRecord};
use rand::RngCore;
use rust_decimal::Decimal;
use serde::Deserialize;
use serde_json::{json, Value};

mod input;

use self::input::{KeyInput, TeamInput};
use crate::auth::{key_hash, Auth};
use crate::error::HttpResult;
use crate::extract::{ApiJson, ApiQuery, Ctx};

#[derive(Clone, Debug)]
pub struct AdminState {
    pub accounts: Accounts,
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
    ApiJson(body): ApiJson<Value>,
) -> HttpResult<Json<Value>> {
    master_only(&ctx)?;
    let f = KeyInput::parse(body)?;
    let key = f.custom_key()?.unwrap_or_else(|| format!("sk-{}", hex(24)));
    let now = st.accounts.now();
    let record = KeyRecord {
        key_id: format!("key_{}", hex(12)),
        key_hash: key_hash(&key),
        key_alias: f.key_alias,
        team_id: f.team_id,
        models: f.models.unwrap_or_default(),
        max_budget: f.max_budget,
        budget_reset_at: f.budget.as_ref().map(|p| now.saturating_add(p.seconds)),
        budget_seconds: f.budget.as_ref().map(|p| p.seconds),
        budget_duration: f.budget.map(|p| p.duration),
        spend: Decimal::ZERO,
        metadata: f.metadata.unwrap_or_else(|| json!({})),
        created_at: now,
        blocked: f.blocked.unwrap_or(false),
    };
    st.accounts.keys().insert_key(&record).await.map_err(|e| {
        tracing::warn!(error = %e, "cannot store key");
        ApiError::conflict("That key already exists.")
    })?;
    Ok(Json(key_json(&record, Some(&key))))
}

/// A key named by its value or its `key_…` id.
async fn find_key(st: &AdminState, key: &str) -> Result<KeyRecord, ApiError> {
    let found = if key.starts_with("key_") {
        st.accounts.keys().key_by_id(key).await?
    } else {
        st.accounts.keys().key_by_hash(&key_hash(key)).await?
    };
    found.ok_or_else(|| ApiError::not_found("key", "(redacted)"))
}

pub async fn update(
    State(st): State<AdminState>,
    Ctx(ctx): Ctx,
    ApiJson(body): ApiJson<Value>,
) -> HttpResult<Json<Value>> {
    master_only(&ctx)?;
    // Every field is checked before the key is looked up or changed.
    let f = KeyInput::parse(body)?;
    let name = f
        .key
        .clone()
        .ok_or_else(|| ApiError::invalid_request("Missing 'key'.").with_param("key"))?;
    let mut k = find_key(&st, &name).await?;
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
        k.max_budget = f.max_budget;
    }
    if let Some(p) = f.budget {
        k.budget_reset_at = Some(st.accounts.now().saturating_add(p.seconds));
        k.budget_seconds = Some(p.seconds);
        k.budget_duration = Some(p.duration);
    }
    if let Some(m) = f.metadata {
        k.metadata = m;
    }
    if let Some(b) = f.blocked {
        k.blocked = b;
    }
    st.accounts.keys().update_key(&k).await?;
    st.auth.invalidate();
    Ok(Json(key_json(&k, None)))
}

/// `POST /key/block` (LiteLLM's): the key authenticates nothing until
/// unblocked; everything else about it stays.
pub async fn block(
    State(st): State<AdminState>,
    Ctx(ctx): Ctx,
    ApiJson(body): ApiJson<Value>,
) -> HttpResult<Json<Value>> {
    set_blocked(&st, &ctx, body, true).await
}

/// `POST /key/unblock` (LiteLLM's).
pub async fn unblock(
    State(st): State<AdminState>,
    Ctx(ctx): Ctx,
    ApiJson(body): ApiJson<Value>,
) -> HttpResult<Json<Value>> {
    set_blocked(&st, &ctx, body, false).await
}

async fn set_blocked(
    st: &AdminState,
    ctx: &batchgate_core::RequestCtx,
    body: Value,
    blocked: bool,
) -> HttpResult<Json<Value>> {
    master_only(ctx)?;
    let name = input::key_of(body)?;
    let mut k = find_key(st, &name).await?;
    k.blocked = blocked;
    st.accounts.keys().update_key(&k).await?;
    st.auth.invalidate();
    Ok(Json(key_json(&k, None)))
}

pub async fn delete(
    State(st): State<AdminState>,
    Ctx(ctx): Ctx,
    ApiJson(body): ApiJson<Value>,
) -> HttpResult<Json<Value>> {
    master_only(&ctx)?;
    let keys = input::delete_keys(body)?;
    let mut deleted = Vec::new();
    for name in &keys {
        let k = find_key(&st, name).await?;
        if st.accounts.keys().delete_key(&k.key_id).await? {
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

pub async fn team_upsert(
    State(st): State<AdminState>,
    Ctx(ctx): Ctx,
    ApiJson(body): ApiJson<Value>,
) -> HttpResult<Json<TeamRecord>> {
    master_only(&ctx)?;
    let f = TeamInput::parse(body)?;
    let now = st.accounts.now();
    let team_id = f.team_id.unwrap_or_else(|| format!("team_{}", hex(8)));
    let existing = st.accounts.keys().team(&team_id).await?;
    let kept = |get: fn(&TeamRecord) -> Option<i64>| existing.as_ref().and_then(get);
    let team = TeamRecord {
        team_alias: f
            .team_alias
            .or(existing.as_ref().and_then(|t| t.team_alias.clone())),
        max_budget: f
            .max_budget
            .or(existing.as_ref().and_then(|t| t.max_budget)),
        budget_seconds: f
            .budget
            .as_ref()
            .map(|p| p.seconds)
            .or(kept(|t| t.budget_seconds)),
        budget_reset_at: f
            .budget
            .as_ref()
            .map(|p| now.saturating_add(p.seconds))
            .or(kept(|t| t.budget_reset_at)),
        budget_duration: f
            .budget
            .map(|p| p.duration)
            .or(existing.as_ref().and_then(|t| t.budget_duration.clone())),
        spend: existing.as_ref().map_or(Decimal::ZERO, |t| t.spend),
        created_at: existing.as_ref().map_or(now, |t| t.created_at),
        team_id,
    };
    st.accounts.keys().upsert_team(&team).await?;
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
        .accounts
        .keys()
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
