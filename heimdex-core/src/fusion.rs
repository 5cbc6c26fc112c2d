//! Rank fusion shared by every index backend, so hybrid search means the same everywhere.

use std::collections::HashMap;

use crate::index::{Fusion, SignalMatch};

/// One signal's ranked list: (document key, signal score), best first.
#[derive(Debug, Clone)]
pub struct RankedList {
    /// Signal name, e.g. `keyword` or `vector:text`.
    pub signal: String,
    /// Hits, best first.
    pub hits: Vec<(String, f32)>,
}

/// A fused hit: document key, fused score, the signals that matched it.
#[derive(Debug, Clone, PartialEq)]
pub struct Fused {
    /// Document key.
    pub key: String,
    /// Fused score.
    pub score: f32,
    /// Contributing signals.
    pub signals: Vec<SignalMatch>,
}

/// Fuse ranked lists. Results are sorted by fused score descending, ties by key ascending.
///
/// With [`Fusion::Rrf`], a document at 1-based rank `r` in a list contributes `1 / (k + r)`.
/// With [`Fusion::Weighted`], each list's scores are divided by its top score (so the best hit
/// of each signal scores 1) and multiplied by the signal's weight (`keyword` for the signal
/// named `keyword`, `vector` for the others).
pub fn fuse(lists: &[RankedList], fusion: Fusion) -> Vec<Fused> {
    let mut acc: HashMap<&str, Fused> = HashMap::new();
    for list in lists {
        let top = list.hits.first().map(|h| h.1).unwrap_or(0.0);
        for (i, (key, score)) in list.hits.iter().enumerate() {
            let rank = i as u32 + 1;
            let contribution = match fusion {
                Fusion::Rrf { k } => 1.0 / (k + rank as f32),
                Fusion::Weighted { keyword, vector } => {
                    let w = if list.signal == "keyword" {
                        keyword
                    } else {
                        vector
                    };
                    let norm = if top > 0.0 { score / top } else { 0.0 };
                    w * norm
                }
            };
            let entry = acc.entry(key.as_str()).or_insert_with(|| Fused {
                key: key.clone(),
                score: 0.0,
                signals: Vec::new(),
            });
            entry.score += contribution;
            entry.signals.push(SignalMatch {
                signal: list.signal.clone(),
                score: *score,
                rank,
            });
        }
    }
    let mut out: Vec<Fused> = acc.into_values().collect();
    out.sort_by(|a, b| b.score.total_cmp(&a.score).then_with(|| a.key.cmp(&b.key)));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(signal: &str, keys: &[&str]) -> RankedList {
        RankedList {
            signal: signal.into(),
            hits: keys
                .iter()
                .enumerate()
                .map(|(i, k)| (k.to_string(), 10.0 - i as f32))
                .collect(),
        }
    }

    #[test]
    fn rrf_ranks_documents_in_both_lists_first() {
        let fused = fuse(
            &[
                list("keyword", &["a", "b", "c"]),
                list("vector:text", &["d", "c", "e"]),
            ],
            Fusion::default(),
        );
        assert_eq!(fused[0].key, "c");
        assert_eq!(fused[0].signals.len(), 2);
        let expected = 1.0 / 63.0 + 1.0 / 62.0;
        assert!((fused[0].score - expected).abs() < 1e-6);
        // a and d both rank first in one list: equal score, tie broken by key.
        assert_eq!(fused[1].key, "a");
        assert_eq!(fused[2].key, "d");
    }

    #[test]
    fn weighted_fusion_normalises_by_top_score() {
        let fused = fuse(
            &[list("keyword", &["a", "b"]), list("vector:text", &["b"])],
            Fusion::Weighted {
                keyword: 1.0,
                vector: 2.0,
            },
        );
        assert_eq!(fused[0].key, "b");
        assert!((fused[0].score - (0.9 + 2.0)).abs() < 1e-6);
        assert!((fused[1].score - 1.0).abs() < 1e-6);
    }
}
