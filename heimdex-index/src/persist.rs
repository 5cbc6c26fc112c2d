//! Snapshot persistence.
//!
//! One file, `index.hdx`, in the index directory (format 2):
//!
//! ```text
//! magic "HDXIDX\0\x02" | u64 LE manifest length | manifest (JSON) | spaces (binary) | u64 LE FNV-1a
//! ```
//!
//! The JSON manifest holds the vector space dimensions and, per tenant, the slot table size,
//! every document (without vectors) with its slot, and each vector space's row count and
//! graph header. The binary block follows the manifest's order: per tenant and space, the
//! row → slot table (`u32`), deleted flags (`u8`), the normalised rows (`f32`), and when the
//! space has an HNSW graph its link tables (`u32`: layer 0 fixed-size, then per node the
//! length and contents of its upper-layer table). All integers and floats are little
//! endian. The trailer is an FNV-1a 64 checksum of everything before it.
//!
//! Postings are rebuilt on load (tokenizing is fast: ~1 s per 300k documents); vector rows
//! and graphs are restored as saved, so reopening a large index does not rebuild its graph
//! (which takes ~10 minutes per million 384-d vectors on two cores). Format 1 snapshots
//! (documents with their vectors, everything rebuilt on load) are still read.
//!
//! The file is written to `index.hdx.tmp`, synced, then renamed over the old snapshot, so a
//! crash leaves either the old or the new snapshot, never a torn one.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use heimdex_core::{IndexDoc, IndexError};
use serde::{Deserialize, Serialize};

use heimdex_core::TenantId;

use crate::embedded::{NAME, Prepared, Shard, State};
use crate::hnsw::{Hnsw, M, M0};
use crate::vector::VectorSpace;

const FILE: &str = "index.hdx";
const TMP: &str = "index.hdx.tmp";
const MAGIC_V1: &[u8; 8] = b"HDXIDX\x00\x01";
const MAGIC: &[u8; 8] = b"HDXIDX\x00\x02";

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

/// Format 1 manifest: documents with the spaces they have a vector in.
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

/// Format 2 manifest.
#[derive(Serialize, Deserialize)]
struct ManifestV2 {
    dims: BTreeMap<String, usize>,
    tenants: Vec<TenantManifest>,
}

#[derive(Serialize, Deserialize)]
struct TenantManifest {
    tenant: TenantId,
    slot_count: usize,
    /// Free slots, in reuse order (a stack: last first).
    #[serde(default)]
    free: Vec<u32>,
    docs: Vec<SlotDoc>,
    spaces: Vec<SpaceManifest>,
}

#[derive(Serialize, Deserialize)]
struct SlotDoc {
    slot: u32,
    doc: IndexDoc,
}

#[derive(Serialize, Deserialize)]
struct SpaceManifest {
    name: String,
    rows: usize,
    graph: Option<GraphManifest>,
}

#[derive(Serialize, Deserialize)]
struct GraphManifest {
    entry: u32,
    top: usize,
    rng: u64,
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
    let mut tenants = Vec::with_capacity(state.shards.len());
    for (tenant, shard) in &state.shards {
        let docs = shard
            .docs()
            .map(|(doc, slot)| SlotDoc {
                slot,
                doc: doc.clone(),
            })
            .collect();
        let spaces = shard
            .spaces
            .iter()
            .map(|(name, space)| {
                let (_, _, slots, _, graph) = space.parts();
                SpaceManifest {
                    name: name.clone(),
                    rows: slots.len(),
                    graph: graph.map(|g| {
                        let p = g.parts();
                        GraphManifest {
                            entry: p.entry,
                            top: p.top,
                            rng: p.rng,
                        }
                    }),
                }
            })
            .collect();
        tenants.push(TenantManifest {
            tenant: tenant.clone(),
            slot_count: shard.slot_count(),
            free: shard.free_slots().to_vec(),
            docs,
            spaces,
        });
    }
    let manifest = ManifestV2 {
        dims: state.dims.clone(),
        tenants,
    };
    let json = serde_json::to_vec(&manifest).map_err(|e| IndexError::Backend {
        index: NAME,
        source: Box::new(e),
    })?;
    drop(manifest);

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
        let mut buf = Vec::with_capacity(1 << 16);
        for shard in state.shards.values() {
            for space in shard.spaces.values() {
                let (_, data, slots, deleted, graph) = space.parts();
                write_u32s(w, &mut buf, slots)?;
                w.write_all(&deleted.iter().map(|&d| u8::from(d)).collect::<Vec<u8>>())?;
                for chunk in data.chunks(1 << 14) {
                    buf.clear();
                    for x in chunk {
                        buf.extend_from_slice(&x.to_le_bytes());
                    }
                    w.write_all(&buf)?;
                }
                if let Some(g) = graph {
                    let p = g.parts();
                    write_u32s(w, &mut buf, p.layer0)?;
                    for u in p.upper {
                        w.write_all(&(u.len() as u32).to_le_bytes())?;
                        write_u32s(w, &mut buf, u)?;
                    }
                }
            }
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

fn write_u32s(w: &mut impl Write, buf: &mut Vec<u8>, xs: &[u32]) -> io::Result<()> {
    for chunk in xs.chunks(1 << 14) {
        buf.clear();
        for x in chunk {
            buf.extend_from_slice(&x.to_le_bytes());
        }
        w.write_all(buf)?;
    }
    Ok(())
}

/// Why reading a snapshot failed: the file system, or the bytes themselves.
enum ReadError {
    Io(io::Error),
    Corrupt(String),
}

impl From<String> for ReadError {
    fn from(s: String) -> Self {
        Self::Corrupt(s)
    }
}

impl From<&str> for ReadError {
    fn from(s: &str) -> Self {
        Self::Corrupt(s.to_owned())
    }
}

/// The snapshot body (everything before the checksum), read sequentially and hashed as it
/// is read, so loading never holds the whole file in memory. Every length is checked
/// against the bytes left before anything is allocated.
struct Body<R> {
    inner: io::Take<R>,
    hash: Fnv,
}

impl<R: io::Read> Body<R> {
    fn left(&self) -> u64 {
        self.inner.limit()
    }

    fn fill(&mut self, buf: &mut [u8]) -> Result<(), ReadError> {
        self.inner.read_exact(buf).map_err(|e| match e.kind() {
            io::ErrorKind::UnexpectedEof => ReadError::Corrupt("data truncated".into()),
            _ => ReadError::Io(e),
        })?;
        self.hash.update(buf);
        Ok(())
    }

    fn bytes(&mut self, n: usize) -> Result<Vec<u8>, ReadError> {
        if n as u64 > self.left() {
            return Err("data truncated".into());
        }
        let mut buf = vec![0; n];
        self.fill(&mut buf)?;
        Ok(buf)
    }

    /// `n` little-endian 4-byte words, converted by `conv`, read in 64 KiB chunks.
    fn words<T>(&mut self, n: usize, conv: impl Fn([u8; 4]) -> T) -> Result<Vec<T>, ReadError> {
        let total = n.checked_mul(4).ok_or("length overflow")?;
        if total as u64 > self.left() {
            return Err("data truncated".into());
        }
        let mut out = Vec::with_capacity(n);
        let mut buf = vec![0u8; total.min(1 << 16)];
        let mut left = total;
        while left > 0 {
            let k = left.min(buf.len());
            self.fill(&mut buf[..k])?;
            out.extend(
                buf[..k]
                    .chunks_exact(4)
                    .map(|c| conv([c[0], c[1], c[2], c[3]])),
            );
            left -= k;
        }
        Ok(out)
    }

    fn u32s(&mut self, n: usize) -> Result<Vec<u32>, ReadError> {
        self.words(n, u32::from_le_bytes)
    }
}

/// Load the snapshot in `dir` (an empty state if there is none yet).
pub(crate) fn load(dir: &Path) -> Result<State, IndexError> {
    fs::create_dir_all(dir).map_err(io_err("create directory", dir))?;
    let path = snapshot_path(dir);
    let file = match fs::File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(State::default()),
        Err(e) => return Err(io_err("open", &path)(e)),
    };
    let size = file.metadata().map_err(io_err("read", &path))?.len();
    let header = (MAGIC.len() + 8) as u64;
    if size < header + 8 {
        return Err(corrupt(&path, "file too short"));
    }
    let mut reader = io::BufReader::with_capacity(1 << 20, file);
    let mut body = Body {
        inner: (&mut reader).take(size - 8),
        hash: Fnv::new(),
    };
    let failed = |e: ReadError| match e {
        ReadError::Io(e) => io_err("read", &path)(e),
        ReadError::Corrupt(why) => corrupt(&path, why),
    };
    let head = body.bytes(header as usize).map_err(failed)?;
    let magic = &head[..MAGIC.len()];
    if magic != MAGIC && magic != MAGIC_V1 {
        return Err(corrupt(&path, "not a heimdex index snapshot (bad magic)"));
    }
    let mut len8 = [0u8; 8];
    len8.copy_from_slice(&head[MAGIC.len()..]);
    let json_len = usize::try_from(u64::from_le_bytes(len8))
        .ok()
        .filter(|&n| n as u64 <= body.left())
        .ok_or_else(|| corrupt(&path, "manifest length out of range"))?;
    let json = body.bytes(json_len).map_err(failed)?;
    let state = if magic == MAGIC_V1 {
        let blob = body.bytes(body.left() as usize).map_err(failed)?;
        load_v1(&path, &json, &blob)
    } else {
        read_v2(&json, &mut body).map_err(failed)
    };
    // The checksum covers everything read; a state built from bad bytes is dropped here.
    if body.left() != 0 {
        return Err(corrupt(&path, "trailing binary data"));
    }
    let sum = body.hash.0;
    let mut trailer = [0u8; 8];
    reader
        .read_exact(&mut trailer)
        .map_err(io_err("read", &path))?;
    if trailer != sum.to_le_bytes() {
        return Err(corrupt(&path, "checksum mismatch"));
    }
    state
}

fn read_v2<R: io::Read>(json: &[u8], body: &mut Body<R>) -> Result<State, ReadError> {
    let manifest: ManifestV2 =
        serde_json::from_slice(json).map_err(|e| format!("manifest: {e}"))?;
    let mut state = State {
        dims: manifest.dims,
        ..State::default()
    };
    for t in manifest.tenants {
        let mut spaces = BTreeMap::new();
        for sm in t.spaces {
            let dim = *state
                .dims
                .get(&sm.name)
                .ok_or_else(|| format!("unknown vector space `{}`", sm.name))?;
            let space = read_space(body, dim, &sm).map_err(|e| match e {
                ReadError::Corrupt(why) => format!("space `{}`: {why}", sm.name).into(),
                io => io,
            })?;
            spaces.insert(sm.name, space);
        }
        let docs = t.docs.into_iter().map(|d| (d.slot, d.doc)).collect();
        let shard = Shard::restore(t.slot_count, t.free, docs, spaces)
            .map_err(|e| format!("tenant {}: {e}", t.tenant))?;
        state.shards.insert(t.tenant, shard);
    }
    Ok(state)
}

fn read_space<R: io::Read>(
    body: &mut Body<R>,
    dim: usize,
    sm: &SpaceManifest,
) -> Result<VectorSpace, ReadError> {
    let rows = sm.rows;
    let slots = body.u32s(rows)?;
    let deleted = body.bytes(rows)?.iter().map(|&b| b != 0).collect();
    let data = body.words(
        rows.checked_mul(dim).ok_or("length overflow")?,
        f32::from_le_bytes,
    )?;
    let graph = match &sm.graph {
        None => None,
        Some(g) => {
            let layer0 = body.u32s(rows.checked_mul(M0 + 1).ok_or("length overflow")?)?;
            let mut upper = Vec::with_capacity(rows);
            for _ in 0..rows {
                let n = body.u32s(1)?[0] as usize;
                if n > (M + 1) * 64 {
                    return Err("graph upper table too long".into());
                }
                upper.push(body.u32s(n)?);
            }
            Some(Hnsw::from_parts(
                dim, rows, layer0, upper, g.entry, g.top, g.rng,
            )?)
        }
    };
    Ok(VectorSpace::from_parts(dim, data, slots, deleted, graph)?)
}

/// Format 1: documents with their vectors; everything is rebuilt.
fn load_v1(path: &Path, json: &[u8], blob: &[u8]) -> Result<State, IndexError> {
    let manifest: Manifest =
        serde_json::from_slice(json).map_err(|e| corrupt(path, format_args!("manifest: {e}")))?;
    let mut blob = blob.chunks_exact(4);
    let mut docs = Vec::with_capacity(manifest.docs.len());
    for md in manifest.docs {
        let mut doc = md.doc;
        for space in md.spaces {
            let dim = *manifest
                .dims
                .get(&space)
                .ok_or_else(|| corrupt(path, format_args!("unknown vector space `{space}`")))?;
            let mut v = Vec::with_capacity(dim);
            for _ in 0..dim {
                let c = blob
                    .next()
                    .ok_or_else(|| corrupt(path, "vector data truncated"))?;
                v.push(f32::from_le_bytes([c[0], c[1], c[2], c[3]]));
            }
            doc.vectors.insert(space, v);
        }
        docs.push(doc);
    }
    if blob.next().is_some() || !blob.remainder().is_empty() {
        return Err(corrupt(path, "trailing vector data"));
    }
    let mut state = State {
        dims: manifest.dims,
        ..State::default()
    };
    let (prepared, new_dims): (Vec<Prepared>, _) = state
        .prepare(&docs)
        .map_err(|e| corrupt(path, format_args!("invalid document: {e}")))?;
    drop(docs);
    state.apply(prepared, new_dims)?;
    Ok(state)
}

#[cfg(test)]
mod tests {
    use heimdex_core::{AssetId, SearchRequest, SegmentKind, SourceId};

    use super::*;
    use crate::EmbeddedIndex;

    /// A format 1 snapshot (written by hand here, as earlier versions wrote it) still opens:
    /// its documents and vectors are re-indexed.
    #[test]
    fn format_1_snapshots_still_load() {
        let dir = tempfile::tempdir().expect("tempdir");
        let doc = IndexDoc {
            tenant: TenantId::default_tenant(),
            source: SourceId::new("local"),
            asset: AssetId::new("a"),
            segment: "0".into(),
            kind: SegmentKind::Transcript,
            path: "/v/a.mp4".into(),
            start_s: 0.0,
            end_s: 2.0,
            text: "lighthouse at dusk".into(),
            thumbnail: None,
            tags: Vec::new(),
            vectors: BTreeMap::new(),
            meta: Default::default(),
        };
        let manifest = Manifest {
            dims: BTreeMap::from([("text".to_string(), 2)]),
            docs: vec![ManifestDoc {
                doc,
                spaces: vec!["text".into()],
            }],
        };
        let json = serde_json::to_vec(&manifest).expect("json");
        let mut bytes = MAGIC_V1.to_vec();
        bytes.extend_from_slice(&(json.len() as u64).to_le_bytes());
        bytes.extend_from_slice(&json);
        for x in [0.6f32, 0.8] {
            bytes.extend_from_slice(&x.to_le_bytes());
        }
        let mut sum = Fnv::new();
        sum.update(&bytes);
        bytes.extend_from_slice(&sum.0.to_le_bytes());
        fs::write(snapshot_path(dir.path()), bytes).expect("write");

        let index = EmbeddedIndex::open(dir.path()).expect("open format 1");
        let t = TenantId::default_tenant();
        let hits = index
            .search_blocking(&SearchRequest::new(t.clone()).with_text("lighthouse"))
            .expect("search");
        assert_eq!(hits.len(), 1);
        let hits = index
            .search_blocking(&SearchRequest::new(t).with_vector("text", vec![3.0, 4.0]))
            .expect("search");
        assert!((hits[0].score - 1.0).abs() < 1e-6);
        // The next flush writes format 2.
        index.upsert_blocking(&[]).expect("upsert");
        index.flush_blocking().expect("flush");
        let written = fs::read(snapshot_path(dir.path())).expect("read");
        assert_eq!(&written[..8], MAGIC);
    }
}
