//! `FleetStore` for Postgres: every instance's heartbeat in one table.

use async_trait::async_trait;
use batchgate_store::{FleetStore, Presence, StoreError};

use crate::PostgresStore;

#[derive(sqlx::FromRow)]
struct PresenceRow {
    instance: String,
    model: String,
    heartbeat_at: i64,
}

#[async_trait]
impl FleetStore for PostgresStore {
    fn is_shared(&self) -> bool {
        true
    }

    async fn heartbeat(
        &self,
        instance: &str,
        models: &[String],
        now: i64,
        live_since: i64,
    ) -> Result<Vec<Presence>, StoreError> {
        let mut tx = self.pool().begin().await?;
        sqlx::query("DELETE FROM fleet_presence WHERE instance = $1")
            .bind(instance)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO fleet_presence (instance, model, heartbeat_at) \
             SELECT $1, m, $3 FROM UNNEST($2::TEXT[]) AS m ON CONFLICT DO NOTHING",
        )
        .bind(instance)
        .bind(models)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        let rows: Vec<PresenceRow> = sqlx::query_as(PRESENCE)
            .bind(live_since)
            .fetch_all(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(rows.into_iter().map(Presence::from).collect())
    }

    async fn presence(&self, live_since: i64) -> Result<Vec<Presence>, StoreError> {
        let rows: Vec<PresenceRow> = sqlx::query_as(PRESENCE)
            .bind(live_since)
            .fetch_all(self.pool())
            .await?;
        Ok(rows.into_iter().map(Presence::from).collect())
    }
}

const PRESENCE: &str = "SELECT instance, model, heartbeat_at FROM fleet_presence \
     WHERE heartbeat_at >= $1 ORDER BY model, instance";

impl From<PresenceRow> for Presence {
    fn from(r: PresenceRow) -> Presence {
        Presence {
            instance: r.instance,
            model: r.model,
            heartbeat_at: r.heartbeat_at,
        }
    }
}
