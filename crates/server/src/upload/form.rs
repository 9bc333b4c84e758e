//! The text fields of an upload form, the file part's name, and the checks
//! that turn a complete form into where and how the file is stored.

use std::sync::Arc;

use axum::extract::multipart::Field;
use batchgate_core::{ApiError, Deployment, ExpiresAfter, FilePurpose};

use super::bad_multipart;
use crate::app::AppState;

/// The longest value accepted for a text field.
const MAX_FIELD_BYTES: usize = 64 * 1024;
/// The longest filename, in characters (what common filesystems allow).
pub(super) const MAX_FILENAME_CHARS: usize = 255;
/// The name a file part without one is stored under.
pub(super) const NAMELESS: &str = "upload";
/// How much of a client-chosen name an error message echoes.
const ECHO_CHARS: usize = 64;

/// The text fields seen so far.
#[derive(Debug, Default)]
pub(super) struct Form {
    pub purpose: Option<String>,
    pub model: Option<String>,
    anchor: Option<String>,
    seconds: Option<String>,
}

impl Form {
    pub fn set(&mut self, name: &str, value: String) {
        match name {
            "purpose" => self.purpose = Some(value),
            "model" => self.model = Some(value),
            // LiteLLM's spelling: a list of names; the first routes.
            "target_model_names" => {
                self.model = value
                    .split(',')
                    .map(str::trim)
                    .find(|s| !s.is_empty())
                    .map(String::from)
            }
            "expires_after[anchor]" => self.anchor = Some(value),
            "expires_after[seconds]" => self.seconds = Some(value),
            _ => {}
        }
    }

    fn purpose(&self) -> Result<FilePurpose, ApiError> {
        let raw = self.purpose.as_deref().ok_or_else(|| {
            ApiError::invalid_request("Missing required parameter: 'purpose'.")
                .with_param("purpose")
        })?;
        FilePurpose::parse(raw)
            .filter(|p| p.is_uploadable())
            .ok_or_else(|| {
                let allowed: Vec<_> = FilePurpose::ALL
                    .iter()
                    .filter(|p| p.is_uploadable())
                    .map(|p| format!("'{p}'"))
                    .collect();
                ApiError::invalid_request(format!(
                    "'{}' is not one of [{}] - 'purpose'",
                    echo(raw),
                    allowed.join(", ")
                ))
                .with_param("purpose")
            })
    }

    fn expires_after(&self) -> Result<Option<ExpiresAfter>, ApiError> {
        let (anchor, seconds) =
            match (&self.anchor, &self.seconds) {
                (None, None) => return Ok(None),
                (Some(a), Some(s)) => (a, s),
                _ => return Err(ApiError::invalid_request(
                    "expires_after needs both expires_after[anchor] and expires_after[seconds].",
                )
                .with_param("expires_after")),
            };
        if anchor != "created_at" {
            return Err(ApiError::invalid_request(format!(
                "expires_after[anchor] must be 'created_at', got '{}'.",
                echo(anchor)
            ))
            .with_param("expires_after[anchor]"));
        }
        let seconds = seconds
            .trim()
            .parse::<u64>()
            .ok()
            .filter(|s| ExpiresAfter::SECONDS_RANGE.contains(s))
            .ok_or_else(|| {
                ApiError::invalid_request(format!(
                    "expires_after[seconds] must be an integer from {} to {}, got '{}'.",
                    ExpiresAfter::SECONDS_RANGE.start(),
                    ExpiresAfter::SECONDS_RANGE.end(),
                    echo(seconds)
                ))
                .with_param("expires_after[seconds]")
            })?;
        Ok(Some(ExpiresAfter {
            anchor: anchor.clone(),
            seconds,
        }))
    }
}

/// A complete, accepted form: where the file goes and how it is stored.
#[derive(Debug, Clone)]
pub(super) struct Settled {
    pub purpose: FilePurpose,
    pub deployment: Arc<Deployment>,
    pub expires_after: Option<ExpiresAfter>,
}

impl Settled {
    /// Whether a file stored under `self` is what `other` asks for (a
    /// replica of the same model is as good).
    pub fn same_as(&self, other: &Settled) -> bool {
        self.purpose == other.purpose
            && self.deployment.model_name == other.deployment.model_name
            && self.expires_after == other.expires_after
    }
}

/// Purpose, filename, model, allow-list, budget and expiry checks of a
/// form; `filename` is `None` when the file part named none.
pub(super) async fn settle(
    st: &AppState,
    ctx: &batchgate_core::RequestCtx,
    form: &Form,
    model: Option<&str>,
    filename: Option<&str>,
) -> Result<Settled, ApiError> {
    let purpose = form.purpose()?;
    if purpose == FilePurpose::Batch {
        check_batch_filename(filename)?;
    }
    let deployment = st.resolve_model(model)?;
    crate::guard::check_model(&ctx.caller, &deployment.model_name)?;
    if purpose == FilePurpose::Batch {
        st.accounts.check_budget(&ctx.caller).await?;
    }
    let expires_after = form.expires_after()?;
    Ok(Settled {
        purpose,
        deployment,
        expires_after,
    })
}

/// The Batch API reads JSONL: its files must be named `*.jsonl`.
fn check_batch_filename(filename: Option<&str>) -> Result<(), ApiError> {
    match filename {
        None => Err(ApiError::invalid_request(
            "The file part has no filename; the Batch API needs a .jsonl file (send filename=\"….jsonl\").",
        )
        .with_param("file")),
        Some(name) if !name.to_ascii_lowercase().ends_with(".jsonl") => {
            Err(ApiError::invalid_request(format!(
                "Invalid file format for Batch API. Must be .jsonl, got '{}'.",
                echo(name)
            ))
            .with_param("file"))
        }
        Some(_) => Ok(()),
    }
}

/// The file part's name: its last path component (so `../../x.jsonl` stays
/// a name) without control characters; `None` when nothing is left. A name
/// over [`MAX_FILENAME_CHARS`] is refused, never cut (cutting would drop
/// its extension and blame the format).
pub(super) fn file_name(raw: Option<&str>) -> Result<Option<String>, ApiError> {
    let name = raw
        .unwrap_or_default()
        .rsplit(['/', '\\'])
        .next()
        .unwrap_or_default()
        .trim();
    let name: String = name.chars().filter(|c| !c.is_control()).collect();
    let chars = name.chars().count();
    if chars > MAX_FILENAME_CHARS {
        return Err(ApiError::invalid_request(format!(
            "The filename is {chars} characters long; the limit is {MAX_FILENAME_CHARS}."
        ))
        .with_param("file"));
    }
    Ok(Some(name).filter(|n| !n.is_empty()))
}

/// A text field's value: at most [`MAX_FIELD_BYTES`] of UTF-8, trimmed.
pub(super) async fn read_text(mut field: Field<'_>) -> Result<String, ApiError> {
    let name = echo(field.name().unwrap_or_default());
    let mut buf = Vec::new();
    while let Some(chunk) = field.chunk().await.map_err(bad_multipart)? {
        if buf.len() + chunk.len() > MAX_FIELD_BYTES {
            return Err(ApiError::invalid_request(format!(
                "Form field '{name}' is longer than the limit of {MAX_FIELD_BYTES} bytes."
            ))
            .with_param(name));
        }
        buf.extend_from_slice(&chunk);
    }
    String::from_utf8(buf)
        .map(|s| s.trim().to_string())
        .map_err(|_| {
            ApiError::invalid_request(format!("Form field '{name}' is not UTF-8.")).with_param(name)
        })
}

/// The start of a client-chosen string, for messages and `param`.
fn echo(s: &str) -> String {
    s.chars().take(ECHO_CHARS).collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn filenames_lose_their_paths() {
        assert_eq!(
            file_name(Some("../../etc/x.jsonl")).unwrap().unwrap(),
            "x.jsonl"
        );
        assert_eq!(
            file_name(Some("C:\\data\\b.jsonl")).unwrap().unwrap(),
            "b.jsonl"
        );
        assert_eq!(file_name(None).unwrap(), None);
        assert_eq!(file_name(Some("dir/")).unwrap(), None);
        assert_eq!(file_name(Some(" \u{7} ")).unwrap(), None);
    }

    #[test]
    fn a_long_filename_is_refused_for_its_length() {
        let long = format!("{}.jsonl", "n".repeat(5_000));
        let e = file_name(Some(&long)).unwrap_err();
        assert!(e.body.message.contains("255"), "{}", e.body.message);
        let at_limit = format!("{}.jsonl", "é".repeat(249));
        assert_eq!(file_name(Some(&at_limit)).unwrap().unwrap(), at_limit);
    }

    proptest! {
        /// Any name is either refused for its length, or kept whole (bar
        /// its path and control characters) — never cut short.
        #[test]
        fn names_are_kept_whole_or_refused(raw in any::<String>()) {
            match file_name(Some(&raw)) {
                Ok(Some(name)) => {
                    prop_assert!(name.chars().count() <= MAX_FILENAME_CHARS);
                    prop_assert!(raw.contains(name.trim()) || raw.chars().any(char::is_control));
                    prop_assert!(!name.contains('/') && !name.contains('\\'));
                }
                Ok(None) => {}
                Err(e) => {
                    prop_assert_eq!(e.body.param.as_deref(), Some("file"));
                    prop_assert!(raw.chars().count() > MAX_FILENAME_CHARS);
                }
            }
        }

        #[test]
        fn a_batch_filename_is_refused_only_when_it_is_not_jsonl(raw in "[a-zA-Z0-9.]{0,300}") {
            if let Ok(name) = file_name(Some(&raw)) {
                let jsonl = raw.to_ascii_lowercase().ends_with(".jsonl");
                prop_assert_eq!(check_batch_filename(name.as_deref()).is_ok(), jsonl);
            }
        }
    }
}
