//! `heimdex`: index folders of videos in place and search them by time-coded moment.
//!
//! ```text
//! heimdex --home DIR index PATH...            index folders/files (re-runs do only changed work)
//! heimdex --home DIR search "QUERY" [--limit N] [--json]
//! heimdex --home DIR show PATH                print an asset's sidecar JSON
//! heimdex --home DIR status [--json]          assets and jobs by state, failures with reasons
//! heimdex --home DIR persons [name ID NAME]    face clusters across the archive
//! heimdex --home DIR reindex                  rebuild the search index from the sidecars
//! heimdex --home DIR check [--repair]         find (and fix) gaps between store, index, media
//! ```
//! `--home` defaults to `$HEIMDEX_HOME`, then `./.heimdex`.
//!
//! Any number of these may run at once on one home. Commands that write the index (`index`,
//! `reindex`, `check --repair`) take the home's writer lock; a second one waits for the first
//! and says so. Errors are reported in one place ([`report`]): a line per cause, a hint
//! where the CLI knows what to do, and an exit code by kind (see [`exit_code`]).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use heimdex_core::index::{SearchFilter, SearchRequest};
use heimdex_core::time_util::timecode;
use heimdex_core::{ErrorKind, TenantId};
use heimdex_server::engine::{
    Engine, EngineConfig, EngineError, HomeLock, JobOutcome, ProgressEvent, ProgressSink, Shutdown,
    WorkerOptions,
};
use heimdex_server::stages::{StageSettings, Stages, default_stages, query_encoders};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

#[derive(Debug, Parser)]
#[command(
    name = "heimdex",
    version,
    about = "Find moments in video archives, reading them in place"
)]
struct Cli {
    /// Heimdex home: database, index, sidecars and thumbnails.
    #[arg(long, global = true, env = "HEIMDEX_HOME", default_value = ".heimdex")]
    home: PathBuf,
    /// Run only the FFmpeg media stages (no speech, OCR, faces or embeddings).
    #[arg(long, global = true, env = "HEIMDEX_NO_ML")]
    no_ml: bool,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Index sources of video in place: folders, files or source URIs (`s3://bucket/prefix`,
    /// `gs://…`, `az://…`, `https://…`, `gdrive://folder/ID`, as compiled in). Re-runs sync only
    /// what changed; with no source, every registered source is synced.
    Index {
        /// Folders, files or source URIs; none: every registered source.
        #[arg(value_name = "SOURCE")]
        sources: Vec<String>,
        /// A connector option, KEY=VALUE (endpoint, region, …); repeatable. Credentials are
        /// best left to the environment (AWS_*, GOOGLE_APPLICATION_CREDENTIALS, AZURE_STORAGE_*);
        /// options that are secrets are used for this run only and never stored.
        #[arg(long = "option", short = 'o', value_name = "KEY=VALUE")]
        options: Vec<String>,
        /// Jobs processed at once.
        #[arg(long, default_value_t = 2)]
        jobs: usize,
        /// No progress bar.
        #[arg(long)]
        quiet: bool,
        /// Spoken language to force (ISO 639-1) instead of detecting it.
        #[arg(long)]
        language: Option<String>,
    },
    /// Search and print time-coded moments.
    Search {
        /// Words, "quoted phrases", prefix*. Optional with --image or --like.
        #[arg(required_unless_present_any = ["image", "like"])]
        query: Option<String>,
        /// Search by example frame: moments that look like this picture (needs a CLIP model).
        #[arg(long, conflicts_with = "like")]
        image: Option<PathBuf>,
        /// More like this: moments similar to the moment of an indexed file at a time,
        /// written FILE@SECONDS (or FILE@M:SS).
        #[arg(long)]
        like: Option<String>,
        /// Maximum moments.
        #[arg(long, default_value_t = 10)]
        limit: usize,
        /// Moments to skip (paging).
        #[arg(long, default_value_t = 0)]
        offset: usize,
        /// Print a JSON array.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        filter: Box<FilterArgs>,
    },
    /// Print the sidecar JSON of an indexed file.
    Show {
        /// The file.
        path: PathBuf,
    },
    /// List persons (face clusters across the archive), or name one.
    Persons {
        #[command(subcommand)]
        action: Option<PersonsAction>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Assets and jobs by state; failed jobs with their reasons.
    Status {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Rebuild the search index from the stored sidecars (no extraction, no models).
    Reindex,
    /// Registered sources: kind, URI, stored settings and when each was last synced.
    Sources {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Find gaps between the store, the index and the stored sidecars/thumbnails.
    Check {
        /// Fix what was found: rebuild missing documents from sidecars, delete orphans,
        /// queue assets whose sidecar is missing.
        #[arg(long)]
        repair: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
enum PersonsAction {
    /// Give a person a name; search with `--person NAME` afterwards.
    Name {
        /// `person-N` id (or the current name).
        id: String,
        /// The name.
        name: String,
    },
}

/// What the engine should load.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Load {
    /// Every stage (indexing).
    Stages,
    /// Query encoders only (searching).
    QueryEncoders,
    /// Nothing beyond the backends.
    Nothing,
}

/// Filters applied to every signal of a search.
#[derive(Debug, clap::Args)]
struct FilterArgs {
    /// Only files whose path starts with this prefix (a folder, for example).
    #[arg(long)]
    path_prefix: Option<String>,
    /// Only moments overlapping this time range, e.g. `10-30` or `1:00-2:30` (seconds or m:ss).
    #[arg(long)]
    time: Option<String>,
    /// Only these kinds of moment: asset, shot, transcript, ocr, visual, custom (repeatable).
    #[arg(long = "kind")]
    kinds: Vec<String>,
    /// Only moments carrying this tag (repeatable; all must match).
    #[arg(long = "tag")]
    tags: Vec<String>,
    /// Only shots showing this: a visual label or a broader word, e.g. `dog`, `mountain`,
    /// `seashore` (repeatable; all must match).
    #[arg(long = "shows", visible_alias = "object")]
    shows: Vec<String>,
    /// Only assets whose duration (seconds) is in MIN-MAX, e.g. `0-60`.
    #[arg(long)]
    duration: Option<String>,
    /// Only assets captured in FROM..TO (dates `YYYY-MM-DD`, inclusive).
    #[arg(long)]
    date: Option<String>,
    /// Only this spoken language (ISO 639-1; repeatable).
    #[arg(long = "language")]
    languages: Vec<String>,
    /// Only assets with speech (`true`) or without (`false`).
    #[arg(long)]
    has_speech: Option<bool>,
    /// Only moments where this person (face cluster id or name) appears (repeatable).
    #[arg(long = "person")]
    persons: Vec<String>,
    /// Only moments where the person in this photo appears (search by example face).
    #[arg(long)]
    face: Option<PathBuf>,
    /// Only these sources (ids as listed by `status --json`; repeatable).
    #[arg(long = "source")]
    sources: Vec<String>,
    /// Only these assets (ids as in `search --json` / `show`; repeatable).
    #[arg(long = "asset")]
    assets: Vec<String>,
    /// Fusion of keyword and meaning: `rrf` (default) or `weighted:KEYWORD,VECTOR`.
    #[arg(long, default_value = "rrf")]
    fusion: String,
}

impl FilterArgs {
    fn to_filter(&self) -> Result<SearchFilter> {
        let mut f = SearchFilter::default();
        f.path_prefix = self.path_prefix.as_deref().map(|p| {
            // A relative or non-canonical folder still matches the absolute paths we store.
            std::fs::canonicalize(p)
                .map(|c| c.display().to_string())
                .unwrap_or_else(|_| p.to_owned())
        });
        if let Some(t) = &self.time {
            let (a, b) = t
                .split_once('-')
                .with_context(|| format!("--time {t}: expected FROM-TO"))?;
            f.time_range = Some((parse_time(a)?, parse_time(b)?));
        }
        for k in &self.kinds {
            f.kinds.push(
                k.parse()
                    .map_err(|e: String| anyhow::anyhow!("--kind: {e}"))?,
            );
        }
        f.tags = self.tags.clone();
        f.tags.extend(
            self.shows
                .iter()
                .map(|l| heimdex_core::segments::visual_tag(l)),
        );
        if let Some(d) = &self.duration {
            let (a, b) = d
                .split_once('-')
                .with_context(|| format!("--duration {d}: expected MIN-MAX"))?;
            f.duration_range = Some((parse_time(a)?, parse_time(b)?));
        }
        if let Some(d) = &self.date {
            let (a, b) = d
                .split_once("..")
                .with_context(|| format!("--date {d}: expected FROM..TO"))?;
            f.date_range = Some((a.trim().to_owned(), b.trim().to_owned()));
        }
        f.languages = self.languages.clone();
        f.has_speech = self.has_speech;
        f.faces = self.persons.clone();
        f.sources = self
            .sources
            .iter()
            .map(|s| heimdex_core::SourceId::new(s.clone()))
            .collect();
        f.assets = self
            .assets
            .iter()
            .map(|a| heimdex_core::AssetId::new(a.clone()))
            .collect();
        Ok(f)
    }
}

/// `rrf` or `weighted:K,V`.
fn parse_fusion(s: &str) -> Result<heimdex_core::Fusion> {
    if s == "rrf" {
        return Ok(heimdex_core::Fusion::default());
    }
    let weights = s
        .strip_prefix("weighted:")
        .and_then(|w| w.split_once(','))
        .with_context(|| format!("--fusion {s}: expected rrf or weighted:KEYWORD,VECTOR"))?;
    Ok(heimdex_core::Fusion::Weighted {
        keyword: weights
            .0
            .trim()
            .parse()
            .context("--fusion keyword weight")?,
        vector: weights.1.trim().parse().context("--fusion vector weight")?,
    })
}

/// Seconds from `SS(.s)`, `M:SS(.s)` or `H:MM:SS(.s)`.
fn parse_time(s: &str) -> Result<f64> {
    let mut total = 0.0;
    for part in s.trim().split(':') {
        let v: f64 = part
            .parse()
            .with_context(|| format!("bad time {s:?}: expected seconds, m:ss or h:mm:ss"))?;
        total = total * 60.0 + v;
    }
    Ok(total)
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("HEIMDEX_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("error")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match run(cli).await {
        Ok(code) => code,
        Err(e) => report(&e),
    }
}

/// The CLI's one mapping from errors to what the user sees: `error: ` with the chain of
/// causes (each said once), a hint where there is something to do, and the exit code.
fn report(e: &anyhow::Error) -> ExitCode {
    let mut line = String::from("error: ");
    let mut previous = String::new();
    for (i, cause) in e.chain().enumerate() {
        let text = cause.to_string();
        // A wrapper that already quotes its source (thiserror's `{source}`) adds nothing.
        if i > 0 && previous.contains(&text) {
            continue;
        }
        if i > 0 {
            line.push_str(": ");
        }
        line.push_str(&text);
        previous = text;
    }
    eprintln!("{line}");
    let engine_error = e.chain().find_map(|c| c.downcast_ref::<EngineError>());
    if let Some(h) = engine_error.and_then(hint) {
        eprintln!("hint: {h}");
    }
    exit_code(engine_error.map(EngineError::kind))
}

/// What the user can do about an error, where the CLI knows.
fn hint(e: &EngineError) -> Option<&'static str> {
    match e {
        EngineError::NotIndexed(_) => Some("run `heimdex index` on it first"),
        EngineError::UnknownPerson(_) => Some("`heimdex persons` lists the persons and names"),
        EngineError::NoMomentAt { .. } => Some("run `make models` and index the file again"),
        EngineError::NoSidecar(_) => Some("`heimdex check --repair` queues it for indexing"),
        _ => match e.kind() {
            ErrorKind::Unavailable => Some("another process may be busy with this home; retry"),
            ErrorKind::Internal => Some("`heimdex check` reports inconsistencies"),
            _ => None,
        },
    }
}

/// Exit codes: 1 for any failure the CLI cannot classify, otherwise by kind (the
/// `sysexits.h` values where one fits; clap uses 2 for bad arguments).
fn exit_code(kind: Option<ErrorKind>) -> ExitCode {
    ExitCode::from(match kind {
        Some(ErrorKind::InvalidInput) => 2,
        Some(ErrorKind::NotFound) => 3,
        Some(ErrorKind::BadMedia) => 65,
        Some(ErrorKind::Unauthorized) => 77,
        Some(ErrorKind::Unavailable) => 75,
        Some(ErrorKind::Conflict) => 4,
        _ => 1,
    })
}

/// The tenant of the embedded CLI: one archive, one user.
fn tenant() -> TenantId {
    TenantId::default_tenant()
}

/// Take the home's writer lock, saying so when another process holds it and waiting.
async fn writer_lock(home: &std::path::Path, what: &str) -> Result<HomeLock> {
    match HomeLock::try_acquire(home, what)? {
        Ok(lock) => Ok(lock),
        Err(holder) => {
            eprintln!(
                "waiting for {holder} to finish writing {} …",
                home.display()
            );
            Ok(HomeLock::acquire(home, what).await?)
        }
    }
}

async fn open(
    cli: &Cli,
    jobs: usize,
    load: Load,
    language: Option<String>,
    writer: Option<&str>,
) -> Result<Engine> {
    let home = &cli.home;
    let defaults = EngineConfig::default();
    let settle = match std::env::var("HEIMDEX_SETTLE_MS") {
        Ok(v) => Duration::from_millis(
            v.trim()
                .parse()
                .with_context(|| format!("HEIMDEX_SETTLE_MS={v}: expected milliseconds"))?,
        ),
        Err(_) => defaults.settle,
    };
    let cfg = EngineConfig {
        concurrency: jobs.max(1),
        settle,
        ..defaults
    }
    .with_sampling_from_env()
    .map_err(anyhow::Error::msg)?;
    let lock = match writer {
        Some(what) => Some(writer_lock(home, what).await?),
        None => None,
    };
    let mut engine = Engine::open_embedded(home, cfg, lock)
        .await
        .with_context(|| format!("opening Heimdex home {}", home.display()))?;
    if writer.is_some() {
        // A crash between writing a job and enqueueing it is repaired here.
        engine.reconcile(&tenant()).await?;
    }
    let settings = StageSettings {
        disable_ml: cli.no_ml,
        language,
    };
    let stages = match load {
        Load::Stages => default_stages(&settings),
        Load::QueryEncoders => query_encoders(&settings),
        Load::Nothing => Stages::default(),
    };
    for note in &stages.notes {
        eprintln!("note: {note}");
    }
    for e in stages.extractors {
        engine = engine.with_extractor(e);
    }
    for q in stages.query_encoders {
        engine = engine.with_query_encoder(q);
    }
    Ok(engine)
}

async fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Index {
            ref sources,
            ref options,
            jobs,
            quiet,
            ref language,
        } => index(&cli, sources, options, jobs, quiet, language.clone()).await,
        Command::Sources { json } => {
            let engine = open(&cli, 1, Load::Nothing, None, None).await?;
            let sources = engine.sources(&tenant()).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&sources)?);
            } else if sources.is_empty() {
                println!("no sources yet: `heimdex index SOURCE` registers and syncs one");
            } else {
                for s in &sources {
                    let synced = s
                        .synced_ms
                        .and_then(heimdex_core::time_util::rfc3339_of_ms)
                        .unwrap_or_else(|| "never".to_owned());
                    let settings = s
                        .options
                        .iter()
                        .map(|(k, v)| format!(" {k}={v}"))
                        .collect::<String>();
                    println!(
                        "{}  {:<10} {}  last sync {synced}{settings}",
                        s.id, s.kind, s.uri
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Search {
            ref query,
            ref image,
            ref like,
            limit,
            offset,
            json,
            ref filter,
        } => {
            let fusion = parse_fusion(&filter.fusion)?;
            let face = filter.face.clone();
            let mut filter = filter.to_filter()?;
            let engine = open(&cli, 1, Load::QueryEncoders, None, None).await?;
            let t = tenant();
            if let Some(photo) = face {
                let descriptor = heimdex_server::stages::face_descriptor(&photo)
                    .map_err(|e| anyhow::anyhow!(e))?;
                match engine.nearest_person(&t, &descriptor, 0.6).await? {
                    Some((p, d)) => {
                        eprintln!(
                            "face: {} (distance {d:.2})",
                            p.name.as_deref().unwrap_or(&p.id)
                        );
                        filter.faces.push(p.id);
                    }
                    None => anyhow::bail!(
                        "nobody in the archive looks like the face in {}",
                        photo.display()
                    ),
                }
            }
            for p in &mut filter.faces {
                if let Some(id) = engine.resolve_person(&t, p).await? {
                    *p = id;
                }
            }
            let mut req = SearchRequest::new(t.clone())
                .with_fusion(fusion)
                .with_filter(filter)
                .with_limit(limit)
                .with_offset(offset);
            if let Some(q) = query {
                req = req.with_text(q.clone());
            }
            if let Some(picture) = image {
                let v = heimdex_server::stages::image_query_vector(picture)
                    .map_err(|e| anyhow::anyhow!(e))?;
                req = req.with_vector("image", v);
            }
            let moments = match like {
                Some(spec) => {
                    let (file, at) = spec
                        .rsplit_once('@')
                        .with_context(|| format!("--like {spec}: expected FILE@SECONDS"))?;
                    let asset = engine
                        .asset_for_path(&t, std::path::Path::new(file))
                        .await?;
                    engine.more_like(&asset.id, parse_time(at)?, &req).await?
                }
                None => engine.search(&req).await?,
            };
            if json {
                let out: Vec<serde_json::Value> = moments
                    .iter()
                    .map(|m| {
                        serde_json::json!({
                            "path": m.path,
                            "asset": m.asset,
                            "source": m.source,
                            "start_s": m.start_s,
                            "end_s": m.end_s,
                            "start": timecode(m.start_s),
                            "end": timecode(m.end_s),
                            "score": m.score,
                            "signals": m.signals.iter().map(|s| s.signal.clone()).collect::<Vec<_>>(),
                            "snippet": m.snippet,
                            "thumbnail": m.thumbnail.as_deref().and_then(|t| engine.media_path(t)),
                            "segments": m.segments,
                        })
                    })
                    .collect();
                println!("{}", serde_json::to_string_pretty(&out)?);
            } else if moments.is_empty() {
                println!("no moments match");
            } else {
                for (i, m) in moments.iter().enumerate() {
                    let signals: Vec<&str> = m.signals.iter().map(|s| s.signal.as_str()).collect();
                    println!(
                        "{:>2}. {}  {}–{}  score {:.4}  [{}]",
                        i + 1,
                        m.path,
                        timecode(m.start_s),
                        timecode(m.end_s),
                        m.score,
                        signals.join(", ")
                    );
                    if let Some(s) = &m.snippet {
                        println!("    why: {s}");
                    }
                    if let Some(t) = m.thumbnail.as_deref().and_then(|t| engine.media_path(t)) {
                        println!("    thumbnail: {}", t.display());
                    }
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Show { ref path } => {
            let engine = open(&cli, 1, Load::Nothing, None, None).await?;
            let sidecar = engine.sidecar_for_path(&tenant(), path).await?;
            println!("{}", serde_json::to_string_pretty(&sidecar)?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Persons { ref action, json } => {
            let engine = open(&cli, 1, Load::Nothing, None, None).await?;
            if let Some(PersonsAction::Name { id, name }) = action {
                let p = engine.name_person(&tenant(), id, name).await?;
                println!("{} is now named {:?}", p.id, p.name.unwrap_or_default());
                return Ok(ExitCode::SUCCESS);
            }
            let persons = engine.persons(&tenant()).await?;
            if json {
                let out: Vec<serde_json::Value> = persons
                    .iter()
                    .map(|p| serde_json::json!({"id": p.id, "name": p.name, "faces": p.faces}))
                    .collect();
                println!("{}", serde_json::to_string_pretty(&out)?);
            } else if persons.is_empty() {
                println!("no persons yet (faces are clustered as videos are indexed)");
            } else {
                for p in &persons {
                    println!(
                        "{:<12} {:<24} {} faces",
                        p.id,
                        p.name.as_deref().unwrap_or("(unnamed)"),
                        p.faces
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Reindex => {
            let engine = open(&cli, 1, Load::Nothing, None, Some("reindex")).await?;
            let r = engine.reindex(&tenant()).await?;
            println!(
                "reindex: {} assets, {} documents in {:.2} s ({:.0} assets/s){}",
                r.assets,
                r.documents,
                r.seconds,
                r.assets as f64 / r.seconds.max(1e-9),
                if r.requeued > 0 {
                    format!(
                        "; {} without a sidecar queued: run `heimdex index` to extract them",
                        r.requeued
                    )
                } else {
                    String::new()
                }
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Check { repair, json } => {
            let writer = repair.then_some("check --repair");
            let engine = open(&cli, 1, Load::Nothing, None, writer).await?;
            let found = engine.check(&tenant(), None).await?;
            let fixed = if repair && !found.is_clean() {
                Some(engine.repair(&tenant(), &found).await?)
            } else {
                None
            };
            if json {
                let out = serde_json::json!({"found": found, "clean": found.is_clean(), "repaired": fixed});
                println!("{}", serde_json::to_string_pretty(&out)?);
            } else {
                println!("checked {} assets", found.assets_checked);
                let lists: [(&str, Vec<String>); 4] = [
                    (
                        "indexed but missing from the search index",
                        ids(&found.missing_documents),
                    ),
                    (
                        "in the search index but unknown to the store",
                        ids(&found.orphan_documents),
                    ),
                    (
                        "indexed but without a sidecar",
                        ids(&found.missing_sidecars),
                    ),
                    (
                        "sidecars/thumbnails of unknown assets",
                        found.orphan_media.clone(),
                    ),
                ];
                for (what, items) in &lists {
                    if !items.is_empty() {
                        println!("{} {what}:", items.len());
                        for i in items.iter().take(20) {
                            println!("  {i}");
                        }
                    }
                }
                match &fixed {
                    Some(r) => println!(
                        "repaired: {} restored from sidecars, {} orphan asset documents removed, {} queued (run `heimdex index`), {} media objects removed",
                        r.documents_restored,
                        r.documents_removed,
                        r.assets_requeued,
                        r.media_removed
                    ),
                    None if found.is_clean() => println!("store, index and media agree"),
                    None => println!("run `heimdex check --repair` to fix"),
                }
            }
            Ok(if found.is_clean() || fixed.is_some() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Command::Status { json } => {
            let engine = open(&cli, 1, Load::Nothing, None, None).await?;
            let status = engine.status(&tenant()).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&status)?);
            } else {
                let fmt = |m: &std::collections::BTreeMap<String, u64>| {
                    if m.is_empty() {
                        "none".to_owned()
                    } else {
                        m.iter()
                            .map(|(k, v)| format!("{k} {v}"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    }
                };
                println!("assets: {}", fmt(&status.assets));
                println!("jobs:   {}", fmt(&status.jobs));
                println!("index:  {} documents", status.index_documents);
                if !status.failures.is_empty() {
                    println!("failed:");
                    for f in &status.failures {
                        println!("  {}: {} (attempts {})", f.key, f.reason, f.attempts);
                    }
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// A progress bar over the queued jobs, with the current asset, stage and percent.
struct Bar {
    bar: ProgressBar,
}

impl ProgressSink for Bar {
    fn event(&self, event: ProgressEvent) {
        match event {
            ProgressEvent::Started { key } => self.bar.set_message(format!("{key}: starting")),
            ProgressEvent::Stage {
                key,
                stage,
                percent,
            } => self
                .bar
                .set_message(format!("{key}: {stage} {percent:.0}%")),
            ProgressEvent::Finished { key, outcome } => {
                match &outcome {
                    JobOutcome::Indexed {
                        shots, duration_s, ..
                    } => self
                        .bar
                        .println(format!("indexed  {key} ({duration_s:.1} s, {shots} shots)")),
                    JobOutcome::Failed { reason } => {
                        self.bar.println(format!("FAILED   {key}: {reason}"))
                    }
                    JobOutcome::Retrying { reason, after } => self.bar.println(format!(
                        "retrying {key} in {:.1} s: {reason}",
                        after.as_secs_f64()
                    )),
                    JobOutcome::Skipped | JobOutcome::HandedBack => {}
                }
                if !matches!(outcome, JobOutcome::Retrying { .. }) {
                    self.bar.inc(1);
                }
            }
        }
    }
}

fn ids(ids: &[heimdex_core::AssetId]) -> Vec<String> {
    ids.iter().map(ToString::to_string).collect()
}

async fn index(
    cli: &Cli,
    sources: &[String],
    options: &[String],
    jobs: usize,
    quiet: bool,
    language: Option<String>,
) -> Result<ExitCode> {
    let mut opts = Vec::with_capacity(options.len());
    for o in options {
        let (k, v) = o
            .split_once('=')
            .with_context(|| format!("--option {o:?}: expected KEY=VALUE"))?;
        opts.push((k.trim().to_owned(), v.to_owned()));
    }
    let engine = open(cli, jobs, Load::Stages, language, Some("index")).await?;
    let t = tenant();
    let mut bad_paths = 0;
    let (mut new, mut modified, mut deleted) = (0, 0, 0);
    let mut scanned = Vec::new();
    let registered;
    let targets: Vec<Result<heimdex_core::Source, EngineError>> = if sources.is_empty() {
        registered = engine.sources(&t).await?;
        if registered.is_empty() {
            anyhow::bail!("no sources registered yet: give folders, files or source URIs to index");
        }
        registered.iter().cloned().map(Ok).collect()
    } else {
        let mut v = Vec::with_capacity(sources.len());
        for s in sources {
            let added = match heimdex_connectors::SourceSpec::parse(s) {
                Ok(spec) => {
                    engine
                        .add_source_spec(&t, spec.with_options(opts.iter().cloned()))
                        .await
                }
                Err(e) => Err(e.into()),
            };
            v.push(added);
        }
        v
    };
    for target in targets {
        let source = match target {
            Ok(s) => s,
            Err(e) => {
                report(&anyhow::Error::new(e));
                bad_paths += 1;
                continue;
            }
        };
        let report = engine.scan(&t, &source.id).await?;
        new += report.new;
        modified += report.modified;
        deleted += report.deleted;
        scanned.push(source.id);
    }
    println!("scan: {new} new, {modified} modified, {deleted} deleted");
    // Assets indexed by an earlier run that never reached the search index (a process
    // killed before its flush) are restored from their sidecars here.
    let gaps = engine.check(&t, Some(&scanned)).await?;
    if !gaps.is_clean() {
        let r = engine.repair(&t, &gaps).await?;
        println!(
            "repaired: {} assets restored to the search index from their sidecars, {} queued again",
            r.documents_restored, r.assets_requeued
        );
    }
    let queued = engine.queue_depth().await?;
    let bar = ProgressBar::new(queued);
    if quiet {
        bar.set_draw_target(ProgressDrawTarget::hidden());
    }
    bar.set_style(
        ProgressStyle::with_template(
            "{bar:30.cyan/blue} {pos}/{len} assets  {elapsed_precise}  {wide_msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.enable_steady_tick(Duration::from_millis(200));
    let sink = Arc::new(Bar { bar: bar.clone() });
    // Ctrl-C stops taking jobs; a job in progress gets a few seconds, then goes back to the
    // queue for the next run. The index is flushed either way.
    let (stop, shutdown) = Shutdown::new();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            let _ = stop.send(true);
        }
    });
    let options = WorkerOptions {
        grace: Duration::from_secs(5),
        ..WorkerOptions::default()
    };
    let report = engine.run_workers(sink, options, shutdown).await?;
    bar.finish_and_clear();
    let status = engine.status(&t).await?;
    println!(
        "done: {} indexed, {} failed this run; archive: {} assets indexed, {} failed, {} index documents",
        report.indexed,
        report.failed,
        status.assets.get("indexed").copied().unwrap_or(0),
        status.assets.get("failed").copied().unwrap_or(0),
        status.index_documents
    );
    if report.handed_back > 0 {
        println!(
            "interrupted: {} jobs handed back; run `heimdex index` again to finish",
            report.handed_back
        );
        return Ok(ExitCode::from(130));
    }
    Ok(if report.failed > 0 || bad_paths > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
