//! Accrual: a group of journaled lines is priced into the batch, the
//! ledger, and its key's and team's spend — in the journal's transaction.

use std::str::FromStr;

use batchgate_core::BatchCost;
use rust_decimal::Decimal;
use sqlx::sqlite::SqliteRow;
use sqlx::{Row, Sqlite, Transaction};

use super::keys::decimal;
use crate::{utc_day, StoreError};

/// The cost of the newly journaled lines of one commit, summed by
/// `batchgate-cost`.
pub type Charged = batchgate_cost::BatchCost;

/// Adds `c` to the batch, writes a ledger row and raises the owner's key
/// and team spend. Runs after the journal inserts of the same transaction,
/// which already hold SQLite's write lock, so these read-modify-writes of
/// decimal text cannot interleave with another writer.
pub async fn accrue(
    tx: &mut Transaction<'_, Sqlite>,
    batch_key: &str,
    c: &Charged,
    (input_tokens, cached_tokens, output_tokens): (i64, i64, i64),
    now: i64,
) -> Result<(), StoreError> {
    let row = sqlx::query(
        "SELECT public_id, model, deployment_id, owner_key, owner_team, cost_input, cost_output FROM batches WHERE key = ?",
    )
    .bind(batch_key)
    .fetch_one(&mut **tx)
    .await?;
    let total = c.total;
    sqlx::query(
        "UPDATE batches SET cost_input = ?, cost_output = ?, priced_lines = priced_lines + ?, \
         unpriced_lines = unpriced_lines + ? WHERE key = ?",
    )
    .bind(
        (decimal(&row, "cost_input")? + c.input)
            .normalize()
            .to_string(),
    )
    .bind(
        (decimal(&row, "cost_output")? + c.output)
            .normalize()
            .to_string(),
    )
    .bind(count(c.priced_lines))
    .bind(count(c.unpriced_lines))
    .bind(batch_key)
    .execute(&mut **tx)
    .await?;
    let key_id: Option<String> = row.try_get("owner_key")?;
    let team_id: Option<String> = row.try_get("owner_team")?;
    let model: Option<String> = row.try_get("model")?;
    sqlx::query(
        "INSERT INTO spend_logs (batch_key, batch_id, key_id, team_id, model, deployment_id, day, created_at, \
         lines, input_tokens, cached_tokens, output_tokens, cost, priced_lines, unpriced_lines) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(batch_key)
    .bind(row.try_get::<String, _>("public_id")?)
    .bind(&key_id)
    .bind(&team_id)
    .bind(model.unwrap_or_default())
    .bind(row.try_get::<String, _>("deployment_id")?)
    .bind(utc_day(now))
    .bind(now)
    .bind(count(c.priced_lines + c.unpriced_lines))
    .bind(input_tokens)
    .bind(cached_tokens)
    .bind(output_tokens)
    .bind(total.normalize().to_string())
    .bind(count(c.priced_lines))
    .bind(count(c.unpriced_lines))
    .execute(&mut **tx)
    .await?;
    for (table, column, id) in [("keys", "key_id", key_id), ("teams", "team_id", team_id)] {
        let Some(id) = id else { continue };
        let spend: Option<String> =
            sqlx::query_scalar(&format!("SELECT spend FROM {table} WHERE {column} = ?"))
                .bind(&id)
                .fetch_optional(&mut **tx)
                .await?;
        if let Some(spend) = spend {
            let spend = Decimal::from_str(&spend)
                .map_err(|e| StoreError::Corrupt(format!("{table}.spend: {e}")))?;
            sqlx::query(&format!("UPDATE {table} SET spend = ? WHERE {column} = ?"))
                .bind((spend + total).normalize().to_string())
                .bind(&id)
                .execute(&mut **tx)
                .await?;
        }
    }
    Ok(())
}

fn count(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// The batch object's `cost`.
pub fn batch_cost(r: &SqliteRow) -> Result<BatchCost, StoreError> {
    let input = decimal(r, "cost_input")?;
    let output = decimal(r, "cost_output")?;
    let n = |c: &str| -> Result<u64, StoreError> {
        Ok(u64::try_from(r.try_get::<i64, _>(c)?).unwrap_or_default())
    };
    Ok(BatchCost {
        currency: "USD".into(),
        total: (input + output).normalize().to_string(),
        input: input.normalize().to_string(),
        output: output.normalize().to_string(),
        priced_lines: n("priced_lines")?,
        unpriced_lines: n("unpriced_lines")?,
    })
}
