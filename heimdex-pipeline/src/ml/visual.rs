//! What each shot shows: the `visual` stage.
//!
//! [`VisualStage`] is an [`Extractor`] that labels every shot with the scene and object
//! classes of an ImageNet-1k classifier ([`Tagger`], EfficientNet-Lite0) and writes the
//! sidecar's `visual` block: per shot, its tags (label, WordNet synonyms, plain broader words,
//! score, model) and a short generated description ("seashore, sandbar; beach, sea; bright,
//! blue"). The index turns each shot's block into a `visual` segment whose text is the
//! description plus every name, so "coast" finds a shot labelled `seashore`; the text
//! embedding stage runs after this one and embeds that text with MiniLM, so "a beach by the
//! sea" finds it by meaning; and the segment carries `visual:<label>` tags for filters.
//!
//! # Method
//! - Frames: each shot's keyframe plus, for shots whose picture changed, up to
//!   [`VisualConfig::frames_per_shot`] − 1 of the decoder's mid-shot samples, spread over the
//!   shot. All frames of the asset go through the classifier in batches.
//! - A shot's class probabilities are the mean over its frames (a label must hold for the
//!   shot, not flash on one frame); its tags are the top [`TaggerConfig::top_k`] at or above
//!   [`TaggerConfig::min_score`].
//! - Objects: the detector runs on the same frames; a shot's count of a class is the most
//!   boxes of it on one frame (two people walking through a shot are two, not six), with
//!   that frame's boxes.
//! - The description lists the labels (with their first synonym when it is a different
//!   word), then their broader words, then the objects with their counts, then the shot's
//!   colour and brightness descriptors from the shot list.
//!
//! A shot with no label above the threshold gets no entry (nothing confident to say).

use std::collections::BTreeMap;

use heimdex_core::extractor::{
    ExtractContext, ExtractError, Extractor, FrameRef, Needs, StageData,
};
use heimdex_core::sidecar::{ExtractorInfo, ShotVisual, Visual, VisualTag};

use heimdex_core::sidecar::{BoundingBox, ModelIdentity, VisualObject};
use sha2::{Digest, Sha256};

use super::MlError;
use super::objects::{Detection, ObjectConfig, ObjectDetector};
use super::tags::{Tag, Tagger, TaggerConfig};

/// Settings of the visual stage.
#[derive(Debug, Clone, PartialEq)]
pub struct VisualConfig {
    /// The classifier.
    pub tagger: TaggerConfig,
    /// The object detector (`None`: labels only).
    pub objects: Option<ObjectConfig>,
    /// Frames looked at per shot at most: the keyframe plus mid-shot samples. Default 3.
    pub frames_per_shot: usize,
}

impl Default for VisualConfig {
    fn default() -> Self {
        Self {
            tagger: TaggerConfig::default(),
            objects: Some(ObjectConfig::default()),
            frames_per_shot: 3,
        }
    }
}

/// The `visual.tags` stage (see the module docs).
#[derive(Debug)]
pub struct VisualStage {
    tagger: Tagger,
    detector: Option<ObjectDetector>,
    config: VisualConfig,
    info: ExtractorInfo,
}

impl VisualStage {
    /// Stage name in the sidecar.
    pub const NAME: &'static str = "visual.tags";

    /// Load the classifier.
    pub fn new(config: VisualConfig) -> Result<Self, MlError> {
        let info = Self::describe(&config)?;
        let tagger = Tagger::load(config.tagger.clone())?;
        let detector = config
            .objects
            .clone()
            .map(ObjectDetector::load)
            .transpose()?;
        Ok(Self {
            tagger,
            detector,
            config,
            info,
        })
    }

    /// The stage's identity without loading the model (hashes are cached next to the files).
    pub fn describe(config: &VisualConfig) -> Result<ExtractorInfo, MlError> {
        let tagger = Tagger::model_identity(&config.tagger)?;
        let model = match &config.objects {
            None => tagger,
            Some(objects) => {
                let detector = ObjectDetector::model_identity(objects)?;
                let mut h = Sha256::new();
                h.update(tagger.sha256.as_bytes());
                h.update(detector.sha256.as_bytes());
                ModelIdentity {
                    name: format!("{}+{}", tagger.name, detector.name),
                    sha256: heimdex_core::model::hex(&h.finalize()),
                }
            }
        };
        let objects = config.objects.as_ref().map_or_else(
            || "none".to_owned(),
            |o| format!("min_score={},iou={}", o.min_score, o.iou),
        );
        Ok(ExtractorInfo {
            name: Self::NAME.into(),
            version: "1".into(),
            model: Some(model),
            params: Some(format!(
                "top_k={};min_score={};frames_per_shot={};objects={objects}",
                config.tagger.top_k,
                config.tagger.min_score,
                config.frames_per_shot.max(1)
            )),
        })
    }

    /// The classifier.
    pub fn tagger(&self) -> &Tagger {
        &self.tagger
    }
}

/// Up to `n` frames of one shot: the keyframe first, then samples spread evenly over the
/// shot's samples.
fn pick<'f, 'a>(
    keyframe: Option<&'f FrameRef<'a>>,
    samples: &[&'f FrameRef<'a>],
    n: usize,
) -> Vec<&'f FrameRef<'a>> {
    let mut out: Vec<&FrameRef<'a>> = keyframe.into_iter().collect();
    let room = n.max(1).saturating_sub(out.len());
    if room > 0 && !samples.is_empty() {
        let take = room.min(samples.len());
        for i in 0..take {
            // Evenly spaced indices, centred in their stretch.
            let at = (2 * i + 1) * samples.len() / (2 * take);
            out.push(samples[at.min(samples.len() - 1)]);
        }
    }
    out
}

/// A shot's objects from the detections on each of its frames: per class, the most boxes on
/// one frame (with that frame's boxes) and the best score; most numerous first.
fn count_objects(per_frame: &[Vec<Detection>], model: &str) -> Vec<VisualObject> {
    let mut best: BTreeMap<&str, (u32, f32, Vec<BoundingBox>)> = BTreeMap::new();
    for dets in per_frame {
        let mut on_frame: BTreeMap<&str, Vec<&Detection>> = BTreeMap::new();
        for d in dets {
            on_frame.entry(d.label).or_default().push(d);
        }
        for (label, ds) in on_frame {
            let entry = best.entry(label).or_insert((0, 0.0, Vec::new()));
            let top = ds.iter().map(|d| d.score).fold(0.0f32, f32::max);
            entry.1 = entry.1.max(top);
            if ds.len() as u32 > entry.0 {
                entry.0 = ds.len() as u32;
                entry.2 = ds.iter().map(|d| d.bbox).collect();
            }
        }
    }
    let mut out: Vec<VisualObject> = best
        .into_iter()
        .map(|(label, (count, score, boxes))| VisualObject {
            label: label.to_owned(),
            count,
            score,
            boxes,
            model: model.to_owned(),
        })
        .collect();
    out.sort_by(|a, b| b.count.cmp(&a.count).then(b.score.total_cmp(&a.score)));
    out
}

/// The description of a shot from its tags, objects and the shot list's descriptors.
pub fn describe_shot(tags: &[Tag], objects: &[VisualObject], descriptors: &[String]) -> String {
    let mut parts: Vec<String> = Vec::new();
    // "sand bar" is no other word than "sandbar".
    let squash = |s: &str| -> String {
        s.chars()
            .filter(|c| c.is_alphanumeric())
            .flat_map(char::to_lowercase)
            .collect()
    };
    let labels: Vec<String> = tags
        .iter()
        .map(|t| match t.synonyms.first() {
            Some(s)
                if !squash(&t.label).contains(&squash(s))
                    && !squash(s).contains(&squash(&t.label)) =>
            {
                format!("{} ({s})", t.label)
            }
            _ => t.label.clone(),
        })
        .collect();
    if !labels.is_empty() {
        parts.push(labels.join(", "));
    }
    let mut broader: Vec<&str> = Vec::new();
    for t in tags {
        for b in &t.hypernyms {
            if !broader.contains(&b.as_str()) {
                broader.push(b);
            }
        }
    }
    if !broader.is_empty() {
        parts.push(broader.join(", "));
    }
    if !objects.is_empty() {
        let listed: Vec<String> = objects
            .iter()
            .map(|o| match o.count {
                1 => o.label.clone(),
                n => format!("{} ({n})", o.label),
            })
            .collect();
        parts.push(listed.join(", "));
    }
    if !descriptors.is_empty() {
        parts.push(descriptors.join(", "));
    }
    parts.join("; ")
}

impl Extractor for VisualStage {
    fn info(&self) -> ExtractorInfo {
        self.info.clone()
    }

    fn needs(&self) -> Needs {
        Needs::keyframes_and_samples()
    }

    fn extract(&self, ctx: &ExtractContext<'_>) -> Result<StageData, ExtractError> {
        (ctx.progress)(0.0);
        let shots = ctx
            .sidecar
            .shots
            .as_ref()
            .map(|s| s.data.shots.as_slice())
            .unwrap_or(&[]);
        let mut samples: BTreeMap<u32, Vec<&FrameRef<'_>>> = BTreeMap::new();
        for s in ctx.samples {
            samples.entry(s.shot_index).or_default().push(s);
        }
        // Frames per shot, in shot order; every frame in one list for batching.
        let mut shot_frames: Vec<(u32, std::ops::Range<usize>)> = Vec::new();
        let mut frames: Vec<FrameRef<'_>> = Vec::new();
        let mut keyframes: Vec<&FrameRef<'_>> = ctx.keyframes.iter().collect();
        keyframes.sort_by_key(|k| k.shot_index);
        for k in keyframes {
            let picked = pick(
                Some(k),
                samples.get(&k.shot_index).map(Vec::as_slice).unwrap_or(&[]),
                self.config.frames_per_shot,
            );
            let start = frames.len();
            frames.extend(picked.into_iter().copied());
            shot_frames.push((k.shot_index, start..frames.len()));
        }
        let probabilities =
            self.tagger
                .probabilities(&frames)
                .map_err(|e| ExtractError::Model {
                    model: self.tagger.model_id().name.clone(),
                    reason: e.to_string(),
                })?;
        (ctx.progress)(60.0);
        let mut detections = match &self.detector {
            Some(d) => d.detect(&frames).map_err(|e| ExtractError::Model {
                model: d.model_id().name.clone(),
                reason: e.to_string(),
            })?,
            None => Vec::new(),
        };
        // Boxes in the pixels of the shot's keyframe (the first frame of each shot's range;
        // samples are smaller).
        for (_, range) in &shot_frames {
            let Some(key_width) = frames.get(range.start).map(|k| k.width as f32) else {
                continue;
            };
            for i in range.clone().skip(1) {
                let scale = key_width / frames[i].width.max(1) as f32;
                if let Some(dets) = detections.get_mut(i) {
                    for d in dets {
                        d.bbox.x *= scale;
                        d.bbox.y *= scale;
                        d.bbox.w *= scale;
                        d.bbox.h *= scale;
                    }
                }
            }
        }
        (ctx.progress)(95.0);
        let detector_name = self
            .detector
            .as_ref()
            .map(|d| d.model_id().name.clone())
            .unwrap_or_default();
        let mut out = Vec::new();
        for (shot_index, range) in shot_frames {
            let objects =
                count_objects(detections.get(range.clone()).unwrap_or(&[]), &detector_name);
            let n = range.len().max(1) as f32;
            let mut mean = vec![0.0f32; self.tagger.num_classes()];
            for p in &probabilities[range] {
                for (m, v) in mean.iter_mut().zip(p) {
                    *m += v / n;
                }
            }
            let tags = self.tagger.tags(&mean);
            if tags.is_empty() && objects.is_empty() {
                continue;
            }
            let shot = shots.iter().find(|s| s.index == shot_index);
            let descriptors = shot.map(|s| s.descriptors.as_slice()).unwrap_or(&[]);
            let (start_s, end_s) = shot.map_or_else(
                || {
                    let t = ctx
                        .keyframes
                        .iter()
                        .find(|k| k.shot_index == shot_index)
                        .map_or(0.0, |k| k.time_s);
                    (t, t)
                },
                |s| (s.start_s, s.end_s.max(s.start_s)),
            );
            out.push(ShotVisual {
                shot_index,
                start_s,
                end_s,
                description: describe_shot(&tags, &objects, descriptors),
                tags: tags
                    .into_iter()
                    .map(|t| VisualTag {
                        label: t.label,
                        synonyms: t.synonyms,
                        broader: t.hypernyms,
                        score: t.score,
                        model: self.tagger.model_id().name.clone(),
                    })
                    .collect(),
                objects,
            });
        }
        (ctx.progress)(100.0);
        Ok(StageData::Visual(Visual { shots: out }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(shot_index: u32, time_s: f64) -> FrameRef<'static> {
        FrameRef {
            shot_index,
            time_s,
            width: 1,
            height: 1,
            rgb: &[0, 0, 0],
        }
    }

    #[test]
    fn picks_the_keyframe_then_samples_spread_over_the_shot() {
        let k = frame(0, 0.5);
        let s: Vec<FrameRef<'static>> = (0..6).map(|i| frame(0, 1.0 + i as f64)).collect();
        let refs: Vec<&FrameRef<'_>> = s.iter().collect();
        let times = |v: Vec<&FrameRef<'_>>| v.iter().map(|f| f.time_s).collect::<Vec<_>>();
        assert_eq!(times(pick(Some(&k), &refs, 3)), vec![0.5, 2.0, 5.0]);
        assert_eq!(times(pick(Some(&k), &refs, 1)), vec![0.5]);
        assert_eq!(times(pick(Some(&k), &refs[..1], 3)), vec![0.5, 1.0]);
        assert_eq!(times(pick(Some(&k), &[], 3)), vec![0.5]);
    }

    #[test]
    fn description_names_labels_broader_words_and_colours() {
        let tag = |label: &str, synonyms: &[&str], hypernyms: &[&str]| Tag {
            label: label.into(),
            synonyms: synonyms.iter().map(|s| (*s).into()).collect(),
            hypernyms: hypernyms.iter().map(|s| (*s).into()).collect(),
            score: 0.5,
            class: 0,
        };
        let person = |n| Detection {
            label: "person",
            score: 0.7,
            bbox: BoundingBox {
                x: n as f32,
                y: 0.0,
                w: 1.0,
                h: 1.0,
            },
        };
        let dog = Detection {
            label: "dog",
            score: 0.9,
            bbox: BoundingBox {
                x: 0.0,
                y: 0.0,
                w: 2.0,
                h: 2.0,
            },
        };
        // Two people on one frame, one on another, a dog on the first: 2 persons, 1 dog.
        let objects = count_objects(
            &[vec![person(0), dog.clone()], vec![person(1), person(2)]],
            "ssd",
        );
        let counts: Vec<(&str, u32, usize)> = objects
            .iter()
            .map(|o| (o.label.as_str(), o.count, o.boxes.len()))
            .collect();
        assert_eq!(counts, vec![("person", 2, 2), ("dog", 1, 1)]);
        assert_eq!(objects[1].score, 0.9);
        let d = describe_shot(
            &[
                tag("seashore", &["coast", "seacoast"], &["beach", "sea"]),
                tag("sandbar", &["sand bar"], &["beach"]),
                tag("lakeside", &["lakeshore"], &["lake"]),
            ],
            &objects,
            &["bright".into(), "blue".into()],
        );
        assert_eq!(
            d,
            "seashore (coast), sandbar, lakeside (lakeshore); beach, sea, lake; person (2), dog; bright, blue"
        );
        assert_eq!(describe_shot(&[], &[], &[]), "");
    }
}
