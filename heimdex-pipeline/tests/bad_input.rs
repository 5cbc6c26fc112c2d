//! Damaged and non-media input: always an error of the right kind, never a panic or a hang.

mod common;

use std::io::Cursor;

use common::*;
use heimdex_pipeline::{AnalyzeOptions, PipelineError};

fn analyze_bytes(bytes: Vec<u8>) -> Result<heimdex_pipeline::Analysis, PipelineError> {
    heimdex_pipeline::analyze(
        Box::new(Cursor::new(bytes)),
        &AnalyzeOptions::default(),
        &mut |_| {},
    )
}

fn probe_bytes(bytes: Vec<u8>) -> Result<heimdex_core::sidecar::Technical, PipelineError> {
    heimdex_pipeline::probe(Box::new(Cursor::new(bytes)))
}

/// Deterministic pseudo-random bytes (xorshift).
fn noise(n: usize) -> Vec<u8> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// A 4 s 320x240 H.264 MP4 (with AAC audio), optionally with the moov atom first.
fn clip(dir: &std::path::Path, faststart: bool) -> Vec<u8> {
    let out = dir.join(if faststart { "fast.mp4" } else { "plain.mp4" });
    let mut args = vec![
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=320x240:rate=25:duration=4",
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=440:duration=4",
        "-c:v",
        "libx264",
        "-preset",
        "veryfast",
        "-pix_fmt",
        "yuv420p",
        "-c:a",
        "aac",
        "-shortest",
    ];
    if faststart {
        args.extend(["-movflags", "+faststart"]);
    }
    let path = out.to_string_lossy().into_owned();
    args.push(&path);
    ffmpeg(&args);
    std::fs::read(&out).unwrap()
}

#[test]
fn zero_byte_file_is_not_media() {
    let e = analyze_bytes(Vec::new()).unwrap_err();
    assert!(matches!(e, PipelineError::NotMedia { .. }), "{e:?}");
    assert_eq!(
        e.to_string(),
        "not a media file: the file is empty (0 bytes)"
    );
    assert!(matches!(
        probe_bytes(Vec::new()),
        Err(PipelineError::NotMedia { .. })
    ));
}

#[test]
fn random_bytes_are_not_media() {
    for n in [7, 4096, 1 << 20] {
        let e = analyze_bytes(noise(n)).unwrap_err();
        assert!(
            matches!(e, PipelineError::NotMedia { .. }),
            "{n} bytes: {e:?}"
        );
        assert!(e.to_string().starts_with("not a media file: "), "{e}");
        assert!(matches!(
            probe_bytes(noise(n)),
            Err(PipelineError::NotMedia { .. })
        ));
    }
}

#[test]
fn text_is_not_media() {
    let text = b"Quarterly report\n\nRevenue grew.\n".repeat(100);
    let e = analyze_bytes(text).unwrap_err();
    assert!(matches!(e, PipelineError::NotMedia { .. }), "{e:?}");
}

#[test]
fn truncated_mp4_with_moov_at_end_is_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let full = clip(dir.path(), false);
    assert!(analyze_bytes(full.clone()).is_ok());
    let cut = full[..full.len() * 2 / 5].to_vec();
    let e = analyze_bytes(cut.clone()).unwrap_err();
    assert!(matches!(e, PipelineError::Corrupt { .. }), "{e:?}");
    assert!(e.to_string().starts_with("truncated or corrupt: "), "{e}");
    assert!(matches!(
        probe_bytes(cut),
        Err(PipelineError::Corrupt { .. })
    ));
}

#[test]
fn truncated_faststart_mp4_is_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let full = clip(dir.path(), true);
    let ok = analyze_bytes(full.clone()).unwrap();
    assert_eq!(ok.shots.frames_analyzed, 100);
    let cut = full[..full.len() * 2 / 5].to_vec();
    // Probing only needs the header, which is intact.
    assert!(probe_bytes(cut.clone()).is_ok());
    let e = analyze_bytes(cut).unwrap_err();
    let PipelineError::Corrupt { reason } = &e else {
        panic!("expected Corrupt, got {e:?}")
    };
    assert!(reason.starts_with("decoded "), "{reason}");
    assert!(reason.contains("of 4.0 s"), "{reason}");
}

#[test]
fn audio_only_file_is_analysed_for_its_audio() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("tone.wav");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=440:duration=1",
        out.to_str().unwrap(),
    ]);
    let a = analyze_path(&out).unwrap();
    assert!(a.shots.shots.is_empty() && a.audio.is_some());
    let t = heimdex_pipeline::probe(open(&out)).unwrap();
    assert_eq!(t.audio().and_then(|a| a.sample_rate), Some(44_100));
}

#[test]
fn reader_errors_are_io_errors() {
    struct Failing(Cursor<Vec<u8>>);
    impl std::io::Read for Failing {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            if self.0.position() >= 64 {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::ConnectionReset,
                    "network went away",
                ));
            }
            let n = buf.len().min(64 - self.0.position() as usize);
            std::io::Read::read(&mut self.0, &mut buf[..n])
        }
    }
    impl std::io::Seek for Failing {
        fn seek(&mut self, pos: std::io::SeekFrom) -> std::io::Result<u64> {
            self.0.seek(pos)
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let full = clip(dir.path(), false);
    let e = heimdex_pipeline::analyze(
        Box::new(Failing(Cursor::new(full))),
        &AnalyzeOptions::default(),
        &mut |_| {},
    )
    .unwrap_err();
    assert!(matches!(e, PipelineError::Io(_)), "{e:?}");
    assert!(e.to_string().contains("network went away"), "{e}");
}

/// A small 64x48 MJPEG AVI whose every JPEG frame, and with `headers` also the AVI main
/// header and stream format, claim `width`×`height`: what a crafted or damaged file looks
/// like to the decoder.
fn claiming_size(dir: &std::path::Path, width: u16, height: u16, headers: bool) -> Vec<u8> {
    let out = dir.join("small.avi");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc=size=64x48:rate=5:duration=1",
        "-c:v",
        "mjpeg",
        out.to_str().unwrap(),
    ]);
    let mut b = std::fs::read(&out).unwrap();
    let find = |b: &[u8], pat: &[u8], from: usize| {
        b[from..]
            .windows(pat.len())
            .position(|w| w == pat)
            .map(|p| p + from)
    };
    let (w, h) = (u32::from(width), u32::from(height));
    if headers {
        let avih = find(&b, b"avih", 0).expect("avih") + 8;
        b[avih + 32..avih + 36].copy_from_slice(&w.to_le_bytes());
        b[avih + 36..avih + 40].copy_from_slice(&h.to_le_bytes());
        let strf = find(&b, b"strf", 0).expect("strf") + 8;
        b[strf + 4..strf + 8].copy_from_slice(&w.to_le_bytes());
        b[strf + 8..strf + 12].copy_from_slice(&h.to_le_bytes());
    }
    let mut at = 0;
    let mut frames = 0;
    while let Some(sof) = find(&b, &[0xFF, 0xC0], at) {
        b[sof + 5..sof + 7].copy_from_slice(&height.to_be_bytes());
        b[sof + 7..sof + 9].copy_from_slice(&width.to_be_bytes());
        at = sof + 2;
        frames += 1;
    }
    assert!(frames >= 5, "patched {frames} frames");
    b
}

#[test]
fn huge_dimensions_are_refused_before_decoding() {
    let dir = tempfile::tempdir().unwrap();
    // 16000x16000 is a valid size to FFmpeg (256 Mpx: ~384 MB a frame) but over our limit.
    let bytes = claiming_size(dir.path(), 16_000, 16_000, true);
    let t = probe_bytes(bytes.clone()).expect("the probe reads headers only");
    assert_eq!(
        t.video().map(|v| (v.width, v.height)),
        Some((Some(16_000), Some(16_000)))
    );
    let e = analyze_bytes(bytes).unwrap_err();
    match &e {
        PipelineError::Unsupported { reason } => {
            assert!(reason.contains("16000x16000"), "{reason}");
            assert!(reason.contains("exceeds the limit"), "{reason}");
        }
        other => panic!("expected Unsupported, got {other:?}"),
    }
    assert_eq!(e.kind(), heimdex_core::ErrorKind::BadMedia);
    // Headers that say 64x48 and frames that claim 16000x16000: refused by the decoder's
    // pixel guard frame by frame (nothing that size is allocated): bad media, not a crash.
    let e = analyze_bytes(claiming_size(dir.path(), 16_000, 16_000, false)).unwrap_err();
    assert_eq!(e.kind(), heimdex_core::ErrorKind::BadMedia, "{e:?}");
}
