//! `heimdex-server`: the reference server.
//!
//! ```text
//! heimdex-server [all]     single node: the HTTP API and N worker tasks in one process
//! heimdex-server api       scale-out: the HTTP API only
//! heimdex-server worker    scale-out: workers only (any number of processes/machines)
//! ```
//!
//! Configuration comes from environment variables (the same names in deploy/.env.example,
//! docker-compose and the native setup), optionally loaded first from a `KEY=VALUE` file
//! named by `--config FILE` or `HEIMDEX_CONFIG`; variables already set win. See
//! docs/operations.md for every variable.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use heimdex_core::{Index, Queue, Store};
use heimdex_server::api::auth::{AuthConfig, Authenticator};
use heimdex_server::api::{AppState, router};
use heimdex_server::engine::{
    Engine, EngineConfig, HomeLock, ProgressSink, Shutdown, WorkerOptions,
};
use heimdex_server::stages::{StageSettings, default_stages};

#[derive(Debug, Parser)]
#[command(name = "heimdex-server", version, about = "Heimdex reference server")]
struct Cli {
    /// A `KEY=VALUE` file of settings (environment variables win over it).
    #[arg(long, env = "HEIMDEX_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    mode: Option<Mode>,
}

#[derive(Debug, Clone, Copy, Subcommand, PartialEq, Eq)]
enum Mode {
    /// API and workers in one process (single node; the default).
    All,
    /// The HTTP API only (scale-out).
    Api,
    /// Workers only (scale-out).
    Worker,
}

/// Settings from the config file (environment variables win over them).
static FILE_SETTINGS: std::sync::OnceLock<std::collections::BTreeMap<String, String>> =
    std::sync::OnceLock::new();

/// A setting: the environment variable, else the config file's value; empty = unset.
fn env(name: &str) -> Option<String> {
    std::env::var(name)
        .ok()
        .or_else(|| FILE_SETTINGS.get().and_then(|m| m.get(name).cloned()))
        .filter(|v| !v.trim().is_empty())
}

/// Read `KEY=VALUE` lines (comments `#`, optional `export `, optional quotes).
fn load_config_file(path: &Path) -> Result<()> {
    let mut settings = std::collections::BTreeMap::new();
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading config file {}", path.display()))?;
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line);
        let (k, v) = line
            .split_once('=')
            .with_context(|| format!("{}:{}: expected KEY=VALUE", path.display(), n + 1))?;
        let v = v.trim().trim_matches('"').trim_matches('\'');
        settings.insert(k.trim().to_owned(), v.to_owned());
    }
    let _ = FILE_SETTINGS.set(settings);
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(path) = &cli.config
        && let Err(e) = load_config_file(path)
    {
        eprintln!("error: {e:#}");
        return ExitCode::FAILURE;
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("HEIMDEX_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: starting the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli.mode.unwrap_or(Mode::All))) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The backends chosen by configuration.
struct Backends {
    store: Arc<dyn Store>,
    queue: Arc<dyn Queue>,
    index: Arc<dyn Index>,
    shared_index: bool,
    media: Arc<dyn object_store::ObjectStore>,
    media_root: Option<PathBuf>,
    lock: Option<HomeLock>,
}

async fn backends(mode: Mode, home: &Path, retry: heimdex_core::RetryPolicy) -> Result<Backends> {
    std::fs::create_dir_all(home).with_context(|| format!("creating {}", home.display()))?;
    let qdrant = env("HEIMDEX_QDRANT_URL");
    if mode != Mode::All && qdrant.is_none() {
        bail!(
            "`heimdex-server {}` is the scale-out mode: it shares its index through Qdrant. \
             Set HEIMDEX_QDRANT_URL, or run `heimdex-server all` (single node, embedded index)",
            if mode == Mode::Api { "api" } else { "worker" }
        );
    }
    // The embedded parts of a single node live in HEIMDEX_HOME; its writer lock keeps a
    // CLI run (or a second server) from writing the same index at once.
    let lock = if qdrant.is_none() {
        match HomeLock::try_acquire(home, "heimdex-server")? {
            Ok(l) => Some(l),
            Err(holder) => bail!(
                "{} is in use by {holder}; stop it, or give this server another HEIMDEX_HOME",
                home.display()
            ),
        }
    } else {
        None
    };

    if env("HEIMDEX_DATABASE_URL").is_some() {
        bail!("HEIMDEX_DATABASE_URL (Postgres) is not wired into this build yet");
    }
    let sqlite = heimdex_server::store::SqliteStore::open(&home.join("heimdex.db")).await?;
    if env("HEIMDEX_REDIS_URL").is_some() {
        bail!("HEIMDEX_REDIS_URL (Redis) is not wired into this build yet");
    }
    let local = heimdex_server::queue::LocalQueue::new(&sqlite, retry).await?;
    if lock.is_some() {
        local.reclaim_abandoned().await?;
    }
    let store: Arc<dyn Store> = Arc::new(sqlite);
    let queue: Arc<dyn Queue> = Arc::new(local);

    let (index, shared_index): (Arc<dyn Index>, bool) = match qdrant {
        Some(url) => {
            let cfg = heimdex_index::qdrant::QdrantConfig {
                url,
                api_key: env("HEIMDEX_QDRANT_API_KEY"),
                collection: env("HEIMDEX_QDRANT_COLLECTION").unwrap_or_else(|| "heimdex".into()),
                ..heimdex_index::qdrant::QdrantConfig::default()
            };
            (
                Arc::new(heimdex_index::qdrant::QdrantIndex::connect(cfg).await?),
                true,
            )
        }
        None => {
            let dir = home.join("index");
            let index =
                tokio::task::spawn_blocking(move || heimdex_index::EmbeddedIndex::open(dir))
                    .await??;
            (Arc::new(index), false)
        }
    };

    let media_url = env("HEIMDEX_MEDIA_URL");
    let (media, media_root): (Arc<dyn object_store::ObjectStore>, Option<PathBuf>) = match media_url
        .as_deref()
    {
        Some(url) if url.starts_with("s3://") => {
            let s3 = object_store::aws::AmazonS3Builder::from_env()
                .with_url(url)
                .build()
                .with_context(|| format!("HEIMDEX_MEDIA_URL={url}"))?;
            let prefix = url
                .trim_start_matches("s3://")
                .split_once('/')
                .map(|(_, p)| p.trim_matches('/').to_owned())
                .unwrap_or_default();
            let store: Arc<dyn object_store::ObjectStore> = if prefix.is_empty() {
                Arc::new(s3)
            } else {
                Arc::new(object_store::prefix::PrefixStore::new(s3, prefix))
            };
            (store, None)
        }
        other => {
            let dir = other.map_or_else(|| home.join("media"), PathBuf::from);
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            let dir = dir.canonicalize()?;
            (
                Arc::new(object_store::local::LocalFileSystem::new_with_prefix(&dir)?),
                Some(dir),
            )
        }
    };
    Ok(Backends {
        store,
        queue,
        index,
        shared_index,
        media,
        media_root,
        lock,
    })
}

fn auth_config() -> Result<AuthConfig> {
    let cfg = AuthConfig {
        hs256_secret: env("SUPABASE_JWT_SECRET"),
        jwks_url: env("HEIMDEX_JWKS_URL"),
        audience: env("HEIMDEX_JWT_AUDIENCE").unwrap_or_else(|| "authenticated".into()),
        issuer: env("HEIMDEX_JWT_ISSUER"),
        tenant_claim: env("HEIMDEX_TENANT_CLAIM")
            .unwrap_or_else(|| "app_metadata.tenant_id".into()),
        ..AuthConfig::default()
    };
    if cfg.hs256_secret.is_none() && cfg.jwks_url.is_none() {
        bail!("set SUPABASE_JWT_SECRET (HS256) and/or HEIMDEX_JWKS_URL (RS256/ES256)");
    }
    if cfg.hs256_secret.as_deref().is_some_and(|s| s.len() < 32) {
        bail!("SUPABASE_JWT_SECRET must be at least 32 characters");
    }
    Ok(cfg)
}

async fn run(mode: Mode) -> Result<()> {
    let home = PathBuf::from(env("HEIMDEX_HOME").unwrap_or_else(|| ".heimdex-server".into()));
    let workers: usize = env("HEIMDEX_WORKERS")
        .map(|w| w.parse().context("HEIMDEX_WORKERS: expected a number"))
        .transpose()?
        .unwrap_or(2);
    let listen: SocketAddr = env("HEIMDEX_LISTEN")
        .unwrap_or_else(|| "0.0.0.0:8000".into())
        .parse()
        .context("HEIMDEX_LISTEN: expected HOST:PORT")?;
    let auth = if mode == Mode::Worker {
        None
    } else {
        Some(auth_config()?)
    };
    let cfg = EngineConfig {
        concurrency: workers.max(1),
        ..EngineConfig::default()
    };
    let b = backends(mode, &home, cfg.retry).await?;
    tracing::info!(
        mode = ?mode,
        home = %home.display(),
        index = if b.shared_index { "qdrant" } else { "embedded" },
        "starting"
    );
    let mut engine = Engine::new(cfg, b.store, b.queue, b.index, b.media);
    if let Some(root) = b.media_root {
        engine = engine.with_media_root(root);
    }
    if let Some(lock) = b.lock {
        engine = engine.with_home_lock(lock);
    }
    if mode != Mode::Api {
        let stages = default_stages(&StageSettings {
            disable_ml: env("HEIMDEX_NO_ML").is_some_and(|v| v != "0" && v != "false"),
            language: env("HEIMDEX_LANGUAGE"),
        });
        for note in &stages.notes {
            tracing::warn!("{note}");
        }
        for e in stages.extractors {
            engine = engine.with_extractor(e);
        }
        if let Some(stage) = env("HEIMDEX_DEV_FAIL_STAGE") {
            tracing::warn!(%stage, "dev switch HEIMDEX_DEV_FAIL_STAGE: every job fails in this stage");
            engine =
                engine.with_extractor(Arc::new(heimdex_server::stages::FailingStage::new(&stage)));
        }
    }
    if mode != Mode::Worker {
        for q in heimdex_server::stages::query_encoders(&StageSettings::default()).query_encoders {
            engine = engine.with_query_encoder(q);
        }
    }
    let engine = Arc::new(engine);

    let (stop, shutdown) = Shutdown::new();
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("shutting down: finishing or handing back jobs in progress");
        let _ = stop.send(true);
    });

    let metrics = Arc::new(heimdex_server::api::metrics::Metrics::default());
    let mut tasks = tokio::task::JoinSet::new();
    if mode != Mode::Api {
        let engine = Arc::clone(&engine);
        let sink: Arc<dyn ProgressSink> = metrics.clone();
        let shutdown = shutdown.clone();
        let metrics = Arc::clone(&metrics);
        tasks.spawn(async move {
            let beat = tokio::spawn(async move {
                loop {
                    metrics.heartbeat();
                    tokio::time::sleep(Duration::from_secs(5)).await;
                }
            });
            let options = WorkerOptions {
                until_idle: false,
                poll: Duration::from_millis(250),
                grace: Duration::from_secs(20),
                ..WorkerOptions::default()
            };
            let r = engine.run_workers(sink, options, shutdown).await;
            beat.abort();
            r.map(drop).map_err(anyhow::Error::from)
        });
    }
    if let Some(auth) = auth {
        let mut state = AppState::new(Arc::clone(&engine), Authenticator::new(auth));
        state.metrics = Arc::clone(&metrics);
        state.local_roots = Arc::new(
            env("HEIMDEX_LOCAL_ROOTS")
                .map(|r| {
                    r.split(':')
                        .filter(|p| !p.is_empty())
                        .map(PathBuf::from)
                        .collect()
                })
                .unwrap_or_default(),
        );
        let app = router(state.clone());
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("listening on {listen}"))?;
        tracing::info!(%listen, "API listening (docs at /docs)");
        state.ready.store(true, Ordering::SeqCst);
        let mut shutdown = shutdown.clone();
        tasks.spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move { shutdown.triggered().await })
                .await
                .map_err(anyhow::Error::from)
        });
    }
    while let Some(r) = tasks.join_next().await {
        r??;
    }
    engine.index().flush().await?;
    Ok(())
}

async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
