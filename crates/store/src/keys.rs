//! Virtual keys, teams and the spend ledger: records and traits.

use async_trait::async_trait;
use rust_decimal::Decimal;
use serde::Serialize;

use crate::StoreError;

/// A virtual key. The key itself is never stored: only its SHA-256.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KeyRecord {
    /// Public identifier (`key_…`), safe to log and show.
    pub key_id: String,
    #[serde(skip)]
    pub key_hash: String,
    pub key_alias: Option<String>,
    pub team_id: Option<String>,
    /// Allowed model names; empty means every model.
    pub models: Vec<String>,
    #[serde(with = "rust_decimal::serde::str_option")]
    pub max_budget: Option<Decimal>,
    pub budget_duration: Option<String>,
    #[serde(skip)]
    pub budget_seconds: Option<i64>,
    pub budget_reset_at: Option<i64>,
    #[serde(with = "rust_decimal::serde::str")]
    pub spend: Decimal,
    pub metadata: serde_json::Value,
    pub created_at: i64,
    /// Refused by authentication until unblocked.
    pub blocked: bool,
}

/// A team: a budget shared by its keys.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TeamRecord {
    pub team_id: String,
    pub team_alias: Option<String>,
    #[serde(with = "rust_decimal::serde::str_option")]
    pub max_budget: Option<Decimal>,
    pub budget_duration: Option<String>,
    #[serde(skip)]
    pub budget_seconds: Option<i64>,
    pub budget_reset_at: Option<i64>,
    #[serde(with = "rust_decimal::serde::str")]
    pub spend: Decimal,
    pub created_at: i64,
}

/// One ledger row: a group of lines of one batch priced together.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SpendRow {
    pub batch_id: String,
    pub key_id: Option<String>,
    pub team_id: Option<String>,
    pub model: String,
    pub deployment_id: String,
    pub day: String,
    pub created_at: i64,
    pub lines: u64,
    pub input_tokens: u64,
    pub cached_tokens: u64,
    pub output_tokens: u64,
    #[serde(with = "rust_decimal::serde::str")]
    pub spend: Decimal,
    pub priced_lines: u64,
    pub unpriced_lines: u64,
}

/// Which ledger rows a query covers. Days are `YYYY-MM-DD` (UTC), inclusive.
#[derive(Debug, Clone, Default)]
pub struct SpendFilter {
    pub key_id: Option<String>,
    pub team_id: Option<String>,
    pub model: Option<String>,
    pub batch_id: Option<String>,
    pub start_day: Option<String>,
    pub end_day: Option<String>,
}

/// Keys and teams.
#[async_trait]
pub trait KeyStore: Send + Sync {
    async fn insert_key(&self, key: &KeyRecord) -> Result<(), StoreError>;
    async fn key_by_hash(&self, key_hash: &str) -> Result<Option<KeyRecord>, StoreError>;
    async fn key_by_id(&self, key_id: &str) -> Result<Option<KeyRecord>, StoreError>;
    /// Replaces the settable fields (alias, team, models, budget, metadata).
    async fn update_key(&self, key: &KeyRecord) -> Result<(), StoreError>;
    async fn delete_key(&self, key_id: &str) -> Result<bool, StoreError>;
    async fn upsert_team(&self, team: &TeamRecord) -> Result<(), StoreError>;
    async fn team(&self, team_id: &str) -> Result<Option<TeamRecord>, StoreError>;
    /// Zeroes the spend of every key and team whose budget period ended at
    /// or before `now`, and starts the next period.
    async fn reset_budgets(&self, now: i64) -> Result<u64, StoreError>;
}

/// The spend ledger.
#[async_trait]
pub trait SpendStore: Send + Sync {
    async fn spend_logs(
        &self,
        filter: &SpendFilter,
        limit: u32,
    ) -> Result<Vec<SpendRow>, StoreError>;
}

/// `YYYY-MM-DD` of a unix time, UTC (days from civil, Howard Hinnant's).
pub fn utc_day(unix: i64) -> String {
    let days = unix.div_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

#[cfg(test)]
mod tests {
    #[test]
    fn utc_days() {
        assert_eq!(super::utc_day(0), "1970-01-01");
        assert_eq!(super::utc_day(951_782_400), "2000-02-29");
        assert_eq!(super::utc_day(1_795_698_337), "2026-11-26");
    }
}
