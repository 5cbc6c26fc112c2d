//! Filter bitmaps: per field value, the set of document slots carrying it.
//!
//! Every [`SearchFilter`] field except the segment time range is answered from these sets
//! (compressed [`RoaringBitmap`]s): the allowed values of a field are unioned, fields are
//! intersected. Range fields keep their values in sorted maps, so a range or a path prefix
//! is a map range whose sets are unioned. The result is exact for those fields, so a
//! selective filter costs a few set operations instead of a check of every document, and
//! vector search knows exactly how many documents pass before choosing exact scan or graph.
//!
//! The time range (segments overlapping `[from, to]`) is the one residual check, done per
//! candidate with [`SearchFilter::matches`]; so is a path prefix, duration or date range
//! that spans more than [`MAX_RANGE_VALUES`] distinct values (a union of that many sets
//! would cost more than checking the candidates).

use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;

use heimdex_core::{IndexDoc, SearchFilter, SegmentKind};
use roaring::{MultiOps, RoaringBitmap};

/// Value sets of one tenant's documents.
#[derive(Debug, Default)]
pub(crate) struct FilterIndex {
    /// Every indexed slot (what an empty filter allows).
    all: RoaringBitmap,
    sources: HashMap<String, RoaringBitmap>,
    assets: HashMap<String, RoaringBitmap>,
    paths: BTreeMap<String, RoaringBitmap>,
    kinds: HashMap<SegmentKind, RoaringBitmap>,
    tags: HashMap<String, RoaringBitmap>,
    /// Asset duration, keyed by an order-preserving integer of the `f64`.
    durations: BTreeMap<i64, RoaringBitmap>,
    /// Capture day (`YYYY-MM-DD`, the first 10 characters of the capture date).
    dates: BTreeMap<String, RoaringBitmap>,
    languages: HashMap<String, RoaringBitmap>,
    /// `[without speech, with speech]`.
    speech: [RoaringBitmap; 2],
    faces: HashMap<String, RoaringBitmap>,
}

/// Slots passing a filter: `set` holds every slot passing the indexed fields. When
/// `residual` is set, some field (the time range, or a range too wide to union) was not
/// applied and `SearchFilter::matches` must also be checked per slot.
#[derive(Debug)]
pub(crate) struct Allowed {
    pub set: RoaringBitmap,
    pub residual: bool,
}

/// An `i64` whose order matches the `f64` order (`-0.0` is taken as `0.0`, as `==` does).
fn ordered(x: f64) -> i64 {
    let x = if x == 0.0 { 0.0 } else { x };
    let bits = x.to_bits() as i64;
    bits ^ ((((bits >> 63) as u64) >> 1) as i64)
}

fn day(date: &str) -> &str {
    date.get(..10).unwrap_or(date)
}

fn add<K: std::hash::Hash + Eq>(map: &mut HashMap<K, RoaringBitmap>, k: K, slot: u32) {
    map.entry(k).or_default().insert(slot);
}

fn del<K: std::hash::Hash + Eq>(map: &mut HashMap<K, RoaringBitmap>, k: &K, slot: u32) {
    if let Some(set) = map.get_mut(k) {
        set.remove(slot);
        if set.is_empty() {
            map.remove(k);
        }
    }
}

fn add_sorted<K: Ord>(map: &mut BTreeMap<K, RoaringBitmap>, k: K, slot: u32) {
    map.entry(k).or_default().insert(slot);
}

fn del_sorted<K: Ord>(map: &mut BTreeMap<K, RoaringBitmap>, k: &K, slot: u32) {
    if let Some(set) = map.get_mut(k) {
        set.remove(slot);
        if set.is_empty() {
            map.remove(k);
        }
    }
}

/// Union of the sets of `values` in `map`.
fn any_of<'a, K, Q>(
    map: &HashMap<K, RoaringBitmap>,
    values: impl IntoIterator<Item = &'a Q>,
) -> RoaringBitmap
where
    K: std::borrow::Borrow<Q> + std::hash::Hash + Eq,
    Q: std::hash::Hash + Eq + ?Sized + 'a,
{
    let mut out = RoaringBitmap::new();
    for v in values {
        if let Some(set) = map.get(v) {
            out |= set;
        }
    }
    out
}

/// Range fields spanning more distinct values than this are not unioned (that would cost
/// more than checking candidates); they are left to the residual per-document check.
pub(crate) const MAX_RANGE_VALUES: usize = 4_096;

/// Union of a range's sets, or `None` if the range spans more than [`MAX_RANGE_VALUES`].
fn range_union<'a>(sets: impl Iterator<Item = &'a RoaringBitmap>) -> Option<RoaringBitmap> {
    let sets: Vec<&RoaringBitmap> = sets.take(MAX_RANGE_VALUES + 1).collect();
    (sets.len() <= MAX_RANGE_VALUES).then(|| sets.into_iter().union())
}

impl FilterIndex {
    /// Record `doc` at `slot`.
    pub fn insert(&mut self, slot: u32, doc: &IndexDoc) {
        self.all.insert(slot);
        add(&mut self.sources, doc.source.as_str().to_owned(), slot);
        add(&mut self.assets, doc.asset.as_str().to_owned(), slot);
        add_sorted(&mut self.paths, doc.path.clone(), slot);
        add(&mut self.kinds, doc.kind, slot);
        for t in &doc.tags {
            add(&mut self.tags, t.clone(), slot);
        }
        if let Some(d) = doc.meta.asset_duration_s.filter(|d| !d.is_nan()) {
            add_sorted(&mut self.durations, ordered(d), slot);
        }
        if let Some(d) = &doc.meta.capture_date {
            add_sorted(&mut self.dates, day(d).to_owned(), slot);
        }
        if let Some(l) = &doc.meta.language {
            add(&mut self.languages, l.clone(), slot);
        }
        self.speech[usize::from(doc.meta.has_speech)].insert(slot);
        for f in &doc.meta.faces {
            add(&mut self.faces, f.clone(), slot);
        }
    }

    /// Forget `doc` at `slot` (the same document it was inserted with).
    pub fn remove(&mut self, slot: u32, doc: &IndexDoc) {
        self.all.remove(slot);
        del(&mut self.sources, &doc.source.as_str().to_owned(), slot);
        del(&mut self.assets, &doc.asset.as_str().to_owned(), slot);
        del_sorted(&mut self.paths, &doc.path, slot);
        del(&mut self.kinds, &doc.kind, slot);
        for t in &doc.tags {
            del(&mut self.tags, t, slot);
        }
        if let Some(d) = doc.meta.asset_duration_s.filter(|d| !d.is_nan()) {
            del_sorted(&mut self.durations, &ordered(d), slot);
        }
        if let Some(d) = &doc.meta.capture_date {
            del_sorted(&mut self.dates, &day(d).to_owned(), slot);
        }
        if let Some(l) = &doc.meta.language {
            del(&mut self.languages, l, slot);
        }
        self.speech[usize::from(doc.meta.has_speech)].remove(slot);
        for f in &doc.meta.faces {
            del(&mut self.faces, f, slot);
        }
    }

    /// The slots passing `f`. See [`Allowed`].
    pub fn allowed(&self, f: &SearchFilter) -> Allowed {
        let mut set = self.all.clone();
        let mut residual = f.time_range.is_some();
        let mut narrow = |s: Option<RoaringBitmap>| match s {
            Some(s) => set &= s,
            None => residual = true,
        };
        if !f.sources.is_empty() {
            narrow(Some(any_of(
                &self.sources,
                f.sources.iter().map(|s| s.as_str()),
            )));
        }
        if !f.assets.is_empty() {
            narrow(Some(any_of(
                &self.assets,
                f.assets.iter().map(|a| a.as_str()),
            )));
        }
        if let Some(prefix) = &f.path_prefix {
            let range = self
                .paths
                .range::<str, _>((Bound::Included(prefix.as_str()), Bound::Unbounded))
                .take_while(|(p, _)| p.starts_with(prefix.as_str()))
                .map(|(_, s)| s);
            narrow(range_union(range));
        }
        if !f.kinds.is_empty() {
            narrow(Some(any_of(&self.kinds, f.kinds.iter())));
        }
        for t in &f.tags {
            narrow(Some(self.tags.get(t).cloned().unwrap_or_default()));
        }
        if let Some((lo, hi)) = f.duration_range {
            narrow(if lo.is_nan() || hi.is_nan() || lo > hi {
                Some(RoaringBitmap::new())
            } else {
                range_union(
                    self.durations
                        .range(ordered(lo)..=ordered(hi))
                        .map(|(_, s)| s),
                )
            });
        }
        if let Some((from, to)) = &f.date_range {
            narrow(if from > to {
                Some(RoaringBitmap::new())
            } else {
                let bounds = (Bound::Included(from.as_str()), Bound::Included(to.as_str()));
                range_union(self.dates.range::<str, _>(bounds).map(|(_, s)| s))
            });
        }
        if !f.languages.is_empty() {
            narrow(Some(any_of(
                &self.languages,
                f.languages.iter().map(String::as_str),
            )));
        }
        if let Some(h) = f.has_speech {
            narrow(Some(self.speech[usize::from(h)].clone()));
        }
        if !f.faces.is_empty() {
            narrow(Some(any_of(
                &self.faces,
                f.faces.iter().map(String::as_str),
            )));
        }
        Allowed { set, residual }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn test_doc(asset: &str) -> IndexDoc {
        IndexDoc {
            tenant: heimdex_core::TenantId::default_tenant(),
            source: heimdex_core::SourceId::new("s"),
            asset: heimdex_core::AssetId::new(asset),
            segment: "0".into(),
            kind: SegmentKind::Shot,
            path: String::new(),
            start_s: 0.0,
            end_s: 1.0,
            text: String::new(),
            thumbnail: None,
            tags: Vec::new(),
            vectors: Default::default(),
            meta: Default::default(),
        }
    }

    #[test]
    fn ordered_keys_follow_float_order() {
        let xs = [-5.0, -0.5, -0.0, 0.0, 0.25, 1.0, 30.0, 1e9];
        for w in xs.windows(2) {
            assert!(ordered(w[0]) <= ordered(w[1]), "{} {}", w[0], w[1]);
        }
        assert!(ordered(0.5) < ordered(0.75));
        assert_eq!(ordered(-0.0), ordered(0.0));
    }

    /// A path prefix spanning more than `MAX_RANGE_VALUES` paths is left to the residual
    /// check; a narrower one is exact.
    #[test]
    fn wide_ranges_become_residual() {
        let mut idx = FilterIndex::default();
        let n = MAX_RANGE_VALUES as u32 + 10;
        for slot in 0..n {
            let mut doc = test_doc(&format!("a{slot}"));
            doc.path = format!("/wide/{slot:06}.mp4");
            doc.meta.asset_duration_s = Some(f64::from(slot));
            idx.insert(slot, &doc);
        }
        let mut f = SearchFilter::default();
        f.path_prefix = Some("/wide/".into());
        let a = idx.allowed(&f);
        assert!(a.residual);
        assert_eq!(a.set.len(), u64::from(n));
        f.path_prefix = Some("/wide/0000".into());
        let a = idx.allowed(&f);
        assert!(!a.residual);
        assert_eq!(a.set.len(), 100);
        let mut f = SearchFilter::default();
        f.duration_range = Some((10.0, 19.5));
        let a = idx.allowed(&f);
        assert!(!a.residual);
        assert_eq!(
            a.set.iter().collect::<Vec<_>>(),
            (10..20).collect::<Vec<_>>()
        );
        f.duration_range = Some((0.0, 1e9));
        assert!(idx.allowed(&f).residual);
        // Removing restores the sets.
        let mut doc = test_doc("a15");
        doc.path = "/wide/000015.mp4".into();
        doc.meta.asset_duration_s = Some(15.0);
        idx.remove(15, &doc);
        f.duration_range = Some((10.0, 19.5));
        assert_eq!(idx.allowed(&f).set.len(), 9);
    }
}
