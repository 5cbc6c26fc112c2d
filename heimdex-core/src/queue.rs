//! The [`Queue`] trait: at-least-once job delivery with retries and dead-lettering.

use std::fmt::Debug;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::error::ErrorKind;
use crate::model::{JobId, TenantId};

/// Errors of any queue.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum QueueError {
    /// The delivery's lease expired and the message was (or may be) delivered again; the
    /// holder of this receipt must not ack or nack it any more.
    #[error("stale receipt for job {job}: its lease expired or it was already settled")]
    StaleReceipt {
        /// Job id of the message.
        job: String,
    },
    /// The backend is unreachable, busy or timed out; retrying later may succeed.
    #[error("{queue} unavailable: {source}")]
    Unavailable {
        /// Backend name.
        queue: &'static str,
        /// Underlying error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// Any other backend error.
    #[error("{queue} error: {source}")]
    Backend {
        /// Backend name.
        queue: &'static str,
        /// Underlying error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl QueueError {
    /// A backend's own error: [`QueueError::Unavailable`] when `transient` (retrying later
    /// may succeed), else [`QueueError::Backend`]. Backends decide `transient` from their
    /// typed errors and convert with this one function.
    pub fn backend(
        queue: &'static str,
        transient: bool,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        let source = Box::new(source);
        if transient {
            Self::Unavailable { queue, source }
        } else {
            Self::Backend { queue, source }
        }
    }

    /// The category of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::StaleReceipt { .. } => ErrorKind::Conflict,
            Self::Unavailable { .. } => ErrorKind::Unavailable,
            Self::Backend { .. } => ErrorKind::Internal,
        }
    }
}

/// A message: which job to run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueMessage {
    /// Tenant of the job.
    pub tenant: TenantId,
    /// The job.
    pub job: JobId,
}

/// A reserved message. Settle it with [`Queue::ack`] or [`Queue::nack`] before its lease ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// The message.
    pub message: QueueMessage,
    /// Opaque receipt identifying this delivery (not the message).
    pub receipt: String,
    /// 1 on first delivery, incremented by every redelivery (nack or expired lease).
    pub attempt: u32,
}

/// Retry behaviour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Deliveries before a message is dead-lettered.
    pub max_attempts: u32,
    /// Delay before the first retry; doubles per attempt.
    pub base_backoff: Duration,
    /// Upper bound of the delay.
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 3,
            base_backoff: Duration::from_secs(2),
            max_backoff: Duration::from_secs(300),
        }
    }
}

impl RetryPolicy {
    /// Delay before retrying after failed attempt number `attempt` (1-based).
    pub fn backoff(&self, attempt: u32) -> Duration {
        let exp = attempt.saturating_sub(1).min(20);
        self.base_backoff
            .saturating_mul(1u32 << exp)
            .min(self.max_backoff)
    }
}

/// What a nack did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NackOutcome {
    /// Will be delivered again after `after`.
    Retry {
        /// Delay before redelivery.
        after: Duration,
    },
    /// Attempts exhausted (or retry not wanted): moved to the dead-letter set.
    DeadLettered,
}

/// Counts of messages by state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueStats {
    /// Deliverable now.
    pub ready: u64,
    /// Waiting for a retry backoff.
    pub delayed: u64,
    /// Reserved, lease not expired.
    pub in_flight: u64,
    /// Dead-lettered.
    pub dead: u64,
}

/// A dead-lettered message and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    /// The message.
    pub message: QueueMessage,
    /// Last failure reason.
    pub reason: String,
    /// Deliveries made.
    pub attempts: u32,
}

/// At-least-once job delivery.
///
/// # Contract
/// - [`enqueue`](Queue::enqueue) makes a message deliverable; enqueuing a job id that is
///   already queued (not dead) is a no-op, so producers may retry safely.
/// - [`reserve`](Queue::reserve) returns one deliverable message or `None` without waiting.
///   Order is FIFO among messages that became ready at the same time. A reserved message is
///   invisible until its lease (`visibility`) ends; then it is delivered again with
///   `attempt + 1` — this is how jobs of dead workers are reclaimed. A lease that expires on
///   the last allowed attempt dead-letters the message instead (a job that kills its worker
///   every time must not loop forever).
/// - Enqueuing a dead-lettered job revives it, starting again at attempt 1.
/// - [`ack`](Queue::ack) removes the message. [`nack`](Queue::nack) schedules a retry after
///   [`RetryPolicy::backoff`] or dead-letters it once `attempt >= max_attempts`. Settling with
///   a receipt whose lease expired (or that was settled) fails with
///   [`QueueError::StaleReceipt`].
/// - [`release`](Queue::release) returns a delivery unprocessed: deliverable at once, its
///   attempt not counted. A stale receipt fails as for `ack`.
/// - Durable backends keep every message across restarts of the process.
/// - A backend that is busy, unreachable or timed out answers [`QueueError::Unavailable`].
#[async_trait]
pub trait Queue: Send + Sync + Debug {
    /// Add a message.
    async fn enqueue(&self, message: &QueueMessage) -> Result<(), QueueError>;
    /// Take one deliverable message for `visibility`.
    async fn reserve(&self, visibility: Duration) -> Result<Option<Delivery>, QueueError>;
    /// Done: remove the message.
    async fn ack(&self, delivery: &Delivery) -> Result<(), QueueError>;
    /// Failed: retry later or dead-letter; `reason` is kept with the message.
    async fn nack(&self, delivery: &Delivery, reason: &str) -> Result<NackOutcome, QueueError>;
    /// Hand a delivery back unprocessed (a worker shutting down): the message is deliverable
    /// again at once and this delivery does not count as an attempt.
    async fn release(&self, delivery: &Delivery) -> Result<(), QueueError>;
    /// Extend the lease of a delivery still being worked on.
    async fn extend(&self, delivery: &Delivery, visibility: Duration) -> Result<(), QueueError>;
    /// Counts by state.
    async fn stats(&self) -> Result<QueueStats, QueueError>;
    /// Dead-lettered messages, oldest first.
    async fn dead_letters(&self) -> Result<Vec<DeadLetter>, QueueError>;
    /// The retry policy in force.
    fn retry_policy(&self) -> RetryPolicy;
}
