//! The shared `Index` conformance suite, plus persistence, for [`EmbeddedIndex`]: one test
//! per scenario (`embedded::filter_congruence`, ...), and the whole suite again with the HNSW
//! graph threshold lowered from 5 000 to 16 vectors (`embedded_graph::...`), so graph
//! maintenance and (filtered) graph search are congruence-tested at index level too.

use std::collections::BTreeMap;

use heimdex_core::conformance::Fixture;
use heimdex_core::conformance::index as suite;
use heimdex_core::{
    AssetId, Index, IndexDoc, IndexError, SearchRequest, SegmentKind, SourceId, TenantId,
};
use heimdex_index::EmbeddedIndex;

/// Graph threshold of the second run: every scenario's spaces get a graph.
const LOW_GRAPH_MIN: usize = 16;

async fn embedded_index() -> Fixture<EmbeddedIndex> {
    Fixture::new(EmbeddedIndex::in_memory())
}

async fn embedded_graph_index() -> Fixture<EmbeddedIndex> {
    Fixture::new(EmbeddedIndex::in_memory().with_graph_min_rows(LOW_GRAPH_MIN))
}

mod embedded {
    use super::*;
    heimdex_core::index_conformance_tests!(embedded_index);
}

mod embedded_graph {
    use super::*;
    heimdex_core::index_conformance_tests!(embedded_graph_index);
}

#[tokio::test]
async fn vector_congruence_recall_is_exact() {
    let recall = suite::vector_congruence(&EmbeddedIndex::in_memory(), 3000, 64).await;
    assert_eq!(recall, 1.0, "exact search must have perfect recall");
}

/// The lowered threshold really puts the suite's vectors in a graph: the same congruence run
/// holds far more link memory than on the default (exact-only) index.
#[tokio::test]
async fn lowered_threshold_builds_graphs() {
    let (default, low) = (
        EmbeddedIndex::in_memory(),
        EmbeddedIndex::in_memory().with_graph_min_rows(LOW_GRAPH_MIN),
    );
    suite::vector_congruence(&default, 2000, 32).await;
    let recall = suite::vector_congruence(&low, 2000, 32).await;
    let (d, l) = (default.vector_memory_bytes(), low.vector_memory_bytes());
    assert!(
        l.1 >= d.1 + 2000 * 16,
        "graph links expected: default {d:?}, lowered {l:?}"
    );
    assert!(recall >= 0.98, "graph recall@10 {recall:.3}");
}

fn doc(asset: &str, segment: &str, text: &str, v: Vec<f32>) -> IndexDoc {
    IndexDoc {
        tenant: TenantId::default_tenant(),
        source: SourceId::new("local"),
        asset: AssetId::new(asset),
        segment: segment.into(),
        kind: SegmentKind::Transcript,
        path: format!("/videos/{asset}.mp4"),
        start_s: 1.0,
        end_s: 4.5,
        text: text.into(),
        thumbnail: Some(format!("thumbs/{asset}/{segment}.jpg")),
        tags: vec!["tag".into()],
        vectors: BTreeMap::from([("text".to_string(), v)]),
        meta: Default::default(),
    }
}

fn requests() -> Vec<SearchRequest> {
    let t = TenantId::default_tenant();
    vec![
        SearchRequest::new(t.clone()).with_text("harbour lighthouse"),
        SearchRequest::new(t.clone()).with_text("\"old lighthouse\" moun*"),
        SearchRequest::new(t.clone()).with_vector("text", vec![1.0, 0.2, 0.0]),
        SearchRequest::new(t)
            .with_text("lighthouse")
            .with_vector("text", vec![0.1, 1.0, 0.0]),
    ]
}

#[tokio::test]
async fn flush_and_reopen_gives_the_same_results() {
    let dir = tempfile::tempdir().expect("tempdir");
    let docs = vec![
        doc(
            "a",
            "0",
            "The old lighthouse by the harbour",
            vec![1.0, 0.0, 0.0],
        ),
        doc("a", "1", "Mountains at dawn", vec![0.0, 1.0, 0.0]),
        doc("b", "0", "harbour cranes at night", vec![0.5, 0.5, 0.1]),
        doc(
            "c",
            "0",
            "a lighthouse in the mountains",
            vec![0.2, 0.1, 0.9],
        ),
    ];
    let before = {
        let index = EmbeddedIndex::open(dir.path()).expect("open empty");
        index.upsert(&docs).await.expect("upsert");
        assert_eq!(
            index
                .delete_asset(&TenantId::default_tenant(), &AssetId::new("c"))
                .await
                .ok(),
            Some(1)
        );
        index.flush().await.expect("flush");
        let mut out = Vec::new();
        for r in requests() {
            out.push(index.search(&r).await.expect("search"));
        }
        out
    };
    assert!(before.iter().all(|hits| !hits.is_empty()));
    let index = EmbeddedIndex::open(dir.path()).expect("reopen");
    assert_eq!(index.count(&TenantId::default_tenant()).await.ok(), Some(3));
    for (r, want) in requests().iter().zip(&before) {
        let got = index.search(r).await.expect("search after reopen");
        assert_eq!(&got, want, "results differ after reopen for {r:?}");
    }
    // A flush without changes is a no-op; a new change is persisted again.
    index.flush().await.expect("flush clean");
    index
        .upsert(&[doc("d", "0", "new after reopen", vec![0.0, 0.0, 1.0])])
        .await
        .expect("upsert");
    index.flush().await.expect("flush");
    let again = EmbeddedIndex::open(dir.path()).expect("reopen 2");
    assert_eq!(again.count(&TenantId::default_tenant()).await.ok(), Some(4));
    assert_eq!(again.spaces().get("text"), Some(&3));
}

#[tokio::test]
async fn corrupt_snapshot_is_reported() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = {
        let index = EmbeddedIndex::open(dir.path()).expect("open");
        index
            .upsert(&[doc("a", "0", "some text", vec![1.0, 2.0, 3.0])])
            .await
            .expect("upsert");
        index.flush().await.expect("flush");
        index.snapshot_path().expect("has a path")
    };
    let good = std::fs::read(&path).expect("read snapshot");
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("garbage", b"definitely not an index".to_vec()),
        ("truncated", good[..good.len() / 2].to_vec()),
        ("bit flip", {
            let mut b = good.clone();
            let mid = b.len() / 2;
            b[mid] ^= 0x40;
            b
        }),
        ("empty", Vec::new()),
    ];
    for (what, bytes) in cases {
        std::fs::write(&path, bytes).expect("write");
        match EmbeddedIndex::open(dir.path()) {
            Err(IndexError::Corrupt(msg)) => {
                assert!(
                    msg.contains("index.hdx"),
                    "{what}: message should name the file: {msg}"
                )
            }
            other => panic!("{what}: expected Corrupt, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn io_errors_name_the_path() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("not-a-dir");
    std::fs::write(&file, b"x").expect("write");
    let err = EmbeddedIndex::open(file.join("index")).expect_err("cannot open under a file");
    let msg = err.to_string();
    assert!(
        msg.contains("not-a-dir"),
        "error should name the path: {msg}"
    );
}
