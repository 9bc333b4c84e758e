//! Wiring: config → store → gateway ([`Assembly`]) → providers → HTTP.

use std::sync::Arc;

use anyhow::{bail, Context};
use batchgate_config::Config;
use batchgate_engine::{system_clock, Assembly, Parts};
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
    let blobs = open_blobs(config.general.storage_url.as_deref(), &cli.data_dir)?;
    let server_settings = config.server;
    let parts = Parts {
        store: Arc::new(store),
        blobs,
        id_secret: secret,
        deployments: config.deployments,
        general: config.general,
        batch: config.batch,
        clock: system_clock(),
    };
    let http = batchgate_upstream_openai::client().context("cannot build the HTTP client")?;
    let gateway = Assembly::new(parts, instance_id(&cli.data_dir)?, |d| {
        providers::connect(&http, d)
    })?;
    let auth = match master_key {
        Some(key) => Auth::new(key, gateway.accounts().clone()),
        None => Auth::disabled(),
    };
    // Batches resume, expired files are swept and budget periods restart
    // from here until the end of `run`.
    let _running = gateway.start();
    let state = AppState::new(
        &gateway,
        providers::register(&gateway),
        cli.data_dir.join("spool"),
    );
    let listener = tokio::net::TcpListener::bind((cli.host, cli.port))
        .await
        .with_context(|| format!("cannot listen on {}:{}", cli.host, cli.port))?;
    let addr = listener.local_addr()?;
    tracing::info!(models = ?state.model_names(), "batchgate listening on http://{addr}");
    println!("batchgate listening on http://{addr}");
    // The engine stops with the HTTP side, concurrently: on SIGTERM/SIGINT
    // it sends no new line and lets in-flight upstream calls finish and be
    // journaled, so a graceful stop re-sends nothing after the restart.
    let stop = batchgate_server::shutdown_signal().shared();
    let engine = gateway.engine().clone();
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

/// The blob store: `general_settings.storage_url`, else env
/// `BATCHGATE_STORAGE_URL`, else `blobs/` under the data directory.
fn open_blobs(configured: Option<&str>, data_dir: &std::path::Path) -> anyhow::Result<Blobs> {
    let from_env = std::env::var("BATCHGATE_STORAGE_URL").ok();
    match configured.or(from_env.as_deref()).filter(|u| !u.is_empty()) {
        Some(url) => {
            let blobs = Blobs::from_url(url)
                .with_context(|| format!("cannot open the blob store at {url}"))?;
            tracing::info!(storage_url = url, "file bytes in the configured blob store");
            Ok(blobs)
        }
        None => Blobs::local(&data_dir.join("blobs")).context("cannot open the blob store"),
    }
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
