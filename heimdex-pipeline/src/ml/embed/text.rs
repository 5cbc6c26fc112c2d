//! Sentence embeddings with a BERT-style ONNX encoder (default: all-MiniLM-L6-v2, int8).

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use heimdex_core::extractor::{ExtractContext, ExtractError, Extractor, Needs, StageData};
use heimdex_core::segments;
use heimdex_core::sidecar::{EmbeddingVector, Embeddings, ExtractorInfo, ModelIdentity};
use ort::session::{Session, SessionInputValue};
use ort::value::Tensor;

use super::TEXT_SPACE;
use super::wordpiece::{Encoding, WordPieceTokenizer};
use crate::ml::MlError;
use crate::ml::models::{default_model, identity};
use crate::ml::runtime;

/// Settings of a [`TextEmbedder`]. Start from [`EmbedConfig::default`] (the MiniLM files
/// under the models directory) and change what differs.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct EmbedConfig {
    /// The ONNX encoder: inputs `input_ids`, `attention_mask` (and optionally
    /// `token_type_ids`), int64 `[batch, seq]`; first output either token states
    /// `[batch, seq, dim]` (mean-pooled here) or a pooled `[batch, dim]`.
    pub model: PathBuf,
    /// WordPiece `vocab.txt` matching the model.
    pub vocab: PathBuf,
    /// Model name recorded in the sidecar next to the files' SHA-256.
    pub name: String,
    /// Lower-case and strip accents (uncased models).
    pub lowercase: bool,
    /// Maximum tokens per text, `[CLS]` and `[SEP]` included (longer texts are truncated).
    pub max_tokens: usize,
    /// Texts per model run.
    pub batch_size: usize,
    /// Intra-op threads for ONNX Runtime.
    pub threads: usize,
}

impl Default for EmbedConfig {
    /// all-MiniLM-L6-v2 (int8 ONNX) from `make models`: `minilm/model.onnx`,
    /// `minilm/vocab.txt`; 128 tokens, batches of 32, 2 threads.
    fn default() -> Self {
        Self {
            model: default_model("minilm/model.onnx"),
            vocab: default_model("minilm/vocab.txt"),
            name: "all-MiniLM-L6-v2-int8".into(),
            lowercase: true,
            max_tokens: 128,
            batch_size: 32,
            threads: 2,
        }
    }
}

/// A text → unit-vector encoder. Thread-safe; runs are serialised on one ONNX session.
///
/// Used by [`TextEmbeddingStage`] at ingest and directly at query time, so query and
/// segment vectors come from the same model and tokenizer.
#[derive(Debug)]
pub struct TextEmbedder {
    session: Mutex<Session>,
    tokenizer: WordPieceTokenizer,
    identity: ModelIdentity,
    config: EmbedConfig,
    token_types: bool,
    dim: usize,
}

impl TextEmbedder {
    /// Load the tokenizer and the model, and probe the output dimension.
    pub fn new(config: EmbedConfig) -> Result<Self, MlError> {
        let tokenizer =
            WordPieceTokenizer::from_file(&config.vocab, config.lowercase, config.max_tokens)?;
        let session = runtime::session(&config.model, config.threads)?;
        let names: Vec<&str> = session.inputs().iter().map(|i| i.name()).collect();
        for need in ["input_ids", "attention_mask"] {
            if !names.contains(&need) {
                return Err(MlError::model(
                    config.model.display().to_string(),
                    format!("expected an input named {need}, the model has {names:?}"),
                ));
            }
        }
        let token_types = names.contains(&"token_type_ids");
        let identity = Self::model_identity(&config)?;
        let mut embedder = Self {
            session: Mutex::new(session),
            tokenizer,
            identity,
            config,
            token_types,
            dim: 0,
        };
        embedder.dim = embedder
            .run_batch(&[embedder.tokenizer.encode("")])?
            .first()
            .map_or(0, Vec::len);
        if embedder.dim == 0 {
            return Err(MlError::model(
                embedder.config.model.display().to_string(),
                "the model returned an empty vector",
            ));
        }
        Ok(embedder)
    }

    /// The identity of the model `config` names (name + SHA-256 over the model and
    /// vocabulary files), without loading it.
    pub fn model_identity(config: &EmbedConfig) -> Result<ModelIdentity, MlError> {
        identity(&config.name, &[&config.model, &config.vocab])
    }

    /// Vector dimension (384 for MiniLM).
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Model name + SHA-256 over the model and vocabulary files.
    pub fn identity(&self) -> &ModelIdentity {
        &self.identity
    }

    /// The configuration in use.
    pub fn config(&self) -> &EmbedConfig {
        &self.config
    }

    /// Tokenize one text as the model sees it.
    pub fn encode(&self, text: &str) -> Encoding {
        self.tokenizer.encode(text)
    }

    /// Embed one text.
    pub fn embed_one(&self, text: &str) -> Result<Vec<f32>, MlError> {
        Ok(self.embed(&[text])?.pop().unwrap_or_default())
    }

    /// Embed texts: one L2-normalised vector of [`dim`](Self::dim) per text, in order.
    /// Texts are grouped by token length into batches of `batch_size` (padding only to the
    /// longest in the batch); attention-masked mean pooling makes the result independent of
    /// the grouping.
    pub fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, MlError> {
        self.embed_with_progress(texts, &|_| {})
    }

    /// [`embed`](Self::embed), calling `progress` with the fraction done (0..=1) after each
    /// batch.
    pub fn embed_with_progress(
        &self,
        texts: &[&str],
        progress: &dyn Fn(f32),
    ) -> Result<Vec<Vec<f32>>, MlError> {
        let encodings: Vec<Encoding> = texts.iter().map(|t| self.tokenizer.encode(t)).collect();
        let mut order: Vec<usize> = (0..texts.len()).collect();
        order.sort_by_key(|&i| encodings[i].ids.len());
        let mut out = vec![Vec::new(); texts.len()];
        let batch = self.config.batch_size.max(1);
        let mut done = 0;
        for chunk in order.chunks(batch) {
            let group: Vec<Encoding> = chunk.iter().map(|&i| encodings[i].clone()).collect();
            let vectors = self.run_batch(&group)?;
            for (&i, v) in chunk.iter().zip(vectors) {
                out[i] = v;
            }
            done += chunk.len();
            progress(done as f32 / texts.len() as f32);
        }
        Ok(out)
    }

    fn run_batch(&self, group: &[Encoding]) -> Result<Vec<Vec<f32>>, MlError> {
        let model = || self.config.model.display().to_string();
        let err = |e: &dyn std::fmt::Display| MlError::model(model(), e);
        let n = group.len();
        let len = group.iter().map(|e| e.ids.len()).max().unwrap_or(0);
        let pad = self.tokenizer.pad_id();
        let mut ids = Vec::with_capacity(n * len);
        let mut mask = Vec::with_capacity(n * len);
        for e in group {
            ids.extend_from_slice(&e.ids);
            ids.resize(ids.len() + len - e.ids.len(), pad);
            mask.extend_from_slice(&e.attention_mask);
            mask.resize(mask.len() + len - e.ids.len(), 0);
        }
        let tensor = |v: Vec<i64>| Tensor::from_array(([n, len], v)).map_err(|e| err(&e));
        let mut inputs: Vec<(&str, SessionInputValue<'_>)> = vec![
            ("input_ids", tensor(ids)?.into()),
            ("attention_mask", tensor(mask.clone())?.into()),
        ];
        if self.token_types {
            inputs.push(("token_type_ids", tensor(vec![0; n * len])?.into()));
        }
        let mut session = self
            .session
            .lock()
            .map_err(|_| err(&"session lock poisoned"))?;
        let outputs = session.run(inputs).map_err(|e| err(&e))?;
        let (shape, data) = outputs[0]
            .try_extract_tensor::<f32>()
            .map_err(|e| err(&e))?;
        let dims: Vec<usize> = shape.iter().map(|&d| d.max(0) as usize).collect();
        let vectors = match dims.as_slice() {
            [b, s, d] if *b == n && *s == len => (0..n)
                .map(|i| {
                    let mut v = vec![0f32; *d];
                    let mut count = 0f32;
                    for t in 0..len {
                        if mask[i * len + t] == 0 {
                            continue;
                        }
                        count += 1.0;
                        let row = &data[(i * len + t) * d..(i * len + t + 1) * d];
                        for (acc, x) in v.iter_mut().zip(row) {
                            *acc += x;
                        }
                    }
                    let count = count.max(1e-9);
                    v.iter_mut().for_each(|x| *x /= count);
                    normalize(v)
                })
                .collect(),
            [b, d] if *b == n => data.chunks(*d).map(|r| normalize(r.to_vec())).collect(),
            other => {
                return Err(err(&format!(
                    "unexpected output shape {other:?} for a batch of {n}x{len}"
                )));
            }
        };
        Ok(vectors)
    }
}

/// Scale to unit length (a zero vector stays zero).
pub(crate) fn normalize(mut v: Vec<f32>) -> Vec<f32> {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
    }
    v
}

/// Pipeline stage: one `text`-space vector per searchable segment with non-empty text
/// (asset path/metadata, transcript windows, OCR lines, custom spans), keyed by the
/// segment id of [`heimdex_core::segments::from_sidecar`]. Shot segments are skipped: their
/// text is only generated colour/brightness words, which would make every shot look alike
/// to a text query; the visual content of shots is the image stage's job.
#[derive(Debug, Clone)]
pub struct TextEmbeddingStage {
    embedder: Arc<TextEmbedder>,
    after: Vec<String>,
}

impl TextEmbeddingStage {
    /// Stage name in the sidecar.
    pub const NAME: &'static str = "embed.text";
    /// Bump when the output changes for the same model.
    pub const VERSION: &'static str = "1";

    /// A stage over `embedder` (share the same `Arc` with the query side). Runs after
    /// `transcript`, `ocr` and `visual`, whose segments it embeds.
    pub fn new(embedder: Arc<TextEmbedder>) -> Self {
        Self {
            embedder,
            after: vec!["transcript".into(), "ocr".into(), "visual".into()],
        }
    }

    /// Also run after these stages (e.g. custom extractors whose spans must be embedded).
    pub fn with_after(mut self, stages: impl IntoIterator<Item = impl Into<String>>) -> Self {
        for s in stages {
            let s = s.into();
            if !self.after.contains(&s) {
                self.after.push(s);
            }
        }
        self
    }

    /// The embedder.
    pub fn embedder(&self) -> &Arc<TextEmbedder> {
        &self.embedder
    }

    /// The identity a stage over `TextEmbedder::new(config)` has ([`Extractor::info`]),
    /// without loading the model: hashes the files
    /// ([`sha256_file`](crate::ml::models::sha256_file) caches the hashes).
    pub fn describe(config: &EmbedConfig) -> Result<ExtractorInfo, MlError> {
        for (path, hint) in [
            (&config.model, "EmbedConfig::model"),
            (&config.vocab, "EmbedConfig::vocab"),
        ] {
            if !path.exists() {
                return Err(MlError::ModelMissing {
                    path: path.display().to_string(),
                    hint: hint.into(),
                });
            }
        }
        Ok(Self::info_for(
            config,
            TextEmbedder::model_identity(config)?,
        ))
    }

    fn info_for(config: &EmbedConfig, model: ModelIdentity) -> ExtractorInfo {
        ExtractorInfo {
            name: Self::NAME.into(),
            version: Self::VERSION.into(),
            model: Some(model),
            params: Some(format!(
                "space={TEXT_SPACE};max_tokens={};lowercase={};pool=mean;norm=l2",
                config.max_tokens, config.lowercase
            )),
        }
    }
}

impl Extractor for TextEmbeddingStage {
    fn info(&self) -> ExtractorInfo {
        Self::info_for(self.embedder.config(), self.embedder.identity().clone())
    }

    fn needs(&self) -> Needs {
        let mut needs = Needs::default();
        needs.after.clone_from(&self.after);
        needs
    }

    fn extract(&self, ctx: &ExtractContext<'_>) -> Result<StageData, ExtractError> {
        let segs: Vec<_> = segments::from_sidecar(ctx.sidecar)
            .into_iter()
            .filter(|s| s.kind != heimdex_core::SegmentKind::Shot && !s.text.trim().is_empty())
            .collect();
        (ctx.progress)(0.0);
        let texts: Vec<&str> = segs.iter().map(|s| s.text.as_str()).collect();
        let report = |f: f32| (ctx.progress)((f * 100.0).clamp(0.0, 100.0));
        let vectors = self.embedder.embed_with_progress(&texts, &report)?;
        let vectors = segs
            .into_iter()
            .zip(vectors)
            .map(|(s, vector)| EmbeddingVector {
                space: TEXT_SPACE.into(),
                segment: Some(s.id),
                start_s: s.start_s,
                end_s: s.end_s.max(s.start_s),
                vector,
            })
            .collect();
        (ctx.progress)(100.0);
        Ok(StageData::Embeddings(Embeddings { vectors }))
    }
}
