//! The Qdrant backend of [`Index`] (feature `qdrant`), for the server stack.
//!
//! ## Design
//!
//! - **One collection** per [`QdrantConfig::collection`], created on
//!   [`QdrantIndex::connect`] if missing, with one named dense vector per configured space
//!   ([`QdrantConfig::spaces`]: name → dimensions, cosine distance) and one sparse vector
//!   named [`SPARSE_VECTOR`] (`keyword`) with Qdrant's IDF modifier. An existing collection
//!   is used as is (its vector configuration is not checked). All tenants share the
//!   collection; `tenant` is a keyword payload index with `is_tenant`, so Qdrant co-locates
//!   a tenant's points, and every request carries a `tenant` condition.
//! - **Point id**: a deterministic UUID (version-5 layout; SHA-256 of tenant, asset and
//!   segment), so upserting the same (tenant, asset, segment) replaces the point.
//! - **Payload**: the whole document without vectors as a JSON string `doc` (round-trips
//!   exactly), plus flat filter fields with payload indexes: keyword `tenant` (tenant
//!   index), `source`, `asset`, `kind`, `tags`, `language`, `faces`, `path_prefixes`; float
//!   `start_s`, `end_s`, `duration_s`, `capture_day`; bool `has_speech`; and `terms`, the
//!   document's distinct analysed terms (informational; not indexed).
//! - **Keyword signal**: path and text are analysed by the same analyzer as the embedded
//!   index (one stream with a gap, `keyword::analyze`, stems for a document whose
//!   `meta.language` has a Snowball stemmer). The sparse vector has
//!   one dimension per term (`t:term`), per term prefix of 1–[`MAX_PREFIX_CHARS`]
//!   characters (`p:pre`, for `prefix*`) and per adjacent term pair (`b:a b`, for
//!   `"phrases"`); a stemmed document also has one per stem (`s:en:run`) and per adjacent
//!   stem pair (`c:en:a b`). A dimension's index is the 32-bit FNV-1a hash of that string
//!   and its value the BM25 term-frequency part `tf·(k1+1) / (tf + k1·(1 − b + b·len/avgdl))`
//!   with the fixed [`ASSUMED_AVG_LEN`] as avgdl. The query has weight 1 on the dimensions
//!   of its clauses (a phrase: its pairs), plus, for terms and phrases, their stem
//!   dimensions in the query languages: the request's `filter.languages` when given, else
//!   [`QdrantConfig::languages`] (default `["en"]`). Qdrant multiplies by the
//!   collection-wide IDF, which gives a BM25-like score (OR semantics, rarer and more
//!   frequent terms first, shorter documents first). Qdrant returns candidates; every
//!   candidate is then **verified client-side**: at least one clause must really match
//!   (phrases: all terms adjacent and in order; long prefixes; hash collisions; stems only
//!   in the document's language and only if it is a query language), and the document must
//!   pass [`SearchFilter::matches`]. Snippets use the shared snippet code (inflections
//!   highlighted in the document's language).
//! - **Vector signal**: a `nearest` query on the named dense vector; the score is Qdrant's
//!   cosine. Points without that vector are never returned.
//! - **Filters**: every [`SearchFilter`] field becomes a Qdrant condition (any-of as a
//!   keyword `match any`, tags all-of as one condition per tag, time overlap as
//!   `end_s >= from AND start_s <= to`, `path_prefix` as an exact match on `path_prefixes`,
//!   which holds every character prefix of the path up to [`MAX_PATH_PREFIX_CHARS`]
//!   characters and every prefix ending at `/`; the date range on `capture_day`, the first
//!   ten characters `YYYY-MM-DD` as the number `YYYYMMDD`). Where Qdrant's condition can only
//!   be a superset (a longer path prefix, a date bound not of the form `YYYY-MM-DD`) it is
//!   widened and the client-side [`SearchFilter::matches`] check makes the result exact;
//!   capture dates that are not `YYYY-MM-DD…` never match a date range here.
//! - **Ranking and paging**: each signal's candidates are sorted by (score desc, key asc);
//!   Qdrant's own order among equal scores is arbitrary, so the candidate list is grown
//!   (×4, up to [`MAX_FETCH`]) until the hits needed are strictly better than the last
//!   candidate fetched, or the candidates are exhausted. Then `offset`/`limit` page them.
//! - **Hybrid**: both signals are run (each with `max((offset + limit) × 4, 50)`
//!   candidates and the same filter) and fused client-side with
//!   [`heimdex_core::fusion::fuse`], for RRF as well as weighted fusion. Qdrant's
//!   server-side `prefetch` + `Fusion::Rrf` is deliberately not used: the per-hit `signals`
//!   need both lists anyway, client-side verification must happen before fusion, and
//!   `fuse` makes hybrid scores identical to every other backend's (Qdrant's RRF constant
//!   and tie order differ).
//! - **Writes** use `wait = true`, so a document is searchable once `upsert` returns;
//!   [`flush`](Index::flush) is a no-op (Qdrant persists through its WAL).
//!   `delete_asset` counts (exactly) and then deletes by filter (tenant + asset).
//! - **Errors**: client and server errors are [`IndexError::Backend`] with index `qdrant`;
//!   malformed requests (no query, wrong dimension, unknown space, bad range, zero vector)
//!   are [`IndexError::InvalidRequest`], checked before anything is sent.
//!
//! Testing: the unit tests run the shared conformance suite against an in-process fake of
//! Qdrant (module `fake`) that interprets the exact requests sent (filters, sparse IDF dot
//! product, cosine, unordered ties); `tests/qdrant_conformance.rs` runs it against a real
//! server when `HEIMDEX_QDRANT_URL` is set (it passes against Qdrant 1.18.3).
//!
//! Differences from the embedded index: IDF is collection-wide (all tenants), avgdl is a
//! constant, a phrase scores as the sum of its pairs, stems are matched for the query
//! languages only (the embedded index uses every language it holds), and a term's raw and
//! stem dimensions add up (the embedded index takes the better of the two), so an exact
//! match in a stemmed document gets both.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;

use async_trait::async_trait;
use heimdex_core::fusion::{RankedList, fuse};
use heimdex_core::index::SignalMatch;
use heimdex_core::{
    AssetId, Index, IndexDoc, IndexError, SearchFilter, SearchHit, SearchRequest, TenantId,
};
use qdrant_client::Qdrant;
use qdrant_client::qdrant::{
    BoolIndexParamsBuilder, Condition, CountPointsBuilder, CreateCollectionBuilder,
    CreateFieldIndexCollectionBuilder, DeletePointsBuilder, Distance, FacetCountsBuilder,
    FieldType, Filter, FloatIndexParamsBuilder, KeywordIndexParamsBuilder, Modifier, NamedVectors,
    PayloadIncludeSelector, PointStruct, Query, QueryPointsBuilder, Range, ScoredPoint,
    SearchParamsBuilder, SparseVectorParamsBuilder, SparseVectorsConfigBuilder,
    UpsertPointsBuilder, Value, VectorInput, VectorParamsBuilder, VectorsConfigBuilder,
    facet_value, value::Kind,
};
use sha2::{Digest, Sha256};

use crate::keyword::{B, K1, analysis_matches, analyze, snippet};
use crate::query::{Clause, request_clauses, request_vector};
use crate::tokenize::{Stemming, parse_stem_key};

const INDEX: &str = "qdrant";
/// Oldest Qdrant server this backend is tested to work with (query API with prefetch,
/// sparse vectors with the IDF modifier, payload indexes). The conformance suite has run
/// against 1.18.3.
pub const MIN_SERVER_VERSION: &str = "1.17.0";

/// Whether a server version string (`1.18.3`, `1.19.0-dev`) is 1.x at or above
/// [`MIN_SERVER_VERSION`].
fn server_supported(version: &str) -> bool {
    let nums = |v: &str| -> Option<(u32, u32)> {
        let mut it = v.split(['.', '-']);
        Some((it.next()?.parse().ok()?, it.next()?.parse().ok()?))
    };
    match (nums(version), nums(MIN_SERVER_VERSION)) {
        (Some((major, minor)), Some((min_major, min_minor))) => {
            major == min_major && minor >= min_minor
        }
        _ => false,
    }
}

/// Name of the sparse (keyword) vector.
pub const SPARSE_VECTOR: &str = "keyword";
/// Prefixes of terms up to this many characters get a sparse dimension.
pub const MAX_PREFIX_CHARS: usize = 24;
/// Character prefixes of paths up to this length are stored for `path_prefix` filters.
pub const MAX_PATH_PREFIX_CHARS: usize = 64;
/// The average document length (tokens) assumed by the BM25 length normalisation.
pub const ASSUMED_AVG_LEN: f32 = 24.0;
/// Most candidates fetched from Qdrant for one signal of one search.
pub const MAX_FETCH: usize = 10_000;
/// Hybrid: each signal fetches `max((offset + limit) × HYBRID_OVERFETCH, HYBRID_MIN_FETCH)`.
pub const HYBRID_OVERFETCH: usize = 4;
/// See [`HYBRID_OVERFETCH`].
pub const HYBRID_MIN_FETCH: usize = 50;
/// Points per upsert request.
const UPSERT_BATCH: usize = 256;

/// Connection and collection settings.
#[derive(Clone)]
pub struct QdrantConfig {
    /// gRPC URL, e.g. `http://localhost:6334`.
    pub url: String,
    /// API key, if the server requires one (empty = none).
    pub api_key: Option<String>,
    /// Collection name.
    pub collection: String,
    /// Dense vector spaces: name → dimensions.
    pub spaces: BTreeMap<String, usize>,
    /// Stemming languages (ISO 639-1) of keyword queries whose filter names no language:
    /// their term and phrase stems are looked up in documents of these languages. Default
    /// `["en"]`; empty = exact terms only unless the filter names languages. Documents are
    /// always stemmed in their own `meta.language`.
    pub languages: Vec<String>,
}

impl Default for QdrantConfig {
    fn default() -> Self {
        Self {
            url: String::new(),
            api_key: None,
            collection: String::new(),
            spaces: BTreeMap::new(),
            languages: vec!["en".to_owned()],
        }
    }
}

impl fmt::Debug for QdrantConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("QdrantConfig")
            .field("url", &self.url)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("collection", &self.collection)
            .field("spaces", &self.spaces)
            .field("languages", &self.languages)
            .finish()
    }
}

/// [`Index`] on a Qdrant server. See the [module docs](self) for the design.
pub struct QdrantIndex {
    client: Client,
    collection: String,
    spaces: BTreeMap<String, usize>,
    /// [`QdrantConfig::languages`].
    languages: Vec<String>,
}

impl fmt::Debug for QdrantIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("QdrantIndex")
            .field("collection", &self.collection)
            .field("spaces", &self.spaces)
            .field("languages", &self.languages)
            .finish_non_exhaustive()
    }
}

fn backend(e: impl std::error::Error + Send + Sync + 'static) -> IndexError {
    IndexError::Backend {
        index: INDEX,
        source: Box::new(e),
    }
}

fn backend_msg(msg: String) -> IndexError {
    IndexError::Backend {
        index: INDEX,
        source: msg.into(),
    }
}

fn invalid(msg: impl Into<String>) -> IndexError {
    IndexError::InvalidRequest(msg.into())
}

/// Keyword payload fields (with a keyword index), besides `tenant`.
const KEYWORD_FIELDS: &[&str] = &[
    "source",
    "asset",
    "kind",
    "tags",
    "language",
    "faces",
    "path_prefixes",
];
/// Float payload fields (with a float index).
const FLOAT_FIELDS: &[&str] = &["start_s", "end_s", "duration_s", "capture_day"];

impl QdrantIndex {
    /// Connect, creating the collection (vectors and payload indexes) if it does not exist.
    pub async fn connect(config: QdrantConfig) -> Result<Self, IndexError> {
        if config.collection.is_empty() {
            return Err(invalid("qdrant: empty collection name"));
        }
        for (space, &dim) in &config.spaces {
            if dim == 0 || space == SPARSE_VECTOR {
                return Err(invalid(format!(
                    "qdrant: bad vector space `{space}` ({dim} dimensions)"
                )));
            }
        }
        // The client's own version check only prints to stdout; check the server here and
        // fail with a typed error instead.
        let mut builder = Qdrant::from_url(&config.url).skip_compatibility_check();
        if let Some(key) = config.api_key.as_ref().filter(|k| !k.is_empty()) {
            builder = builder.api_key(key.clone());
        }
        let client = builder.build().map_err(backend)?;
        let version = client.health_check().await.map_err(backend)?.version;
        if !server_supported(&version) {
            return Err(IndexError::NotSupported {
                index: INDEX,
                what: format!("Qdrant server {version} (needs {MIN_SERVER_VERSION} or newer, 1.x)"),
            });
        }
        let index = Self {
            client: Client::Remote(client),
            collection: config.collection,
            spaces: config.spaces,
            languages: config.languages,
        };
        index.ensure_collection().await?;
        Ok(index)
    }

    /// The collection this index uses.
    pub fn collection(&self) -> &str {
        &self.collection
    }

    /// Delete the whole collection (every tenant's documents). The index is unusable after.
    #[cfg_attr(not(test), allow(irrefutable_let_patterns))]
    pub async fn drop_collection(&self) -> Result<(), IndexError> {
        if let Client::Remote(client) = &self.client {
            client
                .delete_collection(self.collection.clone())
                .await
                .map_err(backend)?;
        }
        Ok(())
    }

    #[cfg_attr(not(test), allow(irrefutable_let_patterns))]
    async fn ensure_collection(&self) -> Result<(), IndexError> {
        let Client::Remote(client) = &self.client else {
            return Ok(());
        };
        let exists = client
            .collection_exists(&self.collection)
            .await
            .map_err(backend)?;
        if exists {
            return Ok(());
        }
        let mut dense = VectorsConfigBuilder::default();
        for (space, &dim) in &self.spaces {
            dense.add_named_vector_params(
                space.clone(),
                VectorParamsBuilder::new(dim as u64, Distance::Cosine),
            );
        }
        let mut sparse = SparseVectorsConfigBuilder::default();
        sparse.add_named_vector_params(
            SPARSE_VECTOR,
            SparseVectorParamsBuilder::default().modifier(Modifier::Idf),
        );
        let mut create =
            CreateCollectionBuilder::new(self.collection.clone()).sparse_vectors_config(sparse);
        if !self.spaces.is_empty() {
            create = create.vectors_config(dense);
        }
        if let Err(e) = client.create_collection(create).await {
            // Another process may have created it meanwhile.
            let exists = client
                .collection_exists(&self.collection)
                .await
                .map_err(backend)?;
            if !exists {
                return Err(backend(e));
            }
            return Ok(());
        }
        let tenant = CreateFieldIndexCollectionBuilder::new(
            self.collection.clone(),
            "tenant",
            FieldType::Keyword,
        )
        .field_index_params(KeywordIndexParamsBuilder::default().is_tenant(true))
        .wait(true);
        client.create_field_index(tenant).await.map_err(backend)?;
        for field in KEYWORD_FIELDS {
            let req = CreateFieldIndexCollectionBuilder::new(
                self.collection.clone(),
                *field,
                FieldType::Keyword,
            )
            .field_index_params(KeywordIndexParamsBuilder::default())
            .wait(true);
            client.create_field_index(req).await.map_err(backend)?;
        }
        for field in FLOAT_FIELDS {
            let req = CreateFieldIndexCollectionBuilder::new(
                self.collection.clone(),
                *field,
                FieldType::Float,
            )
            .field_index_params(FloatIndexParamsBuilder::default())
            .wait(true);
            client.create_field_index(req).await.map_err(backend)?;
        }
        let req = CreateFieldIndexCollectionBuilder::new(
            self.collection.clone(),
            "has_speech",
            FieldType::Bool,
        )
        .field_index_params(BoolIndexParamsBuilder::default())
        .wait(true);
        client.create_field_index(req).await.map_err(backend)?;
        Ok(())
    }

    /// Validate a document and turn it into a point.
    fn point(&self, doc: &IndexDoc) -> Result<PointStruct, IndexError> {
        to_point(&self.spaces, doc)
    }

    /// One signal's verified candidates, sorted by (score desc, key asc), complete for the
    /// first `need` positions (see the module docs).
    async fn ranked(
        &self,
        signal: &Signal,
        req: &SearchRequest,
        filter: &Filter,
        clauses: &[Clause],
        languages: &[&str],
        need: usize,
    ) -> Result<Vec<(IndexDoc, f32)>, IndexError> {
        let mut fetch = need.clamp(1, MAX_FETCH);
        loop {
            let mut q = QueryPointsBuilder::new(self.collection.clone())
                .filter(filter.clone())
                .limit(fetch as u64)
                .with_payload(PayloadIncludeSelector::new(vec!["doc".to_owned()]));
            q = match signal {
                Signal::Keyword(dims) => q
                    .query(Query::new_nearest(VectorInput::from(dims.as_slice())))
                    .using(SPARSE_VECTOR),
                Signal::Vector(space, v) => q
                    .query(Query::new_nearest(VectorInput::from(v.clone())))
                    .using(space.clone())
                    .params(SearchParamsBuilder::default().hnsw_ef(fetch.max(128) as u64)),
            };
            let points = self.client.query(q.build()).await?;
            let exhausted = points.len() < fetch;
            let last = points.last().map(|p| p.score);
            let mut hits = Vec::with_capacity(points.len());
            for p in points {
                let score = p.score;
                let doc = decode(p)?;
                let ok = doc.tenant == req.tenant
                    && req.filter.matches(&doc)
                    && (!matches!(signal, Signal::Keyword(_))
                        || clauses_match(&doc, clauses, languages));
                if ok {
                    hits.push((doc, score));
                }
            }
            hits.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.key().cmp(&b.0.key())));
            if exhausted || fetch >= MAX_FETCH {
                return Ok(hits);
            }
            let boundary = last.unwrap_or(f32::NEG_INFINITY);
            let complete = hits.iter().take_while(|h| h.1 > boundary).count();
            if complete >= need {
                hits.truncate(complete);
                return Ok(hits);
            }
            fetch = fetch.saturating_mul(4).min(MAX_FETCH);
        }
    }
}

/// Validate a document against the configured spaces and turn it into a point.
fn to_point(spaces: &BTreeMap<String, usize>, doc: &IndexDoc) -> Result<PointStruct, IndexError> {
    let mut vectors: Vec<(String, qdrant_client::qdrant::Vector)> = Vec::new();
    for (space, v) in &doc.vectors {
        let dim = spaces.get(space).copied().ok_or_else(|| {
            invalid(format!(
                "document {}: unknown vector space `{space}` (configured: {:?})",
                doc.key(),
                spaces.keys().collect::<Vec<_>>()
            ))
        })?;

        if v.len() != dim {
            return Err(invalid(format!(
                "document {}: vector space `{space}` has {dim} dimensions, got {}",
                doc.key(),
                v.len()
            )));
        }
        if !usable(v) {
            return Err(invalid(format!(
                "document {}: vector `{space}` is zero or not finite",
                doc.key()
            )));
        }
        vectors.push((space.clone(), v.clone().into()));
    }
    let sparse = doc_sparse(&doc.path, &doc.text, doc.meta.language.as_deref());
    if !sparse.is_empty() {
        vectors.push((SPARSE_VECTOR.to_owned(), sparse.as_slice().into()));
    }
    let stored = IndexDoc {
        vectors: BTreeMap::new(),
        ..doc.clone()
    };
    let json = serde_json::to_string(&stored).map_err(backend)?;
    let (analyzed, _) = analyze(&doc.path, &doc.text, doc.meta.language.as_deref());
    let mut payload = qdrant_client::Payload::new();
    payload.insert("doc", json);
    payload.insert("tenant", doc.tenant.as_str());
    payload.insert("source", doc.source.as_str());
    payload.insert("asset", doc.asset.as_str());
    payload.insert("segment", doc.segment.as_str());
    payload.insert("kind", doc.kind.as_str());
    payload.insert("path", doc.path.as_str());
    payload.insert("path_prefixes", path_prefixes(&doc.path));
    payload.insert("start_s", doc.start_s);
    payload.insert("end_s", doc.end_s);
    payload.insert("tags", doc.tags.clone());
    if let Some(d) = doc.meta.asset_duration_s {
        payload.insert("duration_s", d);
    }
    if let Some(day) = doc.meta.capture_date.as_deref().and_then(day_number) {
        payload.insert("capture_day", day);
    }
    if let Some(l) = &doc.meta.language {
        payload.insert("language", l.as_str());
    }
    payload.insert("has_speech", doc.meta.has_speech);
    payload.insert("faces", doc.meta.faces.clone());
    let raw_terms: Vec<String> = analyzed
        .into_keys()
        .filter(|t| parse_stem_key(t).is_none())
        .collect();
    payload.insert("terms", raw_terms);
    let named: NamedVectors = vectors.into();
    Ok(PointStruct::new(
        point_id(&doc.tenant, &doc.asset, &doc.segment),
        named,
        payload,
    ))
}

/// The Qdrant calls the index makes: a server, or (in unit tests) an in-process fake that
/// interprets the same requests.
enum Client {
    Remote(Qdrant),
    #[cfg(test)]
    Fake(std::sync::Mutex<fake::Store>),
}

impl Client {
    async fn upsert(&self, req: UpsertPointsBuilder) -> Result<(), IndexError> {
        match self {
            Self::Remote(c) => c.upsert_points(req).await.map(|_| ()).map_err(backend),
            #[cfg(test)]
            Self::Fake(s) => {
                s.lock()
                    .map_err(|_| backend_msg("poisoned".into()))?
                    .upsert(req.build());
                Ok(())
            }
        }
    }

    async fn count(&self, req: CountPointsBuilder) -> Result<u64, IndexError> {
        match self {
            Self::Remote(c) => Ok(c
                .count(req)
                .await
                .map_err(backend)?
                .result
                .map_or(0, |r| r.count)),
            #[cfg(test)]
            Self::Fake(s) => Ok(s
                .lock()
                .map_err(|_| backend_msg("poisoned".into()))?
                .count(req.build().filter.as_ref())),
        }
    }

    /// Values of a keyword payload field with their point counts.
    async fn facet(&self, req: FacetCountsBuilder) -> Result<Vec<(String, u64)>, IndexError> {
        let hits = match self {
            Self::Remote(c) => c.facet(req).await.map_err(backend)?.hits,
            #[cfg(test)]
            Self::Fake(s) => s
                .lock()
                .map_err(|_| backend_msg("poisoned".into()))?
                .facet(req.build()),
        };
        Ok(hits
            .into_iter()
            .filter_map(|h| match h.value?.variant? {
                facet_value::Variant::StringValue(v) => Some((v, h.count)),
                _ => None,
            })
            .collect())
    }

    async fn delete(&self, req: DeletePointsBuilder) -> Result<(), IndexError> {
        match self {
            Self::Remote(c) => c.delete_points(req).await.map(|_| ()).map_err(backend),
            #[cfg(test)]
            Self::Fake(s) => {
                s.lock()
                    .map_err(|_| backend_msg("poisoned".into()))?
                    .delete(req.build());
                Ok(())
            }
        }
    }

    async fn query(
        &self,
        req: qdrant_client::qdrant::QueryPoints,
    ) -> Result<Vec<ScoredPoint>, IndexError> {
        match self {
            Self::Remote(c) => Ok(c.query(req).await.map_err(backend)?.result),
            #[cfg(test)]
            Self::Fake(s) => Ok(s
                .lock()
                .map_err(|_| backend_msg("poisoned".into()))?
                .query(&req)),
        }
    }
}

/// A signal's Qdrant query.
#[derive(Debug)]
enum Signal {
    /// Sparse query dimensions.
    Keyword(Vec<(u32, f32)>),
    /// Named space and dense vector.
    Vector(String, Vec<f32>),
}

fn usable(v: &[f32]) -> bool {
    !v.is_empty() && v.iter().all(|x| x.is_finite()) && v.iter().any(|&x| x != 0.0)
}

/// Decode the stored document of a point.
fn decode(p: ScoredPoint) -> Result<IndexDoc, IndexError> {
    match p.payload.get("doc") {
        Some(Value {
            kind: Some(Kind::StringValue(s)),
        }) => serde_json::from_str(s)
            .map_err(|e| IndexError::Corrupt(format!("qdrant point payload `doc`: {e}"))),
        _ => Err(IndexError::Corrupt(
            "qdrant point without a `doc` payload".into(),
        )),
    }
}

/// Deterministic point id: a UUID (version-5 layout) from SHA-256 of the document's key.
pub fn point_id(tenant: &TenantId, asset: &AssetId, segment: &str) -> String {
    let mut h = Sha256::new();
    for part in [tenant.as_str(), asset.as_str(), segment] {
        h.update((part.len() as u64).to_le_bytes());
        h.update(part.as_bytes());
    }
    let d = h.finalize();
    let mut b = [0u8; 16];
    b.copy_from_slice(&d[..16]);
    b[6] = (b[6] & 0x0f) | 0x50;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

/// 32-bit FNV-1a.
fn fnv1a(s: &str) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in s.as_bytes() {
        h ^= u32::from(*b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}

fn term_dim(t: &str) -> u32 {
    fnv1a(&format!("t:{t}"))
}

fn prefix_dim(p: &str) -> u32 {
    fnv1a(&format!("p:{p}"))
}

fn pair_dim(a: &str, b: &str) -> u32 {
    fnv1a(&format!("b:{a} {b}"))
}

fn stem_dim(code: &str, stem: &str) -> u32 {
    fnv1a(&format!("s:{code}:{stem}"))
}

fn stem_pair_dim(code: &str, a: &str, b: &str) -> u32 {
    fnv1a(&format!("c:{code}:{a} {b}"))
}

/// The stemmers of a search: the filter's languages if any, else the configured ones
/// (unsupported languages skipped, each language once).
fn query_stemmings(filter_languages: &[String], configured: &[String]) -> Vec<Stemming> {
    let wanted = if filter_languages.is_empty() {
        configured
    } else {
        filter_languages
    };
    let mut out: Vec<Stemming> = Vec::new();
    for s in wanted.iter().filter_map(|l| Stemming::for_language(l)) {
        if out.iter().all(|o| o.code() != s.code()) {
            out.push(s);
        }
    }
    out
}

/// The first `n` characters of `s`.
fn chars_prefix(s: &str, n: usize) -> &str {
    match s.char_indices().nth(n) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// BM25 term-frequency part with the assumed average length.
fn tf_weight(tf: f32, len: u32) -> f32 {
    let norm = 1.0 - B + B * len as f32 / ASSUMED_AVG_LEN;
    tf * (K1 + 1.0) / (tf + K1 * norm)
}

/// The sparse vector of a document (indices unique, sorted); `language` as in
/// `keyword::analyze`.
fn doc_sparse(path: &str, text: &str, language: Option<&str>) -> Vec<(u32, f32)> {
    let (analyzed, len) = analyze(path, text, language);
    // Position → raw term, and position → stem term (`code:stem`), for the pairs.
    let mut by_pos: BTreeMap<u32, &str> = BTreeMap::new();
    let mut stem_by_pos: BTreeMap<u32, (&str, &str)> = BTreeMap::new();
    for (term, positions) in &analyzed {
        let stem = parse_stem_key(term);
        for &p in positions {
            match stem {
                Some(cs) => {
                    stem_by_pos.insert(p, cs);
                }
                None => {
                    by_pos.insert(p, term);
                }
            }
        }
    }
    // Frequencies of terms, prefixes, stems and adjacent pairs (distinct strings first, so
    // hash collisions between different strings add up rather than overwrite).
    let mut tfs: BTreeMap<String, f32> = BTreeMap::new();
    for (term, positions) in &analyzed {
        let tf = positions.len() as f32;
        if let Some((code, stem)) = parse_stem_key(term) {
            *tfs.entry(format!("s:{code}:{stem}")).or_default() += tf;
            continue;
        }
        *tfs.entry(format!("t:{term}")).or_default() += tf;
        let n = term.chars().count().min(MAX_PREFIX_CHARS);
        for k in 1..=n {
            *tfs.entry(format!("p:{}", chars_prefix(term, k)))
                .or_default() += tf;
        }
    }
    for (&p, &a) in &by_pos {
        if let Some(&b) = p.checked_add(1).and_then(|q| by_pos.get(&q)) {
            *tfs.entry(format!("b:{a} {b}")).or_default() += 1.0;
        }
    }
    for (&p, &(code, a)) in &stem_by_pos {
        if let Some(&(_, b)) = p.checked_add(1).and_then(|q| stem_by_pos.get(&q)) {
            *tfs.entry(format!("c:{code}:{a} {b}")).or_default() += 1.0;
        }
    }
    let mut dims: BTreeMap<u32, f32> = BTreeMap::new();
    for (key, tf) in tfs {
        *dims.entry(fnv1a(&key)).or_default() += tf_weight(tf, len);
    }
    dims.into_iter().collect()
}

/// The sparse query of keyword clauses (indices unique), with stem dimensions for terms
/// and phrases in each of `stemmings`' languages.
fn query_sparse(clauses: &[Clause], stemmings: &[Stemming]) -> Vec<(u32, f32)> {
    let mut dims: BTreeSet<u32> = BTreeSet::new();
    for c in clauses {
        match c {
            Clause::Term(t) => {
                dims.insert(term_dim(t));
                for s in stemmings {
                    dims.insert(stem_dim(s.code(), &s.stem(t)));
                }
            }
            Clause::Prefix(p) => {
                dims.insert(prefix_dim(chars_prefix(p, MAX_PREFIX_CHARS)));
            }
            Clause::Phrase(ts) => {
                for w in ts.windows(2) {
                    dims.insert(pair_dim(&w[0], &w[1]));
                    for s in stemmings {
                        dims.insert(stem_pair_dim(s.code(), &s.stem(&w[0]), &s.stem(&w[1])));
                    }
                }
            }
        }
    }
    dims.into_iter().map(|d| (d, 1.0)).collect()
}

/// Whether at least one clause really matches the document's path + text: exactly, or
/// through stems when the document's language is one of the query `languages` (codes).
fn clauses_match(doc: &IndexDoc, clauses: &[Clause], languages: &[&str]) -> bool {
    let language = doc.meta.language.as_deref();
    let (analyzed, _) = analyze(&doc.path, &doc.text, language);
    let stem_language = language
        .and_then(Stemming::for_language)
        .filter(|s| languages.contains(&s.code()))
        .and(language);
    analysis_matches(&analyzed, stem_language, clauses)
}

/// Every character prefix of `path` up to [`MAX_PATH_PREFIX_CHARS`], and every prefix
/// ending with `/` (plus the whole path).
fn path_prefixes(path: &str) -> Vec<String> {
    let mut out: BTreeSet<String> = BTreeSet::new();
    for (n, (i, c)) in path.char_indices().enumerate() {
        let end = i + c.len_utf8();
        if n < MAX_PATH_PREFIX_CHARS || c == '/' {
            out.insert(path[..end].to_owned());
        }
    }
    out.insert(path.to_owned());
    out.into_iter().collect()
}

/// The Qdrant condition value for a `path_prefix` filter: the prefix itself if it is stored
/// for every path that has it, else the longest prefix of it that is (a superset).
fn path_prefix_key(prefix: &str) -> Option<String> {
    if prefix.chars().count() <= MAX_PATH_PREFIX_CHARS {
        return Some(prefix.to_owned());
    }
    let slash = prefix.rfind('/').map(|i| &prefix[..=i]);
    let head = chars_prefix(prefix, MAX_PATH_PREFIX_CHARS);
    match slash {
        Some(s) if s.len() > head.len() => Some(s.to_owned()),
        _ => Some(head.to_owned()),
    }
}

/// `YYYY-MM-DD…` → `YYYYMMDD` (the order of these numbers is the order of the strings).
fn day_number(date: &str) -> Option<f64> {
    let b = date.as_bytes().get(..10)?;
    let digits = [0, 1, 2, 3, 5, 6, 8, 9];
    if b[4] != b'-' || b[7] != b'-' || !digits.iter().all(|&i| b[i].is_ascii_digit()) {
        return None;
    }
    let mut n: u32 = 0;
    for &i in &digits {
        n = n * 10 + u32::from(b[i] - b'0');
    }
    Some(f64::from(n))
}

/// The Qdrant filter of a request: tenant plus every [`SearchFilter`] field.
fn build_filter(tenant: &TenantId, f: &SearchFilter) -> Result<Filter, IndexError> {
    let bad = |lo: f64, hi: f64| lo.is_nan() || hi.is_nan() || lo > hi;
    let mut must = vec![Condition::matches("tenant", tenant.as_str().to_owned())];
    let strings = |v: &[String]| v.to_vec();
    if !f.sources.is_empty() {
        let v: Vec<String> = f.sources.iter().map(|s| s.as_str().to_owned()).collect();
        must.push(Condition::matches("source", v));
    }
    if !f.assets.is_empty() {
        let v: Vec<String> = f.assets.iter().map(|s| s.as_str().to_owned()).collect();
        must.push(Condition::matches("asset", v));
    }
    if let Some(p) = &f.path_prefix
        && let Some(key) = path_prefix_key(p)
        && !key.is_empty()
    {
        must.push(Condition::matches("path_prefixes", key));
    }
    if let Some((from, to)) = f.time_range {
        if bad(from, to) {
            return Err(invalid(format!("bad time range [{from}, {to}]")));
        }
        must.push(Condition::range(
            "end_s",
            Range {
                gte: Some(from),
                ..Default::default()
            },
        ));
        must.push(Condition::range(
            "start_s",
            Range {
                lte: Some(to),
                ..Default::default()
            },
        ));
    }
    if !f.kinds.is_empty() {
        let v: Vec<String> = f.kinds.iter().map(|k| k.as_str().to_owned()).collect();
        must.push(Condition::matches("kind", v));
    }
    for t in &f.tags {
        must.push(Condition::matches("tags", t.clone()));
    }
    if let Some((lo, hi)) = f.duration_range {
        if bad(lo, hi) {
            return Err(invalid(format!("bad duration range [{lo}, {hi}]")));
        }
        must.push(Condition::range(
            "duration_s",
            Range {
                gte: Some(lo),
                lte: Some(hi),
                ..Default::default()
            },
        ));
    }
    if let Some((from, to)) = &f.date_range {
        // Bounds are compared on their first ten characters; a bound that does not start
        // with `YYYY-MM-DD` is dropped. Both give a superset, made exact client-side.
        must.push(Condition::range(
            "capture_day",
            Range {
                gte: day_number(from),
                lte: day_number(to),
                ..Default::default()
            },
        ));
    }
    if !f.languages.is_empty() {
        must.push(Condition::matches("language", strings(&f.languages)));
    }
    if let Some(h) = f.has_speech {
        must.push(Condition::matches("has_speech", h));
    }
    if !f.faces.is_empty() {
        must.push(Condition::matches("faces", strings(&f.faces)));
    }
    Ok(Filter::must(must))
}

#[async_trait]
impl Index for QdrantIndex {
    async fn upsert(&self, docs: &[IndexDoc]) -> Result<(), IndexError> {
        // Validate everything before writing anything.
        let points = docs
            .iter()
            .map(|d| self.point(d))
            .collect::<Result<Vec<_>, _>>()?;
        let mut points = points.into_iter().peekable();
        while points.peek().is_some() {
            let batch: Vec<PointStruct> = points.by_ref().take(UPSERT_BATCH).collect();
            self.client
                .upsert(UpsertPointsBuilder::new(self.collection.clone(), batch).wait(true))
                .await?;
        }
        Ok(())
    }

    async fn delete_asset(&self, tenant: &TenantId, asset: &AssetId) -> Result<u64, IndexError> {
        let filter = Filter::must([
            Condition::matches("tenant", tenant.as_str().to_owned()),
            Condition::matches("asset", asset.as_str().to_owned()),
        ]);
        let n = self
            .client
            .count(
                CountPointsBuilder::new(self.collection.clone())
                    .filter(filter.clone())
                    .exact(true),
            )
            .await?;
        if n > 0 {
            self.client
                .delete(
                    DeletePointsBuilder::new(self.collection.clone())
                        .points(filter)
                        .wait(true),
                )
                .await?;
        }
        Ok(n)
    }

    async fn search(&self, req: &SearchRequest) -> Result<Vec<SearchHit>, IndexError> {
        let clauses = request_clauses(req)?;
        let vector = match request_vector(req, &self.spaces)? {
            Some((space, v)) => {
                if !usable(v) {
                    return Err(invalid("query vector is zero or not finite"));
                }
                Some(Signal::Vector(space.to_owned(), v.to_vec()))
            }
            None => None,
        };
        let filter = build_filter(&req.tenant, &req.filter)?;
        if req.limit == 0 {
            return Ok(Vec::new());
        }
        let stemmings = query_stemmings(&req.filter.languages, &self.languages);
        let codes: Vec<&str> = stemmings.iter().map(Stemming::code).collect();
        let keyword =
            (!clauses.is_empty()).then(|| Signal::Keyword(query_sparse(&clauses, &stemmings)));
        let want = req.offset.saturating_add(req.limit);
        let hit = |doc: IndexDoc, score: f32, signals: Vec<SignalMatch>| {
            let snippet = if clauses.is_empty() {
                None
            } else {
                snippet(&doc.text, &doc.path, doc.meta.language.as_deref(), &clauses)
            };
            SearchHit {
                doc,
                score,
                signals,
                snippet,
            }
        };
        let signal_name = |s: &Signal| match s {
            Signal::Keyword(_) => "keyword".to_owned(),
            Signal::Vector(space, _) => format!("vector:{space}"),
        };
        match (keyword, vector) {
            (None, None) => Err(invalid("a search needs `text`, `vector` or both")),
            (Some(one), None) | (None, Some(one)) => {
                let name = signal_name(&one);
                let list = self
                    .ranked(&one, req, &filter, &clauses, &codes, want)
                    .await?;
                Ok(list
                    .into_iter()
                    .enumerate()
                    .skip(req.offset)
                    .take(req.limit)
                    .map(|(i, (doc, score))| {
                        let rank = u32::try_from(i + 1).unwrap_or(u32::MAX);
                        let signals = vec![SignalMatch {
                            signal: name.clone(),
                            score,
                            rank,
                        }];
                        hit(doc, score, signals)
                    })
                    .collect())
            }
            (Some(kw), Some(vs)) => {
                let fetch = want.saturating_mul(HYBRID_OVERFETCH).max(HYBRID_MIN_FETCH);
                let mut docs: HashMap<String, IndexDoc> = HashMap::new();
                let mut lists = Vec::with_capacity(2);
                for s in [&kw, &vs] {
                    let mut list = self
                        .ranked(s, req, &filter, &clauses, &codes, fetch)
                        .await?;
                    list.truncate(fetch);
                    let hits = list
                        .into_iter()
                        .map(|(doc, score)| {
                            let key = doc.key();
                            docs.entry(key.clone()).or_insert(doc);
                            (key, score)
                        })
                        .collect();
                    lists.push(RankedList {
                        signal: signal_name(s),
                        hits,
                    });
                }
                fuse(&lists, req.fusion)
                    .into_iter()
                    .skip(req.offset)
                    .take(req.limit)
                    .map(|f| {
                        let doc = docs.remove(&f.key).ok_or_else(|| {
                            backend_msg(format!("fused key {} without a document", f.key))
                        })?;
                        Ok(hit(doc, f.score, f.signals))
                    })
                    .collect()
            }
        }
    }

    async fn count(&self, tenant: &TenantId) -> Result<u64, IndexError> {
        let filter = Filter::must([Condition::matches("tenant", tenant.as_str().to_owned())]);
        self.client
            .count(
                CountPointsBuilder::new(self.collection.clone())
                    .filter(filter)
                    .exact(true),
            )
            .await
    }

    async fn asset_counts(&self, tenant: &TenantId) -> Result<BTreeMap<AssetId, u64>, IndexError> {
        // A facet returns at most `limit` values; the tenant's document count bounds the
        // number of distinct assets.
        let docs = self.count(tenant).await?;
        if docs == 0 {
            return Ok(BTreeMap::new());
        }
        let filter = Filter::must([Condition::matches("tenant", tenant.as_str().to_owned())]);
        let hits = self
            .client
            .facet(
                FacetCountsBuilder::new(self.collection.clone(), "asset")
                    .filter(filter)
                    .limit(docs)
                    .exact(true),
            )
            .await?;
        Ok(hits
            .into_iter()
            .map(|(asset, n)| (AssetId::new(asset), n))
            .collect())
    }

    async fn flush(&self) -> Result<(), IndexError> {
        // Writes use `wait = true`; Qdrant persists them through its write-ahead log.
        Ok(())
    }
}

/// An in-process stand-in for Qdrant that interprets exactly the requests this module
/// sends (keyword/bool match, keyword any-of, float range; sparse dot product with the IDF
/// modifier; cosine), returning equal scores in an order unrelated to document keys.
#[cfg(test)]
mod fake {
    use std::collections::BTreeMap;

    use qdrant_client::qdrant::condition::ConditionOneOf;
    use qdrant_client::qdrant::r#match::MatchValue;
    use qdrant_client::qdrant::points_selector::PointsSelectorOneOf;
    use qdrant_client::qdrant::vector_input::Variant;
    use qdrant_client::qdrant::vectors::VectorsOptions;
    use qdrant_client::qdrant::{
        DeletePoints, FacetCounts, FacetHit, FacetValue, Filter, PointStruct, QueryPoints,
        ScoredPoint, UpsertPoints, Value, facet_value, value::Kind, vector,
    };

    #[derive(Debug, Default)]
    pub struct Store {
        points: BTreeMap<String, PointStruct>,
    }

    fn matches_value(v: &Value, m: &MatchValue) -> bool {
        let strings: Vec<&str> = match &v.kind {
            Some(Kind::StringValue(s)) => vec![s.as_str()],
            Some(Kind::ListValue(l)) => l
                .values
                .iter()
                .filter_map(|x| match &x.kind {
                    Some(Kind::StringValue(s)) => Some(s.as_str()),
                    _ => None,
                })
                .collect(),
            Some(Kind::BoolValue(b)) => {
                return matches!(m, MatchValue::Boolean(x) if x == b);
            }
            _ => Vec::new(),
        };
        match m {
            MatchValue::Keyword(k) => strings.contains(&k.as_str()),
            MatchValue::Keywords(ks) => ks.strings.iter().any(|k| strings.contains(&k.as_str())),
            other => panic!("fake: unsupported match {other:?}"),
        }
    }

    fn passes(p: &PointStruct, f: Option<&Filter>) -> bool {
        let Some(f) = f else { return true };
        assert!(
            f.should.is_empty() && f.must_not.is_empty(),
            "fake: only `must`"
        );
        f.must.iter().all(|c| match &c.condition_one_of {
            Some(ConditionOneOf::Field(fc)) => {
                let Some(v) = p.payload.get(&fc.key) else {
                    return false;
                };
                if let Some(m) = fc.r#match.as_ref().and_then(|m| m.match_value.as_ref()) {
                    return matches_value(v, m);
                }
                if let Some(r) = &fc.range {
                    let Some(Kind::DoubleValue(x)) = v.kind else {
                        return false;
                    };
                    return r.gte.is_none_or(|b| x >= b)
                        && r.lte.is_none_or(|b| x <= b)
                        && r.gt.is_none_or(|b| x > b)
                        && r.lt.is_none_or(|b| x < b);
                }
                panic!("fake: unsupported field condition {fc:?}")
            }
            other => panic!("fake: unsupported condition {other:?}"),
        })
    }

    fn vector<'a>(p: &'a PointStruct, name: &str) -> Option<&'a vector::Vector> {
        match p.vectors.as_ref()?.vectors_options.as_ref()? {
            VectorsOptions::Vectors(named) => named.vectors.get(name)?.vector.as_ref(),
            VectorsOptions::Vector(_) => None,
        }
    }

    impl Store {
        pub fn upsert(&mut self, req: UpsertPoints) {
            for p in req.points {
                self.points.insert(format!("{:?}", p.id), p);
            }
        }

        pub fn count(&self, f: Option<&Filter>) -> u64 {
            self.points.values().filter(|p| passes(p, f)).count() as u64
        }

        pub fn facet(&self, req: FacetCounts) -> Vec<FacetHit> {
            let mut counts: BTreeMap<String, u64> = BTreeMap::new();
            for p in self
                .points
                .values()
                .filter(|p| passes(p, req.filter.as_ref()))
            {
                if let Some(Kind::StringValue(v)) =
                    p.payload.get(&req.key).and_then(|v| v.kind.clone())
                {
                    *counts.entry(v).or_default() += 1;
                }
            }
            counts
                .into_iter()
                .take(usize::try_from(req.limit.unwrap_or(10)).unwrap_or(usize::MAX))
                .map(|(v, count)| FacetHit {
                    value: Some(FacetValue {
                        variant: Some(facet_value::Variant::StringValue(v)),
                    }),
                    count,
                })
                .collect()
        }

        pub fn delete(&mut self, req: DeletePoints) {
            let Some(PointsSelectorOneOf::Filter(f)) =
                req.points.and_then(|s| s.points_selector_one_of)
            else {
                panic!("fake: delete by filter only");
            };
            self.points.retain(|_, p| !passes(p, Some(&f)));
        }

        pub fn query(&self, req: &QueryPoints) -> Vec<ScoredPoint> {
            let using = req.using.clone().unwrap_or_default();
            let input = match req.query.as_ref().and_then(|q| q.variant.as_ref()) {
                Some(qdrant_client::qdrant::query::Variant::Nearest(v)) => v.variant.clone(),
                other => panic!("fake: unsupported query {other:?}"),
            };
            let filter = req.filter.as_ref();
            let mut scored: Vec<(f32, &String, &PointStruct)> = Vec::new();
            match input {
                Some(Variant::Sparse(q)) => {
                    // IDF over the points that have the sparse vector.
                    let sparse: Vec<(&String, &PointStruct, BTreeMap<u32, f32>)> = self
                        .points
                        .iter()
                        .filter_map(|(id, p)| match vector(p, &using) {
                            Some(vector::Vector::Sparse(s)) => Some((
                                id,
                                p,
                                s.indices
                                    .iter()
                                    .copied()
                                    .zip(s.values.iter().copied())
                                    .collect(),
                            )),
                            _ => None,
                        })
                        .collect();
                    let n = sparse.len() as f32;
                    let idf = |dim: u32| {
                        let df = sparse.iter().filter(|s| s.2.contains_key(&dim)).count() as f32;
                        ((n - df + 0.5) / (df + 0.5) + 1.0).ln()
                    };
                    for (id, p, dims) in &sparse {
                        if !passes(p, filter) {
                            continue;
                        }
                        let mut score = 0.0;
                        let mut overlap = false;
                        for (i, w) in q.indices.iter().zip(&q.values) {
                            if let Some(v) = dims.get(i) {
                                overlap = true;
                                score += idf(*i) * w * v;
                            }
                        }
                        if overlap {
                            scored.push((score, id, p));
                        }
                    }
                }
                Some(Variant::Dense(q)) => {
                    let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
                    for (id, p) in &self.points {
                        if let Some(vector::Vector::Dense(d)) = vector(p, &using)
                            && passes(p, filter)
                        {
                            let dot: f32 = d.data.iter().zip(&q.data).map(|(a, b)| a * b).sum();
                            scored.push((dot / (norm(&d.data) * norm(&q.data)), id, p));
                        }
                    }
                }
                other => panic!("fake: unsupported input {other:?}"),
            }
            // Equal scores: by point id descending, unrelated to document keys.
            scored.sort_by(|a, b| b.0.total_cmp(&a.0).then_with(|| b.1.cmp(a.1)));
            scored
                .into_iter()
                .take(req.limit.unwrap_or(10) as usize)
                .map(|(score, _, p)| ScoredPoint {
                    id: p.id.clone(),
                    payload: p
                        .payload
                        .iter()
                        .filter(|(k, _)| *k == "doc")
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect(),
                    score,
                    ..Default::default()
                })
                .collect()
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn server_versions() {
        for ok in ["1.17.0", "1.18.3", "1.19.0-dev", "1.30.1"] {
            assert!(super::server_supported(ok), "{ok}");
        }
        for bad in ["1.16.3", "0.11.0", "2.0.0", "", "garbage"] {
            assert!(!super::server_supported(bad), "{bad}");
        }
    }

    use super::*;
    use crate::query::parse;
    use heimdex_core::{SegmentKind, SourceId};
    use qdrant_client::qdrant::Vectors;
    use qdrant_client::qdrant::vectors::VectorsOptions;

    fn doc(path: &str, text: &str) -> IndexDoc {
        IndexDoc {
            tenant: TenantId::new("t"),
            source: SourceId::new("s"),
            asset: AssetId::new("a"),
            segment: "0".into(),
            kind: SegmentKind::Shot,
            path: path.into(),
            start_s: 0.0,
            end_s: 1.0,
            text: text.into(),
            thumbnail: None,
            tags: Vec::new(),
            vectors: BTreeMap::new(),
            meta: Default::default(),
        }
    }

    #[test]
    fn points_carry_payload_and_vectors_and_reject_bad_vectors() {
        let spaces = BTreeMap::from([("text".to_owned(), 2)]);
        let mut d = doc("/news/a.mp4", "Red car");
        d.vectors.insert("text".into(), vec![1.0, 0.0]);
        d.meta.capture_date = Some("2024-06-01T10:00:00Z".into());
        d.meta.faces = vec!["p1".into()];
        let p = to_point(&spaces, &d).unwrap();
        let s = |k: &str| match p.payload.get(k).and_then(|v| v.kind.as_ref()) {
            Some(Kind::StringValue(x)) => Some(x.clone()),
            _ => None,
        };
        let stored: IndexDoc = serde_json::from_str(&s("doc").unwrap()).unwrap();
        assert_eq!(
            stored,
            IndexDoc {
                vectors: BTreeMap::new(),
                ..d.clone()
            }
        );
        assert_eq!(s("tenant").as_deref(), Some("t"));
        assert_eq!(s("kind").as_deref(), Some("shot"));
        assert!(matches!(
            p.payload.get("capture_day").and_then(|v| v.kind.as_ref()),
            Some(Kind::DoubleValue(x)) if *x == 20_240_601.0
        ));
        assert!(!p.payload.contains_key("duration_s"));
        let Some(Vectors {
            vectors_options: Some(VectorsOptions::Vectors(named)),
        }) = &p.vectors
        else {
            panic!("named vectors expected: {:?}", p.vectors);
        };
        let mut names: Vec<&str> = named.vectors.keys().map(String::as_str).collect();
        names.sort_unstable();
        assert_eq!(names, ["keyword", "text"]);
        let mut bad = d.clone();
        bad.vectors.insert("text".into(), vec![1.0, 0.0, 0.0]);
        assert!(matches!(
            to_point(&spaces, &bad),
            Err(IndexError::InvalidRequest(_))
        ));
        let mut bad = d.clone();
        bad.vectors.insert("image".into(), vec![1.0, 0.0]);
        assert!(matches!(
            to_point(&spaces, &bad),
            Err(IndexError::InvalidRequest(_))
        ));
        let mut bad = d;
        bad.vectors.insert("text".into(), vec![0.0, 0.0]);
        assert!(matches!(
            to_point(&spaces, &bad),
            Err(IndexError::InvalidRequest(_))
        ));
    }

    fn fake_index() -> QdrantIndex {
        QdrantIndex {
            client: Client::Fake(Default::default()),
            collection: "fake".into(),
            spaces: BTreeMap::from([
                (
                    heimdex_core::conformance::index::SPACE.to_owned(),
                    heimdex_core::conformance::index::DIM,
                ),
                ("congruence32".to_owned(), 32),
            ]),
            languages: QdrantConfig::default().languages,
        }
    }

    /// The shared suite against the in-process fake: checks everything on this side of the
    /// wire (payload, sparse vectors, filter translation, verification, ties, fusion).
    #[tokio::test]
    async fn conformance_suite_on_fake_qdrant() {
        heimdex_core::conformance::index::run_all(&fake_index()).await;
    }

    #[test]
    fn point_ids_are_deterministic_uuids() {
        let a = point_id(&TenantId::new("t"), &AssetId::new("a"), "0");
        assert_eq!(a, point_id(&TenantId::new("t"), &AssetId::new("a"), "0"));
        assert_ne!(a, point_id(&TenantId::new("t2"), &AssetId::new("a"), "0"));
        // Length-prefixed parts: ("ab", "c") differs from ("a", "bc").
        assert_ne!(
            point_id(&TenantId::new("ab"), &AssetId::new("c"), "0"),
            point_id(&TenantId::new("a"), &AssetId::new("bc"), "0")
        );
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "5");
        assert!(matches!(&a[19..20], "8" | "9" | "a" | "b"));
    }

    #[test]
    fn sparse_vectors_share_dimensions_with_queries() {
        let d: BTreeMap<u32, f32> = doc_sparse("/x.mp4", "a red car parked", None)
            .into_iter()
            .collect();
        for q in ["red", "\"red car\"", "par*", "parked*", "mp4"] {
            let qs = query_sparse(&parse(q), &[]);
            assert!(qs.iter().all(|(i, _)| d.contains_key(i)), "{q}");
        }
        assert!(!d.contains_key(&pair_dim("car", "red")));
        // A phrase cannot straddle path and text.
        assert!(!d.contains_key(&pair_dim("mp4", "a")));
        let mut idx: Vec<u32> = d.keys().copied().collect();
        idx.dedup();
        assert_eq!(idx.len(), d.len());
    }

    #[test]
    fn shorter_documents_weigh_more() {
        let short = doc_sparse("", "heron lake", None);
        let long = doc_sparse(
            "",
            "heron lake with many other words in a much longer text",
            None,
        );
        let w = |v: &[(u32, f32)]| v.iter().find(|d| d.0 == term_dim("heron")).map(|d| d.1);
        assert!(w(&short) > w(&long));
    }

    #[test]
    fn clause_verification() {
        let d = doc("/clips/red", "a big red car wash sign");
        assert!(clauses_match(&d, &parse("\"red car wash\""), &[]));
        assert!(!clauses_match(&d, &parse("\"car red\""), &[]));
        assert!(clauses_match(&d, &parse("wa*"), &[]));
        assert!(!clauses_match(&d, &parse("\"red a\""), &[]));
        assert!(clauses_match(&d, &parse("clips"), &[]));
        // Stems count only in the document's language, and only if the query uses it.
        let mut en = doc("", "the runners were running");
        en.meta.language = Some("en".into());
        assert!(clauses_match(&en, &parse("runs"), &["en"]));
        assert!(clauses_match(&en, &parse("\"runner were runs\""), &["en"]));
        assert!(!clauses_match(&en, &parse("runs"), &["fr"]));
        assert!(!clauses_match(&d, &parse("washing"), &["en"]));
    }

    #[test]
    fn stem_dimensions_for_stemmed_documents_and_query_languages() {
        let en = doc_sparse("", "the runners were running", Some("en"));
        let plain = doc_sparse("", "the runners were running", None);
        let dims = |v: &[(u32, f32)]| v.iter().map(|d| d.0).collect::<BTreeSet<u32>>();
        let (en, plain) = (dims(&en), dims(&plain));
        assert!(en.contains(&stem_dim("en", "run")) && en.contains(&term_dim("running")));
        assert!(en.contains(&stem_pair_dim("en", "runner", "were")));
        assert!(!plain.contains(&stem_dim("en", "run")));
        assert!(plain.is_subset(&en), "raw dimensions are unchanged");
        let langs = query_stemmings(&[], &QdrantConfig::default().languages);
        assert_eq!(langs.len(), 1);
        let q = dims(&query_sparse(&parse("runs"), &langs));
        assert_eq!(q, BTreeSet::from([term_dim("runs"), stem_dim("en", "run")]));
        assert!(query_sparse(&parse("runs"), &[]).len() == 1);
        // The filter's languages replace the configured ones.
        let fr = query_stemmings(&["fr".into(), "xx".into()], &["en".into()]);
        assert_eq!(fr.iter().map(Stemming::code).collect::<Vec<_>>(), ["fr"]);
    }

    #[tokio::test]
    async fn stemmed_search_on_fake_qdrant() {
        let index = fake_index();
        let mut en = doc("/a.mp4", "the runners were running");
        en.meta.language = Some("en".into());
        let mut plain = doc("/b.mp4", "he runs home");
        plain.asset = AssetId::new("b");
        index.upsert(&[en, plain]).await.unwrap();
        let search = |q: &str| {
            let req = SearchRequest::new(TenantId::new("t")).with_text(q);
            let index = &index;
            async move {
                let hits = index.search(&req).await.unwrap();
                hits.into_iter()
                    .map(|h| (h.doc.asset.as_str().to_owned(), h.snippet))
                    .collect::<Vec<_>>()
            }
        };
        assert_eq!(
            search("run").await,
            [(
                "a".to_owned(),
                Some("the runners were [running]".to_owned())
            )]
        );
        let hits = search("running").await;
        assert_eq!(hits.len(), 1, "{hits:?}");
        assert_eq!(search("runs").await.len(), 2);
    }

    #[test]
    fn path_prefix_and_dates() {
        let p = path_prefixes("/archive/2024/a2/clip.mp4");
        for want in [
            "/",
            "/a",
            "/archive/",
            "/archive/2024/a2",
            "/archive/2024/a2/clip.mp4",
        ] {
            assert!(p.iter().any(|x| x == want), "{want}");
        }
        let long = format!("/{}/x/y.mp4", "d".repeat(100));
        let p = path_prefixes(&long);
        let key = path_prefix_key(&format!("/{}/x/y", "d".repeat(100))).unwrap();
        assert!(p.contains(&key), "{key}");
        assert!(long.starts_with(&key));
        assert_eq!(day_number("2024-06-01T10:00:00Z"), Some(20_240_601.0));
        assert_eq!(day_number("2023-12-31"), Some(20_231_231.0));
        assert_eq!(day_number("June 2024"), None);
        assert_eq!(day_number("2024"), None);
    }

    #[test]
    fn filters_validate_ranges() {
        let t = TenantId::new("t");
        let mut f = SearchFilter::default();
        f.time_range = Some((10.0, 5.0));
        assert!(matches!(
            build_filter(&t, &f),
            Err(IndexError::InvalidRequest(_))
        ));
        let mut f = SearchFilter::default();
        f.duration_range = Some((f64::NAN, 5.0));
        assert!(matches!(
            build_filter(&t, &f),
            Err(IndexError::InvalidRequest(_))
        ));
        let mut f = SearchFilter::default();
        f.tags = vec!["a".into(), "b".into()];
        f.faces = vec!["p1".into()];
        assert_eq!(build_filter(&t, &f).unwrap().must.len(), 4);
    }
}
