//! LiteLLM's "custom pricing": prices written in a deployment's
//! `litellm_params` are read like those in `model_info` (and win over them),
//! through the real binary.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::str::FromStr;
use std::time::Duration;

use batchgate_cost::Decimal;
use batchgate_mock_vllm::{completion_tokens_of, prompt_tokens_of, DEFAULT_MODEL};
use batchgate_tests::{
    chat_lines, config_of_entries, run_until_exit, Gateway, MockConfig, MockVllm,
};
use serde_json::Value;

fn dec(v: &Value) -> Decimal {
    Decimal::from_str(v.as_str().unwrap_or_default()).unwrap()
}

#[tokio::test]
async fn prices_in_litellm_params_price_every_line() {
    let mock = MockVllm::start(MockConfig::default()).await.unwrap();
    // Regular prices in litellm_params, a batch output price overriding a
    // wrong one in model_info.
    let entry = format!(
        "- model_name: m\n  litellm_params:\n    model: hosted_vllm/{DEFAULT_MODEL}\n    api_base: {}\n    \
         input_cost_per_token: 0.000001\n    output_cost_per_token: \"0.000002\"\n    \
         output_cost_per_token_batches: 0.0000008\n  model_info:\n    output_cost_per_token_batches: 5\n",
        mock.base_url()
    );
    let gw = Gateway::start(&config_of_entries(&[entry], ""))
        .await
        .unwrap();
    let lines = chat_lines("m", 5);
    let file = gw.upload("m", "in.jsonl", lines.clone()).await.unwrap();
    let batch = gw
        .create_batch(file["id"].as_str().unwrap(), "/v1/chat/completions", "24h")
        .await
        .unwrap();
    let done = gw
        .wait_batch(batch["id"].as_str().unwrap(), Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(done["status"], "completed", "{done}");

    // Input: the regular price halved; output: the batch price as given.
    let (pin, pout) = (
        Decimal::from_str("0.0000005").unwrap(),
        Decimal::from_str("0.0000008").unwrap(),
    );
    let mut want = Decimal::ZERO;
    for line in String::from_utf8_lossy(&lines).lines() {
        let v: Value = serde_json::from_str(line).unwrap();
        want += Decimal::from(prompt_tokens_of(&v["body"])) * pin
            + Decimal::from(completion_tokens_of(&v["body"])) * pout;
    }
    assert!(want > Decimal::ZERO);
    assert_eq!(dec(&done["cost"]["total"]), want, "{done}");
    assert_eq!(done["cost"]["priced_lines"], 5, "{done}");
    assert_eq!(done["cost"]["unpriced_lines"], 0, "{done}");
}

#[tokio::test]
async fn a_bad_price_in_litellm_params_stops_the_start_naming_it() {
    let entry = format!(
        "- model_name: m\n  litellm_params:\n    model: hosted_vllm/{DEFAULT_MODEL}\n    api_base: http://127.0.0.1:9\n    \
         input_cost_per_token: cheap\n"
    );
    let (status, stderr) = run_until_exit(&config_of_entries(&[entry], ""), &[], &[])
        .await
        .unwrap();
    assert!(!status.success());
    assert!(
        stderr.contains("model_list[0].litellm_params.input_cost_per_token:"),
        "{stderr}"
    );
}
