//! Queries that arrive together are encoded together. A text model runs one batch of short
//! queries much faster than the same queries one call at a time (the per-call cost of a
//! small transformer dominates short inputs), so under load the encoder keeps up with more
//! requests. There is no timer: the first query of an idle server is encoded at once, and
//! the queries that arrive while a batch runs form the next batch.

use std::sync::{Arc, Mutex};

use heimdex_core::extractor::{ExtractError, QueryEncoder};
use tokio::sync::oneshot;

/// Largest batch handed to the encoder at once.
const MAX_BATCH: usize = 32;

type Reply = oneshot::Sender<Option<Vec<f32>>>;

/// Batches concurrent encodes for one encoder.
#[derive(Debug)]
pub(crate) struct QueryBatcher {
    encoder: Arc<dyn QueryEncoder>,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// A drain task is running.
    running: bool,
    waiting: Vec<(String, Reply)>,
    batches: u64,
    queries: u64,
}

impl QueryBatcher {
    pub(crate) fn new(encoder: Arc<dyn QueryEncoder>) -> Arc<Self> {
        Arc::new(Self {
            encoder,
            state: Mutex::new(State::default()),
        })
    }

    /// The space of the encoder.
    pub(crate) fn space(&self) -> &str {
        self.encoder.space()
    }

    /// Encode `text`, in a batch with whatever other queries are waiting.
    pub(crate) async fn encode(self: &Arc<Self>, text: &str) -> Result<Vec<f32>, ExtractError> {
        let (tx, rx) = oneshot::channel();
        let start = {
            let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
            s.waiting.push((text.to_owned(), tx));
            !std::mem::replace(&mut s.running, true)
        };
        if start {
            tokio::spawn(Arc::clone(self).drain());
        }
        match rx.await {
            Ok(Some(v)) => Ok(v),
            // The batch failed (or its task died): encode alone, for this query's own error.
            _ => {
                let encoder = Arc::clone(&self.encoder);
                let text = text.to_owned();
                tokio::task::spawn_blocking(move || encoder.encode(&text))
                    .await
                    .map_err(|e| ExtractError::Failed(format!("query encoder task: {e}")))?
            }
        }
    }

    /// Encode waiting queries batch by batch until none is left.
    async fn drain(self: Arc<Self>) {
        loop {
            let batch: Vec<(String, Reply)> = {
                let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
                if s.waiting.is_empty() {
                    s.running = false;
                    return;
                }
                let n = s.waiting.len().min(MAX_BATCH);
                s.batches += 1;
                s.queries += n as u64;
                s.waiting.drain(..n).collect()
            };
            let texts: Vec<String> = batch.iter().map(|(t, _)| t.clone()).collect();
            let encoder = Arc::clone(&self.encoder);
            let vectors = tokio::task::spawn_blocking(move || {
                let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
                encoder.encode_batch(&refs)
            })
            .await;
            match vectors {
                Ok(Ok(vectors)) if vectors.len() == batch.len() => {
                    for ((_, reply), v) in batch.into_iter().zip(vectors) {
                        let _ = reply.send(Some(v));
                    }
                }
                other => {
                    if let Ok(Err(e)) = &other {
                        tracing::debug!(error = %e, "query batch failed; encoding one by one");
                    }
                    for (_, reply) in batch {
                        let _ = reply.send(None);
                    }
                }
            }
        }
    }

    /// (batches run, queries encoded in them).
    pub(crate) fn stats(&self) -> (u64, u64) {
        let s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        (s.batches, s.queries)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Encodes a text as [its length]; each batch call sleeps, so queries pile up behind it.
    #[derive(Debug, Default)]
    struct Lengths {
        calls: AtomicUsize,
        largest: AtomicUsize,
    }

    impl QueryEncoder for Lengths {
        fn space(&self) -> &str {
            "text"
        }
        fn encode(&self, text: &str) -> Result<Vec<f32>, ExtractError> {
            if text == "boom" {
                return Err(ExtractError::Failed("boom is not a query".into()));
            }
            Ok(vec![text.len() as f32])
        }
        fn encode_batch(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, ExtractError> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            self.largest.fetch_max(texts.len(), Ordering::SeqCst);
            std::thread::sleep(std::time::Duration::from_millis(30));
            texts.iter().map(|t| self.encode(t)).collect()
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_queries_share_batches_and_get_their_own_vectors() {
        let enc = Arc::new(Lengths::default());
        let b = QueryBatcher::new(enc.clone());
        let tasks: Vec<_> = (0..40)
            .map(|i| {
                let b = Arc::clone(&b);
                tokio::spawn(async move { (i, b.encode(&"x".repeat(i + 1)).await) })
            })
            .collect();
        for t in tasks {
            let (i, v) = t.await.expect("task");
            assert_eq!(v.expect("vector"), vec![(i + 1) as f32]);
        }
        let calls = enc.calls.load(Ordering::SeqCst);
        assert!(calls < 40, "{calls} encoder calls for 40 queries");
        assert!(enc.largest.load(Ordering::SeqCst) > 1);
        assert!(enc.largest.load(Ordering::SeqCst) <= MAX_BATCH);
        assert_eq!(b.stats().1, 40);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failing_query_fails_alone() {
        let enc = Arc::new(Lengths::default());
        let b = QueryBatcher::new(enc);
        let (good, bad) = tokio::join!(b.encode("harbor"), b.encode("boom"));
        assert_eq!(good.expect("good"), vec![6.0]);
        let e = bad.expect_err("bad");
        assert!(e.to_string().contains("boom is not a query"), "{e}");
        // An idle batcher encodes the next query at once.
        assert_eq!(b.encode("ok").await.expect("ok"), vec![2.0]);
    }
}
