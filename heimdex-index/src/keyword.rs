//! Positional inverted index, BM25 top-k retrieval and snippets.
//!
//! ## Analysis
//!
//! Each document's `path` and `text` are indexed as one token stream (path first, then a
//! one-position gap so a phrase cannot straddle the two). Every token is indexed as its
//! normalised (raw) term. When the document's language has a Snowball stemmer
//! ([`Stemming`]), each token is *also* indexed at the same position as its stem, under the
//! namespaced term `\u{1}<code>:<stem>` (always, even when the stem equals the token, so the
//! stem term's postings are exactly the documents of that language with some inflection).
//! Raw terms are untouched, so exact terms, phrases and prefixes behave the same whatever
//! the language, and documents without a (supported) language are not stemmed. The document
//! length is the number of raw tokens.
//!
//! ## Postings
//!
//! Per term: sorted document slots, term frequencies and positions in parallel flat arrays
//! (`docs`, `tfs`, `starts` into one `positions` buffer), plus the largest frequency and the
//! shortest document seen (for score upper bounds; never lowered on removal, so they stay
//! valid bounds). The index counts its documents per stemming language.
//!
//! ## Scoring
//!
//! BM25 (k1 = 1.2, b = 0.75, Lucene idf); a document's score is the sum, in clause order,
//! of its clause contributions:
//! - **term**: the best of its variants — the raw term, and its stem in each language the
//!   index holds — each `idf(variant) · tf-part`. The maximum, not the sum, so a document
//!   containing both `running` and (stem) `run` counts once, and an exact match (rarer, so
//!   a higher idf) ranks above a stem-only match of the same frequency and length;
//! - **phrase**: likewise the best of the raw phrase and the phrase of stems per held
//!   language; a variant scores like a term whose frequency is the phrase count and whose
//!   idf is the sum of its terms' idfs;
//! - **prefix**: raw terms only, the sum over the (at most [`MAX_PREFIX_EXPANSION`], most
//!   frequent) expanded terms.
//!
//! [`InvertedIndex::top`] evaluates document-at-a-time with MaxScore pruning: each clause
//! has an upper bound (terms: `idf · tf-part(max tf, min length)` per variant; phrases and
//! prefixes are materialised first, so their bound is exact). Clauses are sorted by bound;
//! once the `n`-th best accepted score θ exceeds the sum of the smallest bounds, those
//! clauses stop generating candidates and are only probed (galloping) for documents the
//! others produce, and a candidate is dropped as soon as its partial score plus the
//! remaining bounds falls below θ. Pruning compares against θ·(1 − 10⁻⁴), a margin over
//! float rounding, so the result holds every document an exhaustive scan would rank in the
//! top `n`, ties included. `accept` (the filter) runs only on documents scoring ≥ θ.

use std::collections::{BTreeMap, BinaryHeap, HashSet};
use std::sync::{Mutex, PoisonError};

use crate::query::Clause;
use crate::tokenize::{Stemming, Token, parse_stem_key, tokenize};

/// BM25 term-frequency saturation.
pub(crate) const K1: f32 = 1.2;
/// BM25 length normalisation.
pub(crate) const B: f32 = 0.75;
/// A prefix expands to at most this many terms (the most frequent ones).
pub(crate) const MAX_PREFIX_EXPANSION: usize = 256;
/// A prefix with at most this many terms is scored term by term, each term with its own
/// bound; a longer one is summed into one list first (with a pooled dense accumulator).
/// Splitting 12-term prefixes was measured 2.4× slower than the dense sum (the bounds of
/// the expanded terms are too close for MaxScore to skip many), hence 1.
const PREFIX_SPLIT_TERMS: usize = 1;
/// Relative margin under θ before a document is pruned (covers float rounding in bounds).
const PRUNE_MARGIN: f32 = 1e-4;
/// "No more documents" for cursors.
const END: u32 = u32::MAX;

/// One document's occurrences of a term: its slot, the term frequency and where its
/// positions start in [`Postings::positions`].
#[derive(Debug, Clone, Copy)]
struct Entry {
    doc: u32,
    tf: u32,
    start: u32,
}

/// One term's postings, sorted by document slot, with the positions in one flat buffer.
/// (One entry array rather than separate doc/tf/start arrays: appending touches two
/// array tails instead of four, which made indexing ~15 % faster at equal query speed.)
#[derive(Debug, Default)]
struct Postings {
    entries: Vec<Entry>,
    positions: Vec<u32>,
    /// Largest `tf` ever inserted (an upper bound; not lowered on removal).
    max_tf: u32,
    /// Shortest document ever inserted (a lower bound; not raised on removal).
    min_len: u32,
}

impl Postings {
    fn len(&self) -> usize {
        self.entries.len()
    }

    fn positions_at(&self, i: usize) -> &[u32] {
        let e = self.entries[i];
        &self.positions[e.start as usize..e.start as usize + e.tf as usize]
    }

    fn insert(&mut self, slot: u32, positions: &[u32], len: u32) {
        let tf = positions.len() as u32;
        if self.entries.is_empty() {
            self.min_len = len;
        }
        self.max_tf = self.max_tf.max(tf);
        self.min_len = self.min_len.min(len);
        if self.entries.last().is_none_or(|last| last.doc < slot) {
            self.entries.push(Entry {
                doc: slot,
                tf,
                start: self.positions.len() as u32,
            });
            self.positions.extend_from_slice(positions);
            return;
        }
        let at = self.entries.partition_point(|e| e.doc < slot);
        let start = self.entries[at].start;
        self.entries.insert(
            at,
            Entry {
                doc: slot,
                tf,
                start,
            },
        );
        for e in &mut self.entries[at + 1..] {
            e.start += tf;
        }
        let p = start as usize;
        self.positions.splice(p..p, positions.iter().copied());
    }

    fn remove(&mut self, slot: u32) {
        let Ok(at) = self.entries.binary_search_by_key(&slot, |e| e.doc) else {
            return;
        };
        let Entry { tf, start, .. } = self.entries.remove(at);
        let p = start as usize;
        self.positions.drain(p..p + tf as usize);
        for e in &mut self.entries[at..] {
            e.start -= tf;
        }
    }
}

/// Per-query scratch for materialising prefix clauses (reused through a pool).
#[derive(Debug, Default)]
struct Scratch {
    /// Slot → accumulated score (all zero between uses).
    acc: Vec<f32>,
    /// Bit per slot: touched (all zero between uses).
    seen: Vec<u64>,
}

/// Term → postings, plus the corpus statistics BM25 needs.
///
/// Positions are `u32` offsets into a per-term buffer, so one term can occur at most
/// 2³² times in a shard.
#[derive(Debug, Default)]
pub(crate) struct InvertedIndex {
    terms: BTreeMap<String, Postings>,
    /// Number of indexed documents.
    docs: u32,
    /// Sum of document lengths (tokens).
    total_len: u64,
    /// Slot → document length (tokens); 0 for free slots.
    lens: Vec<u32>,
    /// Stemming language code → number of documents indexed with its stems.
    languages: BTreeMap<&'static str, u32>,
    scratch: Mutex<Vec<Scratch>>,
}

/// The positions of each distinct term of a document's path + text (raw terms, plus stem
/// terms when `language` — ISO 639-1, the document's language when known — has a
/// stemmer), and its length in raw tokens.
pub(crate) fn analyze(
    path: &str,
    text: &str,
    language: Option<&str>,
) -> (BTreeMap<String, Vec<u32>>, u32) {
    let stemming = language.and_then(Stemming::for_language);
    let mut out: BTreeMap<String, Vec<u32>> = BTreeMap::new();
    let mut pos: u32 = 0;
    let mut len: u32 = 0;
    for (field, field_text) in [path, text].into_iter().enumerate() {
        if field > 0 {
            pos = pos.saturating_add(1); // gap between path and text
        }
        for tok in tokenize(field_text) {
            if let Some(s) = &stemming {
                out.entry(s.key(&tok.term)).or_default().push(pos);
            }
            out.entry(tok.term).or_default().push(pos);
            pos = pos.saturating_add(1);
            len = len.saturating_add(1);
        }
    }
    (out, len)
}

/// The stemming language of an analysis (its stem terms sort first: `\u{1}` < any token).
fn analysis_language(analyzed: &BTreeMap<String, Vec<u32>>) -> Option<&'static str> {
    let (code, _) = parse_stem_key(analyzed.keys().next()?)?;
    Stemming::for_language(code).map(|s| s.code())
}

/// BM25 inverse document frequency (the Lucene form, always positive).
pub(crate) fn idf(n_docs: u32, df: u32) -> f32 {
    let n = n_docs as f32;
    let df = df as f32;
    (1.0 + (n - df + 0.5) / (df + 0.5)).ln()
}

/// BM25 term-frequency component.
pub(crate) fn tf_norm(tf: f32, doc_len: u32, avg_len: f32) -> f32 {
    let norm = if avg_len > 0.0 {
        1.0 - B + B * doc_len as f32 / avg_len
    } else {
        1.0
    };
    tf * (K1 + 1.0) / (tf + K1 * norm)
}

/// The first index `>= from` whose document (`doc(item)`, ascending) is `>= target`
/// (galloping search).
fn seek<T>(items: &[T], from: usize, target: u32, doc: impl Fn(&T) -> u32) -> usize {
    if from >= items.len() || doc(&items[from]) >= target {
        return from;
    }
    // doc(items[lo]) < target; the answer is in (lo, hi].
    let mut lo = from;
    let mut step = 1;
    let mut hi = from + 1;
    while hi < items.len() && doc(&items[hi]) < target {
        lo = hi;
        step *= 2;
        hi = from + step;
    }
    let hi = hi.min(items.len());
    lo + 1 + items[lo + 1..hi].partition_point(|x| doc(x) < target)
}

/// Document lengths and the average, for BM25's tf part.
struct Ctx<'a> {
    lens: &'a [u32],
    avg: f32,
}

impl Ctx<'_> {
    fn len(&self, slot: u32) -> u32 {
        self.lens.get(slot as usize).copied().unwrap_or(0)
    }
}

/// A cursor over one term's postings, with the term's idf.
struct TermCursor<'a> {
    entries: &'a [Entry],
    at: usize,
    w: f32,
}

impl TermCursor<'_> {
    fn doc(&self) -> u32 {
        self.entries.get(self.at).map_or(END, |e| e.doc)
    }
}

/// A clause's documents in slot order with their contributions.
enum Cursor<'a> {
    /// Term variants; a document's contribution is the best variant's.
    Terms(Vec<TermCursor<'a>>),
    /// Precomputed contributions (phrases, prefixes).
    List {
        docs: Vec<u32>,
        scores: Vec<f32>,
        at: usize,
    },
}

impl Cursor<'_> {
    fn doc(&self) -> u32 {
        match self {
            Cursor::Terms(ts) => ts.iter().map(TermCursor::doc).min().unwrap_or(END),
            Cursor::List { docs, at, .. } => docs.get(*at).copied().unwrap_or(END),
        }
    }

    /// Move to the first document `>= target`.
    fn seek(&mut self, target: u32) {
        match self {
            Cursor::Terms(ts) => {
                for t in ts {
                    t.at = seek(t.entries, t.at, target, |e| e.doc);
                }
            }
            Cursor::List { docs, at, .. } => *at = seek(docs, *at, target, |&d| d),
        }
    }

    /// Move past `doc`, the current document.
    fn next(&mut self, doc: u32) {
        match self {
            Cursor::Terms(ts) => {
                for t in ts {
                    if t.doc() == doc {
                        t.at += 1;
                    }
                }
            }
            Cursor::List { at, .. } => *at += 1,
        }
    }

    /// The contribution to `doc`, which the cursor must have been moved to (`seek(doc)`);
    /// 0 when the clause does not match it.
    fn score(&self, doc: u32, ctx: &Ctx<'_>) -> f32 {
        match self {
            Cursor::Terms(ts) => {
                let mut best = 0.0f32;
                for t in ts {
                    if t.doc() == doc {
                        let s = t.w * tf_norm(t.entries[t.at].tf as f32, ctx.len(doc), ctx.avg);
                        best = best.max(s);
                    }
                }
                best
            }
            Cursor::List { docs, scores, at } => {
                if docs.get(*at) == Some(&doc) {
                    scores[*at]
                } else {
                    0.0
                }
            }
        }
    }
}

/// A cursor with an upper bound of its contribution. Its place in the query is
/// `(clause, part)`: a clause's parts (a short prefix's terms) are summed in order.
struct Scorer<'a> {
    clause: usize,
    part: usize,
    bound: f32,
    cursor: Cursor<'a>,
}

/// Score bits: positive finite `f32`s order like their bit patterns.
fn bits(s: f32) -> u32 {
    s.to_bits()
}

impl InvertedIndex {
    /// Add a document under `slot` (which must not be indexed already).
    pub fn insert(&mut self, slot: u32, analyzed: BTreeMap<String, Vec<u32>>, len: u32) {
        if let Some(code) = analysis_language(&analyzed) {
            *self.languages.entry(code).or_default() += 1;
        }
        for (term, positions) in analyzed {
            self.terms
                .entry(term)
                .or_default()
                .insert(slot, &positions, len);
        }
        let at = slot as usize;
        if self.lens.len() <= at {
            self.lens.resize(at + 1, 0);
        }
        self.lens[at] = len;
        self.docs += 1;
        self.total_len += u64::from(len);
    }

    /// Remove the document at `slot`, given the same analysis it was inserted with.
    pub fn remove(&mut self, slot: u32, analyzed: &BTreeMap<String, Vec<u32>>, len: u32) {
        if let Some(code) = analysis_language(analyzed)
            && let Some(n) = self.languages.get_mut(code)
        {
            *n -= 1;
            if *n == 0 {
                self.languages.remove(code);
            }
        }
        for term in analyzed.keys() {
            if let Some(list) = self.terms.get_mut(term) {
                list.remove(slot);
                if list.entries.is_empty() {
                    self.terms.remove(term);
                }
            }
        }
        if let Some(l) = self.lens.get_mut(slot as usize) {
            *l = 0;
        }
        self.docs = self.docs.saturating_sub(1);
        self.total_len = self.total_len.saturating_sub(u64::from(len));
    }

    /// Average document length.
    pub fn avg_len(&self) -> f32 {
        if self.docs == 0 {
            0.0
        } else {
            self.total_len as f32 / self.docs as f32
        }
    }

    /// The stemmers of the languages the index holds documents in.
    fn stemmings(&self) -> Vec<Stemming> {
        self.languages
            .keys()
            .filter_map(|c| Stemming::for_language(c))
            .collect()
    }

    /// The terms a prefix expands to: at most [`MAX_PREFIX_EXPANSION`], most frequent first.
    fn expand_prefix(&self, prefix: &str) -> Vec<&Postings> {
        let mut found: Vec<(&str, &Postings)> = self
            .terms
            .range::<str, _>((
                std::ops::Bound::Included(prefix),
                std::ops::Bound::Unbounded,
            ))
            .take_while(|(t, _)| t.starts_with(prefix))
            .map(|(t, p)| (t.as_str(), p))
            .collect();
        if found.len() > MAX_PREFIX_EXPANSION {
            found.sort_by(|a, b| b.1.len().cmp(&a.1.len()).then_with(|| a.0.cmp(b.0)));
            found.truncate(MAX_PREFIX_EXPANSION);
        }
        found.into_iter().map(|(_, p)| p).collect()
    }

    /// Upper bound of a term's contribution with idf `w`.
    fn term_bound(p: &Postings, w: f32, ctx: &Ctx<'_>) -> f32 {
        w * tf_norm(p.max_tf as f32, p.min_len, ctx.avg)
    }

    /// The scorers of one clause (none when nothing can match it).
    fn scorers<'a>(
        &'a self,
        clause: &Clause,
        index: usize,
        stemmings: &[Stemming],
        ctx: &Ctx<'_>,
        out: &mut Vec<Scorer<'a>>,
    ) {
        if let Clause::Prefix(prefix) = clause {
            let lists = self.expand_prefix(prefix);
            if lists.len() <= PREFIX_SPLIT_TERMS {
                for (part, p) in lists.into_iter().enumerate() {
                    let w = idf(self.docs, p.len() as u32);
                    out.push(Scorer {
                        clause: index,
                        part,
                        bound: Self::term_bound(p, w, ctx),
                        cursor: Cursor::Terms(vec![TermCursor {
                            entries: &p.entries,
                            at: 0,
                            w,
                        }]),
                    });
                }
            } else {
                let (docs, scores) = self.prefix_scores(&lists, ctx);
                out.push(list_scorer(index, docs, scores));
            }
            return;
        }
        out.extend(self.scorer(clause, index, stemmings, ctx));
    }

    /// The scorer of a term or phrase clause, or `None` when nothing can match it.
    fn scorer<'a>(
        &'a self,
        clause: &Clause,
        index: usize,
        stemmings: &[Stemming],
        ctx: &Ctx<'_>,
    ) -> Option<Scorer<'a>> {
        match clause {
            Clause::Term(t) => {
                let mut variants = Vec::with_capacity(1 + stemmings.len());
                let mut bound = 0.0f32;
                let keys = std::iter::once(t.clone()).chain(stemmings.iter().map(|s| s.key(t)));
                for key in keys {
                    if let Some(p) = self.terms.get(&key) {
                        let w = idf(self.docs, p.len() as u32);
                        bound = bound.max(Self::term_bound(p, w, ctx));
                        variants.push(TermCursor {
                            entries: &p.entries,
                            at: 0,
                            w,
                        });
                    }
                }
                (!variants.is_empty()).then_some(Scorer {
                    clause: index,
                    part: 0,
                    bound,
                    cursor: Cursor::Terms(variants),
                })
            }
            Clause::Prefix(_) => None,
            Clause::Phrase(ts) => {
                let mut variants: Vec<Vec<(u32, f32)>> = Vec::new();
                let raw = ts.to_vec();
                let stemmed = stemmings
                    .iter()
                    .map(|s| ts.iter().map(|t| s.key(t)).collect::<Vec<_>>());
                for keys in std::iter::once(raw).chain(stemmed) {
                    let Some(lists) = keys
                        .iter()
                        .map(|k| self.terms.get(k))
                        .collect::<Option<Vec<_>>>()
                    else {
                        continue;
                    };
                    let w: f32 = lists.iter().map(|l| idf(self.docs, l.len() as u32)).sum();
                    let scored: Vec<(u32, f32)> = phrase_matches(&lists)
                        .into_iter()
                        .map(|(d, f)| (d, w * tf_norm(f as f32, ctx.len(d), ctx.avg)))
                        .collect();
                    if !scored.is_empty() {
                        variants.push(scored);
                    }
                }
                let merged = match variants.len() {
                    0 => return None,
                    1 => variants.pop().unwrap_or_default(),
                    _ => {
                        let mut all: Vec<(u32, f32)> = variants.concat();
                        all.sort_unstable_by_key(|e| e.0);
                        let mut out: Vec<(u32, f32)> = Vec::with_capacity(all.len());
                        for (d, s) in all {
                            match out.last_mut() {
                                Some(last) if last.0 == d => last.1 = last.1.max(s),
                                _ => out.push((d, s)),
                            }
                        }
                        out
                    }
                };
                let (docs, scores) = merged.into_iter().unzip();
                Some(list_scorer(index, docs, scores))
            }
        }
    }

    /// Sum of the expanded terms' contributions per document (terms in expansion order),
    /// documents in slot order. Uses a pooled dense accumulator.
    fn prefix_scores(&self, lists: &[&Postings], ctx: &Ctx<'_>) -> (Vec<u32>, Vec<f32>) {
        let mut scratch = self
            .scratch
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop()
            .unwrap_or_default();
        let n = self.lens.len();
        if scratch.acc.len() < n {
            scratch.acc.resize(n, 0.0);
        }
        let words = n.div_ceil(64);
        if scratch.seen.len() < words {
            scratch.seen.resize(words, 0);
        }
        let Scratch { acc, seen } = &mut scratch;
        for p in lists {
            let w = idf(self.docs, p.len() as u32);
            for e in &p.entries {
                let i = e.doc as usize;
                if i < n {
                    acc[i] += w * tf_norm(e.tf as f32, ctx.len(e.doc), ctx.avg);
                    seen[i / 64] |= 1 << (i % 64);
                }
            }
        }
        let mut docs = Vec::new();
        let mut scores = Vec::new();
        for (wi, word) in seen.iter_mut().enumerate().take(words) {
            let mut bitsleft = *word;
            while bitsleft != 0 {
                let i = wi * 64 + bitsleft.trailing_zeros() as usize;
                bitsleft &= bitsleft - 1;
                docs.push(i as u32);
                scores.push(acc[i]);
                acc[i] = 0.0;
            }
            *word = 0;
        }
        self.scratch
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(scratch);
        (docs, scores)
    }

    /// Candidates for the `n` best documents matching any clause that pass `accept`, as
    /// `(slot, BM25 score)`, unordered. Every accepted document that could rank in the top `n`
    /// is included (ties with the `n`-th score too); the caller ranks and truncates.
    /// `accept` is called only on documents whose score reaches the running `n`-th score.
    pub fn top(
        &self,
        clauses: &[Clause],
        n: usize,
        accept: impl Fn(u32) -> bool,
    ) -> Vec<(u32, f32)> {
        if n == 0 || self.docs == 0 {
            return Vec::new();
        }
        let ctx = Ctx {
            lens: &self.lens,
            avg: self.avg_len(),
        };
        let stemmings = self.stemmings();
        let mut scorers: Vec<Scorer<'_>> = Vec::with_capacity(clauses.len());
        for (i, c) in clauses.iter().enumerate() {
            self.scorers(c, i, &stemmings, &ctx, &mut scorers);
        }
        max_score(&mut scorers, n, &ctx, accept)
    }
}

fn list_scorer<'a>(clause: usize, docs: Vec<u32>, scores: Vec<f32>) -> Scorer<'a> {
    Scorer {
        clause,
        part: 0,
        bound: scores.iter().copied().fold(0.0, f32::max),
        cursor: Cursor::List {
            docs,
            scores,
            at: 0,
        },
    }
}

/// Document-at-a-time MaxScore over the clause scorers (see the module docs).
fn max_score(
    scorers: &mut [Scorer<'_>],
    n: usize,
    ctx: &Ctx<'_>,
    accept: impl Fn(u32) -> bool,
) -> Vec<(u32, f32)> {
    // Ascending bound; `cum[k]` = sum of the bounds of scorers 0..=k.
    scorers.sort_by(|a, b| {
        a.bound
            .total_cmp(&b.bound)
            .then((a.clause, a.part).cmp(&(b.clause, b.part)))
    });
    let cum: Vec<f32> = scorers
        .iter()
        .scan(0.0f32, |acc, s| {
            *acc += s.bound;
            Some(*acc)
        })
        .collect();
    // Scorer positions in query order: a score is the sum of its clauses' contributions in
    // clause order, a clause's the sum of its parts in order (as an exhaustive scan adds).
    let mut by_clause: Vec<usize> = (0..scorers.len()).collect();
    by_clause.sort_by_key(|&k| (scorers[k].clause, scorers[k].part));
    let mut contrib = vec![0.0f32; scorers.len()];

    let mut heap: BinaryHeap<std::cmp::Reverse<u32>> =
        BinaryHeap::with_capacity(n.min(1 << 16) + 1);
    let mut theta = 0.0f32; // the n-th best score once the heap is full
    let mut safe = 0.0f32; // theta lowered by the margin, for pruning decisions
    let mut essential_from = 0; // scorers[..essential_from] are non-essential
    let mut out: Vec<(u32, f32)> = Vec::new();
    let mut compact_at = 4 * n.min(1 << 20) + 64; // `out` length that triggers a clean-up
    loop {
        let doc = scorers[essential_from..]
            .iter()
            .map(|s| s.cursor.doc())
            .min()
            .unwrap_or(END);
        if doc == END {
            break;
        }
        let mut partial = 0.0f32;
        for (k, s) in scorers.iter_mut().enumerate().skip(essential_from) {
            let c = if s.cursor.doc() == doc {
                let c = s.cursor.score(doc, ctx);
                s.cursor.next(doc);
                c
            } else {
                0.0
            };
            contrib[k] = c;
            partial += c;
        }
        let mut pruned = false;
        for k in (0..essential_from).rev() {
            if partial + cum[k] < safe {
                pruned = true;
                break;
            }
            let s = &mut scorers[k];
            s.cursor.seek(doc);
            let c = s.cursor.score(doc, ctx);
            contrib[k] = c;
            partial += c;
        }
        if pruned {
            continue;
        }
        let mut score = 0.0f32;
        let mut clause_sum = 0.0f32;
        let mut clause = usize::MAX;
        for &k in &by_clause {
            if scorers[k].clause != clause {
                score += clause_sum;
                clause_sum = 0.0;
                clause = scorers[k].clause;
            }
            clause_sum += contrib[k];
        }
        score += clause_sum;
        if score <= 0.0 || score < theta || !accept(doc) {
            continue;
        }
        out.push((doc, score));
        if heap.len() < n {
            heap.push(std::cmp::Reverse(bits(score)));
        } else if score > theta {
            heap.pop();
            heap.push(std::cmp::Reverse(bits(score)));
        }
        if heap.len() == n
            && let Some(&std::cmp::Reverse(b)) = heap.peek()
        {
            let t = f32::from_bits(b);
            if t > theta {
                theta = t;
                safe = theta * (1.0 - PRUNE_MARGIN);
                while essential_from < scorers.len() && cum[essential_from] < safe {
                    essential_from += 1;
                }
                // Drop candidates that can no longer make the top n.
                if out.len() > compact_at {
                    out.retain(|e| e.1 >= theta);
                    compact_at = compact_at.max(2 * out.len());
                }
            }
        }
    }
    out.retain(|e| e.1 >= theta);
    out
}

/// Documents in which the postings' terms occur adjacent and in order, with the count.
/// Driven by the shortest list; the others are probed by galloping.
fn phrase_matches(lists: &[&Postings]) -> Vec<(u32, u32)> {
    let Some(anchor) = (0..lists.len()).min_by_key(|&i| lists[i].len()) else {
        return Vec::new();
    };
    let mut at = vec![0usize; lists.len()];
    let mut out = Vec::new();
    'docs: for (ai, &Entry { doc, .. }) in lists[anchor].entries.iter().enumerate() {
        for (i, l) in lists.iter().enumerate() {
            if i == anchor {
                continue;
            }
            at[i] = seek(&l.entries, at[i], doc, |e| e.doc);
            if l.entries.get(at[i]).map(|e| e.doc) != Some(doc) {
                if at[i] >= l.len() {
                    break 'docs;
                }
                continue 'docs;
            }
        }
        let offset = anchor as u32;
        let freq = lists[anchor]
            .positions_at(ai)
            .iter()
            .filter(|&&p| {
                let Some(start) = p.checked_sub(offset) else {
                    return false;
                };
                lists.iter().enumerate().all(|(i, l)| {
                    i == anchor
                        || start
                            .checked_add(i as u32)
                            .is_some_and(|want| l.positions_at(at[i]).binary_search(&want).is_ok())
                })
            })
            .count() as u32;
        if freq > 0 {
            out.push((doc, freq));
        }
    }
    out
}

/// Whether at least one clause matches an analysed document (the output of [`analyze`]).
/// Term and phrase clauses also match through stems in `language` (the document must
/// have been analysed with it); prefixes match raw terms only.
#[cfg(any(feature = "qdrant", test))]
pub(crate) fn analysis_matches(
    analyzed: &BTreeMap<String, Vec<u32>>,
    language: Option<&str>,
    clauses: &[Clause],
) -> bool {
    let stemming = language.and_then(Stemming::for_language);
    let phrase_at = |keys: &[String]| -> bool {
        let Some(first) = keys.first().and_then(|k| analyzed.get(k)) else {
            return false;
        };
        first.iter().any(|&start| {
            keys.iter().enumerate().skip(1).all(|(i, k)| {
                let want = start.checked_add(i as u32);
                analyzed
                    .get(k)
                    .is_some_and(|ps| want.is_some_and(|w| ps.binary_search(&w).is_ok()))
            })
        })
    };
    clauses.iter().any(|c| match c {
        Clause::Term(t) => {
            analyzed.contains_key(t)
                || stemming
                    .as_ref()
                    .is_some_and(|s| analyzed.contains_key(&s.key(t)))
        }
        Clause::Prefix(p) => analyzed
            .range::<str, _>((
                std::ops::Bound::Included(p.as_str()),
                std::ops::Bound::Unbounded,
            ))
            .next()
            .is_some_and(|(t, _)| t.starts_with(p.as_str())),
        Clause::Phrase(ts) => {
            phrase_at(ts)
                || stemming
                    .as_ref()
                    .is_some_and(|s| phrase_at(&ts.iter().map(|t| s.key(t)).collect::<Vec<_>>()))
        }
    })
}

/// Snippet window, in tokens.
pub(crate) const SNIPPET_TOKENS: usize = 20;
/// Tokens of context kept before the first highlighted token of a window.
const SNIPPET_LEAD: usize = 3;

/// Which tokens of `tokens` the clauses match (phrases only where the whole phrase occurs).
/// With a stemmer (the document's language), terms and phrases also match by stem.
fn highlighted(tokens: &[Token], clauses: &[Clause], stemming: Option<&Stemming>) -> Vec<bool> {
    let mut marks = vec![false; tokens.len()];
    let singles: HashSet<&str> = clauses
        .iter()
        .filter_map(|c| match c {
            Clause::Term(t) => Some(t.as_str()),
            _ => None,
        })
        .collect();
    let prefixes: Vec<&str> = clauses
        .iter()
        .filter_map(|c| match c {
            Clause::Prefix(p) => Some(p.as_str()),
            _ => None,
        })
        .collect();
    // Stems of the tokens and of the single terms (empty without a stemmer).
    let stems: Vec<String> = stemming.map_or_else(Vec::new, |s| {
        tokens
            .iter()
            .map(|t| s.stem(&t.term).into_owned())
            .collect()
    });
    let single_stems: HashSet<String> = stemming.map_or_else(HashSet::new, |s| {
        singles.iter().map(|t| s.stem(t).into_owned()).collect()
    });
    for (i, tok) in tokens.iter().enumerate() {
        if singles.contains(tok.term.as_str())
            || prefixes.iter().any(|p| tok.term.starts_with(p))
            || stems.get(i).is_some_and(|st| single_stems.contains(st))
        {
            marks[i] = true;
        }
    }
    for c in clauses {
        if let Clause::Phrase(ts) = c {
            let phrase_stems: Vec<String> = stemming.map_or_else(Vec::new, |s| {
                ts.iter().map(|t| s.stem(t).into_owned()).collect()
            });
            for start in 0..tokens.len().saturating_sub(ts.len() - 1) {
                let raw = ts
                    .iter()
                    .enumerate()
                    .all(|(k, t)| tokens[start + k].term == *t);
                let stemmed = !phrase_stems.is_empty()
                    && phrase_stems
                        .iter()
                        .enumerate()
                        .all(|(k, t)| stems[start + k] == *t);
                if raw || stemmed {
                    marks[start..start + ts.len()].fill(true);
                }
            }
        }
    }
    marks
}

/// Render `text[tokens[from]..tokens[to-1]]` with highlighted tokens in brackets.
fn render(text: &str, tokens: &[Token], marks: &[bool], from: usize, to: usize) -> String {
    let mut out = String::new();
    if from > 0 {
        out.push('…');
    }
    let mut cursor = tokens[from].start;
    for i in from..to {
        out.push_str(&text[cursor..tokens[i].start]);
        let word = &text[tokens[i].start..tokens[i].end];
        if marks[i] {
            out.push('[');
            out.push_str(word);
            out.push(']');
        } else {
            out.push_str(word);
        }
        cursor = tokens[i].end;
    }
    if to < tokens.len() {
        out.push('…');
    }
    out
}

/// A highlighted snippet: a window of about [`SNIPPET_TOKENS`] tokens of `text` around the
/// best match (most distinct matched terms, then most matches, then earliest), original
/// casing kept, matched terms in `[brackets]`. Falls back to the highlighted `path` when
/// only the path matched; `None` when neither did.
///
/// `language` is the document's language when known (the one it was analysed with):
/// with a stemmer, inflections of query terms are highlighted too (`running` → `[runs]`).
pub(crate) fn snippet(
    text: &str,
    path: &str,
    language: Option<&str>,
    clauses: &[Clause],
) -> Option<String> {
    let stemming = language.and_then(Stemming::for_language);
    let tokens = tokenize(text);
    let marks = highlighted(&tokens, clauses, stemming.as_ref());
    if !marks.iter().any(|&m| m) {
        let ptoks = tokenize(path);
        let pmarks = highlighted(&ptoks, clauses, stemming.as_ref());
        if !pmarks.iter().any(|&m| m) {
            return None;
        }
        let mut out = String::new();
        let mut cursor = 0;
        for (tok, m) in ptoks.iter().zip(&pmarks) {
            out.push_str(&path[cursor..tok.start]);
            let word = &path[tok.start..tok.end];
            if *m {
                out.push('[');
                out.push_str(word);
                out.push(']');
            } else {
                out.push_str(word);
            }
            cursor = tok.end;
        }
        out.push_str(&path[cursor..]);
        return Some(out);
    }
    let n = tokens.len();
    if n <= SNIPPET_TOKENS {
        return Some(render(text, &tokens, &marks, 0, n));
    }
    let mut best: Option<((usize, usize), usize)> = None; // ((distinct, count), start)
    for (h, _) in marks.iter().enumerate().filter(|(_, m)| **m) {
        let start = h.saturating_sub(SNIPPET_LEAD).min(n - SNIPPET_TOKENS);
        let window = start..start + SNIPPET_TOKENS;
        let mut distinct: Vec<&str> = Vec::new();
        let mut count = 0;
        for i in window {
            if marks[i] {
                count += 1;
                if !distinct.contains(&tokens[i].term.as_str()) {
                    distinct.push(&tokens[i].term);
                }
            }
        }
        let key = (distinct.len(), count);
        if best.is_none_or(|(k, _)| key > k) {
            best = Some((key, start));
        }
    }
    let start = best.map_or(0, |(_, s)| s);
    Some(render(text, &tokens, &marks, start, start + SNIPPET_TOKENS))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::query::parse;

    fn index(docs: &[&str]) -> (InvertedIndex, Vec<u32>) {
        let mut idx = InvertedIndex::default();
        let mut lens = Vec::new();
        for (i, d) in docs.iter().enumerate() {
            let (a, len) = analyze("", d, None);
            idx.insert(i as u32, a, len);
            lens.push(len);
        }
        (idx, lens)
    }

    fn scores(idx: &InvertedIndex, lens: &[u32], q: &str) -> Vec<f32> {
        let mut s = vec![0.0; lens.len()];
        for (slot, score) in idx.top(&parse(q), lens.len(), |_| true) {
            s[slot as usize] = score;
        }
        s
    }

    /// BM25 on a 3-document corpus against values computed by hand:
    /// d0 = "fox fox dog" (3), d1 = "dog cat" (2), d2 = "cat bird bird bird" (4); avgdl = 3.
    #[test]
    fn bm25_matches_hand_computed_values() {
        let (idx, lens) = index(&["fox fox dog", "dog cat", "cat bird bird bird"]);
        assert_eq!(idx.avg_len(), 3.0);
        // idf(fox): N=3, df=1 → ln(1 + 2.5/1.5) = ln(2.6667) = 0.980829
        // tf part d0: tf=2, dl=3 → 2*2.2/(2 + 1.2*1) = 1.375
        let s = scores(&idx, &lens, "fox");
        assert!((s[0] - 0.980_829 * 1.375).abs() < 1e-5, "{s:?}");
        assert_eq!(&s[1..], &[0.0, 0.0]);
        // idf(dog): df=2 → ln(1 + 1.5/2.5) = ln(1.6) = 0.470004
        // d0: tf=1, dl=3 → 2.2/(1+1.2) = 1.0
        // d1: tf=1, dl=2 → norm = 0.25 + 0.75*2/3 = 0.75 → 2.2/(1+0.9) = 1.157895
        let s = scores(&idx, &lens, "dog");
        assert!((s[0] - 0.470_004).abs() < 1e-5, "{s:?}");
        assert!((s[1] - 0.470_004 * 1.157_895).abs() < 1e-5, "{s:?}");
        // "dog cat" on d1 sums both terms (cat has the same df as dog).
        let s = scores(&idx, &lens, "dog cat");
        assert!((s[1] - 2.0 * 0.470_004 * 1.157_895).abs() < 1e-5, "{s:?}");
        // Phrase "bird bird": occurs twice in d2 (positions 1-2 and 2-3); weight = 2*idf(bird).
        // idf(bird) = 0.980829; d2: tf=2, dl=4 → norm = 0.25+1 = 1.25 → 4.4/(2+1.5) = 1.257143
        let s = scores(&idx, &lens, "\"bird bird\"");
        assert!((s[2] - 2.0 * 0.980_829 * 1.257_143).abs() < 1e-4, "{s:?}");
    }

    fn index_lang(docs: &[(&str, Option<&str>)]) -> InvertedIndex {
        let mut idx = InvertedIndex::default();
        for (i, (text, lang)) in docs.iter().enumerate() {
            let (a, len) = analyze("", text, *lang);
            idx.insert(i as u32, a, len);
        }
        idx
    }

    /// Slots matching `q`, ascending.
    fn matching(idx: &InvertedIndex, q: &str) -> Vec<u32> {
        let mut v: Vec<u32> = idx
            .top(&parse(q), usize::MAX, |_| true)
            .into_iter()
            .map(|e| e.0)
            .collect();
        v.sort_unstable();
        v
    }

    #[test]
    fn stems_match_inflections_in_the_documents_language_only() {
        let idx = index_lang(&[
            ("the runners were running", Some("en")),
            ("les enfants mangeaient des pommes", Some("fr")),
            ("he runs to the pommes stall", None),
            ("a quiet morning", Some("en-GB")),
        ]);
        assert_eq!(idx.languages, BTreeMap::from([("en", 2), ("fr", 1)]));
        // English: `run` and `runs` find `running` (the unknown-language doc 2 has `runs`
        // verbatim, so only the exact query finds it).
        assert_eq!(matching(&idx, "run"), [0]);
        assert_eq!(matching(&idx, "runs"), [0, 2]);
        // Unknown language: not stemmed, so `running` does not find doc 2's `runs`.
        assert_eq!(matching(&idx, "running"), [0]);
        // French: another inflection of `pommes` (and of `mangeaient`).
        assert_eq!(matching(&idx, "pomme"), [1]);
        assert_eq!(matching(&idx, "mangeait"), [1]);
        // Phrases match through stems too, in order only.
        assert_eq!(matching(&idx, "\"runner were run\""), [0]);
        assert_eq!(matching(&idx, "\"runs were runner\""), Vec::<u32>::new());
        assert_eq!(matching(&idx, "\"enfant mangeait\""), [1]);
        // Prefixes stay raw.
        assert_eq!(matching(&idx, "runn*"), [0]);
    }

    #[test]
    fn exact_match_outranks_stem_only_match() {
        // Same length and frequency: the exact doc takes the best of the raw term (df 1)
        // and the stem (df 2), the stem-only doc just the stem. A stem-only doc can still
        // win where BM25 says so (more occurrences, shorter text).
        let idx = index_lang(&[
            ("running shoes", Some("en")),
            ("runs shoes", Some("en")),
            ("other words", Some("en")),
            ("runs run running", Some("en")),
        ]);
        let s: BTreeMap<u32, f32> = idx
            .top(&parse("running"), 10, |_| true)
            .into_iter()
            .collect();
        assert!(s[&0] > s[&1] && s[&1] > 0.0, "{s:?}");
        // No double counting: a doc with both `running` and stem `run` scores the larger
        // of the two, not their sum.
        let w_raw = idf(4, 2) * tf_norm(1.0, 2, idx.avg_len());
        assert!((s[&0] - w_raw).abs() < 1e-6, "{s:?}");
    }

    #[test]
    fn remove_cleans_stem_postings_and_language_counts() {
        let mut idx = InvertedIndex::default();
        let (a, len) = analyze("", "walking dogs", Some("en"));
        idx.insert(0, a.clone(), len);
        let (b, blen) = analyze("", "walking dogs", None);
        idx.insert(1, b, blen);
        assert!(a.keys().any(|k| k == "\u{1}en:walk"));
        assert_eq!(len, 2, "stems do not count towards the length");
        assert_eq!(matching(&idx, "walks"), [0]);
        idx.remove(0, &a, len);
        assert!(idx.languages.is_empty());
        assert!(idx.terms.keys().all(|k| parse_stem_key(k).is_none()));
        assert_eq!(matching(&idx, "walks"), Vec::<u32>::new());
        assert_eq!(matching(&idx, "walking"), [1]);
        assert_eq!(idx.avg_len(), 2.0);
    }

    #[test]
    fn snippet_highlights_inflected_forms() {
        let q = parse("running");
        assert_eq!(
            snippet("He runs every morning", "", Some("en"), &q).as_deref(),
            Some("He [runs] every morning")
        );
        assert_eq!(snippet("He runs every morning", "", None, &q), None);
        assert_eq!(
            snippet(
                "Les pommes rouges",
                "",
                Some("fr"),
                &parse("\"pomme rouge\"")
            )
            .as_deref(),
            Some("Les [pommes] [rouges]")
        );
    }

    /// Tiny deterministic generator for the randomised tests.
    struct Lcg(u64);
    impl Lcg {
        fn next(&mut self) -> u64 {
            self.0 = self
                .0
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            self.0 >> 33
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
        /// Skewed: low indexes are common.
        fn skewed(&mut self, n: usize) -> usize {
            let a = self.below(n);
            self.below(a + 1)
        }
    }

    fn vocab() -> Vec<String> {
        let bases = [
            "run", "walk", "jump", "cook", "paint", "sing", "play", "read", "swim", "drive",
            "climb", "dance", "fish", "sail", "build", "clean", "film", "light", "park", "crash",
        ];
        let suffixes = ["", "s", "ing", "ed", "er", "ers"];
        let mut v: Vec<String> = Vec::new();
        for (i, b) in bases.iter().enumerate() {
            for s in &suffixes {
                v.push(format!("{b}{s}"));
            }
            v.push(format!("x{i}"));
            v.push(format!("yo{i}"));
        }
        v
    }

    /// Pruned top-n equals exhaustive scoring (same documents and scores in the first `n`,
    /// every tie with the `n`-th included), and exhaustive matching equals a naive check of
    /// each document, on a random corpus with stems, removals and reused slots.
    #[test]
    fn pruned_top_n_equals_exhaustive() {
        let words = vocab();
        let mut rng = Lcg(7);
        let langs = [None, Some("en"), Some("fr")];
        let mut idx = InvertedIndex::default();
        let mut docs: Vec<Option<(String, Option<&str>)>> = Vec::new();
        for _ in 0..3_000 {
            let n = 1 + rng.below(25);
            let text: Vec<&str> = (0..n)
                .map(|_| words[rng.skewed(words.len())].as_str())
                .collect();
            docs.push(Some((text.join(" "), langs[rng.below(3)])));
        }
        for (i, d) in docs.iter().enumerate() {
            let (text, lang) = d.as_ref().unwrap();
            let (a, len) = analyze("", text, *lang);
            idx.insert(i as u32, a, len);
        }
        // Remove some documents (bounds go stale), then re-fill some of their slots
        // (out-of-order inserts).
        for slot in (0..docs.len()).step_by(7) {
            let (text, lang) = docs[slot].take().unwrap();
            let (a, len) = analyze("", &text, lang);
            idx.remove(slot as u32, &a, len);
            if slot % 2 == 0 {
                let text = format!("{text} run running {}", words[rng.below(words.len())]);
                let (a, len) = analyze("", &text, lang);
                idx.insert(slot as u32, a, len);
                docs[slot] = Some((text, lang));
            }
        }
        let mut queries: Vec<String> = vec![
            "run".into(),
            "running yo3".into(),
            "runs jumps x4 cook".into(),
            "\"run run\"".into(),
            "\"walking running\" cook".into(),
            "pa*".into(),
            "r* \"x1 run\" sing".into(),
            "nothing".into(),
            "nothing x19".into(),
        ];
        for _ in 0..30 {
            let k = 1 + rng.below(4);
            let q: Vec<&str> = (0..k)
                .map(|_| words[rng.below(words.len())].as_str())
                .collect();
            queries.push(q.join(" "));
            queries.push(format!("\"{} {}\"", q[0], words[rng.skewed(words.len())]));
        }
        type Accept = fn(u32) -> bool;
        let accepts: [Accept; 3] = [|_| true, |s| s % 3 == 0, |s| s % 11 != 0];
        let rank = |mut v: Vec<(u32, f32)>| {
            v.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
            v
        };
        for q in &queries {
            let clauses = parse(q);
            let all = rank(idx.top(&clauses, usize::MAX, |_| true));
            let naive: Vec<u32> = docs
                .iter()
                .enumerate()
                .filter_map(|(i, d)| {
                    let (text, lang) = d.as_ref()?;
                    let (a, _) = analyze("", text, *lang);
                    analysis_matches(&a, *lang, &clauses).then_some(i as u32)
                })
                .collect();
            let mut got: Vec<u32> = all.iter().map(|e| e.0).collect();
            got.sort_unstable();
            assert_eq!(got, naive, "{q}");
            // With pruning, the filter runs on far fewer documents than match.
            if all.len() > 1_000 {
                let calls = std::cell::Cell::new(0usize);
                idx.top(&clauses, 10, |_| {
                    calls.set(calls.get() + 1);
                    true
                });
                assert!(
                    calls.get() * 2 < all.len(),
                    "{q}: {} of {}",
                    calls.get(),
                    all.len()
                );
            }
            for accept in accepts {
                let exhaustive = rank(idx.top(&clauses, usize::MAX, accept));
                for n in [1, 10, 100] {
                    let pruned = rank(idx.top(&clauses, n, accept));
                    let want = &exhaustive[..n.min(exhaustive.len())];
                    assert_eq!(&pruned[..n.min(pruned.len())], want, "{q} n={n}");
                    if let Some(last) = want.last() {
                        let ties = exhaustive.iter().filter(|e| e.1 >= last.1).count();
                        assert_eq!(pruned.len(), ties, "{q} n={n}: ties");
                    }
                }
            }
        }
    }

    #[test]
    fn remove_restores_statistics() {
        let (mut idx, lens) = index(&["fox fox dog", "dog cat"]);
        let (a, len) = analyze("", "dog cat", None);
        idx.remove(1, &a, len);
        assert_eq!(idx.avg_len(), 3.0);
        assert!(!idx.terms.contains_key("cat"));
        let s = scores(&idx, &lens, "dog");
        assert_eq!(s[1], 0.0);
    }

    #[test]
    fn phrase_does_not_cross_path_and_text() {
        let mut idx = InvertedIndex::default();
        let (a, len) = analyze("/clips/red", "car park", None);
        idx.insert(0, a, len);
        assert!(idx.top(&parse("\"red car\""), 10, |_| true).is_empty());
        let hits = idx.top(&parse("\"car park\""), 10, |_| true);
        assert!(hits.len() == 1 && hits[0].1 > 0.0);
    }

    #[test]
    fn snippet_windows_around_best_match_with_original_casing() {
        let text = "one two three four five six seven eight nine ten eleven twelve \
                    thirteen fourteen fifteen sixteen seventeen eighteen nineteen twenty \
                    twentyone the Red, Car stopped near the Lighthouse at dusk and more words \
                    follow here to pad the text beyond twenty tokens";
        let s = snippet(text, "/p.mp4", None, &parse("\"red car\" lighthouse")).unwrap();
        assert!(s.starts_with('…') && s.ends_with('…'), "{s}");
        assert!(s.contains("[Red], [Car]"), "{s}");
        assert!(s.contains("[Lighthouse]"), "{s}");
        assert!(!s.contains("one two"), "{s}");
    }

    #[test]
    fn snippet_short_text_prefix_and_path_fallback() {
        assert_eq!(
            snippet("Mountains at dawn", "/x.mp4", None, &parse("moun*")).as_deref(),
            Some("[Mountains] at dawn")
        );
        assert_eq!(
            snippet("unrelated", "/Q2/beach_day.mov", None, &parse("beach")).as_deref(),
            Some("/Q2/[beach]_day.mov")
        );
        assert_eq!(snippet("unrelated", "/x.mp4", None, &parse("beach")), None);
        // A phrase highlights only where the whole phrase occurs.
        assert_eq!(
            snippet("car red, red car", "", None, &parse("\"red car\"")).as_deref(),
            Some("car red, [red] [car]")
        );
    }
}
