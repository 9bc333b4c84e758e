//! batchgate's configuration: a LiteLLM-compatible `config.yaml`
//! (`model_list`, `litellm_params`, `model_info`, `general_settings`, values
//! written `os.environ/NAME`), validated into typed settings with errors that
//! name the offending field path, and the [`Router`] that maps a public model
//! name to its deployments (replicas) and an ID's deployment tag back to one.

mod error;
mod model;
mod raw;
mod router;
mod settings;

pub use error::ConfigError;
pub use model::{Config, DEFAULT_ENDPOINTS};
pub use router::Router;
pub use settings::{
    is_postgres_url, window_seconds, BatchSettings, BudgetPolicy, GeneralSettings, ServerSettings,
};
