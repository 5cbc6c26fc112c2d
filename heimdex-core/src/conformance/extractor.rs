//! Conformance suite for the [`Extractor`] trait.
//!
//! An extractor is a pure function of its context, so the suite builds synthetic contexts
//! (a 10 s asset with four shots, gradient keyframes and a 440 Hz tone) and checks the
//! contract: stable identity, deterministic output, times inside the media, sane progress,
//! and no panic when an input it needs is missing (a typed error or an empty result instead).
//! Extractors whose models need real content (speech, faces) are additionally tested on real
//! media by their own tests; this suite checks what every stage must do.

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

/// Run every scenario; panics naming the failing one.
pub fn run_all(extractor: &dyn Extractor) {
    identity_is_stable(extractor);
    output_is_deterministic_and_time_coded(extractor);
    missing_inputs_do_not_panic(extractor);
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

fn frames<'a>(sidecar: &Sidecar, pixels: &'a [Vec<u8>]) -> Vec<FrameRef<'a>> {
    let shots = sidecar
        .shots
        .as_ref()
        .map(|s| s.data.shots.clone())
        .unwrap_or_default();
    pixels
        .iter()
        .zip(shots)
        .map(|(rgb, shot)| FrameRef {
            shot_index: shot.index,
            time_s: shot.keyframe.map(|k| k.time_s).unwrap_or(shot.start_s),
            width: W,
            height: H,
            rgb,
        })
        .collect()
}

/// Run the extractor on the full synthetic context, recording progress.
fn run(
    extractor: &dyn Extractor,
    keyframes: bool,
    audio: bool,
) -> (Result<StageData, ExtractError>, Vec<f32>) {
    let sidecar = synthetic_sidecar();
    let pixels = synthetic_keyframes();
    let frames = if keyframes {
        frames(&sidecar, &pixels)
    } else {
        Vec::new()
    };
    let samples = synthetic_audio();
    let progress = Mutex::new(Vec::new());
    let report = |p: f32| {
        if let Ok(mut v) = progress.lock() {
            v.push(p);
        }
    };
    let ctx = ExtractContext::new(
        &sidecar,
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

/// The same context gives the same output; every time range lies inside the media.
pub fn output_is_deterministic_and_time_coded(extractor: &dyn Extractor) {
    let needs = extractor.needs();
    let (first, progress) = run(extractor, needs.keyframes, needs.audio_16k);
    let first = first.unwrap_or_else(|e| {
        panic!("output_is_deterministic_and_time_coded: failed on a complete context: {e}")
    });
    let (second, _) = run(extractor, needs.keyframes, needs.audio_16k);
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

/// Without the keyframes or audio it asked for, the stage returns an error or an empty
/// result; it never panics.
pub fn missing_inputs_do_not_panic(extractor: &dyn Extractor) {
    let outcome = catch_unwind(AssertUnwindSafe(|| run(extractor, false, false).0));
    assert!(
        outcome.is_ok(),
        "missing_inputs_do_not_panic: extractor panicked without keyframes/audio"
    );
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
        StageData::Embeddings(e) => e.vectors.iter().map(|v| (v.start_s, v.end_s)).collect(),
        StageData::Custom(c) => c.spans.iter().map(|s| (s.start_s, s.end_s)).collect(),
    }
}
