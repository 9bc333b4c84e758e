//! Validation of batch input lines: the batch's `validating` phase.
//!
//! A batch whose input is wrong must fail before any request reaches an
//! upstream, and it must say *everything* that is wrong at once (with the
//! 1-based line an editor shows) so the user fixes the file in one go rather
//! than one error per resubmission. [`Validator`] checks lines as they stream
//! by, keeping only the custom IDs seen and the first errors.

mod fields;

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt::Display;

use batchgate_core::{BatchError, ByteStream};
use serde::de::DeserializeSeed;
use serde_json::{Map, Value};

use crate::lines::{LineReader, RawLine};
use fields::{body_facts, describe, describe_kind, Field, FieldSeed, Obj};

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
    /// The first error of the line being checked.
    line_error: Option<BatchError>,
}

/// The verdict on one line.
#[derive(Debug, Clone, PartialEq)]
pub enum Checked {
    /// Empty or whitespace only: not a request, no result.
    Blank,
    Valid(ValidLine),
    /// A request that cannot be sent, with the first thing wrong with it
    /// (and its `custom_id`, when it has a usable one).
    Invalid {
        custom_id: Option<String>,
        error: BatchError,
    },
}

/// Whether a line is blank: not a request at all.
pub fn is_blank(line: &RawLine) -> bool {
    !line.too_long && line.bytes.iter().all(u8::is_ascii_whitespace)
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
            line_error: None,
        }
    }

    /// Checks one line; returns it parsed when it is a valid request. Errors
    /// are recorded for [`Validator::finish`]; blank lines give `None` and
    /// no error.
    pub fn check(&mut self, line: &RawLine) -> Option<ValidLine> {
        match self.check_line(line) {
            Checked::Valid(valid) => Some(valid),
            Checked::Blank | Checked::Invalid { .. } => None,
        }
    }

    /// [`Validator::check`] that also says why a line was refused: the
    /// executor turns such a line into an error-file line instead of
    /// dropping it, so every request of an input ends up in exactly one
    /// result file.
    pub fn check_line(&mut self, line: &RawLine) -> Checked {
        self.inspect(line, true)
    }

    /// [`Validator::check`]; with `keep_body` false the body is only looked
    /// at, never built, and no line is returned (a pure validation pass runs
    /// about twice as fast that way).
    fn inspect(&mut self, line: &RawLine, keep_body: bool) -> Checked {
        let n = line.number;
        if is_blank(line) {
            return Checked::Blank;
        }
        self.line_error = None;
        self.requests += 1;
        let Some(obj) = self.parse(line, keep_body) else {
            return self.refused(None);
        };
        let [custom_id, method, url, body] = obj.fields;
        let before = self.total_errors;
        let custom_id = self.check_custom_id(n, custom_id);
        self.check_method_and_url(n, &method, &url);
        for key in &obj.forbidden {
            self.forbidden(n, "", key);
        }
        let body = self.check_body_field(n, body);
        match (custom_id, body) {
            (Some(custom_id), Some(body)) if self.total_errors == before => {
                Checked::Valid(ValidLine {
                    number: n,
                    custom_id: custom_id.into_owned(),
                    body,
                })
            }
            // Inspect-only: valid, but nothing was built to return.
            (Some(_), None) if !keep_body && self.total_errors == before => Checked::Blank,
            (custom_id, _) => self.refused(custom_id.map(Cow::into_owned)),
        }
    }

    /// The line's picked fields, or `None` (with its error recorded) when it
    /// is over a limit, not UTF-8, not JSON or not an object.
    fn parse<'a>(&mut self, line: &'a RawLine, keep_body: bool) -> Option<Obj<'a>> {
        let n = line.number;
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
        let text = self.utf8(line)?;
        let mut de = serde_json::Deserializer::from_str(text);
        let parsed = FieldSeed::line(keep_body).deserialize(&mut de);
        match parsed.and_then(|line| de.end().map(|()| line)) {
            Ok(Field::Obj(obj)) => Some(*obj),
            Ok(other) => {
                let found = describe_kind(&other);
                let msg = format!("This line must be a JSON object, found {found}.");
                self.error(n, "invalid_json_line", None, msg);
                None
            }
            Err(e) => {
                let text = e.to_string();
                let reason = text.rfind(" at line ").map_or(&text[..], |i| &text[..i]);
                let col = e.column();
                let msg = format!("This line is not valid JSON: {reason} at column {col}.");
                self.error(n, "invalid_json_line", None, msg);
                None
            }
        }
    }

    /// A non-empty string, not used by an earlier line.
    fn check_custom_id<'a>(&mut self, n: u64, field: Option<Field<'a>>) -> Option<Cow<'a, str>> {
        let id = match field {
            Some(Field::Str(id)) if !id.is_empty() => id,
            _ => {
                let msg = "`custom_id` must be a non-empty string.";
                self.error(n, "missing_custom_id", Some("custom_id"), msg);
                return None;
            }
        };
        if let Some(first) = self.seen.get(&*id) {
            let msg = format!("custom_id {id:?} is already used on line {first}.");
            self.error(n, "duplicate_custom_id", Some("custom_id"), msg);
        } else {
            self.seen.insert((*id).into(), n);
        }
        Some(id)
    }

    fn check_method_and_url(
        &mut self,
        n: u64,
        method: &Option<Field<'_>>,
        url: &Option<Field<'_>>,
    ) {
        match method {
            Some(Field::Str(m)) if m == "POST" => {}
            other => {
                let msg = format!("`method` must be \"POST\", found {}.", describe(other));
                self.error(n, "invalid_method", Some("method"), msg);
            }
        }
        match url {
            Some(Field::Str(u)) if self.url_matches(u) => {}
            other => {
                let endpoint = &self.rules.endpoint;
                let msg = format!(
                    "`url` is {} but this batch's endpoint is {endpoint:?}.",
                    describe(other)
                );
                self.error(n, "invalid_url", Some("url"), msg);
            }
        }
    }

    /// The body, checked; returned when it was built (`keep_body`).
    fn check_body_field(&mut self, n: u64, body: Option<Field<'_>>) -> Option<Map<String, Value>> {
        match body {
            Some(Field::Kept(body)) => {
                self.check_body(n, body_facts(&body));
                Some(body)
            }
            Some(Field::Obj(facts)) => {
                self.check_body(n, *facts);
                None
            }
            other => {
                let found = other.as_ref().map_or("missing", describe_kind);
                let msg = format!("`body` must be a JSON object, found {found}.");
                self.error(n, "invalid_body", Some("body"), msg);
                None
            }
        }
    }

    /// The verdict on a line that had an error (the first one it had).
    fn refused(&mut self, custom_id: Option<String>) -> Checked {
        let error = self.line_error.take().unwrap_or_else(|| BatchError {
            code: "invalid_request".into(),
            message: "This line is not a valid request.".into(),
            param: None,
            line: None,
        });
        Checked::Invalid { custom_id, error }
    }

    /// The verdict, given the total size of the input in bytes.
    pub fn finish(mut self, total_bytes: u64) -> Outcome {
        let (max, mut errors) = (self.rules.max_bytes, Vec::new());
        if total_bytes > max {
            let msg = format!(
                "The input file is larger than {max} bytes, the most a batch input may be."
            );
            errors.push(file_error("file_too_large", msg));
        }
        if self.requests == 0 {
            errors.push(file_error(
                "empty_file",
                "The input file has no requests.".into(),
            ));
        }
        let total_errors = self.total_errors + errors.len() as u64;
        if total_errors == 0 {
            return Outcome::Valid {
                lines: self.requests,
            };
        }
        errors.append(&mut self.errors);
        errors.truncate(self.rules.max_reported_errors);
        let omitted = total_errors - errors.len() as u64;
        if omitted > 0 {
            let msg = format!(
                "{omitted} more errors were found but are not listed; fix the errors above and \
                 check the file again."
            );
            errors.push(file_error("too_many_errors", msg));
        }
        Outcome::Invalid {
            errors,
            total_errors,
        }
    }

    /// The line as text, recording `invalid_json_line` if it is not UTF-8.
    fn utf8<'a>(&mut self, line: &'a RawLine) -> Option<&'a str> {
        match std::str::from_utf8(&line.bytes) {
            Ok(text) => Some(text),
            Err(e) => {
                let col = e.valid_up_to() + 1;
                let msg = format!("This line is not valid UTF-8 (invalid byte at column {col}).");
                self.error(line.number, "invalid_json_line", None, msg);
                None
            }
        }
    }

    fn check_body(&mut self, n: u64, facts: Obj<'_>) {
        let [model, stream, background, _] = facts.fields;
        match model {
            None | Some(Field::Kind("null")) => {
                let msg = "`body.model` is required.";
                self.error(n, "missing_model", Some("body.model"), msg);
            }
            Some(Field::Str(model)) => self.check_model(n, &model),
            Some(other) => {
                let found = describe_kind(&other);
                let msg = format!("`body.model` must be a string, found {found}.");
                self.error(n, "missing_model", Some("body.model"), msg);
            }
        }
        if matches!(stream, Some(Field::Bool(true))) {
            let msg = "Streaming is not supported in a batch; remove `stream` or set it to false.";
            self.error(n, "streaming_unsupported", Some("body.stream"), msg);
        }
        // A background response (`/v1/responses`) answers "queued" at once
        // and finishes elsewhere: the batch would record an empty result.
        if matches!(background, Some(Field::Bool(true))) {
            let msg = "Background responses are not supported in a batch; remove `background` or set it to false.";
            self.error(n, "background_unsupported", Some("body.background"), msg);
        }
        for key in &facts.forbidden {
            self.forbidden(n, "body.", key);
        }
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

    fn forbidden(&mut self, n: u64, prefix: &str, key: &str) {
        let param = format!("{prefix}{key}");
        let msg = format!(
            "`{param}` is not allowed: the gateway chooses the upstream and its credentials."
        );
        self.error(n, "forbidden_parameter", Some(&param), msg);
    }

    fn url_matches(&self, url: &str) -> bool {
        url == self.rules.endpoint || self.short_endpoint.as_deref() == Some(url)
    }

    fn error(&mut self, line: u64, code: &str, param: Option<&str>, message: impl Display) {
        self.total_errors += 1;
        let wanted = self.errors.len() < self.rules.max_reported_errors;
        if !wanted && self.line_error.is_some() {
            return;
        }
        let error = BatchError {
            code: code.to_string(),
            message: format!("Line {line}: {message}"),
            param: param.map(str::to_string),
            line: Some(line),
        };
        if self.line_error.is_none() {
            self.line_error = Some(error.clone());
        }
        if wanted {
            self.errors.push(error);
        }
    }
}

/// Validates a whole input stream, keeping nothing but what validation
/// needs: the `validating` phase when the requests are read again later.
/// Bodies are inspected, not built, so this runs about twice as fast as
/// calling [`Validator::check`] on every line, and reaches the same verdict.
/// Stops reading once the input is larger than `rules.max_bytes`, so an
/// oversized upload costs no more than the limit.
pub async fn validate_stream(
    stream: ByteStream,
    rules: Rules,
    max_line_bytes: usize,
) -> Result<Outcome, std::io::Error> {
    validate_stream_with(stream, rules, max_line_bytes, |_| {}).await
}

/// [`validate_stream`], showing every line read to `seen` as well (the
/// engine plans a batch's chunks on the same pass).
pub async fn validate_stream_with(
    stream: ByteStream,
    rules: Rules,
    max_line_bytes: usize,
    mut seen: impl FnMut(&RawLine),
) -> Result<Outcome, std::io::Error> {
    let max_bytes = rules.max_bytes;
    let mut reader = LineReader::new(stream, max_line_bytes);
    let mut validator = Validator::new(rules);
    while let Some(line) = reader.next_line().await? {
        seen(&line);
        validator.inspect(&line, false);
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
