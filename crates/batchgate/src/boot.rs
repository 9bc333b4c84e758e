//! Wiring: config → store → gateway → providers → HTTP.

use std::sync::Arc;

use anyhow::{bail, Context};
use batchgate_config::{Config, Router};
use batchgate_engine::{system_clock, Engine, Gateway, LocalFiles, Upstreams};
use batchgate_ids::IdCodec;
use batchgate_server::{AppState, Auth};
use batchgate_store::{Blobs, SqliteStore};
use futures::FutureExt;

use crate::{providers, Cli};

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let config = Config::load(&cli.config, &providers::names())?;
    let master_key = match (&config.general.master_key, cli.insecure_no_auth) {
        (Some(key), _) if !key.is_empty() => Some(key.clone()),
        (_, true) => {
            tracing::warn!("!!! --insecure-no-auth: every request is served without an API key check !!!");
            None
        }
        _ => bail!(
            "general_settings.master_key is not set: set it (e.g. master_key: os.environ/LITELLM_MASTER_KEY) \
             or pass --insecure-no-auth for a local experiment"
        ),
    };
    std::fs::create_dir_all(&cli.data_dir)
        .with_context(|| format!("cannot create data dir {}", cli.data_dir.display()))?;
    let secret = match (
        &config.general.id_secret,
        std::env::var("BATCHGATE_ID_SECRET"),
    ) {
        (Some(s), _) if !s.is_empty() => s.as_bytes().to_vec(),
        (_, Ok(s)) if !s.is_empty() => s.into_bytes(),
        _ => batchgate_ids::secret::load_or_generate(&cli.data_dir)
            .context("cannot load the ID secret")?,
    };
    let store = SqliteStore::open(&cli.data_dir.join("batchgate.db"))
        .await
        .context("cannot open the metadata store")?;
    let blobs = Blobs::local(&cli.data_dir.join("blobs")).context("cannot open the blob store")?;
    let server_settings = config.server;
    let gw = Gateway {
        store: Arc::new(store),
        blobs,
        codec: Arc::new(IdCodec::new(&secret)),
        router: Arc::new(Router::new(config.deployments)),
        general: Arc::new(config.general),
        batch: Arc::new(config.batch),
        clock: system_clock(),
    };
    let auth = match master_key {
        Some(key) => Auth::new(key, gw.store.clone()),
        None => Auth::disabled(),
    };
    let files = LocalFiles::new(gw.clone());
    let http = batchgate_upstream_openai::client().context("cannot build the HTTP client")?;
    let upstreams = Upstreams::connect(&gw.router, |d| providers::connect(&http, d))?;
    let engine = Engine::new(gw.clone(), instance_id(&cli.data_dir)?, upstreams)?;
    let _supervisor = engine.start();
    let state = AppState {
        providers: providers::register(&gw, &engine),
        catalog: files,
        batches: engine,
        spool_dir: cli.data_dir.join("spool"),
        gw,
    };
    let listener = tokio::net::TcpListener::bind((cli.host, cli.port))
        .await
        .with_context(|| format!("cannot listen on {}:{}", cli.host, cli.port))?;
    let addr = listener.local_addr()?;
    tracing::info!(models = ?state.gw.router.model_names(), "batchgate listening on http://{addr}");
    println!("batchgate listening on http://{addr}");
    // The engine stops with the HTTP side, concurrently: on SIGTERM/SIGINT
    // it sends no new line and lets in-flight upstream calls finish and be
    // journaled, so a graceful stop re-sends nothing after the restart.
    let stop = batchgate_server::shutdown_signal().shared();
    let engine = state.batches.clone();
    let engine_stopped = tokio::spawn({
        let stop = stop.clone();
        async move {
            stop.await;
            engine.shutdown().await;
        }
    });
    batchgate_server::serve(listener, state, auth, &server_settings, stop).await?;
    if let Err(e) = engine_stopped.await {
        tracing::warn!(error = %e, "batch engine shutdown failed");
    }
    tracing::info!("stopped");
    Ok(())
}

/// This process's name in batch leases: stable for one data directory, so a
/// restarted gateway takes its unfinished batches back at once.
fn instance_id(data_dir: &std::path::Path) -> anyhow::Result<String> {
    let path = data_dir.join("instance_id");
    if let Ok(id) = std::fs::read_to_string(&path) {
        if !id.trim().is_empty() {
            return Ok(id.trim().to_string());
        }
    }
    let id = format!(
        "batchgate-{}",
        batchgate_ids::request_id().trim_start_matches("req_")
    );
    std::fs::write(&path, &id).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(id)
}
