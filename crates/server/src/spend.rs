//! The spend ledger over HTTP (master key): `GET /spend/logs` and
//! `GET /global/spend/report`, LiteLLM's names.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::Json;
use batchgate_core::ApiError;
use batchgate_store::{SpendFilter, SpendRow};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::admin::{master_only, AdminState};
use crate::auth::key_hash;
use crate::error::HttpResult;
use crate::extract::{ApiQuery, Ctx};

/// Rows scanned per request at most.
const MAX_ROWS: u32 = 1_000_000;

#[derive(Debug, Default, Deserialize)]
pub struct SpendParams {
    /// A key's value (hashed here, never stored) …
    api_key: Option<String>,
    /// … or its `key_…` id.
    key_id: Option<String>,
    team_id: Option<String>,
    model: Option<String>,
    batch_id: Option<String>,
    start_date: Option<String>,
    end_date: Option<String>,
    limit: Option<u32>,
    group_by: Option<String>,
}

async fn filter(st: &AdminState, p: &SpendParams) -> Result<SpendFilter, ApiError> {
    for (name, d) in [("start_date", &p.start_date), ("end_date", &p.end_date)] {
        if let Some(d) = d {
            let ok = d.len() == 10
                && d.chars().enumerate().all(|(i, c)| {
                    if i == 4 || i == 7 {
                        c == '-'
                    } else {
                        c.is_ascii_digit()
                    }
                });
            if !ok {
                return Err(ApiError::invalid_request(format!(
                    "{name} must be YYYY-MM-DD, got '{d}'."
                ))
                .with_param(name));
            }
        }
    }
    let key_id = match (&p.key_id, &p.api_key) {
        (Some(id), _) => Some(id.clone()),
        (None, Some(key)) => Some(
            st.accounts
                .keys()
                .key_by_hash(&key_hash(key))
                .await?
                .map(|k| k.key_id)
                .unwrap_or_else(|| "(unknown key)".into()),
        ),
        (None, None) => None,
    };
    Ok(SpendFilter {
        key_id,
        team_id: p.team_id.clone(),
        model: p.model.clone(),
        batch_id: p.batch_id.clone(),
        start_day: p.start_date.clone(),
        end_day: p.end_date.clone(),
    })
}

pub async fn logs(
    State(st): State<AdminState>,
    Ctx(ctx): Ctx,
    ApiQuery(p): ApiQuery<SpendParams>,
) -> HttpResult<Json<Vec<SpendRow>>> {
    master_only(&ctx)?;
    let f = filter(&st, &p).await?;
    let limit = p.limit.unwrap_or(10_000).clamp(1, MAX_ROWS);
    Ok(Json(st.accounts.spend().spend_logs(&f, limit).await?))
}

/// One group of the report.
#[derive(Debug, Default, Serialize)]
pub struct SpendGroup {
    pub group_by: String,
    pub key: Option<String>,
    #[serde(with = "rust_decimal::serde::str")]
    pub spend: Decimal,
    pub lines: u64,
    pub input_tokens: u64,
    pub cached_tokens: u64,
    pub output_tokens: u64,
    pub unpriced_lines: u64,
}

pub async fn report(
    State(st): State<AdminState>,
    Ctx(ctx): Ctx,
    ApiQuery(p): ApiQuery<SpendParams>,
) -> HttpResult<Json<Vec<SpendGroup>>> {
    master_only(&ctx)?;
    let by = p.group_by.clone().unwrap_or_else(|| "day".into());
    let pick: fn(&SpendRow) -> Option<String> = match by.as_str() {
        "day" => |r| Some(r.day.clone()),
        "model" => |r| Some(r.model.clone()),
        "team" => |r| r.team_id.clone(),
        "key" => |r| r.key_id.clone(),
        "batch" => |r| Some(r.batch_id.clone()),
        other => {
            return Err(ApiError::invalid_request(format!(
                "group_by must be day, model, team, key or batch, not '{other}'."
            ))
            .with_param("group_by")
            .into())
        }
    };
    let f = filter(&st, &p).await?;
    let rows = st.accounts.spend().spend_logs(&f, MAX_ROWS).await?;
    let mut groups: BTreeMap<Option<String>, SpendGroup> = BTreeMap::new();
    for r in &rows {
        let key = pick(r);
        let g = groups.entry(key.clone()).or_insert_with(|| SpendGroup {
            group_by: by.clone(),
            key,
            ..Default::default()
        });
        g.spend += r.spend;
        g.lines += r.lines;
        g.input_tokens += r.input_tokens;
        g.cached_tokens += r.cached_tokens;
        g.output_tokens += r.output_tokens;
        g.unpriced_lines += r.unpriced_lines;
    }
    let mut out: Vec<SpendGroup> = groups.into_values().collect();
    for g in &mut out {
        g.spend = g.spend.normalize();
    }
    Ok(Json(out))
}
