//! `LocalQueue` against the shared `Queue` conformance suite, one test per scenario: on a
//! file-backed `SqliteStore` with a reopen function that opens a new store + queue on the same
//! file (a restart), and in memory. The local queue hands out any tenant's message, so each
//! scenario gets a queue (a database) of its own.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use heimdex_core::conformance::Fixture;
use heimdex_core::conformance::queue::POLICY;
use heimdex_core::model::{JobId, TenantId};
use heimdex_core::queue::{Queue, QueueMessage, RetryPolicy};
use heimdex_server::queue::LocalQueue;
use heimdex_server::store::SqliteStore;

/// A short policy for the local-only tests below (the suite uses [`POLICY`]).
fn policy() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 3,
        base_backoff: Duration::from_millis(100),
        max_backoff: Duration::from_secs(1),
    }
}

async fn open(path: PathBuf) -> LocalQueue {
    let store = SqliteStore::open(&path).await.expect("open store");
    LocalQueue::new(&store, POLICY).await.expect("queue")
}

async fn file_queue() -> Fixture<LocalQueue> {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("heimdex.db");
    let queue = open(path.clone()).await;
    Fixture::new(queue)
        .keep(dir)
        .reopen_with(move || Box::pin(open(path.clone())))
}

async fn in_memory_queue() -> Fixture<LocalQueue> {
    let store = SqliteStore::in_memory().await.expect("store");
    let queue = LocalQueue::new(&store, POLICY).await.expect("queue");
    Fixture::new(queue).keep(store)
}

mod local_file {
    use super::*;
    heimdex_core::queue_conformance_tests!(file_queue, durable);
}

mod local_in_memory {
    use super::*;
    heimdex_core::queue_conformance_tests!(in_memory_queue);
}

#[tokio::test]
async fn zero_max_attempts_is_rejected() {
    let store = SqliteStore::in_memory().await.expect("store");
    let bad = RetryPolicy {
        max_attempts: 0,
        ..policy()
    };
    assert!(LocalQueue::new(&store, bad).await.is_err());
}

/// `wait_for_work` wakes on enqueue, returns at once when work is ready, and otherwise
/// sleeps only until the next delayed message is due.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_for_work_wakes_up() {
    let store = SqliteStore::in_memory().await.expect("store");
    let queue = LocalQueue::new(&store, policy()).await.expect("queue");

    // Empty queue: times out.
    let t = Instant::now();
    queue.wait_for_work(Duration::from_millis(100)).await;
    assert!(t.elapsed() >= Duration::from_millis(90));

    // Woken by an enqueue from another task.
    let producer = queue.clone();
    let t = Instant::now();
    let handle = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let m = QueueMessage {
            tenant: TenantId::default_tenant(),
            job: JobId::random(),
        };
        producer.enqueue(&m).await.expect("enqueue");
    });
    queue.wait_for_work(Duration::from_secs(5)).await;
    assert!(
        t.elapsed() < Duration::from_secs(2),
        "not woken: {:?}",
        t.elapsed()
    );
    handle.await.expect("producer");

    // Work is ready: returns at once.
    let t = Instant::now();
    queue.wait_for_work(Duration::from_secs(5)).await;
    assert!(t.elapsed() < Duration::from_secs(1));

    // Only a delayed message: returns when it is due, long before the timeout.
    let d = queue
        .reserve(Duration::from_secs(30))
        .await
        .expect("reserve")
        .expect("delivery");
    queue.nack(&d, "later").await.expect("nack");
    let t = Instant::now();
    queue.wait_for_work(Duration::from_secs(5)).await;
    let waited = t.elapsed();
    assert!(
        waited < Duration::from_secs(2),
        "slept past the due time: {waited:?}"
    );
    let d = queue
        .reserve(Duration::from_secs(30))
        .await
        .expect("reserve")
        .expect("due now");
    queue.ack(&d).await.expect("ack");
}
