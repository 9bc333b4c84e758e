//! The gateway in process: the real router, store, providers and engine,
//! wired by [`Assembly`] exactly as the binary wires them, over a directory
//! and a clock the test chooses. For tests that need to reach inside (move
//! time, read rows) rather than run the binary.

use std::path::Path;
use std::sync::Arc;

use batchgate_config::Config;
use batchgate_engine::{Assembly, Clock, Parts, Running};
use batchgate_server::{AppState, Auth, Providers};
use batchgate_store::{Blobs, SqliteStore};

/// Who may call the in-process gateway.
#[derive(Debug, Clone, Copy)]
pub enum Keys<'a> {
    /// Only this master key.
    Master(&'a str),
    /// This master key and the virtual keys it makes.
    WithVirtual(&'a str),
}

/// A served in-process gateway; dropping it stops the server and the
/// background work.
#[derive(Debug)]
pub struct InProcess {
    pub base: String,
    pub gateway: Assembly,
    _running: Option<Running>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for InProcess {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl InProcess {
    /// Serves `config_yaml` (vLLM deployments only) with its store and blobs
    /// under `dir` on a free port. With `run_batches`, the engine's
    /// supervisor and the sweeps run too (as in the binary); without, the
    /// test drives them.
    pub async fn start(
        config_yaml: &str,
        dir: &Path,
        clock: Clock,
        keys: Keys<'_>,
        run_batches: bool,
    ) -> InProcess {
        let config = Config::from_yaml(config_yaml, &[batchgate_provider_vllm::NAME], &|_| None)
            .expect("config");
        let store = SqliteStore::open(&dir.join("meta.db"))
            .await
            .expect("store");
        let parts = Parts {
            store: Arc::new(store),
            blobs: Blobs::local(&dir.join("blobs")).expect("blobs"),
            id_secret: b"in-process test secret".to_vec(),
            deployments: config.deployments,
            general: config.general,
            batch: config.batch,
            clock,
        };
        let (gateway, provider) =
            batchgate_provider_vllm::assemble(parts, "in-process").expect("assemble");
        let providers = Providers::new().register(Arc::new(provider));
        let state = AppState::new(&gateway, providers, dir.join("spool"));
        let auth = match keys {
            Keys::Master(key) => Auth::master_key(key.into()),
            Keys::WithVirtual(key) => Auth::new(key.into(), gateway.accounts().clone()),
        };
        let app = batchgate_server::router(state, auth);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        InProcess {
            base,
            _running: run_batches.then(|| gateway.start()),
            gateway,
            server,
        }
    }
}
