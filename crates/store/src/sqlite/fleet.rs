//! `FleetStore` for SQLite: one instance in practice, but the same
//! contract as on a shared database.

use async_trait::async_trait;
use sqlx::sqlite::SqliteRow;
use sqlx::Row;

use super::SqliteStore;
use crate::{FleetStore, Presence, StoreError};

#[async_trait]
impl FleetStore for SqliteStore {
    async fn heartbeat(
        &self,
        instance: &str,
        models: &[String],
        now: i64,
        live_since: i64,
    ) -> Result<Vec<Presence>, StoreError> {
        let mut tx = self.pool().begin_with("BEGIN IMMEDIATE").await?;
        sqlx::query("DELETE FROM fleet_presence WHERE instance = ?")
            .bind(instance)
            .execute(&mut *tx)
            .await?;
        for model in models {
            sqlx::query(
                "INSERT OR REPLACE INTO fleet_presence (instance, model, heartbeat_at) VALUES (?, ?, ?)",
            )
            .bind(instance)
            .bind(model)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        let rows = sqlx::query(PRESENCE)
            .bind(live_since)
            .fetch_all(&mut *tx)
            .await?;
        tx.commit().await?;
        rows.iter().map(presence).collect()
    }

    async fn presence(&self, live_since: i64) -> Result<Vec<Presence>, StoreError> {
        let rows = sqlx::query(PRESENCE)
            .bind(live_since)
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(presence).collect()
    }
}

const PRESENCE: &str = "SELECT instance, model, heartbeat_at FROM fleet_presence \
     WHERE heartbeat_at >= ? ORDER BY model, instance";

fn presence(r: &SqliteRow) -> Result<Presence, StoreError> {
    Ok(Presence {
        instance: r.try_get("instance")?,
        model: r.try_get("model")?,
        heartbeat_at: r.try_get("heartbeat_at")?,
    })
}
