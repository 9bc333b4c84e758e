//! Validation and execution agree on what a valid line is: whatever the
//! `validating` pass (which only inspects bodies) accepts, the executor's
//! parser (which builds them) can send, and every request line gets a
//! verdict — valid, or refused with a reason — so none can vanish between
//! the input and the result files.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use batchgate_core::ByteStream;
use batchgate_engine::{validate_stream, Checked, LineReader, Outcome, Rules, Validator};
use bytes::Bytes;
use futures::StreamExt;
use proptest::prelude::*;

fn rules() -> Rules {
    Rules {
        endpoint: "/v1/chat/completions".to_string(),
        accepted_models: vec!["llama".to_string()],
        max_lines: 10_000,
        max_bytes: 1 << 30,
        max_reported_errors: 10,
    }
}

fn stream(file: String) -> ByteStream {
    futures::stream::iter([Ok::<_, std::io::Error>(Bytes::from(file))]).boxed()
}

/// The verdict of the inspect-only pass and of the executor's parser on
/// the same file, plus how many request lines the executor saw.
fn both(file: &str) -> (Outcome, Vec<Checked>) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(async {
        let outcome = validate_stream(stream(file.to_string()), rules(), 1 << 20)
            .await
            .unwrap();
        let mut reader = LineReader::new(stream(file.to_string()), 1 << 20);
        let mut parser = Validator::new(rules());
        let mut checked = Vec::new();
        while let Some(line) = reader.next_line().await.unwrap() {
            checked.push(parser.check_line(&line));
        }
        (outcome, checked)
    })
}

fn line_with(custom_id: &str, body_extra: &str) -> String {
    format!(
        r#"{{"custom_id":"{custom_id}","method":"POST","url":"/v1/chat/completions","body":{{"model":"llama","messages":[{{"role":"user","content":"hi"}}]{body_extra}}}}}"#
    )
}

/// Values that a skimming parser lets through but a building one refuses,
/// or that sit right at a limit, and ordinary ones.
fn pathological_value() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("1e400".to_string()),
        Just("-1e400".to_string()),
        Just("1e308".to_string()),
        Just("123456789012345678901234567890".to_string()),
        Just("-0".to_string()),
        Just(r#""\ud800""#.to_string()),
        Just(r#""\udc00x""#.to_string()),
        Just(r#""\ud83d\ude00""#.to_string()),
        Just(r#""\u0000\u001f\t""#.to_string()),
        Just("\"\u{1}\"".to_string()),
        Just("\"\u{7f}é漢\"".to_string()),
        (1usize..300).prop_map(|d| format!("{}1{}", "[".repeat(d), "]".repeat(d))),
        (1usize..300).prop_map(|d| format!("{}1{}", "{\"a\":".repeat(d), "}".repeat(d))),
        (0usize..100_000).prop_map(|n| format!("\"{}\"", "x".repeat(n))),
        any::<f64>().prop_map(|f| format!("{f:e}")),
        any::<i64>().prop_map(|i| i.to_string()),
        "[ -~]{0,40}".prop_map(|s| serde_json::to_string(&s).unwrap()),
        Just("{\"k\":1,\"k\":2}".to_string()),
        Just("[1,]".to_string()),
        Just("tru".to_string()),
    ]
}

/// One input line: valid, valid but odd, or broken in some way.
fn any_line(i: usize) -> impl Strategy<Value = String> {
    let id = format!("req-{i}");
    let (id1, id2, id3, id4) = (id.clone(), id.clone(), id.clone(), id);
    prop_oneof![
        3 => Just(line_with(&id1, "")),
        4 => pathological_value().prop_map(move |v| line_with(&id2, &format!(",\"extra\":{v}"))),
        1 => pathological_value().prop_map(move |v| {
            format!(r#"{{"custom_id":"{id3}","method":"POST","url":"/v1/chat/completions","odd":{v},"body":{{"model":"llama"}}}}"#)
        }),
        1 => pathological_value().prop_map(move |v| format!(r#"{{"custom_id":{v},"body":{{}}}}"#)),
        1 => "[ -~\\t]{0,30}".prop_map(|s| s),
        1 => Just(String::new()),
        1 => Just(line_with(&id4, ",\"stream\":true")),
    ]
}

fn any_file() -> impl Strategy<Value = Vec<String>> {
    (1usize..12).prop_flat_map(|n| (0..n).map(any_line).collect::<Vec<_>>())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    /// A file the validating pass accepts is one every line of which the
    /// executor can send.
    #[test]
    fn validation_accepts_only_what_execution_can_send(lines in any_file()) {
        let file = lines.join("\n");
        let (outcome, checked) = both(&file);
        if let Outcome::Valid { lines: n } = outcome {
            let sendable = checked.iter().filter(|c| matches!(c, Checked::Valid(_))).count();
            prop_assert_eq!(sendable as u64, n);
            let refused = checked.iter().any(|c| matches!(c, Checked::Invalid { .. }));
            prop_assert!(!refused);
        }
    }

    /// Every non-blank line gets a verdict, and a refused one says why:
    /// nothing is dropped silently.
    #[test]
    fn every_request_line_gets_a_verdict(lines in any_file()) {
        let file = lines.join("\n");
        let (_, checked) = both(&file);
        let requests = lines.iter().filter(|l| !l.trim_matches(|c: char| c.is_ascii_whitespace()).is_empty()).count();
        let answered = checked.iter().filter(|c| !matches!(c, Checked::Blank)).count();
        prop_assert_eq!(answered, requests);
        for c in &checked {
            if let Checked::Invalid { error, .. } = c {
                prop_assert!(!error.code.is_empty());
                prop_assert!(error.message.starts_with("Line "), "{}", error.message);
            }
        }
    }

    /// Per line, the inspect-only verdict equals the building verdict.
    #[test]
    fn inspect_and_build_agree_per_line(v in pathological_value()) {
        let file = line_with("only", &format!(",\"extra\":{v}"));
        let (outcome, checked) = both(&file);
        let valid = matches!(checked.as_slice(), [Checked::Valid(_)]);
        prop_assert_eq!(matches!(outcome, Outcome::Valid { .. }), valid, "{}", v);
    }
}

/// The shapes that used to pass validation and then vanish at execution.
#[test]
fn skimmed_shapes_are_refused_at_validation() {
    for extra in [
        "1e400",
        r#""\ud800""#,
        &format!("{}1{}", "[".repeat(200), "]".repeat(200)),
    ] {
        let file = line_with("a", &format!(",\"extra\":{extra}"));
        let (outcome, checked) = both(&file);
        assert!(
            matches!(outcome, Outcome::Invalid { .. }),
            "validation passed {extra:.40}"
        );
        match checked.as_slice() {
            [Checked::Invalid { custom_id, error }] => {
                assert_eq!(custom_id, &None);
                assert_eq!(error.code, "invalid_json_line");
            }
            other => panic!("{other:?}"),
        }
    }
}
