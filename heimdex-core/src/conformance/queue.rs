//! Conformance suite for the [`Queue`] trait.
//!
//! A backend's test file invokes [`queue_conformance_tests!`](crate::queue_conformance_tests)
//! with a factory returning a [`Fixture`] of a queue built with a retry
//! policy of `max_attempts >= 2` and a backoff well above scheduling noise ([`POLICY`] is
//! the recommended one); that expands to one `#[tokio::test]` per scenario. The suite reads
//! [`Queue::retry_policy`] instead of assuming one.
//!
//! A queue hands out any tenant's message, so the factory gives each scenario a queue of its
//! own: a fresh namespace on a shared server, a fresh file or in-memory database locally.
//! Every scenario settles the messages it enqueued (dead letters stay, found by job id).
//!
//! Timing: leases that must expire are [`SHORT`] (1.5 s), backoffs come from the policy
//! (1 s with [`POLICY`]), so a check made "during a lease" or "before the backoff" has over
//! a second of margin on a loaded machine. A check that nonetheless could not be made in
//! time fails naming the stall; none is skipped.
//!
//! Scenarios:
//! - [`enqueue_reserve_ack`]: one message through, then the queue is empty.
//! - [`fifo_order`]: messages come out in enqueue order.
//! - [`duplicate_enqueue_is_noop`]: enqueuing a queued (ready or reserved) job adds nothing.
//! - [`reserved_is_invisible`]: a reserved message is not handed out twice.
//! - [`concurrent_reserve_is_exclusive`]: concurrent reservers never get the same message.
//! - [`lease_expiry_redelivers`]: an expired lease redelivers with `attempt + 1`; the old
//!   receipt is stale for ack, nack and extend; a settled receipt is stale too.
//! - [`nack_backoff`]: nack → `Retry{after: policy.backoff(attempt)}`, hidden until then.
//! - [`dead_letter_after_max_attempts`]: the last nack dead-letters, with reason and attempts;
//!   enqueuing the job again makes it deliverable from attempt 1.
//! - [`lease_expiry_on_last_attempt_dead_letters`]: a lease expiring on the last attempt
//!   dead-letters, saying so and keeping the previous reason.
//! - [`extend_keeps_lease`]: extend keeps a delivery past its original visibility.
//! - [`stats_counts`]: ready, delayed, in-flight and dead counts.
//! - [`durability`] (only in the `durable` variant, whose fixture has a reopen function):
//!   enqueued, reserved-unacked and nacked messages all survive reopening the queue.

use std::time::{Duration, Instant};

use crate::model::JobId;
use crate::queue::{
    Delivery, NackOutcome, Queue, QueueError, QueueMessage, QueueStats, RetryPolicy,
};

use super::Fixture;

/// The recommended retry policy for the suite: three attempts, 1 s then 2 s of backoff.
pub const POLICY: RetryPolicy = RetryPolicy {
    max_attempts: 3,
    base_backoff: Duration::from_secs(1),
    max_backoff: Duration::from_secs(2),
};

/// A lease long enough never to expire during a scenario.
const LONG: Duration = Duration::from_secs(60);
/// A short lease that scenarios let expire; every check made during it has over a second
/// of margin.
pub const SHORT: Duration = Duration::from_millis(1_500);
/// Slack added to sleeps so that a deadline has surely passed (sleeping longer is always
/// safe; only checks made *before* a deadline need a margin).
const SLACK: Duration = Duration::from_millis(100);

/// The Queue scenarios, in order. Adding a scenario is one line here.
#[doc(hidden)]
#[macro_export]
macro_rules! __queue_scenarios {
    ($mode:ident $arg:expr, $attrs:tt) => {
        $crate::__conformance_expand! { $mode queue, $arg, $attrs;
            enqueue_reserve_ack,
            fifo_order,
            duplicate_enqueue_is_noop,
            reserved_is_invisible,
            concurrent_reserve_is_exclusive,
            lease_expiry_redelivers,
            nack_backoff,
            dead_letter_after_max_attempts,
            lease_expiry_on_last_attempt_dead_letters,
            extend_keeps_lease,
            release_hands_back,
            stats_counts,
        }
    };
}

/// One `#[tokio::test]` per Queue scenario. The argument is a factory, called once per
/// scenario, returning a future of a [`Fixture`](crate::conformance::Fixture) of a queue no
/// other scenario uses. With `, durable` the fixture must have a reopen function
/// ([`Fixture::reopen_with`](crate::conformance::Fixture::reopen_with)) and
/// [`durability`](crate::conformance::queue::durability) runs too.
#[macro_export]
macro_rules! queue_conformance_tests {
    ($make:expr, durable $(, #[$meta:meta])* $(,)?) => {
        $crate::__queue_scenarios! { tests $make, [$(#[$meta])*] }

        #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
        $(#[$meta])*
        async fn durability() {
            let fixture = ($make)().await;
            $crate::conformance::queue::durability(&fixture).await;
        }
    };
    ($make:expr $(, #[$meta:meta])* $(,)?) => {
        $crate::__queue_scenarios! { tests $make, [$(#[$meta])*] }
    };
}

/// Fails, naming the stall, when more than `limit` has passed since `since`: a check that
/// had to be made before a deadline could not be. Never a silent skip.
fn in_time(since: Instant, limit: Duration, what: &str) {
    let elapsed = since.elapsed();
    assert!(
        elapsed < limit,
        "{what}: the check could not be made in time ({elapsed:?} elapsed, deadline \
         {limit:?}); the machine stalled longer than the lease/backoff margin"
    );
}

fn ok<T>(what: &str, r: Result<T, QueueError>) -> T {
    match r {
        Ok(v) => v,
        Err(e) => panic!("{what}: unexpected error: {e}"),
    }
}

fn message() -> QueueMessage {
    QueueMessage {
        tenant: super::unique_tenant("conf-queue", "msg"),
        job: JobId::random(),
    }
}

async fn reserve_some(queue: &dyn Queue, visibility: Duration, what: &str) -> Delivery {
    match ok(what, queue.reserve(visibility).await) {
        Some(d) => d,
        None => panic!("{what}: expected a delivery, the queue was empty"),
    }
}

async fn assert_empty(queue: &dyn Queue, what: &str) {
    if let Some(d) = ok(what, queue.reserve(LONG).await) {
        panic!("{what}: expected no deliverable message, got {d:?}");
    }
}

/// Nothing is deliverable, checked before `deadline` (counted from `since`, taken before the
/// lease or backoff began). A delivery after the deadline is a stall, reported as such.
async fn assert_empty_before(queue: &dyn Queue, since: Instant, deadline: Duration, what: &str) {
    let got = ok(what, queue.reserve(LONG).await);
    in_time(since, deadline, what);
    if let Some(d) = got {
        panic!("{what}: expected no deliverable message, got {d:?}");
    }
}

fn assert_stale(r: Result<impl std::fmt::Debug, QueueError>, what: &str) {
    assert!(
        matches!(r, Err(QueueError::StaleReceipt { .. })),
        "{what}: expected StaleReceipt, got {r:?}"
    );
}

async fn stats(queue: &dyn Queue) -> QueueStats {
    ok("stats", queue.stats().await)
}

/// A lease that expires on the last allowed attempt dead-letters the message (a job that
/// kills its worker every time must not loop forever); the dead letter says the lease expired
/// and keeps the previous failure's reason.
pub async fn lease_expiry_on_last_attempt_dead_letters(queue: &dyn Queue) {
    let policy = queue.retry_policy();
    let dead_before = stats(queue).await.dead;
    let m = message();
    ok("enqueue", queue.enqueue(&m).await);
    for attempt in 1..policy.max_attempts {
        let d = match ok("reserve", queue.reserve(LONG).await) {
            Some(d) => d,
            None => {
                tokio::time::sleep(policy.backoff(attempt - 1) + SLACK).await;
                reserve_some(queue, LONG, "reserve after backoff").await
            }
        };
        assert_eq!(d.attempt, attempt);
        ok("nack", queue.nack(&d, "decoder crashed").await);
        tokio::time::sleep(policy.backoff(attempt) + SLACK).await;
    }
    let last = reserve_some(queue, SHORT, "last attempt").await;
    assert_eq!(last.attempt, policy.max_attempts);
    // The worker dies: nobody settles; the lease runs out.
    tokio::time::sleep(SHORT + SLACK).await;
    assert_empty(queue, "an expired last attempt is not delivered again").await;
    assert_stale(queue.ack(&last).await, "ack after the lease expired");
    let s = stats(queue).await;
    assert_eq!(s.dead, dead_before + 1, "{s:?}");
    let letters = ok("dead_letters", queue.dead_letters().await);
    let ours: Vec<_> = letters.iter().filter(|l| l.message == m).collect();
    assert_eq!(ours.len(), 1, "one dead letter for the job: {letters:?}");
    assert_eq!(ours[0].attempts, policy.max_attempts);
    assert!(
        ours[0].reason.contains("lease expired"),
        "{}",
        ours[0].reason
    );
    assert!(
        ours[0].reason.contains("decoder crashed"),
        "{}",
        ours[0].reason
    );
}

/// `release` makes a delivery deliverable again at once, without counting the attempt; the
/// released receipt is stale afterwards.
pub async fn release_hands_back(queue: &dyn Queue) {
    let m = message();
    ok("enqueue", queue.enqueue(&m).await);
    let first = reserve_some(queue, LONG, "first reserve").await;
    assert_eq!(first.attempt, 1);
    ok("release", queue.release(&first).await);
    let again = reserve_some(queue, LONG, "reserve after release").await;
    assert_eq!(again.message, m);
    assert_eq!(
        again.attempt, 1,
        "a released delivery is not counted as an attempt"
    );
    assert_stale(queue.ack(&first).await, "ack with the released receipt");
    assert_stale(queue.release(&first).await, "release twice");
    ok("ack", queue.ack(&again).await);
    assert_empty(queue, "after ack").await;
}

/// Enqueue, reserve, ack; then nothing is left.
pub async fn enqueue_reserve_ack(queue: &dyn Queue) {
    assert_empty(queue, "fresh queue").await;
    let m = message();
    ok("enqueue", queue.enqueue(&m).await);
    let d = reserve_some(queue, LONG, "reserve").await;
    assert_eq!(d.message, m);
    assert_eq!(d.attempt, 1, "first delivery is attempt 1");
    assert!(!d.receipt.is_empty(), "receipt must not be empty");
    ok("ack", queue.ack(&d).await);
    assert_empty(queue, "after ack").await;
    let s = stats(queue).await;
    assert_eq!(
        (s.ready, s.delayed, s.in_flight),
        (0, 0, 0),
        "after ack: {s:?}"
    );
}

/// Messages enqueued one after the other are delivered in that order.
pub async fn fifo_order(queue: &dyn Queue) {
    let msgs: Vec<QueueMessage> = (0..5).map(|_| message()).collect();
    for m in &msgs {
        ok("enqueue", queue.enqueue(m).await);
    }
    let mut got = Vec::new();
    for _ in 0..msgs.len() {
        got.push(reserve_some(queue, LONG, "reserve").await);
    }
    assert_empty(queue, "after draining").await;
    let order: Vec<QueueMessage> = got.iter().map(|d| d.message.clone()).collect();
    assert_eq!(order, msgs, "FIFO order");
    for d in &got {
        ok("ack", queue.ack(d).await);
    }
}

/// Enqueuing a job that is already queued (ready or reserved) adds nothing.
pub async fn duplicate_enqueue_is_noop(queue: &dyn Queue) {
    let m = message();
    ok("enqueue", queue.enqueue(&m).await);
    ok("enqueue again", queue.enqueue(&m).await);
    let s = stats(queue).await;
    assert_eq!(
        s.ready, 1,
        "duplicate enqueue must not add a message: {s:?}"
    );
    let d = reserve_some(queue, LONG, "reserve").await;
    assert_eq!(d.message, m);
    assert_empty(queue, "only one copy").await;

    // Enqueued again while reserved: still one message, the lease stays intact.
    ok("enqueue while reserved", queue.enqueue(&m).await);
    assert_empty(queue, "still reserved").await;
    ok("ack", queue.ack(&d).await);
    assert_empty(queue, "after ack").await;
}

/// A reserved message is invisible to other reservers while its lease lasts.
pub async fn reserved_is_invisible(queue: &dyn Queue) {
    let a = message();
    let b = message();
    ok("enqueue a", queue.enqueue(&a).await);
    ok("enqueue b", queue.enqueue(&b).await);
    let da = reserve_some(queue, LONG, "reserve a").await;
    let db = reserve_some(queue, LONG, "reserve b").await;
    assert_eq!(da.message, a);
    assert_eq!(db.message, b, "the second reserve gets the other message");
    assert_ne!(da.receipt, db.receipt, "receipts are per delivery");
    assert_empty(queue, "both reserved").await;
    ok("ack b", queue.ack(&db).await);
    ok("ack a", queue.ack(&da).await);
}

/// Four reservers racing over the same messages each get different ones, and together all.
pub async fn concurrent_reserve_is_exclusive(queue: &dyn Queue) {
    let msgs: Vec<QueueMessage> = (0..24).map(|_| message()).collect();
    for m in &msgs {
        ok("enqueue", queue.enqueue(m).await);
    }
    async fn drain(queue: &dyn Queue) -> Vec<Delivery> {
        let mut got = Vec::new();
        while let Some(d) = ok("concurrent reserve", queue.reserve(LONG).await) {
            got.push(d);
            tokio::task::yield_now().await;
        }
        got
    }
    let (a, b, c, d) = tokio::join!(drain(queue), drain(queue), drain(queue), drain(queue));
    let all: Vec<Delivery> = [a, b, c, d].concat();
    let mut jobs: Vec<&str> = all.iter().map(|d| d.message.job.as_str()).collect();
    jobs.sort_unstable();
    jobs.dedup();
    assert_eq!(jobs.len(), all.len(), "a message was handed out twice");
    assert_eq!(all.len(), msgs.len(), "every message is delivered once");
    for d in &all {
        assert_eq!(d.attempt, 1);
        ok("ack", queue.ack(d).await);
    }
    assert_empty(queue, "after acking all").await;
}

/// An expired lease redelivers the message with `attempt + 1` and a new receipt; the old
/// receipt can no longer settle or extend it.
pub async fn lease_expiry_redelivers(queue: &dyn Queue) {
    let m = message();
    ok("enqueue", queue.enqueue(&m).await);
    let reserved_at = Instant::now();
    let first = reserve_some(queue, SHORT, "reserve").await;
    assert_empty_before(queue, reserved_at, SHORT, "during the lease").await;
    tokio::time::sleep_until((reserved_at + SHORT + SLACK).into()).await;

    let second = reserve_some(queue, LONG, "redelivery after lease expiry").await;
    assert_eq!(second.message, m);
    assert_eq!(
        second.attempt,
        first.attempt + 1,
        "redelivery increments the attempt"
    );
    assert_ne!(
        second.receipt, first.receipt,
        "a redelivery has a new receipt"
    );

    assert_stale(queue.ack(&first).await, "ack with the old receipt");
    assert_stale(
        queue.nack(&first, "late").await,
        "nack with the old receipt",
    );
    assert_stale(
        queue.extend(&first, LONG).await,
        "extend with the old receipt",
    );

    ok("ack with the new receipt", queue.ack(&second).await);
    assert_stale(queue.ack(&second).await, "ack of a settled delivery");
    assert_stale(queue.nack(&second, "x").await, "nack of a settled delivery");
    assert_empty(queue, "after ack").await;

    // A lease that expired without redelivery is stale as well.
    let m = message();
    ok("enqueue", queue.enqueue(&m).await);
    let d = reserve_some(queue, SHORT, "reserve").await;
    tokio::time::sleep(SHORT + SLACK).await;
    assert_stale(queue.ack(&d).await, "ack after the lease expired");
    let again = reserve_some(queue, LONG, "redelivery").await;
    assert_eq!(again.message, m);
    ok("ack", queue.ack(&again).await);
}

/// Nack schedules a retry after the policy's backoff; the message is hidden until then.
pub async fn nack_backoff(queue: &dyn Queue) {
    let policy = queue.retry_policy();
    let m = message();
    ok("enqueue", queue.enqueue(&m).await);
    let d = reserve_some(queue, LONG, "reserve").await;
    let nacked_at = Instant::now();
    let outcome = ok("nack", queue.nack(&d, "transient").await);
    let backoff = policy.backoff(d.attempt);
    assert_eq!(outcome, NackOutcome::Retry { after: backoff });

    assert_empty_before(queue, nacked_at, backoff, "reserve during the backoff").await;
    tokio::time::sleep_until((nacked_at + backoff + SLACK).into()).await;
    let d2 = reserve_some(queue, LONG, "reserve after backoff").await;
    assert_eq!(d2.message, m);
    assert_eq!(d2.attempt, d.attempt + 1);
    assert_stale(queue.ack(&d).await, "ack of the nacked delivery");
    ok("ack", queue.ack(&d2).await);
    assert_empty(queue, "after ack").await;
}

/// The nack of attempt `max_attempts` dead-letters the message with its reason and attempts.
pub async fn dead_letter_after_max_attempts(queue: &dyn Queue) {
    let policy = queue.retry_policy();
    assert!(
        policy.max_attempts >= 2,
        "queue conformance needs a RetryPolicy with max_attempts >= 2, got {policy:?}"
    );
    let dead_before = stats(queue).await.dead;
    let m = message();
    ok("enqueue", queue.enqueue(&m).await);
    let mut last = None;
    for attempt in 1..=policy.max_attempts {
        let d = match ok("reserve", queue.reserve(LONG).await) {
            Some(d) => d,
            None => {
                tokio::time::sleep(policy.backoff(attempt - 1) + SLACK).await;
                reserve_some(queue, LONG, "reserve after backoff").await
            }
        };
        assert_eq!(d.message, m);
        assert_eq!(d.attempt, attempt);
        let reason = format!("boom #{attempt}");
        let outcome = ok("nack", queue.nack(&d, &reason).await);
        if attempt < policy.max_attempts {
            assert_eq!(
                outcome,
                NackOutcome::Retry {
                    after: policy.backoff(attempt)
                }
            );
            tokio::time::sleep(policy.backoff(attempt) + SLACK).await;
        } else {
            assert_eq!(
                outcome,
                NackOutcome::DeadLettered,
                "attempt {attempt} is the last"
            );
        }
        last = Some(d);
    }
    assert_empty(queue, "dead letters are not delivered").await;
    if let Some(d) = &last {
        assert_stale(queue.ack(d).await, "ack of a dead-lettered delivery");
    }
    let s = stats(queue).await;
    assert_eq!(s.dead, dead_before + 1, "{s:?}");
    let letters = ok("dead_letters", queue.dead_letters().await);
    let ours: Vec<_> = letters.iter().filter(|l| l.message == m).collect();
    assert_eq!(
        ours.len(),
        1,
        "exactly one dead letter for the job: {letters:?}"
    );
    assert_eq!(ours[0].reason, format!("boom #{}", policy.max_attempts));
    assert_eq!(ours[0].attempts, policy.max_attempts);

    // Enqueuing a dead job again makes it deliverable, starting over at attempt 1.
    ok("enqueue dead job again", queue.enqueue(&m).await);
    let d = reserve_some(queue, LONG, "reserve revived").await;
    assert_eq!(d.message, m);
    assert_eq!(d.attempt, 1, "a re-enqueued job starts over");
    ok("ack revived", queue.ack(&d).await);
    assert_empty(queue, "after ack").await;
}

/// Extending a lease keeps the delivery valid past its original visibility.
pub async fn extend_keeps_lease(queue: &dyn Queue) {
    let m = message();
    ok("enqueue", queue.enqueue(&m).await);
    let reserved_at = Instant::now();
    let d = reserve_some(queue, SHORT, "reserve").await;
    let extended = queue.extend(&d, LONG).await;
    in_time(reserved_at, SHORT, "extend within the original lease");
    ok("extend", extended);
    tokio::time::sleep_until((reserved_at + SHORT + SLACK).into()).await;
    // Past the original lease: still reserved, still ours.
    assert_empty(queue, "extended lease").await;
    ok("extend again", queue.extend(&d, LONG).await);
    ok("ack after the original lease", queue.ack(&d).await);
    assert_empty(queue, "after ack").await;
}

/// Stats count ready, delayed, in-flight and dead messages (as changes from the counts the
/// scenario found, so it needs no empty queue).
pub async fn stats_counts(queue: &dyn Queue) {
    let policy = queue.retry_policy();
    let base = stats(queue).await;
    let delta = |s: &QueueStats| {
        (
            s.ready - base.ready,
            s.delayed - base.delayed,
            s.in_flight - base.in_flight,
            s.dead - base.dead,
        )
    };
    let msgs: Vec<QueueMessage> = (0..4).map(|_| message()).collect();
    for m in &msgs {
        ok("enqueue", queue.enqueue(m).await);
    }
    let s = stats(queue).await;
    assert_eq!(delta(&s), (4, 0, 0, 0), "{s:?} (before: {base:?})");

    let a = reserve_some(queue, LONG, "reserve a").await;
    let s = stats(queue).await;
    assert_eq!(delta(&s), (3, 0, 1, 0), "{s:?} (before: {base:?})");

    let b = reserve_some(queue, LONG, "reserve b").await;
    let nacked_at = Instant::now();
    ok("nack b", queue.nack(&b, "later").await);
    let s = stats(queue).await;
    in_time(
        nacked_at,
        policy.backoff(b.attempt),
        "stats during the backoff",
    );
    assert_eq!(delta(&s), (2, 1, 1, 0), "{s:?} (before: {base:?})");

    // An expired lease counts as ready again, not in flight.
    let c = reserve_some(queue, SHORT, "reserve c").await;
    tokio::time::sleep(policy.backoff(b.attempt).max(SHORT) + SLACK).await;
    let s = stats(queue).await;
    assert_eq!(delta(&s), (3, 0, 1, 0), "{s:?} (before: {base:?})");

    ok("ack a", queue.ack(&a).await);
    assert_stale(queue.ack(&c).await, "ack of c after its lease");
    for _ in 0..3 {
        let d = reserve_some(queue, LONG, "drain").await;
        ok("ack", queue.ack(&d).await);
    }
    let s = stats(queue).await;
    assert_eq!(delta(&s), (0, 0, 0, 0), "{s:?} (before: {base:?})");
}

/// Messages survive reopening: ready ones, a reserved-but-unacked one (after its lease) and a
/// nacked one (after its backoff).
pub async fn durability<Q: Queue>(fixture: &Fixture<Q>) {
    let queue: &dyn Queue = fixture.backend();
    let policy = queue.retry_policy();
    let msgs: Vec<QueueMessage> = (0..4).map(|_| message()).collect();
    for m in &msgs {
        ok("enqueue", queue.enqueue(m).await);
    }
    // msgs[0]: reserved and never acked (the worker "crashes").
    let reserved_at = Instant::now();
    let lost = reserve_some(queue, SHORT, "reserve 0").await;
    assert_eq!(lost.message, msgs[0]);
    // msgs[1]: nacked, waiting for its backoff.
    let nacked = reserve_some(queue, LONG, "reserve 1").await;
    assert_eq!(nacked.message, msgs[1]);
    ok("nack 1", queue.nack(&nacked, "retry me").await);
    // Until then msgs[0] and msgs[1] are hidden (the nack came after `reserved_at`).
    let hidden = SHORT.min(policy.backoff(nacked.attempt));

    let reopened = fixture.reopen().await;
    let q2: &dyn Queue = &reopened;

    let mut seen = Vec::new();
    let mut first_two_at = None;
    let deadline = Instant::now() + SHORT + policy.backoff(nacked.attempt) + Duration::from_secs(5);
    while seen.len() < msgs.len() {
        match ok("reserve after reopen", q2.reserve(LONG).await) {
            Some(d) => {
                let idx = msgs.iter().position(|m| *m == d.message);
                let Some(idx) = idx else {
                    panic!("unexpected message after reopen: {d:?}");
                };
                let want_attempt = if idx < 2 { 2 } else { 1 };
                assert_eq!(
                    d.attempt, want_attempt,
                    "attempt of message {idx} after reopen"
                );
                ok("ack after reopen", q2.ack(&d).await);
                assert!(!seen.contains(&idx), "message {idx} delivered twice");
                seen.push(idx);
                if seen.len() == 2 {
                    first_two_at = Some(reserved_at.elapsed());
                }
            }
            None => {
                assert!(
                    Instant::now() < deadline,
                    "after reopen only messages {seen:?} of 0..4 were delivered"
                );
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
        }
    }
    // The ready ones come first, in order; the others once their lease / backoff is over.
    let first_two_at = first_two_at.unwrap_or_default();
    assert!(
        first_two_at < hidden,
        "durability: the reopen took {first_two_at:?}, longer than the {hidden:?} the \
         reserved and nacked messages stay hidden; the order check could not be made"
    );
    assert_eq!(
        &seen[..2],
        &[2, 3],
        "ready messages first, in FIFO order: {seen:?}"
    );
    assert_empty(q2, "everything delivered after reopen").await;
    assert_empty(queue, "the old handle agrees").await;
}
