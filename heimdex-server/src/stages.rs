//! The default extraction stages, assembled from the models that are available.
//!
//! Each ML stage is added when its model files load; a stage whose model is missing is
//! left out with a note saying how to get it (`make models`), so the pipeline always runs.

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

#[cfg(feature = "ml")]
mod ml {
    use std::sync::Arc;

    use heimdex_pipeline::ml::MlError;
    use heimdex_pipeline::ml::ocr::{OcrConfig, PaddleOcr};

    use super::{StageSettings, Stages};

    fn note(stages: &mut Stages, stage: &str, e: &MlError) {
        stages.notes.push(format!("{stage} disabled: {e}"));
    }

    pub(super) fn add_all(_settings: &StageSettings, stages: &mut Stages) {
        match PaddleOcr::new(OcrConfig::default()) {
            Ok(ocr) => stages.extractors.push(Arc::new(ocr)),
            Err(e) => note(stages, "OCR", &e),
        }
    }
}
