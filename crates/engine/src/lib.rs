//! The gateway side of batchgate: what runs in the gateway rather than on an
//! upstream, as narrow handles:
//!
//! - [`Ids`]: mints, seals and routes public IDs (codec + router);
//! - [`Catalog`]: file and batch metadata, blobs, visibility, expiry sweep;
//! - [`Accounts`]: keys, teams, spend and budgets;
//! - [`LocalFiles`]: the Files API served from the catalog, for any
//!   provider whose upstream has no Files API;
//! - [`Engine`]: runs batches durably against any
//!   [`Upstream`](batchgate_core::Upstream) the wiring connects
//!   ([`Upstreams`]);
//! - [`Assembly`]: all of the above wired the one way the binary, the
//!   embedded library and in-process tests use.

mod accounts;
mod assembly;
mod background;
mod batch;
mod catalog;
mod clock;
mod files;
mod gateway;
mod lines;
mod routing;
mod validate;

pub use accounts::Accounts;
pub use assembly::{Assembly, Parts, Running};
pub use background::Background;
pub use batch::{success_line, Concurrency, Engine, PausedDeployment, RetryPolicy, Upstreams};
pub use catalog::Catalog;
pub use clock::{system_clock, Clock};
pub use files::LocalFiles;
pub use lines::{LineReader, RawLine};
pub use routing::Ids;
pub use validate::{
    is_blank, validate_stream, validate_stream_with, Checked, Outcome, Rules, ValidLine, Validator,
};
