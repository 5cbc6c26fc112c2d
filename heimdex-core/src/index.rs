//! The [`Index`] trait: time-coded segment documents, keyword + vector search, fusion, filters.

use std::collections::BTreeMap;
use std::fmt::Debug;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::error::ErrorKind;
use crate::model::{AssetId, SegmentKind, SourceId, TenantId};

/// Errors of any index.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IndexError {
    /// The request is malformed (empty query, wrong vector dimension, bad range).
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// A query vector names a space the index holds no vectors of (yet).
    #[error("unknown vector space `{space}`")]
    UnknownSpace {
        /// The space asked for.
        space: String,
    },
    /// The backend cannot do this (e.g. a vector space it was not configured with).
    #[error("not supported by {index}: {what}")]
    NotSupported {
        /// Backend name.
        index: &'static str,
        /// What was asked.
        what: String,
    },
    /// Stored index data is unreadable.
    #[error("corrupt index: {0}")]
    Corrupt(String),
    /// The backend is unreachable, busy or timed out; retrying later may succeed.
    #[error("{index} unavailable: {source}")]
    Unavailable {
        /// Backend name.
        index: &'static str,
        /// Underlying error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// Any other backend error.
    #[error("{index} error: {source}")]
    Backend {
        /// Backend name.
        index: &'static str,
        /// Underlying error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl IndexError {
    /// The category of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::InvalidRequest(_) | Self::UnknownSpace { .. } | Self::NotSupported { .. } => {
                ErrorKind::InvalidInput
            }
            Self::Unavailable { .. } => ErrorKind::Unavailable,
            Self::Corrupt(_) | Self::Backend { .. } => ErrorKind::Internal,
        }
    }
}

/// One searchable, time-coded document (a segment of an asset).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IndexDoc {
    /// Owner.
    pub tenant: TenantId,
    /// Source.
    pub source: SourceId,
    /// Asset.
    pub asset: AssetId,
    /// Segment id, unique within the asset.
    pub segment: String,
    /// Segment kind.
    pub kind: SegmentKind,
    /// Asset path / key (also searchable as text).
    pub path: String,
    /// Start, seconds.
    pub start_s: f64,
    /// End, seconds.
    pub end_s: f64,
    /// Searchable text.
    pub text: String,
    /// Thumbnail location.
    pub thumbnail: Option<String>,
    /// Tags.
    pub tags: Vec<String>,
    /// Named dense vectors, e.g. `text` → 384 floats.
    pub vectors: BTreeMap<String, Vec<f32>>,
    /// Asset-level facts every moment carries, for filtering.
    #[serde(default)]
    pub meta: DocMeta,
}

/// Facts of the asset (and moment) a document belongs to, used by filters.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DocMeta {
    /// Duration of the whole asset, seconds.
    pub asset_duration_s: Option<f64>,
    /// Capture date (RFC 3339 or `YYYY-MM-DD`), from container metadata.
    pub capture_date: Option<String>,
    /// Spoken language (ISO 639-1), from speech recognition.
    pub language: Option<String>,
    /// Whether the asset has recognised speech.
    pub has_speech: bool,
    /// Person (face cluster) ids seen during the moment.
    pub faces: Vec<String>,
}

impl IndexDoc {
    /// The document's unique key within its tenant.
    pub fn key(&self) -> String {
        format!("{}/{}", self.asset, self.segment)
    }
}

/// Filters applied to every signal of a search. Fields may be added.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct SearchFilter {
    /// Only these sources.
    pub sources: Vec<SourceId>,
    /// Only these assets.
    pub assets: Vec<AssetId>,
    /// Only paths starting with this prefix.
    pub path_prefix: Option<String>,
    /// Only segments overlapping `[from, to]` seconds.
    pub time_range: Option<(f64, f64)>,
    /// Only these kinds.
    pub kinds: Vec<SegmentKind>,
    /// Only documents carrying all of these tags.
    pub tags: Vec<String>,
    /// Only assets whose duration lies in `[min, max]` seconds.
    pub duration_range: Option<(f64, f64)>,
    /// Only assets captured on dates in `[from, to]` (`YYYY-MM-DD`, inclusive; compared on the
    /// first 10 characters of the capture date).
    pub date_range: Option<(String, String)>,
    /// Only these spoken languages.
    pub languages: Vec<String>,
    /// Only assets with (`true`) or without (`false`) speech.
    pub has_speech: Option<bool>,
    /// Only moments where one of these persons (face clusters) appears.
    pub faces: Vec<String>,
}

impl SearchFilter {
    /// Whether `doc` passes the filter (the reference semantics every backend must match).
    pub fn matches(&self, doc: &IndexDoc) -> bool {
        (self.sources.is_empty() || self.sources.contains(&doc.source))
            && (self.assets.is_empty() || self.assets.contains(&doc.asset))
            && self
                .path_prefix
                .as_deref()
                .is_none_or(|p| doc.path.starts_with(p))
            && self
                .time_range
                .is_none_or(|(from, to)| doc.end_s >= from && doc.start_s <= to)
            && (self.kinds.is_empty() || self.kinds.contains(&doc.kind))
            && self.tags.iter().all(|t| doc.tags.contains(t))
            && self.duration_range.is_none_or(|(lo, hi)| {
                doc.meta
                    .asset_duration_s
                    .is_some_and(|d| d >= lo && d <= hi)
            })
            && self.date_range.as_ref().is_none_or(|(from, to)| {
                doc.meta.capture_date.as_deref().is_some_and(|d| {
                    let day = d.get(..10).unwrap_or(d);
                    day >= from.as_str() && day <= to.as_str()
                })
            })
            && (self.languages.is_empty()
                || doc
                    .meta
                    .language
                    .as_ref()
                    .is_some_and(|l| self.languages.contains(l)))
            && self.has_speech.is_none_or(|h| doc.meta.has_speech == h)
            && (self.faces.is_empty() || self.faces.iter().any(|f| doc.meta.faces.contains(f)))
    }
}

/// How keyword and vector results are fused.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "method")]
pub enum Fusion {
    /// Reciprocal rank fusion with constant `k` (60 is customary).
    Rrf {
        /// The RRF constant.
        k: f32,
    },
    /// Weighted sum of per-signal scores normalised to [0, 1] by the top score.
    Weighted {
        /// Weight of the keyword signal.
        keyword: f32,
        /// Weight of the vector signal.
        vector: f32,
    },
}

impl Default for Fusion {
    fn default() -> Self {
        Self::Rrf { k: 60.0 }
    }
}

/// A search. Build with [`SearchRequest::new`] and the `with_*` methods; fields may be added.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct SearchRequest {
    /// Tenant (always required).
    pub tenant: TenantId,
    /// Keyword query: words, `"quoted phrases"`, `prefix*`.
    pub text: Option<String>,
    /// Vector query: (named space, vector).
    pub vector: Option<(String, Vec<f32>)>,
    /// Filters.
    pub filter: SearchFilter,
    /// Fusion when both signals are present.
    pub fusion: Fusion,
    /// Page size.
    pub limit: usize,
    /// Hits to skip (paging).
    pub offset: usize,
}

impl SearchRequest {
    /// A request for `tenant` returning 10 hits.
    pub fn new(tenant: TenantId) -> Self {
        Self {
            tenant,
            text: None,
            vector: None,
            filter: SearchFilter::default(),
            fusion: Fusion::default(),
            limit: 10,
            offset: 0,
        }
    }
    /// Set the keyword query.
    pub fn with_text(mut self, text: impl Into<String>) -> Self {
        self.text = Some(text.into());
        self
    }
    /// Set the vector query.
    pub fn with_vector(mut self, space: impl Into<String>, vector: Vec<f32>) -> Self {
        self.vector = Some((space.into(), vector));
        self
    }
    /// Set the filter.
    pub fn with_filter(mut self, filter: SearchFilter) -> Self {
        self.filter = filter;
        self
    }
    /// Set the page size.
    pub fn with_limit(mut self, limit: usize) -> Self {
        self.limit = limit;
        self
    }
    /// Set the offset.
    pub fn with_offset(mut self, offset: usize) -> Self {
        self.offset = offset;
        self
    }
    /// Set the fusion method.
    pub fn with_fusion(mut self, fusion: Fusion) -> Self {
        self.fusion = fusion;
        self
    }
}

/// Which signal contributed to a hit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SignalMatch {
    /// `keyword` or `vector:<space>`.
    pub signal: String,
    /// The signal's own score (BM25 or cosine).
    pub score: f32,
    /// 1-based rank within the signal.
    pub rank: u32,
}

/// One hit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SearchHit {
    /// The document (vectors omitted).
    pub doc: IndexDoc,
    /// Final (fused) score; higher is better.
    pub score: f32,
    /// Signals that matched.
    pub signals: Vec<SignalMatch>,
    /// Highlighted snippet of the matching text (`[` `]` around matched terms).
    pub snippet: Option<String>,
}

/// Time-coded segment index.
///
/// # Contract
/// - [`upsert`](Index::upsert) inserts or replaces documents by (tenant, asset, segment); a
///   document is searchable once `upsert` returns.
/// - [`delete_asset`](Index::delete_asset) removes every document of an asset and returns how
///   many; re-indexing an asset is `delete_asset` + `upsert`, leaving nothing stale.
/// - [`search`](Index::search) with `text` ranks by BM25 over the text and path, supports
///   `"phrases"` (terms adjacent in order) and `prefix*`, and returns a highlighted snippet;
///   with `vector` ranks by cosine similarity in the named space; with both, fuses the two
///   lists ([`Fusion`]). Every signal applies the same [`SearchFilter`], with exactly the
///   semantics of [`SearchFilter::matches`], and only the request's tenant is visible.
///   Hits are ordered by score descending, ties by document key; `offset`/`limit` page them.
///   A request with neither `text` nor `vector` is [`IndexError::InvalidRequest`]; a vector
///   in a space the index has never seen is [`IndexError::UnknownSpace`].
/// - [`asset_counts`](Index::asset_counts) agrees with `count` and with `delete_asset`.
#[async_trait]
pub trait Index: Send + Sync + Debug {
    /// Insert or replace documents.
    async fn upsert(&self, docs: &[IndexDoc]) -> Result<(), IndexError>;
    /// Remove all documents of an asset; returns how many were removed.
    async fn delete_asset(&self, tenant: &TenantId, asset: &AssetId) -> Result<u64, IndexError>;
    /// Search.
    async fn search(&self, request: &SearchRequest) -> Result<Vec<SearchHit>, IndexError>;
    /// Number of documents of a tenant.
    async fn count(&self, tenant: &TenantId) -> Result<u64, IndexError>;
    /// Number of documents of each asset of a tenant (assets without documents are absent):
    /// what `check` compares with the Store to find gaps.
    async fn asset_counts(&self, tenant: &TenantId) -> Result<BTreeMap<AssetId, u64>, IndexError>;
    /// Make all changes durable.
    async fn flush(&self) -> Result<(), IndexError>;
}
