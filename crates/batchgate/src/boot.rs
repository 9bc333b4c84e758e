//! Wiring: config → store → gateway ([`Assembly`]) → providers → HTTP.

use std::path::Path;
use std::sync::Arc;

use anyhow::{bail, Context};
use batchgate_config::{Config, GeneralSettings};
use batchgate_engine::{system_clock, Assembly, Parts};
use batchgate_server::{AppState, Auth};
use batchgate_store::{Blobs, MetaStore, SqliteStore};
use batchgate_store_postgres::PostgresStore;
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
    let secret = id_secret(&config.general, &cli.data_dir)?;
    let store = open_store(&config.general, &cli.data_dir).await?;
    let blobs = open_blobs(&config.general, &cli.data_dir)?;
    let server_settings = config.server;
    let parts = Parts {
        store,
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

/// The metadata store: PostgreSQL when `database_url` names one (several
/// instances may share it), else the embedded SQLite file in the data
/// directory.
async fn open_store(
    general: &GeneralSettings,
    data_dir: &Path,
) -> anyhow::Result<Arc<dyn MetaStore>> {
    let Some(url) = &general.database_url else {
        let store = SqliteStore::open(&data_dir.join("batchgate.db"))
            .await
            .context("cannot open the metadata store")?;
        return Ok(Arc::new(store));
    };
    // The URL may hold a password: it is never logged.
    let store = PostgresStore::connect(url).await.context(
        "cannot open the PostgreSQL metadata store (general_settings.database_url or DATABASE_URL)",
    )?;
    tracing::info!("metadata in the PostgreSQL database of database_url");
    Ok(Arc::new(store))
}

/// The key of the ID MAC: the config's, else `BATCHGATE_ID_SECRET`, else —
/// on the embedded store only — one generated into the data directory.
/// Instances sharing a database must share the secret, or the IDs one of
/// them hands out are forgeries to the others; a generated secret is this
/// instance's alone, so with a shared database it is refused.
fn id_secret(general: &GeneralSettings, data_dir: &Path) -> anyhow::Result<Vec<u8>> {
    if let Some(s) = general.id_secret.as_ref().filter(|s| !s.is_empty()) {
        return Ok(s.as_bytes().to_vec());
    }
    if let Ok(s) = std::env::var("BATCHGATE_ID_SECRET") {
        if !s.is_empty() {
            return Ok(s.into_bytes());
        }
    }
    if general.database_url.is_some() {
        bail!(
            "with a shared database (general_settings.database_url or DATABASE_URL), every instance must \
             use the same ID secret, and none is set: set general_settings.id_secret (for example \
             `id_secret: os.environ/BATCHGATE_ID_SECRET`) or the environment variable BATCHGATE_ID_SECRET \
             to the same value on every instance, e.g. the output of `openssl rand -hex 32` (to keep the \
             IDs an embedded-store gateway already handed out, use the content of its {}/{})",
            data_dir.display(),
            batchgate_ids::secret::SECRET_FILE
        );
    }
    batchgate_ids::secret::load_or_generate(data_dir).context("cannot load the ID secret")
}

/// The blob store: `general_settings.storage_url`, else env
/// `BATCHGATE_STORAGE_URL`, else `blobs/` under the data directory — which
/// only this instance sees, so instances sharing a database are warned.
fn open_blobs(general: &GeneralSettings, data_dir: &Path) -> anyhow::Result<Blobs> {
    let from_env = std::env::var("BATCHGATE_STORAGE_URL").ok();
    let configured = general.storage_url.as_deref().or(from_env.as_deref());
    match configured.filter(|u| !u.is_empty()) {
        Some(url) => {
            let blobs = Blobs::from_url(url)
                .with_context(|| format!("cannot open the blob store at {url}"))?;
            tracing::info!(storage_url = url, "file bytes in the configured blob store");
            Ok(blobs)
        }
        None => {
            if general.database_url.is_some() {
                tracing::warn!(
                    "file bytes are in this instance's data directory: instances sharing the \
                     database need shared storage too (general_settings.storage_url)"
                );
            }
            Blobs::local(&data_dir.join("blobs")).context("cannot open the blob store")
        }
    }
}

/// This process's name in batch leases: stable for one data directory, so a
/// restarted gateway takes its unfinished batches back at once.
fn instance_id(data_dir: &Path) -> anyhow::Result<String> {
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
