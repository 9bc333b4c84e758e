//! Response shapes, deterministic usage, errors and auth.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use batchgate_mock_vllm::{
    completion_tokens_of, prompt_tokens_of, responses_usage, MockConfig, MockHandle, MockVllm,
    DEFAULT_MODEL, REASONING_TOKENS,
};
use reqwest::StatusCode;
use serde_json::{json, Value};

const MODEL: &str = DEFAULT_MODEL;

async fn start(cfg: MockConfig) -> (MockHandle, reqwest::Client) {
    let mock = MockVllm::start(cfg).await.expect("start mock");
    (mock, reqwest::Client::new())
}

async fn post(
    client: &reqwest::Client,
    mock: &MockHandle,
    path: &str,
    body: &Value,
) -> (StatusCode, Value) {
    let resp = client
        .post(format!("{}{path}", mock.base_url()))
        .json(body)
        .send()
        .await
        .expect("send");
    let status = resp.status();
    let text = resp.text().await.expect("body");
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

#[tokio::test]
async fn chat_shape_and_deterministic_usage() {
    let (mock, client) = start(MockConfig::default()).await;
    let body = json!({
        "model": MODEL,
        "messages": [
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": [
                {"type": "text", "text": "What is two plus two?"},
                {"type": "image_url", "image_url": {"url": "data:,"}}
            ]}
        ]
    });
    let (status, v) = post(&client, &mock, "/v1/chat/completions", &body).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert!(v["id"].as_str().unwrap().starts_with("chatcmpl-"));
    assert_eq!(v["object"], "chat.completion");
    assert!(v["created"].as_u64().unwrap() > 1_600_000_000);
    assert_eq!(v["model"], MODEL);
    let choice = &v["choices"][0];
    assert_eq!(choice["index"], 0);
    assert_eq!(choice["message"]["role"], "assistant");
    assert_eq!(choice["finish_reason"], "stop");
    assert!(choice["logprobs"].is_null());
    let content = choice["message"]["content"].as_str().unwrap();
    assert!(content.starts_with("mock reply 1"));
    assert_eq!(content.split_whitespace().count(), 16);
    // 3 + 5 words; the image part counts nothing.
    assert_eq!(prompt_tokens_of(&body), 8);
    assert_eq!(completion_tokens_of(&body), 16);
    assert_eq!(
        v["usage"],
        json!({"prompt_tokens": 8, "completion_tokens": 16, "total_tokens": 24, "prompt_tokens_details": null})
    );

    // A small max_tokens caps the reply and gives finish_reason "length".
    let capped = json!({"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 3, "n": 2});
    let (status, v) = post(&client, &mock, "/v1/chat/completions", &capped).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(v["choices"].as_array().unwrap().len(), 2);
    assert_eq!(v["choices"][1]["message"]["content"], "mock reply 1");
    assert_eq!(v["choices"][1]["finish_reason"], "length");
    assert_eq!(
        v["usage"]["completion_tokens"],
        completion_tokens_of(&capped)
    );
    assert_eq!(v["usage"]["completion_tokens"], 6);
    mock.shutdown().await;
}

#[tokio::test]
async fn completions_embeddings_score_rerank_shapes() {
    let (mock, client) = start(MockConfig::default()).await;

    let body = json!({"model": MODEL, "prompt": ["one two", "three"], "max_tokens": 4});
    let (status, v) = post(&client, &mock, "/v1/completions", &body).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["object"], "text_completion");
    assert!(v["id"].as_str().unwrap().starts_with("cmpl-"));
    assert_eq!(v["choices"].as_array().unwrap().len(), 2);
    assert_eq!(v["choices"][1]["text"], "mock reply 1 2");
    assert_eq!(v["usage"]["prompt_tokens"], 3);
    assert_eq!(v["usage"]["completion_tokens"], 8);
    assert_eq!(v["usage"]["total_tokens"], 11);

    let body = json!({"model": MODEL, "input": ["hello world", "hello world", "other"]});
    let (status, v) = post(&client, &mock, "/v1/embeddings", &body).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["object"], "list");
    assert_eq!(v["model"], MODEL);
    let data = v["data"].as_array().unwrap();
    assert_eq!(data.len(), 3);
    assert_eq!(data[2]["index"], 2);
    assert_eq!(data[0]["object"], "embedding");
    assert_eq!(data[0]["embedding"].as_array().unwrap().len(), 8);
    assert_eq!(data[0]["embedding"], data[1]["embedding"]);
    assert_ne!(data[0]["embedding"], data[2]["embedding"]);
    assert_eq!(
        v["usage"],
        json!({"prompt_tokens": 5, "total_tokens": 5, "completion_tokens": 0, "prompt_tokens_details": null})
    );
    let single = json!({"model": MODEL, "input": "hello world"});
    let (_, v1) = post(&client, &mock, "/v1/embeddings", &single).await;
    assert_eq!(v1["data"][0]["embedding"], data[0]["embedding"]);
    assert_eq!(completion_tokens_of(&single), 0);

    let body = json!({"model": MODEL, "text_1": "capital of France", "text_2": ["Paris is the capital of France", "Berlin"]});
    let (status, v) = post(&client, &mock, "/v1/score", &body).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["object"], "list");
    assert!(v["id"].as_str().is_some());
    assert_eq!(v["data"][1]["object"], "score");
    assert_eq!(v["data"][1]["index"], 1);
    assert!(v["data"][0]["score"].as_f64().unwrap() > v["data"][1]["score"].as_f64().unwrap());
    assert_eq!(v["usage"]["prompt_tokens"], prompt_tokens_of(&body));
    assert_eq!(v["usage"]["prompt_tokens"], 3 + 6 + 3 + 1);

    let body = json!({"model": MODEL, "query": "capital of France", "documents": ["Berlin", "Paris is the capital of France", "France"], "top_n": 2});
    let (status, v) = post(&client, &mock, "/v1/rerank", &body).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert!(v["id"].as_str().is_some());
    assert_eq!(v["model"], MODEL);
    let results = v["results"].as_array().unwrap();
    assert_eq!(results.len(), 2);
    assert_eq!(results[0]["index"], 1);
    assert_eq!(
        results[0]["document"]["text"],
        "Paris is the capital of France"
    );
    assert!(
        results[0]["relevance_score"].as_f64().unwrap()
            >= results[1]["relevance_score"].as_f64().unwrap()
    );
    assert_eq!(v["usage"]["total_tokens"], prompt_tokens_of(&body));
    mock.shutdown().await;
}

#[tokio::test]
async fn models_health_metrics() {
    let cfg = MockConfig {
        models: vec!["a/model".into(), "b".into()],
        ..MockConfig::default()
    };
    let (mock, client) = start(cfg).await;
    let base = mock.base_url();

    let v: Value = client
        .get(format!("{base}/v1/models"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["object"], "list");
    let data = v["data"].as_array().unwrap();
    assert_eq!(data.len(), 2);
    assert_eq!(data[0]["id"], "a/model");
    assert_eq!(data[0]["object"], "model");
    assert_eq!(data[0]["owned_by"], "vllm");
    assert_eq!(data[0]["root"], "a/model");
    assert!(data[0]["parent"].is_null());
    assert_eq!(data[0]["max_model_len"], 4096);

    let resp = client.get(format!("{base}/health")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(resp.text().await.unwrap().is_empty());

    let body = json!({"model": "b", "prompt": "x y"});
    let (status, _) = post(&client, &mock, "/v1/completions", &body).await;
    assert_eq!(status, StatusCode::OK);
    let text = client
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.contains("vllm:request_success_total{model_name=\"a/model\",engine=\"0\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("vllm:prompt_tokens_total{model_name=\"a/model\",engine=\"0\"} 2"),
        "{text}"
    );
    assert!(text.contains("# TYPE vllm:num_requests_running gauge"));
    // Without a capacity nothing ever waits.
    assert!(
        text.contains("vllm:num_requests_waiting{model_name=\"a/model\",engine=\"0\"} 0\n"),
        "{text}"
    );

    let resp = client.get(format!("{base}/nope")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    let resp = client
        .get(format!("{base}/v1/chat/completions"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED);
    mock.shutdown().await;
}

#[tokio::test]
async fn unknown_model_and_bad_requests() {
    let (mock, client) = start(MockConfig::default()).await;
    let (status, v) = post(
        &client,
        &mock,
        "/v1/chat/completions",
        &json!({"model": "gpt-4", "messages": []}),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        v,
        json!({"error": {"message": "The model `gpt-4` does not exist.", "type": "NotFoundError", "param": "model", "code": 404}})
    );
    assert!(v["error"]["code"].is_u64());

    let url = format!("{}/v1/chat/completions", mock.base_url());
    let resp = client
        .post(&url)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["type"], "BadRequestError");
    assert_eq!(v["error"]["code"], 400);
    assert!(v["error"]["param"].is_null());

    let bad = [
        ("/v1/chat/completions", json!({"messages": []})),
        (
            "/v1/chat/completions",
            json!({"model": MODEL, "messages": [], "stream": true}),
        ),
        ("/v1/chat/completions", json!({"model": MODEL})),
        (
            "/v1/chat/completions",
            json!({"model": MODEL, "messages": [], "max_tokens": 0}),
        ),
        (
            "/v1/chat/completions",
            json!({"model": MODEL, "messages": [], "n": 1_000_000}),
        ),
        ("/v1/completions", json!({"model": MODEL, "prompt": []})),
        (
            "/v1/completions",
            json!({"model": MODEL, "prompt": {"a": 1}}),
        ),
        ("/v1/embeddings", json!({"model": MODEL})),
        (
            "/v1/score",
            json!({"model": MODEL, "text_1": ["a", "b"], "text_2": ["c", "d", "e"]}),
        ),
        (
            "/v1/rerank",
            json!({"model": MODEL, "query": 3, "documents": []}),
        ),
        ("/v1/embeddings", json!(["not", "an", "object"])),
        (
            "/v1/completions",
            json!({"model": MODEL, "prompt": vec!["x"; 1000], "n": 128}),
        ),
    ];
    for (path, body) in bad {
        let (status, v) = post(&client, &mock, path, &body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path} {body} -> {v}");
        assert_eq!(v["error"]["code"], 400, "{v}");
    }
    let stats = mock.stats();
    assert_eq!(stats.succeeded, 0);
    assert_eq!(stats.requests, 14);
    mock.shutdown().await;
}

#[tokio::test]
async fn api_key_is_enforced() {
    let cfg = MockConfig {
        api_key: Some("sekret".into()),
        ..MockConfig::default()
    };
    let (mock, client) = start(cfg).await;
    let url = format!("{}/v1/chat/completions", mock.base_url());
    let body = json!({"model": MODEL, "messages": [{"role": "user", "content": "hi"}]});

    let resp = client.post(&url).json(&body).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v, json!({"error": "Unauthorized"}));

    let resp = client
        .post(&url)
        .bearer_auth("wrong")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let resp = client
        .post(&url)
        .bearer_auth("sekret")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);

    let models = format!("{}/v1/models", mock.base_url());
    assert_eq!(
        client.get(&models).send().await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        client
            .get(&models)
            .bearer_auth("sekret")
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    let health = format!("{}/health", mock.base_url());
    assert_eq!(
        client.get(&health).send().await.unwrap().status(),
        StatusCode::OK
    );

    let stats = mock.stats();
    assert_eq!(stats.requests, 3);
    assert_eq!(stats.succeeded, 1);
    assert_eq!(stats.by_body.values().sum::<u64>(), 1);
    mock.shutdown().await;
}

#[tokio::test]
async fn responses_shape_with_cached_and_reasoning_tokens() {
    let (mock, client) = start(MockConfig::default()).await;
    let body = json!({
        "model": MODEL,
        "instructions": "You answer in one line.",
        "input": [{"role": "user", "content": [{"type": "input_text", "text": "Say hello"}]}],
        "prompt_cache_key": "team-a",
        "reasoning": {"effort": "low"},
    });
    let (status, v) = post(&client, &mock, "/v1/responses", &body).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert!(v["id"].as_str().unwrap().starts_with("resp_"));
    assert_eq!(v["object"], "response");
    assert_eq!(v["status"], "completed");
    assert_eq!(v["model"], MODEL);
    assert_eq!(v["output"][0]["type"], "reasoning");
    let message = &v["output"][1];
    assert_eq!(
        (&message["type"], &message["role"]),
        (&json!("message"), &json!("assistant"))
    );
    assert_eq!(message["content"][0]["type"], "output_text");
    assert_eq!(
        message["content"][0]["text"]
            .as_str()
            .unwrap()
            .split(' ')
            .count(),
        16
    );
    let u = responses_usage(&body);
    assert_eq!((u.input_tokens, u.cached_tokens), (5 + 2, 5));
    assert_eq!(
        (u.output_tokens, u.reasoning_tokens),
        (16 + REASONING_TOKENS, REASONING_TOKENS)
    );
    assert_eq!(v["usage"]["input_tokens"], u.input_tokens);
    assert_eq!(
        v["usage"]["input_tokens_details"]["cached_tokens"],
        u.cached_tokens
    );
    assert_eq!(v["usage"]["output_tokens"], u.output_tokens);
    assert_eq!(
        v["usage"]["output_tokens_details"]["reasoning_tokens"],
        u.reasoning_tokens
    );
    assert_eq!(v["usage"]["total_tokens"], u.total_tokens());

    let plain = json!({"model": MODEL, "input": "hi", "max_output_tokens": 2});
    let (_, v) = post(&client, &mock, "/v1/responses", &plain).await;
    assert_eq!(v["status"], "incomplete");
    assert_eq!(v["incomplete_details"]["reason"], "max_output_tokens");
    assert_eq!(v["output"].as_array().unwrap().len(), 1);
    assert_eq!(v["usage"]["input_tokens_details"]["cached_tokens"], 0);
    assert_eq!(v["usage"]["output_tokens"], 2);
    let (status, v) = post(&client, &mock, "/v1/responses", &json!({"model": MODEL})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(mock.stats().by_endpoint.get("/v1/responses"), Some(&3));
}
