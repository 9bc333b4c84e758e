//! Configuration errors, each naming the field path at fault.

/// Why a config was rejected. The `Display` form starts with the field path,
/// e.g. `model_list[1].litellm_params.model: unknown provider "foo"`.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read. The I/O error is part of the message and
    /// deliberately not a `source`: callers print error chains (`{:#}`), and
    /// the reason must appear once, not twice.
    #[error("cannot read {path}: {}", io_reason(.error))]
    Read { path: String, error: std::io::Error },
    #[error("{path}: {message}")]
    Invalid { path: String, message: String },
}

impl ConfigError {
    pub(crate) fn invalid(path: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError::Invalid {
            path: path.into(),
            message: message.into(),
        }
    }
}

/// An I/O error as a person reads it: `No such file or directory`, without
/// the ` (os error 2)` the standard library appends for the OS's errors.
fn io_reason(e: &std::io::Error) -> String {
    let text = e.to_string();
    match e.raw_os_error() {
        Some(code) => text
            .strip_suffix(&format!(" (os error {code})"))
            .map(str::to_string)
            .unwrap_or(text),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_file_reads_plainly_and_has_no_source() {
        let err = ConfigError::Read {
            path: "x.yaml".into(),
            error: std::io::Error::from_raw_os_error(2),
        };
        assert_eq!(
            err.to_string(),
            "cannot read x.yaml: No such file or directory"
        );
        assert!(std::error::Error::source(&err).is_none());
    }
}
