//! Ingest benchmark: `analyze()` (one decode pass + shots + keyframes + 16 kHz audio) against
//! a bare `ffmpeg -v error -i CLIP -f null -` decode of the same file.
//!
//! Run with `HEIMDEX_SAMPLES=/path/to/samples cargo bench -p heimdex-pipeline --bench ingest`.
//! Clips: every `*.mp4`/`*.mkv`/`*.mov`/`*.webm` in `$HEIMDEX_SAMPLES` (if set) plus a 60 s
//! 1280x720 H.264 + AAC clip generated with the ffmpeg CLI into a temporary directory.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const RUNS: usize = 3;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn time_analyze(path: &Path) -> (Duration, f64, usize) {
    let mut times = Vec::new();
    let mut media_s = 0.0;
    let mut shots = 0;
    for _ in 0..RUNS {
        let file = std::fs::File::open(path).expect("open clip");
        let t = Instant::now();
        let a = heimdex_pipeline::analyze(
            Box::new(file),
            &heimdex_pipeline::AnalyzeOptions::default(),
            &mut |_| {},
        )
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        times.push(t.elapsed());
        media_s = a.technical.duration_s.unwrap_or(0.0);
        shots = a.shots.shots.len();
    }
    (median(times), media_s, shots)
}

fn time_ffmpeg_null(path: &Path) -> Duration {
    let mut times = Vec::new();
    for _ in 0..RUNS {
        let t = Instant::now();
        let status = Command::new("ffmpeg")
            .args(["-v", "error", "-i"])
            .arg(path)
            .args(["-f", "null", "-"])
            .status()
            .expect("ffmpeg CLI");
        assert!(status.success());
        times.push(t.elapsed());
    }
    median(times)
}

fn main() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut clips: Vec<PathBuf> = Vec::new();
    match std::env::var_os("HEIMDEX_SAMPLES") {
        Some(dir) => {
            let mut found: Vec<PathBuf> = std::fs::read_dir(&dir)
                .expect("read HEIMDEX_SAMPLES")
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| {
                    matches!(
                        p.extension().and_then(|e| e.to_str()),
                        Some("mp4" | "mkv" | "mov" | "webm")
                    )
                })
                .collect();
            found.sort();
            clips.extend(found);
        }
        None => println!("HEIMDEX_SAMPLES not set: benchmarking the generated clip only"),
    }
    let generated = tmp.path().join("generated-60s-720p.mp4");
    eprintln!("generating {} ...", generated.display());
    let status = Command::new("ffmpeg")
        .args([
            "-v",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=1280x720:rate=25:duration=60",
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:sample_rate=48000:duration=60",
            "-c:v",
            "libx264",
            "-preset",
            "veryfast",
            "-pix_fmt",
            "yuv420p",
            "-c:a",
            "aac",
            "-ac",
            "2",
            "-shortest",
        ])
        .arg(&generated)
        .status()
        .expect("ffmpeg CLI");
    assert!(status.success(), "generating the 60 s clip failed");
    clips.push(generated);

    println!(
        "{:<26} {:>8} {:>6} {:>10} {:>14} {:>7}",
        "clip", "media s", "shots", "analyze s", "ffmpeg-null s", "ratio"
    );
    for clip in &clips {
        let (analyze, media_s, shots) = time_analyze(clip);
        let null = time_ffmpeg_null(clip);
        println!(
            "{:<26} {:>8.2} {:>6} {:>10.3} {:>14.3} {:>7.2}",
            clip.file_name().and_then(|n| n.to_str()).unwrap_or("?"),
            media_s,
            shots,
            analyze.as_secs_f64(),
            null.as_secs_f64(),
            analyze.as_secs_f64() / null.as_secs_f64().max(1e-9),
        );
    }
    println!("(median of {RUNS} runs each; ratio = analyze / ffmpeg-null)");
}
