//! Queue throughput: no-op jobs through `RedisQueue`, enqueue to ack, side by side with
//! Dramatiq (the original design's queue) on the same Redis.
//!
//! ```text
//! cargo bench -p heimdex-server --features redis --bench queue
//! ```
//!
//! Environment: `HEIMDEX_BENCH_REDIS_URL` (else `HEIMDEX_TEST_REDIS_URL`, else
//! `redis://127.0.0.1:6379`), `HEIMDEX_BENCH_QUEUE_JOBS` (20000), `HEIMDEX_BENCH_QUEUE_WORKERS`
//! (4), `HEIMDEX_BENCH_DRAMATIQ_PREFETCH` (1000, the tuned Dramatiq run's prefetch).
//!
//! Two scenarios, each with N jobs, one producer and W consumers, in a fresh namespace that is
//! deleted afterwards:
//! - burst: the producer enqueues all N, then the consumers drain them (reserve, ack);
//! - stream: the consumers are running and the producer enqueues N as fast as it can; the
//!   enqueue-to-ack latency of each job is recorded (consumers poll every 1 ms when empty).
//!
//! The producer and the consumers each have their own `RedisQueue` handle (a connection of
//! their own, as an API process and a worker process would); the W consumers share theirs,
//! as the worker tasks of one process do.
//!
//! The Dramatiq half is `benches/dramatiq_queue.py`, run with `python3` twice: with Dramatiq's
//! defaults and with a prefetch tuned for throughput. If Python, `dramatiq` or `redis` (the
//! Python packages) are missing it prints a note and only that half is skipped.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use heimdex_core::model::{JobId, TenantId};
use heimdex_core::queue::{Queue, QueueMessage, RetryPolicy};
use heimdex_server::queue::RedisQueue;

const LEASE: Duration = Duration::from_secs(300);

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[derive(Debug, Clone)]
struct Figures {
    system: String,
    mode: &'static str,
    jobs_per_s: f64,
    enqueue_per_s: Option<f64>,
    drain_per_s: Option<f64>,
    p50_ms: f64,
    p99_ms: f64,
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let idx = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

/// Per-job clock: nanoseconds since `origin` at enqueue and at ack.
struct Clock {
    origin: Instant,
    enqueued: Vec<AtomicU64>,
    acked: Vec<AtomicU64>,
    done: AtomicUsize,
}

impl Clock {
    fn new(n: usize) -> Self {
        Self {
            origin: Instant::now(),
            enqueued: (0..n).map(|_| AtomicU64::new(0)).collect(),
            acked: (0..n).map(|_| AtomicU64::new(0)).collect(),
            done: AtomicUsize::new(0),
        }
    }

    fn now(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    fn latencies_ms(&self) -> Vec<f64> {
        let mut v: Vec<f64> = self
            .enqueued
            .iter()
            .zip(&self.acked)
            .map(|(e, a)| {
                (a.load(Ordering::Relaxed) as f64 - e.load(Ordering::Relaxed) as f64) / 1e6
            })
            .collect();
        v.sort_by(f64::total_cmp);
        v
    }

    fn last_ack_s(&self) -> f64 {
        let last = self
            .acked
            .iter()
            .map(|a| a.load(Ordering::Relaxed))
            .max()
            .unwrap_or(0);
        last as f64 / 1e9
    }
}

fn message(i: usize) -> QueueMessage {
    QueueMessage {
        tenant: TenantId::new("bench"),
        job: JobId::new(i.to_string()),
    }
}

async fn connect(url: &str, namespace: &str) -> RedisQueue {
    match RedisQueue::connect(url, namespace, RetryPolicy::default()).await {
        Ok(q) => q,
        Err(e) => panic!("queue bench: cannot use Redis at {url}: {e}"),
    }
}

/// The producer, as a task of its own: `block_on` on the main thread would add a wake-up of
/// another thread to every call (measured: about 3x fewer calls per second), which no server
/// or worker, whose calls all run in tasks, pays.
async fn produce(queue: &RedisQueue, clock: &Arc<Clock>, n: usize) {
    let (queue, clock) = (queue.clone(), Arc::clone(clock));
    tokio::spawn(async move {
        for i in 0..n {
            clock.enqueued[i].store(clock.now(), Ordering::Relaxed);
            queue.enqueue(&message(i)).await.expect("enqueue");
        }
    })
    .await
    .expect("producer");
}

/// W consumer tasks on one handle; each returns when all `n` jobs are acked.
fn spawn_consumers(
    queue: &RedisQueue,
    clock: &Arc<Clock>,
    n: usize,
    workers: usize,
) -> Vec<tokio::task::JoinHandle<()>> {
    (0..workers)
        .map(|_| {
            let (queue, clock) = (queue.clone(), Arc::clone(clock));
            tokio::spawn(async move {
                while clock.done.load(Ordering::Relaxed) < n {
                    match queue.reserve(LEASE).await.expect("reserve") {
                        Some(d) => {
                            queue.ack(&d).await.expect("ack");
                            let i: usize = d.message.job.as_str().parse().expect("job index");
                            clock.acked[i].store(clock.now(), Ordering::Relaxed);
                            clock.done.fetch_add(1, Ordering::Relaxed);
                        }
                        None => tokio::time::sleep(Duration::from_millis(1)).await,
                    }
                }
            })
        })
        .collect()
}

async fn heimdex_burst(url: &str, n: usize, workers: usize) -> Figures {
    let namespace = format!("heimdex-bench-{}", uuid::Uuid::new_v4().simple());
    let producer = connect(url, &namespace).await;
    let consumers = connect(url, &namespace).await;
    let clock = Arc::new(Clock::new(n));
    let start = clock.now() as f64 / 1e9;
    produce(&producer, &clock, n).await;
    let enqueued = clock.now() as f64 / 1e9;
    for t in spawn_consumers(&consumers, &clock, n, workers) {
        t.await.expect("consumer");
    }
    drop_namespace(url, &namespace);
    let last = clock.last_ack_s();
    let lat = clock.latencies_ms();
    Figures {
        system: "heimdex RedisQueue".into(),
        mode: "burst",
        jobs_per_s: n as f64 / (last - start),
        enqueue_per_s: Some(n as f64 / (enqueued - start)),
        drain_per_s: Some(n as f64 / (last - enqueued)),
        p50_ms: percentile(&lat, 50.0),
        p99_ms: percentile(&lat, 99.0),
    }
}

async fn heimdex_stream(url: &str, n: usize, workers: usize) -> Figures {
    let namespace = format!("heimdex-bench-{}", uuid::Uuid::new_v4().simple());
    let producer = connect(url, &namespace).await;
    let consumers = connect(url, &namespace).await;
    let clock = Arc::new(Clock::new(n));
    let tasks = spawn_consumers(&consumers, &clock, n, workers);
    let start = clock.now() as f64 / 1e9;
    produce(&producer, &clock, n).await;
    for t in tasks {
        t.await.expect("consumer");
    }
    drop_namespace(url, &namespace);
    let last = clock.last_ack_s();
    let lat = clock.latencies_ms();
    Figures {
        system: "heimdex RedisQueue".into(),
        mode: "stream",
        jobs_per_s: n as f64 / (last - start),
        enqueue_per_s: None,
        drain_per_s: None,
        p50_ms: percentile(&lat, 50.0),
        p99_ms: percentile(&lat, 99.0),
    }
}

fn drop_namespace(url: &str, namespace: &str) {
    use redis::Commands;
    let client = redis::Client::open(url).expect("redis url");
    let mut conn = client.get_connection().expect("redis connection");
    let keys: Vec<String> = conn
        .scan_match(format!("{{{namespace}}}:*"))
        .expect("scan")
        .filter_map(Result::ok)
        .collect();
    if !keys.is_empty() {
        let _: () = conn.del(keys).expect("del");
    }
}

/// Runs the Python half; `None` (after printing why) when it cannot run here.
fn dramatiq(url: &str, n: usize, workers: usize, prefetch: usize) -> Option<Vec<Figures>> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/dramatiq_queue.py");
    let out = Command::new("python3")
        .arg(&script)
        .args(["--url", url])
        .args(["--jobs", &n.to_string()])
        .args(["--workers", &workers.to_string()])
        .args(["--prefetch", &prefetch.to_string()])
        .output();
    let out = match out {
        Ok(o) => o,
        Err(e) => {
            println!("NOTE: Dramatiq half skipped: cannot run python3 ({e})");
            return None;
        }
    };
    if out.status.code() == Some(3) {
        println!(
            "NOTE: Dramatiq half skipped: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
        return None;
    }
    assert!(
        out.status.success(),
        "dramatiq_queue.py failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let label = if prefetch == 0 {
        format!("dramatiq (prefetch {})", 2 * workers)
    } else {
        format!("dramatiq (prefetch {prefetch})")
    };
    let figures = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("dramatiq json");
            let f = |k: &str| v[k].as_f64();
            Figures {
                system: label.clone(),
                mode: if v["mode"] == "burst" {
                    "burst"
                } else {
                    "stream"
                },
                jobs_per_s: f("jobs_per_s").unwrap_or(0.0),
                enqueue_per_s: f("enqueue_per_s"),
                drain_per_s: f("drain_per_s"),
                p50_ms: f("p50_ms").unwrap_or(0.0),
                p99_ms: f("p99_ms").unwrap_or(0.0),
            }
        })
        .collect();
    Some(figures)
}

fn rate(v: Option<f64>) -> String {
    v.map_or_else(|| "-".into(), |r| format!("{r:.0}"))
}

fn main() {
    let url = std::env::var("HEIMDEX_BENCH_REDIS_URL")
        .or_else(|_| std::env::var("HEIMDEX_TEST_REDIS_URL"))
        .unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let n: usize = env_or("HEIMDEX_BENCH_QUEUE_JOBS", 20_000);
    let workers: usize = env_or("HEIMDEX_BENCH_QUEUE_WORKERS", 4);
    let tuned_prefetch: usize = env_or("HEIMDEX_BENCH_DRAMATIQ_PREFETCH", 1000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");

    println!("queue throughput: {n} no-op jobs, 1 producer, {workers} consumers, Redis at {url}");
    let mut all = Vec::new();
    rt.block_on(async {
        all.push(heimdex_burst(&url, n, workers).await);
        all.push(heimdex_stream(&url, n, workers).await);
    });
    for prefetch in [0, tuned_prefetch] {
        match dramatiq(&url, n, workers, prefetch) {
            Some(f) => all.extend(f),
            None => break,
        }
    }

    println!(
        "\n{:<26} {:<7} {:>10} {:>11} {:>10} {:>10} {:>10}",
        "system", "mode", "jobs/s", "enqueue/s", "drain/s", "p50 ms", "p99 ms"
    );
    for f in &all {
        println!(
            "{:<26} {:<7} {:>10.0} {:>11} {:>10} {:>10.1} {:>10.1}",
            f.system,
            f.mode,
            f.jobs_per_s,
            rate(f.enqueue_per_s),
            rate(f.drain_per_s),
            f.p50_ms,
            f.p99_ms
        );
    }
    println!();
    for mode in ["burst", "stream"] {
        let ours = all
            .iter()
            .find(|f| f.mode == mode && f.system.starts_with("heimdex"));
        for theirs in all
            .iter()
            .filter(|f| f.mode == mode && f.system.starts_with("dramatiq"))
        {
            if let Some(ours) = ours {
                println!(
                    "{mode}: heimdex / {} = {:.1}x jobs/s",
                    theirs.system,
                    ours.jobs_per_s / theirs.jobs_per_s
                );
            }
        }
    }
}
