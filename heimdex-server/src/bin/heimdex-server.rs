//! `heimdex-server`: the reference server.
//!
//! ```text
//! heimdex-server [all]     single node: the HTTP API and N worker tasks in one process
//! heimdex-server api       scale-out: the HTTP API only
//! heimdex-server worker    scale-out: workers only (any number of processes/machines)
//! heimdex-server token --tenant T     print a bearer token (HS256, SUPABASE_JWT_SECRET)
//! ```
//!
//! Backends: Postgres (`HEIMDEX_DATABASE_URL`, migrations through
//! `HEIMDEX_DATABASE_ADMIN_URL`) or, single node only, SQLite in `HEIMDEX_HOME`; Redis
//! (`HEIMDEX_REDIS_URL`, `HEIMDEX_REDIS_NAMESPACE`) or, with SQLite, the in-process queue;
//! Qdrant (`HEIMDEX_QDRANT_URL`) or the embedded index; sidecars and thumbnails in S3
//! (`HEIMDEX_MEDIA_URL=s3://bucket/prefix`, `AWS_*`) or a local directory. Scale-out modes
//! need Postgres, Redis and Qdrant: they refuse to start on anything a single process owns.
//!
//! Every process prepares each tenant of the Store's tenant directory at start (with the
//! Redis queue, enqueues again the unfinished jobs the Store knows; with the embedded index,
//! restores documents a crash lost from their sidecars), and a tenant first seen in a request
//! before its first use; with Redis, every tenant is reconciled again every
//! `HEIMDEX_RECONCILE_SECS`. API processes sync every registered source every
//! `HEIMDEX_SYNC_SECS` (default 900; 0 turns the schedule off).
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
use object_store::ClientConfigKey;
use object_store::aws::AmazonS3ConfigKey;

#[derive(Debug, Parser)]
#[command(name = "heimdex-server", version, about = "Heimdex reference server")]
struct Cli {
    /// A `KEY=VALUE` file of settings (environment variables win over it).
    #[arg(long, env = "HEIMDEX_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Clone, Subcommand, PartialEq, Eq)]
enum Command {
    /// API and workers in one process (single node; the default).
    All,
    /// The HTTP API only (scale-out).
    Api,
    /// Workers only (scale-out).
    Worker,
    /// Print a bearer token for `tenant`, signed with SUPABASE_JWT_SECRET (HS256), for
    /// development and scripts: `curl -H "Authorization: Bearer $(heimdex-server token
    /// --tenant acme)" ...`.
    Token {
        /// The tenant the token acts for (claim `app_metadata.tenant_id` and `sub`).
        #[arg(long)]
        tenant: String,
        /// Seconds until it expires.
        #[arg(long, default_value_t = 3600)]
        ttl: u64,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    All,
    Api,
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
    let mode = match cli.command.unwrap_or(Command::All) {
        Command::All => Mode::All,
        Command::Api => Mode::Api,
        Command::Worker => Mode::Worker,
        Command::Token { tenant, ttl } => {
            return match token(&tenant, ttl) {
                Ok(t) => {
                    println!("{t}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("error: {e:#}");
                    ExitCode::FAILURE
                }
            };
        }
    };
    match runtime.block_on(run(mode)) {
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

    let database = env("HEIMDEX_DATABASE_URL");
    let redis = env("HEIMDEX_REDIS_URL");
    if mode != Mode::All && (database.is_none() || redis.is_none()) {
        bail!(
            "`heimdex-server {}` is the scale-out mode: it shares its jobs through Postgres and \
             Redis. Set HEIMDEX_DATABASE_URL and HEIMDEX_REDIS_URL, or run `heimdex-server all`",
            if mode == Mode::Api { "api" } else { "worker" }
        );
    }
    let (store, queue) = match (database, redis) {
        (Some(url), Some(redis)) => (
            postgres_store(&url).await?,
            redis_queue(&redis, retry).await?,
        ),
        (Some(_), None) => bail!(
            "HEIMDEX_DATABASE_URL (Postgres) needs HEIMDEX_REDIS_URL too: the in-process queue \
             lives in the SQLite store of a single node"
        ),
        (None, redis) => {
            let sqlite = heimdex_server::store::SqliteStore::open(&home.join("heimdex.db")).await?;
            let queue: Arc<dyn Queue> = match redis {
                Some(redis) => redis_queue(&redis, retry).await?,
                None => {
                    let local = heimdex_server::queue::LocalQueue::new(&sqlite, retry).await?;
                    if lock.is_some() {
                        let n = local.reclaim_abandoned().await?;
                        if n > 0 {
                            tracing::info!(jobs = n, "handed back jobs of a process that stopped");
                        }
                    }
                    Arc::new(local)
                }
            };
            let store: Arc<dyn Store> = Arc::new(sqlite);
            (store, queue)
        }
    };

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
            // `from_env` reads the process environment; the config file's AWS_* settings
            // are applied on top (the process environment still wins, see `env`).
            let mut builder = object_store::aws::AmazonS3Builder::from_env().with_url(url);
            for (key, name) in [
                (AmazonS3ConfigKey::Endpoint, "AWS_ENDPOINT"),
                (AmazonS3ConfigKey::Endpoint, "AWS_ENDPOINT_URL"),
                (
                    AmazonS3ConfigKey::Client(ClientConfigKey::AllowHttp),
                    "AWS_ALLOW_HTTP",
                ),
                (AmazonS3ConfigKey::AccessKeyId, "AWS_ACCESS_KEY_ID"),
                (AmazonS3ConfigKey::SecretAccessKey, "AWS_SECRET_ACCESS_KEY"),
                (AmazonS3ConfigKey::Region, "AWS_REGION"),
                (AmazonS3ConfigKey::Token, "AWS_SESSION_TOKEN"),
            ] {
                if let Some(v) = env(name) {
                    builder = builder.with_config(key, v);
                }
            }
            let s3 = builder
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

/// The Postgres store: migrations through `HEIMDEX_DATABASE_ADMIN_URL` when set, data
/// through the application role of `HEIMDEX_DATABASE_URL`.
#[cfg(feature = "postgres")]
async fn postgres_store(url: &str) -> Result<Arc<dyn Store>> {
    use heimdex_server::store::{PostgresConfig, PostgresStore};
    let mut cfg = PostgresConfig::new(url);
    if let Some(admin) = env("HEIMDEX_DATABASE_ADMIN_URL") {
        cfg = cfg.with_admin_url(admin);
    }
    if let Some(n) = env("HEIMDEX_DATABASE_MAX_CONNECTIONS") {
        cfg.max_connections = n
            .parse()
            .context("HEIMDEX_DATABASE_MAX_CONNECTIONS: expected a number")?;
    }
    let store = PostgresStore::connect(&cfg)
        .await
        .context("connecting to Postgres (HEIMDEX_DATABASE_URL)")?;
    Ok(Arc::new(store))
}

#[cfg(not(feature = "postgres"))]
async fn postgres_store(_url: &str) -> Result<Arc<dyn Store>> {
    bail!(
        "HEIMDEX_DATABASE_URL is set but this heimdex-server was built without feature `postgres`"
    )
}

/// The Redis queue in namespace `HEIMDEX_REDIS_NAMESPACE` (default `heimdex`).
#[cfg(feature = "redis")]
async fn redis_queue(url: &str, retry: heimdex_core::RetryPolicy) -> Result<Arc<dyn Queue>> {
    let namespace = env("HEIMDEX_REDIS_NAMESPACE").unwrap_or_else(|| "heimdex".into());
    let queue = heimdex_server::queue::RedisQueue::connect(url, &namespace, retry)
        .await
        .context("connecting to Redis (HEIMDEX_REDIS_URL)")?;
    Ok(Arc::new(queue))
}

#[cfg(not(feature = "redis"))]
async fn redis_queue(_url: &str, _retry: heimdex_core::RetryPolicy) -> Result<Arc<dyn Queue>> {
    bail!("HEIMDEX_REDIS_URL is set but this heimdex-server was built without feature `redis`")
}

/// An HS256 token for `tenant` as Supabase would issue it (audience from
/// `HEIMDEX_JWT_AUDIENCE`, tenant in `app_metadata.tenant_id` and `sub`).
fn token(tenant: &str, ttl: u64) -> Result<String> {
    let Some(secret) = env("SUPABASE_JWT_SECRET") else {
        bail!("set SUPABASE_JWT_SECRET (the server's HS256 secret) to sign a token");
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs();
    let mut claims = serde_json::json!({
        "sub": tenant,
        "role": "authenticated",
        "aud": env("HEIMDEX_JWT_AUDIENCE").unwrap_or_else(|| "authenticated".into()),
        "iat": now,
        "exp": now + ttl,
        "app_metadata": {"tenant_id": tenant},
    });
    if let Some(iss) = env("HEIMDEX_JWT_ISSUER") {
        claims["iss"] = serde_json::Value::String(iss);
    }
    Ok(jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )?)
}

/// A numeric setting, `default` when unset.
fn number<T: std::str::FromStr>(name: &str, default: T) -> Result<T> {
    match env(name) {
        Some(v) => v
            .trim()
            .parse()
            .map_err(|_| anyhow::anyhow!("{name}={v}: expected a number")),
        None => Ok(default),
    }
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
    let defaults = EngineConfig::default();
    let cfg = EngineConfig {
        concurrency: workers.max(1),
        // A job's lease: a killed worker's job is delivered again after it runs out.
        visibility: Duration::from_secs(number(
            "HEIMDEX_LEASE_SECS",
            defaults.visibility.as_secs(),
        )?),
        retry: heimdex_core::RetryPolicy {
            max_attempts: number("HEIMDEX_MAX_ATTEMPTS", defaults.retry.max_attempts)?,
            base_backoff: Duration::from_millis(number(
                "HEIMDEX_RETRY_BACKOFF_MS",
                defaults.retry.base_backoff.as_millis() as u64,
            )?),
            max_backoff: Duration::from_millis(number(
                "HEIMDEX_RETRY_MAX_BACKOFF_MS",
                defaults.retry.max_backoff.as_millis() as u64,
            )?),
        },
        settle: Duration::from_millis(number(
            "HEIMDEX_SETTLE_MS",
            defaults.settle.as_millis() as u64,
        )?),
        query_cache: number("HEIMDEX_QUERY_CACHE", defaults.query_cache)?,
        ..defaults
    }
    .with_sampling_from_env()
    .map_err(anyhow::Error::msg)?;
    if cfg.visibility < Duration::from_secs(3) {
        bail!("HEIMDEX_LEASE_SECS must be at least 3");
    }
    let b = backends(mode, &home, cfg.retry).await?;
    let redis_queue_in_use = env("HEIMDEX_REDIS_URL").is_some();
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
    if !b.shared_index && mode != Mode::Api {
        // The embedded index lives in memory and is written to disk on flush; flush it
        // often, so a killed server loses little (and `prepare_tenant` restores the rest
        // from the sidecars).
        let engine = Arc::clone(&engine);
        let every = Duration::from_secs(number("HEIMDEX_FLUSH_SECS", 5u64)?.max(1));
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                if let Err(e) = engine.index().flush().await {
                    tracing::warn!(error = %e, "flushing the index");
                }
            }
        });
    }
    let tenants = Arc::new(Tenants::new(
        Arc::clone(&engine),
        !b.shared_index,
        redis_queue_in_use,
    ));
    {
        // Every tenant of the store's directory is prepared at start (worker-only processes
        // too), then reconciled every HEIMDEX_RECONCILE_SECS when the queue is Redis.
        let tenants = Arc::clone(&tenants);
        let every = Duration::from_secs(number("HEIMDEX_RECONCILE_SECS", 300u64)?.max(1));
        let shared_queue = redis_queue_in_use;
        tokio::spawn(async move {
            tenants.prepare_all().await;
            if shared_queue {
                loop {
                    tokio::time::sleep(every).await;
                    tenants.reconcile_all().await;
                }
            }
        });
    }
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
        let auth = Arc::clone(&state.auth);
        let seen = Arc::clone(&tenants);
        let app = router(state.clone()).layer(axum::middleware::from_fn(
            move |req: axum::extract::Request, next: axum::middleware::Next| {
                let auth = Arc::clone(&auth);
                let seen = Arc::clone(&seen);
                async move {
                    if req.uri().path().starts_with("/v1/") {
                        let header = req
                            .headers()
                            .get(axum::http::header::AUTHORIZATION)
                            .and_then(|h| h.to_str().ok());
                        if let Ok(tenant) = auth.tenant_of_header(header).await {
                            seen.prepare(&tenant).await;
                        }
                    }
                    next.run(req).await
                }
            },
        ));
        // Every registered source is synced on a schedule (and on demand through the API).
        let sync_every = number("HEIMDEX_SYNC_SECS", 900u64)?;
        if sync_every > 0 {
            let tenants = Arc::clone(&tenants);
            let every = Duration::from_secs(sync_every);
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(every).await;
                    tenants.sync_all().await;
                }
            });
        }
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

/// The tenants this process has served, each prepared once (see [`Tenants::prepare`]).
struct Tenants {
    engine: Arc<Engine>,
    embedded_index: bool,
    shared_queue: bool,
    seen: tokio::sync::Mutex<
        std::collections::HashMap<heimdex_core::TenantId, Arc<tokio::sync::OnceCell<()>>>,
    >,
}

impl Tenants {
    fn new(engine: Arc<Engine>, embedded_index: bool, shared_queue: bool) -> Self {
        Self {
            engine,
            embedded_index,
            shared_queue,
            seen: tokio::sync::Mutex::new(std::collections::HashMap::new()),
        }
    }

    /// The first time this process serves `tenant`: with the Redis queue, enqueue again
    /// the tenant's unfinished jobs (a crash between writing a job and enqueueing it, or a
    /// Redis that lost its data, leaves them only in the Store); with the embedded index,
    /// restore from their sidecars the documents of indexed assets that a killed server had
    /// not flushed. Concurrent first requests wait for it; a failure is logged and tried
    /// again on the next request.
    async fn prepare(&self, tenant: &heimdex_core::TenantId) {
        let cell = Arc::clone(self.seen.lock().await.entry(tenant.clone()).or_default());
        let r = cell
            .get_or_try_init(|| async {
                if self.shared_queue {
                    let n = self.engine.reconcile(tenant).await?;
                    tracing::info!(%tenant, jobs = n, "reconciled the queue with the store");
                }
                if self.embedded_index {
                    // `check` and `repair` futures are not `Send` for every lifetime (the
                    // compiler cannot prove it inside axum's middleware): run them on a
                    // blocking thread of their own.
                    let engine = Arc::clone(&self.engine);
                    let tenant = tenant.clone();
                    tokio::task::spawn_blocking(move || {
                        tokio::runtime::Handle::current()
                            .block_on(restore_documents(&engine, &tenant))
                    })
                    .await
                    .map_err(|e| heimdex_server::engine::EngineError::Task(e.to_string()))??;
                }
                Ok::<(), heimdex_server::engine::EngineError>(())
            })
            .await;
        if let Err(e) = r {
            tracing::warn!(%tenant, error = %e, "preparing tenant; will retry");
        }
    }

    /// The tenants of the store's directory plus those served so far (a tenant whose first
    /// source is being registered right now), in id order.
    async fn all(&self) -> Vec<heimdex_core::TenantId> {
        let mut all = match self.engine.store().tenants().await {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!(error = %e, "listing tenants");
                Vec::new()
            }
        };
        all.extend(self.seen.lock().await.keys().cloned());
        all.sort();
        all.dedup();
        all
    }

    /// [`prepare`](Self::prepare) every tenant of the directory (at start).
    async fn prepare_all(&self) {
        for tenant in self.all().await {
            self.prepare(&tenant).await;
        }
    }

    /// [`Engine::reconcile`] every tenant.
    async fn reconcile_all(&self) {
        for tenant in self.all().await {
            if let Err(e) = self.engine.reconcile(&tenant).await {
                tracing::warn!(%tenant, error = %e, "reconcile");
            }
        }
    }

    /// Scan every source of every tenant: new and modified media queued, deleted media
    /// removed. A source that fails (unreachable, credentials) is logged and skipped.
    async fn sync_all(&self) {
        for tenant in self.all().await {
            let sources = match self.engine.sources(&tenant).await {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(%tenant, error = %e, "listing sources for the scheduled sync");
                    continue;
                }
            };
            for s in sources {
                match self.engine.scan(&tenant, &s.id).await {
                    Ok(r) => tracing::info!(%tenant, source = %s.id, new = r.new,
                        modified = r.modified, deleted = r.deleted, "scheduled sync"),
                    Err(e) => {
                        tracing::warn!(%tenant, source = %s.id, error = %e, "scheduled sync")
                    }
                }
            }
        }
    }
}

/// Restore from their sidecars the documents of `tenant`'s indexed assets that the embedded
/// index lacks (a server killed before its flush). Nothing else `check` finds is touched.
async fn restore_documents(
    engine: &Engine,
    tenant: &heimdex_core::TenantId,
) -> Result<(), heimdex_server::engine::EngineError> {
    let found = engine.check(tenant, None).await?;
    if !found.missing_documents.is_empty() {
        let only_documents = heimdex_server::engine::CheckReport {
            missing_documents: found.missing_documents,
            ..Default::default()
        };
        let r = engine.repair(tenant, &only_documents).await?;
        tracing::info!(%tenant, assets = r.documents_restored, "restored index documents from sidecars");
    }
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
