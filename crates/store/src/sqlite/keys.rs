//! `KeyStore` and `SpendStore` for SQLite.

use std::str::FromStr;

use async_trait::async_trait;
use rust_decimal::Decimal;
use sqlx::sqlite::SqliteRow;
use sqlx::{QueryBuilder, Row, Sqlite, TypeInfo, ValueRef};

use super::SqliteStore;
use crate::{KeyRecord, KeyStore, SpendFilter, SpendRow, SpendStore, StoreError, TeamRecord};

#[async_trait]
impl KeyStore for SqliteStore {
    async fn insert_key(&self, k: &KeyRecord) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO keys (key_id, key_hash, key_alias, team_id, models, max_budget, budget_duration, \
             budget_seconds, budget_reset_at, spend, metadata, created_at, blocked) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&k.key_id)
        .bind(&k.key_hash)
        .bind(&k.key_alias)
        .bind(&k.team_id)
        .bind(json(&k.models)?)
        .bind(k.max_budget.map(|d| d.to_string()))
        .bind(&k.budget_duration)
        .bind(k.budget_seconds)
        .bind(k.budget_reset_at)
        .bind(k.spend.to_string())
        .bind(json(&k.metadata)?)
        .bind(k.created_at)
        .bind(k.blocked)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    async fn key_by_hash(&self, key_hash: &str) -> Result<Option<KeyRecord>, StoreError> {
        let row = sqlx::query("SELECT * FROM keys WHERE key_hash = ?")
            .bind(key_hash)
            .fetch_optional(self.pool())
            .await?;
        row.map(|r| key_from_row(&r)).transpose()
    }

    async fn key_by_id(&self, key_id: &str) -> Result<Option<KeyRecord>, StoreError> {
        let row = sqlx::query("SELECT * FROM keys WHERE key_id = ?")
            .bind(key_id)
            .fetch_optional(self.pool())
            .await?;
        row.map(|r| key_from_row(&r)).transpose()
    }

    async fn update_key(&self, k: &KeyRecord) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE keys SET key_alias = ?, team_id = ?, models = ?, max_budget = ?, budget_duration = ?, \
             budget_seconds = ?, budget_reset_at = ?, metadata = ?, blocked = ? WHERE key_id = ?",
        )
        .bind(&k.key_alias)
        .bind(&k.team_id)
        .bind(json(&k.models)?)
        .bind(k.max_budget.map(|d| d.to_string()))
        .bind(&k.budget_duration)
        .bind(k.budget_seconds)
        .bind(k.budget_reset_at)
        .bind(json(&k.metadata)?)
        .bind(k.blocked)
        .bind(&k.key_id)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    async fn delete_key(&self, key_id: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM keys WHERE key_id = ?")
            .bind(key_id)
            .execute(self.pool())
            .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn upsert_team(&self, t: &TeamRecord) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO teams (team_id, team_alias, max_budget, budget_duration, budget_seconds, budget_reset_at, spend, created_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (team_id) DO UPDATE SET team_alias = excluded.team_alias, \
             max_budget = excluded.max_budget, budget_duration = excluded.budget_duration, \
             budget_seconds = excluded.budget_seconds, budget_reset_at = excluded.budget_reset_at",
        )
        .bind(&t.team_id)
        .bind(&t.team_alias)
        .bind(t.max_budget.map(|d| d.to_string()))
        .bind(&t.budget_duration)
        .bind(t.budget_seconds)
        .bind(t.budget_reset_at)
        .bind(t.spend.to_string())
        .bind(t.created_at)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    async fn team(&self, team_id: &str) -> Result<Option<TeamRecord>, StoreError> {
        let row = sqlx::query("SELECT * FROM teams WHERE team_id = ?")
            .bind(team_id)
            .fetch_optional(self.pool())
            .await?;
        row.map(|r| {
            Ok(TeamRecord {
                team_id: r.try_get("team_id")?,
                team_alias: r.try_get("team_alias")?,
                max_budget: opt_decimal(&r, "max_budget")?,
                budget_duration: lenient_text(&r, "budget_duration"),
                budget_seconds: lenient_int(&r, "budget_seconds"),
                budget_reset_at: lenient_int(&r, "budget_reset_at"),
                spend: decimal(&r, "spend")?,
                created_at: r.try_get("created_at")?,
            })
        })
        .transpose()
    }

    async fn reset_budgets(&self, now: i64) -> Result<u64, StoreError> {
        let mut n = 0;
        // Only a positive integer period restarts (a row of an older version
        // may hold anything). SQLite turns an overflowing integer sum into a
        // REAL, and CAST clamps that to the INTEGER range: the next reset
        // saturates at the end of time instead of storing a REAL.
        for table in ["keys", "teams"] {
            n += sqlx::query(&format!(
                "UPDATE {table} SET spend = '0', budget_reset_at = CAST(?1 + budget_seconds AS INTEGER) \
                 WHERE typeof(budget_seconds) = 'integer' AND budget_seconds > 0 \
                 AND budget_reset_at IS NOT NULL AND budget_reset_at <= ?1"
            ))
            .bind(now)
            .execute(self.pool())
            .await?
            .rows_affected();
        }
        Ok(n)
    }
}

#[async_trait]
impl SpendStore for SqliteStore {
    async fn spend_logs(&self, f: &SpendFilter, limit: u32) -> Result<Vec<SpendRow>, StoreError> {
        let mut q: QueryBuilder<'_, Sqlite> =
            QueryBuilder::new("SELECT * FROM spend_logs WHERE 1 = 1");
        let eq = [
            ("key_id", &f.key_id),
            ("team_id", &f.team_id),
            ("model", &f.model),
            ("batch_id", &f.batch_id),
        ];
        for (col, v) in eq {
            if let Some(v) = v {
                q.push(format!(" AND {col} = ")).push_bind(v.clone());
            }
        }
        if let Some(d) = &f.start_day {
            q.push(" AND day >= ").push_bind(d.clone());
        }
        if let Some(d) = &f.end_day {
            q.push(" AND day <= ").push_bind(d.clone());
        }
        q.push(" ORDER BY id LIMIT ").push_bind(i64::from(limit));
        let rows = q.build().fetch_all(self.pool()).await?;
        rows.iter()
            .map(|r| {
                let n = |c: &str| -> Result<u64, StoreError> {
                    Ok(u64::try_from(r.try_get::<i64, _>(c)?).unwrap_or_default())
                };
                Ok(SpendRow {
                    batch_id: r.try_get("batch_id")?,
                    key_id: r.try_get("key_id")?,
                    team_id: r.try_get("team_id")?,
                    model: r.try_get("model")?,
                    deployment_id: r.try_get("deployment_id")?,
                    day: r.try_get("day")?,
                    created_at: r.try_get("created_at")?,
                    lines: n("lines")?,
                    input_tokens: n("input_tokens")?,
                    cached_tokens: n("cached_tokens")?,
                    output_tokens: n("output_tokens")?,
                    spend: decimal(r, "cost")?,
                    priced_lines: n("priced_lines")?,
                    unpriced_lines: n("unpriced_lines")?,
                })
            })
            .collect()
    }
}

fn json<T: serde::Serialize>(v: &T) -> Result<String, StoreError> {
    serde_json::to_string(v).map_err(|e| StoreError::Corrupt(e.to_string()))
}

pub(crate) fn decimal(r: &SqliteRow, col: &str) -> Result<Decimal, StoreError> {
    let text: String = r.try_get(col)?;
    Decimal::from_str(&text).map_err(|e| StoreError::Corrupt(format!("{col}: {e}")))
}

fn opt_decimal(r: &SqliteRow, col: &str) -> Result<Option<Decimal>, StoreError> {
    let text: Option<String> = r.try_get(col)?;
    text.map(|t| Decimal::from_str(&t).map_err(|e| StoreError::Corrupt(format!("{col}: {e}"))))
        .transpose()
}

/// A budget period column read whatever an older version stored there: an
/// integer as is, a REAL clamped into `i64` (`as` saturates), a numeric
/// TEXT parsed; anything else is no value. A bad stored period must never
/// make a key or team unreadable — every request with the key, and the
/// master key's info, update and delete, read the row.
fn lenient_int(r: &SqliteRow, col: &str) -> Option<i64> {
    let raw = r.try_get_raw(col).ok()?;
    if raw.is_null() {
        return None;
    }
    let value = match raw.type_info().name() {
        "INTEGER" => r.try_get::<i64, _>(col).ok(),
        "REAL" => r
            .try_get::<f64, _>(col)
            .ok()
            .filter(|f| f.is_finite())
            .map(|f| f as i64),
        "TEXT" => r
            .try_get::<String, _>(col)
            .ok()
            .and_then(|t| t.trim().parse().ok()),
        _ => None,
    };
    if value.is_none() {
        tracing::warn!(column = col, "ignoring an unreadable stored budget value");
    }
    value
}

/// A text column that may hold another type in an old row.
fn lenient_text(r: &SqliteRow, col: &str) -> Option<String> {
    r.try_get::<Option<String>, _>(col).ok().flatten()
}

fn key_from_row(r: &SqliteRow) -> Result<KeyRecord, StoreError> {
    let models: String = r.try_get("models")?;
    let metadata: String = r.try_get("metadata")?;
    Ok(KeyRecord {
        key_id: r.try_get("key_id")?,
        key_hash: r.try_get("key_hash")?,
        key_alias: r.try_get("key_alias")?,
        team_id: r.try_get("team_id")?,
        models: serde_json::from_str(&models).map_err(|e| StoreError::Corrupt(e.to_string()))?,
        max_budget: opt_decimal(r, "max_budget")?,
        budget_duration: lenient_text(r, "budget_duration"),
        budget_seconds: lenient_int(r, "budget_seconds"),
        budget_reset_at: lenient_int(r, "budget_reset_at"),
        spend: decimal(r, "spend")?,
        metadata: serde_json::from_str(&metadata)
            .map_err(|e| StoreError::Corrupt(e.to_string()))?,
        created_at: r.try_get("created_at")?,
        blocked: r.try_get("blocked")?,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    async fn store() -> (tempfile::TempDir, SqliteStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("k.db")).await.unwrap();
        (dir, store)
    }

    fn key(id: &str, seconds: Option<i64>, reset_at: Option<i64>) -> KeyRecord {
        KeyRecord {
            key_id: id.into(),
            key_hash: format!("hash-{id}"),
            key_alias: None,
            team_id: Some("t".into()),
            models: vec![],
            max_budget: None,
            budget_duration: Some("odd".into()),
            budget_seconds: seconds,
            budget_reset_at: reset_at,
            spend: Decimal::ONE,
            metadata: serde_json::json!({}),
            created_at: 1,
            blocked: false,
        }
    }

    #[tokio::test]
    async fn odd_stored_periods_still_read() {
        let (_dir, store) = store().await;
        store
            .insert_key(&key("k", Some(60), Some(0)))
            .await
            .unwrap();
        let team = TeamRecord {
            team_id: "t".into(),
            team_alias: None,
            max_budget: None,
            budget_duration: Some("1d".into()),
            budget_seconds: Some(86_400),
            budget_reset_at: Some(0),
            spend: Decimal::ZERO,
            created_at: 1,
        };
        store.upsert_team(&team).await.unwrap();
        // What older versions could leave behind: an overflowed sum stored
        // as REAL, text, a blob.
        for (seconds, reset_at) in [
            ("9.3e18", "9.3e18"),
            ("'30d'", "'soon'"),
            ("x'00'", "1e999"),
            ("-5", "'42'"),
        ] {
            for table in ["keys", "teams"] {
                sqlx::query(&format!(
                    "UPDATE {table} SET budget_seconds = {seconds}, budget_reset_at = {reset_at}, budget_duration = 7"
                ))
                .execute(store.pool())
                .await
                .unwrap();
            }
            let k = store.key_by_id("k").await.unwrap().unwrap();
            assert!(store.key_by_hash("hash-k").await.unwrap().is_some());
            let t = store.team("t").await.unwrap().unwrap();
            for (s, r) in [
                (k.budget_seconds, k.budget_reset_at),
                (t.budget_seconds, t.budget_reset_at),
            ] {
                if seconds == "9.3e18" {
                    assert_eq!((s, r), (Some(i64::MAX), Some(i64::MAX)));
                }
                if seconds == "-5" {
                    assert_eq!((s, r), (Some(-5), Some(42)));
                }
            }
            store.reset_budgets(1_000).await.unwrap();
            store.key_by_id("k").await.unwrap().unwrap();
            store.team("t").await.unwrap().unwrap();
        }
        assert!(store.delete_key("k").await.unwrap());
    }

    #[tokio::test]
    async fn a_reset_saturates_instead_of_overflowing() {
        let (_dir, store) = store().await;
        store
            .insert_key(&key("huge", Some(i64::MAX - 10), Some(0)))
            .await
            .unwrap();
        store
            .insert_key(&key("day", Some(86_400), Some(50)))
            .await
            .unwrap();
        store
            .insert_key(&key("zero", Some(0), Some(0)))
            .await
            .unwrap();
        assert_eq!(store.reset_budgets(1_000).await.unwrap(), 2);
        let huge = store.key_by_id("huge").await.unwrap().unwrap();
        assert_eq!(huge.budget_reset_at, Some(i64::MAX));
        assert_eq!(huge.spend, Decimal::ZERO);
        let typ: String =
            sqlx::query_scalar("SELECT typeof(budget_reset_at) FROM keys WHERE key_id = 'huge'")
                .fetch_one(store.pool())
                .await
                .unwrap();
        assert_eq!(typ, "integer");
        let day = store.key_by_id("day").await.unwrap().unwrap();
        assert_eq!(day.budget_reset_at, Some(1_000 + 86_400));
        let zero = store.key_by_id("zero").await.unwrap().unwrap();
        assert_eq!(
            zero.spend,
            Decimal::ONE,
            "a non-positive period never restarts"
        );
    }
}
