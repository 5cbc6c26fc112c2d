//! `POST /v1/search` under load (`cargo bench -p heimdex-server --features api --bench
//! search_http`, release).
//!
//! The engine runs on the embedded backends (SQLite store file, `LocalQueue`, `EmbeddedIndex`
//! persisted in a temp folder, local media folder) with 10 000 synthetic moments: 250 assets
//! of 40 moments each, transcript-like text drawn from a word list with a skewed (Zipf-like)
//! frequency, and a 384-d `text` vector per moment. The documents go straight into the index
//! through `engine.index()` (search reads no store rows). The vectors are the normalised sum
//! of per-word vectors plus noise: per-word vectors come from the MiniLM query encoder when
//! the models are installed (`HEIMDEX_MODELS`, `make models`), random unit vectors otherwise,
//! so that with MiniLM a query lands near the moments that contain its words.
//!
//! The router (`heimdex_server::api::router`, HS256 auth) is served with `axum::serve` on
//! 127.0.0.1:0 and loaded from a second process, `wrk` (Lua script `search_http.lua` next to
//! this file: bearer token, JSON bodies rotating through the queries), for a fixed duration
//! (`SEARCH_HTTP_SECS`, default 20; `SEARCH_HTTP_THREADS` 2; `SEARCH_HTTP_CONNECTIONS` 16).
//! p50/p99 and requests/s are parsed from `wrk --latency`. Without `wrk` the bench says so
//! and drives the server from an in-process reqwest client instead (same connections and
//! duration; it then shares the server's runtime and cores, so the figures are worse).
//!
//! Baselines without HTTP: the same queries through `engine.search`, by one caller in a loop
//! and by as many concurrent tasks as wrk has connections.
//!
//! Modes: keyword-only, and hybrid (keyword + MiniLM query vector, fused) when the query
//! encoder loads, twice: with the query-vector cache off (every request encodes its query:
//! the cost of never-seen queries) and with the default cache (the 40 rotating queries are
//! encoded once); otherwise the bench prints that hybrid was not measured.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use heimdex_core::index::DocMeta;
use heimdex_core::{
    AssetId, IndexDoc, QueryEncoder, SearchRequest, SegmentKind, SourceId, TenantId,
};
use heimdex_server::api::auth::{AuthConfig, Authenticator};
use heimdex_server::api::{AppState, router};
use heimdex_server::engine::{Engine, EngineConfig};
use heimdex_server::queue::LocalQueue;
use heimdex_server::stages::{StageSettings, query_encoders};
use heimdex_server::store::SqliteStore;
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use serde_json::json;

const SECRET: &str = "search-http-bench-secret-with-at-least-32-characters";
const TENANT: &str = "bench";
const ASSETS: usize = 250;
const MOMENTS_PER_ASSET: usize = 40;
const DIM: usize = 384;
const LIMIT: usize = 10;

/// News / documentary vocabulary, whitespace-separated; earlier words are drawn more often.
const WORD_LIST: &str = "\
    the and of to in is we it that on for this with was you they are at from have people \
    city today year new water police government council weather storm harbor coast river \
    bridge school children teacher hospital doctor patients market prices farmers harvest \
    festival music concert football match goal team coach election vote minister president \
    parliament budget taxes workers strike factory energy solar wind power electricity train \
    station airport flight traffic accident fire firefighters rescue flood drought rain snow \
    mountain village museum painting history archive film interview reporter camera \
    lighthouse fishing boats sailors island ferry beach tourists hotel restaurant chef bread \
    cheese wine coffee street protest crowd speech mayor court judge trial prison church \
    bells anniversary war soldiers memorial veterans peace treaty border refugees university \
    students research scientists climate ocean ice forest wildlife birds wolves bears garden \
    flowers spring summer autumn winter morning evening midnight fireworks celebration \
    wedding family grandmother kitchen recipe bakery library books writer poet theatre \
    actors stage television radio newspaper journalist technology computer robot satellite \
    rocket launch space moon astronaut telescope stars earthquake volcano eruption tsunami \
    evacuation shelter volunteers charity donation housing rent construction tower skyline \
    tram bicycle marathon runners olympic medal swimming champion record referee stadium \
    fans tickets queue shops christmas holiday";

/// Queries the load rotates through (single words, pairs, phrases, prefixes).
const QUERIES: &[&str] = &[
    "harbor",
    "storm coast",
    "fishing boats",
    "lighthouse",
    "\"city council\"",
    "election*",
    "flood evacuation",
    "football match goal",
    "museum painting history",
    "fire firefighters rescue",
    "solar wind energy",
    "strike workers factory",
    "festival fireworks midnight",
    "hospital doctor",
    "refugees border",
    "climate ocean ice",
    "earthquake",
    "volcano eruption",
    "marathon runners",
    "olympic medal swimming",
    "chef restaurant recipe",
    "bakery bread",
    "wedding family",
    "rocket launch space",
    "astronaut moon",
    "parliament budget taxes",
    "mayor speech crowd",
    "court judge trial",
    "war memorial veterans",
    "train station",
    "airport flight",
    "traffic accident",
    "ferry island tourists",
    "wildlife wolves bears",
    "school children teacher",
    "university students research",
    "television interview reporter",
    "archive film",
    "christmas market",
    "stadium fans tickets",
];

/// splitmix64: a small deterministic generator (the corpus is the same on every run).
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn below(&mut self, n: usize) -> usize {
        (self.unit() * n as f64) as usize
    }

    /// Roughly normal (sum of uniforms).
    fn gauss(&mut self) -> f32 {
        ((0..4).map(|_| self.unit()).sum::<f64>() - 2.0) as f32
    }
}

fn normalise(v: &mut [f32]) {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if n > 0.0 {
        v.iter_mut().for_each(|x| *x /= n);
    }
}

/// One vector per word: the encoder's when there is one.
fn word_vectors(
    words: &[&str],
    encoder: Option<&Arc<dyn QueryEncoder>>,
    rng: &mut Rng,
) -> Vec<Vec<f32>> {
    words
        .iter()
        .map(|w| {
            let mut v = match encoder {
                Some(e) => e.encode(w).expect("encode a word"),
                None => (0..DIM).map(|_| rng.gauss()).collect(),
            };
            assert_eq!(v.len(), DIM, "text vectors are {DIM}-d");
            normalise(&mut v);
            v
        })
        .collect()
}

fn documents(words: &[&str], word_vecs: &[Vec<f32>], rng: &mut Rng) -> Vec<IndexDoc> {
    let tenant = TenantId::new(TENANT);
    let shows = [
        "evening-news",
        "regional-report",
        "documentary",
        "sports-weekly",
        "culture-hour",
    ];
    let mut docs = Vec::with_capacity(ASSETS * MOMENTS_PER_ASSET);
    for a in 0..ASSETS {
        let show = shows[a % shows.len()];
        let source = SourceId::new(format!("src-{}", a % 4));
        let year = 1985 + a % 35;
        let path = format!("/archive/{show}/{year}/{show}-{a:04}.mp4");
        let asset = AssetId::new(format!("asset-{a:05}"));
        let duration = MOMENTS_PER_ASSET as f64 * 15.0;
        let meta = DocMeta {
            asset_duration_s: Some(duration),
            capture_date: Some(format!("{year}-{:02}-{:02}", 1 + a % 12, 1 + a % 28)),
            language: Some("en".into()),
            has_speech: true,
            faces: Vec::new(),
        };
        for m in 0..MOMENTS_PER_ASSET {
            // Mostly transcript windows; every fifth moment a shot with a short caption.
            let (kind, segment, len) = if m % 5 == 4 {
                (
                    SegmentKind::Shot,
                    format!("shot-{:05}", m / 5),
                    4 + rng.below(6),
                )
            } else {
                (
                    SegmentKind::Transcript,
                    format!("transcript-{m:05}"),
                    25 + rng.below(20),
                )
            };
            let mut vector = vec![0f32; DIM];
            let mut text = String::new();
            for i in 0..len {
                // Skewed toward the start of the list: function words dominate, topic words
                // are rarer.
                let w = ((rng.unit().powi(3)) * words.len() as f64) as usize;
                if i > 0 {
                    text.push(' ');
                }
                text.push_str(words[w]);
                vector
                    .iter_mut()
                    .zip(&word_vecs[w])
                    .for_each(|(x, y)| *x += y);
            }
            vector.iter_mut().for_each(|x| *x += 0.05 * rng.gauss());
            normalise(&mut vector);
            let start_s = m as f64 * 15.0;
            docs.push(IndexDoc {
                tenant: tenant.clone(),
                source: source.clone(),
                asset: asset.clone(),
                segment,
                kind,
                path: path.clone(),
                start_s,
                end_s: start_s + 15.0,
                text,
                thumbnail: None,
                tags: Vec::new(),
                vectors: BTreeMap::from([("text".to_owned(), vector)]),
                meta: meta.clone(),
            });
        }
    }
    docs
}

fn token() -> String {
    let exp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs()
        + 24 * 3600;
    let claims = json!({"sub": "bench", "aud": "authenticated", "exp": exp,
                        "app_metadata": {"tenant_id": TENANT}, "role": "authenticated"});
    encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .expect("sign")
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

#[derive(Debug, Clone, Copy)]
struct Figures {
    p50: Duration,
    p99: Duration,
    per_s: f64,
}

fn percentile(sorted: &[Duration], q: f64) -> Duration {
    let i = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

fn figures(mut lat: Vec<Duration>, elapsed: Duration) -> Figures {
    assert!(!lat.is_empty(), "no request completed");
    lat.sort();
    Figures {
        p50: percentile(&lat, 0.50),
        p99: percentile(&lat, 0.99),
        per_s: lat.len() as f64 / elapsed.as_secs_f64(),
    }
}

fn requests(tenant: &TenantId) -> Vec<SearchRequest> {
    QUERIES
        .iter()
        .map(|q| {
            SearchRequest::new(tenant.clone())
                .with_text(*q)
                .with_limit(LIMIT)
        })
        .collect()
}

/// `engine.search` from `callers` concurrent tasks for `secs` seconds.
async fn direct(engine: &Arc<Engine>, callers: usize, secs: u64) -> Figures {
    let reqs = Arc::new(requests(&TenantId::new(TENANT)));
    let deadline = Instant::now() + Duration::from_secs(secs);
    let start = Instant::now();
    let tasks: Vec<_> = (0..callers)
        .map(|c| {
            let engine = Arc::clone(engine);
            let reqs = Arc::clone(&reqs);
            tokio::spawn(async move {
                let mut lat = Vec::new();
                let mut i = c * 7;
                while Instant::now() < deadline {
                    let t = Instant::now();
                    engine.search(&reqs[i % reqs.len()]).await.expect("search");
                    lat.push(t.elapsed());
                    i += 1;
                }
                lat
            })
        })
        .collect();
    let mut lat = Vec::new();
    for t in tasks {
        lat.extend(t.await.expect("task"));
    }
    figures(lat, start.elapsed())
}

/// A wrk duration: `1.23ms`, `456.00us`, `1.01s`, `2.00m`.
fn wrk_duration(s: &str) -> Option<Duration> {
    let split = s.find(|c: char| c.is_ascii_alphabetic())?;
    let (n, unit) = s.split_at(split);
    let n: f64 = n.parse().ok()?;
    let secs = match unit {
        "us" => n / 1e6,
        "ms" => n / 1e3,
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return None,
    };
    Some(Duration::from_secs_f64(secs))
}

fn parse_wrk(out: &str) -> Figures {
    let mut p50 = None;
    let mut p99 = None;
    let mut per_s = None;
    for line in out.lines() {
        let mut f = line.split_whitespace();
        match (f.next(), f.next()) {
            (Some("50%"), Some(v)) => p50 = wrk_duration(v),
            (Some("99%"), Some(v)) => p99 = wrk_duration(v),
            (Some("Requests/sec:"), Some(v)) => per_s = v.parse().ok(),
            _ => {}
        }
        assert!(
            !line.contains("Non-2xx") && !line.contains("Socket errors"),
            "wrk saw failures:\n{out}"
        );
    }
    match (p50, p99, per_s) {
        (Some(p50), Some(p99), Some(per_s)) => Figures { p50, p99, per_s },
        _ => panic!("cannot read wrk's output:\n{out}"),
    }
}

fn wrk_available() -> bool {
    Command::new("wrk").arg("--version").output().is_ok()
}

struct Load {
    threads: usize,
    connections: usize,
    secs: u64,
}

/// Load the server at `addr` from `wrk` in a second process.
async fn wrk(addr: std::net::SocketAddr, bodies: &Path, load: &Load) -> Figures {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/search_http.lua");
    let mut cmd = Command::new("wrk");
    cmd.arg(format!("-t{}", load.threads))
        .arg(format!("-c{}", load.connections))
        .arg(format!("-d{}s", load.secs))
        .arg("--latency")
        .arg("-s")
        .arg(&script)
        .arg(format!("http://{addr}"))
        .arg("--")
        .arg(bodies)
        .arg(token());
    let out = tokio::task::spawn_blocking(move || cmd.output())
        .await
        .expect("task")
        .expect("run wrk");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "wrk failed: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    println!("{stdout}");
    parse_wrk(&stdout)
}

/// Fallback without wrk: reqwest clients in this process.
async fn in_process_client(addr: std::net::SocketAddr, load: &Load) -> Figures {
    let client = reqwest::Client::new();
    let url = format!("http://{addr}/v1/search");
    let auth = format!("Bearer {}", token());
    let deadline = Instant::now() + Duration::from_secs(load.secs);
    let start = Instant::now();
    let tasks: Vec<_> = (0..load.connections)
        .map(|c| {
            let (client, url, auth) = (client.clone(), url.clone(), auth.clone());
            tokio::spawn(async move {
                let mut lat = Vec::new();
                let mut i = c * 7;
                while Instant::now() < deadline {
                    let body = json!({"query": QUERIES[i % QUERIES.len()], "limit": LIMIT});
                    let t = Instant::now();
                    let resp = client
                        .post(&url)
                        .header("authorization", &auth)
                        .json(&body)
                        .send()
                        .await
                        .expect("send");
                    assert!(resp.status().is_success(), "{}", resp.status());
                    resp.bytes().await.expect("body");
                    lat.push(t.elapsed());
                    i += 1;
                }
                lat
            })
        })
        .collect();
    let mut lat = Vec::new();
    for t in tasks {
        lat.extend(t.await.expect("task"));
    }
    figures(lat, start.elapsed())
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

#[tokio::main]
async fn main() {
    let load = Load {
        threads: env_or("SEARCH_HTTP_THREADS", 2),
        connections: env_or("SEARCH_HTTP_CONNECTIONS", 16),
        secs: env_or("SEARCH_HTTP_SECS", 20),
    };
    let direct_secs = (load.secs / 2).max(1);
    println!(
        "cores: {}, load average at start: {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        loadavg()
    );

    // The query encoder, if the models are there and load.
    let stages = query_encoders(&StageSettings::default());
    let encoder = stages
        .query_encoders
        .into_iter()
        .find(|e| e.space() == "text")
        .and_then(|e| match e.encode("harbor") {
            Ok(_) => Some(e),
            Err(err) => {
                println!("query encoder does not load: {err}");
                None
            }
        });
    for note in &stages.notes {
        println!("note: {note}");
    }
    if encoder.is_none() {
        println!(
            "NO QUERY ENCODER (MiniLM not found; `make models` or set HEIMDEX_MODELS): \
             measuring keyword-only search; hybrid NOT measured"
        );
    }

    // Real backends in a temp folder.
    let dir = tempfile::tempdir().expect("tmp");
    let store = SqliteStore::open(&dir.path().join("heimdex.db"))
        .await
        .expect("store");
    let queue = LocalQueue::new(&store, EngineConfig::default().retry)
        .await
        .expect("queue");
    let index_dir = dir.path().join("index");
    let index = Arc::new(heimdex_index::EmbeddedIndex::open(&index_dir).expect("index"));
    let media = dir.path().join("media");
    std::fs::create_dir_all(&media).expect("media");
    let store = Arc::new(store);
    let queue = Arc::new(queue);
    let media =
        Arc::new(object_store::local::LocalFileSystem::new_with_prefix(&media).expect("media"));
    let engine_with = |enc: Option<&Arc<dyn QueryEncoder>>, query_cache: usize| {
        let mut e = Engine::new(
            EngineConfig {
                query_cache,
                ..EngineConfig::default()
            },
            store.clone(),
            queue.clone(),
            index.clone(),
            media.clone(),
        );
        if let Some(enc) = enc {
            e = e.with_query_encoder(Arc::clone(enc));
        }
        Arc::new(e)
    };

    // 10 000 moments.
    let t = Instant::now();
    let mut rng = Rng(0x0048_4549_4D44_4558);
    let words: Vec<&str> = WORD_LIST.split_whitespace().collect();
    let word_vecs = word_vectors(&words, encoder.as_ref(), &mut rng);
    let docs = documents(&words, &word_vecs, &mut rng);
    let keyword = engine_with(None, 0);
    for chunk in docs.chunks(500) {
        keyword.index().upsert(chunk).await.expect("upsert");
    }
    keyword.index().flush().await.expect("flush");
    println!(
        "indexed {} moments of {ASSETS} assets ({} text vectors from {}) in {:.1} s",
        docs.len(),
        DIM,
        if encoder.is_some() {
            "MiniLM word vectors"
        } else {
            "random word vectors"
        },
        t.elapsed().as_secs_f64()
    );
    drop(docs);

    let bodies = dir.path().join("bodies.jsonl");
    let lines: String = QUERIES
        .iter()
        .map(|q| json!({"query": q, "limit": LIMIT}).to_string() + "\n")
        .collect();
    std::fs::write(&bodies, lines).expect("bodies");

    let have_wrk = wrk_available();
    if !have_wrk {
        println!(
            "WRK NOT FOUND (apt-get install -y wrk): falling back to an in-process reqwest \
             client, which shares the server's runtime and cores"
        );
    }

    let mut modes = vec![("keyword", keyword)];
    if let Some(enc) = &encoder {
        // Every query encoded again (the query-vector cache off: as if no query repeated),
        // then the default engine, whose cache remembers the 40 rotating queries.
        modes.push(("hybrid (MiniLM), cache off", engine_with(Some(enc), 0)));
        modes.push(("hybrid (MiniLM), query cache", engine_with(Some(enc), 4096)));
    }
    let mut table = String::new();
    let client = if have_wrk {
        format!(
            "HTTP, wrk -t{} -c{} -d{}s",
            load.threads, load.connections, load.secs
        )
    } else {
        format!(
            "HTTP, in-process reqwest x{} for {}s",
            load.connections, load.secs
        )
    };
    writeln!(table, "| search | client | p50 | p99 | req/s |").unwrap();
    writeln!(table, "|---|---|---:|---:|---:|").unwrap();
    for (name, engine) in &modes {
        // Warm up (the encoder's first call, caches) and show what the queries find.
        let mut found = Vec::new();
        for r in requests(&TenantId::new(TENANT)) {
            found.push(engine.search(&r).await.expect("search").len());
        }
        println!("== {name}: moments per query (limit {LIMIT}): {found:?}");

        let app = router(AppState::new(
            Arc::clone(engine),
            Authenticator::new(AuthConfig {
                hs256_secret: Some(SECRET.into()),
                ..AuthConfig::default()
            }),
        ));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    stopped.await.ok();
                })
                .await
                .expect("serve");
        });
        println!("== {name}: load {} (load average {})", client, loadavg());
        let http = if have_wrk {
            wrk(addr, &bodies, &load).await
        } else {
            in_process_client(addr, &load).await
        };
        stop.send(()).ok();
        server.await.expect("server");

        println!("== {name}: engine.search x{} tasks", load.connections);
        let conc = direct(engine, load.connections, direct_secs).await;
        println!("== {name}: engine.search, one caller");
        let one = direct(engine, 1, direct_secs).await;
        for (who, f) in [
            (client.clone(), http),
            (
                format!("direct engine.search, {} tasks", load.connections),
                conc,
            ),
            ("direct engine.search, 1 caller".to_owned(), one),
        ] {
            writeln!(
                table,
                "| {name} | {who} | {} | {} | {:.0} |",
                ms(f.p50),
                ms(f.p99),
                f.per_s
            )
            .unwrap();
        }
    }
    if encoder.is_none() {
        writeln!(
            table,
            "| hybrid | not measured: no MiniLM query encoder | | | |"
        )
        .unwrap();
    }
    println!("\nload average at end: {}\n", loadavg());
    println!("{table}");
}
