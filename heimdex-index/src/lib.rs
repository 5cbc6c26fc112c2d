//! # heimdex-index
//!
//! Index backends for Heimdex. Today: [`EmbeddedIndex`], the in-process default that needs
//! no server. With the `qdrant` feature, also `qdrant::QdrantIndex`, the backend for the
//! server stack (see that module for its design).
//!
//! ## Design
//!
//! Heimdex's embedded index answers three kinds of query over time-coded segment documents:
//! keyword (BM25 with `"phrases"`, `prefix*` and highlighted snippets), vector (cosine in
//! named spaces) and hybrid (both, fused by [`heimdex_core::fusion::fuse`] so the result
//! means the same as on every other backend). Every signal applies the same
//! [`SearchFilter`](heimdex_core::SearchFilter) with the semantics of
//! [`SearchFilter::matches`](heimdex_core::SearchFilter::matches) (the conformance suite
//! checks the two agree on random filters).
//!
//! - **Keyword**: a positional inverted index (`BTreeMap<term, postings>`; per term one flat
//!   array of (document, tf, positions offset) plus one positions buffer). `path` and
//!   `text` are indexed as one stream, so a path is searchable. BM25 with k1 = 1.2,
//!   b = 0.75 and the Lucene idf `ln(1 + (N - df + 0.5) / (df + 0.5))`; clauses are OR-ed.
//!   A phrase scores like a term whose frequency is the phrase count and whose idf is the
//!   sum of its terms' idfs. `prefix*` walks the sorted term dictionary (at most 256 terms,
//!   the most frequent). Top-k is document-at-a-time with MaxScore pruning (per-term score
//!   bounds), so a query touches far fewer postings than it matches; the filter is checked
//!   only on documents that would enter the top k. Snippets re-tokenize the hit's text and
//!   keep its original casing.
//! - **Analysis**: Unicode alphanumeric runs, lower-cased, common Latin accents folded
//!   (`Café` → `cafe`). Where a document's language is known (`meta.language`, from speech
//!   recognition) and Snowball has a stemmer for it, each token's stem is indexed too, at
//!   the same position, in a per-language namespace; a query term or phrase matches the raw
//!   form or the stem in each language the index holds, scoring the best variant per
//!   document. Exact forms, prefixes and unknown-language documents behave as without it.
//! - **Vector**: per tenant and space, normalised vectors stored contiguously in one
//!   `Vec<f32>` (append-only rows, deletions marked and compacted past 20 %). Spaces with
//!   at least 5 000 vectors also get an HNSW graph over those rows (own implementation,
//!   M = 16, ef_construction = 100, `u32` links), maintained on upsert; searches use it with
//!   a beam that grows with `√rows`, traversing deleted and filtered-out rows without
//!   returning them. Small spaces, selective filters (< 8 % of rows allowed) and large `n`
//!   use the exact scan over the allowed rows only. Every hit passes the filter either way.
//! - **Filters**: per field value a compressed bitmap of the documents carrying it
//!   (`roaring`); sources, assets, path prefixes, kinds, tags, durations, capture dates,
//!   languages, speech and persons are answered by unions and intersections of those sets;
//!   only the segment time range is checked per document.
//! - **Hybrid**: each signal fetches `max((offset + limit) × 4, 50)` filtered candidates,
//!   then `fuse` with the request's [`Fusion`](heimdex_core::Fusion). On shards of 50 000
//!   documents or more the two signals run on two threads.
//! - **Tenants** are separate shards: their own postings, statistics, bitmaps and vectors.
//!   Vector dimensions are index-wide (a space is fixed by its first vector).
//! - **Persistence**: one checksummed snapshot written atomically by `flush` (temp file +
//!   rename): documents with their slots, and per space the vector rows and HNSW graph as
//!   they are in memory, so reopening restores the graph instead of rebuilding it. Postings
//!   and bitmaps are rebuilt on open. Loading streams the file; IO errors name the path,
//!   damaged snapshots are [`IndexError::Corrupt`](heimdex_core::IndexError::Corrupt).
//! - **Concurrency**: a `RwLock` around all state (many searches, one writer). The async
//!   `Index` methods keep blocking work off the runtime's threads: upserts, deletes and
//!   `flush` (file IO) run on tokio's blocking pool, and so do searches of shards of 10 000
//!   documents or more and any search that would wait for the lock; small searches run
//!   inline, where a thread hop would cost more than the search. The `*_blocking` methods
//!   run on the calling thread.
//!
//! Documents in a tenant are keyed by (asset, segment); ties in ranking are broken by
//! [`IndexDoc::key`](heimdex_core::IndexDoc::key).
//!
//! ## Why not an engine crate?
//!
//! `qdrant-edge` (Qdrant's engine in-process) was evaluated first; tantivy was also an
//! option. See `README.md` in this crate for the evaluation. In short: qdrant-edge 0.9.0
//! does not compile on Rust 1.95, 0.7.0 costs ~7 minutes of build on two cores, and it has
//! no highlighting and no positional, scored phrase query. This crate's embedded index is
//! ~4,300 lines with tests, depending only on serde, `roaring` and `rust-stemmers`; the
//! conformance suite plus the brute-force congruence checks pin its behaviour.

mod embedded;
mod filter;
mod hnsw;
mod keyword;
mod persist;
#[cfg(feature = "qdrant")]
pub mod qdrant;
mod query;
mod tokenize;
mod vector;

pub use embedded::{EmbeddedIndex, HYBRID_MIN_FETCH, HYBRID_OVERFETCH};
