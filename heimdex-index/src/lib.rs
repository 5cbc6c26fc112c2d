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
//! [`SearchFilter`](heimdex_core::SearchFilter), by calling
//! [`SearchFilter::matches`](heimdex_core::SearchFilter::matches) itself, so filter semantics
//! cannot drift from the reference.
//!
//! - **Keyword**: a positional inverted index (`BTreeMap<term, postings>`; each posting has
//!   the term's positions in the document). `path` and `text` are indexed as one stream, so
//!   a path is searchable. BM25 with k1 = 1.2, b = 0.75 and the Lucene idf
//!   `ln(1 + (N - df + 0.5) / (df + 0.5))`; clauses are OR-ed. A phrase scores like a term
//!   whose frequency is the phrase count and whose idf is the sum of its terms' idfs.
//!   `prefix*` walks the sorted term dictionary (at most 256
//!   terms, the most frequent). Snippets re-tokenize
//!   the hit's text and keep its original casing. The analyzer: Unicode alphanumeric runs,
//!   lower-cased, common Latin accents folded (`Café` → `cafe`).
//! - **Vector**: per tenant and space, normalised vectors stored contiguously in one
//!   `Vec<f32>` (append-only rows, deletions marked and compacted past 20 %). Spaces with
//!   at least 5 000 vectors also get an HNSW graph over those rows (own implementation,
//!   M = 16, ef_construction = 100, `u32` links), maintained on upsert; searches use it with
//!   `ef = max(96, √rows / 4, 2·n)`, traversing deleted and filtered-out rows without
//!   returning them.
//!   Small spaces, selective filters (estimated < 8 % of rows pass) and large `n` use the
//!   exact scan with the filter applied first. Every hit passes the filter either way.
//! - **Hybrid**: each signal fetches `max((offset + limit) × 4, 50)` filtered candidates,
//!   then `fuse` with the request's [`Fusion`](heimdex_core::Fusion).
//! - **Tenants** are separate shards: their own postings, statistics and vectors. Vector
//!   dimensions are index-wide (a space is fixed by its first vector).
//! - **Persistence**: documents only, in one checksummed snapshot written atomically by
//!   `flush` (temp file + rename); indexes are rebuilt on open. IO errors name the path.
//! - **Concurrency**: a `RwLock` around all state; the trait is async but every operation is
//!   in memory and short (`flush` does blocking file IO on the calling thread).
//!
//! Documents in a tenant are keyed by (asset, segment); ties in ranking are broken by
//! [`IndexDoc::key`](heimdex_core::IndexDoc::key).
//!
//! ## Why not an engine crate?
//!
//! `qdrant-edge` (Qdrant's engine in-process) was evaluated first; tantivy was also an
//! option. See `README.md` in this crate for the evaluation. In short: qdrant-edge 0.9.0
//! does not compile on Rust 1.95, 0.7.0 costs ~7 minutes of build on two cores, and it has
//! no highlighting and no positional, scored phrase query. This crate is ~1,700 lines
//! (tests included) with no dependencies beyond serde, and the conformance suite plus the
//! brute-force congruence check pin its behaviour.

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
