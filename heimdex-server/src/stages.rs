//! The default extraction stages, assembled from the models that are available.
//!
//! Each ML stage is added when its model files load; a stage whose model is missing is
//! left out with a note saying how to get it (`make models`), so the pipeline always runs.
//!
//! Bring your own model: these environment variables replace a default model file (the
//! stage's identity is the file's SHA-256, so changing one re-runs only that stage and what
//! depends on it on the next re-index):
//!
//! | variable | stage | file |
//! |---|---|---|
//! | `HEIMDEX_WHISPER_MODEL` | speech | a whisper.cpp ggml model (e.g. `ggml-small.en.bin`) |
//! | `HEIMDEX_VAD_MODEL` | speech | a silero VAD ONNX model |
//! | `HEIMDEX_OCR_DET_MODEL`, `HEIMDEX_OCR_REC_MODEL` | OCR | PP-OCR det / rec ONNX |
//! | `HEIMDEX_FACE_DETECTOR` | faces | BlazeFace back-256 ONNX |
//! | `HEIMDEX_TEXT_MODEL`, `HEIMDEX_TEXT_VOCAB` | text embeddings | BERT-style ONNX + `vocab.txt` |
//! | `HEIMDEX_CLIP_IMAGE_MODEL`, `HEIMDEX_CLIP_TEXT_MODEL` | image embeddings | CLIP ONNX towers |

use std::sync::Arc;

use heimdex_core::{Extractor, QueryEncoder};

/// Which stages to build, and their settings.
#[derive(Debug, Clone, Default)]
pub struct StageSettings {
    /// Build no ML stage at all (FFmpeg media stages only).
    pub disable_ml: bool,
    /// Force the speech language (ISO 639-1) instead of detecting it.
    pub language: Option<String>,
}

/// The assembled stages.
#[derive(Debug, Default)]
pub struct Stages {
    /// Extractors, in configuration order (the engine orders them by dependency).
    pub extractors: Vec<Arc<dyn Extractor>>,
    /// Query encoders for hybrid search.
    pub query_encoders: Vec<Arc<dyn QueryEncoder>>,
    /// Why a stage was left out, one line each.
    pub notes: Vec<String>,
}

/// Build the default stages.
pub fn default_stages(settings: &StageSettings) -> Stages {
    let mut stages = Stages::default();
    if settings.disable_ml {
        return stages;
    }
    #[cfg(feature = "ml")]
    ml::add_all(settings, &mut stages);
    #[cfg(not(feature = "ml"))]
    stages
        .notes
        .push("ML stages not compiled in (build heimdex-server with feature `ml`)".into());
    stages
}

/// Only the query encoders (for searching; loads just the text embedding model).
pub fn query_encoders(settings: &StageSettings) -> Stages {
    let mut stages = Stages::default();
    if settings.disable_ml {
        return stages;
    }
    #[cfg(feature = "ml")]
    ml::add_query_encoders(&mut stages);
    stages
}

/// The face descriptor of the largest face in the image file at `path`, for searching by
/// example (`heimdex search --face PHOTO`). Errors are user-facing sentences.
pub fn face_descriptor(path: &std::path::Path) -> Result<Vec<f32>, String> {
    #[cfg(feature = "ml")]
    {
        ml::face_descriptor(path)
    }
    #[cfg(not(feature = "ml"))]
    {
        Err(format!(
            "searching by face needs the ML stages (feature `ml`); cannot read {}",
            path.display()
        ))
    }
}

/// The CLIP image vector of the picture at `path`, for searching by example frame
/// (`heimdex search --image PICTURE`). Needs a CLIP model (`HEIMDEX_CLIP_IMAGE_MODEL` and
/// `HEIMDEX_CLIP_TEXT_MODEL`, see docs/models.md). Errors are user-facing sentences.
pub fn image_query_vector(path: &std::path::Path) -> Result<Vec<f32>, String> {
    #[cfg(feature = "ml")]
    {
        let clip = heimdex_pipeline::ml::embed::ClipConfig::from_env().ok_or_else(|| {
            "searching by image needs a CLIP model: set HEIMDEX_CLIP_IMAGE_MODEL and \
             HEIMDEX_CLIP_TEXT_MODEL (docs/models.md)"
                .to_owned()
        })?;
        let stage =
            heimdex_pipeline::ml::embed::ClipImageStage::new(clip).map_err(|e| e.to_string())?;
        ml::image_vector(&stage, path)
    }
    #[cfg(not(feature = "ml"))]
    {
        Err(format!(
            "searching by image needs the ML stages; cannot read {}",
            path.display()
        ))
    }
}

#[cfg(feature = "ml")]
pub use ml::image_vector;

#[cfg(feature = "ml")]
mod ml {
    use std::sync::Arc;

    use heimdex_core::{ExtractError, QueryEncoder};
    use heimdex_pipeline::ml::MlError;
    use heimdex_pipeline::ml::asr::{AsrConfig, WhisperAsr};
    use heimdex_pipeline::ml::embed::{
        ClipConfig, ClipImageStage, EmbedConfig, TextEmbedder, TextEmbeddingStage,
    };
    use heimdex_pipeline::ml::faces::{FaceConfig, FaceStage};
    use heimdex_pipeline::ml::ocr::{OcrConfig, PaddleOcr};

    use super::{StageSettings, Stages};

    /// Query-time text encoder for the `text` space (the same model as the text stage).
    #[derive(Debug)]
    struct TextQuery(Arc<TextEmbedder>);

    impl QueryEncoder for TextQuery {
        fn space(&self) -> &str {
            "text"
        }
        fn encode(&self, text: &str) -> Result<Vec<f32>, ExtractError> {
            Ok(self.0.embed_one(text)?)
        }
    }

    fn env_path(name: &str) -> Option<std::path::PathBuf> {
        std::env::var_os(name)
            .filter(|v| !v.is_empty())
            .map(std::path::PathBuf::from)
    }

    fn embed_config() -> EmbedConfig {
        let mut cfg = EmbedConfig::default();
        if let Some(p) = env_path("HEIMDEX_TEXT_MODEL") {
            cfg.model = p;
        }
        if let Some(p) = env_path("HEIMDEX_TEXT_VOCAB") {
            cfg.vocab = p;
        }
        cfg
    }

    pub(super) fn add_query_encoders(stages: &mut Stages) {
        match TextEmbedder::new(embed_config()) {
            Ok(embedder) => stages
                .query_encoders
                .push(Arc::new(TextQuery(Arc::new(embedder)))),
            Err(e) => note(stages, "search by meaning", &e),
        }
    }

    /// The vector `stage` gives the picture at `path` (search by example frame).
    pub fn image_vector(
        stage: &ClipImageStage,
        path: &std::path::Path,
    ) -> Result<Vec<f32>, String> {
        let img = image::open(path)
            .map_err(|e| format!("{}: {e}", path.display()))?
            .to_rgb8();
        let (width, height) = img.dimensions();
        let frame = heimdex_core::FrameRef {
            shot_index: 0,
            time_s: 0.0,
            width,
            height,
            rgb: img.as_raw(),
        };
        stage
            .embed_frames(&[frame])
            .map_err(|e| e.to_string())?
            .pop()
            .ok_or_else(|| format!("{}: no vector", path.display()))
    }

    pub(super) fn face_descriptor(path: &std::path::Path) -> Result<Vec<f32>, String> {
        let img = image::open(path)
            .map_err(|e| format!("{}: {e}", path.display()))?
            .to_rgb8();
        let (w, h) = img.dimensions();
        let stage = FaceStage::from_default_models().map_err(|e| e.to_string())?;
        let faces = stage
            .faces(img.as_raw(), w, h)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        faces
            .into_iter()
            .filter_map(|f| f.embedding.map(|e| (f.bbox.w * f.bbox.h, e)))
            .max_by(|a, b| a.0.total_cmp(&b.0))
            .map(|(_, e)| e)
            .ok_or_else(|| format!("no face large enough to recognise in {}", path.display()))
    }

    fn note(stages: &mut Stages, stage: &str, e: &MlError) {
        stages.notes.push(format!("{stage} disabled: {e}"));
    }

    pub(super) fn add_all(settings: &StageSettings, stages: &mut Stages) {
        // Thread budget: ASR, OCR, faces (and CLIP) form one level and run concurrently;
        // the text embedding stage runs after them, alone.
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let mut asr_cfg = match &settings.language {
            // Forcing a language other than English needs the multilingual model.
            Some(l) if l != "en" => AsrConfig::multilingual(),
            _ => AsrConfig::default(),
        };
        asr_cfg.language = settings.language.clone();
        if let Some(p) = env_path("HEIMDEX_WHISPER_MODEL") {
            asr_cfg.model_path = p;
            asr_cfg.model_name = None;
        }
        if let Some(p) = env_path("HEIMDEX_VAD_MODEL") {
            asr_cfg.vad_path = Some(p);
        }
        asr_cfg.threads = cores.max(1);
        match WhisperAsr::new(asr_cfg) {
            Ok(asr) => stages.extractors.push(Arc::new(asr)),
            Err(e) => note(stages, "speech-to-text", &e),
        }
        let mut ocr_cfg = OcrConfig::default();
        ocr_cfg.threads = 1;
        if let Some(p) = env_path("HEIMDEX_OCR_DET_MODEL") {
            ocr_cfg.det_path = p;
        }
        if let Some(p) = env_path("HEIMDEX_OCR_REC_MODEL") {
            ocr_cfg.rec_path = p;
        }
        match PaddleOcr::new(ocr_cfg) {
            Ok(ocr) => stages.extractors.push(Arc::new(ocr)),
            Err(e) => note(stages, "OCR", &e),
        }
        let mut face_cfg = FaceConfig::default();
        if let Some(p) = env_path("HEIMDEX_FACE_DETECTOR") {
            face_cfg.detector_back = Some(p);
        }
        match FaceStage::new(face_cfg) {
            Ok(faces) => stages.extractors.push(Arc::new(faces)),
            Err(e) => note(stages, "faces", &e),
        }
        let mut embed_cfg = embed_config();
        embed_cfg.threads = cores.max(1);
        match TextEmbedder::new(embed_cfg) {
            Ok(embedder) => {
                let embedder = Arc::new(embedder);
                stages
                    .extractors
                    .push(Arc::new(TextEmbeddingStage::new(Arc::clone(&embedder))));
                stages.query_encoders.push(Arc::new(TextQuery(embedder)));
            }
            Err(e) => note(stages, "text embeddings", &e),
        }
        if let Some(clip) = ClipConfig::from_env() {
            match ClipImageStage::new(clip) {
                Ok(stage) => stages.extractors.push(Arc::new(stage)),
                Err(e) => note(stages, "image embeddings (CLIP)", &e),
            }
        }
    }
}
