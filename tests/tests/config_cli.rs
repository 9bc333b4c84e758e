//! The binary's configuration as an operator meets it: invalid configs stop
//! it with the field path at fault, `api_base` may end in `/v1`, values come
//! from the environment via `os.environ/NAME`, and `HOSTED_VLLM_API_BASE` /
//! `HOSTED_VLLM_API_KEY` fill in what a deployment leaves out.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use batchgate_mock_vllm::DEFAULT_MODEL;
use batchgate_tests::{
    chat_lines, config, run_until_exit, Gateway, MockConfig, MockHandle, MockVllm, MASTER_KEY,
};
use serde_json::Value;

fn model(name: &str, params: &str) -> String {
    format!("- model_name: {name}\n  litellm_params:\n{params}")
}

/// Upload three chat lines for `model_name`, run them as a batch and check
/// every line reached the mock and succeeded.
async fn run_flow(gw: &Gateway, mock: &MockHandle, model_name: &str) {
    let before = mock.stats().requests;
    let file = gw
        .upload(model_name, "in.jsonl", chat_lines(model_name, 3))
        .await
        .unwrap();
    let batch = gw
        .create_batch(file["id"].as_str().unwrap(), "/v1/chat/completions", "24h")
        .await
        .unwrap();
    let done = gw
        .wait_batch(batch["id"].as_str().unwrap(), Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["request_counts"]["completed"], 3, "{done}");
    assert_eq!(done["request_counts"]["failed"], 0, "{done}");
    let out = gw.jsonl(done["output_file_id"].as_str()).await.unwrap();
    assert_eq!(out.len(), 3);
    for line in &out {
        assert_eq!(line["response"]["status_code"], 200, "{line}");
        assert_eq!(line["response"]["body"]["model"], DEFAULT_MODEL, "{line}");
    }
    assert_eq!(mock.stats().requests - before, 3);
}

async fn status_with_key(gw: &Gateway, key: &str) -> u16 {
    gw.http
        .get(gw.url("/v1/files"))
        .bearer_auth(key)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn invalid_configs_exit_nonzero_naming_the_field() {
    let ok = "    model: hosted_vllm/x\n    api_base: http://127.0.0.1:9\n";
    let key = "general_settings:\n  master_key: sk-1\n";
    let cases: Vec<(String, &str)> = vec![
        (
            format!(
                "model_list:\n{}{}{key}",
                model("a", ok),
                model("b", "    model: foo/bar\n    api_base: http://b\n")
            ),
            "model_list[1].litellm_params.model: unknown provider \"foo\"",
        ),
        (
            format!(
                "model_list:\n{}{key}",
                model("a", "    model: llama\n    api_base: http://a\n")
            ),
            "model_list[0].litellm_params.model:",
        ),
        (
            format!(
                "model_list:\n{}{}{key}",
                model("a", ok),
                model("b", "    model: hosted_vllm/x\n    api_base: ftp://b\n")
            ),
            "model_list[1].litellm_params.api_base:",
        ),
        (
            format!(
                "model_list:\n{}{key}",
                model("a", "    model: hosted_vllm/x\n")
            ),
            "model_list[0].litellm_params.api_base:",
        ),
        (
            format!(
                "model_list:\n{}    endpoints: [/v1/images]\n{key}",
                model("a", ok)
            ),
            "model_list[0].litellm_params.endpoints[0]:",
        ),
        (
            format!(
                "model_list:\n{}{key}  max_file_size_mb: lots\n",
                model("a", ok)
            ),
            "general_settings.max_file_size_mb:",
        ),
        (
            format!(
                "model_list:\n{}{key}  max_file_size_mb: 0\n",
                model("a", ok)
            ),
            "general_settings.max_file_size_mb:",
        ),
        (
            format!(
                "model_list:\n{}general_settings:\n  master_key: os.environ/BG_TEST_SURELY_UNSET\n",
                model("a", ok)
            ),
            "general_settings.master_key: environment variable BG_TEST_SURELY_UNSET is not set",
        ),
        (
            format!(
                "model_list:\n{}{key}batch_settings:\n  completion_windows: [24h, soon]\n",
                model("a", ok)
            ),
            "batch_settings.completion_windows[1]:",
        ),
        (
            format!("model_list:\n- litellm_params: {{model: hosted_vllm/x}}\n{key}"),
            "model_list[0]",
        ),
        ("model_list: [unclosed\n".to_string(), "not valid YAML"),
    ];
    for (yaml, want) in cases {
        // An empty fallback keeps the test independent of the caller's env.
        let (status, stderr) = run_until_exit(&yaml, &[], &[("HOSTED_VLLM_API_BASE", "")])
            .await
            .unwrap();
        assert!(!status.success(), "accepted:\n{yaml}");
        assert!(
            stderr.contains(want),
            "expected {want:?} in stderr for\n{yaml}\ngot: {stderr}"
        );
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}

#[tokio::test]
async fn api_base_ending_in_v1_reaches_the_same_server() {
    let mock = MockVllm::start(MockConfig::default()).await.unwrap();
    let base = mock.base_url();
    let with_v1 = format!("{base}/v1");
    let with_slash = format!("{base}/v1/");
    let gw = Gateway::start(&config(
        &[
            ("plain", &base),
            ("v1", &with_v1),
            ("v1-slash", &with_slash),
        ],
        "",
    ))
    .await
    .unwrap();
    for name in ["v1", "v1-slash", "plain"] {
        run_flow(&gw, &mock, name).await;
    }
}

#[tokio::test]
async fn master_key_can_come_from_the_environment() {
    let yaml = format!(
        "model_list:\n{}general_settings:\n  master_key: os.environ/BG_TEST_MASTER_KEY\n",
        model(
            "m",
            "    model: hosted_vllm/x\n    api_base: http://127.0.0.1:9\n"
        )
    );
    let gw = Gateway::start_with(&yaml, &[], &[("BG_TEST_MASTER_KEY", "sk-from-env")])
        .await
        .unwrap();
    assert_eq!(status_with_key(&gw, "sk-from-env").await, 200);
    assert_eq!(
        status_with_key(&gw, "os.environ/BG_TEST_MASTER_KEY").await,
        401
    );
    assert_eq!(status_with_key(&gw, MASTER_KEY).await, 401);

    let (status, stderr) = run_until_exit(&yaml, &[], &[]).await.unwrap();
    assert!(!status.success());
    assert!(stderr.contains("BG_TEST_MASTER_KEY"), "{stderr}");
}

#[tokio::test]
async fn hosted_vllm_env_fills_in_api_base_and_api_key() {
    let mock = MockVllm::start(MockConfig {
        api_key: Some("upstream-key".into()),
        ..MockConfig::default()
    })
    .await
    .unwrap();
    let yaml = format!(
        "model_list:\n{}general_settings:\n  master_key: {MASTER_KEY}\n",
        model(
            "my-vllm-model",
            &format!("    model: hosted_vllm/{DEFAULT_MODEL}\n")
        )
    );
    let base = format!("{}/v1", mock.base_url());
    let envs = [
        ("HOSTED_VLLM_API_BASE", base.as_str()),
        ("HOSTED_VLLM_API_KEY", "upstream-key"),
    ];
    let gw = Gateway::start_with(&yaml, &[], &envs).await.unwrap();
    run_flow(&gw, &mock, "my-vllm-model").await;

    // An explicit api_base wins over the environment.
    let explicit = format!(
        "model_list:\n{}general_settings:\n  master_key: {MASTER_KEY}\n",
        model(
            "m",
            &format!(
                "    model: hosted_vllm/{DEFAULT_MODEL}\n    api_base: {}\n",
                mock.base_url()
            )
        )
    );
    let gw = Gateway::start_with(
        &explicit,
        &[],
        &[("HOSTED_VLLM_API_BASE", "http://127.0.0.1:9"), envs[1]],
    )
    .await
    .unwrap();
    run_flow(&gw, &mock, "m").await;

    // Without the key the upstream refuses every line: the key really came
    // from HOSTED_VLLM_API_KEY.
    let gw = Gateway::start_with(&yaml, &[], &[envs[0], ("HOSTED_VLLM_API_KEY", "")])
        .await
        .unwrap();
    let file = gw
        .upload("my-vllm-model", "in.jsonl", chat_lines("my-vllm-model", 1))
        .await
        .unwrap();
    let batch = gw
        .create_batch(file["id"].as_str().unwrap(), "/v1/chat/completions", "24h")
        .await
        .unwrap();
    let done: Value = gw
        .wait_batch(batch["id"].as_str().unwrap(), Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(done["request_counts"]["failed"], 1, "{done}");
    let errors = gw.jsonl(done["error_file_id"].as_str()).await.unwrap();
    assert_eq!(errors[0]["response"]["status_code"], 401, "{errors:?}");
}

/// A config file that cannot be read is named with the reason, once, as a
/// person reads it (no `(os error 2)`, no repeated cause).
#[test]
fn an_unreadable_config_says_why_once() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.yaml");
    let out = std::process::Command::new(batchgate_tests::binary("batchgate"))
        .arg("--config")
        .arg(&missing)
        .args(["--data-dir"])
        .arg(dir.path().join("data"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        stderr.trim_end(),
        format!(
            "batchgate: cannot read {}: No such file or directory",
            missing.display()
        )
    );
}
