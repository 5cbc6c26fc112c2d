//! [`EmbeddedIndex`]: the in-process [`Index`].

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use async_trait::async_trait;
use heimdex_core::fusion::{RankedList, fuse};
use heimdex_core::index::SignalMatch;
use heimdex_core::{
    AssetId, Index, IndexDoc, IndexError, SearchFilter, SearchHit, SearchRequest, TenantId,
};

use crate::filter::{Allowed, FilterIndex};
use crate::keyword::{InvertedIndex, analyze, snippet};
use crate::persist;
use crate::query::{Clause, request_clauses, request_vector};
use crate::vector::{Keep, VectorSpace, normalized};

/// Backend name used in errors.
pub(crate) const NAME: &str = "embedded";

/// Each signal of a hybrid search fetches `max((offset + limit) * HYBRID_OVERFETCH,
/// HYBRID_MIN_FETCH)` candidates before fusion.
pub const HYBRID_OVERFETCH: usize = 4;
/// See [`HYBRID_OVERFETCH`].
pub const HYBRID_MIN_FETCH: usize = 50;

/// Shards with at least this many documents run a hybrid query's keyword and vector
/// searches concurrently.
pub const PARALLEL_HYBRID_MIN_DOCS: usize = 50_000;

/// Through the async [`Index`] API, searches (and counts) of shards with fewer documents run
/// on the calling task when the state lock is free at once: they take microseconds. Larger
/// ones, and any that would wait for a writer, run on tokio's blocking pool.
pub(crate) const INLINE_SEARCH_MAX_DOCS: usize = 10_000;

/// The embedded, in-process index: a positional inverted index with BM25 for keywords,
/// cosine search over named vector spaces (HNSW graph or exact scan), and [`fuse`] for hybrid
/// queries. See the [crate docs](crate) for the design.
///
/// All operations run in memory under a [`RwLock`] (many concurrent searches, one writer).
/// [`EmbeddedIndex::open`] loads a snapshot from a directory; [`Index::flush`] writes one
/// atomically. Nothing is written unless `flush` is called (there is no flush on drop).
///
/// The async [`Index`] methods keep blocking work off the async runtime's threads: writes
/// (upsert, delete), flushes and searches of large shards (or any that would wait for the
/// lock) run on tokio's blocking pool; searches and counts of shards under 10 000 documents
/// whose lock is free run inline. Polled outside a tokio runtime they all run inline.
/// The `*_blocking` methods run on the calling thread.
pub struct EmbeddedIndex {
    inner: Arc<Inner>,
    /// Live vectors from which a space created by this handle gets its HNSW graph
    /// (`None`: the default, 5 000).
    graph_min_rows: Option<usize>,
}

/// The shared state of an [`EmbeddedIndex`]; blocking tasks hold a clone of the `Arc`.
struct Inner {
    state: RwLock<State>,
    dir: Option<PathBuf>,
    dirty: AtomicBool,
    flush_lock: Mutex<()>,
}

impl fmt::Debug for EmbeddedIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.read();
        f.debug_struct("EmbeddedIndex")
            .field("dir", &self.inner.dir)
            .field("tenants", &state.shards.len())
            .field(
                "docs",
                &state.shards.values().map(|s| s.by_key.len()).sum::<usize>(),
            )
            .field("spaces", &state.dims)
            .finish()
    }
}

/// All tenants' data. Vector dimensions are index-wide (a space means the same everywhere);
/// everything else is per tenant, so BM25 statistics never leak between tenants.
#[derive(Debug, Default)]
pub(crate) struct State {
    pub dims: BTreeMap<String, usize>,
    pub shards: BTreeMap<TenantId, Shard>,
}

/// One document with its vectors already normalised.
pub(crate) struct Prepared {
    pub doc: IndexDoc,
    pub vectors: Vec<(String, Vec<f32>)>,
}

/// One tenant's documents and indexes.
#[derive(Debug, Default)]
pub(crate) struct Shard {
    slots: Vec<Option<Stored>>,
    free: Vec<u32>,
    by_key: HashMap<(AssetId, String), u32>,
    by_asset: HashMap<AssetId, HashSet<u32>>,
    text: InvertedIndex,
    pub spaces: BTreeMap<String, VectorSpace>,
    filters: FilterIndex,
}

#[derive(Debug)]
struct Stored {
    /// The document without vectors (they live in the spaces).
    doc: IndexDoc,
    /// `doc.key()`, cached for tie-breaking.
    key: String,
}

fn invalid(msg: impl Into<String>) -> IndexError {
    IndexError::InvalidRequest(msg.into())
}

/// Sort `(slot, score)` by score descending then key ascending, keeping the first `n`.
fn top_n(mut v: Vec<(u32, f32)>, n: usize, key: impl Fn(u32) -> String) -> Vec<(u32, f32)> {
    // Keys are compared only on equal scores, so computing them lazily is cheap.
    let cmp =
        |a: &(u32, f32), b: &(u32, f32)| b.1.total_cmp(&a.1).then_with(|| key(a.0).cmp(&key(b.0)));
    if n == 0 {
        return Vec::new();
    }
    if v.len() > n {
        v.select_nth_unstable_by(n - 1, cmp);
        v.truncate(n);
    }
    v.sort_by(cmp);
    v
}

impl Shard {
    fn stored(&self, slot: u32) -> Option<&Stored> {
        self.slots.get(slot as usize).and_then(Option::as_ref)
    }

    fn key_of(&self, slot: u32) -> String {
        self.stored(slot).map(|s| s.key.clone()).unwrap_or_default()
    }

    /// Whether `slot` passes the filter: in the allowed set and, where the filter has a
    /// residual (time range), matching it.
    fn passes(&self, slot: u32, filter: Option<(&SearchFilter, &Allowed)>) -> bool {
        match filter {
            None => self.stored(slot).is_some(),
            Some((f, allowed)) => {
                allowed.set.contains(slot)
                    && (!allowed.residual || self.stored(slot).is_some_and(|s| f.matches(&s.doc)))
            }
        }
    }

    pub fn len(&self) -> usize {
        self.by_key.len()
    }

    /// Documents in slot order, each with the spaces it has a vector in.
    pub fn docs(&self) -> impl Iterator<Item = (&IndexDoc, u32)> {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.as_ref().map(|s| (&s.doc, i as u32)))
    }

    fn remove_slot(&mut self, slot: u32) {
        let Some(stored) = self.slots.get_mut(slot as usize).and_then(Option::take) else {
            return;
        };
        let (analyzed, len) = analyze(
            &stored.doc.path,
            &stored.doc.text,
            stored.doc.meta.language.as_deref(),
        );
        self.text.remove(slot, &analyzed, len);
        self.filters.remove(slot, &stored.doc);
        for space in self.spaces.values_mut() {
            space.remove(slot);
        }
        self.by_key
            .remove(&(stored.doc.asset.clone(), stored.doc.segment.clone()));
        if let Some(set) = self.by_asset.get_mut(&stored.doc.asset) {
            set.remove(&slot);
            if set.is_empty() {
                self.by_asset.remove(&stored.doc.asset);
            }
        }
        self.free.push(slot);
    }

    /// Index `doc` (without vectors) at the free `slot`: postings, keys, stored document.
    fn index_doc(&mut self, slot: u32, doc: IndexDoc) {
        let (analyzed, len) = analyze(&doc.path, &doc.text, doc.meta.language.as_deref());
        self.text.insert(slot, analyzed, len);
        self.filters.insert(slot, &doc);
        self.by_key
            .insert((doc.asset.clone(), doc.segment.clone()), slot);
        self.by_asset
            .entry(doc.asset.clone())
            .or_default()
            .insert(slot);
        let key = doc.key();
        self.slots[slot as usize] = Some(Stored { doc, key });
    }

    /// Number of slots, free ones included (persisted so slots survive a reopen).
    pub fn slot_count(&self) -> usize {
        self.slots.len()
    }

    /// The free slots, in the order they will be reused (last first).
    pub fn free_slots(&self) -> &[u32] {
        &self.free
    }

    /// Rebuild a shard from persisted documents at their slots, its free-slot stack and its
    /// persisted vector spaces. Fails if a slot is out of range or used twice, the free
    /// stack is not exactly the empty slots, or a vector has no document.
    pub fn restore(
        slot_count: usize,
        free: Vec<u32>,
        docs: Vec<(u32, IndexDoc)>,
        spaces: BTreeMap<String, VectorSpace>,
    ) -> Result<Self, String> {
        // Every slot holds a document or is free (checked before allocating anything).
        if slot_count != docs.len() + free.len() {
            return Err(format!(
                "{slot_count} slots but {} documents and {} free slots",
                docs.len(),
                free.len()
            ));
        }
        let mut shard = Shard {
            slots: Vec::with_capacity(slot_count),
            ..Shard::default()
        };
        shard.slots.resize_with(slot_count, || None);
        for (slot, doc) in docs {
            if shard.slots.get(slot as usize).is_none_or(Option::is_some) {
                return Err(format!("document slot {slot} out of range or used twice"));
            }
            if shard
                .by_key
                .contains_key(&(doc.asset.clone(), doc.segment.clone()))
            {
                return Err(format!("document {} stored twice", doc.key()));
            }
            shard.index_doc(slot, doc);
        }
        // The counts add up, so distinct empty in-range free slots are exactly the empty ones.
        let mut seen = HashSet::with_capacity(free.len());
        if free
            .iter()
            .any(|&s| !seen.insert(s) || shard.slots.get(s as usize).is_none_or(Option::is_some))
        {
            return Err("free slot list does not match the empty slots".into());
        }
        shard.free = free;
        for (name, space) in &spaces {
            if let Some(slot) = space.live_slots().find(|&s| shard.stored(s).is_none()) {
                return Err(format!("space `{name}`: vector of empty slot {slot}"));
            }
        }
        shard.spaces = spaces;
        Ok(shard)
    }

    fn put(&mut self, p: Prepared, dims: &BTreeMap<String, usize>) -> Result<(), IndexError> {
        let id = (p.doc.asset.clone(), p.doc.segment.clone());
        if let Some(old) = self.by_key.get(&id).copied() {
            self.remove_slot(old);
        }
        let slot = match self.free.pop() {
            Some(s) => s,
            None => {
                let s = u32::try_from(self.slots.len()).map_err(|_| IndexError::NotSupported {
                    index: NAME,
                    what: "more than 2^32 documents per tenant".into(),
                })?;
                self.slots.push(None);
                s
            }
        };
        for (space, unit) in p.vectors {
            let dim = dims.get(&space).copied().unwrap_or(unit.len());
            self.spaces
                .entry(space)
                .or_insert_with(|| VectorSpace::new(dim))
                .insert(slot, &unit);
        }
        self.index_doc(slot, p.doc);
        Ok(())
    }

    fn delete_asset(&mut self, asset: &AssetId) -> u64 {
        let Some(slots) = self.by_asset.remove(asset) else {
            return 0;
        };
        let n = slots.len() as u64;
        for slot in slots {
            self.remove_slot(slot);
        }
        n
    }

    fn keyword_top(
        &self,
        clauses: &[Clause],
        filter: Option<(&SearchFilter, &Allowed)>,
        n: usize,
    ) -> Vec<(u32, f32)> {
        let candidates = self.text.top(clauses, n, |slot| self.passes(slot, filter));
        top_n(candidates, n, |slot| self.key_of(slot))
    }

    fn vector_top(
        &self,
        space: &str,
        unit: &[f32],
        filter: Option<(&SearchFilter, &Allowed)>,
        n: usize,
    ) -> Vec<(u32, f32)> {
        let Some(space) = self.spaces.get(space) else {
            return Vec::new();
        };
        let residual = |slot: u32| {
            filter.is_none_or(|(f, _)| self.stored(slot).is_some_and(|s| f.matches(&s.doc)))
        };
        let keep = filter.map(|(_, allowed)| Keep {
            set: &allowed.set,
            check: allowed
                .residual
                .then_some(&residual as &dyn Fn(u32) -> bool),
        });
        let candidates = space.search(unit, n, keep);
        top_n(candidates, n, |slot| self.key_of(slot))
    }

    /// The slots passing `filter` (from the filter bitmaps).
    fn allowed(&self, filter: &SearchFilter) -> Allowed {
        self.filters.allowed(filter)
    }

    fn hit(
        &self,
        slot: u32,
        score: f32,
        signals: Vec<SignalMatch>,
        clauses: &[Clause],
    ) -> Option<SearchHit> {
        let stored = self.stored(slot)?;
        let snippet = if clauses.is_empty() {
            None
        } else {
            snippet(
                &stored.doc.text,
                &stored.doc.path,
                stored.doc.meta.language.as_deref(),
                clauses,
            )
        };
        Some(SearchHit {
            doc: stored.doc.clone(),
            score,
            signals,
            snippet,
        })
    }
}

impl State {
    /// Validate and normalise documents against the index's vector spaces.
    pub fn prepare(
        &self,
        docs: &[IndexDoc],
    ) -> Result<(Vec<Prepared>, BTreeMap<String, usize>), IndexError> {
        let mut new_dims: BTreeMap<String, usize> = BTreeMap::new();
        let mut out = Vec::with_capacity(docs.len());
        for doc in docs {
            let mut vectors = Vec::with_capacity(doc.vectors.len());
            for (space, v) in &doc.vectors {
                match self.dims.get(space).or_else(|| new_dims.get(space)) {
                    Some(&dim) if dim != v.len() => {
                        return Err(invalid(format!(
                            "document {}: vector space `{space}` has {dim} dimensions, got {}",
                            doc.key(),
                            v.len()
                        )));
                    }
                    Some(_) => {}
                    None => {
                        new_dims.insert(space.clone(), v.len());
                    }
                }
                let unit = normalized(v).ok_or_else(|| {
                    invalid(format!(
                        "document {}: vector `{space}` is empty, zero or not finite",
                        doc.key()
                    ))
                })?;
                vectors.push((space.clone(), unit));
            }
            let stored = IndexDoc {
                tenant: doc.tenant.clone(),
                source: doc.source.clone(),
                asset: doc.asset.clone(),
                segment: doc.segment.clone(),
                kind: doc.kind,
                path: doc.path.clone(),
                start_s: doc.start_s,
                end_s: doc.end_s,
                text: doc.text.clone(),
                thumbnail: doc.thumbnail.clone(),
                tags: doc.tags.clone(),
                vectors: BTreeMap::new(),
                meta: doc.meta.clone(),
            };
            out.push(Prepared {
                doc: stored,
                vectors,
            });
        }
        Ok((out, new_dims))
    }

    /// Apply prepared documents (validated by [`State::prepare`]).
    pub fn apply(
        &mut self,
        docs: Vec<Prepared>,
        new_dims: BTreeMap<String, usize>,
    ) -> Result<(), IndexError> {
        self.dims.extend(new_dims);
        for p in docs {
            let shard = self.shards.entry(p.doc.tenant.clone()).or_default();
            shard.put(p, &self.dims)?;
        }
        Ok(())
    }

    fn search(&self, req: &SearchRequest) -> Result<Vec<SearchHit>, IndexError> {
        let clauses = request_clauses(req)?;
        if let Some((from, to)) = req.filter.time_range
            && (from.is_nan() || to.is_nan() || from > to)
        {
            return Err(invalid(format!("bad time range [{from}, {to}]")));
        }
        let vector = match request_vector(req, &self.dims)? {
            Some((space, v)) => {
                let unit =
                    normalized(v).ok_or_else(|| invalid("query vector is zero or not finite"))?;
                Some((space, unit))
            }
            None => None,
        };
        let Some(shard) = self.shards.get(&req.tenant) else {
            return Ok(Vec::new());
        };
        if req.limit == 0 {
            return Ok(Vec::new());
        }
        let allowed = (req.filter != SearchFilter::default()).then(|| shard.allowed(&req.filter));
        let filter = allowed.as_ref().map(|a| (&req.filter, a));
        let want = req.offset.saturating_add(req.limit);
        let single = |top: Vec<(u32, f32)>, signal: String| -> Vec<SearchHit> {
            top.into_iter()
                .enumerate()
                .skip(req.offset)
                .filter_map(|(i, (slot, score))| {
                    let rank = u32::try_from(i + 1).unwrap_or(u32::MAX);
                    let signals = vec![SignalMatch {
                        signal: signal.clone(),
                        score,
                        rank,
                    }];
                    shard.hit(slot, score, signals, &clauses)
                })
                .collect()
        };
        Ok(match vector {
            None => single(shard.keyword_top(&clauses, filter, want), "keyword".into()),
            Some((space, unit)) if clauses.is_empty() => single(
                shard.vector_top(space, &unit, filter, want),
                format!("vector:{space}"),
            ),
            Some((space, unit)) => {
                let fetch = want.saturating_mul(HYBRID_OVERFETCH).max(HYBRID_MIN_FETCH);
                let keyword = || shard.keyword_top(&clauses, filter, fetch);
                let vector = || shard.vector_top(space, &unit, filter, fetch);
                // On large shards the two signals run on two threads (each takes
                // milliseconds there, a thread spawn ~20 µs); small ones stay on this one.
                let (kw, vs) = if shard.len() >= PARALLEL_HYBRID_MIN_DOCS {
                    std::thread::scope(|scope| {
                        let kw = scope.spawn(keyword);
                        let vs = vector();
                        (kw.join(), vs)
                    })
                } else {
                    (Ok(keyword()), vector())
                };
                let kw = kw.map_err(|_| IndexError::Backend {
                    index: NAME,
                    source: "keyword search thread panicked".into(),
                })?;
                let mut slot_of: HashMap<String, u32> = HashMap::new();
                let mut list = |signal: String, top: Vec<(u32, f32)>| RankedList {
                    signal,
                    hits: top
                        .into_iter()
                        .map(|(slot, score)| {
                            let key = shard.key_of(slot);
                            slot_of.insert(key.clone(), slot);
                            (key, score)
                        })
                        .collect(),
                };
                let lists = [
                    list("keyword".into(), kw),
                    list(format!("vector:{space}"), vs),
                ];
                fuse(&lists, req.fusion)
                    .into_iter()
                    .skip(req.offset)
                    .take(req.limit)
                    .filter_map(|f| {
                        let slot = *slot_of.get(&f.key)?;
                        shard.hit(slot, f.score, f.signals, &clauses)
                    })
                    .collect()
            }
        })
    }
}

impl EmbeddedIndex {
    fn with_state(state: State, dir: Option<PathBuf>) -> Self {
        Self {
            inner: Arc::new(Inner {
                state: RwLock::new(state),
                dir,
                dirty: AtomicBool::new(false),
                flush_lock: Mutex::new(()),
            }),
            graph_min_rows: None,
        }
    }

    /// Another handle to the same index (for a blocking task).
    fn handle(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
            graph_min_rows: self.graph_min_rows,
        }
    }

    /// Give vector spaces created from now on an HNSW graph from `rows` live vectors instead
    /// of 5 000, so tests reach the graph path with small corpora (the conformance suite runs
    /// once this way). Spaces loaded from a snapshot keep the default.
    #[must_use]
    pub fn with_graph_min_rows(mut self, rows: usize) -> Self {
        self.graph_min_rows = Some(rows);
        self
    }

    /// An empty index that lives only in memory (`flush` is a no-op).
    pub fn in_memory() -> Self {
        Self::with_state(State::default(), None)
    }

    /// Open the index stored in `dir`, creating the directory if needed. An existing
    /// snapshot is loaded and its keyword and vector indexes rebuilt; a snapshot that cannot
    /// be read is [`IndexError::Corrupt`]. The directory should be used by one process.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self, IndexError> {
        let dir = dir.as_ref().to_path_buf();
        let state = persist::load(&dir)?;
        Ok(Self::with_state(state, Some(dir)))
    }

    /// The directory this index persists to, if any.
    pub fn dir(&self) -> Option<&Path> {
        self.inner.dir.as_deref()
    }

    /// The snapshot file inside [`dir`](Self::dir).
    pub fn snapshot_path(&self) -> Option<PathBuf> {
        self.inner.dir.as_deref().map(persist::snapshot_path)
    }

    /// Vector spaces known to the index and their dimensions.
    pub fn spaces(&self) -> BTreeMap<String, usize> {
        self.read().dims.clone()
    }

    fn read(&self) -> RwLockReadGuard<'_, State> {
        self.inner
            .state
            .read()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, State> {
        self.inner
            .state
            .write()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Approximate heap bytes of the vector search structures, all tenants and spaces:
    /// `(vector rows, graph links + row bookkeeping)`. Documents and postings are not counted.
    pub fn vector_memory_bytes(&self) -> (usize, usize) {
        let state = self.read();
        state
            .shards
            .values()
            .flat_map(|s| s.spaces.values())
            .map(VectorSpace::memory_bytes)
            .fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1))
    }

    /// Blocking version of [`Index::upsert`] (the async one just calls this).
    pub fn upsert_blocking(&self, docs: &[IndexDoc]) -> Result<(), IndexError> {
        let mut state = self.write();
        let (prepared, new_dims) = state.prepare(docs)?;
        self.inner.dirty.store(true, Ordering::SeqCst);
        if let Some(rows) = self.graph_min_rows {
            for p in &prepared {
                let shard = state.shards.entry(p.doc.tenant.clone()).or_default();
                for (space, unit) in &p.vectors {
                    shard
                        .spaces
                        .entry(space.clone())
                        .or_insert_with(|| VectorSpace::with_graph_min(unit.len(), rows));
                }
            }
        }
        state.apply(prepared, new_dims)
    }

    /// Blocking version of [`Index::asset_counts`].
    pub fn asset_counts_blocking(&self, tenant: &TenantId) -> BTreeMap<AssetId, u64> {
        self.read()
            .shards
            .get(tenant)
            .map_or_else(BTreeMap::new, |s| {
                s.by_asset
                    .iter()
                    .filter(|(_, slots)| !slots.is_empty())
                    .map(|(a, slots)| (a.clone(), slots.len() as u64))
                    .collect()
            })
    }

    /// Blocking version of [`Index::count`].
    pub fn count_blocking(&self, tenant: &TenantId) -> u64 {
        self.read().shards.get(tenant).map_or(0, |s| s.len() as u64)
    }

    /// Blocking version of [`Index::search`].
    pub fn search_blocking(&self, request: &SearchRequest) -> Result<Vec<SearchHit>, IndexError> {
        self.read().search(request)
    }

    /// Blocking version of [`Index::flush`]: writes the snapshot if anything changed.
    pub fn flush_blocking(&self) -> Result<(), IndexError> {
        let Some(dir) = &self.inner.dir else {
            return Ok(());
        };
        let _one_flush_at_a_time = self
            .inner
            .flush_lock
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        // Holding the read lock excludes writers, so nothing changes between writing the
        // snapshot and clearing the dirty flag.
        let state = self.read();
        if !self.inner.dirty.load(Ordering::SeqCst) {
            return Ok(());
        }
        persist::save(dir, &state)?;
        self.inner.dirty.store(false, Ordering::SeqCst);
        Ok(())
    }

    /// Blocking version of [`Index::delete_asset`].
    pub fn delete_asset_blocking(&self, tenant: &TenantId, asset: &AssetId) -> u64 {
        let mut state = self.write();
        let n = state
            .shards
            .get_mut(tenant)
            .map_or(0, |s| s.delete_asset(asset));
        if n > 0 {
            self.inner.dirty.store(true, Ordering::SeqCst);
        }
        n
    }

    /// Run `f` with a handle to this index on tokio's blocking pool, or right here when no
    /// tokio runtime is running (another executor polls the future). A panic in `f` resumes
    /// in the caller, as if `f` had run inline.
    async fn off_runtime<T: Send + 'static>(
        &self,
        f: impl FnOnce(&EmbeddedIndex) -> Result<T, IndexError> + Send + 'static,
    ) -> Result<T, IndexError> {
        if tokio::runtime::Handle::try_current().is_err() {
            return f(self);
        }
        let this = self.handle();
        match tokio::task::spawn_blocking(move || f(&this)).await {
            Ok(out) => out,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(e) => Err(IndexError::Backend {
                index: NAME,
                source: format!("blocking task did not finish: {e}").into(),
            }),
        }
    }

    /// Run the read-only `f` inline if the state lock is free now and the tenant's shard has
    /// fewer than [`INLINE_SEARCH_MAX_DOCS`] documents, else on the blocking pool.
    async fn read_op<T: Send + 'static>(
        &self,
        tenant: &TenantId,
        f: impl FnOnce(&EmbeddedIndex) -> Result<T, IndexError> + Send + 'static,
    ) -> Result<T, IndexError> {
        let small = match self.inner.state.try_read() {
            Ok(state) => state
                .shards
                .get(tenant)
                .is_none_or(|s| s.len() < INLINE_SEARCH_MAX_DOCS),
            Err(std::sync::TryLockError::Poisoned(p)) => p
                .into_inner()
                .shards
                .get(tenant)
                .is_none_or(|s| s.len() < INLINE_SEARCH_MAX_DOCS),
            Err(std::sync::TryLockError::WouldBlock) => false,
        };
        if small {
            f(self)
        } else {
            self.off_runtime(f).await
        }
    }
}

#[async_trait]
impl Index for EmbeddedIndex {
    /// On the blocking pool (vectors are normalised and graphs updated under the write lock).
    async fn upsert(&self, docs: &[IndexDoc]) -> Result<(), IndexError> {
        if docs.is_empty() {
            return Ok(());
        }
        let docs = docs.to_vec();
        self.off_runtime(move |ix| ix.upsert_blocking(&docs)).await
    }

    /// On the blocking pool (waits for the write lock).
    async fn delete_asset(&self, tenant: &TenantId, asset: &AssetId) -> Result<u64, IndexError> {
        let (tenant, asset) = (tenant.clone(), asset.clone());
        self.off_runtime(move |ix| Ok(ix.delete_asset_blocking(&tenant, &asset)))
            .await
    }

    /// Inline on small shards when the lock is free, else on the blocking pool.
    async fn search(&self, request: &SearchRequest) -> Result<Vec<SearchHit>, IndexError> {
        let req = request.clone();
        self.read_op(&request.tenant, move |ix| ix.search_blocking(&req))
            .await
    }

    async fn count(&self, tenant: &TenantId) -> Result<u64, IndexError> {
        let t = tenant.clone();
        self.read_op(tenant, move |ix| Ok(ix.count_blocking(&t)))
            .await
    }

    async fn asset_counts(&self, tenant: &TenantId) -> Result<BTreeMap<AssetId, u64>, IndexError> {
        let t = tenant.clone();
        self.read_op(tenant, move |ix| Ok(ix.asset_counts_blocking(&t)))
            .await
    }

    /// Writes the snapshot on the blocking pool (a few hundred ms for 100k documents with
    /// 384-d vectors); returns at once when nothing changed or the index is in memory.
    async fn flush(&self) -> Result<(), IndexError> {
        if self.inner.dir.is_none() || !self.inner.dirty.load(Ordering::SeqCst) {
            return Ok(());
        }
        self.off_runtime(EmbeddedIndex::flush_blocking).await
    }
}

#[cfg(test)]
mod tests {
    use heimdex_core::conformance::index::vector_congruence;
    use heimdex_core::{SegmentKind, SourceId};

    use super::*;

    fn doc(i: usize, dim: usize) -> IndexDoc {
        let v: Vec<f32> = (0..dim)
            .map(|d| {
                // splitmix64 of (doc, dimension): distinct pseudo-random vectors.
                let mut z = ((i * dim + d) as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
                z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
                z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
                ((z ^ (z >> 31)) >> 40) as f32 / (1u64 << 24) as f32 - 0.5
            })
            .collect();
        IndexDoc {
            tenant: TenantId::default_tenant(),
            source: SourceId::new("local"),
            asset: AssetId::new(format!("a{}", i / 10)),
            segment: format!("s{}", i % 10),
            kind: SegmentKind::Shot,
            path: format!("/v/a{}.mp4", i / 10),
            start_s: (i % 10) as f64,
            end_s: (i % 10) as f64 + 1.0,
            text: format!("word{} common", i % 50),
            thumbnail: None,
            tags: Vec::new(),
            vectors: BTreeMap::from([("text".to_string(), v)]),
            meta: Default::default(),
        }
    }

    /// Reopening restores the vector rows, slots and HNSW graph exactly as saved (no
    /// rebuild), and the reopened index keeps working: deletes, reused slots, new inserts.
    #[tokio::test]
    async fn snapshot_restores_graph_and_slots_exactly() {
        let dir = tempfile::tempdir().expect("tempdir");
        let dim = 8;
        let index = EmbeddedIndex::open(dir.path()).expect("open");
        let docs: Vec<IndexDoc> = (0..crate::vector::GRAPH_MIN_ROWS + 500)
            .map(|i| doc(i, dim))
            .collect();
        index.upsert_blocking(&docs).expect("upsert");
        // Free a few slots and leave some deleted rows in the space.
        for a in ["a3", "a7"] {
            index
                .delete_asset(&TenantId::default_tenant(), &AssetId::new(a))
                .await
                .expect("delete");
        }
        index.flush_blocking().expect("flush");
        let reopened = EmbeddedIndex::open(dir.path()).expect("reopen");
        {
            let (a, b) = (index.read(), reopened.read());
            let (sa, sb) = (
                &a.shards[&TenantId::default_tenant()],
                &b.shards[&TenantId::default_tenant()],
            );
            assert_eq!(sa.slot_count(), sb.slot_count());
            assert_eq!(
                sa.free.iter().collect::<HashSet<_>>(),
                sb.free.iter().collect()
            );
            let (va, vb) = (sa.spaces["text"].parts(), sb.spaces["text"].parts());
            assert_eq!((va.0, va.1, va.2, va.3), (vb.0, vb.1, vb.2, vb.3));
            let (ga, gb) = (
                va.4.expect("graph").parts(),
                vb.4.expect("graph restored").parts(),
            );
            assert_eq!(ga.layer0, gb.layer0);
            assert_eq!(ga.upper, gb.upper);
            assert_eq!((ga.entry, ga.top, ga.rng), (gb.entry, gb.top, gb.rng));
        }
        for i in [0usize, 17, 2_500, 5_499] {
            let q = doc(i * 7 + 3, dim).vectors["text"].clone();
            let req = SearchRequest::new(TenantId::default_tenant())
                .with_text(format!("word{}", i % 50))
                .with_vector("text", q);
            assert_eq!(
                index.search_blocking(&req).expect("search"),
                reopened.search_blocking(&req).expect("search reopened")
            );
        }
        // Both continue identically: an upsert fills the same freed slot in each.
        let mut extra = [doc(99_999, dim)];
        // A direction no other document has (their vectors repeat every 97 documents).
        extra[0]
            .vectors
            .insert("text".into(), vec![1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]);
        index.upsert_blocking(&extra).expect("upsert");
        reopened.upsert_blocking(&extra).expect("upsert reopened");
        let slot_of = |ix: &EmbeddedIndex| {
            ix.read().shards[&TenantId::default_tenant()].by_key
                [&(AssetId::new("a9999"), "s9".to_string())]
        };
        assert_eq!(slot_of(&index), slot_of(&reopened));
        let req = SearchRequest::new(TenantId::default_tenant())
            .with_vector("text", extra[0].vectors["text"].clone())
            .with_limit(1);
        let hit = &reopened.search_blocking(&req).expect("search")[0];
        assert_eq!(hit.doc.key(), extra[0].key());
    }

    /// The shared congruence check on a space large enough to be searched through its HNSW
    /// graph (the conformance suite's own 2 000 documents stay on the exact path).
    #[tokio::test]
    async fn graph_path_meets_congruence_recall() {
        let index = EmbeddedIndex::in_memory();
        let recall = vector_congruence(&index, crate::vector::GRAPH_MIN_ROWS + 1_000, 32).await;
        assert!(
            index
                .read()
                .shards
                .values()
                .all(|s| s.spaces.values().all(crate::vector::VectorSpace::has_graph))
        );
        eprintln!("graph-path recall@10 {recall:.4}");
        assert!(recall >= 0.98, "recall@10 {recall:.3}");
    }

    /// Hold a lock of `index` on another thread until told to let go (or 5 s pass, so a
    /// regression fails the test instead of hanging it).
    fn hold_lock(
        index: &Arc<EmbeddedIndex>,
        write: bool,
    ) -> (std::sync::mpsc::Sender<()>, std::thread::JoinHandle<()>) {
        let (held_tx, held_rx) = std::sync::mpsc::channel();
        let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
        let ix = Arc::clone(index);
        let holder = std::thread::spawn(move || {
            let (_r, _w) = if write {
                (None, Some(ix.write()))
            } else {
                (Some(ix.read()), None)
            };
            held_tx.send(()).expect("signal");
            let _ = release_rx.recv_timeout(std::time::Duration::from_secs(5));
        });
        held_rx.recv().expect("lock held");
        (release_tx, holder)
    }

    /// On a single-threaded runtime, an upsert waiting for the lock (held here as a long
    /// flush or search would) and a search waiting for a writer leave the runtime free to
    /// run other tasks.
    #[tokio::test]
    async fn waiting_for_the_lock_does_not_block_the_runtime() {
        let index = Arc::new(EmbeddedIndex::in_memory());
        index.upsert(&[doc(0, 4)]).await.expect("upsert");
        for (write, op) in [(false, "upsert"), (true, "search")] {
            let (release, holder) = hold_lock(&index, write);
            let ix = Arc::clone(&index);
            let task = tokio::spawn(async move {
                match op {
                    "upsert" => ix.upsert(&[doc(1, 4)]).await.map(|()| 0),
                    _ => {
                        let req =
                            SearchRequest::new(TenantId::default_tenant()).with_text("common");
                        ix.search(&req).await.map(|hits| hits.len())
                    }
                }
            });
            let started = std::time::Instant::now();
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            let waited = started.elapsed();
            release.send(()).expect("release");
            holder.join().expect("holder");
            let out = task.await.expect("task").expect(op);
            assert!(
                waited < std::time::Duration::from_secs(2),
                "{op} blocked the runtime for {waited:?}"
            );
            if op == "search" {
                assert_eq!(out, 2);
            }
        }
        assert_eq!(
            index
                .count(&TenantId::default_tenant())
                .await
                .expect("count"),
            2
        );
    }

    /// Flush writes off the runtime; a flush with nothing to write returns at once, and the
    /// async and blocking APIs agree.
    #[tokio::test]
    async fn async_flush_and_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        let index = EmbeddedIndex::open(dir.path()).expect("open");
        index.flush().await.expect("empty flush");
        assert!(!index.snapshot_path().expect("path").exists());
        let docs: Vec<IndexDoc> = (0..30).map(|i| doc(i, 4)).collect();
        index.upsert(&docs).await.expect("upsert");
        index.upsert(&[]).await.expect("empty upsert");
        assert_eq!(
            index
                .delete_asset(&TenantId::default_tenant(), &AssetId::new("a1"))
                .await
                .expect("delete"),
            10
        );
        index.flush().await.expect("flush");
        let reopened = EmbeddedIndex::open(dir.path()).expect("reopen");
        let t = TenantId::default_tenant();
        assert_eq!(reopened.count(&t).await.expect("count"), 20);
        assert_eq!(
            reopened.asset_counts(&t).await.expect("asset counts"),
            index.asset_counts_blocking(&t)
        );
        let req = SearchRequest::new(t).with_text("word3");
        assert_eq!(
            reopened.search(&req).await.expect("search"),
            index.search_blocking(&req).expect("search")
        );
    }

    /// Polled by an executor other than tokio, the async methods run inline.
    #[test]
    fn works_without_a_tokio_runtime() {
        let index = EmbeddedIndex::in_memory();
        let fut = async {
            index.upsert(&[doc(0, 4)]).await?;
            index.flush().await?;
            index.count(&TenantId::default_tenant()).await
        };
        // A minimal executor: the futures never wait (no runtime, all inline).
        let waker = std::task::Waker::noop();
        let mut cx = std::task::Context::from_waker(waker);
        let mut fut = std::pin::pin!(fut);
        match fut.as_mut().poll(&mut cx) {
            std::task::Poll::Ready(n) => assert_eq!(n.expect("ops"), 1),
            std::task::Poll::Pending => panic!("pending without a runtime"),
        }
    }
}
