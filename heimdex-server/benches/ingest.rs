//! End-to-end ingest benchmark (`cargo bench -p heimdex-server --bench ingest`, release).
//!
//! Part 1, media stages only: the whole `heimdex index` path (ranged reads, probe, single
//! decode, shots, keyframes, thumbnails, audio, sidecar, store, index) per clip, against
//! `ffmpeg -v error -i CLIP -f null -` (a plain decode of every stream) on the same machine.
//!
//! Part 2, the full default pipeline (speech, OCR, faces, visual tags, text embeddings; needs
//! `make models`): wall time per stage (from the sidecar's stage blocks) and the real-time
//! factor, media seconds per wall second, of the pipeline and of speech recognition alone.
//!
//! Clips: `$HEIMDEX_SAMPLES` plus a generated 60 s 1280x720 clip with speech (espeak-ng),
//! on-screen text and cuts every 10 s.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use heimdex_core::sidecar::Sidecar;
use heimdex_server::engine::{Engine, EngineConfig, SilentProgress};
use heimdex_server::stages::{StageSettings, default_stages};

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

async fn ingest(clip: &Path, ml: bool) -> (Duration, Sidecar) {
    let home = tempfile::tempdir().expect("home");
    let t = Instant::now();
    let cfg = EngineConfig::default()
        .with_sampling_from_env()
        .expect("HEIMDEX_SAMPLE_INTERVAL_S");
    let mut engine = Engine::open_embedded(home.path(), cfg, None)
        .await
        .expect("engine");
    if ml {
        let stages = default_stages(&StageSettings::default());
        assert!(
            stages.notes.is_empty(),
            "run `make models` first: {:?}",
            stages.notes
        );
        for e in stages.extractors {
            engine = engine.with_extractor(e);
        }
    }
    let src = engine
        .add_local_path(&heimdex_core::TenantId::default_tenant(), clip)
        .await
        .expect("source");
    engine
        .scan(&heimdex_core::TenantId::default_tenant(), &src.id)
        .await
        .expect("scan");
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
    let sidecar = engine
        .sidecar_for_path(&heimdex_core::TenantId::default_tenant(), clip)
        .await
        .expect("sidecar");
    (elapsed, sidecar)
}

fn run(cmd: &mut Command) {
    let status = cmd.status().expect("spawn");
    assert!(status.success(), "{cmd:?}");
}

/// 60 s, 1280x720, six 10 s shots, each with a caption and a spoken sentence.
fn generate_long_clip(dir: &Path) -> PathBuf {
    let sentences = [
        "The harbor opens at dawn and the fishing boats head out to sea.",
        "Our reporter visits the old lighthouse on the northern cliffs.",
        "Local chefs prepare fresh lobster and mussels for the evening market.",
        "A storm is expected to reach the coast later this week.",
        "Children learn to sail in small boats near the beach.",
        "The festival ends with fireworks over the water at midnight.",
    ];
    let colors = [
        "navy",
        "darkgreen",
        "maroon",
        "darkslategray",
        "indigo",
        "black",
    ];
    let font = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";
    let mut inputs = Vec::new();
    let mut filters = String::new();
    for (i, s) in sentences.iter().enumerate() {
        let wav = dir.join(format!("s{i}.wav"));
        run(Command::new("espeak-ng").arg("-w").arg(&wav).arg(s));
        inputs.push(wav);
        filters.push_str(&format!(
            "[{i}:v]drawtext=fontfile={font}:text='SCENE {}':fontsize=64:fontcolor=white:x=80:y=80[v{i}];[{}:a]adelay={}:all=1[a{i}];",
            i + 1,
            i + 6,
            i * 10_000 + 1000
        ));
    }
    let mut cmd = Command::new("ffmpeg");
    cmd.args(["-v", "error", "-nostdin", "-y"]);
    for c in colors {
        cmd.args(["-f", "lavfi", "-i", &format!("testsrc2=size=1280x720:rate=25:duration=10,hue=s=0,format=yuv420p,colorchannelmixer=rr=0.5:gg=0.5:bb=0.5,drawbox=c={c}@0.5:t=fill")]);
    }
    for w in &inputs {
        cmd.arg("-i").arg(w);
    }
    let vcat: String = (0..6).map(|i| format!("[v{i}]")).collect();
    let amix: String = (0..6).map(|i| format!("[a{i}]")).collect();
    filters.push_str(&format!(
        "{vcat}concat=n=6:v=1:a=0[v];{amix}amix=inputs=6:duration=longest:normalize=0,apad=whole_dur=60[a]"
    ));
    let out = dir.join("generated-60s-720p-speech.mp4");
    cmd.args([
        "-filter_complex",
        &filters,
        "-map",
        "[v]",
        "-map",
        "[a]",
        "-t",
        "60",
    ])
    .args([
        "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p", "-c:a", "aac",
    ])
    .arg(&out);
    run(&mut cmd);
    out
}

fn stage_ms(s: &Sidecar) -> Vec<(String, u64)> {
    let mut v = Vec::new();
    if let Some(b) = &s.shots {
        v.push(("decode+shots".to_owned(), b.elapsed_ms));
    }
    if let Some(b) = &s.transcript {
        v.push(("asr".to_owned(), b.elapsed_ms));
    }
    if let Some(b) = &s.ocr {
        v.push(("ocr".to_owned(), b.elapsed_ms));
    }
    if let Some(b) = &s.faces {
        v.push(("faces".to_owned(), b.elapsed_ms));
    }
    if let Some(b) = &s.visual {
        v.push(("visual".to_owned(), b.elapsed_ms));
    }
    for (name, b) in &s.embeddings {
        v.push((name.clone(), b.elapsed_ms));
    }
    v
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
    let name = |c: &Path| {
        c.file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("?")
            .to_owned()
    };

    println!("## Media stages only vs ffmpeg -f null (median of {RUNS})");
    println!(
        "{:<32} {:>8} {:>10} {:>13} {:>7}",
        "clip", "media s", "ingest s", "ffmpeg-null s", "ratio"
    );
    for clip in &clips {
        let mut ing = Vec::new();
        let mut media_s = 0.0;
        for _ in 0..RUNS {
            let (d, s) = ingest(clip, false).await;
            ing.push(d);
            media_s = s.duration_s().unwrap_or(0.0);
        }
        let base = median((0..RUNS).map(|_| ffmpeg_null(clip)).collect());
        let ing = median(ing);
        println!(
            "{:<32} {:>8.2} {:>10.3} {:>13.3} {:>7.2}",
            name(clip),
            media_s,
            ing.as_secs_f64(),
            base.as_secs_f64(),
            ing.as_secs_f64() / base.as_secs_f64()
        );
    }

    println!(
        "\n## Full default pipeline (speech, OCR, faces, visual tags, text embeddings), one run each; mid-shot sampling {}",
        match std::env::var("HEIMDEX_SAMPLE_INTERVAL_S").ok().as_deref() {
            Some("0") => "off (HEIMDEX_SAMPLE_INTERVAL_S=0)",
            _ => "on",
        }
    );
    println!(
        "{:<32} {:>8} {:>9} {:>9} {:>9}  stage wall ms",
        "clip", "media s", "wall s", "RTF", "ASR RTF"
    );
    let (mut media_total, mut wall_total, mut asr_total) = (0.0, 0.0, 0.0);
    for clip in &clips {
        let (d, s) = ingest(clip, true).await;
        let media_s = s.duration_s().unwrap_or(0.0);
        let asr_s = s
            .transcript
            .as_ref()
            .map_or(0.0, |b| b.elapsed_ms as f64 / 1000.0);
        media_total += media_s;
        wall_total += d.as_secs_f64();
        asr_total += asr_s;
        let stages: Vec<String> = stage_ms(&s)
            .into_iter()
            .map(|(n, ms)| format!("{n}={ms}"))
            .collect();
        println!(
            "{:<32} {:>8.2} {:>9.2} {:>8.1}x {:>8.1}x  {}",
            name(clip),
            media_s,
            d.as_secs_f64(),
            media_s / d.as_secs_f64(),
            if asr_s > 0.0 {
                media_s / asr_s
            } else {
                f64::INFINITY
            },
            stages.join(" ")
        );
    }
    println!(
        "{:<32} {:>8.2} {:>9.2} {:>8.1}x {:>8.1}x",
        "all clips",
        media_total,
        wall_total,
        media_total / wall_total,
        media_total / asr_total.max(1e-9)
    );
    println!("RTF = media seconds per wall second (higher is faster); target: full pipeline >= 5x");
}
