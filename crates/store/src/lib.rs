//! Where batchgate keeps things. Metadata goes through the [`MetaStore`] trait
//! (SQLite via sqlx here, PostgreSQL in `batchgate-store-postgres`; both run
//! the `conformance` suite of the `testing` feature), bytes through
//! [`Blobs`], a thin layer over `object_store` (local disk by default, S3
//! later). An upload becomes visible only once its bytes are complete and
//! its row is committed.

mod blob;
mod chunks;
#[cfg(feature = "testing")]
pub mod conformance;
mod error;
#[cfg(feature = "testing")]
pub mod faulty;
mod fleet;
mod keys;
mod meta;
mod records;
mod sqlite;

pub use blob::{Blobs, PutOutcome};
pub use chunks::{Chunk, ChunkProgress, ChunkStore};
pub use error::{is_full_io, StoreError};
pub use fleet::{FleetStore, Presence, ALIVE};
pub use keys::{utc_day, KeyRecord, KeyStore, SpendFilter, SpendRow, SpendStore, TeamRecord};
pub use meta::{BatchStats, BatchStore, Deleted, FileStore, LeaseHolder, MetaStore, Page};
pub use records::{
    BatchRecord, FileFilter, FileRecord, Lease, LineCharge, LineResult, LineUsage, Owner,
    Transition,
};
pub use sqlite::SqliteStore;
