//! Keys, spend and budgets across a fleet: three gateway processes on one
//! PostgreSQL schema and one blob store (the test S3 server under `cargo
//! xtask ci`, else a shared `file://` directory), as docs/scale-out.md
//! runs them.
//!
//! - A virtual key made on one instance works on every other at once; an
//!   update or a delete made on another reaches the instances that had it
//!   cached within the documented key-cache window (5 s, docs/cost.md):
//!   each waits on the event by polling, with a deadline well past the
//!   window so a key cache that never refreshes fails the test.
//! - Batches by the same keys run at once through different instances
//!   (each batch also shared chunk by chunk): the batch costs, key, team,
//!   per-model and ledger spend that every instance reports are identical
//!   and equal, to the last decimal, what the output files' per-line usage
//!   and the configured prices give.
//! - A budget spent through one instance is enforced by the others: a
//!   running batch stops (`on_budget_exceeded: stop`), new batches and
//!   uploads are refused with 400 `budget_exceeded`; raising the budget on
//!   another instance lets work in again at once.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/accounts.rs"]
mod accounts;
#[path = "support/fleet.rs"]
mod support;

use std::collections::BTreeMap;
use std::time::Instant;

use accounts::*;
use batchgate_cost::Decimal;
use batchgate_tests::{assert_error_envelope, assert_every_id_once};
use reqwest::Method;
use serde_json::{json, Value};

/// A key generated through A works on B and C at once (B had refused the
/// same value a moment before: nothing negative is cached); an update and
/// a delete made through B reach A and C, which had the key cached, within
/// the key-cache window.
#[tokio::test]
async fn a_key_made_on_one_instance_works_on_all_and_its_changes_reach_all() {
    let mock = mock(1).await;
    let fleet = start_fleet(&mock, "").await;
    let [a, b, c] = [&fleet.gateways[0], &fleet.gateways[1], &fleet.gateways[2]];

    let (status, team) = a
        .post(
            "/team/new",
            &json!({"team_id": "team-keys", "max_budget": "7.5"}),
        )
        .await
        .unwrap();
    assert_eq!(status, 200, "{team}");
    let (status, team) = c
        .post("/team/new", &json!({"team_id": "team-moved"}))
        .await
        .unwrap();
    assert_eq!(status, 200, "{team}");

    // A client trying its key before an admin made it: refused on B.
    let key = "sk-fleet-accounts-custom-key";
    let (status, body) = b
        .call_as(key, Method::GET, "/v1/models", None)
        .await
        .unwrap();
    assert_eq!(
        (status, &body["error"]["code"]),
        (401, &json!("invalid_api_key"))
    );

    let (status, made) = a
        .post(
            "/key/generate",
            &json!({"key": key, "team_id": "team-keys", "max_budget": "0.5",
                    "models": [ALPHA], "key_alias": "fleet-key"}),
        )
        .await
        .unwrap();
    assert_eq!(status, 200, "{made}");
    assert_eq!(made["key"], key);
    let key_id = made["token"].as_str().unwrap().to_string();

    // At once, on B and C together: the key authenticates, sees its own
    // settings and team, and is held to its allow-list.
    futures::join!(
        works_at_once("B", b, key, &key_id),
        works_at_once("C", c, key, &key_id)
    );

    // A and C have the key cached (they just used it); B widens its
    // allow-list and raises its budget.
    assert_eq!(models_of(a, key).await, Ok(vec![ALPHA.to_string()]));
    assert_eq!(models_of(c, key).await, Ok(vec![ALPHA.to_string()]));
    let (status, updated) = b
        .post(
            "/key/update",
            &json!({"key": key_id, "models": [ALPHA, BETA], "max_budget": "0.75"}),
        )
        .await
        .unwrap();
    assert_eq!(status, 200, "{updated}");
    let changed = Instant::now();
    // Stored settings are read from the database: every instance shows
    // them at once.
    for gw in [a, b, c] {
        assert_eq!(
            dec_of(&key_info(gw, &key_id).await["max_budget"]),
            dec("0.75")
        );
    }
    let both = vec![ALPHA.to_string(), BETA.to_string()];
    for (name, gw) in [("B", b), ("A", a), ("C", c)] {
        let what = format!("the widened allow-list on {name}");
        eventually(&what, changed, KEY_CACHE_WINDOW + SLACK, || async {
            match models_of(gw, key).await {
                Ok(m) if m == both => Ok(()),
                other => Err(format!("{other:?}")),
            }
        })
        .await;
    }
    // …and uploads for the newly allowed model go through on A.
    let (status, up) = upload_by(a, key, BETA, varied_lines(BETA, 2, 0)).await;
    assert_eq!(status, 200, "{up}");

    // B moves the key to another team: A, which has it cached with the
    // old team, lets it read only the new team's info once it notices.
    assert_eq!(
        a.call_as(key, Method::GET, "/team/info?team_id=team-keys", None)
            .await
            .unwrap()
            .0,
        200
    );
    let (status, moved) = b
        .post("/key/update", &json!({"key": key, "team_id": "team-moved"}))
        .await
        .unwrap();
    assert_eq!(status, 200, "{moved}");
    let changed = Instant::now();
    eventually(
        "the team move on A",
        changed,
        KEY_CACHE_WINDOW + SLACK,
        || async {
            let new = a
                .call_as(key, Method::GET, "/team/info?team_id=team-moved", None)
                .await
                .unwrap();
            let old = a
                .call_as(key, Method::GET, "/team/info?team_id=team-keys", None)
                .await
                .unwrap();
            match (new.0, old.0) {
                (200, 403) => Ok(()),
                _ => Err(format!("new team {new:?}, old team {old:?}")),
            }
        },
    )
    .await;

    // B deletes the key: A and C, which have it cached, refuse it within
    // the window, with OpenAI's 401.
    for gw in [a, c] {
        assert!(models_of(gw, key).await.is_ok());
    }
    let (status, deleted) = b
        .post("/key/delete", &json!({"keys": [key]}))
        .await
        .unwrap();
    assert_eq!(status, 200, "{deleted}");
    assert_eq!(deleted["deleted_keys"], json!([key_id]));
    let changed = Instant::now();
    for (name, gw) in [("B", b), ("A", a), ("C", c)] {
        let what = format!("the delete on {name}");
        let refused = eventually(&what, changed, KEY_CACHE_WINDOW + SLACK, || async {
            match models_of(gw, key).await {
                Err((401, body)) => Ok(body),
                other => Err(format!("{other:?}")),
            }
        })
        .await;
        assert_error_envelope(&refused);
        assert_eq!(refused["error"]["code"], "invalid_api_key");
        let (status, _) = upload_by(gw, key, ALPHA, varied_lines(ALPHA, 1, 0)).await;
        assert_eq!(status, 401, "a deleted key uploads nothing on {name}");
    }
}

/// Five batches by two keys of one team, created at once through the three
/// instances and each shared by them chunk by chunk: every instance
/// reports the same batch costs, key, team, per-model and ledger spend,
/// and each equals, exactly, the output files' usage × the prices.
#[tokio::test]
async fn spend_is_exact_and_the_same_on_every_instance() {
    let mock = mock(20).await;
    let fleet = start_fleet(&mock, "  chunk_lines: 50\n").await;
    let [a, b, c] = [&fleet.gateways[0], &fleet.gateways[1], &fleet.gateways[2]];

    let (status, team) = b
        .post(
            "/team/new",
            &json!({"team_id": "team-spend", "max_budget": 1000}),
        )
        .await
        .unwrap();
    assert_eq!(status, 200, "{team}");
    let (k1, k1_id) = make_key(a, json!({"team_id": "team-spend", "max_budget": "100"})).await;
    let (k2, k2_id) = make_key(c, json!({"team_id": "team-spend", "max_budget": "100"})).await;
    let key_ids: BTreeMap<&str, &str> =
        [(k1.as_str(), k1_id.as_str()), (k2.as_str(), k2_id.as_str())].into();

    // (instance, key, model, lines): the same key submits through
    // different instances, both keys and both models at once.
    let plan: [(usize, &str, &str, usize); 5] = [
        (0, &k1, ALPHA, 600),
        (1, &k1, BETA, 500),
        (2, &k1, ALPHA, 400),
        (0, &k2, BETA, 300),
        (2, &k2, ALPHA, 200),
    ];
    let inputs: Vec<Vec<u8>> = plan
        .iter()
        .enumerate()
        .map(|(salt, (_, _, model, n))| varied_lines(model, *n, salt))
        .collect();
    let ids: Vec<String> = futures::future::join_all(plan.iter().zip(&inputs).map(
        |((gw, key, model, _), input)| submit(&fleet.gateways[*gw], key, model, input.clone()),
    ))
    .await;

    // Each waited for through an instance other than its creator's.
    let done: Vec<Value> = futures::future::join_all(
        plan.iter()
            .zip(&ids)
            .map(|((gw, ..), id)| fleet.gateways[(gw + 1) % 3].wait_batch(id, WAIT)),
    )
    .await
    .into_iter()
    .map(Result::unwrap)
    .collect();

    let mut by_key: BTreeMap<&str, Bill> = BTreeMap::new();
    let mut by_model: BTreeMap<&str, Bill> = BTreeMap::new();
    let mut all = Bill::default();
    for (i, ((gw, key, model, n), batch)) in plan.iter().zip(&done).enumerate() {
        assert_eq!(batch["status"], "completed", "{batch}");
        let (out, err) = fleet.gateways[(gw + 2) % 3].results(batch).await.unwrap();
        assert_every_id_once(&out, &err, *n);
        assert!(err.is_empty(), "{}", err[0]);
        let bill = bill_of(model, &inputs[i], &out);
        assert_eq!(bill.lines, *n as u64);
        eprintln!(
            "batch {i}: {n} {model} lines, {} + {} tokens, cost {} (in {}, out {})",
            bill.input_tokens,
            bill.output_tokens,
            bill.total(),
            bill.input,
            bill.output
        );
        // The batch object, as every instance reports it.
        let id = batch["id"].as_str().unwrap();
        for (j, gw) in fleet.gateways.iter().enumerate() {
            let seen = gw.batch(id).await.unwrap();
            let cost = &seen["cost"];
            assert_eq!(dec_of(&cost["total"]), bill.total(), "batch {i} on {j}");
            assert_eq!(dec_of(&cost["input"]), bill.input, "batch {i} on {j}");
            assert_eq!(dec_of(&cost["output"]), bill.output, "batch {i} on {j}");
            assert_eq!(cost["priced_lines"], json!(n), "batch {i} on {j}");
            assert_eq!(cost["unpriced_lines"], 0, "batch {i} on {j}");
            assert_eq!(seen["usage"]["input_tokens"], json!(bill.input_tokens));
            assert_eq!(seen["usage"]["output_tokens"], json!(bill.output_tokens));
        }
        by_key.entry(*key).or_default().add(&bill);
        by_model.entry(*model).or_default().add(&bill);
        all.add(&bill);
    }
    eprintln!(
        "total: {} lines, cost {} (k1 {}, k2 {}; alpha {}, beta {})",
        all.lines,
        all.total(),
        by_key[k1.as_str()].total(),
        by_key[k2.as_str()].total(),
        by_model[ALPHA].total(),
        by_model[BETA].total()
    );

    // Every instance did part of the work (so accruals to the same key and
    // team came from three processes at once).
    for (i, gw) in fleet.gateways.iter().enumerate() {
        let lines = metric(gw, "batchgate_lines_total", "outcome=\"completed\"").await;
        assert!(lines > 0, "instance {i} journaled no line");
    }

    // Key and team spend: identical everywhere, and exact.
    for (key, bill) in &by_key {
        let id = key_ids[key];
        let info = same_everywhere(&fleet, &format!("/key/info?key={id}")).await;
        assert_eq!(dec_of(&info["info"]["spend"]), bill.total(), "key {id}");
    }
    let team = same_everywhere(&fleet, "/team/info?team_id=team-spend").await;
    assert_eq!(dec_of(&team["team_info"]["spend"]), all.total());

    // The per-model, per-key, per-team and per-batch reports.
    let report = same_everywhere(&fleet, "/global/spend/report?group_by=model").await;
    let groups = report.as_array().unwrap();
    assert_eq!(groups.len(), 2, "{report}");
    for g in groups {
        let bill = by_model[g["key"].as_str().unwrap()];
        assert_eq!(dec_of(&g["spend"]), bill.total(), "{g}");
        assert_eq!(g["lines"], json!(bill.lines), "{g}");
        assert_eq!(g["input_tokens"], json!(bill.input_tokens), "{g}");
        assert_eq!(g["output_tokens"], json!(bill.output_tokens), "{g}");
        assert_eq!(g["unpriced_lines"], 0, "{g}");
    }
    let report = same_everywhere(&fleet, "/global/spend/report?group_by=key").await;
    for g in report.as_array().unwrap() {
        let (key, bill) = by_key
            .iter()
            .find(|(k, _)| key_ids[*k] == g["key"].as_str().unwrap())
            .unwrap_or_else(|| panic!("unknown key in {report}"));
        assert_eq!(dec_of(&g["spend"]), bill.total(), "{key}: {g}");
        assert_eq!(g["lines"], json!(bill.lines), "{g}");
    }
    let report = same_everywhere(&fleet, "/global/spend/report?group_by=team").await;
    assert_eq!(report.as_array().unwrap().len(), 1, "{report}");
    assert_eq!(report[0]["key"], "team-spend");
    assert_eq!(dec_of(&report[0]["spend"]), all.total());
    assert_eq!(report[0]["lines"], json!(all.lines));
    let report = same_everywhere(&fleet, "/global/spend/report?group_by=batch").await;
    assert_eq!(report.as_array().unwrap().len(), plan.len(), "{report}");
    for (batch, (i, (_, _, model, _))) in done.iter().zip(plan.iter().enumerate()) {
        let g = report
            .as_array()
            .unwrap()
            .iter()
            .find(|g| g["key"] == batch["id"])
            .unwrap_or_else(|| panic!("batch {i} not in {report}"));
        assert_eq!(
            dec_of(&g["spend"]),
            dec_of(&batch["cost"]["total"]),
            "{model} {g}"
        );
    }

    // The ledger rows: every line once, summing to the same figures.
    let logs = same_everywhere(&fleet, "/spend/logs?team_id=team-spend").await;
    let rows = logs.as_array().unwrap();
    let spend: Decimal = rows.iter().map(|r| dec_of(&r["spend"])).sum();
    let lines: u64 = rows.iter().map(|r| r["lines"].as_u64().unwrap()).sum();
    assert_eq!((spend, lines), (all.total(), all.lines));
}

/// A key's budget spent by a batch through A stops that batch on every
/// instance running its chunks, and B and C refuse the key's next batch
/// and upload with 400 `budget_exceeded`; the team's budget, lowered
/// through C below what the key spent through A, binds another key of the
/// team on B; budgets raised through C let both in again at once.
#[tokio::test]
async fn a_budget_spent_through_one_instance_binds_the_others() {
    let mock = mock(50).await;
    let fleet = start_fleet(&mock, "  chunk_lines: 50\n").await;
    let [a, b, c] = [&fleet.gateways[0], &fleet.gateways[1], &fleet.gateways[2]];

    let (status, team) = a
        .post(
            "/team/new",
            &json!({"team_id": "team-budget", "max_budget": 1000}),
        )
        .await
        .unwrap();
    assert_eq!(status, 200, "{team}");
    // Some 30 of the lines below (about 0.000016 each; at most
    // 11 × 0.00000065 + 16 × 0.00000145 = 0.00003035): far fewer than the
    // batch's 1000.
    let max_budget = dec("0.0005");
    let (spender, spender_id) = make_key(
        a,
        json!({"team_id": "team-budget", "max_budget": max_budget.to_string()}),
    )
    .await;
    let (teammate, _) = make_key(c, json!({"team_id": "team-budget"})).await;

    // Files uploaded on B and C while there is budget left.
    let later = varied_lines(ALPHA, 5, 3);
    let (status, file_b) = upload_by(b, &spender, ALPHA, later.clone()).await;
    assert_eq!(status, 200, "{file_b}");
    let (status, file_c) = upload_by(c, &teammate, ALPHA, later.clone()).await;
    assert_eq!(status, 200, "{file_c}");

    // A batch far over budget, through A; its chunks run on all three.
    let n = 1000;
    let input = varied_lines(ALPHA, n, 0);
    let id = submit(a, &spender, ALPHA, input.clone()).await;
    let done = c.wait_batch(&id, WAIT).await.unwrap();
    assert_eq!(done["status"], "completed", "{done}");
    let completed = done["request_counts"]["completed"].as_u64().unwrap();
    let failed = done["request_counts"]["failed"].as_u64().unwrap();
    eprintln!("budget batch: {completed} lines ran, {failed} stopped by the budget");
    assert!(
        completed > 0 && completed < n as u64,
        "stopped early: {done}"
    );
    assert_eq!(completed + failed, n as u64, "{done}");
    let (out, err) = b.results(&done).await.unwrap();
    assert_every_id_once(&out, &err, n);
    for line in &err {
        assert_eq!(line["error"]["code"], "budget_exceeded", "{line}");
        assert!(line["response"].is_null(), "{line}");
    }
    // What ran is billed, exactly once: over the budget by at most the
    // lines in flight when the stop came, never short of what ran.
    let bill = bill_of(ALPHA, &input, &out);
    assert_eq!(bill.lines, completed);
    assert_eq!(dec_of(&done["cost"]["total"]), bill.total());
    let key = same_everywhere(&fleet, &format!("/key/info?key={spender_id}")).await;
    let spent = dec_of(&key["info"]["spend"]);
    assert_eq!(spent, bill.total());
    assert!(spent >= max_budget, "{spent} < {max_budget}");
    let team = same_everywhere(&fleet, "/team/info?team_id=team-budget").await;
    assert_eq!(dec_of(&team["team_info"]["spend"]), bill.total());
    eprintln!("key budget {max_budget}, spent {spent} through the fleet");

    // B and C refuse the key's new work at once, as docs/cost.md says.
    let refused = |what: &str, status: u16, body: &Value| {
        assert_eq!(status, 400, "{what}: {body}");
        assert_error_envelope(body);
        assert_eq!(body["error"]["type"], "invalid_request_error", "{what}");
        assert_eq!(body["error"]["code"], "budget_exceeded", "{what}");
    };
    let (status, body) = create_by(b, &spender, file_b["id"].as_str().unwrap()).await;
    refused("create on B", status, &body);
    for (name, gw) in [("B", b), ("C", c)] {
        let (status, body) = upload_by(gw, &spender, ALPHA, later.clone()).await;
        refused(&format!("upload on {name}"), status, &body);
    }
    // The teammate (no budget of its own) still works: the team has room.
    let (status, ok) = upload_by(b, &teammate, ALPHA, later.clone()).await;
    assert_eq!(status, 200, "{ok}");

    // C lowers the team's budget below what the spender spent through A:
    // B refuses the teammate's batch at once.
    let (status, t) = c
        .post(
            "/team/update",
            &json!({"team_id": "team-budget", "max_budget": spent.to_string()}),
        )
        .await
        .unwrap();
    assert_eq!(status, 200, "{t}");
    let (status, body) = create_by(b, &teammate, file_c["id"].as_str().unwrap()).await;
    refused("teammate's create on B", status, &body);

    // C raises both budgets: B lets the spender's batch in at once, and it
    // is billed on top, exactly.
    for (path, body) in [
        (
            "/team/update",
            json!({"team_id": "team-budget", "max_budget": 1000}),
        ),
        (
            "/key/update",
            json!({"key": spender_id, "max_budget": 1000}),
        ),
    ] {
        let (status, r) = c.post(path, &body).await.unwrap();
        assert_eq!(status, 200, "{path}: {r}");
    }
    let (status, again) = create_by(b, &spender, file_b["id"].as_str().unwrap()).await;
    assert_eq!(status, 200, "after the raise: {again}");
    let again = a
        .wait_batch(again["id"].as_str().unwrap(), WAIT)
        .await
        .unwrap();
    assert_eq!(again["status"], "completed", "{again}");
    let (out2, err2) = c.results(&again).await.unwrap();
    assert!(err2.is_empty(), "{}", err2[0]);
    let extra = bill_of(ALPHA, &later, &out2);
    let key = same_everywhere(&fleet, &format!("/key/info?key={spender_id}")).await;
    assert_eq!(dec_of(&key["info"]["spend"]), spent + extra.total());
}
