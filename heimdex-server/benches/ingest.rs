//! End-to-end ingest benchmark: the whole `heimdex index` path (ranged reads, probe, single
//! decode, shots, keyframes, thumbnails, audio, sidecar, store, index) per clip, against
//! `ffmpeg -v error -i CLIP -f null -` (a plain decode of every stream) on the same machine.
//!
//! `cargo bench -p heimdex-server --bench ingest` (release build). Clips: `$HEIMDEX_SAMPLES`
//! plus a 60 s 1280x720 H.264 + AAC clip generated with ffmpeg's lavfi sources.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use heimdex_server::engine::{Engine, EngineConfig, SilentProgress};

const RUNS: usize = 3;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ffmpeg_null(clip: &Path) -> Duration {
    let t = Instant::now();
    let status = Command::new("ffmpeg")
        .args(["-v", "error", "-nostdin", "-i"])
        .arg(clip)
        .args(["-f", "null", "-"])
        .status()
        .expect("run ffmpeg");
    assert!(status.success(), "ffmpeg failed on {}", clip.display());
    t.elapsed()
}

async fn ingest(clip: &Path) -> (Duration, f64) {
    let home = tempfile::tempdir().expect("home");
    let t = Instant::now();
    let engine = Engine::open_embedded(home.path(), EngineConfig::default())
        .await
        .expect("engine");
    let src = engine.add_local_path(clip).await.expect("source");
    engine.scan(&src.id).await.expect("scan");
    let report = engine
        .run_until_idle(Arc::new(SilentProgress))
        .await
        .expect("run");
    let elapsed = t.elapsed();
    assert_eq!(
        report.indexed,
        1,
        "{} did not index: {report:?}",
        clip.display()
    );
    let duration = engine
        .sidecar_for_path(clip)
        .await
        .expect("sidecar")
        .duration_s()
        .unwrap_or(0.0);
    (elapsed, duration)
}

fn generate_long_clip(dir: &Path) -> PathBuf {
    let out = dir.join("generated-60s-720p.mp4");
    let status = Command::new("ffmpeg")
        .args([
            "-v",
            "error",
            "-nostdin",
            "-y",
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=1280x720:rate=25:duration=60",
        ])
        .args([
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:sample_rate=48000:duration=60",
        ])
        .args([
            "-c:v",
            "libx264",
            "-preset",
            "veryfast",
            "-pix_fmt",
            "yuv420p",
            "-c:a",
            "aac",
            "-shortest",
        ])
        .arg(&out)
        .status()
        .expect("ffmpeg generate");
    assert!(status.success());
    out
}

#[tokio::main]
async fn main() {
    let tmp = tempfile::tempdir().expect("tmp");
    let mut clips = Vec::new();
    if let Some(dir) = std::env::var_os("HEIMDEX_SAMPLES").map(PathBuf::from) {
        for name in ["bikes.mp4", "bigbuckbunny.mp4", "carphone_pristine.mp4"] {
            if dir.join(name).exists() {
                clips.push(dir.join(name));
            }
        }
    } else {
        eprintln!("HEIMDEX_SAMPLES not set: benchmarking the generated clip only");
    }
    clips.push(generate_long_clip(tmp.path()));

    println!(
        "{:<26} {:>8} {:>10} {:>12} {:>7} {:>9}",
        "clip", "media s", "ingest s", "ffmpeg-null s", "ratio", "x realtime"
    );
    for clip in &clips {
        let mut ing = Vec::new();
        let mut media_s = 0.0;
        for _ in 0..RUNS {
            let (d, m) = ingest(clip).await;
            ing.push(d);
            media_s = m;
        }
        let base = median((0..RUNS).map(|_| ffmpeg_null(clip)).collect());
        let ing = median(ing);
        println!(
            "{:<26} {:>8.2} {:>10.3} {:>12.3} {:>7.2} {:>9.1}",
            clip.file_name().and_then(|n| n.to_str()).unwrap_or("?"),
            media_s,
            ing.as_secs_f64(),
            base.as_secs_f64(),
            ing.as_secs_f64() / base.as_secs_f64(),
            media_s / ing.as_secs_f64()
        );
    }
    println!(
        "ratio = heimdex ingest time / ffmpeg -f null decode time (median of {RUNS}); lower is better"
    );
}
