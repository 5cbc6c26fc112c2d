//! The shared `Index` conformance suite against a real Qdrant server.
//!
//! Runs only when `HEIMDEX_QDRANT_URL` is set (the gRPC URL, e.g. `http://localhost:6334`;
//! `HEIMDEX_QDRANT_API_KEY` optional). Each run uses a fresh collection
//! `heimdex_conformance_<pid>_<nanos>`, deleted afterwards when the suite passes.
#![cfg(feature = "qdrant")]

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use heimdex_core::conformance::index as suite;
use heimdex_index::qdrant::{QdrantConfig, QdrantIndex};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qdrant_conformance_suite() {
    let Ok(url) = std::env::var("HEIMDEX_QDRANT_URL") else {
        println!(
            "skipped: HEIMDEX_QDRANT_URL not set (e.g. HEIMDEX_QDRANT_URL=http://localhost:6334 \
             with `docker compose -f deploy/docker-compose.yml up -d qdrant`)"
        );
        return;
    };
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let collection = format!("heimdex_conformance_{}_{nanos}", std::process::id());
    let spaces = BTreeMap::from([
        (suite::SPACE.to_owned(), suite::DIM),
        ("congruence32".to_owned(), 32),
    ]);
    let index = QdrantIndex::connect(QdrantConfig {
        url: url.clone(),
        api_key: std::env::var("HEIMDEX_QDRANT_API_KEY")
            .ok()
            .filter(|k| !k.is_empty()),
        collection: collection.clone(),
        spaces,
        ..QdrantConfig::default()
    })
    .await
    .unwrap_or_else(|e| panic!("connect to {url}: {e}"));
    suite::run_all(&index).await;
    index
        .drop_collection()
        .await
        .unwrap_or_else(|e| panic!("drop collection {collection}: {e}"));
}
