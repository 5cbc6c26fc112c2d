//! Conformance suite for the [`Extractor`] trait.
//!
//! An extractor is a pure function of its context, so the suite runs it on a [`Content`]: a
//! 10 s asset with four shots, one keyframe per shot and 16 kHz audio. [`Content::synthetic`]
//! has gradient keyframes and a 440 Hz tone, which is enough for stages that find something
//! in any picture (embeddings, custom labels); a stage that looks for speech, text or faces
//! must be given real content ([`Content::with_keyframes`], [`Content::with_audio`]) through
//! [`run_all_on`], because the suite fails when a stage's output is empty: determinism and
//! time codes checked on an empty output would prove nothing.
//!
//! Scenarios: [`identity_is_stable`], [`output_is_deterministic_and_time_coded`] (non-empty,
//! identical twice, every range inside the media, progress within 0..=100) and
//! [`missing_inputs_are_typed`] (without the keyframes or audio it needs, the stage returns
//! [`ExtractError::MissingInput`] or an empty result, and never panics).

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Mutex;

use crate::extractor::{ExtractContext, ExtractError, Extractor, FrameRef, StageData};
use crate::sidecar::{
    AudioSummary, Keyframe, Shot, Shots, Sidecar, SidecarAsset, StageBlock, StreamInfo, StreamKind,
    Technical,
};

const DURATION_S: f64 = 10.0;
const W: u32 = 64;
const H: u32 = 36;

/// Run every scenario on [`Content::synthetic`]; panics naming the failing one.
pub fn run_all(extractor: &dyn Extractor) {
    run_all_on(extractor, &Content::synthetic());
}

/// Run every scenario on `content`; panics naming the failing one.
pub fn run_all_on(extractor: &dyn Extractor, content: &Content) {
    identity_is_stable(extractor);
    output_is_deterministic_and_time_coded(extractor, content);
    missing_inputs_are_typed(extractor, content);
}

/// What the suite feeds a stage: a sidecar, one RGB keyframe per shot (`width`×`height`)
/// and 16 kHz mono audio, all of one 10 s asset with four 2.5 s shots.
#[derive(Debug, Clone)]
pub struct Content {
    /// The sidecar (technical, shots with keyframes, audio summary; add blocks a stage reads).
    pub sidecar: Sidecar,
    /// RGB keyframes, one per shot (at most four), `width * height * 3` bytes each.
    pub keyframes: Vec<Vec<u8>>,
    /// Keyframe width in pixels.
    pub width: u32,
    /// Keyframe height in pixels.
    pub height: u32,
    /// 16 kHz mono samples, 10 s.
    pub audio: Vec<f32>,
}

impl Content {
    /// [`synthetic_sidecar`], [`synthetic_keyframes`] (64×36) and [`synthetic_audio`].
    pub fn synthetic() -> Self {
        Self {
            sidecar: synthetic_sidecar(),
            keyframes: synthetic_keyframes(),
            width: W,
            height: H,
            audio: synthetic_audio(),
        }
    }

    /// Replace the keyframes (one per shot, at most four; `width * height * 3` bytes each)
    /// and record their size in the sidecar.
    #[must_use]
    pub fn with_keyframes(mut self, width: u32, height: u32, keyframes: Vec<Vec<u8>>) -> Self {
        assert!(keyframes.len() <= 4, "the synthetic asset has four shots");
        for k in &keyframes {
            assert_eq!(k.len(), (width * height * 3) as usize, "keyframe size");
        }
        if let Some(shots) = &mut self.sidecar.shots {
            for shot in &mut shots.data.shots {
                if let Some(k) = &mut shot.keyframe {
                    k.width = width;
                    k.height = height;
                }
            }
        }
        if let Some(tech) = &mut self.sidecar.technical {
            for s in &mut tech.data.streams {
                if s.kind == StreamKind::Video {
                    s.width = Some(width);
                    s.height = Some(height);
                }
            }
        }
        self.keyframes = keyframes;
        self.width = width;
        self.height = height;
        self
    }

    /// Replace the audio with `samples` (16 kHz mono), cut or padded with silence to 10 s.
    #[must_use]
    pub fn with_audio(mut self, mut samples: Vec<f32>) -> Self {
        samples.resize(DURATION_S as usize * 16_000, 0.0);
        self.audio = samples;
        self
    }
}

/// A synthetic sidecar: 10 s, 64x36 video + audio, four 2.5 s shots with keyframes.
pub fn synthetic_sidecar() -> Sidecar {
    let mut s = Sidecar::new(SidecarAsset {
        id: "conformance".into(),
        tenant: "default".into(),
        source: "conformance".into(),
        key: "synthetic.mp4".into(),
        version: "1".into(),
        size: 1,
    });
    let info = |name: &str| crate::sidecar::ExtractorInfo {
        name: name.into(),
        version: "1".into(),
        model: None,
        params: None,
    };
    let stream = |kind, codec: &str| StreamInfo {
        index: 0,
        kind,
        codec: codec.into(),
        profile: None,
        duration_s: Some(DURATION_S),
        bitrate: None,
        width: (kind == StreamKind::Video).then_some(W),
        height: (kind == StreamKind::Video).then_some(H),
        rotation: None,
        fps: (kind == StreamKind::Video).then_some(25.0),
        frames: None,
        pix_fmt: None,
        sample_rate: (kind == StreamKind::Audio).then_some(16_000),
        channels: (kind == StreamKind::Audio).then_some(1),
        language: None,
    };
    s.technical = Some(StageBlock::new(
        info("synthetic.probe"),
        0,
        Technical {
            container: "mp4".into(),
            duration_s: Some(DURATION_S),
            streams: vec![
                stream(StreamKind::Video, "h264"),
                stream(StreamKind::Audio, "aac"),
            ],
            ..Technical::default()
        },
    ));
    let shots = (0..4u32)
        .map(|i| Shot {
            index: i,
            start_s: f64::from(i) * 2.5,
            end_s: f64::from(i + 1) * 2.5,
            start_frame: u64::from(i) * 62,
            end_frame: u64::from(i + 1) * 62,
            keyframe: Some(Keyframe {
                time_s: f64::from(i) * 2.5 + 0.5,
                frame: u64::from(i) * 62 + 12,
                thumbnail: format!("thumbs/conformance/shot-{i:05}.jpg"),
                width: W,
                height: H,
            }),
            descriptors: vec![],
        })
        .collect();
    s.shots = Some(StageBlock::new(
        info("synthetic.shots"),
        0,
        Shots {
            method: "synthetic".into(),
            threshold: 27.0,
            frames_analyzed: 250,
            shots,
        },
    ));
    s.audio = Some(StageBlock::new(
        info("synthetic.audio"),
        0,
        AudioSummary {
            sample_rate: 16_000,
            channels: 1,
            duration_s: DURATION_S,
            rms_dbfs: Some(-9.0),
        },
    ));
    s
}

/// Four RGB gradient keyframes, one per synthetic shot, each tinted differently.
pub fn synthetic_keyframes() -> Vec<Vec<u8>> {
    (0..4u32)
        .map(|i| {
            let mut rgb = Vec::with_capacity((W * H * 3) as usize);
            for y in 0..H {
                for x in 0..W {
                    rgb.push(((x * 4 + i * 60) % 256) as u8);
                    rgb.push(((y * 7 + i * 40) % 256) as u8);
                    rgb.push((i * 80 % 256) as u8);
                }
            }
            rgb
        })
        .collect()
}

/// 10 s of a 440 Hz tone at 16 kHz.
pub fn synthetic_audio() -> Vec<f32> {
    (0..(DURATION_S as usize * 16_000))
        .map(|n| 0.3 * (2.0 * std::f32::consts::PI * 440.0 * n as f32 / 16_000.0).sin())
        .collect()
}

fn frames(content: &Content) -> Vec<FrameRef<'_>> {
    let shots = content
        .sidecar
        .shots
        .as_ref()
        .map(|s| s.data.shots.clone())
        .unwrap_or_default();
    content
        .keyframes
        .iter()
        .zip(shots)
        .map(|(rgb, shot)| FrameRef {
            shot_index: shot.index,
            time_s: shot.keyframe.map(|k| k.time_s).unwrap_or(shot.start_s),
            width: content.width,
            height: content.height,
            rgb,
        })
        .collect()
}

/// Run the extractor on `content`, with or without its keyframes and audio, recording
/// progress.
fn run(
    extractor: &dyn Extractor,
    content: &Content,
    keyframes: bool,
    audio: bool,
) -> (Result<StageData, ExtractError>, Vec<f32>) {
    let sidecar = &content.sidecar;
    let frames = if keyframes {
        frames(content)
    } else {
        Vec::new()
    };
    let samples = &content.audio;
    let progress = Mutex::new(Vec::new());
    let report = |p: f32| {
        if let Ok(mut v) = progress.lock() {
            v.push(p);
        }
    };
    let ctx = ExtractContext::new(
        sidecar,
        &frames,
        audio.then_some(samples.as_slice()),
        &report,
    );
    let out = extractor.extract(&ctx);
    let seen = progress.into_inner().unwrap_or_default();
    (out, seen)
}

/// `info()` is stable and names the stage.
pub fn identity_is_stable(extractor: &dyn Extractor) {
    let a = extractor.info();
    let b = extractor.info();
    assert_eq!(a, b, "identity_is_stable: info() changed between calls");
    assert!(!a.name.trim().is_empty(), "identity_is_stable: empty name");
    assert!(
        !a.version.trim().is_empty(),
        "identity_is_stable: empty version"
    );
    if let Some(m) = &a.model {
        assert!(
            m.sha256.len() == 64 && m.sha256.chars().all(|c| c.is_ascii_hexdigit()),
            "identity_is_stable: model sha256 must be 64 hex digits, got {:?}",
            m.sha256
        );
    }
}

/// On a complete context the stage finds something; the same context gives the same output;
/// every time range lies inside the media.
pub fn output_is_deterministic_and_time_coded(extractor: &dyn Extractor, content: &Content) {
    let needs = extractor.needs();
    let (first, progress) = run(extractor, content, needs.keyframes, needs.audio_16k);
    let first = first.unwrap_or_else(|e| {
        panic!("output_is_deterministic_and_time_coded: failed on a complete context: {e}")
    });
    assert!(
        !time_ranges(&first).is_empty(),
        "output_is_deterministic_and_time_coded: the stage found nothing in the content, so \
         determinism and time codes cannot be checked; run the suite with content this stage \
         recognises (conformance::extractor::run_all_on): {first:?}"
    );
    let (second, _) = run(extractor, content, needs.keyframes, needs.audio_16k);
    let second =
        second.unwrap_or_else(|e| panic!("output_is_deterministic: second run failed: {e}"));
    assert_eq!(first, second, "output_is_deterministic: two runs differ");
    assert!(
        progress.iter().all(|p| (0.0..=100.0).contains(p)),
        "progress outside 0..=100: {progress:?}"
    );
    for (start, end) in time_ranges(&first) {
        assert!(
            start.is_finite()
                && end.is_finite()
                && 0.0 <= start
                && start <= end
                && end <= DURATION_S + 1e-6,
            "output_is_time_coded: range {start}..{end} outside 0..{DURATION_S}"
        );
    }
}

/// Without the keyframes or audio it asked for, the stage returns
/// [`ExtractError::MissingInput`] or an empty result, and never panics. A stage that needs
/// neither must give the same output as with them.
pub fn missing_inputs_are_typed(extractor: &dyn Extractor, content: &Content) {
    let s = "missing_inputs_are_typed";
    let needs = extractor.needs();
    let outcome = catch_unwind(AssertUnwindSafe(|| run(extractor, content, false, false).0));
    let Ok(result) = outcome else {
        panic!("{s}: extractor panicked without keyframes/audio");
    };
    if needs.keyframes || needs.audio_16k {
        match result {
            Err(ExtractError::MissingInput { .. }) => {}
            Ok(data) => assert!(
                time_ranges(&data).is_empty(),
                "{s}: without the keyframes/audio it needs the stage must find nothing, got \
                 {data:?}"
            ),
            Err(e) => panic!("{s}: expected MissingInput or an empty result, got error {e:?}"),
        }
    } else {
        let (full, _) = run(extractor, content, true, true);
        let (full, result) = (format!("{full:?}"), format!("{result:?}"));
        assert_eq!(
            result, full,
            "{s}: a stage that needs no keyframes or audio must not depend on them"
        );
    }
}

fn time_ranges(data: &StageData) -> Vec<(f64, f64)> {
    match data {
        StageData::Transcript(t) => t
            .segments
            .iter()
            .map(|s| (s.start_s, s.end_s))
            .chain(
                t.segments
                    .iter()
                    .flat_map(|s| s.words.iter().map(|w| (w.start_s, w.end_s))),
            )
            .collect(),
        StageData::Ocr(o) => o.lines.iter().map(|l| (l.start_s, l.end_s)).collect(),
        StageData::Faces(f) => f.detections.iter().map(|d| (d.time_s, d.time_s)).collect(),
        StageData::Visual(v) => v.shots.iter().map(|s| (s.start_s, s.end_s)).collect(),
        StageData::Embeddings(e) => e.vectors.iter().map(|v| (v.start_s, v.end_s)).collect(),
        StageData::Custom(c) => c.spans.iter().map(|s| (s.start_s, s.end_s)).collect(),
    }
}

/// The suite's own checks can fail: stages that break the contract are caught.
#[cfg(test)]
mod tests {
    use super::*;
    use crate::extractor::Needs;
    use crate::sidecar::{CustomBlock, ExtractorInfo, TextSpan};

    /// A keyframe stage with a configurable flaw.
    #[derive(Debug)]
    enum Flaw {
        None,
        FindsNothing,
        UntypedErrorWithoutInput,
        OutputWithoutInput,
    }

    impl Extractor for Flaw {
        fn info(&self) -> ExtractorInfo {
            ExtractorInfo {
                name: "test.flaw".into(),
                version: "1".into(),
                model: None,
                params: None,
            }
        }
        fn needs(&self) -> Needs {
            Needs::keyframes()
        }
        fn extract(&self, ctx: &ExtractContext<'_>) -> Result<StageData, ExtractError> {
            let span = |start_s: f64| TextSpan {
                start_s,
                end_s: start_s + 1.0,
                text: "x".into(),
                tags: vec![],
            };
            let spans = match (self, ctx.keyframes.is_empty()) {
                (Self::FindsNothing, _) => vec![],
                (Self::UntypedErrorWithoutInput, true) => {
                    return Err(ExtractError::Failed("no frames".into()));
                }
                (Self::OutputWithoutInput, true) => vec![span(0.0)],
                (_, true) => {
                    return Err(ExtractError::MissingInput {
                        what: "keyframes".into(),
                    });
                }
                (_, false) => ctx.keyframes.iter().map(|k| span(k.time_s)).collect(),
            };
            Ok(StageData::Custom(CustomBlock {
                data: serde_json::Value::Null,
                spans,
            }))
        }
    }

    #[test]
    fn a_conforming_stage_passes() {
        run_all(&Flaw::None);
    }

    #[test]
    #[should_panic(expected = "found nothing in the content")]
    fn an_empty_output_fails() {
        run_all(&Flaw::FindsNothing);
    }

    #[test]
    #[should_panic(expected = "expected MissingInput or an empty result")]
    fn an_untyped_error_for_a_missing_input_fails() {
        run_all(&Flaw::UntypedErrorWithoutInput);
    }

    #[test]
    #[should_panic(expected = "must find nothing")]
    fn output_without_the_needed_input_fails() {
        run_all(&Flaw::OutputWithoutInput);
    }
}
