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

/// A batch's row: the Batch object plus what routes and owns it.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchRecord {
    pub key: String,
    /// The Batch object as clients see it (its `id` is the public ID).
    pub batch: batchgate_core::Batch,
    pub deployment_id: String,
    /// Store key of the input file.
    pub input_key: String,
    /// The upstream's ID when the batch runs on the upstream.
    pub upstream_id: Option<String>,
    /// `output_expires_after.seconds` for the result files.
    pub output_expires_seconds: Option<u64>,
    pub owner: Owner,
}

/// Token counts of one successful line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LineUsage {
    pub input_tokens: u64,
    pub cached_tokens: u64,
    pub output_tokens: u64,
    pub reasoning_tokens: u64,
}

/// One finished line, as journaled.
#[derive(Debug, Clone, PartialEq)]
pub struct LineResult {
    /// 1-based line number in the input file.
    pub line_no: u64,
    pub custom_id: String,
    /// Success (output file) or failure (error file).
    pub ok: bool,
    /// The serialized output/error-file line, without newline.
    pub line: String,
    pub usage: Option<LineUsage>,
    /// What the line costs (successful lines only).
    pub charge: Option<LineCharge>,
}

/// A line's cost, exact: priced by `batchgate-cost`, persisted here.
pub use batchgate_cost::LineCost as LineCharge;

/// A conditional status change: applied only if the batch is in one of
/// `from`, so concurrent actors (API cancel, engine, another instance)
/// cannot overwrite each other.
#[derive(Debug, Clone)]
pub struct Transition {
    pub from: Vec<batchgate_core::BatchStatus>,
    pub to: batchgate_core::BatchStatus,
    /// Time stamped into the column of `to` (`in_progress_at`, ...).
    pub at: i64,
    /// Sets `request_counts.total`.
    pub total: Option<u64>,
    pub errors: Option<batchgate_core::BatchErrors>,
    /// When set, the change is made only while this lease still holds the
    /// batch (a runner's own moves); otherwise it fails with
    /// [`StoreError::LeaseLost`](crate::StoreError::LeaseLost).
    pub lease: Option<Lease>,
}

/// A batch held by one runner: the fencing token its writes carry. `epoch`
/// grows with every claim, so a runner that lost its lease (it stalled, its
/// renewals failed, another instance took over) can never write again,
/// even if it still believes it holds the batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub key: String,
    pub owner: String,
    pub epoch: i64,
    /// Set for a chunk's lease ([`crate::ChunkStore`]): `owner` and `epoch`
    /// are then the chunk's, and fence that chunk's journal writes.
    pub chunk: Option<u64>,
}

impl Lease {
    /// A batch's lease.
    pub fn batch(key: impl Into<String>, owner: impl Into<String>, epoch: i64) -> Lease {
        Lease {
            key: key.into(),
            owner: owner.into(),
            epoch,
            chunk: None,
        }
    }

    /// A lease of chunk `number` of batch `key`.
    pub fn chunk(
        key: impl Into<String>,
        number: u64,
        owner: impl Into<String>,
        epoch: i64,
    ) -> Lease {
        Lease {
            key: key.into(),
            owner: owner.into(),
            epoch,
            chunk: Some(number),
        }
    }
}

impl Transition {
    /// `from` → `to`, stamped `at`.
    pub fn new(
        from: &[batchgate_core::BatchStatus],
        to: batchgate_core::BatchStatus,
        at: i64,
    ) -> Transition {
        Transition {
            from: from.to_vec(),
            to,
            at,
            total: None,
            errors: None,
            lease: None,
        }
    }

    /// Applies only while `lease` holds the batch.
    pub fn fenced(mut self, lease: &Lease) -> Transition {
        self.lease = Some(lease.clone());
        self
    }

    pub fn with_total(mut self, total: u64) -> Transition {
        self.total = Some(total);
        self
    }

    pub fn with_errors(mut self, errors: batchgate_core::BatchErrors) -> Transition {
        self.errors = Some(errors);
        self
    }
}
