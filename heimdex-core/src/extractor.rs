//! The [`Extractor`] trait: one pipeline stage that turns decoded media into sidecar data.

use crate::error::ErrorKind;
use std::fmt::Debug;

use crate::sidecar::{
    CustomBlock, Embeddings, ExtractorInfo, Faces, Ocr, Sidecar, Transcript, Visual,
};

/// Errors of an extractor.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExtractError {
    /// The input lacks something the stage needs (e.g. no audio track for ASR).
    #[error("missing input: {what}")]
    MissingInput {
        /// What is missing.
        what: String,
    },
    /// The model could not be loaded or run.
    #[error("model {model}: {reason}")]
    Model {
        /// Model name.
        model: String,
        /// Why.
        reason: String,
    },
    /// Any other failure of the stage.
    #[error("{0}")]
    Failed(String),
}

impl ExtractError {
    /// The category of this error: missing input is a property of the media, a model that
    /// cannot load or run is an internal (installation) problem.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::MissingInput { .. } => ErrorKind::BadMedia,
            Self::Model { .. } | Self::Failed(_) => ErrorKind::Internal,
        }
    }
}

/// What a stage needs from the single decode pass and from other stages.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Needs {
    /// One RGB keyframe per shot.
    pub keyframes: bool,
    /// The audio track as 16 kHz mono f32.
    pub audio_16k: bool,
    /// Besides the keyframes, frames sampled through each shot wherever the picture changed
    /// ([`ExtractContext::samples`]): for what appears and goes mid-shot, such as captions.
    pub samples: bool,
    /// Names of stages whose output (in the sidecar) must exist first.
    pub after: Vec<String>,
}

impl Needs {
    /// Needs keyframes.
    pub fn keyframes() -> Self {
        Self {
            keyframes: true,
            ..Self::default()
        }
    }
    /// Needs 16 kHz mono audio.
    pub fn audio() -> Self {
        Self {
            audio_16k: true,
            ..Self::default()
        }
    }
    /// Needs keyframes and the frames sampled through each shot.
    pub fn keyframes_and_samples() -> Self {
        Self {
            keyframes: true,
            samples: true,
            ..Self::default()
        }
    }
}

/// A decoded keyframe, borrowed from the pipeline.
#[derive(Debug, Clone, Copy)]
pub struct FrameRef<'a> {
    /// Shot the keyframe represents.
    pub shot_index: u32,
    /// Presentation time in seconds.
    pub time_s: f64,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Packed RGB24, `width * height * 3` bytes.
    pub rgb: &'a [u8],
}

/// Everything a stage may read. Built by the pipeline after the single decode pass.
#[non_exhaustive]
pub struct ExtractContext<'a> {
    /// The sidecar so far (technical metadata, shots, earlier stages).
    pub sidecar: &'a Sidecar,
    /// One keyframe per shot (empty unless [`Needs::keyframes`]).
    pub keyframes: &'a [FrameRef<'a>],
    /// 16 kHz mono audio (`None` unless [`Needs::audio_16k`] and the asset has audio).
    pub audio_16k: Option<&'a [f32]>,
    /// Frames sampled mid-shot where the picture changed, in time order, each with its shot
    /// and time (empty unless [`Needs::samples`]; a static shot has none).
    pub samples: &'a [FrameRef<'a>],
    /// Report progress of this stage in 0..=100.
    pub progress: &'a (dyn Fn(f32) + Sync),
}

impl std::fmt::Debug for ExtractContext<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExtractContext")
            .field("asset", &self.sidecar.asset.key)
            .field("keyframes", &self.keyframes.len())
            .field("samples", &self.samples.len())
            .field("audio_16k", &self.audio_16k.map(<[f32]>::len))
            .finish_non_exhaustive()
    }
}

impl<'a> ExtractContext<'a> {
    /// A context over `sidecar`, keyframes and audio.
    pub fn new(
        sidecar: &'a Sidecar,
        keyframes: &'a [FrameRef<'a>],
        audio_16k: Option<&'a [f32]>,
        progress: &'a (dyn Fn(f32) + Sync),
    ) -> Self {
        Self {
            sidecar,
            keyframes,
            audio_16k,
            samples: &[],
            progress,
        }
    }

    /// The same context with `samples` ([`ExtractContext::samples`]).
    pub fn with_samples(mut self, samples: &'a [FrameRef<'a>]) -> Self {
        self.samples = samples;
        self
    }
}

/// A stage's typed output; the runner stores it in the matching sidecar block.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum StageData {
    /// Goes to `sidecar.transcript`.
    Transcript(Transcript),
    /// Goes to `sidecar.ocr`.
    Ocr(Ocr),
    /// Goes to `sidecar.faces`.
    Faces(Faces),
    /// Goes to `sidecar.visual`.
    Visual(Visual),
    /// Goes to `sidecar.embeddings`.
    Embeddings(Embeddings),
    /// Goes to `sidecar.extensions[extractor name]`; its spans become searchable segments.
    Custom(CustomBlock),
}

/// One pipeline stage.
///
/// # Contract
/// - Pure with respect to its inputs: the same context and the same [`info`](Extractor::info)
///   give the same output, so a stage whose recorded [`ExtractorInfo`] equals the configured
///   one is skipped on re-index, and a changed one re-runs alone.
/// - [`info`](Extractor::info) is cheap and stable: name, version, model identity and the
///   parameters that change the output.
/// - [`extract`](Extractor::extract) is synchronous and may be CPU-heavy; the runner calls it
///   on a blocking thread, never on the async runtime. It must not panic on bad media: it
///   returns [`ExtractError`] and the job fails with the stage's name and that reason.
/// - It reads only what [`needs`](Extractor::needs) declares; the media is decoded once and
///   shared by every stage.
pub trait Extractor: Send + Sync + Debug {
    /// Identity of the stage (name, version, model, params).
    fn info(&self) -> ExtractorInfo;

    /// What the stage needs.
    fn needs(&self) -> Needs;

    /// Run the stage.
    fn extract(&self, ctx: &ExtractContext<'_>) -> Result<StageData, ExtractError>;
}

/// Store the `data` of the stage identified by `info` into `sidecar`, stamped with `elapsed_ms`.
pub fn apply_stage(sidecar: &mut Sidecar, info: ExtractorInfo, elapsed_ms: u64, data: StageData) {
    use crate::sidecar::StageBlock;
    match data {
        StageData::Transcript(t) => sidecar.transcript = Some(StageBlock::new(info, elapsed_ms, t)),
        StageData::Ocr(o) => sidecar.ocr = Some(StageBlock::new(info, elapsed_ms, o)),
        StageData::Faces(f) => sidecar.faces = Some(StageBlock::new(info, elapsed_ms, f)),
        StageData::Visual(v) => sidecar.visual = Some(StageBlock::new(info, elapsed_ms, v)),
        StageData::Embeddings(e) => {
            let name = info.name.clone();
            sidecar
                .embeddings
                .insert(name, StageBlock::new(info, elapsed_ms, e));
        }
        StageData::Custom(v) => {
            let name = info.name.clone();
            sidecar
                .extensions
                .insert(name, StageBlock::new(info, elapsed_ms, v));
        }
    }
}

/// Encodes a search query into a named vector space at query time (the text tower of the
/// model whose other tower an [`Extractor`] used at index time).
///
/// # Contract
/// - [`space`](QueryEncoder::space) names the vector space it encodes into (`text`, `image`)
///   and matches the `space` of the embeddings the corresponding stage writes.
/// - [`encode`](QueryEncoder::encode) returns one L2-normalised vector of the space's
///   dimension; the same text gives the same vector.
pub trait QueryEncoder: Send + Sync + Debug {
    /// Vector space name.
    fn space(&self) -> &str;
    /// Encode one query.
    fn encode(&self, text: &str) -> Result<Vec<f32>, ExtractError>;
    /// Encode several queries at once, one vector per text, in order. Servers batch the
    /// queries that arrive together; a model runs a batch faster than its texts one by one.
    /// The default encodes them one by one.
    fn encode_batch(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, ExtractError> {
        texts.iter().map(|t| self.encode(t)).collect()
    }
}

/// Order stages so that every stage comes after the stages named in its
/// [`Needs::after`]; stages in the same inner `Vec` do not depend on each other and may run
/// concurrently. Names that no configured stage provides are ignored (they may be built-in
/// media stages or absent optional stages). Cycles are broken by configuration order.
pub fn stage_levels<T: AsRef<dyn Extractor>>(stages: &[T]) -> Vec<Vec<usize>> {
    let names: Vec<Vec<String>> = stages.iter().map(|s| provided_names(s.as_ref())).collect();
    let deps: Vec<Vec<usize>> = (0..stages.len())
        .map(|i| {
            let after = stages[i].as_ref().needs().after;
            (0..stages.len())
                .filter(|&j| j != i && names[j].iter().any(|n| after.contains(n)))
                .collect()
        })
        .collect();
    let mut done = vec![false; stages.len()];
    let mut levels = Vec::new();
    while done.iter().any(|d| !d) {
        let mut level: Vec<usize> = (0..stages.len())
            .filter(|&i| !done[i] && deps[i].iter().all(|&j| done[j]))
            .collect();
        if level.is_empty() {
            // A cycle: take the first remaining stage to make progress.
            level = (0..stages.len()).filter(|&i| !done[i]).take(1).collect();
        }
        for &i in &level {
            done[i] = true;
        }
        levels.push(level);
    }
    levels
}

/// The names other stages can wait for with [`Needs::after`]: the stage's own name and the
/// typed block it writes.
pub fn provided_names(e: &dyn Extractor) -> Vec<String> {
    let mut names = vec![e.info().name];
    names.extend(block_name(e).map(str::to_owned));
    names
}

/// The typed sidecar block a stage writes, by the naming convention of its stage name
/// (`asr.*` → `transcript`, `ocr.*` → `ocr`, `faces.*` → `faces`, `visual.*` → `visual`,
/// `embed.*` → `embeddings`).
fn block_name(e: &dyn Extractor) -> Option<&'static str> {
    let name = e.info().name;
    let prefix = name.split('.').next().unwrap_or("");
    match prefix {
        "asr" | "transcript" => Some("transcript"),
        "ocr" => Some("ocr"),
        "faces" => Some("faces"),
        "visual" => Some("visual"),
        "embed" | "embeddings" => Some("embeddings"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[derive(Debug)]
    struct Stage(&'static str, Vec<&'static str>);

    impl Extractor for Stage {
        fn info(&self) -> ExtractorInfo {
            ExtractorInfo {
                name: self.0.into(),
                version: "1".into(),
                model: None,
                params: None,
            }
        }
        fn needs(&self) -> Needs {
            Needs {
                after: self.1.iter().map(|s| (*s).to_owned()).collect(),
                ..Needs::default()
            }
        }
        fn extract(&self, _: &ExtractContext<'_>) -> Result<StageData, ExtractError> {
            Err(ExtractError::Failed("not run in this test".into()))
        }
    }

    #[test]
    fn stages_are_levelled_by_their_dependencies() {
        let stages: Vec<Arc<dyn Extractor>> = vec![
            Arc::new(Stage("embed.text", vec!["transcript", "ocr"])),
            Arc::new(Stage("asr.whisper", vec![])),
            Arc::new(Stage("ocr.paddle", vec![])),
            Arc::new(Stage("custom.after-embed", vec!["embed.text"])),
            Arc::new(Stage("faces.blaze", vec!["not-configured"])),
        ];
        assert_eq!(stage_levels(&stages), vec![vec![1, 2, 4], vec![0], vec![3]]);
        let cyclic: Vec<Arc<dyn Extractor>> = vec![
            Arc::new(Stage("a", vec!["b"])),
            Arc::new(Stage("b", vec!["a"])),
        ];
        assert_eq!(stage_levels(&cyclic), vec![vec![0], vec![1]]);
    }
}
