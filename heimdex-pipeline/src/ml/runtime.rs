//! ONNX Runtime, loaded at run time.
//!
//! `ort` is built with `load-dynamic`: no runtime is downloaded or linked at build time. The
//! shared library is found, in order, at `$ORT_DYLIB_PATH`, then
//! `$HEIMDEX_MODELS/onnxruntime/libonnxruntime.so` (placed there by `make models` from the
//! PyPI `onnxruntime` wheel).

use std::path::{Path, PathBuf};

use std::sync::OnceLock;

use ort::environment::Environment;
use ort::session::Session;
use ort::session::builder::GraphOptimizationLevel;

use super::MlError;
use super::models::models_dir;

static INIT: OnceLock<Result<(PathBuf, Environment), String>> = OnceLock::new();

/// Where the ONNX Runtime library is expected.
pub fn dylib_path() -> PathBuf {
    std::env::var_os("ORT_DYLIB_PATH")
        .map(PathBuf::from)
        .unwrap_or_else(|| models_dir().join("onnxruntime").join("libonnxruntime.so"))
}

/// Load ONNX Runtime once per process and return its environment. Later calls return the
/// first outcome.
pub fn init() -> Result<&'static Environment, MlError> {
    let outcome = INIT.get_or_init(|| {
        let path = dylib_path();
        if !path.exists() {
            return Err(format!("{} does not exist", path.display()));
        }
        ort::init_from(&path)
            .map_err(|e| format!("{}: {e}", path.display()))?
            .with_name("heimdex")
            .build()
            .map(|env| (path.clone(), env))
            .map_err(|e| format!("{}: {e}", path.display()))
    });
    match outcome {
        Ok((_, env)) => Ok(env),
        Err(e) => Err(MlError::Runtime(e.clone())),
    }
}

/// A session for the ONNX model at `path`, using at most `threads` intra-op threads
/// (the pipeline's thread budget is shared between stages).
pub fn session(path: &Path, threads: usize) -> Result<Session, MlError> {
    let env = init()?;
    if !path.exists() {
        return Err(MlError::ModelMissing {
            path: path.display().to_string(),
            hint: "the stage's model setting".into(),
        });
    }
    let name = path.display().to_string();
    let err = |e: &dyn std::fmt::Display| MlError::model(name.clone(), e);
    let mut builder = Session::builder(env)
        .map_err(|e| err(&e))?
        .with_optimization_level(GraphOptimizationLevel::Level3)
        .map_err(|e| err(&e))?
        .with_intra_threads(threads.max(1))
        .map_err(|e| err(&e))?
        .with_inter_threads(1)
        .map_err(|e| err(&e))?;
    builder.commit_from_file(path).map_err(|e| err(&e))
}
