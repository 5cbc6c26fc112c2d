//! Conformance suite for the [`Index`] trait.
//!
//! Every scenario takes `&dyn Index`, works in its own random tenant
//! (`conformance-<scenario>-<uuid>`) so scenarios neither see nor disturb each other or data
//! already in the index, and panics with a message that starts with the scenario's name.
//! [`index_conformance_tests!`](crate::index_conformance_tests) expands to one
//! `#[tokio::test]` per scenario; [`run_all`] runs them all on one index.
//!
//! Vector spaces used: `text` with [`DIM`] dimensions, and `congruence<dim>` for
//! [`vector_congruence`]. A backend that must declare its spaces up front declares those.
//!
//! Filters are checked against [`SearchFilter::matches`], the reference semantics: for a
//! generated corpus, the hit set of a filtered search must equal a plain scan of the
//! documents the test inserted (qdrant-style congruence testing). Recall of vector search is
//! measured against brute-force cosine computed in the test.

use std::collections::{BTreeMap, BTreeSet};

use crate::index::{Fusion, Index, IndexDoc, IndexError, SearchFilter, SearchHit, SearchRequest};
use crate::model::{AssetId, SegmentKind, SourceId, TenantId};

/// Dimensions of the `text` space used by the scenarios.
pub const DIM: usize = 4;
/// Name of the vector space used by the scenarios.
pub const SPACE: &str = "text";

// ---------------------------------------------------------------------------------------
// helpers

/// SplitMix64: a tiny seeded PRNG, so the suite needs no `rand`.
#[derive(Debug, Clone)]
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in `[0, n)`.
    fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
    /// Uniform in `[0, 1)`.
    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    /// Standard normal (Box–Muller).
    fn normal(&mut self) -> f64 {
        let u1 = self.unit().max(1e-300);
        let u2 = self.unit();
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }
    /// A random unit vector.
    fn unit_vector(&mut self, dim: usize) -> Vec<f32> {
        let v: Vec<f64> = (0..dim).map(|_| self.normal()).collect();
        let n = v.iter().map(|x| x * x).sum::<f64>().sqrt().max(1e-12);
        v.iter().map(|x| (x / n) as f32).collect()
    }
}

fn tenant(scenario: &str) -> TenantId {
    super::unique_tenant("conformance", scenario)
}

/// A shot document with a one-token path (`/<asset>.mp4`), so path lengths are equal.
fn doc(tenant: &TenantId, asset: &str, segment: &str, text: &str) -> IndexDoc {
    IndexDoc {
        tenant: tenant.clone(),
        source: SourceId::new("src"),
        asset: AssetId::new(asset),
        segment: segment.into(),
        kind: SegmentKind::Shot,
        path: format!("/{asset}.mp4"),
        start_s: 0.0,
        end_s: 1.0,
        text: text.into(),
        thumbnail: None,
        tags: Vec::new(),
        vectors: BTreeMap::new(),
        meta: Default::default(),
    }
}

fn with_vector(mut d: IndexDoc, space: &str, v: Vec<f32>) -> IndexDoc {
    d.vectors.insert(space.into(), v);
    d
}

fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a
        .iter()
        .zip(b)
        .map(|(x, y)| f64::from(*x) * f64::from(*y))
        .sum();
    let na: f64 = a.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    dot / (na * nb)
}

async fn upsert(scenario: &str, index: &dyn Index, docs: &[IndexDoc]) {
    index
        .upsert(docs)
        .await
        .unwrap_or_else(|e| panic!("{scenario}: upsert failed: {e}"));
}

async fn count(scenario: &str, index: &dyn Index, t: &TenantId) -> u64 {
    index
        .count(t)
        .await
        .unwrap_or_else(|e| panic!("{scenario}: count failed: {e}"))
}

/// Search, check the contract's ordering (score desc, ties by key), return the hits.
async fn search(scenario: &str, index: &dyn Index, req: SearchRequest) -> Vec<SearchHit> {
    let hits = index
        .search(&req)
        .await
        .unwrap_or_else(|e| panic!("{scenario}: search {req:?} failed: {e}"));
    assert!(
        hits.len() <= req.limit,
        "{scenario}: {} hits for limit {}",
        hits.len(),
        req.limit
    );
    for w in hits.windows(2) {
        let (a, b) = (&w[0], &w[1]);
        assert!(
            a.score > b.score || (a.score == b.score && a.doc.key() < b.doc.key()),
            "{scenario}: hits out of order: {} ({}) before {} ({})",
            a.doc.key(),
            a.score,
            b.doc.key(),
            b.score
        );
    }
    for h in &hits {
        assert_eq!(
            h.doc.tenant, req.tenant,
            "{scenario}: hit from another tenant"
        );
        assert!(
            req.filter.matches(&h.doc),
            "{scenario}: hit {} violates the filter",
            h.doc.key()
        );
    }
    hits
}

fn keys(hits: &[SearchHit]) -> Vec<String> {
    hits.iter().map(|h| h.doc.key()).collect()
}

fn key_set(hits: &[SearchHit]) -> BTreeSet<String> {
    hits.iter().map(|h| h.doc.key()).collect()
}

async fn text_keys(scenario: &str, index: &dyn Index, t: &TenantId, q: &str) -> BTreeSet<String> {
    let req = SearchRequest::new(t.clone()).with_text(q).with_limit(100);
    key_set(&search(scenario, index, req).await)
}

fn set(keys: &[&str]) -> BTreeSet<String> {
    keys.iter().map(|k| k.to_string()).collect()
}

async fn expect_invalid(scenario: &str, index: &dyn Index, req: SearchRequest, what: &str) {
    match index.search(&req).await {
        Err(IndexError::InvalidRequest(_) | IndexError::UnknownSpace { .. }) => {}
        other => panic!("{scenario}: {what}: expected InvalidRequest, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------
// scenarios

/// Upserted documents are searchable at once, come back intact, and are counted.
pub async fn upsert_then_keyword_search(index: &dyn Index) {
    let s = "upsert_then_keyword_search";
    let t = tenant(s);
    let mut sunset = doc(&t, "a1", "shot-1", "A sunset over the mountains");
    sunset.kind = SegmentKind::Transcript;
    sunset.start_s = 12.5;
    sunset.end_s = 17.25;
    sunset.thumbnail = Some("thumbs/a1/1.jpg".into());
    sunset.tags = vec!["q2".into(), "campaign".into()];
    sunset.source = SourceId::new("drive");
    let docs = vec![
        sunset.clone(),
        doc(&t, "a1", "shot-2", "people walking on a beach"),
        doc(&t, "a2", "shot-1", "city traffic at night"),
    ];
    upsert(s, index, &docs).await;
    assert_eq!(count(s, index, &t).await, 3, "{s}: count");
    let hits = search(s, index, SearchRequest::new(t.clone()).with_text("sunset")).await;
    assert_eq!(keys(&hits), ["a1/shot-1"], "{s}: hits");
    assert_eq!(
        hits[0].doc, sunset,
        "{s}: the document must come back unchanged"
    );
    assert!(hits[0].score > 0.0, "{s}: score must be positive");
    let sig = &hits[0].signals;
    assert!(
        sig.len() == 1 && sig[0].signal == "keyword" && sig[0].rank == 1,
        "{s}: signals {sig:?}"
    );
    let none = search(s, index, SearchRequest::new(t).with_text("submarine")).await;
    assert!(
        none.is_empty(),
        "{s}: unmatched term found {:?}",
        keys(&none)
    );
}

/// BM25: rarer and more frequent terms rank higher; shorter documents beat longer ones.
pub async fn bm25_ranking(index: &dyn Index) {
    let s = "bm25_ranking";
    let t = tenant(s);
    let mut docs = vec![
        doc(&t, "rare", "0", "zebra zebra grass field"),
        doc(&t, "common", "0", "cat grass field plain"),
        doc(&t, "short", "0", "heron lake"),
        doc(
            &t,
            "long",
            "0",
            "heron lake with many other words in a much longer description of the scene",
        ),
    ];
    for i in 0..6 {
        docs.push(doc(
            &t,
            &format!("filler{i}"),
            "0",
            "cat sleeping on a sofa",
        ));
    }
    upsert(s, index, &docs).await;
    let req = SearchRequest::new(t.clone())
        .with_text("zebra cat")
        .with_limit(20);
    let hits = keys(&search(s, index, req).await);
    assert_eq!(
        hits.len(),
        8,
        "{s}: OR semantics: every doc with zebra or cat, got {hits:?}"
    );
    assert_eq!(
        hits[0], "rare/0",
        "{s}: two rare-term hits beat one common: {hits:?}"
    );
    let req = SearchRequest::new(t).with_text("heron");
    let hits = keys(&search(s, index, req).await);
    assert_eq!(hits, ["short/0", "long/0"], "{s}: shorter doc first");
}

/// `"red car"` matches the terms adjacent and in order only.
pub async fn phrase_query(index: &dyn Index) {
    let s = "phrase_query";
    let t = tenant(s);
    let docs = vec![
        doc(&t, "a", "0", "a red car parked outside"),
        doc(&t, "b", "0", "the car is red"),
        doc(&t, "c", "0", "red and blue car"),
        doc(&t, "d", "0", "a big red car wash sign"),
    ];
    upsert(s, index, &docs).await;
    let got = text_keys(s, index, &t, "\"red car\"").await;
    assert_eq!(got, set(&["a/0", "d/0"]), "{s}: \"red car\"");
    let got = text_keys(s, index, &t, "\"RED CAR WASH\"").await;
    assert_eq!(got, set(&["d/0"]), "{s}: three-term phrase");
    let got = text_keys(s, index, &t, "\"car red\"").await;
    assert!(got.is_empty(), "{s}: reversed phrase matched {got:?}");
}

/// `moun*` matches every term starting with `moun`, and nothing else.
pub async fn prefix_query(index: &dyn Index) {
    let s = "prefix_query";
    let t = tenant(s);
    let docs = vec![
        doc(&t, "a", "0", "mountain lake"),
        doc(&t, "b", "0", "Mountains at dawn"),
        doc(&t, "c", "0", "the amount of rain"),
        doc(&t, "d", "0", "a mound of dirt"),
        doc(&t, "e", "0", "a mouse in the house"),
    ];
    upsert(s, index, &docs).await;
    let got = text_keys(s, index, &t, "moun*").await;
    assert_eq!(got, set(&["a/0", "b/0", "d/0"]), "{s}: moun*");
    let got = text_keys(s, index, &t, "mountains*").await;
    assert_eq!(got, set(&["b/0"]), "{s}: a whole word as prefix");
}

/// The snippet shows the matched term in `[brackets]`.
pub async fn snippet_highlights(index: &dyn Index) {
    let s = "snippet_highlights";
    let t = tenant(s);
    let text = "The camera pans slowly across the harbour while gulls circle above the \
                boats and then the old Lighthouse appears against the evening sky before \
                the scene cuts to an interview in a small office with bright lamps";
    upsert(s, index, &[doc(&t, "a", "0", text)]).await;
    for q in ["lighthouse", "LIGHTH*"] {
        let hits = search(s, index, SearchRequest::new(t.clone()).with_text(q)).await;
        assert_eq!(hits.len(), 1, "{s}: {q}");
        let snippet = hits[0]
            .snippet
            .as_deref()
            .unwrap_or_else(|| panic!("{s}: {q}: no snippet"));
        assert!(
            snippet.to_lowercase().contains("[lighthouse]"),
            "{s}: {q}: snippet {snippet:?} lacks [lighthouse]"
        );
    }
}

/// Tokenization ignores case and punctuation, in documents and in queries.
pub async fn case_and_punctuation_insensitive(index: &dyn Index) {
    let s = "case_and_punctuation_insensitive";
    let t = tenant(s);
    upsert(
        s,
        index,
        &[doc(
            &t,
            "a",
            "0",
            "Hello, WORLD! Sunset-over (the) Mountains...",
        )],
    )
    .await;
    for q in [
        "world",
        "HELLO",
        "sunset.",
        "Mountains?",
        "(over)",
        "\"sunset over the\"",
    ] {
        let got = text_keys(s, index, &t, q).await;
        assert_eq!(got, set(&["a/0"]), "{s}: query {q:?}");
    }
}

/// The path is searchable like text.
pub async fn path_is_searchable(index: &dyn Index) {
    let s = "path_is_searchable";
    let t = tenant(s);
    let mut d = doc(&t, "a", "0", "unrelated words only");
    d.path = "/archive/Q2-Campaign/beach_day.mov".into();
    upsert(s, index, &[d, doc(&t, "b", "0", "nothing here")]).await;
    for q in ["campaign", "beach", "q2"] {
        assert_eq!(
            text_keys(s, index, &t, q).await,
            set(&["a/0"]),
            "{s}: query {q:?}"
        );
    }
}

/// Upserting the same (asset, segment) replaces the document.
pub async fn upsert_replaces(index: &dyn Index) {
    let s = "upsert_replaces";
    let t = tenant(s);
    let mut d = with_vector(
        doc(&t, "a", "0", "old alpha text"),
        SPACE,
        vec![1.0, 0.0, 0.0, 0.0],
    );
    upsert(s, index, &[d.clone(), doc(&t, "b", "0", "other words")]).await;
    d.text = "new beta text".into();
    d.vectors.insert(SPACE.into(), vec![0.0, 1.0, 0.0, 0.0]);
    upsert(s, index, std::slice::from_ref(&d)).await;
    assert_eq!(count(s, index, &t).await, 2, "{s}: count unchanged");
    assert!(
        text_keys(s, index, &t, "alpha").await.is_empty(),
        "{s}: old text still found"
    );
    assert_eq!(
        text_keys(s, index, &t, "beta").await,
        set(&["a/0"]),
        "{s}: new text"
    );
    let req = SearchRequest::new(t).with_vector(SPACE, vec![0.0, 1.0, 0.0, 0.0]);
    let hits = search(s, index, req).await;
    assert_eq!(hits.len(), 1, "{s}: one vector per document");
    assert!(
        (hits[0].signals[0].score - 1.0).abs() < 1e-4,
        "{s}: vector replaced, got cosine {}",
        hits[0].signals[0].score
    );
}

/// `delete_asset` removes all of an asset's documents, returns how many, spares the rest.
pub async fn delete_asset_removes_all(index: &dyn Index) {
    let s = "delete_asset_removes_all";
    let t = tenant(s);
    let v = vec![1.0, 1.0, 0.0, 0.0];
    let mut docs = Vec::new();
    for i in 0..3 {
        docs.push(with_vector(
            doc(&t, "gone", &format!("{i}"), "common words"),
            SPACE,
            v.clone(),
        ));
    }
    for i in 0..2 {
        docs.push(with_vector(
            doc(&t, "kept", &format!("{i}"), "common words"),
            SPACE,
            v.clone(),
        ));
    }
    upsert(s, index, &docs).await;
    let asset = AssetId::new("gone");
    let n = index.delete_asset(&t, &asset).await;
    assert_eq!(n.ok(), Some(3), "{s}: delete count");
    assert_eq!(count(s, index, &t).await, 2, "{s}: remaining count");
    let kept = set(&["kept/0", "kept/1"]);
    assert_eq!(
        text_keys(s, index, &t, "common").await,
        kept,
        "{s}: keyword after delete"
    );
    let req = SearchRequest::new(t.clone())
        .with_vector(SPACE, v)
        .with_limit(10);
    assert_eq!(
        key_set(&search(s, index, req).await),
        kept,
        "{s}: vector after delete"
    );
    let again = index.delete_asset(&t, &asset).await;
    assert_eq!(again.ok(), Some(0), "{s}: second delete");
    let unknown = index.delete_asset(&t, &AssetId::new("never")).await;
    assert_eq!(unknown.ok(), Some(0), "{s}: unknown asset");
}

/// A tenant never sees, counts or deletes another tenant's documents.
pub async fn tenant_isolation(index: &dyn Index) {
    let s = "tenant_isolation";
    let a = tenant("tenant_isolation-a");
    let b = tenant("tenant_isolation-b");
    let v = vec![0.0, 0.0, 1.0, 0.0];
    upsert(
        s,
        index,
        &[
            with_vector(doc(&a, "x", "0", "secret falcon footage"), SPACE, v.clone()),
            with_vector(doc(&a, "y", "0", "more falcon"), SPACE, v.clone()),
            with_vector(
                doc(&b, "x", "0", "public sparrow footage"),
                SPACE,
                v.clone(),
            ),
        ],
    )
    .await;
    assert_eq!(count(s, index, &a).await, 2, "{s}: count a");
    assert_eq!(count(s, index, &b).await, 1, "{s}: count b");
    assert!(
        text_keys(s, index, &b, "falcon").await.is_empty(),
        "{s}: b sees a's text"
    );
    assert_eq!(
        text_keys(s, index, &b, "footage").await,
        set(&["x/0"]),
        "{s}: b's own"
    );
    let req = SearchRequest::new(b.clone())
        .with_vector(SPACE, v.clone())
        .with_limit(10);
    let hits = search(s, index, req).await;
    assert_eq!(hits.len(), 1, "{s}: b's vector search sees only b");
    let n = index.delete_asset(&b, &AssetId::new("y")).await;
    assert_eq!(n.ok(), Some(0), "{s}: b deleted a's asset");
    let n = index.delete_asset(&a, &AssetId::new("x")).await;
    assert_eq!(n.ok(), Some(1), "{s}: delete in a");
    assert_eq!(
        count(s, index, &b).await,
        1,
        "{s}: b untouched by a's delete"
    );
    let unknown = tenant("tenant_isolation-nobody");
    assert_eq!(
        count(s, index, &unknown).await,
        0,
        "{s}: unknown tenant count"
    );
    assert!(
        text_keys(s, index, &unknown, "footage").await.is_empty(),
        "{s}: unknown tenant"
    );
}

/// Every [`SearchFilter`] field, alone and combined, on keyword, vector and hybrid search:
/// the hit set equals a plain scan with [`SearchFilter::matches`].
pub async fn filter_congruence(index: &dyn Index) {
    let s = "filter_congruence";
    let t = tenant(s);
    let mut rng = Rng(0x5EED_F117);
    let kinds = [
        SegmentKind::Asset,
        SegmentKind::Shot,
        SegmentKind::Transcript,
        SegmentKind::Ocr,
    ];
    let folders = ["news", "sport", "archive/2024", "archive/2023"];
    let tags = ["red", "blue", "green"];
    let words = ["harbor", "forest", "desert", "studio"];
    let people = ["p1", "p2", "p3"];
    let mut docs = Vec::new();
    for i in 0..60 {
        let asset = format!("a{}", i % 7);
        let mut d = doc(&t, &asset, &format!("seg{i}"), "");
        d.source = SourceId::new(format!("s{}", (i % 7) % 3));
        d.path = format!("/{}/{asset}/clip.mp4", folders[(i % 7) % folders.len()]);
        d.kind = kinds[rng.below(kinds.len())];
        d.start_s = (rng.below(100)) as f64;
        d.end_s = d.start_s + rng.below(20) as f64;
        d.tags = tags
            .iter()
            .filter(|_| rng.below(2) == 0)
            .map(|x| x.to_string())
            .collect();
        d.text = format!("clip {}", words[rng.below(words.len())]);
        d.vectors.insert(SPACE.into(), rng.unit_vector(DIM));
        d.meta.asset_duration_s = [None, Some(5.0), Some(60.0), Some(600.0)][i % 4];
        d.meta.capture_date = [
            None,
            Some("2024-06-01T10:00:00Z".to_owned()),
            Some("2023-12-31".to_owned()),
        ][i % 3]
            .clone();
        d.meta.language =
            [None, Some("en".to_owned()), Some("de".to_owned())][rng.below(3)].clone();
        d.meta.has_speech = d.meta.language.is_some();
        d.meta.faces = people
            .iter()
            .filter(|_| rng.below(3) == 0)
            .map(|x| x.to_string())
            .collect();
        docs.push(d);
    }
    upsert(s, index, &docs).await;

    let mut filters: Vec<SearchFilter> = vec![SearchFilter::default()];
    let mk = |f: &dyn Fn(&mut SearchFilter)| {
        let mut x = SearchFilter::default();
        f(&mut x);
        x
    };
    filters.push(mk(&|f| f.sources = vec![SourceId::new("s1")]));
    filters.push(mk(&|f| {
        f.sources = vec![SourceId::new("s0"), SourceId::new("s2")]
    }));
    filters.push(mk(&|f| f.sources = vec![SourceId::new("nope")]));
    filters.push(mk(&|f| f.assets = vec![AssetId::new("a3")]));
    filters.push(mk(&|f| {
        f.assets = vec![AssetId::new("a0"), AssetId::new("a6")]
    }));
    filters.push(mk(&|f| f.path_prefix = Some("/archive/".into())));
    filters.push(mk(&|f| f.path_prefix = Some("/archive/2024/a2".into())));
    filters.push(mk(&|f| f.path_prefix = Some("/news".into())));
    filters.push(mk(&|f| f.path_prefix = Some("news".into())));
    filters.push(mk(&|f| f.time_range = Some((10.0, 20.0))));
    filters.push(mk(&|f| f.time_range = Some((50.0, 50.0))));
    filters.push(mk(&|f| f.time_range = Some((0.0, 0.0))));
    filters.push(mk(&|f| f.time_range = Some((500.0, 600.0))));
    filters.push(mk(&|f| f.kinds = vec![SegmentKind::Transcript]));
    filters.push(mk(&|f| {
        f.kinds = vec![SegmentKind::Asset, SegmentKind::Ocr]
    }));
    filters.push(mk(&|f| f.tags = vec!["red".into()]));
    filters.push(mk(&|f| f.tags = vec!["red".into(), "blue".into()]));
    filters.push(mk(&|f| f.tags = vec!["purple".into()]));
    filters.push(mk(&|f| f.duration_range = Some((10.0, 100.0))));
    filters.push(mk(&|f| f.duration_range = Some((5.0, 5.0))));
    filters.push(mk(&|f| {
        f.date_range = Some(("2024-01-01".into(), "2024-12-31".into()))
    }));
    filters.push(mk(&|f| {
        f.date_range = Some(("2023-12-31".into(), "2023-12-31".into()))
    }));
    filters.push(mk(&|f| f.languages = vec!["de".into()]));
    filters.push(mk(&|f| f.languages = vec!["en".into(), "de".into()]));
    filters.push(mk(&|f| f.has_speech = Some(true)));
    filters.push(mk(&|f| f.has_speech = Some(false)));
    filters.push(mk(&|f| f.faces = vec!["p2".into()]));
    filters.push(mk(&|f| f.faces = vec!["p1".into(), "p3".into()]));
    filters.push(mk(&|f| {
        f.faces = vec!["p1".into()];
        f.languages = vec!["en".into()];
        f.duration_range = Some((0.0, 100.0));
    }));
    // Boundaries: a segment touching the range at either end overlaps it.
    let d0 = &docs[0];
    let (d0s, d0e) = (d0.start_s, d0.end_s);
    filters.push(mk(&|f| f.time_range = Some((d0e, d0e + 1.0))));
    filters.push(mk(&|f| f.time_range = Some((d0s - 1.0, d0s))));
    for _ in 0..25 {
        let mut f = SearchFilter::default();
        if rng.below(3) == 0 {
            f.sources = vec![SourceId::new(format!("s{}", rng.below(3)))];
        }
        if rng.below(3) == 0 {
            f.assets = (0..1 + rng.below(3))
                .map(|_| AssetId::new(format!("a{}", rng.below(7))))
                .collect();
        }
        if rng.below(3) == 0 {
            f.path_prefix = Some(format!("/{}", folders[rng.below(folders.len())]));
        }
        if rng.below(2) == 0 {
            let from = rng.below(110) as f64;
            f.time_range = Some((from, from + rng.below(30) as f64));
        }
        if rng.below(3) == 0 {
            f.kinds = vec![kinds[rng.below(kinds.len())], kinds[rng.below(kinds.len())]];
        }
        if rng.below(3) == 0 {
            f.tags = vec![tags[rng.below(tags.len())].to_string()];
        }
        filters.push(f);
    }

    let query_vec = rng.unit_vector(DIM);
    for (i, f) in filters.iter().enumerate() {
        let expected: BTreeSet<String> = docs
            .iter()
            .filter(|d| f.matches(d))
            .map(IndexDoc::key)
            .collect();
        let reqs = [
            ("keyword", SearchRequest::new(t.clone()).with_text("clip")),
            (
                "vector",
                SearchRequest::new(t.clone()).with_vector(SPACE, query_vec.clone()),
            ),
            (
                "hybrid",
                SearchRequest::new(t.clone())
                    .with_text("clip harbor")
                    .with_vector(SPACE, query_vec.clone()),
            ),
        ];
        for (signal, req) in reqs {
            let req = req.with_filter(f.clone()).with_limit(100);
            let got = key_set(&search(s, index, req).await);
            assert_eq!(got, expected, "{s}: {signal} search, filter #{i} {f:?}");
        }
        // A term only some documents have: the intersection of both.
        let req = SearchRequest::new(t.clone())
            .with_text("forest")
            .with_filter(f.clone())
            .with_limit(100);
        let want: BTreeSet<String> = docs
            .iter()
            .filter(|d| f.matches(d) && d.text.contains("forest"))
            .map(IndexDoc::key)
            .collect();
        assert_eq!(
            key_set(&search(s, index, req).await),
            want,
            "{s}: forest, filter #{i} {f:?}"
        );
    }
}

/// Vector search ranks by cosine similarity, with and without a filter.
pub async fn vector_search_cosine(index: &dyn Index) {
    let s = "vector_search_cosine";
    let t = tenant(s);
    let vecs: [[f32; DIM]; 5] = [
        [1.0, 0.0, 0.0, 0.0],
        [0.9, 0.1, 0.0, 0.0],
        [0.5, 0.5, 0.5, 0.0],
        [0.0, 1.0, 0.0, 0.0],
        [-1.0, 0.0, 0.0, 0.2],
    ];
    let mut docs = Vec::new();
    for (i, v) in vecs.iter().enumerate() {
        let mut d = with_vector(
            doc(&t, &format!("v{i}"), "0", "vector doc"),
            SPACE,
            v.to_vec(),
        );
        d.kind = if i % 2 == 0 {
            SegmentKind::Shot
        } else {
            SegmentKind::Ocr
        };
        docs.push(d);
    }
    docs.push(doc(&t, "novec", "0", "vector doc without vectors"));
    upsert(s, index, &docs).await;
    // Not a unit vector: cosine is scale-invariant.
    let q = vec![2.0, 0.4, 0.0, 0.0];
    let mut expected: Vec<(String, f64)> = docs
        .iter()
        .filter_map(|d| d.vectors.get(SPACE).map(|v| (d.key(), cosine(&q, v))))
        .collect();
    expected.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let req = SearchRequest::new(t.clone())
        .with_vector(SPACE, q.clone())
        .with_limit(10);
    let hits = search(s, index, req).await;
    assert_eq!(
        keys(&hits),
        expected.iter().map(|e| e.0.clone()).collect::<Vec<_>>(),
        "{s}: order by cosine (documents without the vector excluded)"
    );
    for (h, (_, c)) in hits.iter().zip(&expected) {
        let sig = &h.signals[0];
        assert_eq!(sig.signal, format!("vector:{SPACE}"), "{s}: signal name");
        assert!(
            (f64::from(sig.score) - c).abs() < 1e-4,
            "{s}: cosine {} vs {c}",
            sig.score
        );
    }
    let filter = SearchFilter {
        kinds: vec![SegmentKind::Ocr],
        ..SearchFilter::default()
    };
    let req = SearchRequest::new(t)
        .with_vector(SPACE, q)
        .with_filter(filter.clone());
    let hits = search(s, index, req).await;
    let want: Vec<String> = expected
        .iter()
        .filter(|(k, _)| docs.iter().any(|d| &d.key() == k && filter.matches(d)))
        .map(|e| e.0.clone())
        .collect();
    assert_eq!(keys(&hits), want, "{s}: filtered order");
}

/// Malformed requests are [`IndexError::InvalidRequest`].
pub async fn invalid_requests(index: &dyn Index) {
    let s = "invalid_requests";
    let t = tenant(s);
    upsert(
        s,
        index,
        &[with_vector(
            doc(&t, "a", "0", "words"),
            SPACE,
            vec![1.0; DIM],
        )],
    )
    .await;
    let base = || SearchRequest::new(t.clone());
    expect_invalid(s, index, base(), "neither text nor vector").await;
    expect_invalid(
        s,
        index,
        base().with_vector(SPACE, vec![1.0; DIM + 1]),
        "wrong dimension",
    )
    .await;
    match index
        .search(&base().with_vector("no-such-space", vec![1.0; DIM]))
        .await
    {
        Err(IndexError::UnknownSpace { space }) => assert_eq!(space, "no-such-space", "{s}"),
        other => panic!("{s}: unknown space: expected UnknownSpace, got {other:?}"),
    }
    expect_invalid(s, index, base().with_text("   "), "blank text").await;
    expect_invalid(s, index, base().with_text("?! --"), "punctuation-only text").await;
    let bad_range = SearchFilter {
        time_range: Some((10.0, 5.0)),
        ..SearchFilter::default()
    };
    expect_invalid(
        s,
        index,
        base().with_text("words").with_filter(bad_range),
        "inverted range",
    )
    .await;
    let wrong = with_vector(doc(&t, "b", "0", "x"), SPACE, vec![1.0; DIM + 2]);
    match index.upsert(&[wrong]).await {
        Err(IndexError::InvalidRequest(_)) => {}
        other => panic!("{s}: upsert with wrong dimension: expected InvalidRequest, got {other:?}"),
    }
    assert_eq!(
        count(s, index, &t).await,
        1,
        "{s}: rejected upsert must not write"
    );
}

/// Hybrid: a document matching both signals ranks above documents matching one, and its
/// `signals` lists both.
pub async fn hybrid_fusion(index: &dyn Index) {
    let s = "hybrid_fusion";
    let t = tenant(s);
    let q = vec![1.0, 0.0, 0.0, 0.0];
    let docs = vec![
        // both: second-best keyword, second-best vector
        with_vector(
            doc(&t, "both", "0", "lighthouse at dusk"),
            SPACE,
            vec![0.9, 0.3, 0.0, 0.0],
        ),
        // keyword only: best keyword, no vector
        doc(&t, "kw", "0", "lighthouse lighthouse"),
        // vector only: best vector, no keyword
        with_vector(doc(&t, "vec", "0", "unrelated scene"), SPACE, q.clone()),
        with_vector(
            doc(&t, "far", "0", "another scene"),
            SPACE,
            vec![0.0, 0.0, 1.0, 0.0],
        ),
    ];
    upsert(s, index, &docs).await;
    for fusion in [
        Fusion::Rrf { k: 60.0 },
        Fusion::Weighted {
            keyword: 1.0,
            vector: 1.0,
        },
    ] {
        let req = SearchRequest::new(t.clone())
            .with_text("lighthouse")
            .with_vector(SPACE, q.clone())
            .with_fusion(fusion);
        let hits = search(s, index, req).await;
        assert_eq!(
            hits.first().map(|h| h.doc.key()).as_deref(),
            Some("both/0"),
            "{s}: {fusion:?}: {:?}",
            keys(&hits)
        );
        let mut sigs: Vec<&str> = hits[0].signals.iter().map(|x| x.signal.as_str()).collect();
        sigs.sort_unstable();
        assert_eq!(sigs, ["keyword", "vector:text"], "{s}: {fusion:?}: signals");
        let ks = key_set(&hits);
        assert!(
            ks.contains("kw/0") && ks.contains("vec/0"),
            "{s}: {fusion:?}: single-signal hits missing"
        );
        let kw = hits.iter().find(|h| h.doc.key() == "kw/0");
        assert!(
            kw.is_some_and(|h| h.signals.len() == 1 && h.signals[0].signal == "keyword"),
            "{s}: {fusion:?}: keyword-only hit's signals"
        );
        assert!(
            hits[0]
                .snippet
                .as_deref()
                .is_some_and(|x| x.to_lowercase().contains("[lighthouse]")),
            "{s}: {fusion:?}: hybrid hit snippet {:?}",
            hits[0].snippet
        );
    }
}

/// `offset`/`limit` return disjoint consecutive pages; equal scores are ordered by key.
pub async fn paging_and_ties(index: &dyn Index) {
    let s = "paging_and_ties";
    let t = tenant(s);
    let v = vec![0.0, 0.0, 0.0, 1.0];
    // Identical text, equal-length paths and identical vectors: every score ties.
    let mut docs: Vec<IndexDoc> = (0..25)
        .map(|i| {
            with_vector(
                doc(&t, &format!("p{i:02}"), "0", "paging test clip"),
                SPACE,
                v.clone(),
            )
        })
        .collect();
    docs.reverse(); // insertion order must not matter
    upsert(s, index, &docs).await;
    let mut all_keys: Vec<String> = docs.iter().map(IndexDoc::key).collect();
    all_keys.sort();
    let reqs = [
        ("keyword", SearchRequest::new(t.clone()).with_text("paging")),
        (
            "vector",
            SearchRequest::new(t.clone()).with_vector(SPACE, v.clone()),
        ),
    ];
    for (signal, req) in reqs {
        let full = keys(&search(s, index, req.clone().with_limit(100)).await);
        assert_eq!(full, all_keys, "{s}: {signal}: ties must be ordered by key");
        let mut paged = Vec::new();
        for page in 0..3 {
            let got =
                keys(&search(s, index, req.clone().with_offset(page * 10).with_limit(10)).await);
            assert_eq!(
                got.len(),
                if page < 2 { 10 } else { 5 },
                "{s}: {signal}: page {page} size"
            );
            paged.extend(got);
        }
        assert_eq!(
            paged, full,
            "{s}: {signal}: pages must be disjoint and consecutive"
        );
        let past = search(s, index, req.clone().with_offset(25).with_limit(10)).await;
        assert!(past.is_empty(), "{s}: {signal}: page past the end");
    }
}

/// Insert `n_docs` random unit vectors (space `congruence<dim>`; kinds shot, transcript, OCR
/// in turn), run 50 random queries, unfiltered and filtered to transcripts (a third of the
/// rows, so a graph-backed index searches its graph with the filter, not an exact scan),
/// and return the lower of the two mean recalls@10 against brute-force cosine computed
/// here. Every filtered hit must pass the filter (checked by the search helper).
pub async fn vector_congruence(index: &dyn Index, n_docs: usize, dim: usize) -> f64 {
    let s = "vector_congruence";
    let t = tenant(&format!("{s}-{n_docs}-{dim}"));
    let kinds = [SegmentKind::Shot, SegmentKind::Transcript, SegmentKind::Ocr];
    let space = format!("congruence{dim}");
    let mut rng = Rng(0xC04E_A700 ^ ((n_docs as u64) << 16) ^ dim as u64);
    let mut docs = Vec::with_capacity(n_docs);
    for i in 0..n_docs {
        let mut d = doc(&t, &format!("c{i:06}"), "0", "congruence");
        d.kind = kinds[i % kinds.len()];
        docs.push(with_vector(d, &space, rng.unit_vector(dim)));
    }
    for chunk in docs.chunks(500) {
        upsert(s, index, chunk).await;
    }
    const K: usize = 10;
    const QUERIES: usize = 50;
    let transcripts = SearchFilter {
        kinds: vec![SegmentKind::Transcript],
        ..SearchFilter::default()
    };
    let (mut recall, mut filtered_recall) = (0.0, 0.0);
    for _ in 0..QUERIES {
        let q = rng.unit_vector(dim);
        for (filter, sum) in [
            (SearchFilter::default(), &mut recall),
            (transcripts.clone(), &mut filtered_recall),
        ] {
            let mut exact: Vec<(f64, String)> = docs
                .iter()
                .filter(|d| filter.matches(d))
                .map(|d| (cosine(&q, &d.vectors[&space]), d.key()))
                .collect();
            exact.sort_by(|a, b| b.0.total_cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
            let truth: BTreeSet<String> = exact.into_iter().take(K).map(|e| e.1).collect();
            let req = SearchRequest::new(t.clone())
                .with_vector(space.clone(), q.clone())
                .with_filter(filter)
                .with_limit(K);
            let got = key_set(&search(s, index, req).await);
            *sum += got.intersection(&truth).count() as f64 / truth.len().max(1) as f64;
        }
    }
    (recall / QUERIES as f64).min(filtered_recall / QUERIES as f64)
}

/// [`vector_congruence`] on 2 000 documents × 32 dimensions: recall@10 (unfiltered and
/// filtered) at least 0.98.
pub async fn vector_recall(index: &dyn Index) {
    let recall = vector_congruence(index, 2000, 32).await;
    assert!(
        recall >= 0.98,
        "vector_congruence: recall@10 {recall:.3} < 0.98"
    );
}

/// Where a document's language is known, a query word matches its inflections in that
/// language (and the snippet highlights them); documents of unknown language match only the
/// exact form. Queries name the language through the filter, which every backend honours.
pub async fn language_aware_analysis(index: &dyn Index) {
    const S: &str = "language_aware_analysis";
    let t = tenant("language");
    let mut en = doc(
        &t,
        "en",
        "0",
        "The children were running along the harbour walls",
    );
    en.meta.language = Some("en".into());
    let mut fr = doc(&t, "fr", "0", "Les enfants mangeaient des crêpes au port");
    fr.meta.language = Some("fr".into());
    let unknown = doc(&t, "xx", "0", "A dog runs past the walls");
    upsert(S, index, &[en, fr, unknown]).await;
    let query = |q: &str, lang: Option<&str>| {
        let mut f = SearchFilter::default();
        if let Some(l) = lang {
            f.languages = vec![l.to_owned()];
        }
        SearchRequest::new(t.clone())
            .with_text(q)
            .with_filter(f)
            .with_limit(10)
    };
    let hits = search(S, index, query("runs", Some("en"))).await;
    assert_eq!(
        keys(&hits),
        ["en/0"],
        "{S}: `runs` finds `running` in English"
    );
    let snippet = hits[0].snippet.as_deref().unwrap_or_default();
    assert!(
        snippet.contains("[running]"),
        "{S}: the inflection is highlighted: {snippet:?}"
    );
    assert_eq!(
        keys(&search(S, index, query("mange", Some("fr"))).await),
        ["fr/0"],
        "{S}: `mange` finds `mangeaient` in French"
    );
    // Without stemming (unknown language) only the exact form matches.
    assert_eq!(
        key_set(&search(S, index, query("run", None)).await),
        set(&["en/0"]),
        "{S}: `run` finds the English inflection, not the unstemmed `runs`"
    );
    assert_eq!(
        key_set(&search(S, index, query("runs", None)).await),
        set(&["en/0", "xx/0"]),
        "{S}: the exact form still matches the unstemmed document"
    );
    assert_eq!(
        key_set(&search(S, index, query("walls", None)).await),
        set(&["en/0", "xx/0"]),
        "{S}: exact terms match regardless of language"
    );
}

/// The Index scenarios, in order. Adding a scenario is one line here.
#[doc(hidden)]
#[macro_export]
macro_rules! __index_scenarios {
    ($mode:ident $arg:expr, $attrs:tt) => {
        $crate::__conformance_expand! { $mode index, $arg, $attrs;
            upsert_then_keyword_search,
            bm25_ranking,
            phrase_query,
            prefix_query,
            snippet_highlights,
            case_and_punctuation_insensitive,
            path_is_searchable,
            upsert_replaces,
            delete_asset_removes_all,
            tenant_isolation,
            filter_congruence,
            vector_search_cosine,
            invalid_requests,
            hybrid_fusion,
            paging_and_ties,
            language_aware_analysis,
            vector_recall,
        }
    };
}

/// One `#[tokio::test]` per Index scenario. The argument is a factory, called once per
/// scenario, returning a future of a [`Fixture`](crate::conformance::Fixture) whose backend
/// implements [`Index`](crate::index::Index). Scenarios use random tenants, so the factory
/// may hand out one shared index (a server collection) or a fresh one each time.
#[macro_export]
macro_rules! index_conformance_tests {
    ($make:expr $(, #[$meta:meta])* $(,)?) => {
        $crate::__index_scenarios! { tests $make, [$(#[$meta])*] }
    };
}

/// Every scenario in order on one index (which may already hold other data).
pub async fn run_all(index: &dyn Index) {
    crate::__index_scenarios! { run index, [] }
}
