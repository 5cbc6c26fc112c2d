//! Query vectors, remembered: encoding a query with a text model costs milliseconds of CPU
//! (MiniLM: ~8 ms on 2 cores), searching the index with it costs one; the same query comes
//! back often (the next page of results, a shared link, the web page asking again, a team
//! searching the same names). A bounded cache of recent query vectors, per vector space,
//! makes every repeat cost what a keyword search costs.
//!
//! Two generations approximate least-recently-used eviction with plain maps: hits in the old
//! generation move to the new one; when the new one holds half the capacity, it becomes the
//! old one and the previous old one is dropped. At most `capacity` vectors are held (384
//! floats each for MiniLM: 4,096 entries ≈ 6 MiB).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Key: (vector space, query text with whitespace collapsed).
type Key = (String, String);

/// A bounded map of query text → vector.
#[derive(Debug)]
pub(crate) struct QueryVectors {
    capacity: usize,
    inner: Mutex<Generations>,
}

#[derive(Debug, Default)]
struct Generations {
    young: HashMap<Key, Arc<Vec<f32>>>,
    old: HashMap<Key, Arc<Vec<f32>>>,
    hits: u64,
    misses: u64,
}

impl QueryVectors {
    /// A cache of at most `capacity` vectors (0: nothing is cached).
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            capacity,
            inner: Mutex::new(Generations::default()),
        }
    }

    fn key(space: &str, text: &str) -> Key {
        (
            space.to_owned(),
            text.split_whitespace().collect::<Vec<_>>().join(" "),
        )
    }

    /// The vector of `text` in `space`, if remembered.
    pub(crate) fn get(&self, space: &str, text: &str) -> Option<Arc<Vec<f32>>> {
        if self.capacity == 0 {
            return None;
        }
        let key = Self::key(space, text);
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(v) = g.young.get(&key) {
            let v = Arc::clone(v);
            g.hits += 1;
            return Some(v);
        }
        if let Some(v) = g.old.remove(&key) {
            g.hits += 1;
            self.insert_locked(&mut g, key, Arc::clone(&v));
            return Some(v);
        }
        g.misses += 1;
        None
    }

    /// Remember the vector of `text` in `space`.
    pub(crate) fn put(&self, space: &str, text: &str, vector: Arc<Vec<f32>>) {
        if self.capacity == 0 {
            return;
        }
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        self.insert_locked(&mut g, Self::key(space, text), vector);
    }

    fn insert_locked(&self, g: &mut Generations, key: Key, vector: Arc<Vec<f32>>) {
        if g.young.len() >= self.capacity.div_ceil(2) {
            g.old = std::mem::take(&mut g.young);
        }
        g.young.insert(key, vector);
    }

    /// (hits, misses) so far.
    pub(crate) fn stats(&self) -> (u64, u64) {
        let g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        (g.hits, g.misses)
    }

    /// Vectors held now.
    pub(crate) fn len(&self) -> usize {
        let g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        g.young.len() + g.old.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(x: f32) -> Arc<Vec<f32>> {
        Arc::new(vec![x; 4])
    }

    #[test]
    fn remembers_by_space_and_collapsed_whitespace() {
        let c = QueryVectors::new(8);
        assert!(c.get("text", "sunset harbor").is_none());
        c.put("text", "sunset harbor", v(1.0));
        assert_eq!(
            c.get("text", "  sunset   harbor ").as_deref(),
            Some(&vec![1.0; 4])
        );
        assert!(c.get("clip", "sunset harbor").is_none(), "spaces are apart");
        assert!(c.get("text", "Sunset harbor").is_none(), "case is kept");
        assert_eq!(c.stats(), (1, 3));
    }

    #[test]
    fn bounded_and_recently_used_survive() {
        let c = QueryVectors::new(4);
        for i in 0..4 {
            c.put("text", &format!("q{i}"), v(i as f32));
        }
        // q0 used again: it moves to the young generation and survives the next turnover.
        assert!(c.get("text", "q0").is_some());
        for i in 4..7 {
            c.put("text", &format!("q{i}"), v(i as f32));
        }
        assert!(c.len() <= 4, "held {}", c.len());
        assert!(c.get("text", "q6").is_some(), "the newest is kept");
        assert!(
            c.get("text", "q1").is_none(),
            "an old unused one is dropped"
        );
        for i in 0..100 {
            c.put("text", &format!("x{i}"), v(0.0));
            assert!(c.len() <= 4);
        }
    }

    #[test]
    fn zero_capacity_caches_nothing() {
        let c = QueryVectors::new(0);
        c.put("text", "a", v(1.0));
        assert!(c.get("text", "a").is_none());
        assert_eq!(c.len(), 0);
    }
}
