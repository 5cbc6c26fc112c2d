//! Visual-tag cost per frame (EfficientNet-Lite0 on ONNX Runtime, preprocessing included) for
//! batches of 1, 8 and 16 frames.
//!
//! Run with `cargo bench -p heimdex-pipeline --features tags --bench tags` after `make models`
//! and `make samples`. `HEIMDEX_TAGS_THREADS` sets ONNX Runtime's intra-op threads (default:
//! the tagger's, available cores up to 4). Frames are 16 real 1280×720 frames of
//! `bigbuckbunny.mp4` and 640×272 frames of `bikes.mp4`, decoded by the ffmpeg CLI.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use heimdex_core::extractor::FrameRef;
use heimdex_pipeline::ml::tags::{Tagger, TaggerConfig};

const RUNS: usize = 3;

/// `count` frames of `video`, `step` seconds apart from `start`, as packed RGB24.
fn frames(video: &Path, w: u32, h: u32, start: f64, step: f64, count: usize) -> Vec<Vec<u8>> {
    (0..count)
        .map(|i| {
            let t = format!("{:.3}", start + step * i as f64);
            let out = Command::new("ffmpeg")
                .args(["-hide_banner", "-v", "error", "-ss", &t, "-i"])
                .arg(video)
                .args(["-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"])
                .output()
                .expect("ffmpeg CLI");
            assert!(out.status.success() && out.stdout.len() == (w * h * 3) as usize);
            out.stdout
        })
        .collect()
}

fn main() {
    let mut config = TaggerConfig::default();
    if !config.model.exists() {
        eprintln!(
            "tags bench skipped: {} missing (run `make models`)",
            config.model.display()
        );
        return;
    }
    let samples = std::env::var_os("HEIMDEX_SAMPLES").map(std::path::PathBuf::from);
    let Some(samples) = samples.filter(|s| s.join("bikes.mp4").exists()) else {
        eprintln!("tags bench skipped: HEIMDEX_SAMPLES has no bikes.mp4 (run `make samples`)");
        return;
    };
    if let Some(t) = std::env::var("HEIMDEX_TAGS_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        config.threads = t;
    }
    let sets = [
        (
            "1280x720",
            1280,
            720,
            frames(&samples.join("bigbuckbunny.mp4"), 1280, 720, 0.2, 0.3, 16),
        ),
        (
            "640x272",
            640,
            272,
            frames(&samples.join("bikes.mp4"), 640, 272, 0.3, 0.6, 16),
        ),
    ];
    for batch in [1usize, 8, 16] {
        config.batch_size = batch;
        let tagger = Tagger::load(config.clone()).expect("load the tagger");
        for (name, w, h, rgb) in &sets {
            let refs: Vec<FrameRef<'_>> = rgb
                .iter()
                .enumerate()
                .map(|(i, px)| FrameRef {
                    shot_index: i as u32,
                    time_s: 0.0,
                    width: *w,
                    height: *h,
                    rgb: px,
                })
                .collect();
            // Warm-up: the first run allocates ONNX Runtime's buffers.
            std::hint::black_box(tagger.classify(&refs).expect("classify"));
            let t = Instant::now();
            for _ in 0..RUNS {
                std::hint::black_box(tagger.classify(&refs).expect("classify"));
            }
            let ms = t.elapsed().as_secs_f64() * 1000.0 / (RUNS * refs.len()) as f64;
            println!(
                "tags {name}: batch {batch}, {} threads: {ms:.1} ms/frame",
                config.threads
            );
        }
    }
}
