//! Rows as the store keeps them.

use batchgate_core::{Caller, FileObject, FilePurpose};

/// Who owns an object: the virtual key and team that created it. Objects
/// created with the master key have neither and are visible to the master
/// key only.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Owner {
    pub key_id: Option<String>,
    pub team_id: Option<String>,
}

impl Owner {
    pub fn of(caller: &Caller) -> Owner {
        Owner {
            key_id: caller.key_id.clone(),
            team_id: caller.team_id.clone(),
        }
    }

    /// Whether `caller` may see an object owned by `self`.
    pub fn visible_to(&self, caller: &Caller) -> bool {
        caller.is_master
            || (caller.key_id.is_some() && caller.key_id == self.key_id)
            || (caller.team_id.is_some() && caller.team_id == self.team_id)
    }
}

/// A file's metadata.
#[derive(Debug, Clone, PartialEq)]
pub struct FileRecord {
    /// The store's primary key (the ID codec's local key).
    pub key: String,
    /// The File object as clients see it (its `id` is the public ID).
    pub object: FileObject,
    /// Deployment the file belongs to (its stable identity).
    pub deployment_id: String,
    pub model_name: String,
    /// Path of the bytes in the blob store, when the gateway holds them.
    pub blob_path: Option<String>,
    /// The upstream's ID, when the file lives on the upstream.
    pub upstream_id: Option<String>,
    pub owner: Owner,
}

/// Which files a listing returns.
#[derive(Debug, Clone, Default)]
pub struct FileFilter {
    pub purpose: Option<FilePurpose>,
    /// Only files of this public model name.
    pub model_name: Option<String>,
    pub caller: Caller,
    /// Files that expired at or before this time are left out.
    pub now: i64,
}
