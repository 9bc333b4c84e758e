//! `KeyStore` and `SpendStore` for Postgres.

use async_trait::async_trait;
use batchgate_store::{
    KeyRecord, KeyStore, SpendFilter, SpendRow, SpendStore, StoreError, TeamRecord,
};
use sqlx::{Postgres, QueryBuilder};

use crate::rows::{KeyRow, SpendLogRow, TeamRow};
use crate::PostgresStore;

#[async_trait]
impl KeyStore for PostgresStore {
    async fn insert_key(&self, k: &KeyRecord) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO keys (key_id, key_hash, key_alias, team_id, models, max_budget, \
             budget_duration, budget_seconds, budget_reset_at, spend, metadata, created_at, blocked) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
        )
        .bind(&k.key_id)
        .bind(&k.key_hash)
        .bind(&k.key_alias)
        .bind(&k.team_id)
        .bind(&k.models)
        .bind(k.max_budget)
        .bind(&k.budget_duration)
        .bind(k.budget_seconds)
        .bind(k.budget_reset_at)
        .bind(k.spend)
        .bind(json(&k.metadata)?)
        .bind(k.created_at)
        .bind(k.blocked)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    async fn key_by_hash(&self, key_hash: &str) -> Result<Option<KeyRecord>, StoreError> {
        let row: Option<KeyRow> = sqlx::query_as("SELECT * FROM keys WHERE key_hash = $1")
            .bind(key_hash)
            .fetch_optional(self.pool())
            .await?;
        row.map(KeyRecord::try_from).transpose()
    }

    async fn key_by_id(&self, key_id: &str) -> Result<Option<KeyRecord>, StoreError> {
        let row: Option<KeyRow> = sqlx::query_as("SELECT * FROM keys WHERE key_id = $1")
            .bind(key_id)
            .fetch_optional(self.pool())
            .await?;
        row.map(KeyRecord::try_from).transpose()
    }

    async fn update_key(&self, k: &KeyRecord) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE keys SET key_alias = $1, team_id = $2, models = $3, max_budget = $4, \
             budget_duration = $5, budget_seconds = $6, budget_reset_at = $7, metadata = $8, \
             blocked = $9 WHERE key_id = $10",
        )
        .bind(&k.key_alias)
        .bind(&k.team_id)
        .bind(&k.models)
        .bind(k.max_budget)
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
        let done = sqlx::query("DELETE FROM keys WHERE key_id = $1")
            .bind(key_id)
            .execute(self.pool())
            .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn upsert_team(&self, t: &TeamRecord) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO teams (team_id, team_alias, max_budget, budget_duration, budget_seconds, \
             budget_reset_at, spend, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
             ON CONFLICT (team_id) DO UPDATE SET team_alias = EXCLUDED.team_alias, \
             max_budget = EXCLUDED.max_budget, budget_duration = EXCLUDED.budget_duration, \
             budget_seconds = EXCLUDED.budget_seconds, budget_reset_at = EXCLUDED.budget_reset_at",
        )
        .bind(&t.team_id)
        .bind(&t.team_alias)
        .bind(t.max_budget)
        .bind(&t.budget_duration)
        .bind(t.budget_seconds)
        .bind(t.budget_reset_at)
        .bind(t.spend)
        .bind(t.created_at)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    async fn team(&self, team_id: &str) -> Result<Option<TeamRecord>, StoreError> {
        let row: Option<TeamRow> = sqlx::query_as("SELECT * FROM teams WHERE team_id = $1")
            .bind(team_id)
            .fetch_optional(self.pool())
            .await?;
        Ok(row.map(TeamRecord::from))
    }

    async fn reset_budgets(&self, now: i64) -> Result<u64, StoreError> {
        let mut n = 0;
        // Only a positive period restarts. The next end is computed in
        // NUMERIC and clamped, so a period near the end of time saturates
        // there instead of failing the whole sweep on BIGINT overflow. An
        // instance that lost the race to another's sweep finds the row
        // already moved on (the UPDATE rechecks it under the row lock).
        for table in ["keys", "teams"] {
            n += sqlx::query(&format!(
                "UPDATE {table} SET spend = 0, \
                 budget_reset_at = LEAST($1::NUMERIC + budget_seconds, 9223372036854775807)::BIGINT \
                 WHERE budget_seconds > 0 AND budget_reset_at IS NOT NULL AND budget_reset_at <= $1"
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
impl SpendStore for PostgresStore {
    async fn spend_logs(&self, f: &SpendFilter, limit: u32) -> Result<Vec<SpendRow>, StoreError> {
        let mut q: QueryBuilder<'_, Postgres> =
            QueryBuilder::new("SELECT * FROM spend_logs WHERE TRUE");
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
        let rows: Vec<SpendLogRow> = q.build_query_as().fetch_all(self.pool()).await?;
        Ok(rows.into_iter().map(SpendRow::from).collect())
    }
}

fn json<T: serde::Serialize>(v: &T) -> Result<String, StoreError> {
    serde_json::to_string(v).map_err(|e| StoreError::Corrupt(e.to_string()))
}
