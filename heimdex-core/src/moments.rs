//! Moments: hits of one asset that touch or overlap merged into one time range.

use serde::{Deserialize, Serialize};

use crate::index::{SearchHit, SignalMatch};
use crate::model::{AssetId, SegmentKind, SourceId};

/// A time-coded search result: asset, start, end, thumbnail, and why it matched.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Moment {
    /// Asset id.
    pub asset: AssetId,
    /// Source id.
    pub source: SourceId,
    /// Asset path / key.
    pub path: String,
    /// Start, seconds.
    pub start_s: f64,
    /// End, seconds.
    pub end_s: f64,
    /// Best score among the merged hits.
    pub score: f32,
    /// Thumbnail of the best hit that has one.
    pub thumbnail: Option<String>,
    /// Signals that matched (deduplicated by signal name, best rank kept).
    pub signals: Vec<SignalMatch>,
    /// Best snippet.
    pub snippet: Option<String>,
    /// Segment ids merged into this moment.
    pub segments: Vec<String>,
}

/// Merge hits (best first) into moments: hits of the same asset whose time ranges touch or
/// overlap (within `gap_s`) become one moment spanning them all. Moments keep the order of
/// their best hit, so the ranking is preserved.
///
/// A hit on the whole asset (kind `asset`: file name, path, technical metadata) does not
/// widen a more precise moment of the same asset: it adds its signals and snippet to that
/// asset's best moment instead. Only an asset with no precise hit becomes a whole-asset
/// moment.
pub fn merge_hits(hits: &[SearchHit], gap_s: f64) -> Vec<Moment> {
    let (whole, precise): (Vec<&SearchHit>, Vec<&SearchHit>) =
        hits.iter().partition(|h| h.doc.kind == SegmentKind::Asset);
    let mut moments = merge_ranges(&precise, gap_s);
    for hit in whole {
        match moments.iter_mut().find(|m| m.asset == hit.doc.asset) {
            Some(m) => {
                m.score = m.score.max(hit.score);
                for s in &hit.signals {
                    if !m.signals.iter().any(|x| x.signal == s.signal) {
                        m.signals.push(s.clone());
                    }
                }
                if m.snippet.is_none() {
                    m.snippet = hit.snippet.clone();
                }
                m.segments.push(hit.doc.segment.clone());
            }
            None => moments.extend(merge_ranges(&[hit], gap_s)),
        }
    }
    moments.sort_by(|a, b| b.score.total_cmp(&a.score));
    moments
}

/// The signals of `hit` as a moment reports them: a match by meaning on what a shot shows (a
/// `visual` segment's text vector) is the `visual` signal, so "why it matched" says the
/// picture matched rather than words.
fn hit_signals(hit: &SearchHit) -> Vec<SignalMatch> {
    let mut signals = hit.signals.clone();
    if hit.doc.kind == SegmentKind::Visual {
        for s in &mut signals {
            if s.signal.starts_with("vector:") && s.signal != "vector:image" {
                s.signal = "visual".into();
            }
        }
    }
    signals
}

fn merge_ranges(hits: &[&SearchHit], gap_s: f64) -> Vec<Moment> {
    let mut moments: Vec<Moment> = Vec::new();
    for hit in hits {
        let d = &hit.doc;
        let signals = hit_signals(hit);
        let existing = moments.iter().position(|m| {
            m.asset == d.asset && d.start_s <= m.end_s + gap_s && d.end_s + gap_s >= m.start_s
        });
        match existing {
            Some(i) => {
                let m = &mut moments[i];
                m.start_s = m.start_s.min(d.start_s);
                m.end_s = m.end_s.max(d.end_s);
                if m.thumbnail.is_none() {
                    m.thumbnail = d.thumbnail.clone();
                }
                if m.snippet.is_none() {
                    m.snippet = hit.snippet.clone();
                }
                for s in &signals {
                    match m.signals.iter_mut().find(|x| x.signal == s.signal) {
                        Some(x) if s.rank < x.rank => *x = s.clone(),
                        Some(_) => {}
                        None => m.signals.push(s.clone()),
                    }
                }
                m.segments.push(d.segment.clone());
            }
            None => moments.push(Moment {
                asset: d.asset.clone(),
                source: d.source.clone(),
                path: d.path.clone(),
                start_s: d.start_s,
                end_s: d.end_s,
                score: hit.score,
                thumbnail: d.thumbnail.clone(),
                signals,
                snippet: hit.snippet.clone(),
                segments: vec![d.segment.clone()],
            }),
        }
    }
    // A merged moment may now touch another one of the same asset: merge until stable.
    let mut changed = true;
    while changed {
        changed = false;
        'outer: for i in 0..moments.len() {
            for j in (i + 1)..moments.len() {
                let (a, b) = (&moments[i], &moments[j]);
                if a.asset == b.asset
                    && b.start_s <= a.end_s + gap_s
                    && b.end_s + gap_s >= a.start_s
                {
                    let b = moments.remove(j);
                    let a = &mut moments[i];
                    a.start_s = a.start_s.min(b.start_s);
                    a.end_s = a.end_s.max(b.end_s);
                    a.segments.extend(b.segments);
                    for s in b.signals {
                        if !a.signals.iter().any(|x| x.signal == s.signal) {
                            a.signals.push(s);
                        }
                    }
                    changed = true;
                    break 'outer;
                }
            }
        }
    }
    moments
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::index::IndexDoc;
    use crate::model::TenantId;

    fn hit(asset: &str, seg: &str, start: f64, end: f64, score: f32) -> SearchHit {
        SearchHit {
            doc: IndexDoc {
                tenant: TenantId::default_tenant(),
                source: SourceId::new("s"),
                asset: AssetId::new(asset),
                segment: seg.into(),
                kind: SegmentKind::Shot,
                path: format!("{asset}.mp4"),
                start_s: start,
                end_s: end,
                text: String::new(),
                thumbnail: None,
                tags: vec![],
                vectors: BTreeMap::new(),
                meta: Default::default(),
            },
            score,
            signals: vec![SignalMatch {
                signal: "keyword".into(),
                score,
                rank: 1,
            }],
            snippet: None,
        }
    }

    #[test]
    fn a_match_by_meaning_on_what_a_shot_shows_is_the_visual_signal() {
        let mut h = hit("a", "visual-00001", 0.0, 4.0, 0.9);
        h.doc.kind = SegmentKind::Visual;
        h.signals.push(SignalMatch {
            signal: "vector:text".into(),
            score: 0.6,
            rank: 1,
        });
        let mut t = hit("a", "transcript-00000", 1.0, 3.0, 0.8);
        t.signals = vec![SignalMatch {
            signal: "vector:text".into(),
            score: 0.5,
            rank: 2,
        }];
        let m = merge_hits(&[h, t], 0.5);
        let names: Vec<&str> = m[0].signals.iter().map(|s| s.signal.as_str()).collect();
        assert_eq!(names, vec!["keyword", "visual", "vector:text"]);
    }

    #[test]
    fn touching_hits_of_one_asset_merge_and_others_stay_apart() {
        let hits = vec![
            hit("a", "s1", 0.0, 2.0, 3.0),
            hit("b", "s1", 0.0, 2.0, 2.5),
            hit("a", "s2", 2.0, 4.0, 2.0),
            hit("a", "s4", 10.0, 12.0, 1.0),
        ];
        let m = merge_hits(&hits, 0.0);
        assert_eq!(m.len(), 3);
        assert_eq!(
            (m[0].asset.as_str(), m[0].start_s, m[0].end_s),
            ("a", 0.0, 4.0)
        );
        assert_eq!(m[0].segments, vec!["s1", "s2"]);
        assert_eq!(m[0].score, 3.0);
        assert_eq!(m[1].asset.as_str(), "b");
        assert_eq!((m[2].start_s, m[2].end_s), (10.0, 12.0));
    }

    #[test]
    fn whole_asset_hits_do_not_swallow_precise_moments() {
        let mut whole = hit("a", "asset", 0.0, 60.0, 5.0);
        whole.doc.kind = SegmentKind::Asset;
        whole.signals[0].signal = "vector:text".into();
        let mut other_whole = hit("b", "asset", 0.0, 30.0, 1.0);
        other_whole.doc.kind = SegmentKind::Asset;
        let hits = vec![whole, hit("a", "s3", 10.0, 12.0, 2.0), other_whole];
        let m = merge_hits(&hits, 0.0);
        assert_eq!(m.len(), 2);
        assert_eq!(
            (m[0].asset.as_str(), m[0].start_s, m[0].end_s),
            ("a", 10.0, 12.0)
        );
        assert_eq!(m[0].score, 5.0, "the asset hit lends its score");
        assert_eq!(m[0].signals.len(), 2, "and its signal");
        assert_eq!(
            (m[1].asset.as_str(), m[1].start_s, m[1].end_s),
            ("b", 0.0, 30.0)
        );
    }

    #[test]
    fn bridging_hit_merges_two_moments() {
        let hits = vec![
            hit("a", "s1", 0.0, 1.0, 3.0),
            hit("a", "s3", 2.0, 3.0, 2.0),
            hit("a", "s2", 1.0, 2.0, 1.0),
        ];
        let m = merge_hits(&hits, 0.0);
        assert_eq!(m.len(), 1);
        assert_eq!((m[0].start_s, m[0].end_s), (0.0, 3.0));
    }
}
