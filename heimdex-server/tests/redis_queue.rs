//! `RedisQueue` against the shared `Queue` conformance suite (one test per scenario, each in
//! a fresh random namespace, with a reopen function that reconnects to the same namespace),
//! plus what only a shared server shows: a dead worker's job reclaimed by another consumer,
//! namespaces isolated from each other, many consumers on separate connections, and a Redis
//! restart (on a private `redis-server` this test starts, never the shared one).
//!
//! Needs Redis: `HEIMDEX_TEST_REDIS_URL`, default `redis://127.0.0.1:6379`. The tests fail,
//! saying so, when it cannot be reached. The restart tests also need the `redis-server`
//! binary on `PATH`. Every namespace is deleted when its test ends.

#![cfg(feature = "redis")]

use std::collections::HashSet;
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use heimdex_core::conformance::Fixture;
use heimdex_core::conformance::queue::POLICY;
use heimdex_core::model::{JobId, TenantId};
use heimdex_core::queue::{Queue, QueueError, QueueMessage, RetryPolicy};
use heimdex_server::queue::RedisQueue;
use heimdex_server::queue::redis::RedisQueueOptions;

fn redis_url() -> String {
    std::env::var("HEIMDEX_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

fn fresh_namespace(what: &str) -> String {
    format!("heimdex-test-{what}-{}", uuid::Uuid::new_v4().simple())
}

async fn connect_to(url: &str, namespace: &str, policy: RetryPolicy) -> RedisQueue {
    match RedisQueue::connect(url, namespace, policy).await {
        Ok(q) => q,
        Err(e) => panic!(
            "cannot use Redis at {url} ({e}): start a Redis there or point \
             HEIMDEX_TEST_REDIS_URL at one (these tests need a real server)"
        ),
    }
}

/// Deletes every key of a namespace when dropped (after the queue, see `Fixture`).
struct DropNamespace {
    url: String,
    namespace: String,
}

impl Drop for DropNamespace {
    fn drop(&mut self) {
        use redis::Commands;
        let Ok(client) = redis::Client::open(self.url.as_str()) else {
            return;
        };
        let Ok(mut conn) = client.get_connection_with_timeout(Duration::from_secs(2)) else {
            return;
        };
        let keys: Vec<String> = match conn.scan_match(format!("{{{}}}:*", self.namespace)) {
            Ok(iter) => iter.filter_map(Result::ok).collect(),
            Err(_) => return,
        };
        if !keys.is_empty() {
            let _: redis::RedisResult<()> = conn.del(keys);
        }
    }
}

/// A queue in a namespace of its own, deleted when the fixture drops; reopen reconnects to
/// the same namespace as a restarted process would.
async fn redis_queue() -> Fixture<RedisQueue> {
    let url = redis_url();
    let namespace = fresh_namespace("conf");
    let queue = connect_to(&url, &namespace, POLICY).await;
    let guard = DropNamespace {
        url: url.clone(),
        namespace: namespace.clone(),
    };
    Fixture::new(queue).keep(guard).reopen_with(move || {
        let (url, namespace) = (url.clone(), namespace.clone());
        async move { connect_to(&url, &namespace, POLICY).await }
    })
}

mod redis_shared {
    use super::*;
    heimdex_core::queue_conformance_tests!(redis_queue, durable);
}

fn message(tenant: &str) -> QueueMessage {
    QueueMessage {
        tenant: TenantId::new(tenant),
        job: JobId::random(),
    }
}

/// A short policy for the tests below (the suite uses [`POLICY`]).
fn short_policy() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 3,
        base_backoff: Duration::from_millis(100),
        max_backoff: Duration::from_secs(1),
    }
}

/// A worker that dies holding a job (never acks, never releases): once its lease ends the job
/// goes to another consumer, on another connection, as attempt 2, and the dead worker's
/// receipt is stale.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_worker_is_reclaimed() {
    let url = redis_url();
    let fixture = redis_queue().await;
    let namespace = fixture.backend().namespace().to_owned();
    let m = message("reclaim");
    fixture.backend().enqueue(&m).await.expect("enqueue");

    let lease = Duration::from_millis(800);
    let dying = connect_to(&url, &namespace, POLICY).await;
    let reserved_at = Instant::now();
    let held = dying
        .reserve(lease)
        .await
        .expect("reserve")
        .expect("a delivery");
    assert_eq!((held.message.clone(), held.attempt), (m.clone(), 1));
    drop(dying); // the worker process dies

    let survivor = connect_to(&url, &namespace, POLICY).await;
    let early = survivor.reserve(lease).await.expect("reserve during lease");
    assert!(
        reserved_at.elapsed() >= lease || early.is_none(),
        "a leased job was handed out again during its lease: {early:?}"
    );
    tokio::time::sleep_until((reserved_at + lease + Duration::from_millis(100)).into()).await;
    let again = survivor
        .reserve(Duration::from_secs(60))
        .await
        .expect("reserve after lease")
        .expect("the dead worker's job is delivered again");
    assert_eq!(again.message, m);
    assert_eq!(again.attempt, 2, "a reclaimed job counts the lost attempt");
    assert!(
        matches!(
            survivor.ack(&held).await,
            Err(QueueError::StaleReceipt { .. })
        ),
        "the dead worker's receipt must be stale"
    );
    survivor.ack(&again).await.expect("ack by the survivor");
    let s = survivor.stats().await.expect("stats");
    assert_eq!((s.ready, s.delayed, s.in_flight, s.dead), (0, 0, 0, 0));
}

/// Two namespaces on one Redis never see each other's messages, even for the same job.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namespaces_isolate() {
    let (a, b) = (redis_queue().await, redis_queue().await);
    let (a, b) = (a.backend(), b.backend());
    let m = message("isolate");
    a.enqueue(&m).await.expect("enqueue in a");
    assert!(
        b.reserve(Duration::from_secs(60))
            .await
            .expect("b")
            .is_none()
    );
    assert_eq!(b.stats().await.expect("stats b").ready, 0);

    // The same job in b is a message of its own.
    b.enqueue(&m).await.expect("enqueue in b");
    let da = a
        .reserve(Duration::from_secs(60))
        .await
        .expect("a")
        .expect("a's");
    let db = b
        .reserve(Duration::from_secs(60))
        .await
        .expect("b")
        .expect("b's");
    assert_eq!((da.message.clone(), db.message.clone()), (m.clone(), m));
    assert!(matches!(
        a.ack(&db).await,
        Err(QueueError::StaleReceipt { .. })
    ));
    a.ack(&da).await.expect("ack a");
    b.ack(&db).await.expect("ack b");
}

/// Namespaces that would break the key layout and a zero attempt budget are refused.
#[tokio::test]
async fn bad_configuration_is_refused() {
    let url = redis_url();
    for ns in ["", "a{b", "a}b"] {
        let r = RedisQueue::connect(&url, ns, POLICY).await;
        assert!(
            matches!(r, Err(QueueError::Backend { .. })),
            "namespace {ns:?}: {r:?}"
        );
    }
    let zero = RetryPolicy {
        max_attempts: 0,
        ..POLICY
    };
    let r = RedisQueue::connect(&url, "heimdex-test-zero", zero).await;
    assert!(matches!(r, Err(QueueError::Backend { .. })), "{r:?}");
}

/// Several consumers, each on its own connection (as on separate machines), race for the
/// same messages: each message is delivered exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumers_on_separate_connections_share_the_work() {
    let url = redis_url();
    let fixture = redis_queue().await;
    let namespace = fixture.backend().namespace().to_owned();
    let n = 400;
    for i in 0..n {
        let m = QueueMessage {
            tenant: TenantId::new("share"),
            job: JobId::new(format!("job-{i}")),
        };
        fixture.backend().enqueue(&m).await.expect("enqueue");
    }
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let q = connect_to(&url, &namespace, POLICY).await;
        tasks.push(tokio::spawn(async move {
            let mut got = Vec::new();
            while let Some(d) = q.reserve(Duration::from_secs(60)).await.expect("reserve") {
                q.ack(&d).await.expect("ack");
                got.push(d.message.job.to_string());
            }
            got
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.expect("consumer"));
    }
    let distinct: HashSet<&String> = all.iter().collect();
    assert_eq!(all.len(), n, "every message delivered once");
    assert_eq!(distinct.len(), n, "no message delivered twice");
}

/// A `redis-server` of this test's own on a free port; killed (SIGKILL) on drop.
struct PrivateRedis {
    port: u16,
    child: Option<Child>,
}

impl PrivateRedis {
    fn start(port: u16, dir: &Path, aof: bool) -> Self {
        let mut cmd = Command::new("redis-server");
        cmd.args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
        ])
        .arg("--dir")
        .arg(dir)
        .args(["--appendonly", if aof { "yes" } else { "no" }])
        .args(["--appendfsync", "always"])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
        let child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => panic!("cannot start redis-server (is it installed and on PATH?): {e}"),
        };
        let server = Self {
            port,
            child: Some(child),
        };
        server.wait_ready();
        server
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let ok = redis::Client::open(self.url())
                .and_then(|c| c.get_connection_with_timeout(Duration::from_millis(200)))
                .and_then(|mut c| redis::cmd("PING").query::<String>(&mut c));
            if ok.is_ok() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "private redis-server on port {} did not come up: {ok:?}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Kill the server as a crash would (no shutdown save).
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.kill();
    }
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("local addr").port()
}

fn quick() -> RedisQueueOptions {
    RedisQueueOptions::default()
        .with_connect_timeout(Duration::from_millis(500))
        .with_response_timeout(Duration::from_secs(2))
        .with_reconnect_retries(1)
}

/// Every call fails with `Unavailable`, promptly, while the server is down.
async fn assert_unavailable(queue: &RedisQueue, m: &QueueMessage) {
    for round in 0..3 {
        let t = Instant::now();
        let results = [
            queue.enqueue(m).await.map(|_| ()),
            queue.reserve(Duration::from_secs(60)).await.map(|_| ()),
            queue.stats().await.map(|_| ()),
        ];
        for r in results {
            assert!(
                matches!(r, Err(QueueError::Unavailable { .. })),
                "round {round}: expected Unavailable while Redis is down, got {r:?}"
            );
        }
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "calls while Redis is down took {:?}",
            t.elapsed()
        );
    }
}

/// Retry `stats` until the queue answers again (it reconnects by itself).
async fn wait_reconnected(queue: &RedisQueue) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        match queue.stats().await {
            Ok(_) => return,
            Err(e) => {
                assert!(
                    Instant::now() < deadline,
                    "the queue did not reconnect after Redis restarted: {e}"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Redis without persistence restarts empty: while it is down calls answer `Unavailable`;
/// afterwards the same handle reconnects (scripts are loaded again) and the queue is empty,
/// which is what `Engine::reconcile` refills from the Store; enqueuing again works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_without_persistence_reconnects_empty() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let mut server = PrivateRedis::start(port, dir.path(), false);
    let queue = RedisQueue::connect_with(&server.url(), "restart", short_policy(), quick())
        .await
        .expect("connect to the private redis");
    let m = message("restart");
    queue.enqueue(&m).await.expect("enqueue");
    assert_eq!(queue.stats().await.expect("stats").ready, 1);

    server.kill();
    assert_unavailable(&queue, &m).await;
    let unreachable = RedisQueue::connect_with(&server.url(), "restart", short_policy(), quick())
        .await
        .map(|_| ());
    assert!(
        matches!(unreachable, Err(QueueError::Unavailable { .. })),
        "connecting to a stopped Redis: {unreachable:?}"
    );

    let _server = PrivateRedis::start(port, dir.path(), false);
    wait_reconnected(&queue).await;
    let s = queue.stats().await.expect("stats after restart");
    assert_eq!(
        (s.ready, s.delayed, s.in_flight, s.dead),
        (0, 0, 0, 0),
        "a Redis without persistence comes back empty"
    );
    // What reconcile does: enqueue the Store's pending jobs again.
    queue.enqueue(&m).await.expect("enqueue again");
    let d = queue
        .reserve(Duration::from_secs(60))
        .await
        .expect("reserve")
        .expect("the re-enqueued job");
    assert_eq!((d.message.clone(), d.attempt), (m, 1));
    queue.ack(&d).await.expect("ack");
}

/// Redis with an append-only file keeps the queue across a crash: a ready message and a
/// reserved one (whose lease and receipt survive) are there after the restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_with_aof_keeps_messages() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let mut server = PrivateRedis::start(port, dir.path(), true);
    let queue = RedisQueue::connect_with(&server.url(), "aof", short_policy(), quick())
        .await
        .expect("connect to the private redis");
    let (held, waiting) = (message("aof"), message("aof"));
    queue.enqueue(&held).await.expect("enqueue");
    queue.enqueue(&waiting).await.expect("enqueue");
    let d = queue
        .reserve(Duration::from_secs(60))
        .await
        .expect("reserve")
        .expect("delivery");
    assert_eq!(d.message, held);

    server.kill();
    assert_unavailable(&queue, &waiting).await;
    let _server = PrivateRedis::start(port, dir.path(), true);
    wait_reconnected(&queue).await;

    let s = queue.stats().await.expect("stats after restart");
    assert_eq!((s.ready, s.in_flight), (1, 1), "{s:?}");
    let w = queue
        .reserve(Duration::from_secs(60))
        .await
        .expect("reserve")
        .expect("the waiting message survived");
    assert_eq!((w.message.clone(), w.attempt), (waiting, 1));
    queue
        .ack(&d)
        .await
        .expect("the lease from before the crash is still valid");
    queue.ack(&w).await.expect("ack");
    assert!(
        queue
            .reserve(Duration::from_secs(60))
            .await
            .expect("reserve")
            .is_none()
    );
}
