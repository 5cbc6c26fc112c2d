//! The shared `Index` conformance suite against a real Qdrant server, one test per scenario
//! (`qdrant::filter_congruence`, ...).
//!
//! Needs a server, so every test here is `#[ignore]`d with the reason and runs with
//! `make test-qdrant` (`HEIMDEX_QDRANT_URL`, the gRPC URL, e.g. `http://localhost:6334`;
//! `HEIMDEX_QDRANT_API_KEY` optional; `docker compose -f deploy/docker-compose.yml up -d
//! qdrant` starts one). An ignored run without the URL fails saying so. Each scenario uses
//! a fresh collection `heimdex_conformance_<pid>_<nanos>` (and random tenants), dropped when
//! the scenario ends, so the server may hold other data.
#![cfg(feature = "qdrant")]

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use heimdex_core::conformance::Fixture;
use heimdex_core::conformance::index as suite;
use heimdex_index::qdrant::{QdrantConfig, QdrantIndex};

/// The collection of one scenario; dropped (best effort, on a fresh runtime thread) when the
/// fixture is.
struct Collection(Option<QdrantIndex>);

impl Drop for Collection {
    fn drop(&mut self) {
        if let Some(index) = self.0.take() {
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("runtime");
                if let Err(e) = rt.block_on(index.drop_collection()) {
                    eprintln!("drop collection: {e}");
                }
            })
            .join();
        }
    }
}

async fn connect(collection: &str) -> QdrantIndex {
    let url = std::env::var("HEIMDEX_QDRANT_URL").unwrap_or_else(|_| {
        panic!(
            "needs a Qdrant server: set HEIMDEX_QDRANT_URL (e.g. http://localhost:6334 with \
             `docker compose -f deploy/docker-compose.yml up -d qdrant`) and run `make test-qdrant`"
        )
    });
    let spaces = BTreeMap::from([
        (suite::SPACE.to_owned(), suite::DIM),
        ("congruence32".to_owned(), 32),
    ]);
    QdrantIndex::connect(QdrantConfig {
        url: url.clone(),
        api_key: std::env::var("HEIMDEX_QDRANT_API_KEY")
            .ok()
            .filter(|k| !k.is_empty()),
        collection: collection.to_owned(),
        spaces,
        ..QdrantConfig::default()
    })
    .await
    .unwrap_or_else(|e| panic!("connect to {url}: {e}"))
}

async fn qdrant_index() -> Fixture<QdrantIndex> {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let collection = format!(
        "heimdex_conformance_{}_{nanos}_{}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    );
    // Two handles on the collection: one for the test, one that drops it afterwards.
    let guard = Collection(Some(connect(&collection).await));
    Fixture::new(connect(&collection).await).keep(guard)
}

mod qdrant {
    use super::*;
    heimdex_core::index_conformance_tests!(
        qdrant_index,
        #[ignore = "needs a Qdrant server: set HEIMDEX_QDRANT_URL, run make test-qdrant"]
    );
}
