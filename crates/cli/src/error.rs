//! The CLI's error type. Every variant ends the process with exit code 3
//! ([`crate::exit::ERROR`]).

/// Why a command could not do its job.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The command line or a value in it is unusable.
    #[error("{0}")]
    Usage(String),
    /// The gateway answered with an error status; `message` is the OpenAI
    /// error envelope's `error.message` when there is one.
    #[error("{message} (HTTP {status})")]
    Http {
        /// The HTTP status code.
        status: u16,
        /// The error message the gateway gave.
        message: String,
    },
    /// The request never got an answer (connection refused, timeout, ...).
    #[error("cannot reach {url}: {reason}")]
    Transport {
        /// The URL that was requested.
        url: String,
        /// The client error with its causes, e.g. `... : Connection refused`.
        reason: String,
    },
    /// A local file could not be read or written.
    #[error("{context}: {source}")]
    Io {
        /// What was being done, e.g. `cannot open in.jsonl`.
        context: String,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The gateway answered 2xx with something that is not what the API
    /// promises.
    #[error("unexpected answer from the gateway: {0}")]
    Protocol(String),
}

impl CliError {
    /// An [`CliError::Io`] with its context.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        CliError::Io {
            context: context.into(),
            source,
        }
    }

    /// Whether the error is a write to a pipe whose reader has gone.
    pub fn is_broken_pipe(&self) -> bool {
        matches!(self, CliError::Io { source, .. } if source.kind() == std::io::ErrorKind::BrokenPipe)
    }
}

impl CliError {
    /// A [`CliError::Transport`] for `url`, keeping the causes' messages.
    pub fn transport(url: impl Into<String>, err: &reqwest::Error) -> Self {
        let mut reason = err.to_string();
        let mut source = std::error::Error::source(err);
        while let Some(cause) = source {
            let text = cause.to_string();
            if !reason.contains(&text) {
                reason.push_str(": ");
                reason.push_str(&text);
            }
            source = cause.source();
        }
        CliError::Transport {
            url: url.into(),
            reason,
        }
    }
}

/// Shorthand for results of CLI operations.
pub type Result<T, E = CliError> = std::result::Result<T, E>;
