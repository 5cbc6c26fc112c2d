//! Speech to text on real models and real speech (no mocks).
//!
//! Needs `make models` (whisper tiny.en + base converted to ggml, silero VAD, ONNX Runtime,
//! the LibriVox clips of Debian's `pocketsphinx-testdata`), plus the `ffmpeg` and
//! `espeak-ng` command-line tools.
#![cfg(feature = "asr")]

use std::path::{Path, PathBuf};
use std::process::Command;

use heimdex_core::extractor::{ExtractContext, Extractor, StageData};
use heimdex_pipeline::ml::asr::{AsrConfig, SAMPLE_RATE, WhisperAsr};
use heimdex_pipeline::ml::models::models_dir;

fn require(rel: &str) -> PathBuf {
    let p = models_dir().join(rel);
    assert!(
        p.exists(),
        "{} is missing: run `make models` first (scripts/fetch-models.py)",
        p.display()
    );
    p
}

fn asr(config: AsrConfig) -> WhisperAsr {
    require("onnxruntime/libonnxruntime.so");
    require("whisper/silero_vad_v6.onnx");
    require(&config.model_path.to_string_lossy());
    WhisperAsr::new(config)
        .unwrap_or_else(|e| panic!("loading ASR failed: {e} (run `make models`)"))
}

fn tiny() -> WhisperAsr {
    asr(AsrConfig {
        threads: 2,
        ..AsrConfig::default()
    })
}

/// Decode any audio file to 16 kHz mono f32 with the ffmpeg CLI.
fn decode_16k(path: &Path) -> Vec<f32> {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(path)
        .args(["-f", "f32le", "-ac", "1", "-ar", "16000", "-"])
        .output()
        .expect("ffmpeg must be installed");
    assert!(out.status.success(), "ffmpeg failed on {}", path.display());
    out.stdout
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

/// `text` spoken by espeak-ng (voice `voice`), as 16 kHz samples.
fn espeak(dir: &Path, voice: &str, speed: &str, text: &str) -> Vec<f32> {
    let wav = dir.join(format!("espeak-{}.wav", text.len()));
    let ok = Command::new("espeak-ng")
        .args(["-v", voice, "-s", speed, "-w"])
        .arg(&wav)
        .arg(text)
        .status()
        .expect("espeak-ng must be installed");
    assert!(ok.success());
    decode_16k(&wav)
}

fn place(audio: &mut Vec<f32>, at_s: f64, clip: &[f32]) {
    let at = (at_s * SAMPLE_RATE as f64) as usize;
    if audio.len() < at + clip.len() {
        audio.resize(at + clip.len(), 0.0);
    }
    audio[at..at + clip.len()].copy_from_slice(clip);
}

fn transcribe(asr: &WhisperAsr, audio: &[f32]) -> heimdex_core::sidecar::Transcript {
    asr.transcribe(audio, &|_| {}).expect("transcription")
}

fn normalise(text: &str) -> Vec<String> {
    text.to_lowercase()
        .replace(['-', '—'], " ")
        .chars()
        .filter(|c| c.is_alphanumeric() || c.is_whitespace() || *c == '\'')
        .collect::<String>()
        .split_whitespace()
        .map(|w| match w {
            "mr" => "mister".to_owned(),
            "mrs" => "missus".to_owned(),
            "dr" => "doctor".to_owned(),
            other => other.to_owned(),
        })
        .collect()
}

fn edit_distance(a: &[String], b: &[String]) -> usize {
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, x) in a.iter().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, y) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(x != y))
                .min(prev[j + 1] + 1)
                .min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// (wav path, reference words) of the LibriVox clips.
fn librivox() -> Vec<(PathBuf, Vec<String>)> {
    let dir = require("testdata/librivox");
    let transcription = std::fs::read_to_string(dir.join("transcription")).expect("transcription");
    transcription
        .lines()
        .filter_map(|line| {
            let (text, id) = line.rsplit_once('(')?;
            let id = id.trim().trim_end_matches(')');
            let text = text.replace("<s>", "").replace("</s>", "");
            Some((dir.join(format!("{id}.wav")), normalise(&text)))
        })
        .collect()
}

#[test]
fn librivox_wer_tiny_en() {
    let asr = tiny();
    let clips = librivox();
    assert_eq!(clips.len(), 5, "expected the 5 LibriVox clips");
    let (mut errors, mut words) = (0, 0);
    for (wav, reference) in &clips {
        let audio = decode_16k(wav);
        let duration = audio.len() as f64 / SAMPLE_RATE as f64;
        let t = transcribe(&asr, &audio);
        assert_eq!(t.language.as_deref(), Some("en"));
        for s in &t.segments {
            assert!(
                0.0 <= s.start_s && s.start_s <= s.end_s && s.end_s <= duration + 1e-6,
                "segment {s:?} outside 0..{duration}"
            );
            for w in &s.words {
                assert!(0.0 <= w.start_s && w.start_s <= w.end_s && w.end_s <= duration + 1e-6);
            }
        }
        let text: Vec<&str> = t.segments.iter().map(|s| s.text.as_str()).collect();
        let hyp = normalise(&text.join(" "));
        let e = edit_distance(reference, &hyp);
        println!(
            "{}: {e}/{} errors\n  ref: {}\n  hyp: {}",
            wav.file_name().unwrap().to_string_lossy(),
            reference.len(),
            reference.join(" "),
            hyp.join(" ")
        );
        errors += e;
        words += reference.len();
    }
    let wer = errors as f64 / words as f64;
    println!(
        "WER tiny.en on LibriVox (pocketsphinx-testdata): {:.1}% ({errors}/{words})",
        wer * 100.0
    );
    assert!(wer <= 0.15, "WER {:.1}% > 15%", wer * 100.0);
}

#[test]
fn espeak_words_at_known_times_and_vad_skips_silence() {
    let asr = tiny();
    let dir = tempfile::tempdir().unwrap();
    let first = espeak(dir.path(), "en-us+m3", "120", "the quick brown fox");
    let second = espeak(dir.path(), "en-us+m3", "120", "jumps over the lazy dog");
    let len1 = first.len() as f64 / SAMPLE_RATE as f64;
    let len2 = second.len() as f64 / SAMPLE_RATE as f64;
    let mut audio = Vec::new();
    place(&mut audio, 2.0, &first);
    place(&mut audio, 7.0, &second);
    audio.resize(11 * SAMPLE_RATE, 0.0);

    // VAD: speech found around both phrases, nothing in the long silences.
    let regions = asr.speech_regions(&audio).unwrap();
    println!(
        "speech regions: {regions:?} (phrases at 2.0..{:.2}, 7.0..{:.2})",
        2.0 + len1,
        7.0 + len2
    );
    let speech: f64 = regions.iter().map(|r| r.end_s - r.start_s).sum();
    assert!(!regions.is_empty());
    assert!(speech < 0.6 * 11.0, "VAD kept {speech:.1} s of 11 s");
    let silent = |a: f64, b: f64| regions.iter().all(|r| r.end_s <= a || r.start_s >= b);
    assert!(
        silent(0.0, 1.2),
        "speech detected in the leading silence: {regions:?}"
    );
    let gap_mid = (2.0 + len1 + 7.0) / 2.0;
    assert!(
        silent(gap_mid - 0.5, gap_mid + 0.5),
        "speech detected in the gap: {regions:?}"
    );
    assert!(
        silent(7.0 + len2 + 1.2, 11.0),
        "speech detected in the trailing silence: {regions:?}"
    );

    let t = transcribe(&asr, &audio);
    println!("{t:#?}");
    let words: Vec<(String, f64, f64)> = t
        .segments
        .iter()
        .flat_map(|s| s.words.iter())
        .map(|w| (normalise(&w.text).join(" "), w.start_s, w.end_s))
        .collect();
    let check = |word: &str, from: f64, to: f64| {
        let (_, s, e) = words
            .iter()
            .find(|(w, _, _)| w == word)
            .unwrap_or_else(|| panic!("{word:?} not recognised; words: {words:?}"));
        assert!(
            *s >= from - 1.0 && *e <= to + 1.0,
            "{word:?} at {s:.2}..{e:.2}, spoken within {from:.2}..{to:.2}"
        );
    };
    // tiny.en hears espeak's "brown" as "round" and its "dog" as "nog"/"nard": the other
    // content words are checked.
    for w in ["quick", "fox"] {
        check(w, 2.0, 2.0 + len1);
    }
    for w in ["over", "lazy"] {
        check(w, 7.0, 7.0 + len2);
    }
    for s in &t.segments {
        assert!(s.start_s >= 0.0 && s.end_s <= 11.0);
    }
}

/// The suite on real speech (the first LibriVox clip, 7 s; the synthetic 440 Hz tone has
/// no words, so the stage would find nothing to check).
#[test]
fn conformance() {
    let (clip, _) = librivox().into_iter().next().expect("a LibriVox clip");
    let content =
        heimdex_core::conformance::extractor::Content::synthetic().with_audio(decode_16k(&clip));
    heimdex_core::conformance::extractor::run_all_on(&tiny(), &content);
}

#[test]
fn no_audio_gives_an_empty_transcript_and_silence_gives_no_text() {
    let asr = tiny();
    let sidecar = heimdex_core::conformance::extractor::synthetic_sidecar();
    let progress = |_p: f32| {};
    let ctx = ExtractContext::new(&sidecar, &[], None, &progress);
    match asr.extract(&ctx).unwrap() {
        StageData::Transcript(t) => {
            assert!(t.segments.is_empty());
            assert_eq!(t.language, None);
        }
        other => panic!("unexpected {other:?}"),
    }
    let silence = vec![0.0f32; 5 * SAMPLE_RATE];
    assert!(asr.speech_regions(&silence).unwrap().is_empty());
    assert!(transcribe(&asr, &silence).segments.is_empty());
}

#[test]
fn identity_and_params() {
    let asr = tiny();
    let info = asr.info();
    assert_eq!(info.name, "asr.whisper");
    let model = info.model.expect("model identity");
    assert_eq!(model.name, "whisper-tiny.en");
    let lock = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../models/models.lock"
    ))
    .unwrap();
    assert!(
        lock.contains(&format!(
            "whisper/ggml-tiny.en.bin 77704715 {}",
            model.sha256
        )),
        "identity hash should be the locked file's"
    );
    let params = info.params.expect("params");
    assert!(
        params.contains("vad=silero_vad_v6.onnx@") && params.contains("lang=auto"),
        "{params}"
    );
    // Forcing a language changes the identity; an English-only model refuses others.
    let forced = asr_with_language("whisper/ggml-tiny.en.bin", "en").expect("en on tiny.en");
    assert_ne!(forced.info(), tiny().info());
    let err = asr_with_language("whisper/ggml-tiny.en.bin", "de").unwrap_err();
    assert!(err.to_string().contains("English-only"), "{err}");
    // A missing model says what to run.
    let err = WhisperAsr::new(AsrConfig {
        model_path: "/nonexistent/ggml.bin".into(),
        ..AsrConfig::default()
    })
    .unwrap_err();
    assert!(err.to_string().contains("make models"), "{err}");
}

fn asr_with_language(model: &str, lang: &str) -> Result<WhisperAsr, heimdex_pipeline::ml::MlError> {
    WhisperAsr::new(AsrConfig {
        model_path: require(model),
        language: Some(lang.into()),
        threads: 2,
        ..AsrConfig::default()
    })
}

#[test]
fn multilingual_detects_and_forces_language() {
    let base = asr(AsrConfig {
        threads: 2,
        ..AsrConfig::multilingual()
    });
    assert!(base.is_multilingual());
    let dir = tempfile::tempdir().unwrap();
    let mut german = vec![0.0; SAMPLE_RATE];
    german.extend(espeak(
        dir.path(),
        "de",
        "150",
        "Guten Morgen. Heute ist das Wetter schön, und wir gehen in den Park spazieren.",
    ));
    german.extend(vec![0.0; SAMPLE_RATE]);
    let t = transcribe(&base, &german);
    println!("german: {t:?}");
    assert_eq!(t.language.as_deref(), Some("de"));
    assert!(!t.segments.is_empty());

    let (wav, _) = &librivox()[0];
    let english = decode_16k(wav);
    let t = transcribe(&base, &english);
    println!("english: {t:?}");
    assert_eq!(t.language.as_deref(), Some("en"));

    let forced = asr_with_language("whisper/ggml-base.bin", "en").unwrap();
    let t = transcribe(&forced, &german);
    assert_eq!(
        t.language.as_deref(),
        Some("en"),
        "forced language is reported"
    );
}

/// The converter's output (`make models` runs scripts/ct2_to_ggml.py) has exactly the size of
/// the official ggml file and a well-formed layout.
#[test]
fn converted_ggml_files() {
    let tiny = require("whisper/ggml-tiny.en.bin");
    assert_eq!(std::fs::metadata(&tiny).unwrap().len(), 77_704_715);
    let (hparams, tensors) = walk_ggml(&tiny);
    assert_eq!(hparams, [51864, 1500, 384, 6, 4, 448, 384, 6, 4, 80, 1]);
    assert_eq!(tensors, 167);
    let base = models_dir().join("whisper/ggml-base.bin");
    if base.exists() {
        assert_eq!(std::fs::metadata(&base).unwrap().len(), 147_951_465);
        let (hparams, tensors) = walk_ggml(&base);
        assert_eq!(hparams, [51865, 1500, 512, 8, 6, 448, 512, 8, 6, 80, 1]);
        assert_eq!(tensors, 245);
    }
}

/// Parse a legacy ggml whisper file to its end: (hparams, number of tensors).
fn walk_ggml(path: &Path) -> ([i32; 11], usize) {
    let data = std::fs::read(path).unwrap();
    let mut pos = 0usize;
    let mut int = || {
        let v = i32::from_le_bytes(data[pos..pos + 4].try_into().unwrap());
        pos += 4;
        v
    };
    assert_eq!(int(), 0x6767_6d6c, "magic");
    let mut hparams = [0i32; 11];
    for h in &mut hparams {
        *h = int();
    }
    let (n_mel, n_fft) = (int(), int());
    pos += (n_mel * n_fft) as usize * 4;
    let n_tokens = i32::from_le_bytes(data[pos..pos + 4].try_into().unwrap());
    pos += 4;
    for _ in 0..n_tokens {
        let len = i32::from_le_bytes(data[pos..pos + 4].try_into().unwrap()) as usize;
        pos += 4 + len;
    }
    let mut tensors = 0;
    while pos < data.len() {
        let rd = |p: usize| i32::from_le_bytes(data[p..p + 4].try_into().unwrap());
        let (n_dims, name_len, ftype) = (rd(pos), rd(pos + 4) as usize, rd(pos + 8));
        pos += 12;
        let mut elems = 1usize;
        for d in 0..n_dims as usize {
            elems *= rd(pos + 4 * d) as usize;
        }
        pos += 4 * n_dims as usize;
        let name = std::str::from_utf8(&data[pos..pos + name_len]).unwrap();
        assert!(
            name.starts_with("encoder.") || name.starts_with("decoder."),
            "{name}"
        );
        pos += name_len + elems * if ftype == 0 { 4 } else { 2 };
        tensors += 1;
    }
    assert_eq!(pos, data.len(), "tensor data runs past the end");
    (hparams, tensors)
}
