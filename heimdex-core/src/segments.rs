//! Turning a sidecar into searchable, time-coded segments.
//!
//! Everything searchable is derived from the sidecar, so the index can always be rebuilt
//! from sidecars alone.

use std::collections::BTreeMap;

use crate::index::{DocMeta, IndexDoc};
use crate::model::{AssetId, Segment, SegmentKind, SourceId, TenantId};
use crate::sidecar::{Sidecar, StreamKind, Technical};

/// Segments of one asset: one for the whole asset (path and technical metadata), one per
/// shot (visual descriptors), one per custom span, and (when present) transcript windows and
/// OCR lines.
pub fn from_sidecar(sidecar: &Sidecar) -> Vec<Segment> {
    let mut out = Vec::new();
    let duration = sidecar.duration_s().unwrap_or(0.0);
    let mut asset_text = path_words(&sidecar.asset.key);
    if let Some(t) = &sidecar.technical {
        asset_text.push(' ');
        asset_text.push_str(&technical_words(&t.data));
    }
    let first_thumb = sidecar.shots.as_ref().and_then(|s| {
        s.data
            .shots
            .iter()
            .find_map(|sh| sh.keyframe.as_ref().map(|k| k.thumbnail.clone()))
    });
    out.push(Segment {
        id: "asset".into(),
        kind: SegmentKind::Asset,
        start_s: 0.0,
        end_s: duration,
        text: asset_text,
        thumbnail: first_thumb,
        tags: vec![],
    });
    if let Some(shots) = &sidecar.shots {
        for shot in &shots.data.shots {
            let mut text = format!("shot {}", shot.index + 1);
            for d in &shot.descriptors {
                text.push(' ');
                text.push_str(d);
            }
            out.push(Segment {
                id: format!("shot-{:05}", shot.index),
                kind: SegmentKind::Shot,
                start_s: shot.start_s,
                end_s: shot.end_s,
                text,
                thumbnail: shot.keyframe.as_ref().map(|k| k.thumbnail.clone()),
                tags: vec![],
            });
        }
    }
    if let Some(tr) = &sidecar.transcript {
        let tags: Vec<String> = tr
            .data
            .language
            .iter()
            .map(|l| format!("lang:{l}"))
            .collect();
        for (i, (start_s, end_s, text)) in transcript_windows(&tr.data).into_iter().enumerate() {
            out.push(Segment {
                id: format!("transcript-{i:05}"),
                kind: SegmentKind::Transcript,
                start_s,
                end_s,
                text,
                thumbnail: None,
                tags: tags.clone(),
            });
        }
    }
    if let Some(ocr) = &sidecar.ocr {
        for (i, line) in ocr.data.lines.iter().enumerate() {
            out.push(Segment {
                id: format!("ocr-{i:05}"),
                kind: SegmentKind::Ocr,
                start_s: line.start_s,
                end_s: line.end_s,
                text: line.text.clone(),
                thumbnail: None,
                tags: vec![],
            });
        }
    }
    if let Some(visual) = &sidecar.visual {
        for shot in &visual.data.shots {
            out.push(visual_segment(shot));
        }
    }
    for (name, block) in &sidecar.extensions {
        for (i, span) in block.data.spans.iter().enumerate() {
            out.push(Segment {
                id: format!("{name}-{i:05}"),
                kind: SegmentKind::Custom,
                start_s: span.start_s,
                end_s: span.end_s,
                text: span.text.clone(),
                thumbnail: None,
                tags: span.tags.clone(),
            });
        }
    }
    // Segments without a thumbnail borrow the keyframe of the shot they start in.
    if let Some(shots) = &sidecar.shots {
        for seg in out.iter_mut().filter(|s| s.thumbnail.is_none()) {
            seg.thumbnail = shots
                .data
                .shots
                .iter()
                .find(|sh| seg.start_s >= sh.start_s && seg.start_s < sh.end_s)
                .and_then(|sh| sh.keyframe.as_ref().map(|k| k.thumbnail.clone()));
        }
    }
    out
}

/// The filter tag of a visual label or broader word (`Dog` → `visual:dog`): what
/// `--shows dog` filters on.
pub fn visual_tag(label: &str) -> String {
    format!("visual:{}", label.trim().to_lowercase())
}

/// The filter tag of a detected object (`Car` → `object:car`).
pub fn object_tag(label: &str) -> String {
    format!("object:{}", label.trim().to_lowercase())
}

/// The searchable segment of what a shot shows: its description, then every label, synonym,
/// broader word and object name (so "coast" and "mountain" find a shot the classifier called
/// "seashore" or "alp"), tagged `object:<label>` per object and `visual:<label>` per label for
/// filters (`--object dog`).
fn visual_segment(shot: &crate::sidecar::ShotVisual) -> Segment {
    let mut words: Vec<&str> = Vec::new();
    for t in &shot.tags {
        words.push(&t.label);
        words.extend(t.synonyms.iter().map(String::as_str));
        words.extend(t.broader.iter().map(String::as_str));
    }
    for o in &shot.objects {
        words.push(&o.label);
    }
    let mut seen = std::collections::BTreeSet::new();
    let mut text = shot.description.clone();
    for w in words {
        if seen.insert(w.to_lowercase()) && !shot.description.contains(w) {
            text.push_str(". ");
            text.push_str(w);
        }
    }
    let mut tags: Vec<String> =
        shot.objects
            .iter()
            .map(|o| object_tag(&o.label))
            .chain(shot.objects.iter().map(|o| visual_tag(&o.label)).chain(
                shot.tags.iter().flat_map(|t| {
                    std::iter::once(&t.label)
                        .chain(&t.broader)
                        .map(|l| visual_tag(l))
                }),
            ))
            .collect();
    tags.sort();
    tags.dedup();
    Segment {
        id: format!("visual-{:05}", shot.shot_index),
        kind: SegmentKind::Visual,
        start_s: shot.start_s,
        end_s: shot.end_s,
        text,
        thumbnail: None,
        tags,
    }
}

/// A window never grows beyond this many seconds.
pub const WINDOW_MAX_S: f64 = 15.0;
/// A pause this long between two words always starts a new window.
pub const WINDOW_PAUSE_S: f64 = 1.5;

/// Transcript windows aligned to time: a recogniser segment can span several sentences and
/// long pauses, so with word timings the text is cut at sentence ends, at pauses of
/// [`WINDOW_PAUSE_S`] and at [`WINDOW_MAX_S`]; each window spans its words exactly. Segments
/// without word timings are kept whole.
pub fn transcript_windows(t: &crate::sidecar::Transcript) -> Vec<(f64, f64, String)> {
    let mut out = Vec::new();
    for seg in &t.segments {
        if seg.words.is_empty() {
            let text = seg.text.trim();
            if !text.is_empty() {
                out.push((seg.start_s, seg.end_s, text.to_owned()));
            }
            continue;
        }
        let mut current: Vec<&crate::sidecar::Word> = Vec::new();
        let flush = |current: &mut Vec<&crate::sidecar::Word>,
                     out: &mut Vec<(f64, f64, String)>| {
            if let (Some(first), Some(last)) = (current.first(), current.last()) {
                let text = current
                    .iter()
                    .map(|w| w.text.trim())
                    .filter(|w| !w.is_empty())
                    .collect::<Vec<_>>()
                    .join(" ");
                if !text.is_empty() {
                    out.push((first.start_s, last.end_s.max(first.start_s), text));
                }
            }
            current.clear();
        };
        for w in &seg.words {
            if let (Some(first), Some(prev)) = (current.first(), current.last()) {
                let pause = w.start_s - prev.end_s >= WINDOW_PAUSE_S;
                let sentence_end =
                    prev.text.trim_end().ends_with(['.', '?', '!']) && current.len() >= 3;
                let too_long = w.end_s - first.start_s > WINDOW_MAX_S;
                if pause || sentence_end || too_long {
                    flush(&mut current, &mut out);
                }
            }
            current.push(w);
        }
        flush(&mut current, &mut out);
    }
    out
}

/// Index documents of one asset.
pub fn index_docs(
    tenant: &TenantId,
    source: &SourceId,
    asset: &AssetId,
    path: &str,
    segments: &[Segment],
) -> Vec<IndexDoc> {
    segments
        .iter()
        .map(|s| IndexDoc {
            tenant: tenant.clone(),
            source: source.clone(),
            asset: asset.clone(),
            segment: s.id.clone(),
            kind: s.kind,
            path: path.to_owned(),
            start_s: s.start_s,
            end_s: s.end_s,
            text: s.text.clone(),
            thumbnail: s.thumbnail.clone(),
            tags: s.tags.clone(),
            vectors: BTreeMap::new(),
            meta: Default::default(),
        })
        .collect()
}

/// Fill each document's [`DocMeta`] from the sidecar: asset duration, capture date, spoken
/// language, whether there is speech, and the person clusters seen during the moment.
pub fn apply_meta(docs: &mut [IndexDoc], sidecar: &Sidecar) {
    let duration = sidecar.duration_s();
    let capture_date = sidecar
        .technical
        .as_ref()
        .and_then(|t| t.data.creation_time.clone());
    let transcript = sidecar.transcript.as_ref().map(|t| &t.data);
    let language = transcript.and_then(|t| t.language.clone());
    let has_speech =
        transcript.is_some_and(|t| t.segments.iter().any(|s| !s.text.trim().is_empty()));
    let detections = sidecar
        .faces
        .as_ref()
        .map(|f| f.data.detections.as_slice())
        .unwrap_or(&[]);
    for doc in docs.iter_mut() {
        let mut faces: Vec<String> = detections
            .iter()
            .filter(|d| d.time_s >= doc.start_s && d.time_s <= doc.end_s)
            .filter_map(|d| d.cluster.clone())
            .collect();
        faces.sort();
        faces.dedup();
        doc.meta = DocMeta {
            asset_duration_s: duration,
            capture_date: capture_date.clone(),
            language: language.clone(),
            has_speech,
            faces,
        };
    }
}

/// Attach the sidecar's embedding vectors to the documents of the segments they embed.
pub fn attach_vectors(docs: &mut [IndexDoc], sidecar: &Sidecar) {
    for v in sidecar.embeddings.values().flat_map(|b| &b.data.vectors) {
        let Some(seg) = &v.segment else { continue };
        if let Some(doc) = docs.iter_mut().find(|d| &d.segment == seg) {
            doc.vectors.insert(v.space.clone(), v.vector.clone());
        }
    }
}

/// The words of a path: its components, its file name and that name split at `_ - .`.
fn path_words(path: &str) -> String {
    let mut words: Vec<String> = Vec::new();
    for part in path.split('/') {
        if part.is_empty() {
            continue;
        }
        words.push(part.to_owned());
        let split: Vec<&str> = part
            .split(['_', '-', '.', ' '])
            .filter(|w| !w.is_empty())
            .collect();
        if split.len() > 1 {
            words.extend(split.iter().map(|w| (*w).to_owned()));
        }
    }
    words.join(" ")
}

/// Searchable words for technical metadata: container, codecs, resolution class, fps, audio.
fn technical_words(t: &Technical) -> String {
    let mut w: Vec<String> = Vec::new();
    if let Some(long) = &t.container_long {
        w.push(long.clone());
    }
    w.extend(t.container.split(',').map(str::to_owned));
    for s in &t.streams {
        w.push(s.codec.clone());
        if s.kind == StreamKind::Video {
            if let (Some(width), Some(height)) = (s.width, s.height) {
                w.push(format!("{width}x{height}"));
                w.push(format!("{height}p"));
                let class = match height {
                    h if h >= 2160 => "uhd 4k",
                    h if h >= 1080 => "hd fullhd",
                    h if h >= 720 => "hd",
                    _ => "sd",
                };
                w.push(class.to_owned());
                w.push(
                    if width > height {
                        "landscape"
                    } else {
                        "portrait"
                    }
                    .to_owned(),
                );
            }
            if let Some(fps) = s.fps {
                w.push(format!("{}fps", fps.round() as i64));
            }
        }
    }
    let has_audio = t.streams.iter().any(|s| s.kind == StreamKind::Audio);
    w.push(
        if has_audio {
            "audio sound"
        } else {
            "silent noaudio"
        }
        .to_owned(),
    );
    if let Some(c) = &t.creation_time {
        w.push(c.clone());
    }
    for (k, v) in &t.tags {
        if matches!(
            k.as_str(),
            "title" | "comment" | "description" | "artist" | "album" | "keywords"
        ) {
            w.push(v.clone());
        }
    }
    w.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shot_s_look_is_searchable_by_every_name_and_filterable_by_object() {
        use crate::sidecar::{ShotVisual, VisualObject, VisualTag};
        let shot = ShotVisual {
            shot_index: 2,
            start_s: 4.0,
            end_s: 9.5,
            tags: vec![VisualTag {
                label: "alp".into(),
                synonyms: vec![],
                broader: vec!["mountain".into(), "landscape".into()],
                score: 0.62,
                model: "efficientnet-lite0".into(),
            }],
            objects: vec![VisualObject {
                label: "Dog".into(),
                count: 2,
                score: 0.8,
                boxes: vec![],
                model: "ssd".into(),
            }],
            description: "alp; two dogs; bright, blue".into(),
        };
        let seg = visual_segment(&shot);
        assert_eq!(seg.id, "visual-00002");
        assert_eq!(seg.kind, SegmentKind::Visual);
        assert_eq!((seg.start_s, seg.end_s), (4.0, 9.5));
        for word in ["alp", "mountain", "landscape", "Dog", "bright"] {
            assert!(seg.text.contains(word), "{word} in {:?}", seg.text);
        }
        assert_eq!(seg.text.matches("alp").count(), 1, "{:?}", seg.text);
        assert_eq!(
            seg.tags,
            vec![
                "object:dog",
                "visual:alp",
                "visual:dog",
                "visual:landscape",
                "visual:mountain"
            ]
        );
        assert_eq!("visual".parse::<SegmentKind>(), Ok(SegmentKind::Visual));
        assert!("pixels".parse::<SegmentKind>().is_err());
    }

    #[test]
    fn transcript_windows_split_at_sentences_and_pauses() {
        use crate::sidecar::{Transcript, TranscriptSegment, Word};
        let w = |t: &str, a: f64, b: f64| Word {
            start_s: a,
            end_s: b,
            text: t.into(),
            confidence: None,
        };
        let t = Transcript {
            language: Some("en".into()),
            segments: vec![
                TranscriptSegment {
                    start_s: 0.5,
                    end_s: 9.7,
                    text: "Welcome to the festival. Our chef cooks.".into(),
                    words: vec![
                        w("Welcome", 0.9, 1.0),
                        w("to", 1.0, 1.2),
                        w("the", 1.2, 1.5),
                        w("festival.", 1.5, 3.0),
                        w("Our", 7.1, 7.2),
                        w("chef", 7.4, 7.5),
                        w("cooks.", 7.5, 8.0),
                    ],
                },
                TranscriptSegment {
                    start_s: 20.0,
                    end_s: 22.0,
                    text: " No word timings ".into(),
                    words: vec![],
                },
            ],
        };
        assert_eq!(
            transcript_windows(&t),
            vec![
                (0.9, 3.0, "Welcome to the festival.".to_owned()),
                (7.1, 8.0, "Our chef cooks.".to_owned()),
                (20.0, 22.0, "No word timings".to_owned()),
            ]
        );
    }

    #[test]
    fn path_words_split_names() {
        assert_eq!(
            path_words("q2/sunset_over-mountains.mp4"),
            "q2 sunset_over-mountains.mp4 sunset over mountains mp4"
        );
    }
}
