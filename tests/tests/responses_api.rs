//! `/v1/responses` batches and the Batch object as OpenAI returns it today,
//! through the real binary: usage (with cached and reasoning tokens) and
//! cost read from the Responses shape, `model`, `output_expires_after` on
//! the result files, and how a client learns which endpoints a model
//! accepts (`GET /v1/models`, and the error of a create that names another).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::str::FromStr;

use batchgate_cost::Decimal;
use batchgate_mock_vllm::{responses_usage, ResponsesUsage, REASONING_TOKENS};
use batchgate_tests::one_model::{gateway, id, mock, MODEL, WAIT};
use batchgate_tests::{assert_error_envelope, Gateway};
use serde_json::{json, Value};

const RESPONSES: &str = "/v1/responses";

/// Five Responses lines: plain, with a cached prefix, with reasoning, with
/// both, and one the server refuses (`max_output_tokens: 0`).
fn bodies() -> Vec<Value> {
    let instructions = "You answer in one short line.";
    vec![
        json!({"model": MODEL, "input": "Say hello"}),
        json!({"model": MODEL, "instructions": instructions, "prompt_cache_key": "k",
               "input": [{"role": "user", "content": [{"type": "input_text", "text": "What is two plus two?"}]}]}),
        json!({"model": MODEL, "input": "Think first", "reasoning": {"effort": "low"}}),
        json!({"model": MODEL, "instructions": instructions, "prompt_cache_key": "k",
               "input": "Both at once", "reasoning": {"effort": "high"}, "max_output_tokens": 5}),
        json!({"model": MODEL, "input": "never answered", "max_output_tokens": 0}),
    ]
}

fn jsonl(bodies: &[Value]) -> Vec<u8> {
    let mut out = String::new();
    for (i, body) in bodies.iter().enumerate() {
        let line =
            json!({"custom_id": format!("r{i}"), "method": "POST", "url": RESPONSES, "body": body});
        out.push_str(&format!("{line}\n"));
    }
    out.into_bytes()
}

async fn create(gw: &Gateway, body: Value) -> (u16, Value) {
    gw.post("/v1/batches", &body).await.unwrap()
}

fn dec(v: &Value) -> Decimal {
    Decimal::from_str(v.as_str().unwrap_or_default()).unwrap()
}

#[tokio::test]
async fn responses_batches_report_usage_cost_model_and_file_expiry() {
    let mock = mock(0).await;
    let gw = gateway(&mock, &[], "").await;
    let bodies = bodies();
    let file = gw.upload(MODEL, "r.jsonl", jsonl(&bodies)).await.unwrap();
    let (status, batch) = create(
        &gw,
        json!({"input_file_id": id(&file), "endpoint": RESPONSES, "completion_window": "24h",
               "output_expires_after": {"anchor": "created_at", "seconds": 3600}}),
    )
    .await;
    assert_eq!(status, 200, "{batch}");
    assert_eq!(batch["model"], MODEL);
    assert!(batch["usage"].is_null(), "no line has run yet: {batch}");
    assert_eq!(
        batch["cost"]["total"], "0",
        "cost is there from the start: {batch}"
    );
    let done = gw.wait_batch(id(&batch), WAIT).await.unwrap();
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["model"], MODEL);
    assert_eq!(
        done["request_counts"],
        json!({"total": 5, "completed": 4, "failed": 1})
    );

    // Usage: the Responses shape of every successful line, added up.
    let ok = &bodies[..4];
    let sum =
        |f: fn(&ResponsesUsage) -> u64| -> u64 { ok.iter().map(|b| f(&responses_usage(b))).sum() };
    let (input, cached) = (sum(|u| u.input_tokens), sum(|u| u.cached_tokens));
    let (output, reasoning) = (sum(|u| u.output_tokens), sum(|u| u.reasoning_tokens));
    assert!(cached > 0 && reasoning == 2 * REASONING_TOKENS);
    let usage = &done["usage"];
    assert_eq!(
        *usage,
        json!({"input_tokens": input, "input_tokens_details": {"cached_tokens": cached},
               "output_tokens": output, "output_tokens_details": {"reasoning_tokens": reasoning},
               "total_tokens": input + output}),
        "{done}"
    );

    let (out, err) = gw.results(&done).await.unwrap();
    assert_eq!(out.len(), 4);
    assert!(out
        .iter()
        .all(|l| l["response"]["body"]["object"] == "response"));
    assert_eq!(err.len(), 1);
    assert_eq!(err[0]["custom_id"], "r4");
    // Both result files expire an hour after their own creation.
    for key in ["output_file_id", "error_file_id"] {
        let (_, f) = gw
            .get(&format!("/v1/files/{}", done[key].as_str().unwrap()))
            .await
            .unwrap();
        assert_eq!(
            f["expires_at"],
            f["created_at"].as_i64().unwrap() + 3600,
            "{key}: {f}"
        );
    }
}

#[tokio::test]
async fn cost_reads_the_responses_usage_with_the_cache_price() {
    let mock = mock(0).await;
    let prices = [
        ("input_cost_per_token", "0.000002"),
        ("output_cost_per_token", "0.000004"),
        ("cache_read_input_token_cost", "0.0000005"),
    ];
    let gw = gateway(&mock, &prices, "").await;
    let bodies = &bodies()[..4];
    let file = gw.upload(MODEL, "r.jsonl", jsonl(bodies)).await.unwrap();
    let (_, batch) = create(
        &gw,
        json!({"input_file_id": id(&file), "endpoint": RESPONSES, "completion_window": "24h"}),
    )
    .await;
    let done = gw.wait_batch(id(&batch), WAIT).await.unwrap();
    assert_eq!(done["status"], "completed", "{done}");
    // Batch lines cost half: uncached input, cached input and output each
    // at half their price.
    let half = |p: &str| Decimal::from_str(p).unwrap() / Decimal::from(2);
    let mut want = Decimal::ZERO;
    for b in bodies {
        let u = responses_usage(b);
        want += Decimal::from(u.input_tokens - u.cached_tokens) * half("0.000002")
            + Decimal::from(u.cached_tokens) * half("0.0000005")
            + Decimal::from(u.output_tokens) * half("0.000004");
    }
    assert_eq!(dec(&done["cost"]["total"]), want, "{done}");
    assert_eq!(done["cost"]["priced_lines"], 4);
}

#[tokio::test]
async fn clients_are_told_which_endpoints_a_model_accepts() {
    let mock = mock(0).await;
    let narrowed = [("endpoints", "[/v1/chat/completions, /v1/embeddings]")];
    let gw = gateway(&mock, &narrowed, "").await;

    let (status, models) = gw.get("/v1/models").await.unwrap();
    assert_eq!(status, 200, "{models}");
    assert_eq!(models["object"], "list");
    let m = &models["data"][0];
    assert_eq!((&m["id"], &m["object"]), (&json!(MODEL), &json!("model")));
    assert_eq!(
        m["batch_endpoints"],
        json!(["/v1/chat/completions", "/v1/embeddings"])
    );
    let (status, one) = gw.get(&format!("/v1/models/{MODEL}")).await.unwrap();
    assert_eq!((status, &one), (200, m));
    let (status, none) = gw.get("/v1/models/no/such-model").await.unwrap();
    assert_eq!(status, 404, "{none}");
    assert_error_envelope(&none);

    let file = gw
        .upload(MODEL, "r.jsonl", jsonl(&bodies()[..1]))
        .await
        .unwrap();
    for (endpoint, says) in [
        (RESPONSES, "litellm_params.endpoints"),
        (
            "/v1/moderations",
            "not an endpoint batchgate runs batches on",
        ),
    ] {
        let (status, body) = create(
            &gw,
            json!({"input_file_id": id(&file), "endpoint": endpoint, "completion_window": "24h"}),
        )
        .await;
        assert_eq!(status, 400, "{body}");
        assert_error_envelope(&body);
        assert_eq!(body["error"]["param"], "endpoint");
        assert_eq!(body["error"]["code"], "unsupported_endpoint");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains(says), "{message}");
        assert!(
            message.contains("/v1/chat/completions, /v1/embeddings"),
            "{message}"
        );
    }
}

#[tokio::test]
async fn background_responses_fail_validation_and_bad_expiry_is_refused() {
    let mock = mock(0).await;
    let gw = gateway(&mock, &[], "").await;
    let line = json!({"model": MODEL, "input": "later", "background": true});
    let file = gw.upload(MODEL, "bg.jsonl", jsonl(&[line])).await.unwrap();
    for expiry in [
        json!({"anchor": "created_at", "seconds": 60}),
        json!({"anchor": "last_active_at", "seconds": 3600}),
    ] {
        let (status, body) = create(
            &gw,
            json!({"input_file_id": id(&file), "endpoint": RESPONSES, "completion_window": "24h",
                   "output_expires_after": expiry}),
        )
        .await;
        assert_eq!(status, 400, "{body}");
        assert_eq!(body["error"]["param"], "output_expires_after");
    }
    let (_, batch) = create(
        &gw,
        json!({"input_file_id": id(&file), "endpoint": RESPONSES, "completion_window": "24h"}),
    )
    .await;
    let done = gw.wait_batch(id(&batch), WAIT).await.unwrap();
    assert_eq!(done["status"], "failed", "{done}");
    assert_eq!(
        done["errors"]["data"][0]["code"], "background_unsupported",
        "{done}"
    );
    assert_eq!(mock.stats().requests, 0);

    for (limit, want) in [("0", 400), ("101", 400), ("1", 200), ("100", 200)] {
        let (status, body) = gw.get(&format!("/v1/batches?limit={limit}")).await.unwrap();
        assert_eq!(status, want, "limit={limit}: {body}");
    }
}
