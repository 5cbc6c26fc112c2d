//! Named vector spaces: normalised vectors stored contiguously, exact cosine search.
//!
//! Each space keeps one flat `Vec<f32>` (row-major, `dim` floats per row) and a row → slot
//! map. Vectors are normalised on insert, so cosine similarity is a dot product. Deleting
//! swaps the last row into the hole, keeping the storage dense.
//!
//! Search is brute force with the filter applied *before* scoring, so filtered results are
//! exact. This is the right trade at the embedded scale (100k × 384-d in tens of
//! milliseconds, see `benches/search.rs`). An approximate graph (HNSW) for ~1M documents can
//! be added per space on top of this storage: the flat rows are exactly what an HNSW layer
//! references by row number, and the exact scan remains the fallback for very selective
//! filters and the reference the congruence test compares against.

use std::collections::HashMap;

/// One named space of one tenant.
#[derive(Debug)]
pub(crate) struct VectorSpace {
    dim: usize,
    data: Vec<f32>,
    /// Row → document slot.
    slots: Vec<u32>,
    /// Document slot → row.
    rows: HashMap<u32, usize>,
}

/// Normalise `v` to unit length; `None` if it is empty, not finite, or zero.
pub(crate) fn normalized(v: &[f32]) -> Option<Vec<f32>> {
    if v.is_empty() || v.iter().any(|x| !x.is_finite()) {
        return None;
    }
    let norm = v
        .iter()
        .map(|x| f64::from(*x) * f64::from(*x))
        .sum::<f64>()
        .sqrt();
    if norm == 0.0 || !norm.is_finite() {
        return None;
    }
    Some(v.iter().map(|x| (f64::from(*x) / norm) as f32).collect())
}

/// Dot product, written so the compiler vectorises it.
pub(crate) fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let (ac, ar) = a.split_at(a.len() - a.len() % 8);
    let (bc, br) = b.split_at(ac.len().min(b.len()));
    for (x, y) in ac.chunks_exact(8).zip(bc.chunks_exact(8)) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    let tail: f32 = ar.iter().zip(br).map(|(x, y)| x * y).sum();
    acc.iter().sum::<f32>() + tail
}

impl VectorSpace {
    pub fn new(dim: usize) -> Self {
        Self {
            dim,
            data: Vec::new(),
            slots: Vec::new(),
            rows: HashMap::new(),
        }
    }

    /// Number of rows.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Insert (or replace) the already-normalised vector of `slot`.
    pub fn insert(&mut self, slot: u32, unit: &[f32]) {
        debug_assert_eq!(unit.len(), self.dim);
        if let Some(&row) = self.rows.get(&slot) {
            self.data[row * self.dim..(row + 1) * self.dim].copy_from_slice(unit);
            return;
        }
        self.rows.insert(slot, self.slots.len());
        self.slots.push(slot);
        self.data.extend_from_slice(unit);
    }

    /// Remove the vector of `slot`, if any.
    pub fn remove(&mut self, slot: u32) {
        let Some(row) = self.rows.remove(&slot) else {
            return;
        };
        let last = self.slots.len() - 1;
        if row != last {
            let moved = self.slots[last];
            self.slots[row] = moved;
            self.rows.insert(moved, row);
            self.data
                .copy_within(last * self.dim..(last + 1) * self.dim, row * self.dim);
        }
        self.slots.pop();
        self.data.truncate(last * self.dim);
    }

    /// The stored (normalised) vector of `slot`.
    pub fn get(&self, slot: u32) -> Option<&[f32]> {
        self.rows
            .get(&slot)
            .map(|&row| &self.data[row * self.dim..(row + 1) * self.dim])
    }

    /// Cosine similarity of `unit` with every row whose slot passes `keep`.
    pub fn scan(&self, unit: &[f32], keep: impl Fn(u32) -> bool) -> Vec<(u32, f32)> {
        self.data
            .chunks_exact(self.dim)
            .zip(&self.slots)
            .filter(|(_, slot)| keep(**slot))
            .map(|(row, slot)| (*slot, dot(unit, row)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insert_remove_keeps_rows_dense() {
        let mut s = VectorSpace::new(2);
        for slot in 0..4u32 {
            s.insert(slot, &normalized(&[1.0, slot as f32]).unwrap());
        }
        s.remove(1);
        assert_eq!(s.len(), 3);
        assert_eq!(s.get(1), None);
        let v3 = normalized(&[1.0, 3.0]).unwrap();
        assert_eq!(s.get(3), Some(v3.as_slice()));
        let mut hits = s.scan(&normalized(&[1.0, 0.0]).unwrap(), |slot| slot != 2);
        hits.sort_by_key(|h| h.0);
        assert_eq!(hits.iter().map(|h| h.0).collect::<Vec<_>>(), [0, 3]);
        assert!((hits[0].1 - 1.0).abs() < 1e-6);
    }

    #[test]
    fn dot_handles_tails_and_rejects_bad_vectors() {
        let a: Vec<f32> = (0..11).map(|i| i as f32).collect();
        assert_eq!(dot(&a, &a), (0..11).map(|i| (i * i) as f32).sum::<f32>());
        assert!(normalized(&[0.0, 0.0]).is_none());
        assert!(normalized(&[f32::NAN]).is_none());
        assert!(normalized(&[]).is_none());
    }
}
