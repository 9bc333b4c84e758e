//! The `validating` phase end to end: bytes cut into awkward chunks, through
//! `LineReader` and `Validator`, to the errors a failed batch reports.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use batchgate_core::{BatchError, ByteStream};
use batchgate_engine::{validate_stream, LineReader, Outcome, Rules, ValidLine, Validator};
use bytes::Bytes;
use futures::StreamExt;

const CHAT_1: &str = r#"{"custom_id":"req-1","method":"POST","url":"/v1/chat/completions","body":{"model":"llama","messages":[{"role":"user","content":"Grüß dich — ça va? 你好"}]}}"#;
const CHAT_2: &str = r#"{"custom_id":"req-2","method":"POST","url":"/v1/chat/completions","body":{"model":"meta/llama-3","messages":[{"role":"user","content":"Hi"}],"max_tokens":5}}"#;

fn rules() -> Rules {
    Rules {
        endpoint: "/v1/chat/completions".to_string(),
        accepted_models: vec!["llama".to_string(), "meta/llama-3".to_string()],
        max_lines: 100,
        max_bytes: 1 << 20,
        max_reported_errors: 50,
    }
}

/// A request line with `body` spliced in.
fn line(id: &str, body: &str) -> String {
    format!(r#"{{"custom_id":"{id}","method":"POST","url":"/v1/chat/completions","body":{body}}}"#)
}

/// The file as a stream of chunks of `size` bytes (so boundaries fall inside
/// `\r\n` pairs and multi-byte UTF-8 characters).
fn chunked(file: &[u8], size: usize) -> ByteStream {
    let chunks: Vec<Result<Bytes, std::io::Error>> = file
        .chunks(size.max(1))
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    futures::stream::iter(chunks).boxed()
}

/// Runs the validator over the file cut every possible small way and checks
/// every cut agrees; returns the outcome and the valid lines.
async fn run_with(file: &[u8], rules: Rules) -> (Outcome, Vec<ValidLine>) {
    let mut first: Option<(Outcome, Vec<ValidLine>)> = None;
    for size in [1, 2, 3, 5, 7, 64, file.len()] {
        let mut reader = LineReader::new(chunked(file, size), 4096);
        let mut validator = Validator::new(rules.clone());
        let mut valid = Vec::new();
        while let Some(raw) = reader.next_line().await.unwrap() {
            valid.extend(validator.check(&raw));
        }
        let got = (validator.finish(reader.bytes_read()), valid);
        match &first {
            None => first = Some(got),
            Some(expected) => assert_eq!(&got, expected, "chunk size {size}"),
        }
    }
    let first = first.unwrap();
    if file.len() as u64 <= rules.max_bytes {
        // The inspect-only pass must reach the same verdict.
        let streamed = validate_stream(chunked(file, 7), rules, 4096).await;
        assert_eq!(streamed.unwrap(), first.0, "validate_stream");
    }
    first
}

async fn run(file: &str) -> Outcome {
    run_with(file.as_bytes(), rules()).await.0
}

fn errors(outcome: Outcome) -> Vec<BatchError> {
    match outcome {
        Outcome::Invalid { errors, .. } => errors,
        Outcome::Valid { lines } => panic!("expected errors, file was valid with {lines} lines"),
    }
}

/// `(code, line)` of each error, for compact assertions.
fn codes(outcome: Outcome) -> Vec<(String, Option<u64>)> {
    errors(outcome)
        .into_iter()
        .map(|e| (e.code, e.line))
        .collect()
}

fn one(code: &str, line: u64) -> Vec<(String, Option<u64>)> {
    vec![(code.to_string(), Some(line))]
}

#[tokio::test]
async fn seed_file_is_valid() {
    let file = format!("{CHAT_1}\n{CHAT_2}\n");
    let (outcome, valid) = run_with(file.as_bytes(), rules()).await;
    assert_eq!(outcome, Outcome::Valid { lines: 2 });
    assert_eq!(valid.len(), 2);
    assert_eq!((valid[0].number, valid[0].custom_id.as_str()), (1, "req-1"));
    assert_eq!(valid[1].body["max_tokens"], 5);
    assert!(!valid[1].body.contains_key("custom_id"));
}

#[tokio::test]
async fn line_endings_bom_and_blank_lines() {
    let expect = Outcome::Valid { lines: 2 };
    assert_eq!(run(&format!("{CHAT_1}\r\n{CHAT_2}\r\n")).await, expect);
    assert_eq!(run(&format!("{CHAT_1}\n{CHAT_2}")).await, expect);
    assert_eq!(run(&format!("{CHAT_1}\r\n{CHAT_2}")).await, expect);
    assert_eq!(
        run(&format!("\u{FEFF}{CHAT_1}\r\n{CHAT_2}\r\n")).await,
        expect
    );
    assert_eq!(
        run(&format!("\n \t\r\n{CHAT_1}\n\n  \n{CHAT_2}\n\n\n")).await,
        expect
    );
}

#[tokio::test]
async fn empty_files() {
    for file in ["", "\n", "\r\n\r\n", "  \n\t\n", "\u{FEFF}", "\u{FEFF}\n\n"] {
        let errs = errors(run(file).await);
        assert_eq!(errs.len(), 1, "{file:?}");
        assert_eq!((errs[0].code.as_str(), errs[0].line), ("empty_file", None));
    }
}

#[tokio::test]
async fn non_utf8_line_is_reported_on_its_line() {
    let mut file = format!("{CHAT_1}\n\n").into_bytes();
    file.extend_from_slice(b"{\"custom_id\":\"x\xFF\xFE\"}\r\n");
    file.extend_from_slice(CHAT_2.as_bytes());
    let errs = errors(run_with(&file, rules()).await.0);
    assert_eq!(errs.len(), 1);
    assert_eq!(
        (errs[0].code.as_str(), errs[0].line),
        ("invalid_json_line", Some(3))
    );
    assert!(errs[0].message.contains("UTF-8"), "{}", errs[0].message);
}

#[tokio::test]
async fn invalid_json_and_non_objects() {
    for bad in [
        "{\"custom_id\":",
        "not json",
        "[1,2]",
        "\"str\"",
        "42",
        "null",
        "{} {}",
    ] {
        let file = format!("{CHAT_1}\n{bad}\n");
        assert_eq!(
            codes(run(&file).await),
            one("invalid_json_line", 2),
            "{bad}"
        );
    }
    let errs = errors(run("{\"a\":1,}").await);
    assert!(errs[0].message.contains("column"), "{}", errs[0].message);
}

#[tokio::test]
async fn custom_id_rules() {
    for bad in [
        r#"{"method":"POST","url":"/v1/chat/completions","body":{"model":"llama"}}"#,
        r#"{"custom_id":"","method":"POST","url":"/v1/chat/completions","body":{"model":"llama"}}"#,
        r#"{"custom_id":7,"method":"POST","url":"/v1/chat/completions","body":{"model":"llama"}}"#,
    ] {
        let errs = errors(run(&format!("{CHAT_1}\n{bad}\n")).await);
        assert_eq!(
            (errs[0].code.as_str(), errs[0].line),
            ("missing_custom_id", Some(2))
        );
        assert_eq!(errs[0].param.as_deref(), Some("custom_id"));
    }
    let dup = line("req-1", r#"{"model":"llama"}"#);
    let errs = errors(run(&format!("\n{CHAT_1}\n{CHAT_2}\n{dup}\n")).await);
    assert_eq!(
        (errs[0].code.as_str(), errs[0].line),
        ("duplicate_custom_id", Some(4))
    );
    assert!(errs[0].message.contains("line 2"), "{}", errs[0].message);
}

#[tokio::test]
async fn method_url_body_rules() {
    let get =
        r#"{"custom_id":"a","method":"GET","url":"/v1/chat/completions","body":{"model":"llama"}}"#;
    assert_eq!(codes(run(get).await), one("invalid_method", 1));
    let no_method = r#"{"custom_id":"a","url":"/v1/chat/completions","body":{"model":"llama"}}"#;
    assert_eq!(codes(run(no_method).await), one("invalid_method", 1));

    let short =
        r#"{"custom_id":"a","method":"POST","url":"/chat/completions","body":{"model":"llama"}}"#;
    assert_eq!(run(short).await, Outcome::Valid { lines: 1 });
    let wrong =
        r#"{"custom_id":"a","method":"POST","url":"/v1/embeddings","body":{"model":"llama"}}"#;
    let errs = errors(run(wrong).await);
    assert_eq!(
        (errs[0].code.as_str(), errs[0].param.as_deref()),
        ("invalid_url", Some("url"))
    );
    assert!(errs[0].message.contains("/v1/embeddings"));
    assert!(errs[0].message.contains("/v1/chat/completions"));

    for body in ["[]", "\"x\"", "null"] {
        assert_eq!(codes(run(&line("a", body)).await), one("invalid_body", 1));
    }
    let no_body = r#"{"custom_id":"a","method":"POST","url":"/v1/chat/completions"}"#;
    assert_eq!(codes(run(no_body).await), one("invalid_body", 1));
}

#[tokio::test]
async fn model_stream_and_background_rules() {
    let file = [
        line("a", r#"{"messages":[]}"#),
        line("b", r#"{"model":"gpt-4o"}"#),
        line("c", r#"{"model":"llama","stream":true}"#),
        line("d", r#"{"model":"llama","stream":false}"#),
        line("e", r#"{"model":42}"#),
        line("f", r#"{"model":"llama","background":true}"#),
        line("g", r#"{"model":"llama","background":false,"stream":null}"#),
    ]
    .join("\n");
    let errs = errors(run(&file).await);
    let got: Vec<_> = errs
        .iter()
        .map(|e| (e.code.as_str(), e.line, e.param.as_deref()))
        .collect();
    assert_eq!(
        got,
        vec![
            ("missing_model", Some(1), Some("body.model")),
            ("mismatched_model", Some(2), Some("body.model")),
            ("streaming_unsupported", Some(3), Some("body.stream")),
            ("missing_model", Some(5), Some("body.model")),
            ("background_unsupported", Some(6), Some("body.background")),
        ]
    );
    assert!(errs[1].message.contains("\"llama\""), "{}", errs[1].message);
}

#[tokio::test]
async fn without_accepted_models_all_lines_share_one_model() {
    let rules = Rules {
        accepted_models: Vec::new(),
        ..rules()
    };
    let file = [
        line("a", r#"{"model":"x"}"#),
        line("b", r#"{"model":"x"}"#),
        line("c", r#"{"model":"y"}"#),
    ]
    .join("\n");
    let outcome = run_with(file.as_bytes(), rules).await.0;
    assert_eq!(codes(outcome), one("mismatched_model", 3));
}

#[tokio::test]
async fn forbidden_parameters() {
    let top = r#"{"custom_id":"a","method":"POST","url":"/v1/chat/completions","api_key":"sk","body":{"model":"llama"}}"#;
    let errs = errors(run(top).await);
    assert_eq!(
        (errs[0].code.as_str(), errs[0].param.as_deref()),
        ("forbidden_parameter", Some("api_key"))
    );
    let file = [
        line("a", r#"{"model":"llama","api_base":"http://evil"}"#),
        line(
            "b",
            r#"{"model":"llama","Extra_Headers":{"x":"y"},"base_url":"http://evil"}"#,
        ),
        line(
            "c",
            r#"{"model":"llama","metadata":{"api_key":"fine: nested"}}"#,
        ),
    ]
    .join("\n");
    let errs = errors(run(&file).await);
    let got: Vec<_> = errs.iter().map(|e| (e.line, e.param.as_deref())).collect();
    assert_eq!(
        got,
        vec![
            (Some(1), Some("body.api_base")),
            (Some(2), Some("body.Extra_Headers")),
            (Some(2), Some("body.base_url")),
        ]
    );
    assert!(errs.iter().all(|e| e.code == "forbidden_parameter"));
}

#[tokio::test]
async fn every_error_is_reported_with_its_line() {
    let file = [
        CHAT_1.to_string(),
        String::new(),
        "oops".to_string(),
        line("req-1", r#"{"model":"llama"}"#),
        CHAT_2.to_string(),
        r#"{"custom_id":"z","method":"PUT","url":"/v1/x","body":{"model":"nope","stream":true}}"#
            .to_string(),
    ]
    .join("\r\n");
    let got = codes(run(&file).await);
    let want: Vec<(String, Option<u64>)> = [
        ("invalid_json_line", 3),
        ("duplicate_custom_id", 4),
        ("invalid_method", 6),
        ("invalid_url", 6),
        ("mismatched_model", 6),
        ("streaming_unsupported", 6),
    ]
    .iter()
    .map(|(c, l)| (c.to_string(), Some(*l)))
    .collect();
    assert_eq!(got, want);
}

#[tokio::test]
async fn error_cap_summarises_the_rest() {
    let file = "x\n".repeat(30);
    let capped = Rules {
        max_reported_errors: 10,
        ..rules()
    };
    let Outcome::Invalid {
        errors,
        total_errors,
    } = run_with(file.as_bytes(), capped).await.0
    else {
        panic!("expected errors");
    };
    assert_eq!(total_errors, 30);
    assert_eq!(errors.len(), 11);
    let lines: Vec<Option<u64>> = errors[..10].iter().map(|e| e.line).collect();
    assert_eq!(lines, (1..=10).map(Some).collect::<Vec<_>>());
    assert_eq!(
        (errors[10].code.as_str(), errors[10].line),
        ("too_many_errors", None)
    );
    assert!(errors[10].message.contains("20"), "{}", errors[10].message);
}

#[tokio::test]
async fn too_many_tasks_is_reported_once() {
    let limited = Rules {
        max_lines: 3,
        ..rules()
    };
    let file: Vec<String> = (0..6)
        .map(|i| line(&format!("r{i}"), r#"{"model":"llama"}"#))
        .collect();
    let file = file.join("\n\n");
    let outcome = run_with(file.as_bytes(), limited.clone()).await.0;
    assert_eq!(codes(outcome), one("too_many_tasks", 7));
    let exact: Vec<String> = (0..3)
        .map(|i| line(&format!("r{i}"), r#"{"model":"llama"}"#))
        .collect();
    let outcome = run_with(exact.join("\n").as_bytes(), limited).await.0;
    assert_eq!(outcome, Outcome::Valid { lines: 3 });
}

#[tokio::test]
async fn file_too_large_and_line_too_long() {
    let file = format!("{CHAT_1}\n{CHAT_2}\n");
    let small = Rules {
        max_bytes: 100,
        ..rules()
    };
    let errs = errors(run_with(file.as_bytes(), small.clone()).await.0);
    assert_eq!(errs.len(), 1);
    assert_eq!(
        (errs[0].code.as_str(), errs[0].line),
        ("file_too_large", None)
    );
    let early = validate_stream(chunked(file.as_bytes(), 3), small, 4096)
        .await
        .unwrap();
    assert_eq!(codes(early)[0], ("file_too_large".to_string(), None));

    let long = line(
        "big",
        &format!(r#"{{"model":"llama","pad":"{}"}}"#, "p".repeat(5000)),
    );
    let file = format!("{CHAT_1}\n{long}\n{CHAT_2}\n{long}");
    assert_eq!(
        codes(run(&file).await),
        vec![
            ("line_too_long".to_string(), Some(2)),
            ("line_too_long".to_string(), Some(4))
        ]
    );
}

#[tokio::test]
async fn offsets_point_at_line_starts() {
    let file = format!("\u{FEFF}{CHAT_1}\r\n\r\n{CHAT_2}\nx");
    let bytes = file.as_bytes();
    for size in [1, 2, 3, 7, bytes.len()] {
        let mut reader = LineReader::new(chunked(bytes, size), 4096);
        let mut seen = Vec::new();
        while let Some(raw) = reader.next_line().await.unwrap() {
            let at = usize::try_from(raw.offset).unwrap();
            assert_eq!(&bytes[at..at + raw.bytes.len()], &raw.bytes[..]);
            seen.push((raw.number, raw.offset));
        }
        let l1 = 3 + CHAT_1.len() as u64;
        let l3 = l1 + 4 + CHAT_2.len() as u64 + 1;
        assert_eq!(
            seen,
            vec![(1, 3), (2, l1 + 2), (3, l1 + 4), (4, l3)],
            "chunk size {size}"
        );
    }
}

#[tokio::test]
async fn validate_stream_counts_requests() {
    let file = format!("{CHAT_1}\n\n{CHAT_2}\n");
    let outcome = validate_stream(chunked(file.as_bytes(), 5), rules(), 4096)
        .await
        .unwrap();
    assert_eq!(outcome, Outcome::Valid { lines: 2 });
}
