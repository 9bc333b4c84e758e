//! Validation of batch input lines: the batch's `validating` phase.
//!
//! A batch whose input is wrong must fail before any request reaches an
//! upstream, and it must say *everything* that is wrong at once (with the
//! 1-based line an editor shows) so the user fixes the file in one go rather
//! than one error per resubmission. [`Validator`] checks lines as they stream
//! by, keeping only the custom IDs seen and the first errors.

use std::collections::HashMap;
use std::fmt::Display;

use batchgate_core::{BatchError, ByteStream};
use serde_json::{Map, Value};

use crate::lines::{LineReader, RawLine};

/// Keys that would redirect the call, swap its credentials or otherwise let
/// a line steer the gateway's upstream connection (OpenAI SDK and LiteLLM
/// spellings). They are refused at the top level of a line and in its body;
/// the comparison ignores ASCII case.
const FORBIDDEN_KEYS: &[&str] = &[
    "api_base",
    "base_url",
    "api_key",
    "api_version",
    "api_type",
    "organization",
    "extra_headers",
    "headers",
    "extra_query",
    "custom_llm_provider",
    "litellm_params",
    "user_api_key",
    "azure_ad_token",
    "azure_ad_token_provider",
    "aws_access_key_id",
    "aws_secret_access_key",
    "aws_session_token",
    "aws_region_name",
    "aws_profile_name",
    "vertex_credentials",
    "vertex_project",
    "vertex_location",
];

/// What a batch's input file must satisfy; built by the engine from the
/// batch's endpoint, its deployment and the configured limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rules {
    /// The batch's endpoint, e.g. `/v1/chat/completions`; every line's `url`
    /// must name it (with or without the `/v1` prefix).
    pub endpoint: String,
    /// Names `body.model` may take (the public model name and the served
    /// name); the first is the one error messages suggest. When empty, any
    /// model is accepted but all lines must use the same one, because a batch
    /// goes to one deployment.
    pub accepted_models: Vec<String>,
    /// Most requests (non-blank lines) a file may hold.
    pub max_lines: u64,
    /// Largest input file, in bytes.
    pub max_bytes: u64,
    /// How many errors are listed before the rest are summarised by one
    /// `too_many_errors` entry, so a broken 50,000-line file does not produce
    /// a 50,000-entry batch object.
    pub max_reported_errors: usize,
}

/// A line that passed every check, parsed, ready to be sent upstream.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidLine {
    /// 1-based line number in the input file.
    pub number: u64,
    pub custom_id: String,
    /// The request body, forwarded as is.
    pub body: Map<String, Value>,
}

/// The verdict on a whole input file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Every line is valid; `lines` is the number of requests (blank lines
    /// are not requests).
    Valid { lines: u64 },
    /// The batch must fail with these `errors.data` entries: file-level
    /// errors first, then line errors in line order, at most
    /// `max_reported_errors` of them plus a final `too_many_errors` entry
    /// when some were left out. `total_errors` counts every error found.
    Invalid {
        errors: Vec<BatchError>,
        total_errors: u64,
    },
}

/// Checks batch input lines one by one.
///
/// Blank lines (empty or only whitespace), wherever they are, are skipped
/// silently and are not requests: many tools that write JSONL leave them in,
/// and OpenAI-compatible services tolerate them.
#[derive(Debug)]
pub struct Validator {
    rules: Rules,
    /// `endpoint` without its `/v1` prefix, also accepted as a line's `url`.
    short_endpoint: Option<String>,
    /// custom_id → the line that first used it.
    seen: HashMap<Box<str>, u64>,
    /// The model every line must use when `accepted_models` is empty.
    first_model: Option<String>,
    requests: u64,
    reported_too_many_tasks: bool,
    errors: Vec<BatchError>,
    total_errors: u64,
}

impl Validator {
    /// A validator for one input file.
    pub fn new(rules: Rules) -> Self {
        let short_endpoint = rules
            .endpoint
            .strip_prefix("/v1/")
            .map(|rest| format!("/{rest}"));
        Validator {
            rules,
            short_endpoint,
            seen: HashMap::new(),
            first_model: None,
            requests: 0,
            reported_too_many_tasks: false,
            errors: Vec::new(),
            total_errors: 0,
        }
    }

    /// Checks one line; returns it parsed when it is a valid request. Errors
    /// are recorded for [`Validator::finish`]; blank lines give `None` and
    /// no error.
    pub fn check(&mut self, line: &RawLine) -> Option<ValidLine> {
        let n = line.number;
        if !line.too_long && line.bytes.iter().all(u8::is_ascii_whitespace) {
            return None;
        }
        self.requests += 1;
        if self.requests > self.rules.max_lines && !self.reported_too_many_tasks {
            self.reported_too_many_tasks = true;
            let msg = format!(
                "The input file has more than {} requests, the most a batch may hold; \
                 split it into several batches.",
                self.rules.max_lines
            );
            self.error(n, "too_many_tasks", None, msg);
            return None;
        }
        if line.too_long {
            let msg = "This line is longer than the per-line size limit.";
            self.error(n, "line_too_long", None, msg);
            return None;
        }
        let mut obj = self.parse(line)?;
        let before = self.total_errors;

        let custom_id = match obj.remove("custom_id") {
            Some(Value::String(id)) if !id.is_empty() => Some(id),
            _ => {
                let msg = "`custom_id` must be a non-empty string.";
                self.error(n, "missing_custom_id", Some("custom_id"), msg);
                None
            }
        };
        if let Some(id) = &custom_id {
            if let Some(first) = self.seen.get(id.as_str()) {
                let msg = format!("custom_id {id:?} is already used on line {first}.");
                self.error(n, "duplicate_custom_id", Some("custom_id"), msg);
            } else {
                self.seen.insert(id.as_str().into(), n);
            }
        }
        match obj.get("method") {
            Some(Value::String(m)) if m == "POST" => {}
            other => {
                let msg = format!("`method` must be \"POST\", found {}.", describe(other));
                self.error(n, "invalid_method", Some("method"), msg);
            }
        }
        match obj.get("url") {
            Some(Value::String(u)) if self.url_matches(u) => {}
            other => {
                let msg = format!(
                    "`url` is {} but this batch's endpoint is {:?}.",
                    describe(other),
                    self.rules.endpoint
                );
                self.error(n, "invalid_url", Some("url"), msg);
            }
        }
        self.check_forbidden(n, &obj, "");
        let body = match obj.remove("body") {
            Some(Value::Object(body)) => {
                self.check_body(n, &body);
                Some(body)
            }
            other => {
                let msg = format!(
                    "`body` must be a JSON object, found {}.",
                    describe(other.as_ref())
                );
                self.error(n, "invalid_body", Some("body"), msg);
                None
            }
        };
        match (custom_id, body) {
            (Some(custom_id), Some(body)) if self.total_errors == before => Some(ValidLine {
                number: n,
                custom_id,
                body,
            }),
            _ => None,
        }
    }

    /// The verdict, given the total size of the input in bytes.
    pub fn finish(mut self, total_bytes: u64) -> Outcome {
        let mut file_errors = Vec::new();
        if total_bytes > self.rules.max_bytes {
            file_errors.push(file_error(
                "file_too_large",
                format!(
                    "The input file is larger than {} bytes, the most a batch input may be.",
                    self.rules.max_bytes
                ),
            ));
        }
        if self.requests == 0 {
            file_errors.push(file_error(
                "empty_file",
                "The input file has no requests.".to_string(),
            ));
        }
        if file_errors.is_empty() && self.total_errors == 0 {
            return Outcome::Valid {
                lines: self.requests,
            };
        }
        let total_errors = self.total_errors + file_errors.len() as u64;
        let mut errors = file_errors;
        errors.append(&mut self.errors);
        errors.truncate(self.rules.max_reported_errors);
        let omitted = total_errors - errors.len() as u64;
        if omitted > 0 {
            errors.push(file_error(
                "too_many_errors",
                format!("{omitted} more errors were found but are not listed; fix the errors above and check the file again."),
            ));
        }
        Outcome::Invalid {
            errors,
            total_errors,
        }
    }

    /// Parses the line as a JSON object, recording `invalid_json_line` if it
    /// is not one.
    fn parse(&mut self, line: &RawLine) -> Option<Map<String, Value>> {
        let n = line.number;
        let text = match std::str::from_utf8(&line.bytes) {
            Ok(text) => text,
            Err(e) => {
                let msg = format!(
                    "This line is not valid UTF-8 (invalid byte at column {}).",
                    e.valid_up_to() + 1
                );
                self.error(n, "invalid_json_line", None, msg);
                return None;
            }
        };
        match serde_json::from_str::<Value>(text) {
            Ok(Value::Object(obj)) => Some(obj),
            Ok(other) => {
                let msg = format!("This line must be a JSON object, found {}.", kind(&other));
                self.error(n, "invalid_json_line", None, msg);
                None
            }
            Err(e) => {
                let text = e.to_string();
                let reason = text.rfind(" at line ").map_or(&text[..], |i| &text[..i]);
                let msg = format!(
                    "This line is not valid JSON: {reason} at column {}.",
                    e.column()
                );
                self.error(n, "invalid_json_line", None, msg);
                None
            }
        }
    }

    fn check_body(&mut self, n: u64, body: &Map<String, Value>) {
        match body.get("model") {
            None | Some(Value::Null) => {
                let msg = "`body.model` is required.";
                self.error(n, "missing_model", Some("body.model"), msg);
            }
            Some(Value::String(model)) => self.check_model(n, model),
            Some(other) => {
                let msg = format!("`body.model` must be a string, found {}.", kind(other));
                self.error(n, "missing_model", Some("body.model"), msg);
            }
        }
        if body.get("stream") == Some(&Value::Bool(true)) {
            let msg = "Streaming is not supported in a batch; remove `stream` or set it to false.";
            self.error(n, "streaming_unsupported", Some("body.stream"), msg);
        }
        self.check_forbidden(n, body, "body.");
    }

    fn check_model(&mut self, n: u64, model: &str) {
        let expected = match (self.rules.accepted_models.first(), &self.first_model) {
            (Some(_), _) if self.rules.accepted_models.iter().any(|m| m == model) => return,
            (Some(first), _) => first.clone(),
            (None, Some(first)) if first == model => return,
            (None, Some(first)) => first.clone(),
            (None, None) => {
                self.first_model = Some(model.to_string());
                return;
            }
        };
        let msg = format!(
            "Model {model:?} does not match this batch's model {expected:?}; a batch uses one model."
        );
        self.error(n, "mismatched_model", Some("body.model"), msg);
    }

    fn check_forbidden(&mut self, n: u64, obj: &Map<String, Value>, prefix: &str) {
        for key in obj.keys() {
            if FORBIDDEN_KEYS.iter().any(|f| f.eq_ignore_ascii_case(key)) {
                let param = format!("{prefix}{key}");
                let msg = format!(
                    "`{param}` is not allowed: the gateway chooses the upstream and its credentials."
                );
                self.error(n, "forbidden_parameter", Some(&param), msg);
            }
        }
    }

    fn url_matches(&self, url: &str) -> bool {
        url == self.rules.endpoint || self.short_endpoint.as_deref() == Some(url)
    }

    fn error(&mut self, line: u64, code: &str, param: Option<&str>, message: impl Display) {
        self.total_errors += 1;
        if self.errors.len() < self.rules.max_reported_errors {
            self.errors.push(BatchError {
                code: code.to_string(),
                message: format!("Line {line}: {message}"),
                param: param.map(str::to_string),
                line: Some(line),
            });
        }
    }
}

/// Validates a whole input stream, keeping nothing but what validation
/// needs: the `validating` phase when the requests are read again later.
/// Stops reading once the input is larger than `rules.max_bytes`, so an
/// oversized upload costs no more than the limit.
pub async fn validate_stream(
    stream: ByteStream,
    rules: Rules,
    max_line_bytes: usize,
) -> Result<Outcome, std::io::Error> {
    let max_bytes = rules.max_bytes;
    let mut reader = LineReader::new(stream, max_line_bytes);
    let mut validator = Validator::new(rules);
    while let Some(line) = reader.next_line().await? {
        validator.check(&line);
        if reader.bytes_read() > max_bytes {
            break;
        }
    }
    Ok(validator.finish(reader.bytes_read()))
}

fn file_error(code: &str, message: String) -> BatchError {
    BatchError {
        code: code.to_string(),
        message,
        param: None,
        line: None,
    }
}

/// How a found value reads in a message: strings quoted, others by kind.
fn describe(value: Option<&Value>) -> String {
    match value {
        None => "missing".to_string(),
        Some(Value::String(s)) => format!("{s:?}"),
        Some(other) => kind(other).to_string(),
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}
