//! The line journal and the money it carries: a group of finished lines,
//! their counts, usage and cost, the ledger row and the owner's key and
//! team spend, all in one transaction under the runner's fence.

use std::collections::HashSet;

use batchgate_store::{utc_day, Lease, LineResult, StoreError};
use sqlx::PgConnection;

use crate::leases::check_fence;
use crate::{int, now, uint, PostgresStore};

/// The cost of the newly journaled lines of one commit, summed by
/// `batchgate-cost`.
type Charged = batchgate_cost::BatchCost;

/// What the newly journaled lines of one commit add up to.
struct Added {
    ok: i64,
    failed: i64,
    input: i64,
    cached: i64,
    output: i64,
    reasoning: i64,
    charged: Charged,
}

impl Added {
    /// Sums the results whose lines are in `inserted`, each line once (a
    /// line twice in one commit counts once, like a line journaled before).
    fn of(results: &[LineResult], mut inserted: HashSet<i64>) -> Added {
        let mut a = Added {
            ok: 0,
            failed: 0,
            input: 0,
            cached: 0,
            output: 0,
            reasoning: 0,
            charged: Charged::zero(),
        };
        for r in results {
            if !inserted.remove(&int(r.line_no)) {
                continue;
            }
            if r.ok {
                a.ok += 1;
            } else {
                a.failed += 1;
            }
            if let Some(u) = r.usage {
                a.input += int(u.input_tokens);
                a.cached += int(u.cached_tokens);
                a.output += int(u.output_tokens);
                a.reasoning += int(u.reasoning_tokens);
            }
            if let Some(c) = r.charge {
                a.charged.add(&c);
            }
        }
        a
    }
}

impl PostgresStore {
    pub(crate) async fn journal(
        &self,
        lease: &Lease,
        results: &[LineResult],
    ) -> Result<(), StoreError> {
        let key = lease.key.as_str();
        let mut tx = self.pool().begin().await?;
        check_fence(&mut tx, Some(lease)).await?;
        // One statement for the whole group; the lines it reports back are
        // the ones not journaled before, and only they count.
        let inserted: Vec<i64> = sqlx::query_scalar(
            "INSERT INTO batch_results (batch_key, line_no, custom_id, ok, line) \
             SELECT $1, * FROM UNNEST($2::BIGINT[], $3::TEXT[], $4::BOOLEAN[], $5::TEXT[]) \
             ON CONFLICT (batch_key, line_no) DO NOTHING RETURNING line_no",
        )
        .bind(key)
        .bind(results.iter().map(|r| int(r.line_no)).collect::<Vec<_>>())
        .bind(
            results
                .iter()
                .map(|r| r.custom_id.as_str())
                .collect::<Vec<_>>(),
        )
        .bind(results.iter().map(|r| r.ok).collect::<Vec<_>>())
        .bind(results.iter().map(|r| r.line.as_str()).collect::<Vec<_>>())
        .fetch_all(&mut *tx)
        .await?;
        let added = Added::of(results, inserted.into_iter().collect());
        sqlx::query(
            "UPDATE batches SET completed = completed + $1, failed = failed + $2, \
             input_tokens = input_tokens + $3, cached_tokens = cached_tokens + $4, \
             output_tokens = output_tokens + $5, reasoning_tokens = reasoning_tokens + $6 \
             WHERE key = $7",
        )
        .bind(added.ok)
        .bind(added.failed)
        .bind(added.input)
        .bind(added.cached)
        .bind(added.output)
        .bind(added.reasoning)
        .bind(key)
        .execute(&mut *tx)
        .await?;
        if added.charged.priced_lines + added.charged.unpriced_lines > 0 {
            accrue(&mut tx, key, &added).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    pub(crate) async fn journaled_lines(&self, key: &str) -> Result<Vec<u64>, StoreError> {
        let rows: Vec<i64> =
            sqlx::query_scalar("SELECT line_no FROM batch_results WHERE batch_key = $1")
                .bind(key)
                .fetch_all(self.pool())
                .await?;
        Ok(rows.into_iter().map(uint).collect())
    }

    pub(crate) async fn journal_page(
        &self,
        key: &str,
        ok: bool,
        after_line: u64,
        limit: u32,
    ) -> Result<Vec<(u64, String)>, StoreError> {
        let rows: Vec<(i64, String)> = sqlx::query_as(
            "SELECT line_no, line FROM batch_results \
             WHERE batch_key = $1 AND ok = $2 AND line_no > $3 ORDER BY line_no LIMIT $4",
        )
        .bind(key)
        .bind(ok)
        .bind(int(after_line))
        .bind(i64::from(limit))
        .fetch_all(self.pool())
        .await?;
        Ok(rows.into_iter().map(|(n, line)| (uint(n), line)).collect())
    }
}

/// Adds the commit's cost to the batch, writes its ledger row and raises
/// the owner's key and team spend — each `x = x + $n` in place, so
/// instances accruing to one key at once add up exactly (the row lock of
/// each UPDATE orders them; nothing is read and written back).
async fn accrue(conn: &mut PgConnection, batch_key: &str, a: &Added) -> Result<(), StoreError> {
    let c = &a.charged;
    let (key_id, team_id): (Option<String>, Option<String>) = sqlx::query_as(
        "UPDATE batches SET cost_input = cost_input + $1, cost_output = cost_output + $2, \
         priced_lines = priced_lines + $3, unpriced_lines = unpriced_lines + $4 \
         WHERE key = $5 RETURNING owner_key, owner_team",
    )
    .bind(c.input)
    .bind(c.output)
    .bind(int(c.priced_lines))
    .bind(int(c.unpriced_lines))
    .bind(batch_key)
    .fetch_one(&mut *conn)
    .await?;
    let at = now();
    sqlx::query(
        "INSERT INTO spend_logs (batch_key, batch_id, key_id, team_id, model, deployment_id, \
         day, created_at, lines, input_tokens, cached_tokens, output_tokens, cost, priced_lines, \
         unpriced_lines) \
         SELECT key, public_id, owner_key, owner_team, COALESCE(model, ''), deployment_id, \
         $2, $3, $4, $5, $6, $7, $8, $9, $10 FROM batches WHERE key = $1",
    )
    .bind(batch_key)
    .bind(utc_day(at))
    .bind(at)
    .bind(int(c.priced_lines + c.unpriced_lines))
    .bind(a.input)
    .bind(a.cached)
    .bind(a.output)
    .bind(c.total)
    .bind(int(c.priced_lines))
    .bind(int(c.unpriced_lines))
    .execute(&mut *conn)
    .await?;
    if let Some(id) = key_id {
        sqlx::query("UPDATE keys SET spend = spend + $1 WHERE key_id = $2")
            .bind(c.total)
            .bind(id)
            .execute(&mut *conn)
            .await?;
    }
    if let Some(id) = team_id {
        sqlx::query("UPDATE teams SET spend = spend + $1 WHERE team_id = $2")
            .bind(c.total)
            .bind(id)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}
