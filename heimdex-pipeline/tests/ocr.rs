//! OCR stage (PP-OCRv4) on real models: text burned into a generated video at known times,
//! frames without text, and the extractor conformance suite.
//!
//! Needs the default models (`make models`); without them the tests fail and say so.
#![cfg(feature = "ocr")]

use std::path::Path;
use std::time::Instant;

use heimdex_core::extractor::{ExtractContext, Extractor, FrameRef, StageData};
use heimdex_core::sidecar::{Ocr, Sidecar};
use heimdex_pipeline::ml::ocr::{OcrConfig, PaddleOcr};
use heimdex_pipeline::{Analysis, AnalyzeOptions};

mod common;

const FONT: &str = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";

/// The OCR stage with the default models, or a panic telling how to get them.
fn ocr() -> PaddleOcr {
    let config = OcrConfig::default();
    for p in [&config.det_path, &config.rec_path] {
        assert!(
            p.exists(),
            "OCR model {} is missing: run `make models` (or python3 scripts/fetch-models.py --only ocr onnxruntime)",
            p.display()
        );
    }
    PaddleOcr::new(config)
        .unwrap_or_else(|e| panic!("loading the OCR models failed: {e} (run `make models`)"))
}

/// Levenshtein distance over characters divided by the longer length.
fn normalized_edit_distance(a: &str, b: &str) -> f64 {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(ca != cb))
                .min(prev[j + 1] + 1)
                .min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()] as f64 / a.len().max(b.len()).max(1) as f64
}

fn matches(found: &str, expected: &str) -> bool {
    normalized_edit_distance(&found.to_lowercase(), &expected.to_lowercase()) <= 0.2
}

/// A 6 s 1280×720 clip: "HEIMDEX DEMO" on navy for 3 s, a hard cut, then "SUNSET MOUNTAINS"
/// on orange for 3 s.
fn text_clip(dir: &Path) -> std::path::PathBuf {
    assert!(
        Path::new(FONT).exists(),
        "{FONT} missing: install fonts-dejavu-core"
    );
    let out = dir.join("ocr-text.mp4");
    let draw = |text: &str, color: &str, y: &str| {
        format!(
            "drawtext=fontfile={FONT}:text='{text}':fontsize=72:fontcolor={color}:x=(w-tw)/2:y={y}"
        )
    };
    let graph = format!(
        "[0:v]{},format=yuv420p,setsar=1[a];[1:v]{},format=yuv420p,setsar=1[b];[a][b]concat=n=2:v=1:a=0[out]",
        draw("HEIMDEX DEMO", "white", "(h-th)/2"),
        draw("SUNSET MOUNTAINS", "black", "h-200"),
    );
    common::ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "color=c=navy:s=1280x720:r=25:d=3",
        "-f",
        "lavfi",
        "-i",
        "color=c=0xd2691e:s=1280x720:r=25:d=3",
        "-filter_complex",
        &graph,
        "-map",
        "[out]",
        "-c:v",
        "libx264",
        "-preset",
        "veryfast",
        "-pix_fmt",
        "yuv420p",
        out.to_str().expect("utf-8 temp path"),
    ]);
    out
}

fn frames_of(analysis: &Analysis) -> Vec<FrameRef<'_>> {
    analysis.frames()
}

fn run(ocr: &PaddleOcr, sidecar: &Sidecar, frames: &[FrameRef<'_>]) -> Ocr {
    run_with_samples(ocr, sidecar, frames, &[])
}

fn run_with_samples(
    ocr: &PaddleOcr,
    sidecar: &Sidecar,
    frames: &[FrameRef<'_>],
    samples: &[FrameRef<'_>],
) -> Ocr {
    let progress = |_: f32| {};
    let ctx = ExtractContext::new(sidecar, frames, None, &progress).with_samples(samples);
    match ocr.extract(&ctx).expect("OCR extract") {
        StageData::Ocr(o) => o,
        other => panic!("expected OCR data, got {other:?}"),
    }
}

#[test]
fn burned_in_text_is_found_with_shot_time_ranges() {
    let ocr = ocr();
    let dir = tempfile::tempdir().expect("temp dir");
    let clip = text_clip(dir.path());
    let analysis =
        heimdex_pipeline::analyze(common::open(&clip), &AnalyzeOptions::default(), &mut |_| {})
            .expect("analyze the generated clip");
    let shots = &analysis.shots.shots;
    assert_eq!(
        shots.len(),
        2,
        "the hard cut at 3 s gives two shots: {shots:?}"
    );
    assert!(
        (shots[1].start_s - 3.0).abs() < 0.1,
        "cut at {}",
        shots[1].start_s
    );
    let sidecar = common::sidecar_of(&analysis);
    let frames = frames_of(&analysis);

    let started = Instant::now();
    let result = run(&ocr, &sidecar, &frames);
    let elapsed = started.elapsed();
    println!(
        "ocr: {} keyframes ({}x{}) in {:.0} ms = {:.0} ms/keyframe",
        frames.len(),
        frames[0].width,
        frames[0].height,
        elapsed.as_secs_f64() * 1000.0,
        elapsed.as_secs_f64() * 1000.0 / frames.len() as f64
    );
    for l in &result.lines {
        println!(
            "  {:.2}-{:.2} {:?} conf {:.3} bbox {:?}",
            l.start_s, l.end_s, l.text, l.confidence, l.bbox
        );
    }

    let expect = [
        ("HEIMDEX DEMO", 0.0, 3.0, 1),
        ("SUNSET MOUNTAINS", 3.0, 6.0, 0),
    ];
    for (text, start, end, other) in expect {
        let line = result
            .lines
            .iter()
            .find(|l| matches(&l.text, text))
            .unwrap_or_else(|| panic!("{text:?} not found in {:?}", result.lines));
        assert!(
            (line.start_s - start).abs() <= 0.5 && (line.end_s - end).abs() <= 0.5,
            "{text:?} at {}..{}, expected {start}..{end}",
            line.start_s,
            line.end_s
        );
        assert!(line.confidence >= 0.5 && line.confidence <= 1.0, "{line:?}");
        // The box lies inside the keyframe and around the text (72 px font, centred /
        // 200 px from the bottom).
        let kf = &frames[0];
        let b = &line.bbox;
        assert!(
            b.x >= 0.0
                && b.y >= 0.0
                && b.x + b.w <= kf.width as f32
                && b.y + b.h <= kf.height as f32,
            "{b:?} outside the {}x{} keyframe",
            kf.width,
            kf.height
        );
        assert!(
            b.h > 40.0 && b.h < 120.0 && b.w > 300.0,
            "{text:?}: implausible box {b:?}"
        );
        let centre_x = b.x + b.w / 2.0;
        assert!(
            (centre_x - 640.0).abs() < 60.0,
            "{text:?} not centred: {b:?}"
        );
        // The other shot's text is not reported for this shot.
        let (other_text, ..) = expect[other];
        assert!(
            !result
                .lines
                .iter()
                .any(|l| matches(&l.text, other_text) && (l.start_s - start).abs() <= 0.5),
            "{other_text:?} reported during {text:?}"
        );
    }
    let demo = result
        .lines
        .iter()
        .find(|l| matches(&l.text, "HEIMDEX DEMO"))
        .expect("found above");
    // The recogniser emits no space between these upper-case words; the decoder puts it
    // back from the gap, so both words are searchable.
    assert_eq!(demo.text, "HEIMDEX DEMO");
    assert!(
        (demo.bbox.y + demo.bbox.h / 2.0 - 360.0).abs() < 40.0,
        "{demo:?}"
    );

    // The same context gives the same output.
    assert_eq!(run(&ocr, &sidecar, &frames), result);
}

/// A 9 s single-shot 1280×720 clip over `background` (a lavfi source) with "ZEPHYR
/// OBSERVATORY" burned in from 5 s to 7 s only.
fn caption_clip(dir: &Path, name: &str, background: &str) -> std::path::PathBuf {
    let out = dir.join(name);
    let filter = format!(
        "drawtext=fontfile={FONT}:text='ZEPHYR OBSERVATORY':fontsize=56:fontcolor=white:\
         box=1:boxcolor=black@0.6:boxborderw=12:x=(w-tw)/2:y=h-160:enable='between(t,5,7)',\
         format=yuv420p"
    );
    common::ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        background,
        "-t",
        "9",
        "-vf",
        &filter,
        "-c:v",
        "libx264",
        "-preset",
        "veryfast",
        out.to_str().expect("utf-8 temp path"),
    ]);
    out
}

/// The case: text that appears after the keyframe and goes before the shot ends is
/// found with its own time range, on a still background (sampled only where the picture
/// changed: three frames) and on one in constant motion (sampled every 0.5 s).
#[test]
fn text_appearing_mid_shot_is_found_with_its_own_time_range() {
    let ocr = ocr();
    let dir = tempfile::tempdir().expect("temp dir");
    let opts = AnalyzeOptions {
        sample_frames: true,
        ..AnalyzeOptions::default()
    };
    for (name, background, max_samples) in [
        ("still.mp4", "color=c=0x2a4d69:s=1280x720:r=25", 4),
        (
            "moving.mp4",
            "gradients=s=1280x720:r=25:speed=0.02:c0=0x2a4d69:c1=0xc08040:n=2",
            18,
        ),
    ] {
        let clip = caption_clip(dir.path(), name, background);
        let analysis = heimdex_pipeline::analyze(common::open(&clip), &opts, &mut |_| {})
            .expect("analyze the generated clip");
        assert_eq!(analysis.shots.shots.len(), 1, "{name}: one shot");
        let sidecar = common::sidecar_of(&analysis);
        let frames = frames_of(&analysis);
        let samples = analysis.sample_frames();
        let times: Vec<String> = samples.iter().map(|f| format!("{:.2}", f.time_s)).collect();
        println!("{name}: {} samples at {times:?}", samples.len());
        assert!(
            !samples.is_empty() && samples.len() <= max_samples,
            "{name}: {} samples ({times:?}), expected 1..={max_samples}",
            samples.len()
        );
        for f in &samples {
            assert_eq!((f.width, f.height), (960, 540), "{name}: samples at 960 px");
        }

        // The keyframe (0.5 s) alone cannot see it: the old behaviour.
        let keyframes_only = run(&ocr, &sidecar, &frames);
        assert!(
            !keyframes_only
                .lines
                .iter()
                .any(|l| matches(&l.text, "ZEPHYR OBSERVATORY")),
            "{name}: {:?}",
            keyframes_only.lines
        );

        let started = Instant::now();
        let result = run_with_samples(&ocr, &sidecar, &frames, &samples);
        println!(
            "{name}: OCR of {} frames in {:.0} ms: {:?}",
            frames.len() + samples.len(),
            started.elapsed().as_secs_f64() * 1000.0,
            result.lines
        );
        let found: Vec<_> = result
            .lines
            .iter()
            .filter(|l| matches(&l.text, "ZEPHYR OBSERVATORY"))
            .collect();
        assert_eq!(
            found.len(),
            1,
            "{name}: one line for one appearance: {:?}",
            result.lines
        );
        let line = found[0];
        assert!(
            (line.start_s - 5.0).abs() <= 0.5 && (line.end_s - 7.0).abs() <= 0.5,
            "{name}: seen {:.2}..{:.2}, on screen 5..7",
            line.start_s,
            line.end_s
        );
        assert!(
            line.bbox.y > 500.0,
            "{name}: the caption is near the bottom: {:?}",
            line.bbox
        );
    }
}

/// A smooth RGB gradient without any text.
fn gradient(w: u32, h: u32) -> Vec<u8> {
    let mut rgb = Vec::with_capacity((w * h * 3) as usize);
    for y in 0..h {
        for x in 0..w {
            rgb.push((x * 255 / w) as u8);
            rgb.push((y * 255 / h) as u8);
            rgb.push(128);
        }
    }
    rgb
}

#[test]
fn frames_without_text_give_no_lines() {
    let ocr = ocr();
    let (w, h) = (1280u32, 720u32);
    let grad = gradient(w, h);
    assert!(ocr.read_text(w, h, &grad).expect("read_text").is_empty());
    let plain = vec![40u8; (w * h * 3) as usize];
    assert!(ocr.read_text(w, h, &plain).expect("read_text").is_empty());

    // Through the extractor, with the conformance suite's sidecar (four shots).
    let sidecar = heimdex_core::conformance::extractor::synthetic_sidecar();
    let pixels = [grad.clone(), plain.clone(), grad, plain];
    let frames: Vec<FrameRef<'_>> = pixels
        .iter()
        .enumerate()
        .map(|(i, rgb)| FrameRef {
            shot_index: i as u32,
            time_s: i as f64 * 2.5 + 0.5,
            width: w,
            height: h,
            rgb,
        })
        .collect();
    let result = run(&ocr, &sidecar, &frames);
    assert!(result.lines.is_empty(), "{:?}", result.lines);
}

/// A 640x360 RGB frame with `text` in yellow at (40, 40), rendered by FFmpeg.
fn rendered_frame(text: &str) -> Vec<u8> {
    let filter =
        format!("drawtext=fontfile={FONT}:text='{text}':fontsize=40:fontcolor=yellow:x=40:y=40");
    let out = std::process::Command::new("ffmpeg")
        .args([
            "-hide_banner",
            "-v",
            "error",
            "-f",
            "lavfi",
            "-i",
            "color=c=black:s=640x360:d=1",
        ])
        .args([
            "-vf",
            &filter,
            "-frames:v",
            "1",
            "-f",
            "rawvideo",
            "-pix_fmt",
            "rgb24",
            "-",
        ])
        .output()
        .expect("ffmpeg CLI");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

#[test]
fn read_text_on_a_rendered_frame() {
    let ocr = ocr();
    let (w, h) = (640u32, 360u32);
    let frame = rendered_frame("Heimdex 2024");
    let lines = ocr.read_text(w, h, &frame).expect("read_text");
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(matches(&lines[0].text, "Heimdex 2024"), "{lines:?}");
    let b = &lines[0].bbox;
    assert!(b.x < 50.0 && b.y < 50.0 && b.x + b.w > 250.0, "{b:?}");
    // A malformed buffer is an error, not a panic.
    assert!(ocr.read_text(w, h, &frame[1..]).is_err());
}

#[test]
fn missing_model_names_the_setting() {
    let mut config = OcrConfig::default();
    config.det_path = "/nonexistent/det.onnx".into();
    let err = PaddleOcr::new(config).expect_err("missing model");
    let msg = err.to_string();
    assert!(
        msg.contains("make models") && msg.contains("OcrConfig::det_path"),
        "{msg}"
    );
}

/// The suite on keyframes with text (the synthetic gradients have none, so the stage would
/// find nothing to check).
#[test]
fn conformance() {
    let frames = vec![
        rendered_frame("Heimdex 2024"),
        rendered_frame("HARBOR NEWS"),
    ];
    let content =
        heimdex_core::conformance::extractor::Content::synthetic().with_keyframes(640, 360, frames);
    heimdex_core::conformance::extractor::run_all_on(&ocr(), &content);
}

#[test]
fn dictionary_from_model_metadata_matches_the_file() {
    let with_file = ocr();
    let mut config = OcrConfig::default();
    config.dict_path = None;
    let from_meta = PaddleOcr::new(config).expect("dictionary from the model metadata");
    let (w, h) = (640u32, 360u32);
    let filter = format!(
        "drawtext=fontfile={FONT}:text='OPEN ARCHIVE':fontsize=48:fontcolor=white:x=60:y=150"
    );
    let out = std::process::Command::new("ffmpeg")
        .args([
            "-hide_banner",
            "-v",
            "error",
            "-f",
            "lavfi",
            "-i",
            "color=c=0x225522:s=640x360:d=1",
        ])
        .args([
            "-vf",
            &filter,
            "-frames:v",
            "1",
            "-f",
            "rawvideo",
            "-pix_fmt",
            "rgb24",
            "-",
        ])
        .output()
        .expect("ffmpeg CLI");
    assert!(out.status.success());
    let a = with_file.read_text(w, h, &out.stdout).expect("read_text");
    let b = from_meta.read_text(w, h, &out.stdout).expect("read_text");
    assert_eq!(a, b);
    assert!(a.iter().any(|l| matches(&l.text, "OPEN ARCHIVE")), "{a:?}");
    assert_eq!(with_file.info().model, from_meta.info().model);
}
