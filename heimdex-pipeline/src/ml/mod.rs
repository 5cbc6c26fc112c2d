//! Machine-learning stages and their shared plumbing.
//!
//! - [`runtime`]: ONNX Runtime loaded at run time (`load-dynamic`) from the library shipped in
//!   the PyPI `onnxruntime` wheel; sessions with a bounded thread budget.
//! - [`models`]: the models directory (`HEIMDEX_MODELS`), model identity (name + SHA-256) for
//!   sidecar stage blocks, and "bring your own model" paths.
//!
//! Each stage lives in its own module behind its own Cargo feature.

pub mod models;
pub mod runtime;

#[cfg(feature = "asr")]
pub mod asr;
#[cfg(feature = "embed")]
pub mod embed;
#[cfg(feature = "faces")]
pub mod faces;
#[cfg(feature = "tags")]
pub mod objects;
#[cfg(feature = "ocr")]
pub mod ocr;
#[cfg(feature = "tags")]
mod planar;
#[cfg(feature = "tags")]
pub mod tags;
#[cfg(feature = "tags")]
pub mod visual;

/// Errors of the ML plumbing and stages.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MlError {
    /// The ONNX Runtime shared library could not be found or loaded.
    #[error("ONNX Runtime not available: {0} (run `make models`, or set ORT_DYLIB_PATH)")]
    Runtime(String),
    /// A model file is missing.
    #[error("model file not found: {path} (run `make models`, or point {hint} at your own file)")]
    ModelMissing {
        /// Where it was looked for.
        path: String,
        /// The setting that names it.
        hint: String,
    },
    /// A model could not be loaded or run.
    #[error("model {model}: {reason}")]
    Model {
        /// Model name or path.
        model: String,
        /// What went wrong.
        reason: String,
    },
    /// Reading a model file failed.
    #[error("{path}: {source}")]
    Io {
        /// Path.
        path: String,
        /// Underlying error.
        #[source]
        source: std::io::Error,
    },
}

impl MlError {
    /// Wrap an ort error for `model`.
    pub fn model(model: impl Into<String>, reason: impl std::fmt::Display) -> Self {
        Self::Model {
            model: model.into(),
            reason: reason.to_string(),
        }
    }
}

impl From<MlError> for heimdex_core::ExtractError {
    fn from(e: MlError) -> Self {
        match e {
            MlError::Model { model, reason } => Self::Model { model, reason },
            other => Self::Model {
                model: String::from("(setup)"),
                reason: other.to_string(),
            },
        }
    }
}
