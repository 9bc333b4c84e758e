//! The HTTP routes: vLLM's OpenAI-compatible endpoints plus `/mock/*` controls.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

use crate::config::Faults;
use crate::metrics;
use crate::scheduler::SchedulingPolicy;
use crate::state::{AppState, Fault};
use crate::usage::{self, body_digest, raw_digest};
use crate::{responses, responses_api};

/// Largest accepted request body.
const BODY_LIMIT: usize = 64 * 1024 * 1024;
/// Largest accepted `n` (choices per prompt).
const MAX_N: u64 = 128;
/// Most items (choices, embedding inputs, scored pairs, documents) in one
/// answer, so that no request can make the mock allocate without bound.
const MAX_ITEMS: usize = 100_000;

fn check_items(count: usize, what: &str) -> Result<(), String> {
    if count > MAX_ITEMS {
        return Err(format!(
            "mock-vllm accepts at most {MAX_ITEMS} {what}, got {count}."
        ));
    }
    Ok(())
}

/// Response extension asking the connection layer to drop the connection
/// instead of writing the response.
#[derive(Debug, Clone, Copy)]
pub(crate) struct DropConnection;

/// The inference endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Endpoint {
    Chat,
    Completions,
    Embeddings,
    Score,
    Rerank,
    Responses,
}

impl Endpoint {
    fn path(self) -> &'static str {
        match self {
            Endpoint::Chat => "/v1/chat/completions",
            Endpoint::Completions => "/v1/completions",
            Endpoint::Embeddings => "/v1/embeddings",
            Endpoint::Score => "/v1/score",
            Endpoint::Rerank => "/v1/rerank",
            Endpoint::Responses => "/v1/responses",
        }
    }
}

/// Builds the router over shared state.
pub(crate) fn router(state: Arc<AppState>) -> Router {
    let inference = |ep: Endpoint| {
        post(
            move |State(s): State<Arc<AppState>>, headers: HeaderMap, body: Bytes| async move {
                infer(s, ep, headers, body).await
            },
        )
    };
    Router::new()
        .route(Endpoint::Chat.path(), inference(Endpoint::Chat))
        .route(
            Endpoint::Completions.path(),
            inference(Endpoint::Completions),
        )
        .route(Endpoint::Embeddings.path(), inference(Endpoint::Embeddings))
        .route(Endpoint::Score.path(), inference(Endpoint::Score))
        .route(Endpoint::Rerank.path(), inference(Endpoint::Rerank))
        .route(Endpoint::Responses.path(), inference(Endpoint::Responses))
        .route("/v1/models", get(models))
        .route("/health", get(|| async { StatusCode::OK }))
        .route(
            "/version",
            get(|| async { Json(json!({"version": "mock"})) }),
        )
        .route("/metrics", get(metrics::render))
        .route("/mock/stats", get(mock_stats))
        .route("/mock/load", get(mock_load))
        .route("/mock/reset", post(mock_reset))
        .route("/mock/faults", get(mock_get_faults).post(mock_set_faults))
        .fallback(|| async { (StatusCode::NOT_FOUND, Json(json!({"detail": "Not Found"}))) })
        .method_not_allowed_fallback(|| async {
            (
                StatusCode::METHOD_NOT_ALLOWED,
                Json(json!({"detail": "Method Not Allowed"})),
            )
        })
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(state)
}

/// One inference request: count, authenticate, inject faults, wait for a
/// seat in the batch and run for the latency, validate, answer.
async fn infer(state: Arc<AppState>, ep: Endpoint, headers: HeaderMap, raw: Bytes) -> Response {
    state.with_stats(|s| s.record_received(ep.path()));
    if !state.authorized(&headers) {
        return responses::unauthorized();
    }
    let parsed = serde_json::from_slice::<Value>(&raw);
    let digest = match &parsed {
        Ok(v) => body_digest(v),
        Err(_) => raw_digest(&raw),
    };
    let attempt = state.with_stats(|s| s.record_body(&digest));
    let _running = state.enter();
    let fault = state.decide(attempt);
    tracing::debug!(endpoint = ep.path(), attempt, ?fault, "inference request");
    if fault == Fault::Hang {
        return std::future::pending::<Response>().await;
    }
    // vLLM checks the priority before scheduling anything.
    let priority = match priority_of(parsed.as_ref().ok(), state.scheduler.policy()) {
        Ok(p) => p,
        Err(message) => return responses::bad_request(&message),
    };
    let (_seat, runs_for) = state.scheduler.admit(priority).await;
    if !runs_for.is_zero() {
        tokio::time::sleep(runs_for).await;
    }
    match fault {
        Fault::Drop => {
            let mut resp = StatusCode::INTERNAL_SERVER_ERROR.into_response();
            resp.extensions_mut().insert(DropConnection);
            return resp;
        }
        Fault::Fail => return responses::injected_failure(),
        Fault::RateLimit(secs) => return responses::rate_limited(secs),
        Fault::None | Fault::Hang => {}
    }
    let body = match parsed {
        Ok(v @ Value::Object(_)) => v,
        Ok(_) => return responses::bad_request("The request body must be a JSON object."),
        Err(e) => return responses::bad_request(&format!("JSON decode error: {e}")),
    };
    let model = match body.get("model") {
        Some(Value::String(m)) => m.clone(),
        None | Some(Value::Null) => return responses::bad_request("Field required: `model`."),
        Some(_) => return responses::bad_request("`model` must be a string."),
    };
    if !state.models.contains(&model) {
        return responses::model_not_found(&model);
    }
    if body.get("stream").and_then(Value::as_bool) == Some(true) {
        return responses::bad_request("mock-vllm does not support `stream: true`.");
    }
    let answered = match ep {
        Endpoint::Chat => answer_chat(&body, &model),
        Endpoint::Completions => answer_completions(&body, &model),
        Endpoint::Embeddings => answer_embeddings(&body, &model),
        Endpoint::Score => usage::score_pairs(&body).and_then(|pairs| {
            check_items(pairs.len(), "pairs")?;
            let (json, prompt) = responses::score(&body, &model, &pairs);
            Ok((json, prompt, 0))
        }),
        Endpoint::Rerank => usage::rerank_docs(&body).and_then(|(query, docs)| {
            check_items(docs.len(), "documents")?;
            let (json, prompt) = responses::rerank(&body, &model, &query, &docs);
            Ok((json, prompt, 0))
        }),
        Endpoint::Responses => {
            responses_api::check(&body).map(|()| responses_api::answer(&body, &model))
        }
    };
    match answered {
        Ok((json, prompt, completion)) => {
            state.with_stats(|s| s.record_success(&digest, prompt, completion));
            (StatusCode::OK, Json(json)).into_response()
        }
        Err(message) => responses::bad_request(&message),
    }
}

/// The request's `priority` (default 0), refused as vLLM refuses it: not an
/// integer, or not 0 while the server does not schedule by priority.
fn priority_of(body: Option<&Value>, policy: SchedulingPolicy) -> Result<i64, String> {
    let priority = match body.and_then(|b| b.get("priority")) {
        None | Some(Value::Null) => 0,
        Some(v) => v
            .as_i64()
            .ok_or_else(|| format!("`priority` must be an integer, got {v}."))?,
    };
    if priority != 0 && policy != SchedulingPolicy::Priority {
        return Err(format!(
            "Got priority {priority} but Priority scheduling is not enabled."
        ));
    }
    Ok(priority)
}

/// Validates the sampling fields shared by chat and completions.
fn check_sampling(body: &Value) -> Result<(), String> {
    for field in ["max_tokens", "max_completion_tokens"] {
        match body.get(field) {
            None | Some(Value::Null) => {}
            Some(v) => match v.as_u64() {
                Some(n) if n >= 1 => {}
                _ => return Err(format!("`{field}` must be at least 1, got {v}.")),
            },
        }
    }
    match body.get("n") {
        None | Some(Value::Null) => Ok(()),
        Some(v) => match v.as_u64() {
            Some(n) if (1..=MAX_N).contains(&n) => Ok(()),
            _ => Err(format!("`n` must be an integer in 1..={MAX_N}, got {v}.")),
        },
    }
}

/// Chat: returns (body, prompt tokens, completion tokens).
fn answer_chat(body: &Value, model: &str) -> Result<(Value, u64, u64), String> {
    check_sampling(body)?;
    let messages = body
        .get("messages")
        .and_then(Value::as_array)
        .ok_or_else(|| "Field required: `messages` (a list).".to_string())?;
    if messages.iter().any(|m| !m.is_object()) {
        return Err("Each message must be an object.".to_string());
    }
    Ok(responses::chat(body, model))
}

/// Checks a `prompt`/`input` value and splits it into single prompts.
fn checked_inputs<'a>(v: &'a Value, field: &str) -> Result<Vec<&'a Value>, String> {
    let inputs = usage::split_inputs(v);
    if inputs.is_empty() || !inputs.iter().all(|p| usage::is_single_prompt(p)) {
        return Err(format!(
            "`{field}` must be a string, a list of strings, a list of token ids \
             or a list of such lists, and not empty."
        ));
    }
    Ok(inputs)
}

/// Completions: returns (body, prompt tokens, completion tokens).
fn answer_completions(body: &Value, model: &str) -> Result<(Value, u64, u64), String> {
    check_sampling(body)?;
    let prompt = body
        .get("prompt")
        .ok_or_else(|| "Field required: `prompt`.".to_string())?;
    let prompts = checked_inputs(prompt, "prompt")?;
    let n = usize::try_from(usage::choices_per_prompt(body)).unwrap_or(usize::MAX);
    check_items(prompts.len().saturating_mul(n), "choices")?;
    Ok(responses::completion(body, model, prompts.len()))
}

/// Embeddings (plain `input`, or chat-style `messages` as one input):
/// returns (body, prompt tokens, 0).
fn answer_embeddings(body: &Value, model: &str) -> Result<(Value, u64, u64), String> {
    let inputs = if let Some(input) = body.get("input") {
        checked_inputs(input, "input")?
    } else if let Some(messages) = body.get("messages").filter(|m| m.is_array()) {
        vec![messages]
    } else {
        return Err("Field required: `input`.".to_string());
    };
    check_items(inputs.len(), "inputs")?;
    let (json, prompt) = responses::embeddings(body, model, &inputs);
    Ok((json, prompt, 0))
}

/// `GET /v1/models`.
async fn models(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    if !state.authorized(&headers) {
        return responses::unauthorized();
    }
    let created = responses::unix_now();
    let data: Vec<Value> = state
        .models
        .iter()
        .map(|m| {
            json!({
                "id": m,
                "object": "model",
                "created": created,
                "owned_by": "vllm",
                "root": m,
                "parent": null,
                "max_model_len": 4096,
                "permission": [],
            })
        })
        .collect();
    Json(json!({"object": "list", "data": data})).into_response()
}

/// `GET /mock/load`: the batch model's time-averaged figures.
async fn mock_load(State(state): State<Arc<AppState>>) -> Response {
    Json(state.scheduler.load()).into_response()
}

/// `GET /mock/stats`.
async fn mock_stats(State(state): State<Arc<AppState>>) -> Response {
    Json(state.stats()).into_response()
}

/// `POST /mock/reset`: zero the counters; answers 204.
async fn mock_reset(State(state): State<Arc<AppState>>) -> StatusCode {
    state.reset();
    StatusCode::NO_CONTENT
}

/// `GET /mock/faults`.
async fn mock_get_faults(State(state): State<Arc<AppState>>) -> Response {
    Json(state.faults().sanitized()).into_response()
}

/// `POST /mock/faults`: fields given in the JSON object replace the current
/// ones, others are kept. Answers with the faults now in force.
async fn mock_set_faults(State(state): State<Arc<AppState>>, raw: Bytes) -> Response {
    let patch = match serde_json::from_slice::<Value>(&raw) {
        Ok(Value::Object(p)) => p,
        Ok(_) => return responses::bad_request("The request body must be a JSON object."),
        Err(e) => return responses::bad_request(&format!("JSON decode error: {e}")),
    };
    let mut merged = match serde_json::to_value(state.faults()) {
        Ok(Value::Object(m)) => m,
        _ => serde_json::Map::new(),
    };
    merged.extend(patch);
    match serde_json::from_value::<Faults>(Value::Object(merged)) {
        Ok(f) => {
            state.set_faults(f);
            Json(state.faults()).into_response()
        }
        Err(e) => responses::bad_request(&format!("invalid faults: {e}")),
    }
}
