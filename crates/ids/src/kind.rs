//! Object kinds and their ID prefixes.

use std::fmt;

/// The kind of object an ID names. Decides the textual prefix and is bound
/// into the MAC, so an ID of one kind never decodes as the other.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// An uploaded or generated file; IDs look like `file-…`.
    File,
    /// A batch job; IDs look like `batch_…`.
    Batch,
}

impl Kind {
    /// Both kinds, for iteration in tests and fuzzers.
    pub const ALL: [Kind; 2] = [Kind::File, Kind::Batch];

    /// The textual prefix of IDs of this kind, matching OpenAI's style:
    /// `file-` and `batch_`.
    pub const fn prefix(self) -> &'static str {
        match self {
            Kind::File => "file-",
            Kind::Batch => "batch_",
        }
    }

    /// The object name used in messages and the OpenAI `object` field:
    /// `file` or `batch`.
    pub const fn name(self) -> &'static str {
        match self {
            Kind::File => "file",
            Kind::Batch => "batch",
        }
    }

    /// The kind whose prefix `s` starts with, if any.
    pub fn of_prefixed(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| s.starts_with(k.prefix()))
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_and_names() {
        assert_eq!(Kind::File.prefix(), "file-");
        assert_eq!(Kind::Batch.prefix(), "batch_");
        assert_eq!(Kind::Batch.to_string(), "batch");
        assert_eq!(Kind::of_prefixed("batch_abc"), Some(Kind::Batch));
        assert_eq!(Kind::of_prefixed("file-abc"), Some(Kind::File));
        assert_eq!(Kind::of_prefixed("file_abc"), None);
    }
}
