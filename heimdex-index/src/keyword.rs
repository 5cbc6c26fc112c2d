//! Positional inverted index, BM25 scoring and snippets.
//!
//! Each document's `path` and `text` are indexed as one token stream (path first, then a
//! one-position gap so a phrase cannot straddle the two). Postings are per term, sorted by
//! document slot, and carry every position of the term in the document.

use std::collections::{BTreeMap, HashSet};

use crate::query::Clause;
use crate::tokenize::{Token, tokenize};

/// BM25 term-frequency saturation.
pub(crate) const K1: f32 = 1.2;
/// BM25 length normalisation.
pub(crate) const B: f32 = 0.75;
/// A prefix expands to at most this many terms (the most frequent ones).
pub(crate) const MAX_PREFIX_EXPANSION: usize = 256;

/// One document's occurrences of one term.
#[derive(Debug, Clone)]
pub(crate) struct Posting {
    pub doc: u32,
    pub positions: Box<[u32]>,
}

/// Term → postings, plus the corpus statistics BM25 needs.
#[derive(Debug, Default)]
pub(crate) struct InvertedIndex {
    terms: BTreeMap<String, Vec<Posting>>,
    /// Number of indexed documents.
    docs: u32,
    /// Sum of document lengths (tokens).
    total_len: u64,
}

/// The positions of each distinct term of a document's path + text, and its length.
pub(crate) fn analyze(path: &str, text: &str) -> (BTreeMap<String, Vec<u32>>, u32) {
    let mut out: BTreeMap<String, Vec<u32>> = BTreeMap::new();
    let mut pos: u32 = 0;
    let mut len: u32 = 0;
    for (field, field_text) in [path, text].into_iter().enumerate() {
        if field > 0 {
            pos = pos.saturating_add(1); // gap between path and text
        }
        for tok in tokenize(field_text) {
            out.entry(tok.term).or_default().push(pos);
            pos = pos.saturating_add(1);
            len = len.saturating_add(1);
        }
    }
    (out, len)
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

impl InvertedIndex {
    /// Add a document under `slot` (which must not be indexed already).
    pub fn insert(&mut self, slot: u32, analyzed: BTreeMap<String, Vec<u32>>, len: u32) {
        for (term, positions) in analyzed {
            let list = self.terms.entry(term).or_default();
            let posting = Posting {
                doc: slot,
                positions: positions.into_boxed_slice(),
            };
            match list.last() {
                Some(last) if last.doc > slot => {
                    let at = list.partition_point(|p| p.doc < slot);
                    list.insert(at, posting);
                }
                _ => list.push(posting),
            }
        }
        self.docs += 1;
        self.total_len += u64::from(len);
    }

    /// Remove the document at `slot`, given the same analysis it was inserted with.
    pub fn remove(&mut self, slot: u32, analyzed: &BTreeMap<String, Vec<u32>>, len: u32) {
        for term in analyzed.keys() {
            if let Some(list) = self.terms.get_mut(term) {
                if let Ok(at) = list.binary_search_by_key(&slot, |p| p.doc) {
                    list.remove(at);
                }
                if list.is_empty() {
                    self.terms.remove(term);
                }
            }
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

    /// The terms a prefix expands to: at most [`MAX_PREFIX_EXPANSION`], most frequent first.
    fn expand_prefix(&self, prefix: &str) -> Vec<&str> {
        let mut found: Vec<(&str, usize)> = self
            .terms
            .range::<str, _>((
                std::ops::Bound::Included(prefix),
                std::ops::Bound::Unbounded,
            ))
            .take_while(|(t, _)| t.starts_with(prefix))
            .map(|(t, p)| (t.as_str(), p.len()))
            .collect();
        if found.len() > MAX_PREFIX_EXPANSION {
            found.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
            found.truncate(MAX_PREFIX_EXPANSION);
        }
        found.into_iter().map(|(t, _)| t).collect()
    }

    /// Score every document matching any clause. `doc_len(slot)` gives a document's length;
    /// `scores` must have one zeroed entry per slot; touched slots are appended to `touched`.
    pub fn score(
        &self,
        clauses: &[Clause],
        doc_len: impl Fn(u32) -> u32,
        scores: &mut [f32],
        touched: &mut Vec<u32>,
    ) {
        let avg = self.avg_len();
        let mut add = |slot: u32, s: f32, scores: &mut [f32]| {
            if let Some(cell) = scores.get_mut(slot as usize) {
                if *cell == 0.0 {
                    touched.push(slot);
                }
                *cell += s;
            }
        };
        for clause in clauses {
            match clause {
                Clause::Term(t) => {
                    if let Some(list) = self.terms.get(t) {
                        let w = idf(self.docs, list.len() as u32);
                        for p in list {
                            let s = w * tf_norm(p.positions.len() as f32, doc_len(p.doc), avg);
                            add(p.doc, s, scores);
                        }
                    }
                }
                Clause::Prefix(prefix) => {
                    for t in self.expand_prefix(prefix) {
                        if let Some(list) = self.terms.get(t) {
                            let w = idf(self.docs, list.len() as u32);
                            for p in list {
                                let s = w * tf_norm(p.positions.len() as f32, doc_len(p.doc), avg);
                                add(p.doc, s, scores);
                            }
                        }
                    }
                }
                Clause::Phrase(ts) => {
                    let mut lists = Vec::with_capacity(ts.len());
                    for t in ts {
                        match self.terms.get(t) {
                            Some(l) => lists.push(l.as_slice()),
                            None => {
                                lists.clear();
                                break;
                            }
                        }
                    }
                    if lists.is_empty() {
                        continue;
                    }
                    let w: f32 = lists.iter().map(|l| idf(self.docs, l.len() as u32)).sum();
                    for (slot, freq) in phrase_matches(&lists) {
                        add(slot, w * tf_norm(freq as f32, doc_len(slot), avg), scores);
                    }
                }
            }
        }
    }
}

/// Documents in which the postings' terms occur adjacent and in order, with the count.
fn phrase_matches(lists: &[&[Posting]]) -> Vec<(u32, u32)> {
    let Some((first, others)) = lists.split_first() else {
        return Vec::new();
    };
    let mut out = Vec::new();
    'docs: for p0 in first.iter() {
        let mut rest = Vec::with_capacity(others.len());
        for l in others {
            match l.binary_search_by_key(&p0.doc, |p| p.doc) {
                Ok(i) => rest.push(&l[i].positions),
                Err(_) => continue 'docs,
            }
        }
        let freq = p0
            .positions
            .iter()
            .filter(|&&start| {
                rest.iter().enumerate().all(|(i, ps)| {
                    start
                        .checked_add(i as u32 + 1)
                        .is_some_and(|want| ps.binary_search(&want).is_ok())
                })
            })
            .count() as u32;
        if freq > 0 {
            out.push((p0.doc, freq));
        }
    }
    out
}

/// Snippet window, in tokens.
pub(crate) const SNIPPET_TOKENS: usize = 20;
/// Tokens of context kept before the first highlighted token of a window.
const SNIPPET_LEAD: usize = 3;

/// Which tokens of `tokens` the clauses match (phrases only where the whole phrase occurs).
fn highlighted(tokens: &[Token], clauses: &[Clause]) -> Vec<bool> {
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
    for (i, tok) in tokens.iter().enumerate() {
        if singles.contains(tok.term.as_str()) || prefixes.iter().any(|p| tok.term.starts_with(p)) {
            marks[i] = true;
        }
    }
    for c in clauses {
        if let Clause::Phrase(ts) = c {
            for start in 0..tokens.len().saturating_sub(ts.len() - 1) {
                if ts
                    .iter()
                    .enumerate()
                    .all(|(k, t)| tokens[start + k].term == *t)
                {
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
pub(crate) fn snippet(text: &str, path: &str, clauses: &[Clause]) -> Option<String> {
    let tokens = tokenize(text);
    let marks = highlighted(&tokens, clauses);
    if !marks.iter().any(|&m| m) {
        let ptoks = tokenize(path);
        let pmarks = highlighted(&ptoks, clauses);
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
            let (a, len) = analyze("", d);
            idx.insert(i as u32, a, len);
            lens.push(len);
        }
        (idx, lens)
    }

    fn scores(idx: &InvertedIndex, lens: &[u32], q: &str) -> Vec<f32> {
        let mut s = vec![0.0; lens.len()];
        let mut touched = Vec::new();
        idx.score(&parse(q), |d| lens[d as usize], &mut s, &mut touched);
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

    #[test]
    fn remove_restores_statistics() {
        let (mut idx, lens) = index(&["fox fox dog", "dog cat"]);
        let (a, len) = analyze("", "dog cat");
        idx.remove(1, &a, len);
        assert_eq!(idx.avg_len(), 3.0);
        assert!(!idx.terms.contains_key("cat"));
        let s = scores(&idx, &lens, "dog");
        assert_eq!(s[1], 0.0);
    }

    #[test]
    fn phrase_does_not_cross_path_and_text() {
        let mut idx = InvertedIndex::default();
        let (a, len) = analyze("/clips/red", "car park");
        idx.insert(0, a, len);
        let mut s = vec![0.0];
        let mut t = Vec::new();
        idx.score(&parse("\"red car\""), |_| len, &mut s, &mut t);
        assert_eq!(s[0], 0.0);
        idx.score(&parse("\"car park\""), |_| len, &mut s, &mut t);
        assert!(s[0] > 0.0);
    }

    #[test]
    fn snippet_windows_around_best_match_with_original_casing() {
        let text = "one two three four five six seven eight nine ten eleven twelve \
                    thirteen fourteen fifteen sixteen seventeen eighteen nineteen twenty \
                    twentyone the Red, Car stopped near the Lighthouse at dusk and more words \
                    follow here to pad the text beyond twenty tokens";
        let s = snippet(text, "/p.mp4", &parse("\"red car\" lighthouse")).unwrap();
        assert!(s.starts_with('…') && s.ends_with('…'), "{s}");
        assert!(s.contains("[Red], [Car]"), "{s}");
        assert!(s.contains("[Lighthouse]"), "{s}");
        assert!(!s.contains("one two"), "{s}");
    }

    #[test]
    fn snippet_short_text_prefix_and_path_fallback() {
        assert_eq!(
            snippet("Mountains at dawn", "/x.mp4", &parse("moun*")).as_deref(),
            Some("[Mountains] at dawn")
        );
        assert_eq!(
            snippet("unrelated", "/Q2/beach_day.mov", &parse("beach")).as_deref(),
            Some("/Q2/[beach]_day.mov")
        );
        assert_eq!(snippet("unrelated", "/x.mp4", &parse("beach")), None);
        // A phrase highlights only where the whole phrase occurs.
        assert_eq!(
            snippet("car red, red car", "", &parse("\"red car\"")).as_deref(),
            Some("car red, [red] [car]")
        );
    }
}
