//! Wiring: config → store → gateway → providers → HTTP.

use std::path::Path;
use std::sync::Arc;

use anyhow::{bail, Context};
use batchgate_config::{Config, GeneralSettings, Router};
use batchgate_engine::{system_clock, Engine, Gateway, LocalFiles, Upstreams};
use batchgate_ids::IdCodec;
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
    let blobs = Blobs::local(&cli.data_dir.join("blobs")).context("cannot open the blob store")?;
    let server_settings = config.server;
    let gw = Gateway {
        store,
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
    tracing::info!(
        blobs = %data_dir.join("blobs").display(),
        "metadata in PostgreSQL; file bytes stay in this instance's data directory, so instances \
         that share the database must share that directory too"
    );
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
