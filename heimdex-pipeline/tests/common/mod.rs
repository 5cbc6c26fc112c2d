//! Helpers shared by the integration tests: real FFmpeg only, no mocks.
#![allow(dead_code)]

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use heimdex_core::sidecar::{ExtractorInfo, Keyframe, Sidecar, SidecarAsset, StageBlock};
use heimdex_pipeline::{Analysis, AnalyzeOptions, PipelineError};

/// `$HEIMDEX_SAMPLES`. Panics with the fix when it is unset or incomplete: `make test` and CI
/// always fetch the samples first, so a missing folder is a setup error, not a reason to pass.
pub fn samples_dir() -> PathBuf {
    let dir = match std::env::var_os("HEIMDEX_SAMPLES") {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ => {
            panic!("HEIMDEX_SAMPLES is not set: run `make samples` and set HEIMDEX_SAMPLES=samples")
        }
    };
    assert!(
        dir.join("bikes.mp4").exists(),
        "HEIMDEX_SAMPLES={} has no bikes.mp4: run `make samples`",
        dir.display()
    );
    dir
}

/// Run the ffmpeg CLI (quiet, overwrite), panicking with its stderr on failure.
pub fn ffmpeg(args: &[&str]) {
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-v", "error", "-y"])
        .args(args)
        .output()
        .expect("ffmpeg CLI must be installed");
    assert!(
        out.status.success(),
        "ffmpeg {:?} failed: {}",
        args,
        String::from_utf8_lossy(&out.stderr)
    );
}

/// ffprobe's JSON for `path`.
pub fn ffprobe(path: &Path) -> serde_json::Value {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-print_format",
            "json",
            "-show_format",
            "-show_streams",
        ])
        .arg(path)
        .output()
        .expect("ffprobe must be installed");
    assert!(out.status.success());
    serde_json::from_slice(&out.stdout).expect("ffprobe JSON")
}

pub fn open(path: &Path) -> Box<std::fs::File> {
    Box::new(std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
}

pub fn analyze_path(path: &Path) -> Result<Analysis, PipelineError> {
    heimdex_pipeline::analyze(open(path), &AnalyzeOptions::default(), &mut |_| {})
}

/// Frame indices at which shots 1.. start.
pub fn cut_frames(a: &Analysis) -> Vec<u64> {
    a.shots
        .shots
        .iter()
        .skip(1)
        .map(|s| s.start_frame)
        .collect()
}

/// Every expected cut is found within ±`tol` frames, and no other cut is reported.
pub fn assert_cuts(found: &[u64], expected: &[u64], tol: u64) {
    assert_eq!(
        found.len(),
        expected.len(),
        "found cuts {found:?}, expected {expected:?}"
    );
    for (f, e) in found.iter().zip(expected) {
        assert!(
            f.abs_diff(*e) <= tol,
            "cut at frame {f}, expected {e} (±{tol}); all found {found:?}"
        );
    }
}

/// Structural invariants of any successful analysis.
pub fn assert_well_formed(a: &Analysis) {
    let shots = &a.shots.shots;
    assert!(!shots.is_empty());
    assert_eq!(shots[0].start_s, 0.0);
    assert_eq!(shots[0].start_frame, 0);
    for w in shots.windows(2) {
        assert_eq!(w[0].end_s, w[1].start_s, "shots must be contiguous");
        assert_eq!(w[0].end_frame, w[1].start_frame);
        assert!(w[0].start_s < w[0].end_s);
    }
    assert_eq!(
        shots.last().map(|s| s.end_frame),
        Some(a.shots.frames_analyzed)
    );
    assert_eq!(a.keyframes.len(), shots.len());
    for (i, (k, s)) in a.keyframes.iter().zip(shots).enumerate() {
        assert_eq!(k.shot_index as usize, i);
        assert!(
            k.frame >= s.start_frame && k.frame < s.end_frame,
            "keyframe inside its shot"
        );
        assert!(k.time_s >= s.start_s && k.time_s < s.end_s);
        assert!(s.keyframe.is_none());
        assert_eq!(k.rgb.len(), (k.width * k.height * 3) as usize);
        assert!(k.width.max(k.height) <= 1280);
        assert!(k.thumb_width <= 320 && k.thumb_width > 0);
        let img = image::load_from_memory_with_format(&k.thumbnail_jpeg, image::ImageFormat::Jpeg)
            .expect("thumbnail is a valid JPEG");
        assert_eq!((img.width(), img.height()), (k.thumb_width, k.thumb_height));
        assert_eq!(k.descriptors, s.descriptors);
    }
}

/// A `Read + Seek` wrapper that counts bytes read and seeks.
pub struct Counting<R> {
    pub inner: R,
    pub bytes: Arc<AtomicU64>,
    pub seeks: Arc<AtomicU64>,
}

impl<R> Counting<R> {
    pub fn new(inner: R) -> (Self, Arc<AtomicU64>, Arc<AtomicU64>) {
        let bytes = Arc::new(AtomicU64::new(0));
        let seeks = Arc::new(AtomicU64::new(0));
        (
            Self {
                inner,
                bytes: bytes.clone(),
                seeks: seeks.clone(),
            },
            bytes,
            seeks,
        )
    }
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.bytes.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

impl<R: Seek> Seek for Counting<R> {
    fn seek(&mut self, pos: SeekFrom) -> std::io::Result<u64> {
        self.seeks.fetch_add(1, Ordering::Relaxed);
        self.inner.seek(pos)
    }
}

/// The sidecar the worker builds from an analysis (technical metadata + shots with keyframes),
/// for running stages on it.
pub fn sidecar_of(analysis: &Analysis) -> Sidecar {
    let mut sidecar = Sidecar::new(SidecarAsset {
        id: "ocr-test".into(),
        tenant: "default".into(),
        source: "test".into(),
        key: "ocr-text.mp4".into(),
        version: "1".into(),
        size: 1,
    });
    let info = |name: &str| ExtractorInfo {
        name: name.into(),
        version: "1".into(),
        model: None,
        params: None,
    };
    sidecar.technical = Some(StageBlock::new(
        info("ffmpeg.probe"),
        0,
        analysis.technical.clone(),
    ));
    let mut shots = analysis.shots.clone();
    for kf in &analysis.keyframes {
        if let Some(shot) = shots.shots.get_mut(kf.shot_index as usize) {
            shot.keyframe = Some(Keyframe {
                time_s: kf.time_s,
                frame: kf.frame,
                thumbnail: format!("thumbs/{}.jpg", kf.shot_index),
                width: kf.thumb_width,
                height: kf.thumb_height,
            });
        }
    }
    sidecar.shots = Some(StageBlock::new(info("shots.content-hsv"), 0, shots));
    sidecar
}
