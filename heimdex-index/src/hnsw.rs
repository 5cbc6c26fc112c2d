//! A small HNSW graph (Malkov & Yashunin) over the flat rows of a [`VectorSpace`].
//!
//! Nodes are row numbers of the space's flat `Vec<f32>` (the graph stores no vectors).
//! Similarity is the inner product of unit vectors (= cosine). Layer 0 keeps up to
//! [`M0`] = 2·[`M`] links per node in one flat `Vec<u32>`; upper layers (about 1/M of the
//! nodes) keep up to [`M`] links. Neighbours are chosen with the paper's heuristic
//! (a candidate is kept only if it is closer to the new node than to any already kept one),
//! which keeps the graph navigable on clustered data.
//!
//! Search takes an `accept` predicate: rejected nodes (deleted rows, rows failing the filter)
//! are still traversed but never enter the result set, so filtered results are exact with
//! respect to the filter and only recall is approximate.
//!
//! [`VectorSpace`]: crate::vector::VectorSpace

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;
use std::sync::{Mutex, PoisonError};

use crate::vector::dot;

/// Links per node on the upper layers.
pub(crate) const M: usize = 16;
/// Links per node on layer 0.
pub(crate) const M0: usize = 2 * M;
/// Candidate list size while inserting.
pub(crate) const EF_CONSTRUCTION: usize = 100;
/// Highest layer a node can get (with M = 16, level 8 needs ~4·10⁹ nodes).
const MAX_LEVEL: usize = 12;

/// A node with its similarity to the current query; ordered by similarity, then node.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Cand {
    pub sim: f32,
    pub node: u32,
}

impl Eq for Cand {}
impl Ord for Cand {
    fn cmp(&self, o: &Self) -> Ordering {
        self.sim
            .total_cmp(&o.sim)
            .then_with(|| o.node.cmp(&self.node))
    }
}
impl PartialOrd for Cand {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}

/// Visited marks with an epoch, reused across searches (no per-query clearing).
#[derive(Debug, Default)]
struct Visited {
    marks: Vec<u32>,
    epoch: u32,
}

impl Visited {
    fn reset(&mut self, n: usize) {
        if self.marks.len() < n {
            self.marks.resize(n, 0);
        }
        self.epoch = self.epoch.wrapping_add(1);
        if self.epoch == 0 {
            self.marks.fill(0);
            self.epoch = 1;
        }
    }

    /// Mark `i`; `true` if it was not marked yet.
    fn insert(&mut self, i: u32) -> bool {
        let m = &mut self.marks[i as usize];
        if *m == self.epoch {
            false
        } else {
            *m = self.epoch;
            true
        }
    }
}

/// A borrowed view of a graph's state (for persisting).
pub(crate) struct HnswParts<'a> {
    /// Layer-0 table: per node a link count then [`M0`] slots.
    pub layer0: &'a [u32],
    /// Per node: `level * (M + 1)` (count + [`M`] slots per upper layer).
    pub upper: &'a [Vec<u32>],
    pub entry: u32,
    pub top: usize,
    pub rng: u64,
}

/// The graph. Node `i` is row `i` of the `data` slice passed to every call.
#[derive(Debug)]
pub(crate) struct Hnsw {
    dim: usize,
    /// `len * (M0 + 1)`: per node a link count followed by `M0` slots.
    layer0: Vec<u32>,
    /// Per node: `level * (M + 1)` (count + `M` slots for layers 1..=level).
    upper: Vec<Vec<u32>>,
    entry: u32,
    top: usize,
    len: usize,
    rng: u64,
    /// Reusable visited lists (searches run concurrently under the index's read lock).
    pool: Mutex<Vec<Visited>>,
}

impl Hnsw {
    pub fn new(dim: usize) -> Self {
        Self {
            dim,
            layer0: Vec::new(),
            upper: Vec::new(),
            entry: 0,
            top: 0,
            len: 0,
            rng: 0x5EED_4E57_1DE5_0001,
            pool: Mutex::new(Vec::new()),
        }
    }

    /// Number of nodes.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.len
    }

    /// The graph's state, for persisting (see [`Hnsw::from_parts`]).
    pub fn parts(&self) -> HnswParts<'_> {
        HnswParts {
            layer0: &self.layer0,
            upper: &self.upper,
            entry: self.entry,
            top: self.top,
            rng: self.rng,
        }
    }

    /// Rebuild a graph of `len` nodes from persisted parts, checking that every link
    /// points at a node and every list fits its layer (a corrupt snapshot must not panic
    /// later in a search).
    pub fn from_parts(
        dim: usize,
        len: usize,
        layer0: Vec<u32>,
        upper: Vec<Vec<u32>>,
        entry: u32,
        top: usize,
        rng: u64,
    ) -> Result<Self, String> {
        if layer0.len() != len * (M0 + 1) || upper.len() != len {
            return Err(format!("graph of {len} nodes has mismatched link tables"));
        }
        if len > 0 && (entry as usize >= len || top > MAX_LEVEL) {
            return Err(format!("graph entry {entry} / top {top} out of range"));
        }
        let check = |buf: &[u32], cap: usize| -> Result<(), String> {
            for list in buf.chunks_exact(cap + 1) {
                let n = list[0] as usize;
                if n > cap || list[1..=n].iter().any(|&l| l as usize >= len) {
                    return Err("graph link out of range".into());
                }
            }
            Ok(())
        };
        check(&layer0, M0)?;
        for (node, u) in upper.iter().enumerate() {
            if u.len() % (M + 1) != 0 || u.len() / (M + 1) > MAX_LEVEL {
                return Err(format!("graph node {node}: bad upper layer table"));
            }
            check(u, M)?;
        }
        if len > 0 && upper[entry as usize].len() / (M + 1) != top {
            return Err("graph entry point is not on the top layer".into());
        }
        Ok(Self {
            dim,
            layer0,
            upper,
            entry,
            top,
            len,
            rng,
            pool: Mutex::new(Vec::new()),
        })
    }

    /// Approximate heap bytes of the links.
    pub fn memory_bytes(&self) -> usize {
        self.layer0.capacity() * 4
            + self.upper.capacity() * std::mem::size_of::<Vec<u32>>()
            + self.upper.iter().map(|u| u.capacity() * 4).sum::<usize>()
    }

    fn row<'a>(&self, data: &'a [f32], node: u32) -> &'a [f32] {
        let i = node as usize * self.dim;
        &data[i..i + self.dim]
    }

    fn links(&self, node: u32, level: usize) -> &[u32] {
        let (buf, off) = if level == 0 {
            (&self.layer0[..], node as usize * (M0 + 1))
        } else {
            (&self.upper[node as usize][..], (level - 1) * (M + 1))
        };
        let n = buf[off] as usize;
        &buf[off + 1..off + 1 + n]
    }

    fn set_links(&mut self, node: u32, level: usize, ids: &[u32]) {
        let (buf, off, cap) = if level == 0 {
            (&mut self.layer0[..], node as usize * (M0 + 1), M0)
        } else {
            (&mut self.upper[node as usize][..], (level - 1) * (M + 1), M)
        };
        debug_assert!(ids.len() <= cap);
        buf[off] = ids.len() as u32;
        buf[off + 1..off + 1 + ids.len()].copy_from_slice(ids);
    }

    fn random_level(&mut self) -> usize {
        // splitmix64
        self.rng = self.rng.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        // u in (0, 1]
        let u = ((z >> 11) + 1) as f64 / (1u64 << 53) as f64;
        let ml = 1.0 / (M as f64).ln();
        ((-u.ln() * ml) as usize).min(MAX_LEVEL)
    }

    fn take_visited(&self) -> Visited {
        self.pool
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop()
            .unwrap_or_default()
    }

    fn give_visited(&self, v: Visited) {
        let mut pool = self.pool.lock().unwrap_or_else(PoisonError::into_inner);
        if pool.len() < 8 {
            pool.push(v);
        }
    }

    /// Greedy walk on one upper layer towards `q`.
    fn greedy(&self, data: &[f32], q: &[f32], mut ep: Cand, level: usize) -> Cand {
        loop {
            let mut changed = false;
            for &nb in self.links(ep.node, level) {
                let sim = dot(q, self.row(data, nb));
                if sim > ep.sim {
                    ep = Cand { sim, node: nb };
                    changed = true;
                }
            }
            if !changed {
                return ep;
            }
        }
    }

    /// Beam search of one layer. Returns up to `ef` accepted nodes, best first.
    #[allow(clippy::too_many_arguments)]
    fn search_layer(
        &self,
        data: &[f32],
        q: &[f32],
        eps: &[Cand],
        ef: usize,
        level: usize,
        visited: &mut Visited,
        accept: &dyn Fn(u32) -> bool,
    ) -> Vec<Cand> {
        visited.reset(self.len);
        let mut cands: BinaryHeap<Cand> = BinaryHeap::with_capacity(ef * 2);
        let mut res: BinaryHeap<Reverse<Cand>> = BinaryHeap::with_capacity(ef + 1);
        for &e in eps {
            if visited.insert(e.node) {
                cands.push(e);
                if accept(e.node) {
                    res.push(Reverse(e));
                    if res.len() > ef {
                        res.pop();
                    }
                }
            }
        }
        while let Some(c) = cands.pop() {
            if res.len() >= ef && res.peek().is_some_and(|w| c.sim < w.0.sim) {
                break;
            }
            for &nb in self.links(c.node, level) {
                if !visited.insert(nb) {
                    continue;
                }
                let sim = dot(q, self.row(data, nb));
                if res.len() < ef || res.peek().is_some_and(|w| sim > w.0.sim) {
                    let cand = Cand { sim, node: nb };
                    cands.push(cand);
                    if accept(nb) {
                        res.push(Reverse(cand));
                        if res.len() > ef {
                            res.pop();
                        }
                    }
                }
            }
        }
        let mut out: Vec<Cand> = res.into_iter().map(|r| r.0).collect();
        out.sort_by(|a, b| b.cmp(a));
        out
    }

    /// The neighbour-selection heuristic: from `cands` (best first, similarity to the base
    /// node), keep a candidate only if it is more similar to the base than to every kept one.
    fn select(&self, data: &[f32], cands: &[Cand], m: usize) -> Vec<u32> {
        let mut out: Vec<u32> = Vec::with_capacity(m);
        for c in cands {
            if out.len() >= m {
                break;
            }
            let v = self.row(data, c.node);
            if out.iter().all(|&s| dot(v, self.row(data, s)) <= c.sim) {
                out.push(c.node);
            }
        }
        out
    }

    /// Add the link `from → to` on `level`, pruning `from`'s list with the heuristic if full.
    fn add_link(&mut self, data: &[f32], from: u32, to: u32, level: usize) {
        let cap = if level == 0 { M0 } else { M };
        let current = self.links(from, level);
        if current.len() < cap {
            let mut ids = current.to_vec();
            ids.push(to);
            self.set_links(from, level, &ids);
            return;
        }
        let base = self.row(data, from);
        let mut cands: Vec<Cand> = current
            .iter()
            .chain(std::iter::once(&to))
            .map(|&n| Cand {
                sim: dot(base, self.row(data, n)),
                node: n,
            })
            .collect();
        cands.sort_by(|a, b| b.cmp(a));
        let kept = self.select(data, &cands, cap);
        self.set_links(from, level, &kept);
    }

    /// Insert the next row (`node == self.len()`) of `data`.
    pub fn insert(&mut self, data: &[f32]) {
        let node = self.len as u32;
        let level = self.random_level();
        self.layer0.resize(self.layer0.len() + M0 + 1, 0);
        self.upper.push(vec![0; level * (M + 1)]);
        self.len += 1;
        if node == 0 {
            self.entry = 0;
            self.top = level;
            return;
        }
        let q = self.row(data, node);
        let mut ep = Cand {
            sim: dot(q, self.row(data, self.entry)),
            node: self.entry,
        };
        for l in (level + 1..=self.top).rev() {
            ep = self.greedy(data, q, ep, l);
        }
        let mut visited = self.take_visited();
        let mut eps = vec![ep];
        for l in (0..=level.min(self.top)).rev() {
            let found =
                self.search_layer(data, q, &eps, EF_CONSTRUCTION, l, &mut visited, &|_| true);
            let selected = self.select(data, &found, M);
            self.set_links(node, l, &selected);
            for &nb in &selected {
                self.add_link(data, nb, node, l);
            }
            eps = found;
        }
        self.give_visited(visited);
        if level > self.top {
            self.top = level;
            self.entry = node;
        }
    }

    /// Up to `ef` accepted nodes most similar to `q`, best first.
    pub fn search(
        &self,
        data: &[f32],
        q: &[f32],
        ef: usize,
        accept: &dyn Fn(u32) -> bool,
    ) -> Vec<Cand> {
        if self.len == 0 {
            return Vec::new();
        }
        let mut ep = Cand {
            sim: dot(q, self.row(data, self.entry)),
            node: self.entry,
        };
        for l in (1..=self.top).rev() {
            ep = self.greedy(data, q, ep, l);
        }
        let mut visited = self.take_visited();
        let out = self.search_layer(data, q, &[ep], ef, 0, &mut visited, accept);
        self.give_visited(visited);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vector::normalized;

    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> f32 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            (self.0 >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
        }
    }

    /// Clustered unit vectors (like real embeddings: many topics, noise around each).
    fn clustered(n: usize, dim: usize, seed: u64) -> Vec<f32> {
        let mut rng = Rng(seed | 1);
        let centres: Vec<Vec<f32>> = (0..50)
            .map(|_| (0..dim).map(|_| rng.next()).collect())
            .collect();
        let mut out = Vec::with_capacity(n * dim);
        for i in 0..n {
            let c = &centres[i % centres.len()];
            let v: Vec<f32> = c.iter().map(|x| x + 0.6 * rng.next()).collect();
            out.extend(normalized(&v).unwrap());
        }
        out
    }

    #[test]
    fn from_parts_rejects_inconsistent_tables() {
        let dim = 4;
        let data = clustered(300, dim, 3);
        let mut g = Hnsw::new(dim);
        for _ in 0..300 {
            g.insert(&data);
        }
        let p = g.parts();
        let rebuild = |layer0: Vec<u32>, upper: Vec<Vec<u32>>, entry: u32| {
            Hnsw::from_parts(dim, 300, layer0, upper, entry, p.top, p.rng)
        };
        let ok = rebuild(p.layer0.to_vec(), p.upper.to_vec(), p.entry).expect("valid");
        let q = &data[..dim];
        assert_eq!(
            ok.search(&data, q, 10, &|_| true),
            g.search(&data, q, 10, &|_| true)
        );
        let mut bad_link = p.layer0.to_vec();
        bad_link[0] = 1;
        bad_link[1] = 300;
        assert!(rebuild(bad_link, p.upper.to_vec(), p.entry).is_err());
        let mut bad_count = p.layer0.to_vec();
        bad_count[0] = (M0 + 1) as u32;
        assert!(rebuild(bad_count, p.upper.to_vec(), p.entry).is_err());
        assert!(rebuild(p.layer0[..10].to_vec(), p.upper.to_vec(), p.entry).is_err());
        assert!(rebuild(p.layer0.to_vec(), p.upper.to_vec(), 300).is_err());
    }

    #[test]
    fn recall_and_accept() {
        let dim = 32;
        let n = 4000;
        let data = clustered(n, dim, 7);
        let mut g = Hnsw::new(dim);
        for _ in 0..n {
            g.insert(&data);
        }
        assert_eq!(g.len(), n);
        let queries = clustered(50, dim, 99);
        let mut recall = 0.0;
        for q in queries.chunks_exact(dim) {
            let mut exact: Vec<Cand> = data
                .chunks_exact(dim)
                .enumerate()
                .map(|(i, r)| Cand {
                    sim: dot(q, r),
                    node: i as u32,
                })
                .collect();
            exact.sort_by(|a, b| b.cmp(a));
            let got = g.search(&data, q, 64, &|_| true);
            let got: Vec<u32> = got.iter().take(10).map(|c| c.node).collect();
            recall += exact[..10].iter().filter(|c| got.contains(&c.node)).count() as f64 / 10.0;
            // Rejected nodes never come back.
            let odd = g.search(&data, q, 64, &|n| n % 2 == 1);
            assert!(odd.iter().all(|c| c.node % 2 == 1));
            assert_eq!(odd.len(), 64);
        }
        assert!(recall / 50.0 >= 0.98, "recall {}", recall / 50.0);
    }
}
