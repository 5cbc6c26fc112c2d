//! The local filesystem connector.
//!
//! Keys are paths relative to the root, `/`-separated. Listing walks the tree in key order
//! (directories sort as `name/`, so depth-first order equals lexicographic key order), skips
//! dot-files and dot-directories (such as a `.heimdex` home inside the folder) and symlinked
//! directories (no cycles), and sniffs the first 4 KiB of each file to decide whether it is a
//! video. Paging resumes after the last key of the previous page and prunes whole
//! directories that sort before it. The version of a file is `size-mtime_ns`.

use std::fs::{self, File};
use std::io::{self, Read, Seek, SeekFrom};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use async_trait::async_trait;
use bytes::Bytes;
use heimdex_core::Connector;
use heimdex_core::connector::{ConnectorError, ListPage, ListRequest, ObjectMeta, io_error};
use heimdex_core::media::{SNIFF_LEN, sniff};

const NAME: &str = "local";
const DEFAULT_PAGE: usize = 1000;
const TOKEN_PREFIX: &str = "after:";

/// A folder on a local disk, or a single file.
#[derive(Debug, Clone)]
pub struct LocalConnector {
    root: PathBuf,
    /// When set, the connector exposes only this one key (a single-file source).
    only: Option<String>,
}

impl LocalConnector {
    /// A connector over the folder `root`.
    pub fn new(root: impl Into<PathBuf>) -> Result<Self, ConnectorError> {
        let root = root.into();
        let meta =
            fs::metadata(&root).map_err(|e| io_error(NAME, &root.display().to_string(), e))?;
        if !meta.is_dir() {
            return Err(ConnectorError::Backend {
                connector: NAME,
                key: root.display().to_string(),
                source: "not a directory".into(),
            });
        }
        Ok(Self { root, only: None })
    }

    /// A connector exposing exactly one file (its parent folder is the root).
    pub fn single_file(path: impl AsRef<Path>) -> Result<Self, ConnectorError> {
        let path = path.as_ref();
        let shown = path.display().to_string();
        let parent = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| ConnectorError::NotFound { key: shown.clone() })?;
        fs::metadata(path).map_err(|e| io_error(NAME, &shown, e))?;
        Ok(Self {
            root: parent.to_path_buf(),
            only: Some(name.to_owned()),
        })
    }

    /// The root folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The absolute-or-relative file path of `key`.
    pub fn path_of(&self, key: &str) -> PathBuf {
        let mut p = self.root.clone();
        for part in key.split('/') {
            p.push(part);
        }
        p
    }

    fn check_key(&self, key: &str) -> Result<(), ConnectorError> {
        let bad = key.is_empty()
            || key
                .split('/')
                .any(|p| p.is_empty() || p == "." || p == "..")
            || self.only.as_deref().is_some_and(|o| o != key);
        if bad {
            return Err(ConnectorError::NotFound {
                key: key.to_owned(),
            });
        }
        Ok(())
    }

    fn meta_of(&self, key: &str, path: &Path) -> Result<Option<ObjectMeta>, ConnectorError> {
        let md = fs::metadata(path).map_err(|e| io_error(NAME, key, e))?;
        if !md.is_file() {
            return Ok(None);
        }
        let mut head = Vec::with_capacity(SNIFF_LEN);
        File::open(path)
            .and_then(|f| f.take(SNIFF_LEN as u64).read_to_end(&mut head))
            .map_err(|e| io_error(NAME, key, e))?;
        let name = key.rsplit('/').next().unwrap_or(key);
        let Some(media) = sniff(&head, name) else {
            return Ok(None);
        };
        let mtime_ns = md
            .modified()
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map(|d| d.as_nanos());
        Ok(Some(ObjectMeta {
            key: key.to_owned(),
            size: md.len(),
            version: format!("{}-{}", md.len(), mtime_ns.unwrap_or(0)),
            modified_ms: mtime_ns.map(|n| (n / 1_000_000) as i64),
            media,
        }))
    }

    /// Walk in key order, collecting up to `limit + 1` candidates with key > `after`.
    fn walk(
        &self,
        dir: &Path,
        prefix: &str,
        after: Option<&str>,
        key_prefix: Option<&str>,
        limit: usize,
        out: &mut Vec<ObjectMeta>,
    ) -> Result<(), ConnectorError> {
        let rd = fs::read_dir(dir).map_err(|e| io_error(NAME, &dir.display().to_string(), e))?;
        let mut entries: Vec<(String, bool, PathBuf)> = Vec::new();
        for entry in rd {
            let entry = entry.map_err(|e| io_error(NAME, &dir.display().to_string(), e))?;
            let Ok(name) = entry.file_name().into_string() else {
                tracing::warn!(path = %entry.path().display(), "skipping non-UTF-8 file name");
                continue;
            };
            if name.starts_with('.') {
                continue;
            }
            let ft = entry
                .file_type()
                .map_err(|e| io_error(NAME, &entry.path().display().to_string(), e))?;
            // Symlinked directories are skipped (no cycles); symlinked files are followed.
            let is_dir = ft.is_dir();
            entries.push((name, is_dir, entry.path()));
        }
        entries.sort_by_key(|a| sort_name(&a.0, a.1));
        for (name, is_dir, path) in entries {
            if out.len() > limit {
                return Ok(());
            }
            let key = format!("{prefix}{name}");
            if is_dir {
                let sub = format!("{key}/");
                // Prune subtrees entirely before the resume point or outside the key prefix.
                if after.is_some_and(|a| sub.as_str() < a && !a.starts_with(&sub)) {
                    continue;
                }
                if key_prefix.is_some_and(|p| !sub.starts_with(p) && !p.starts_with(&sub)) {
                    continue;
                }
                self.walk(&path, &sub, after, key_prefix, limit, out)?;
            } else {
                if after.is_some_and(|a| key.as_str() <= a) {
                    continue;
                }
                if key_prefix.is_some_and(|p| !key.starts_with(p)) {
                    continue;
                }
                if self.only.as_deref().is_some_and(|o| o != key) {
                    continue;
                }
                match self.meta_of(&key, &path) {
                    Ok(Some(m)) => out.push(m),
                    Ok(None) => {}
                    // A file that vanished between readdir and stat is simply not listed.
                    Err(ConnectorError::NotFound { .. }) => {}
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(())
    }

    fn list_blocking(&self, req: ListRequest) -> Result<ListPage, ConnectorError> {
        let after = match req.page_token.as_deref() {
            None => None,
            Some(t) => Some(t.strip_prefix(TOKEN_PREFIX).ok_or_else(|| {
                ConnectorError::InvalidPageToken {
                    reason: "not a local connector page token".into(),
                }
            })?),
        };
        let limit = req.page_size.unwrap_or(DEFAULT_PAGE).max(1);
        let mut out = Vec::new();
        self.walk(
            &self.root,
            "",
            after,
            req.prefix.as_deref(),
            limit,
            &mut out,
        )?;
        let next_page_token = if out.len() > limit {
            out.truncate(limit);
            out.last().map(|m| format!("{TOKEN_PREFIX}{}", m.key))
        } else {
            None
        };
        Ok(ListPage {
            objects: out,
            next_page_token,
        })
    }

    fn read_blocking(&self, key: &str, range: Range<u64>) -> Result<Bytes, ConnectorError> {
        self.check_key(key)?;
        let path = self.path_of(key);
        let mut f = File::open(&path).map_err(|e| io_error(NAME, key, e))?;
        let size = f.metadata().map_err(|e| io_error(NAME, key, e))?.len();
        if range.start >= size {
            return Err(ConnectorError::RangeOutOfBounds {
                key: key.to_owned(),
                start: range.start,
                end: range.end,
                size,
            });
        }
        let end = range.end.min(size);
        if end <= range.start {
            return Ok(Bytes::new());
        }
        let mut buf = vec![0u8; (end - range.start) as usize];
        f.seek(SeekFrom::Start(range.start))
            .and_then(|_| f.read_exact(&mut buf))
            .map_err(|e| io_error(NAME, key, e))?;
        Ok(Bytes::from(buf))
    }
}

fn sort_name(name: &str, is_dir: bool) -> String {
    if is_dir {
        format!("{name}/")
    } else {
        name.to_owned()
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ConnectorError> + Send + 'static,
) -> Result<T, ConnectorError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ConnectorError::Backend {
            connector: NAME,
            key: String::new(),
            source: Box::new(io::Error::other(e.to_string())),
        })?
}

#[async_trait]
impl Connector for LocalConnector {
    fn name(&self) -> &'static str {
        NAME
    }

    async fn list(&self, req: ListRequest) -> Result<ListPage, ConnectorError> {
        let this = self.clone();
        blocking(move || this.list_blocking(req)).await
    }

    async fn stat(&self, key: &str) -> Result<ObjectMeta, ConnectorError> {
        self.check_key(key)?;
        let this = self.clone();
        let key = key.to_owned();
        blocking(move || {
            let path = this.path_of(&key);
            this.meta_of(&key, &path)?
                .ok_or(ConnectorError::NotFound { key })
        })
        .await
    }

    async fn read_range(&self, key: &str, range: Range<u64>) -> Result<Bytes, ConnectorError> {
        let this = self.clone();
        let key = key.to_owned();
        blocking(move || this.read_blocking(&key, range)).await
    }
}
