//! Snapshot persistence.
//!
//! One file, `index.hdx`, in the index directory:
//!
//! ```text
//! magic "HDXIDX\0\x01" | u64 LE manifest length | manifest (JSON) | vectors (f32 LE) | u64 LE FNV-1a
//! ```
//!
//! The JSON manifest holds the vector space dimensions and every document (without vectors)
//! with the list of spaces it has a vector in; the vector block holds those vectors in the
//! same order, `dim` floats each. The trailer is an FNV-1a 64 checksum of everything before
//! it. Only documents are stored: postings and vector rows are rebuilt on load, so the
//! in-memory layout can change without a format change. Vectors are stored normalised.
//!
//! The file is written to `index.hdx.tmp`, synced, then renamed over the old snapshot, so a
//! crash leaves either the old or the new snapshot, never a torn one.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use heimdex_core::{IndexDoc, IndexError};
use serde::{Deserialize, Serialize};

use crate::embedded::{NAME, Prepared, State};

const FILE: &str = "index.hdx";
const TMP: &str = "index.hdx.tmp";
const MAGIC: &[u8; 8] = b"HDXIDX\x00\x01";

/// An IO failure, naming the path it happened on.
#[derive(Debug, thiserror::Error)]
#[error("{action} {}: {source}", path.display())]
pub(crate) struct IoError {
    action: &'static str,
    path: PathBuf,
    #[source]
    source: io::Error,
}

fn io_err<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> IndexError + 'a {
    move |source| IndexError::Backend {
        index: NAME,
        source: Box::new(IoError {
            action,
            path: path.to_path_buf(),
            source,
        }),
    }
}

fn corrupt(path: &Path, why: impl std::fmt::Display) -> IndexError {
    IndexError::Corrupt(format!("{}: {why}", path.display()))
}

#[derive(Serialize, Deserialize)]
struct Manifest {
    dims: BTreeMap<String, usize>,
    docs: Vec<ManifestDoc>,
}

#[derive(Serialize, Deserialize)]
struct ManifestDoc {
    doc: IndexDoc,
    spaces: Vec<String>,
}

/// FNV-1a, 64 bit.
#[derive(Debug, Clone, Copy)]
struct Fnv(u64);

impl Fnv {
    fn new() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }
    fn update(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
}

struct Hashing<W> {
    inner: W,
    hash: Fnv,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// The snapshot file of an index directory.
pub(crate) fn snapshot_path(dir: &Path) -> PathBuf {
    dir.join(FILE)
}

/// Write `state` atomically into `dir`.
pub(crate) fn save(dir: &Path, state: &State) -> Result<(), IndexError> {
    fs::create_dir_all(dir).map_err(io_err("create directory", dir))?;
    let mut docs = Vec::new();
    let mut rows: Vec<&[f32]> = Vec::new();
    for shard in state.shards.values() {
        for (doc, slot) in shard.docs() {
            let mut spaces = Vec::new();
            for name in shard.spaces.keys() {
                if let Some(v) = shard.vector(name, slot) {
                    spaces.push(name.clone());
                    rows.push(v);
                }
            }
            docs.push(ManifestDoc {
                doc: doc.clone(),
                spaces,
            });
        }
    }
    let manifest = Manifest {
        dims: state.dims.clone(),
        docs,
    };
    let json = serde_json::to_vec(&manifest).map_err(|e| IndexError::Backend {
        index: NAME,
        source: Box::new(e),
    })?;

    let tmp = dir.join(TMP);
    let file = fs::File::create(&tmp).map_err(io_err("create", &tmp))?;
    let mut w = Hashing {
        inner: BufWriter::with_capacity(1 << 20, file),
        hash: Fnv::new(),
    };
    let write = |w: &mut Hashing<BufWriter<fs::File>>| -> io::Result<()> {
        w.write_all(MAGIC)?;
        w.write_all(&(json.len() as u64).to_le_bytes())?;
        w.write_all(&json)?;
        let mut buf = Vec::new();
        for row in &rows {
            buf.clear();
            for x in *row {
                buf.extend_from_slice(&x.to_le_bytes());
            }
            w.write_all(&buf)?;
        }
        let sum = w.hash.0;
        w.inner.write_all(&sum.to_le_bytes())?;
        w.flush()
    };
    write(&mut w).map_err(io_err("write", &tmp))?;
    let file = w
        .inner
        .into_inner()
        .map_err(|e| io_err("write", &tmp)(e.into_error()))?;
    file.sync_all().map_err(io_err("sync", &tmp))?;
    drop(file);
    let dest = snapshot_path(dir);
    fs::rename(&tmp, &dest).map_err(io_err("rename into", &dest))?;
    // Make the rename durable; not every platform can open a directory, so best effort.
    if let Ok(d) = fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Load the snapshot in `dir` (an empty state if there is none yet).
pub(crate) fn load(dir: &Path) -> Result<State, IndexError> {
    fs::create_dir_all(dir).map_err(io_err("create directory", dir))?;
    let path = snapshot_path(dir);
    let bytes = match fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(State::default()),
        Err(e) => return Err(io_err("read", &path)(e)),
    };
    let header = MAGIC.len() + 8;
    if bytes.len() < header + 8 {
        return Err(corrupt(&path, "file too short"));
    }
    if &bytes[..MAGIC.len()] != MAGIC {
        return Err(corrupt(&path, "not a heimdex index snapshot (bad magic)"));
    }
    let (body, trailer) = bytes.split_at(bytes.len() - 8);
    let mut sum = Fnv::new();
    sum.update(body);
    if trailer != sum.0.to_le_bytes() {
        return Err(corrupt(&path, "checksum mismatch"));
    }
    let mut len8 = [0u8; 8];
    len8.copy_from_slice(&body[MAGIC.len()..header]);
    let json_len = usize::try_from(u64::from_le_bytes(len8))
        .ok()
        .filter(|&n| n <= body.len() - header)
        .ok_or_else(|| corrupt(&path, "manifest length out of range"))?;
    let manifest: Manifest = serde_json::from_slice(&body[header..header + json_len])
        .map_err(|e| corrupt(&path, format_args!("manifest: {e}")))?;
    let mut blob = body[header + json_len..].chunks_exact(4);
    let mut docs = Vec::with_capacity(manifest.docs.len());
    for md in manifest.docs {
        let mut doc = md.doc;
        for space in md.spaces {
            let dim = *manifest
                .dims
                .get(&space)
                .ok_or_else(|| corrupt(&path, format_args!("unknown vector space `{space}`")))?;
            let mut v = Vec::with_capacity(dim);
            for _ in 0..dim {
                let c = blob
                    .next()
                    .ok_or_else(|| corrupt(&path, "vector data truncated"))?;
                v.push(f32::from_le_bytes([c[0], c[1], c[2], c[3]]));
            }
            doc.vectors.insert(space, v);
        }
        docs.push(doc);
    }
    if blob.next().is_some() || !blob.remainder().is_empty() {
        return Err(corrupt(&path, "trailing vector data"));
    }
    let mut state = State {
        dims: manifest.dims,
        ..State::default()
    };
    let (prepared, new_dims): (Vec<Prepared>, _) = state
        .prepare(&docs)
        .map_err(|e| corrupt(&path, format_args!("invalid document: {e}")))?;
    drop(docs);
    state.apply(prepared, new_dims)?;
    Ok(state)
}
