//! [`LocalQueue`]: the embedded [`Queue`], persisted in the store's SQLite database.
//!
//! One row per `(tenant, job)` in `queue_messages` (see `migrations/sqlite/0002_queue.sql`).
//! Every operation is a single SQL statement, so it is atomic with respect to other workers of
//! the same process and of other processes on the same file, and a crash loses nothing: a
//! message reserved by a worker that died becomes deliverable again when its lease ends.
//!
//! - `ready` rows are deliverable once `visible_at_ms <= now` (a later time is a retry
//!   backoff); `reserved` rows are leased until `visible_at_ms`, after which they are
//!   deliverable again with `attempt + 1`; `dead` rows are dead letters.
//! - [`reserve`](Queue::reserve) picks the row with the smallest `(visible_at_ms, seq)` among the
//!   deliverable ones, so messages come out in the order they became deliverable, FIFO by
//!   enqueue order among equals.
//! - A lease that expires on the last allowed attempt dead-letters the message instead of
//!   redelivering it: a job that kills its worker every time (out of memory, a decoder crash)
//!   must not loop forever.
//! - Settling (`ack`, `nack`, `extend`) matches the receipt *and* requires an unexpired lease.
//!
//! Workers that find the queue empty call [`LocalQueue::wait_for_work`], which returns as soon
//! as a message is enqueued in this process or the next delayed message / lease comes due.

use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use heimdex_core::model::{JobId, TenantId};
use heimdex_core::queue::{
    DeadLetter, Delivery, NackOutcome, Queue, QueueError, QueueMessage, QueueStats, RetryPolicy,
};
use heimdex_core::time_util::now_ms;
use sqlx::Row;
use sqlx::sqlite::{SqlitePool, SqliteRow};
use tokio::sync::Notify;

use crate::store::SqliteStore;

/// Backend name used in [`QueueError::Backend`].
const QUEUE: &str = "local";

/// Private error of the local queue; callers see [`QueueError::Backend`].
#[derive(Debug, thiserror::Error)]
enum LocalQueueError {
    #[error(transparent)]
    Sqlx(#[from] sqlx::Error),
    #[error("invalid retry policy: {0}")]
    Policy(&'static str),
    #[error("corrupt queue row: {0}")]
    Corrupt(String),
}

impl From<LocalQueueError> for QueueError {
    fn from(e: LocalQueueError) -> Self {
        let transient =
            matches!(&e, LocalQueueError::Sqlx(s) if crate::store::sqlite::is_transient(s));
        QueueError::backend(QUEUE, transient, e)
    }
}

fn db(e: sqlx::Error) -> QueueError {
    LocalQueueError::Sqlx(e).into()
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// The embedded, persisted [`Queue`]. Cheap to clone; clones share the wake-up signal.
#[derive(Debug, Clone)]
pub struct LocalQueue {
    pool: SqlitePool,
    policy: RetryPolicy,
    notify: Arc<Notify>,
}

impl LocalQueue {
    /// A queue in the database of `store` (whose migrations created `queue_messages`).
    ///
    /// Fails if `policy.max_attempts` is 0 or the table cannot be read.
    pub async fn new(store: &SqliteStore, policy: RetryPolicy) -> Result<Self, QueueError> {
        if policy.max_attempts == 0 {
            return Err(LocalQueueError::Policy("max_attempts must be at least 1").into());
        }
        let pool = store.pool().clone();
        sqlx::query("SELECT 1 FROM queue_messages LIMIT 1")
            .fetch_optional(&pool)
            .await
            .map_err(db)?;
        Ok(Self {
            pool,
            policy,
            notify: Arc::new(Notify::new()),
        })
    }

    /// Wait until there may be work: a message was enqueued through this queue (or a clone),
    /// the earliest delayed message or expired lease comes due, or `timeout` passes —
    /// whichever is first. Returns at once if something is deliverable now.
    ///
    /// Messages enqueued by another process on the same file are noticed within `timeout`.
    /// Never fails: if the database cannot be asked, it just waits for `timeout` or a wake-up.
    pub async fn wait_for_work(&self, timeout: Duration) {
        // Register for wake-ups before looking, so an enqueue in between is not missed.
        let mut notified = pin!(self.notify.notified());
        notified.as_mut().enable();
        let wait = match self.next_due_in().await {
            Ok(Some(due)) => due.min(timeout),
            Ok(None) => timeout,
            Err(e) => {
                tracing::warn!(error = %e, "local queue: cannot read the next due time");
                timeout
            }
        };
        if wait.is_zero() {
            return;
        }
        let _ = tokio::time::timeout(wait, notified).await;
    }

    /// Hand every reserved message back as if it had not been delivered (deliverable at once,
    /// the interrupted delivery not counted as an attempt). Returns how many.
    ///
    /// Only for a caller that knows no worker holds a lease: the embedded engine calls it
    /// while it holds the home's writer lock, so every reservation it finds belongs to a
    /// process that died (killed, crashed, powered off) in the middle of a job. Without this,
    /// such jobs would wait for their lease to expire, and a user who interrupts `heimdex
    /// index` repeatedly would see jobs dead-lettered for attempts that never failed.
    pub async fn reclaim_abandoned(&self) -> Result<u64, QueueError> {
        let n = sqlx::query(
            "UPDATE queue_messages
             SET state = 'ready', attempt = MAX(attempt - 1, 0), visible_at_ms = ?1,
                 receipt = NULL
             WHERE state = 'reserved'",
        )
        .bind(now_ms())
        .execute(&self.pool)
        .await
        .map_err(db)?
        .rows_affected();
        Ok(n)
    }

    /// Time until the earliest ready-or-leased message becomes deliverable (zero if one is
    /// deliverable now), or `None` if there is none.
    async fn next_due_in(&self) -> Result<Option<Duration>, QueueError> {
        let next: Option<i64> = sqlx::query_scalar(
            "SELECT MIN(visible_at_ms) FROM queue_messages WHERE state IN ('ready', 'reserved')",
        )
        .fetch_one(&self.pool)
        .await
        .map_err(db)?;
        Ok(next.map(|at| {
            let ms = at.saturating_sub(now_ms()).max(0);
            Duration::from_millis(u64::try_from(ms).unwrap_or(0))
        }))
    }

    /// Dead-letter messages whose lease expired on their last allowed attempt.
    async fn sweep_exhausted(&self, now: i64) -> Result<(), QueueError> {
        sqlx::query(
            "UPDATE queue_messages
             SET state = 'dead', receipt = NULL, dead_ms = ?1,
                 reason = 'lease expired on attempt ' || attempt || ' of ' || ?2
                          || ' (the worker stopped responding)'
                          || COALESCE('; previous failure: ' || reason, '')
             WHERE state = 'reserved' AND visible_at_ms <= ?1 AND attempt >= ?2",
        )
        .bind(now)
        .bind(i64::from(self.policy.max_attempts))
        .execute(&self.pool)
        .await
        .map_err(db)?;
        Ok(())
    }
}

fn message_from_row(row: &SqliteRow) -> Result<QueueMessage, QueueError> {
    let tenant: String = row.try_get("tenant").map_err(corrupt)?;
    let job: String = row.try_get("job").map_err(corrupt)?;
    Ok(QueueMessage {
        tenant: TenantId::new(tenant),
        job: JobId::new(job),
    })
}

fn attempt_from_row(row: &SqliteRow) -> Result<u32, QueueError> {
    let attempt: i64 = row.try_get("attempt").map_err(corrupt)?;
    u32::try_from(attempt)
        .map_err(|_| LocalQueueError::Corrupt(format!("attempt {attempt}")).into())
}

fn corrupt(e: sqlx::Error) -> QueueError {
    LocalQueueError::Corrupt(e.to_string()).into()
}

fn count(row: &SqliteRow, col: &str) -> Result<u64, QueueError> {
    let n: i64 = row.try_get(col).map_err(corrupt)?;
    u64::try_from(n).map_err(|_| LocalQueueError::Corrupt(format!("{col} = {n}")).into())
}

#[async_trait]
impl Queue for LocalQueue {
    async fn enqueue(&self, message: &QueueMessage) -> Result<(), QueueError> {
        let now = now_ms();
        // New job: insert ready. Dead job: revive from attempt 0. Queued job: no-op.
        sqlx::query(
            "INSERT INTO queue_messages (tenant, job, state, attempt, visible_at_ms, enqueued_ms)
             VALUES (?1, ?2, 'ready', 0, ?3, ?3)
             ON CONFLICT (tenant, job) DO UPDATE SET
                 state = 'ready', attempt = 0, visible_at_ms = excluded.visible_at_ms,
                 receipt = NULL, reason = NULL, dead_ms = NULL,
                 enqueued_ms = excluded.enqueued_ms
             WHERE queue_messages.state = 'dead'",
        )
        .bind(message.tenant.as_str())
        .bind(message.job.as_str())
        .bind(now)
        .execute(&self.pool)
        .await
        .map_err(db)?;
        self.notify.notify_one();
        Ok(())
    }

    async fn reserve(&self, visibility: Duration) -> Result<Option<Delivery>, QueueError> {
        let now = now_ms();
        self.sweep_exhausted(now).await?;
        let receipt = uuid::Uuid::new_v4().to_string();
        let row = sqlx::query(
            "UPDATE queue_messages
             SET state = 'reserved', attempt = attempt + 1, receipt = ?1, visible_at_ms = ?2
             WHERE seq = (
                 SELECT seq FROM queue_messages
                 WHERE state IN ('ready', 'reserved') AND visible_at_ms <= ?3
                   AND NOT (state = 'reserved' AND attempt >= ?4)
                 ORDER BY visible_at_ms, seq
                 LIMIT 1)
             RETURNING tenant, job, attempt",
        )
        .bind(&receipt)
        .bind(now.saturating_add(millis(visibility)))
        .bind(now)
        .bind(i64::from(self.policy.max_attempts))
        .fetch_optional(&self.pool)
        .await
        .map_err(db)?;
        let Some(row) = row else {
            return Ok(None);
        };
        Ok(Some(Delivery {
            message: message_from_row(&row)?,
            receipt,
            attempt: attempt_from_row(&row)?,
        }))
    }

    async fn ack(&self, delivery: &Delivery) -> Result<(), QueueError> {
        let deleted = sqlx::query(
            "DELETE FROM queue_messages
             WHERE tenant = ?1 AND job = ?2 AND receipt = ?3 AND state = 'reserved'
               AND visible_at_ms > ?4",
        )
        .bind(delivery.message.tenant.as_str())
        .bind(delivery.message.job.as_str())
        .bind(&delivery.receipt)
        .bind(now_ms())
        .execute(&self.pool)
        .await
        .map_err(db)?
        .rows_affected();
        if deleted == 0 {
            return Err(stale(delivery));
        }
        Ok(())
    }

    async fn nack(&self, delivery: &Delivery, reason: &str) -> Result<NackOutcome, QueueError> {
        let now = now_ms();
        let (state, outcome, visible_at) = if delivery.attempt >= self.policy.max_attempts {
            ("dead", NackOutcome::DeadLettered, now)
        } else {
            let after = self.policy.backoff(delivery.attempt);
            (
                "ready",
                NackOutcome::Retry { after },
                now.saturating_add(millis(after)),
            )
        };
        let dead_ms = (state == "dead").then_some(now);
        let updated = sqlx::query(
            "UPDATE queue_messages
             SET state = ?1, visible_at_ms = ?2, receipt = NULL, reason = ?3, dead_ms = ?4
             WHERE tenant = ?5 AND job = ?6 AND receipt = ?7 AND attempt = ?8
               AND state = 'reserved' AND visible_at_ms > ?9",
        )
        .bind(state)
        .bind(visible_at)
        .bind(reason)
        .bind(dead_ms)
        .bind(delivery.message.tenant.as_str())
        .bind(delivery.message.job.as_str())
        .bind(&delivery.receipt)
        .bind(i64::from(delivery.attempt))
        .bind(now)
        .execute(&self.pool)
        .await
        .map_err(db)?
        .rows_affected();
        if updated == 0 {
            return Err(stale(delivery));
        }
        Ok(outcome)
    }

    async fn release(&self, delivery: &Delivery) -> Result<(), QueueError> {
        let now = now_ms();
        let updated = sqlx::query(
            "UPDATE queue_messages
             SET state = 'ready', attempt = attempt - 1, visible_at_ms = ?1, receipt = NULL
             WHERE tenant = ?2 AND job = ?3 AND receipt = ?4 AND attempt = ?5
               AND state = 'reserved' AND visible_at_ms > ?1",
        )
        .bind(now)
        .bind(delivery.message.tenant.as_str())
        .bind(delivery.message.job.as_str())
        .bind(&delivery.receipt)
        .bind(i64::from(delivery.attempt))
        .execute(&self.pool)
        .await
        .map_err(db)?
        .rows_affected();
        if updated == 0 {
            return Err(stale(delivery));
        }
        self.notify.notify_one();
        Ok(())
    }

    async fn extend(&self, delivery: &Delivery, visibility: Duration) -> Result<(), QueueError> {
        let now = now_ms();
        let updated = sqlx::query(
            "UPDATE queue_messages SET visible_at_ms = ?1
             WHERE tenant = ?2 AND job = ?3 AND receipt = ?4 AND state = 'reserved'
               AND visible_at_ms > ?5",
        )
        .bind(now.saturating_add(millis(visibility)))
        .bind(delivery.message.tenant.as_str())
        .bind(delivery.message.job.as_str())
        .bind(&delivery.receipt)
        .bind(now)
        .execute(&self.pool)
        .await
        .map_err(db)?
        .rows_affected();
        if updated == 0 {
            return Err(stale(delivery));
        }
        Ok(())
    }

    async fn stats(&self) -> Result<QueueStats, QueueError> {
        let now = now_ms();
        self.sweep_exhausted(now).await?;
        // An expired lease is deliverable again, so it counts as ready.
        let row = sqlx::query(
            "SELECT
                 COALESCE(SUM(state = 'ready' AND visible_at_ms <= ?1), 0)
                   + COALESCE(SUM(state = 'reserved' AND visible_at_ms <= ?1), 0) AS ready,
                 COALESCE(SUM(state = 'ready' AND visible_at_ms > ?1), 0) AS delayed,
                 COALESCE(SUM(state = 'reserved' AND visible_at_ms > ?1), 0) AS in_flight,
                 COALESCE(SUM(state = 'dead'), 0) AS dead
             FROM queue_messages",
        )
        .bind(now)
        .fetch_one(&self.pool)
        .await
        .map_err(db)?;
        Ok(QueueStats {
            ready: count(&row, "ready")?,
            delayed: count(&row, "delayed")?,
            in_flight: count(&row, "in_flight")?,
            dead: count(&row, "dead")?,
        })
    }

    async fn dead_letters(&self) -> Result<Vec<DeadLetter>, QueueError> {
        self.sweep_exhausted(now_ms()).await?;
        let rows = sqlx::query(
            "SELECT tenant, job, reason, attempt FROM queue_messages
             WHERE state = 'dead' ORDER BY dead_ms, seq",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        rows.iter()
            .map(|row| {
                let reason: Option<String> = row.try_get("reason").map_err(corrupt)?;
                Ok(DeadLetter {
                    message: message_from_row(row)?,
                    reason: reason.unwrap_or_default(),
                    attempts: attempt_from_row(row)?,
                })
            })
            .collect()
    }

    fn retry_policy(&self) -> RetryPolicy {
        self.policy
    }
}

fn stale(delivery: &Delivery) -> QueueError {
    QueueError::StaleReceipt {
        job: delivery.message.job.to_string(),
    }
}
