//! The gateway side of batchgate: what runs in the gateway rather than on an
//! upstream. [`Gateway`] holds the shared parts (store, blobs, ID codec,
//! router, settings, clock); [`LocalFiles`] serves the Files API from the
//! gateway's own store for any provider whose upstream has no Files API;
//! [`Engine`] runs batches durably against any [`Upstream`](batchgate_core::Upstream)
//! the wiring connects ([`Upstreams`]).

mod batch;
mod clock;
mod files;
mod gateway;
mod lines;
mod validate;

pub use batch::{success_line, Engine, PausedDeployment, RetryPolicy, Upstreams};
pub use clock::{system_clock, Clock};
pub use files::LocalFiles;
pub use gateway::Gateway;
pub use lines::{LineReader, RawLine};
pub use validate::{is_blank, validate_stream, Checked, Outcome, Rules, ValidLine, Validator};
