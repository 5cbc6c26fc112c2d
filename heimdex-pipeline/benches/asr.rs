//! ASR real-time factor (media seconds per wall-clock second; higher is faster).
//!
//! `cargo bench -p heimdex-pipeline --features asr --bench asr` after `make models`.
//! Measures silero VAD + whisper tiny.en on the LibriVox clips of `pocketsphinx-testdata`
//! and on a 60 s espeak-ng clip (speech with pauses), using `HEIMDEX_ASR_THREADS` threads
//! (default: up to 4).

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use heimdex_pipeline::ml::asr::{AsrConfig, SAMPLE_RATE, WhisperAsr};
use heimdex_pipeline::ml::models::models_dir;

fn decode_16k(path: &Path) -> Vec<f32> {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(path)
        .args(["-f", "f32le", "-ac", "1", "-ar", "16000", "-"])
        .output()
        .expect("ffmpeg must be installed");
    out.stdout
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

fn espeak_60s(dir: &Path) -> Vec<f32> {
    let sentences = [
        "The archive holds thousands of hours of video from the last forty years.",
        "Every clip is transcribed so that editors can search for what was said.",
        "The weather report on the evening news mentioned heavy rain in the north.",
        "Interviews with the mayor were recorded in the town hall in the spring.",
        "A documentary about the harbour follows the fishing boats at dawn.",
        "The football match ended in a draw after a late goal from the visitors.",
    ];
    let mut audio = Vec::new();
    let mut i = 0;
    while audio.len() < 60 * SAMPLE_RATE {
        let wav = dir.join("s.wav");
        let ok = Command::new("espeak-ng")
            .args(["-v", "en", "-w"])
            .arg(&wav)
            .arg(sentences[i % sentences.len()])
            .status()
            .expect("espeak-ng must be installed");
        assert!(ok.success());
        audio.extend(decode_16k(&wav));
        // Pauses of 0.5 to 3 s between sentences.
        audio.extend(vec![
            0.0;
            SAMPLE_RATE / 2 + (i * 7919 % 5) * SAMPLE_RATE / 2
        ]);
        i += 1;
    }
    audio.truncate(60 * SAMPLE_RATE);
    audio
}

fn measure(asr: &WhisperAsr, label: &str, audio: &[f32]) -> (f64, f64) {
    let media = audio.len() as f64 / SAMPLE_RATE as f64;
    let t = Instant::now();
    let regions = asr.speech_regions(audio).expect("vad");
    let vad_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let transcript = asr.transcribe(audio, &|_| {}).expect("transcribe");
    let wall = t.elapsed().as_secs_f64();
    let speech: f64 = regions.iter().map(|r| r.end_s - r.start_s).sum();
    println!(
        "{label:<40} media {media:6.1} s  speech {speech:5.1} s  wall {wall:6.2} s  \
         RTF {:6.1}x  (VAD alone {:.3} s, {} segments)",
        media / wall,
        vad_s,
        transcript.segments.len()
    );
    (media, wall)
}

fn main() {
    let threads = std::env::var("HEIMDEX_ASR_THREADS")
        .ok()
        .and_then(|t| t.parse().ok())
        .unwrap_or(AsrConfig::default().threads);
    let asr = WhisperAsr::new(AsrConfig {
        threads,
        ..AsrConfig::default()
    })
    .unwrap_or_else(|e| panic!("{e} (run `make models`)"));
    println!(
        "ASR bench: whisper tiny.en (ggml f16) + silero VAD, {threads} threads, whisper.cpp {}",
        whisper_rs::WHISPER_CPP_VERSION
    );
    let dir = models_dir().join("testdata/librivox");
    let mut clips: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e} (run `make models`)", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "wav"))
        .collect();
    clips.sort();
    // Warm-up (first encoder run allocates buffers).
    let _ = asr.transcribe(&decode_16k(&clips[0]), &|_| {});
    let (mut media, mut wall) = (0.0, 0.0);
    for clip in &clips {
        let (m, w) = measure(
            &asr,
            &clip.file_name().unwrap().to_string_lossy(),
            &decode_16k(clip),
        );
        media += m;
        wall += w;
    }
    println!(
        "{:<40} media {media:6.1} s  wall {wall:6.2} s  RTF {:6.1}x",
        "LibriVox total",
        media / wall
    );
    let tmp = std::env::temp_dir().join(format!("heimdex-asr-bench-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    let audio = espeak_60s(&tmp);
    let _ = std::fs::remove_dir_all(&tmp);
    measure(&asr, "espeak-ng 60 s (with pauses)", &audio);
}
