//! [`EmbeddedIndex`]: the in-process [`Index`].

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use async_trait::async_trait;
use heimdex_core::fusion::{RankedList, fuse};
use heimdex_core::index::SignalMatch;
use heimdex_core::{
    AssetId, Index, IndexDoc, IndexError, SearchFilter, SearchHit, SearchRequest, TenantId,
};

use crate::keyword::{InvertedIndex, analyze, snippet};
use crate::persist;
use crate::query::{Clause, request_clauses};
use crate::vector::{VectorSpace, normalized};

/// Backend name used in errors.
pub(crate) const NAME: &str = "embedded";

/// Each signal of a hybrid search fetches `max((offset + limit) * HYBRID_OVERFETCH,
/// HYBRID_MIN_FETCH)` candidates before fusion.
pub const HYBRID_OVERFETCH: usize = 4;
/// See [`HYBRID_OVERFETCH`].
pub const HYBRID_MIN_FETCH: usize = 50;

/// The embedded, in-process index: a positional inverted index with BM25 for keywords,
/// cosine search over named vector spaces (HNSW graph or exact scan), and [`fuse`] for hybrid
/// queries. See the [crate docs](crate) for the design.
///
/// All operations run in memory under a [`RwLock`] (many concurrent searches, one writer).
/// [`EmbeddedIndex::open`] loads a snapshot from a directory; [`Index::flush`] writes one
/// atomically. Nothing is written unless `flush` is called (there is no flush on drop).
pub struct EmbeddedIndex {
    state: RwLock<State>,
    dir: Option<PathBuf>,
    dirty: AtomicBool,
    flush_lock: Mutex<()>,
}

impl fmt::Debug for EmbeddedIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.read();
        f.debug_struct("EmbeddedIndex")
            .field("dir", &self.dir)
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
}

#[derive(Debug)]
struct Stored {
    /// The document without vectors (they live in the spaces).
    doc: IndexDoc,
    /// `doc.key()`, cached for tie-breaking.
    key: String,
    /// Token count of path + text.
    len: u32,
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

    fn passes(&self, slot: u32, filter: Option<&SearchFilter>) -> bool {
        match (self.stored(slot), filter) {
            (None, _) => false,
            (Some(_), None) => true,
            (Some(s), Some(f)) => f.matches(&s.doc),
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
        let (analyzed, len) = analyze(&stored.doc.path, &stored.doc.text);
        self.text.remove(slot, &analyzed, len);
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
        let (analyzed, len) = analyze(&p.doc.path, &p.doc.text);
        self.text.insert(slot, analyzed, len);
        for (space, unit) in p.vectors {
            let dim = dims.get(&space).copied().unwrap_or(unit.len());
            self.spaces
                .entry(space)
                .or_insert_with(|| VectorSpace::new(dim))
                .insert(slot, &unit);
        }
        self.by_key.insert(id, slot);
        self.by_asset
            .entry(p.doc.asset.clone())
            .or_default()
            .insert(slot);
        let key = p.doc.key();
        self.slots[slot as usize] = Some(Stored {
            doc: p.doc,
            key,
            len,
        });
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
        filter: Option<&SearchFilter>,
        n: usize,
    ) -> Vec<(u32, f32)> {
        let mut scores = vec![0.0f32; self.slots.len()];
        let mut touched = Vec::new();
        self.text.score(
            clauses,
            |slot| self.stored(slot).map_or(0, |s| s.len),
            &mut scores,
            &mut touched,
        );
        let candidates: Vec<(u32, f32)> = touched
            .into_iter()
            .filter(|&slot| self.passes(slot, filter))
            .map(|slot| (slot, scores[slot as usize]))
            .collect();
        top_n(candidates, n, |slot| self.key_of(slot))
    }

    fn vector_top(
        &self,
        space: &str,
        unit: &[f32],
        filter: Option<&SearchFilter>,
        n: usize,
    ) -> Vec<(u32, f32)> {
        let Some(space) = self.spaces.get(space) else {
            return Vec::new();
        };
        let keep = |slot: u32| self.passes(slot, filter);
        let candidates = space.search(unit, n, filter.map(|_| &keep as &dyn Fn(u32) -> bool));
        top_n(candidates, n, |slot| self.key_of(slot))
    }

    /// Stored vector of `slot` in `space` (normalised).
    pub fn vector(&self, space: &str, slot: u32) -> Option<&[f32]> {
        self.spaces.get(space).and_then(|s| s.get(slot))
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
            snippet(&stored.doc.text, &stored.doc.path, clauses)
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
        let vector = match &req.vector {
            Some((space, v)) => {
                let dim = self
                    .dims
                    .get(space)
                    .copied()
                    .ok_or_else(|| invalid(format!("unknown vector space `{space}`")))?;
                if v.len() != dim {
                    return Err(invalid(format!(
                        "vector space `{space}` has {dim} dimensions, the query has {}",
                        v.len()
                    )));
                }
                let unit =
                    normalized(v).ok_or_else(|| invalid("query vector is zero or not finite"))?;
                Some((space.as_str(), unit))
            }
            None => None,
        };
        let Some(shard) = self.shards.get(&req.tenant) else {
            return Ok(Vec::new());
        };
        if req.limit == 0 {
            return Ok(Vec::new());
        }
        let filter = (req.filter != SearchFilter::default()).then_some(&req.filter);
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
                let kw = shard.keyword_top(&clauses, filter, fetch);
                let vs = shard.vector_top(space, &unit, filter, fetch);
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
            state: RwLock::new(state),
            dir,
            dirty: AtomicBool::new(false),
            flush_lock: Mutex::new(()),
        }
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
        self.dir.as_deref()
    }

    /// The snapshot file inside [`dir`](Self::dir).
    pub fn snapshot_path(&self) -> Option<PathBuf> {
        self.dir.as_deref().map(persist::snapshot_path)
    }

    /// Vector spaces known to the index and their dimensions.
    pub fn spaces(&self) -> BTreeMap<String, usize> {
        self.read().dims.clone()
    }

    fn read(&self) -> RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(PoisonError::into_inner)
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
        self.dirty.store(true, Ordering::SeqCst);
        state.apply(prepared, new_dims)
    }

    /// Blocking version of [`Index::search`].
    pub fn search_blocking(&self, request: &SearchRequest) -> Result<Vec<SearchHit>, IndexError> {
        self.read().search(request)
    }

    /// Blocking version of [`Index::flush`]: writes the snapshot if anything changed.
    pub fn flush_blocking(&self) -> Result<(), IndexError> {
        let Some(dir) = &self.dir else {
            return Ok(());
        };
        let _one_flush_at_a_time = self
            .flush_lock
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        // Holding the read lock excludes writers, so nothing changes between writing the
        // snapshot and clearing the dirty flag.
        let state = self.read();
        if !self.dirty.load(Ordering::SeqCst) {
            return Ok(());
        }
        persist::save(dir, &state)?;
        self.dirty.store(false, Ordering::SeqCst);
        Ok(())
    }
}

#[async_trait]
impl Index for EmbeddedIndex {
    async fn upsert(&self, docs: &[IndexDoc]) -> Result<(), IndexError> {
        self.upsert_blocking(docs)
    }

    async fn delete_asset(&self, tenant: &TenantId, asset: &AssetId) -> Result<u64, IndexError> {
        let mut state = self.write();
        let n = state
            .shards
            .get_mut(tenant)
            .map_or(0, |s| s.delete_asset(asset));
        if n > 0 {
            self.dirty.store(true, Ordering::SeqCst);
        }
        Ok(n)
    }

    async fn search(&self, request: &SearchRequest) -> Result<Vec<SearchHit>, IndexError> {
        self.search_blocking(request)
    }

    async fn count(&self, tenant: &TenantId) -> Result<u64, IndexError> {
        Ok(self.read().shards.get(tenant).map_or(0, |s| s.len() as u64))
    }

    /// Writes the snapshot on the calling thread (a few hundred ms for 100k documents with
    /// 384-d vectors); call it from `spawn_blocking` where that matters.
    async fn flush(&self) -> Result<(), IndexError> {
        self.flush_blocking()
    }
}

#[cfg(test)]
mod tests {
    use heimdex_core::conformance::index::vector_congruence;

    use super::*;

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
}
