//! Every line of an accepted input ends in exactly one result file, whatever
//! odd (but valid) JSON it carries; and an input with lines only a skimming
//! parser would let through fails validation, naming those lines, instead of
//! losing them at execution.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use batchgate_mock_vllm::DEFAULT_MODEL;
use batchgate_tests::{
    assert_every_id_once, config_of_entries, model_entry, Gateway, MockConfig, MockVllm,
};

const MODEL: &str = "my-vllm-model";
const CHAT: &str = "/v1/chat/completions";
const WAIT: Duration = Duration::from_secs(120);

fn line(i: usize, extra: &str) -> String {
    format!(
        r#"{{"custom_id":"req-{i}","method":"POST","url":"{CHAT}","body":{{"model":"{MODEL}","messages":[{{"role":"user","content":"line {i}"}}],"extra":{extra}}}}}"#
    )
}

/// Valid JSON at the edges: deep nesting below the limit, extreme numbers
/// in range, escapes of every kind, a long string.
fn odd_but_valid() -> Vec<String> {
    vec![
        format!("{}1{}", "[".repeat(100), "]".repeat(100)),
        "1e308".into(),
        "-1.7976931348623157e308".into(),
        "123456789012345678901234567890".into(),
        r#""\ud83d\ude00 \u0000\u001f \t\n\\ \/ é 漢""#.into(),
        format!("\"{}\"", "x".repeat(200_000)),
        r#"{"k":1,"k":2}"#.into(),
        "null".into(),
    ]
}

async fn gateway(mock: &str) -> Gateway {
    let entry = model_entry(MODEL, DEFAULT_MODEL, mock, &[]);
    Gateway::start(&config_of_entries(&[entry], ""))
        .await
        .unwrap()
}

#[tokio::test]
async fn every_accepted_line_ends_in_exactly_one_result_file() {
    let mock = MockVllm::start(MockConfig::default()).await.unwrap();
    let gw = gateway(&mock.base_url()).await;
    let extras = odd_but_valid();
    let mut file = String::new();
    for i in 1..=200 {
        file.push_str(&line(i, &extras[i % extras.len()]));
        file.push_str(if i % 7 == 0 { "\r\n\n  \n" } else { "\n" });
    }
    let done = gw
        .run_chat_batch(MODEL, file.into_bytes(), WAIT)
        .await
        .unwrap();
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["request_counts"]["total"], 200, "{done}");
    let (out, err) = gw.results(&done).await.unwrap();
    assert_every_id_once(&out, &err, 200);
    let counts = &done["request_counts"];
    assert_eq!(
        counts["completed"].as_u64().unwrap() + counts["failed"].as_u64().unwrap(),
        200
    );
}

#[tokio::test]
async fn lines_execution_could_not_parse_fail_validation_with_their_line() {
    let mock = MockVllm::start(MockConfig::default()).await.unwrap();
    let gw = gateway(&mock.base_url()).await;
    let file = [
        line(1, "1"),
        line(2, "1e400"),
        line(3, r#""\ud800""#),
        line(4, &format!("{}1{}", "[".repeat(300), "]".repeat(300))),
        line(5, "2"),
    ]
    .join("\n");
    let done = gw
        .run_chat_batch(MODEL, file.into_bytes(), WAIT)
        .await
        .unwrap();
    assert_eq!(done["status"], "failed", "{done}");
    let lines: Vec<u64> = done["errors"]["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["line"].as_u64().unwrap())
        .collect();
    assert_eq!(lines, vec![2, 3, 4], "{done}");
    assert_eq!(mock.stats().requests, 0, "nothing was sent");
}
