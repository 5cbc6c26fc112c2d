//! [`RedisQueue`]: the server and scale-out [`Queue`] on a shared Redis.
//!
//! # Layout
//! Every key of a queue lives under its namespace, wrapped in a hash tag (`{ns}:…`) so the
//! whole queue sits in one cluster slot and several queues (and test runs) share one Redis:
//!
//! | key | type | contents |
//! |---|---|---|
//! | `{ns}:ready` | ZSET | deliverable or delayed messages, scored by visible-at (ms) |
//! | `{ns}:leased` | ZSET | reserved messages, scored by lease expiry (ms) |
//! | `{ns}:dead` | ZSET | dead letters, scored by the time they died (ms) |
//! | `{ns}:msgs` | HASH | message id → JSON record (tenant, job, attempt, receipt, reason, state) |
//! | `{ns}:ids` | HASH | `(tenant, job)` → message id, for de-duplication and settling |
//! | `{ns}:seq` | STRING | counter that numbers message ids |
//!
//! A message id is its enqueue sequence number, zero-padded to 20 digits, so members with
//! equal scores sort in enqueue order: FIFO among messages that became ready at the same
//! millisecond. The records live in one hash rather than one hash per message so that every
//! key a script touches is declared in `KEYS` (as Redis requires of scripts).
//!
//! # Operations
//! Every operation is one Lua script (sent with `EVALSHA`, loaded again after `NOSCRIPT`, for
//! example after a Redis restart), so it is atomic with respect to every other worker on any
//! machine. Scripts read the clock with `redis.call('TIME')`, so leases and backoffs follow
//! the Redis server's clock, not the clocks of the many machines calling it.
//!
//! - `reserve` first moves leases that expired back to `ready` (scored by their expiry time,
//!   the moment they became deliverable again), or to `dead` when the expired delivery was
//!   the last allowed attempt; then it takes the lowest `(score, id)` of `ready` that is due,
//!   bumps its attempt and leases it under a fresh receipt.
//! - `ack`, `nack`, `extend` and `release` find the message by `(tenant, job)` and act only if
//!   the receipt matches and its lease has not expired; otherwise they fail with
//!   [`QueueError::StaleReceipt`].
//! - `stats` and `dead_letters` sweep expired leases first, as `reserve` does, so their counts
//!   agree with what `reserve` would hand out.
//!
//! The retry policy is the client's: every client of a namespace must use the same one.
//!
//! # Durability
//! Whether Redis keeps its data across a restart (RDB snapshots, AOF) is the operator's choice.
//! The queue does not depend on it: the Store holds every job's state, and
//! `Engine::reconcile` enqueues again every pending or processing job, so a Redis that lost
//! data (or was replaced) is refilled from the Store. While Redis is unreachable every call
//! fails with [`QueueError::Unavailable`]; the client reconnects on the next call.
//!
//! A call that times out may still have run on the server (a `reserve` whose answer was lost
//! leaves a lease that expires and is delivered again; an `ack` whose answer was lost may have
//! removed the message): delivery stays at-least-once.
//!
//! Needs Redis 5 or later (scripts that read `TIME` before writing replicate by effects).

use std::sync::LazyLock;
use std::time::Duration;

use ::redis::aio::{ConnectionManager, ConnectionManagerConfig};
use ::redis::{ErrorKind, RedisError, Script, ServerErrorKind};
use async_trait::async_trait;
use heimdex_core::model::{JobId, TenantId};
use heimdex_core::queue::{
    DeadLetter, Delivery, NackOutcome, Queue, QueueError, QueueMessage, QueueStats, RetryPolicy,
};

/// Backend name used in [`QueueError`].
const QUEUE: &str = "redis";

/// Expired leases moved back (or dead-lettered) by one `reserve`: bounds the work of a call
/// after many workers died at once; the next calls move the rest.
const SWEEP_PER_RESERVE: u32 = 100;

/// Private error of the Redis queue; callers see [`QueueError::Unavailable`] or
/// [`QueueError::Backend`].
#[derive(Debug, thiserror::Error)]
enum RedisQueueError {
    #[error(transparent)]
    Redis(#[from] RedisError),
    #[error("invalid configuration: {0}")]
    Config(String),
}

impl From<RedisQueueError> for QueueError {
    fn from(e: RedisQueueError) -> Self {
        let transient = matches!(&e, RedisQueueError::Redis(r) if is_unavailable(r));
        QueueError::backend(QUEUE, transient, e)
    }
}

/// Errors a later retry may not see: the connection (refused, dropped, timed out) or a
/// server that is loading, busy with a script, failing over or read-only.
fn is_unavailable(e: &RedisError) -> bool {
    e.is_io_error()
        || e.is_timeout()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || matches!(
            e.kind(),
            ErrorKind::Server(
                ServerErrorKind::BusyLoading
                    | ServerErrorKind::TryAgain
                    | ServerErrorKind::ClusterDown
                    | ServerErrorKind::MasterDown
                    | ServerErrorKind::ReadOnly
            )
        )
        || e.code() == Some("BUSY")
}

fn redis_err(e: RedisError) -> QueueError {
    RedisQueueError::Redis(e).into()
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Connection settings of a [`RedisQueue`]; the defaults suit a Redis on the same network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct RedisQueueOptions {
    /// Time allowed to open a connection.
    pub connect_timeout: Duration,
    /// Time allowed for one call's answer before it fails with [`QueueError::Unavailable`].
    pub response_timeout: Duration,
    /// Connection attempts made, with a short backoff, when a call finds the connection
    /// broken, before calls fail with [`QueueError::Unavailable`] (the next call tries again).
    pub reconnect_retries: usize,
}

impl Default for RedisQueueOptions {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(2),
            response_timeout: Duration::from_secs(10),
            reconnect_retries: 2,
        }
    }
}

impl RedisQueueOptions {
    /// With `timeout` to open a connection.
    #[must_use]
    pub fn with_connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// With `timeout` for one call's answer.
    #[must_use]
    pub fn with_response_timeout(mut self, timeout: Duration) -> Self {
        self.response_timeout = timeout;
        self
    }

    /// With `retries` reconnection attempts per broken connection.
    #[must_use]
    pub fn with_reconnect_retries(mut self, retries: usize) -> Self {
        self.reconnect_retries = retries;
        self
    }
}

/// The keys of one namespace.
#[derive(Debug, Clone)]
struct Keys {
    ready: String,
    leased: String,
    dead: String,
    msgs: String,
    ids: String,
    seq: String,
}

impl Keys {
    fn new(namespace: &str) -> Self {
        let key = |name: &str| format!("{{{namespace}}}:{name}");
        Self {
            ready: key("ready"),
            leased: key("leased"),
            dead: key("dead"),
            msgs: key("msgs"),
            ids: key("ids"),
            seq: key("seq"),
        }
    }
}

/// The `{ns}:ids` field of a message: unambiguous for any tenant and job strings.
fn job_key(message: &QueueMessage) -> String {
    let tenant = message.tenant.as_str();
    format!("{}:{tenant}{}", tenant.len(), message.job.as_str())
}

/// The [`Queue`] on Redis. Cheap to clone; clones share one multiplexed connection, which
/// reconnects by itself after Redis restarts or the network fails.
#[derive(Clone)]
pub struct RedisQueue {
    conn: ConnectionManager,
    namespace: String,
    keys: Keys,
    policy: RetryPolicy,
}

impl std::fmt::Debug for RedisQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisQueue")
            .field("namespace", &self.namespace)
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl RedisQueue {
    /// Connect to the Redis at `url` (`redis://[user:password@]host[:port][/db]`,
    /// `rediss://…` is not built in) and use the queue named `namespace` there, with the
    /// default [`RedisQueueOptions`].
    ///
    /// Fails with [`QueueError::Unavailable`] if Redis cannot be reached, and with
    /// [`QueueError::Backend`] for a bad URL, an empty namespace or one containing `{` or `}`,
    /// or a `policy` with `max_attempts` of 0.
    pub async fn connect(
        url: &str,
        namespace: &str,
        policy: RetryPolicy,
    ) -> Result<Self, QueueError> {
        Self::connect_with(url, namespace, policy, RedisQueueOptions::default()).await
    }

    /// [`connect`](Self::connect) with explicit connection settings.
    pub async fn connect_with(
        url: &str,
        namespace: &str,
        policy: RetryPolicy,
        options: RedisQueueOptions,
    ) -> Result<Self, QueueError> {
        if policy.max_attempts == 0 {
            return Err(RedisQueueError::Config("max_attempts must be at least 1".into()).into());
        }
        if namespace.is_empty() || namespace.contains(['{', '}']) {
            return Err(RedisQueueError::Config(format!(
                "namespace {namespace:?} must be non-empty and contain no '{{' or '}}'"
            ))
            .into());
        }
        let client = ::redis::Client::open(url).map_err(redis_err)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(options.connect_timeout))
            .set_response_timeout(Some(options.response_timeout))
            .set_number_of_retries(options.reconnect_retries)
            .set_min_delay(Duration::from_millis(50))
            .set_max_delay(Duration::from_millis(500));
        let conn = ConnectionManager::new_with_config(client, config)
            .await
            .map_err(redis_err)?;
        let queue = Self {
            conn,
            namespace: namespace.to_owned(),
            keys: Keys::new(namespace),
            policy,
        };
        // Load the scripts now, so a server that refuses them is found at start.
        let mut conn = queue.conn.clone();
        for script in SCRIPTS.all() {
            script
                .prepare_invoke()
                .load_async(&mut conn)
                .await
                .map_err(redis_err)?;
        }
        Ok(queue)
    }

    /// The namespace this queue's keys live under.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The answer of a settling script: 0 (no live lease under that receipt) is a stale receipt.
    fn settled(delivery: &Delivery, n: i64) -> Result<(), QueueError> {
        if n == 0 { Err(stale(delivery)) } else { Ok(()) }
    }
}

fn stale(delivery: &Delivery) -> QueueError {
    QueueError::StaleReceipt {
        job: delivery.message.job.to_string(),
    }
}

fn corrupt(what: String) -> QueueError {
    QueueError::Backend {
        queue: QUEUE,
        source: what.into(),
    }
}

/// Lua shared by every script. `rec` fields: `t` tenant, `j` job, `a` attempt, `r` receipt,
/// `why` last failure reason, `st` state (`ready`, `leased`, `dead`).
macro_rules! prelude {
    () => {
        r#"
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function get(msgs, id)
  local raw = redis.call('HGET', msgs, id)
  if not raw then return nil end
  return cjson.decode(raw)
end
local function put(msgs, id, rec)
  redis.call('HSET', msgs, id, cjson.encode(rec))
end
-- Move leases that expired by `now` back to ready, or to dead on the last attempt.
local function sweep(ready, leased, dead, msgs, now, max_attempts, limit)
  local due
  if limit then
    due = redis.call('ZRANGEBYSCORE', leased, '-inf', now, 'WITHSCORES', 'LIMIT', 0, limit)
  else
    due = redis.call('ZRANGEBYSCORE', leased, '-inf', now, 'WITHSCORES')
  end
  for i = 1, #due, 2 do
    local id, at = due[i], due[i + 1]
    redis.call('ZREM', leased, id)
    local rec = get(msgs, id)
    if rec then
      rec.r = nil
      if rec.a >= max_attempts then
        local why = 'lease expired on attempt ' .. rec.a .. ' of ' .. max_attempts
          .. ' (the worker stopped responding)'
        if rec.why then why = why .. '; previous failure: ' .. rec.why end
        rec.why = why
        rec.st = 'dead'
        redis.call('ZADD', dead, at, id)
      else
        rec.st = 'ready'
        redis.call('ZADD', ready, at, id)
      end
      put(msgs, id, rec)
    end
  end
end
-- The record of a live lease of (ids field, receipt), or nil when the receipt is stale.
local function leased_rec(leased, msgs, ids, key, receipt, now)
  local id = redis.call('HGET', ids, key)
  if not id then return nil end
  local exp = redis.call('ZSCORE', leased, id)
  if not exp or tonumber(exp) <= now then return nil end
  local rec = get(msgs, id)
  if not rec or rec.st ~= 'leased' or rec.r ~= receipt then return nil end
  return id, rec
end
"#
    };
}

/// The scripts, hashed once per process.
struct Scripts {
    enqueue: Script,
    reserve: Script,
    ack: Script,
    nack: Script,
    release: Script,
    extend: Script,
    stats: Script,
    dead_letters: Script,
}

impl Scripts {
    fn all(&self) -> [&Script; 8] {
        [
            &self.enqueue,
            &self.reserve,
            &self.ack,
            &self.nack,
            &self.release,
            &self.extend,
            &self.stats,
            &self.dead_letters,
        ]
    }
}

static SCRIPTS: LazyLock<Scripts> = LazyLock::new(|| Scripts {
    // KEYS: ready, dead, msgs, ids, seq. ARGV: ids field, tenant, job.
    // New job: ready now. Dead job: revived as a new message at attempt 0. Queued: no-op.
    enqueue: Script::new(concat!(
        prelude!(),
        r#"
local ready, dead, msgs, ids, seq = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local old = redis.call('HGET', ids, ARGV[1])
if old then
  local rec = get(msgs, old)
  if rec and rec.st ~= 'dead' then return 0 end
  redis.call('ZREM', dead, old)
  redis.call('HDEL', msgs, old)
end
local id = string.format('%020d', redis.call('INCR', seq))
redis.call('HSET', ids, ARGV[1], id)
put(msgs, id, {t = ARGV[2], j = ARGV[3], a = 0, st = 'ready'})
redis.call('ZADD', ready, now_ms(), id)
return 1
"#
    )),
    // KEYS: ready, leased, dead, msgs. ARGV: visibility ms, receipt, max attempts, sweep limit.
    reserve: Script::new(concat!(
        prelude!(),
        r#"
local ready, leased, dead, msgs = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local now = now_ms()
sweep(ready, leased, dead, msgs, now, tonumber(ARGV[3]), tonumber(ARGV[4]))
local due = redis.call('ZRANGEBYSCORE', ready, '-inf', now, 'LIMIT', 0, 1)
if #due == 0 then return false end
local id = due[1]
redis.call('ZREM', ready, id)
local rec = get(msgs, id)
if not rec then return redis.error_reply('heimdex: message ' .. id .. ' has no record') end
rec.a = rec.a + 1
rec.r = ARGV[2]
rec.st = 'leased'
put(msgs, id, rec)
redis.call('ZADD', leased, now + tonumber(ARGV[1]), id)
return {rec.t, rec.j, rec.a}
"#
    )),
    // KEYS: leased, msgs, ids. ARGV: ids field, receipt.
    ack: Script::new(concat!(
        prelude!(),
        r#"
local leased, msgs, ids = KEYS[1], KEYS[2], KEYS[3]
local id = leased_rec(leased, msgs, ids, ARGV[1], ARGV[2], now_ms())
if not id then return 0 end
redis.call('ZREM', leased, id)
redis.call('HDEL', msgs, id)
redis.call('HDEL', ids, ARGV[1])
return 1
"#
    )),
    // KEYS: ready, leased, dead, msgs, ids. ARGV: ids field, receipt, attempt, reason,
    // retry delay ms (empty: dead-letter).
    nack: Script::new(concat!(
        prelude!(),
        r#"
local ready, leased, dead, msgs, ids = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local now = now_ms()
local id, rec = leased_rec(leased, msgs, ids, ARGV[1], ARGV[2], now)
if not id or rec.a ~= tonumber(ARGV[3]) then return 0 end
redis.call('ZREM', leased, id)
rec.r = nil
rec.why = ARGV[4]
if ARGV[5] == '' then
  rec.st = 'dead'
  redis.call('ZADD', dead, now, id)
else
  rec.st = 'ready'
  redis.call('ZADD', ready, now + tonumber(ARGV[5]), id)
end
put(msgs, id, rec)
return 1
"#
    )),
    // KEYS: ready, leased, msgs, ids. ARGV: ids field, receipt, attempt.
    release: Script::new(concat!(
        prelude!(),
        r#"
local ready, leased, msgs, ids = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local now = now_ms()
local id, rec = leased_rec(leased, msgs, ids, ARGV[1], ARGV[2], now)
if not id or rec.a ~= tonumber(ARGV[3]) then return 0 end
redis.call('ZREM', leased, id)
rec.r = nil
rec.a = math.max(rec.a - 1, 0)
rec.st = 'ready'
put(msgs, id, rec)
redis.call('ZADD', ready, now, id)
return 1
"#
    )),
    // KEYS: leased, msgs, ids. ARGV: ids field, receipt, visibility ms.
    extend: Script::new(concat!(
        prelude!(),
        r#"
local leased, msgs, ids = KEYS[1], KEYS[2], KEYS[3]
local now = now_ms()
local id = leased_rec(leased, msgs, ids, ARGV[1], ARGV[2], now)
if not id then return 0 end
redis.call('ZADD', leased, 'XX', now + tonumber(ARGV[3]), id)
return 1
"#
    )),
    // KEYS: ready, leased, dead, msgs. ARGV: max attempts.
    // An expired lease is deliverable again (swept into ready), so it counts as ready.
    stats: Script::new(concat!(
        prelude!(),
        r#"
local ready, leased, dead, msgs = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local now = now_ms()
sweep(ready, leased, dead, msgs, now, tonumber(ARGV[1]), nil)
return {
  redis.call('ZCOUNT', ready, '-inf', now),
  redis.call('ZCOUNT', ready, '(' .. now, '+inf'),
  redis.call('ZCARD', leased),
  redis.call('ZCARD', dead),
}
"#
    )),
    // KEYS: ready, leased, dead, msgs. ARGV: max attempts.
    // Dead letters oldest first: {{tenant, job, reason, attempts}, ...}.
    dead_letters: Script::new(concat!(
        prelude!(),
        r#"
local ready, leased, dead, msgs = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
sweep(ready, leased, dead, msgs, now_ms(), tonumber(ARGV[1]), nil)
local out = {}
for _, id in ipairs(redis.call('ZRANGE', dead, 0, -1)) do
  local rec = get(msgs, id)
  if rec then
    out[#out + 1] = {rec.t, rec.j, rec.why or '', rec.a}
  end
end
return out
"#
    )),
});

fn attempt(n: i64) -> Result<u32, QueueError> {
    u32::try_from(n).map_err(|_| corrupt(format!("attempt {n} out of range")))
}

fn count(n: i64) -> Result<u64, QueueError> {
    u64::try_from(n).map_err(|_| corrupt(format!("count {n} out of range")))
}

#[async_trait]
impl Queue for RedisQueue {
    async fn enqueue(&self, message: &QueueMessage) -> Result<(), QueueError> {
        let k = &self.keys;
        let _added: i64 = SCRIPTS
            .enqueue
            .key(&k.ready)
            .key(&k.dead)
            .key(&k.msgs)
            .key(&k.ids)
            .key(&k.seq)
            .arg(job_key(message))
            .arg(message.tenant.as_str())
            .arg(message.job.as_str())
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(redis_err)?;
        Ok(())
    }

    async fn reserve(&self, visibility: Duration) -> Result<Option<Delivery>, QueueError> {
        let k = &self.keys;
        let receipt = uuid::Uuid::new_v4().simple().to_string();
        let got: Option<(String, String, i64)> = SCRIPTS
            .reserve
            .key(&k.ready)
            .key(&k.leased)
            .key(&k.dead)
            .key(&k.msgs)
            .arg(millis(visibility))
            .arg(&receipt)
            .arg(self.policy.max_attempts)
            .arg(SWEEP_PER_RESERVE)
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(redis_err)?;
        let Some((tenant, job, n)) = got else {
            return Ok(None);
        };
        Ok(Some(Delivery {
            message: QueueMessage {
                tenant: TenantId::new(tenant),
                job: JobId::new(job),
            },
            receipt,
            attempt: attempt(n)?,
        }))
    }

    async fn ack(&self, delivery: &Delivery) -> Result<(), QueueError> {
        let k = &self.keys;
        let n: i64 = SCRIPTS
            .ack
            .key(&k.leased)
            .key(&k.msgs)
            .key(&k.ids)
            .arg(job_key(&delivery.message))
            .arg(&delivery.receipt)
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(redis_err)?;
        Self::settled(delivery, n)
    }

    async fn nack(&self, delivery: &Delivery, reason: &str) -> Result<NackOutcome, QueueError> {
        let k = &self.keys;
        let (outcome, delay) = if delivery.attempt >= self.policy.max_attempts {
            (NackOutcome::DeadLettered, String::new())
        } else {
            let after = self.policy.backoff(delivery.attempt);
            (NackOutcome::Retry { after }, millis(after).to_string())
        };
        let n: i64 = SCRIPTS
            .nack
            .key(&k.ready)
            .key(&k.leased)
            .key(&k.dead)
            .key(&k.msgs)
            .key(&k.ids)
            .arg(job_key(&delivery.message))
            .arg(&delivery.receipt)
            .arg(delivery.attempt)
            .arg(reason)
            .arg(delay)
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(redis_err)?;
        Self::settled(delivery, n)?;
        Ok(outcome)
    }

    async fn release(&self, delivery: &Delivery) -> Result<(), QueueError> {
        let k = &self.keys;
        let n: i64 = SCRIPTS
            .release
            .key(&k.ready)
            .key(&k.leased)
            .key(&k.msgs)
            .key(&k.ids)
            .arg(job_key(&delivery.message))
            .arg(&delivery.receipt)
            .arg(delivery.attempt)
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(redis_err)?;
        Self::settled(delivery, n)
    }

    async fn extend(&self, delivery: &Delivery, visibility: Duration) -> Result<(), QueueError> {
        let k = &self.keys;
        let n: i64 = SCRIPTS
            .extend
            .key(&k.leased)
            .key(&k.msgs)
            .key(&k.ids)
            .arg(job_key(&delivery.message))
            .arg(&delivery.receipt)
            .arg(millis(visibility))
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(redis_err)?;
        Self::settled(delivery, n)
    }

    async fn stats(&self) -> Result<QueueStats, QueueError> {
        let k = &self.keys;
        let (ready, delayed, in_flight, dead): (i64, i64, i64, i64) = SCRIPTS
            .stats
            .key(&k.ready)
            .key(&k.leased)
            .key(&k.dead)
            .key(&k.msgs)
            .arg(self.policy.max_attempts)
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(redis_err)?;
        Ok(QueueStats {
            ready: count(ready)?,
            delayed: count(delayed)?,
            in_flight: count(in_flight)?,
            dead: count(dead)?,
        })
    }

    async fn dead_letters(&self) -> Result<Vec<DeadLetter>, QueueError> {
        let k = &self.keys;
        let rows: Vec<(String, String, String, i64)> = SCRIPTS
            .dead_letters
            .key(&k.ready)
            .key(&k.leased)
            .key(&k.dead)
            .key(&k.msgs)
            .arg(self.policy.max_attempts)
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(redis_err)?;
        rows.into_iter()
            .map(|(tenant, job, reason, n)| {
                Ok(DeadLetter {
                    message: QueueMessage {
                        tenant: TenantId::new(tenant),
                        job: JobId::new(job),
                    },
                    reason,
                    attempts: attempt(n)?,
                })
            })
            .collect()
    }

    fn retry_policy(&self) -> RetryPolicy {
        self.policy
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_keys_are_unambiguous() {
        let m = |t: &str, j: &str| QueueMessage {
            tenant: TenantId::new(t),
            job: JobId::new(j),
        };
        assert_ne!(job_key(&m("ab", "c")), job_key(&m("a", "bc")));
        assert_eq!(job_key(&m("ab", "c")), "2:abc");
    }

    #[test]
    fn keys_share_one_hash_tag() {
        let k = Keys::new("jobs");
        for key in [&k.ready, &k.leased, &k.dead, &k.msgs, &k.ids, &k.seq] {
            assert!(key.starts_with("{jobs}:"), "{key}");
        }
    }
}
