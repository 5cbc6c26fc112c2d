//! The default extraction stages, assembled from the models that are available.
//!
//! Each ML stage is added when its model files exist; a stage whose model is missing is
//! left out with a note saying how to get it (`make models`), so the pipeline always runs.
//!
//! Assembly loads no model. Each stage knows its identity ([`Extractor::info`]: name,
//! version, model name and SHA-256, parameters) and [`Extractor::needs`] without its weights
//! (the files' hashes are cached next to them, see
//! `heimdex_pipeline::ml::models::sha256_file`), and loads its model on its first
//! [`Extractor::extract`] ([`LazyExtractor`]); query encoders load on their first
//! [`QueryEncoder::encode`]. So a re-index that finds nothing to do, or a search that needs
//! no vector, never pays for loading models. A model that fails to load fails the job that
//! needed it with [`ExtractError::Model`], as every later use in the process does.
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
//! | `HEIMDEX_TAGS_MODEL`, `HEIMDEX_TAGS_LABELS` | visual tags | an ImageNet-style classifier ONNX (`rgb` `[N,3,224,224]` 0..255 in, logits out) + one label line per class |
//! | `HEIMDEX_TEXT_MODEL`, `HEIMDEX_TEXT_VOCAB` | text embeddings | BERT-style ONNX + `vocab.txt` |
//! | `HEIMDEX_CLIP_IMAGE_MODEL`, `HEIMDEX_CLIP_TEXT_MODEL` | image embeddings | CLIP ONNX towers |

use std::sync::{Arc, OnceLock};

use heimdex_core::sidecar::ExtractorInfo;
use heimdex_core::{ExtractContext, ExtractError, Extractor, Needs, QueryEncoder, StageData};

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

/// A value (a loaded model) built on first use: once per process however many threads ask
/// at the same time; a failed build is remembered and reported to every later caller.
pub struct Lazy<T> {
    what: String,
    load: Box<dyn Fn() -> Result<T, ExtractError> + Send + Sync>,
    cell: OnceLock<Result<T, (String, String)>>,
}

impl<T> std::fmt::Debug for Lazy<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = match self.cell.get() {
            None => "not loaded",
            Some(Ok(_)) => "loaded",
            Some(Err(_)) => "failed",
        };
        f.debug_struct("Lazy")
            .field("what", &self.what)
            .field("state", &state)
            .finish()
    }
}

impl<T> Lazy<T> {
    /// `load` builds the value of `what` (a model name, for errors) on first use.
    pub fn new(
        what: impl Into<String>,
        load: impl Fn() -> Result<T, ExtractError> + Send + Sync + 'static,
    ) -> Self {
        Self {
            what: what.into(),
            load: Box::new(load),
            cell: OnceLock::new(),
        }
    }

    /// The value, built now if this is the first use. A build that failed (now or before)
    /// is [`ExtractError::Model`].
    pub fn get(&self) -> Result<&T, ExtractError> {
        let loaded = self.cell.get_or_init(|| {
            let started = std::time::Instant::now();
            let out = (self.load)().map_err(|e| match e {
                ExtractError::Model { model, reason } => (model, reason),
                other => (self.what.clone(), other.to_string()),
            });
            tracing::debug!(what = %self.what, ms = started.elapsed().as_millis() as u64, ok = out.is_ok(), "model loaded");
            out
        });
        loaded
            .as_ref()
            .map_err(|(model, reason)| ExtractError::Model {
                model: model.clone(),
                reason: reason.clone(),
            })
    }

    /// Whether the value has been built (successfully or not).
    pub fn is_loaded(&self) -> bool {
        self.cell.get().is_some()
    }
}

/// An [`Extractor`] whose identity and needs are known up front and whose stage (model) is
/// built on the first [`extract`](Extractor::extract). The built stage must report the same
/// [`info`](Extractor::info) and [`needs`](Extractor::needs) as declared, else the job fails
/// with [`ExtractError::Model`] (e.g. the model file was replaced after assembly), so a
/// sidecar never records an identity other than the one that produced its data.
#[derive(Debug)]
pub struct LazyExtractor<T> {
    info: ExtractorInfo,
    needs: Needs,
    stage: Arc<Lazy<T>>,
}

impl<T: Extractor> LazyExtractor<T> {
    /// A stage with identity `info` and `needs`, built by `stage` on first use.
    pub fn new(info: ExtractorInfo, needs: Needs, stage: Arc<Lazy<T>>) -> Self {
        Self { info, needs, stage }
    }

    /// Whether the stage has been built.
    pub fn is_loaded(&self) -> bool {
        self.stage.is_loaded()
    }
}

impl<T: Extractor> Extractor for LazyExtractor<T> {
    fn info(&self) -> ExtractorInfo {
        self.info.clone()
    }

    fn needs(&self) -> Needs {
        self.needs.clone()
    }

    fn extract(&self, ctx: &ExtractContext<'_>) -> Result<StageData, ExtractError> {
        let stage = self.stage.get()?;
        let (info, needs) = (stage.info(), stage.needs());
        if info != self.info || needs != self.needs {
            let model = self.info.model.as_ref();
            return Err(ExtractError::Model {
                model: model.map_or_else(|| self.info.name.clone(), |m| m.name.clone()),
                reason: format!(
                    "the loaded stage is not the one assembled (identity {:?} / needs {:?}, \
                     expected {:?} / {:?}); was a model file replaced? Restart to pick it up",
                    info, needs, self.info, self.needs
                ),
            });
        }
        stage.extract(ctx)
    }
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

/// Only the query encoders (for searching; the text embedding model loads when a query is
/// first encoded).
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

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use heimdex_core::sidecar::{CustomBlock, Sidecar, SidecarAsset};

    use super::*;

    #[derive(Debug)]
    struct Fixed(&'static str);

    impl Extractor for Fixed {
        fn info(&self) -> ExtractorInfo {
            ExtractorInfo {
                name: "fixed".into(),
                version: self.0.into(),
                model: None,
                params: None,
            }
        }
        fn needs(&self) -> Needs {
            Needs::keyframes()
        }
        fn extract(&self, _: &ExtractContext<'_>) -> Result<StageData, ExtractError> {
            Ok(StageData::Custom(CustomBlock::default()))
        }
    }

    fn run(e: &dyn Extractor) -> Result<StageData, ExtractError> {
        let sidecar = Sidecar::new(SidecarAsset {
            id: "a".into(),
            tenant: "t".into(),
            source: "s".into(),
            key: "k".into(),
            version: "1".into(),
            size: 0,
        });
        let progress = |_: f32| {};
        e.extract(&ExtractContext::new(&sidecar, &[], None, &progress))
    }

    #[test]
    fn loads_once_on_first_extract_across_threads() {
        let loads = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&loads);
        let lazy = Arc::new(Lazy::new("fixed", move || {
            counted.fetch_add(1, Ordering::SeqCst);
            std::thread::sleep(std::time::Duration::from_millis(20));
            Ok(Fixed("1"))
        }));
        let stage = LazyExtractor::new(Fixed("1").info(), Needs::keyframes(), lazy);
        // Identity and needs are answered without loading.
        assert_eq!(stage.info().version, "1");
        assert_eq!(stage.needs(), Needs::keyframes());
        assert!(!stage.is_loaded());
        assert_eq!(loads.load(Ordering::SeqCst), 0);
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| run(&stage).expect("extract"));
            }
        });
        assert!(stage.is_loaded());
        assert_eq!(loads.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn a_loaded_stage_with_another_identity_is_refused() {
        let lazy = Arc::new(Lazy::new("fixed", || Ok(Fixed("2"))));
        let stage = LazyExtractor::new(Fixed("1").info(), Needs::keyframes(), lazy);
        match run(&stage) {
            Err(ExtractError::Model { model, reason }) => {
                assert_eq!(model, "fixed");
                assert!(reason.contains("not the one assembled"), "{reason}");
            }
            other => panic!("expected a model error, got {other:?}"),
        }
    }

    #[test]
    fn load_errors_keep_their_model_name() {
        let lazy: Lazy<Fixed> = Lazy::new("fallback", || {
            Err(ExtractError::Failed("disk on fire".into()))
        });
        match lazy.get() {
            Err(ExtractError::Model { model, reason }) => {
                assert_eq!(
                    (model.as_str(), reason.as_str()),
                    ("fallback", "disk on fire")
                );
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            format!("{lazy:?}"),
            r#"Lazy { what: "fallback", state: "failed" }"#
        );
    }
}

#[cfg(feature = "ml")]
mod ml {
    use std::sync::Arc;

    use heimdex_core::sidecar::ExtractorInfo;
    use heimdex_core::{ExtractError, Extractor, Needs, QueryEncoder};
    use heimdex_pipeline::ml::MlError;
    use heimdex_pipeline::ml::asr::{AsrConfig, WhisperAsr};
    use heimdex_pipeline::ml::embed::{
        ClipConfig, ClipImageStage, EmbedConfig, TextEmbedder, TextEmbeddingStage,
    };
    use heimdex_pipeline::ml::faces::{FaceConfig, FaceStage};
    use heimdex_pipeline::ml::ocr::{OcrConfig, PaddleOcr};
    use heimdex_pipeline::ml::runtime;
    use heimdex_pipeline::ml::visual::{VisualConfig, VisualStage};

    use super::{Lazy, LazyExtractor, StageSettings, Stages};

    /// Query-time text encoder for the `text` space (the same model as the text stage),
    /// loaded on the first query it encodes.
    #[derive(Debug)]
    struct TextQuery(Arc<Lazy<TextEmbeddingStage>>);

    impl QueryEncoder for TextQuery {
        fn space(&self) -> &str {
            "text"
        }
        fn encode(&self, text: &str) -> Result<Vec<f32>, ExtractError> {
            Ok(self.0.get()?.embedder().embed_one(text)?)
        }
        fn encode_batch(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, ExtractError> {
            Ok(self.0.get()?.embedder().embed(texts)?)
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

    /// The ONNX Runtime library exists (it is loaded with the first ONNX model).
    fn onnx_runtime() -> Result<(), MlError> {
        let path = runtime::dylib_path();
        if path.exists() {
            Ok(())
        } else {
            Err(MlError::Runtime(format!(
                "{} does not exist",
                path.display()
            )))
        }
    }

    /// `new(config)` on first use, for the model `what`.
    fn lazy<T: 'static, C>(what: &str, config: C, new: fn(C) -> Result<T, MlError>) -> Arc<Lazy<T>>
    where
        C: Clone + Send + Sync + 'static,
    {
        Arc::new(Lazy::new(what, move || Ok(new(config.clone())?)))
    }

    /// The text embedding stage over `TextEmbedder::new(config)`, built on first use.
    fn lazy_text(config: EmbedConfig) -> Arc<Lazy<TextEmbeddingStage>> {
        lazy(&config.name.clone(), config, |c| {
            Ok(TextEmbeddingStage::new(Arc::new(TextEmbedder::new(c)?)))
        })
    }

    /// Add the stage built by `stage` with identity `described`, or a note saying why the
    /// stage is left out.
    fn add<T: Extractor + 'static>(
        stages: &mut Stages,
        label: &str,
        described: Result<ExtractorInfo, MlError>,
        needs: Needs,
        stage: Arc<Lazy<T>>,
    ) {
        match described {
            Ok(info) => stages
                .extractors
                .push(Arc::new(LazyExtractor::new(info, needs, stage))),
            Err(e) => note(stages, label, &e),
        }
    }

    pub(super) fn add_query_encoders(stages: &mut Stages) {
        let cfg = embed_config();
        match onnx_runtime().and_then(|()| TextEmbeddingStage::describe(&cfg)) {
            Ok(_) => stages
                .query_encoders
                .push(Arc::new(TextQuery(lazy_text(cfg)))),
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
        let onnx = onnx_runtime();
        let with_onnx = |described: Result<ExtractorInfo, MlError>| {
            onnx.as_ref()
                .map_err(|e| MlError::Runtime(e.to_string()))
                .and(described)
        };
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
        // whisper.cpp needs no ONNX Runtime; the VAD does.
        let described = match asr_cfg.vad_path {
            Some(_) => with_onnx(WhisperAsr::describe(&asr_cfg)),
            None => WhisperAsr::describe(&asr_cfg),
        };
        let asr = lazy("whisper", asr_cfg, WhisperAsr::new);
        add(stages, "speech-to-text", described, Needs::audio(), asr);

        let mut ocr_cfg = OcrConfig::default();
        ocr_cfg.threads = 1;
        if let Some(p) = env_path("HEIMDEX_OCR_DET_MODEL") {
            ocr_cfg.det_path = p;
        }
        if let Some(p) = env_path("HEIMDEX_OCR_REC_MODEL") {
            ocr_cfg.rec_path = p;
        }
        let described = with_onnx(PaddleOcr::describe(&ocr_cfg));
        let ocr = lazy(&ocr_cfg.model_name.clone(), ocr_cfg, PaddleOcr::new);
        add(
            stages,
            "OCR",
            described,
            Needs::keyframes_and_samples(),
            ocr,
        );

        let mut face_cfg = FaceConfig::default();
        if let Some(p) = env_path("HEIMDEX_FACE_DETECTOR") {
            face_cfg.detector_back = Some(p);
        }
        let described = with_onnx(FaceStage::describe(&face_cfg));
        let faces = lazy("faces", face_cfg, FaceStage::new);
        add(stages, "faces", described, Needs::keyframes(), faces);

        let mut visual_cfg = VisualConfig::default();
        if let Some(p) = env_path("HEIMDEX_TAGS_MODEL") {
            visual_cfg.tagger.model = p;
        }
        if let Some(p) = env_path("HEIMDEX_TAGS_LABELS") {
            visual_cfg.tagger.labels = p;
        }
        visual_cfg.tagger.threads = 1;
        let described = with_onnx(VisualStage::describe(&visual_cfg));
        let visual = lazy(
            &visual_cfg.tagger.model_name.clone(),
            visual_cfg,
            VisualStage::new,
        );
        add(
            stages,
            "visual tags",
            described,
            Needs::keyframes_and_samples(),
            visual,
        );

        let mut embed_cfg = embed_config();
        embed_cfg.threads = cores.max(1);
        let described = with_onnx(TextEmbeddingStage::describe(&embed_cfg));
        let text = lazy_text(embed_cfg);
        if described.is_ok() {
            stages
                .query_encoders
                .push(Arc::new(TextQuery(Arc::clone(&text))));
        }
        let mut needs = Needs::default();
        needs.after = vec!["transcript".into(), "ocr".into(), "visual".into()];
        add(stages, "text embeddings", described, needs, text);

        if let Some(clip) = ClipConfig::from_env() {
            let described = with_onnx(ClipImageStage::describe(&clip));
            let stage = lazy(&clip.name.clone(), clip, ClipImageStage::new);
            add(
                stages,
                "image embeddings (CLIP)",
                described,
                Needs::keyframes(),
                stage,
            );
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        /// Every default stage whose models are installed declares, before loading, exactly
        /// the identity and needs its loaded model reports.
        #[test]
        fn declared_identity_and_needs_match_the_loaded_stages() {
            let mut stages = Stages::default();
            add_all(&StageSettings::default(), &mut stages);
            if stages.extractors.is_empty() {
                eprintln!(
                    "skipped: no models installed (make models): {:?}",
                    stages.notes
                );
                return;
            }
            let loaded: Vec<Box<dyn Extractor>> = {
                let mut v: Vec<Box<dyn Extractor>> = Vec::new();
                let asr = AsrConfig {
                    threads: 1,
                    ..AsrConfig::default()
                };
                if let Ok(s) = WhisperAsr::new(asr) {
                    v.push(Box::new(s));
                }
                if let Ok(s) = PaddleOcr::new(OcrConfig::default()) {
                    v.push(Box::new(s));
                }
                if let Ok(s) = FaceStage::new(FaceConfig::default()) {
                    v.push(Box::new(s));
                }
                if let Ok(e) = TextEmbedder::new(EmbedConfig::default()) {
                    v.push(Box::new(TextEmbeddingStage::new(Arc::new(e))));
                }
                v
            };
            for l in &loaded {
                let info = l.info();
                let declared = stages
                    .extractors
                    .iter()
                    .find(|e| e.info().name == info.name)
                    .unwrap_or_else(|| panic!("stage {} not assembled", info.name));
                assert_eq!(declared.info(), info);
                assert_eq!(declared.needs(), l.needs(), "{}", info.name);
            }
        }

        #[test]
        fn a_model_that_fails_to_load_fails_each_use_with_a_typed_error() {
            let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
            let counted = Arc::clone(&calls);
            let broken: Arc<Lazy<TextEmbeddingStage>> = Arc::new(Lazy::new("minilm", move || {
                counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let mut cfg = EmbedConfig::default();
                cfg.model = "/nonexistent/model.onnx".into();
                Ok(TextEmbeddingStage::new(Arc::new(TextEmbedder::new(cfg)?)))
            }));
            let query = TextQuery(Arc::clone(&broken));
            for _ in 0..3 {
                match query.encode("hello") {
                    Err(ExtractError::Model { .. }) => {}
                    other => panic!("expected a model error, got {other:?}"),
                }
            }
            assert_eq!(
                calls.load(std::sync::atomic::Ordering::SeqCst),
                1,
                "loaded once"
            );
            assert!(broken.is_loaded());
        }
    }
}

/// A development switch (`HEIMDEX_DEV_FAIL_STAGE=NAME` on the server): a stage that fails
/// every job with a transient error, so an operator can watch a job fail, back off, be
/// retried and end failed (`make test-job-fail`). Never part of a default stage set.
#[derive(Debug)]
pub struct FailingStage {
    name: String,
}

impl FailingStage {
    /// A stage named `dev.fail.NAME`.
    pub fn new(name: &str) -> Self {
        Self {
            name: format!("dev.fail.{name}"),
        }
    }
}

impl Extractor for FailingStage {
    fn info(&self) -> heimdex_core::sidecar::ExtractorInfo {
        heimdex_core::sidecar::ExtractorInfo {
            name: self.name.clone(),
            version: "1".into(),
            model: None,
            params: None,
        }
    }

    fn needs(&self) -> heimdex_core::Needs {
        heimdex_core::Needs::default()
    }

    fn extract(
        &self,
        _ctx: &heimdex_core::ExtractContext<'_>,
    ) -> Result<heimdex_core::StageData, heimdex_core::ExtractError> {
        Err(heimdex_core::ExtractError::Failed(format!(
            "{}: failing on purpose (HEIMDEX_DEV_FAIL_STAGE is set)",
            self.name
        )))
    }
}
