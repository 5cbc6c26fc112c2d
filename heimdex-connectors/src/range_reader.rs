//! A blocking, seekable reader over any connector's ranged reads.

use std::collections::VecDeque;
use std::fmt;
use std::io::{self, Read, Seek, SeekFrom};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use heimdex_core::Connector;
use heimdex_core::connector::ConnectorError;
use tokio::runtime::Handle;

/// Counters of what a [`RangeReader`] fetched: proof that media is read in place, by range.
#[derive(Debug, Default)]
pub struct ReadStats {
    /// Bytes fetched from the connector.
    pub bytes_fetched: AtomicU64,
    /// Ranged requests made.
    pub requests: AtomicU64,
}

impl ReadStats {
    /// Bytes fetched so far.
    pub fn bytes(&self) -> u64 {
        self.bytes_fetched.load(Ordering::Relaxed)
    }
    /// Requests made so far.
    pub fn request_count(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }
}

/// `Read + Seek` over one object of a [`Connector`], fetching aligned blocks on demand.
///
/// Sequential reads fetch growing blocks (from `block_size` up to 8× it) so decoding streams
/// with few requests; a seek (e.g. to an MP4's `moov` box at the end) fetches only the
/// blocks it touches. A few recent blocks are cached. Memory is bounded by the cache.
///
/// It drives the async connector with [`Handle::block_on`], so it must be used from a
/// blocking thread (inside `tokio::task::spawn_blocking` or a plain thread), never from an
/// async task.
pub struct RangeReader {
    connector: Arc<dyn Connector>,
    key: String,
    /// When set, every fetch is a checked read of this version.
    version: Option<String>,
    size: u64,
    pos: u64,
    block_size: u64,
    /// Cached (start offset, bytes) windows, most recent last.
    cache: VecDeque<(u64, Bytes)>,
    /// End offset of the last fetch, to detect sequential access.
    last_end: u64,
    sequential_run: u32,
    handle: Handle,
    stats: Arc<ReadStats>,
}

impl fmt::Debug for RangeReader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RangeReader")
            .field("key", &self.key)
            .field("size", &self.size)
            .field("pos", &self.pos)
            .finish_non_exhaustive()
    }
}

const CACHE_WINDOWS: usize = 4;
const MAX_GROWTH: u32 = 3;

impl RangeReader {
    /// A reader over `key` of `size` bytes, fetching `block_size` blocks (1 MiB is a good
    /// default for local disks and object stores alike).
    pub fn new(
        connector: Arc<dyn Connector>,
        key: impl Into<String>,
        size: u64,
        block_size: u64,
        handle: Handle,
    ) -> Self {
        Self {
            connector,
            key: key.into(),
            version: None,
            size,
            pos: 0,
            block_size: block_size.max(4096),
            cache: VecDeque::new(),
            last_end: u64::MAX,
            sequential_run: 0,
            handle,
            stats: Arc::new(ReadStats::default()),
        }
    }

    /// Read only version `version` of the object: once it is replaced, the next fetch fails
    /// with an I/O error wrapping [`ConnectorError::Changed`] instead of returning bytes of
    /// another version (see [`Connector::read_range_checked`]).
    pub fn with_version(mut self, version: impl Into<String>) -> Self {
        self.version = Some(version.into());
        self
    }

    /// Shared counters of this reader.
    pub fn stats(&self) -> Arc<ReadStats> {
        Arc::clone(&self.stats)
    }

    /// Object size.
    pub fn size(&self) -> u64 {
        self.size
    }

    fn fetch(&mut self, at: u64) -> io::Result<()> {
        let start = at - at % self.block_size;
        if start == self.last_end {
            self.sequential_run = (self.sequential_run + 1).min(MAX_GROWTH);
        } else {
            self.sequential_run = 0;
        }
        let len = self.block_size << self.sequential_run;
        let end = (start + len).min(self.size);
        let read = match &self.version {
            Some(v) => {
                self.handle
                    .block_on(self.connector.read_range_checked(&self.key, start..end, v))
            }
            None => self
                .handle
                .block_on(self.connector.read_range(&self.key, start..end)),
        };
        let bytes = read.map_err(to_io)?;
        self.stats.requests.fetch_add(1, Ordering::Relaxed);
        self.stats
            .bytes_fetched
            .fetch_add(bytes.len() as u64, Ordering::Relaxed);
        if bytes.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("{}: empty read at {start}", self.key),
            ));
        }
        self.last_end = start + bytes.len() as u64;
        if self.cache.len() == CACHE_WINDOWS {
            self.cache.pop_front();
        }
        self.cache.push_back((start, bytes));
        Ok(())
    }

    fn cached(&self, at: u64) -> Option<(&Bytes, usize)> {
        self.cache.iter().rev().find_map(|(start, bytes)| {
            (at >= *start && at < start + bytes.len() as u64)
                .then(|| (bytes, (at - start) as usize))
        })
    }
}

fn to_io(e: ConnectorError) -> io::Error {
    let kind = match e {
        ConnectorError::NotFound { .. } => io::ErrorKind::NotFound,
        ConnectorError::RangeOutOfBounds { .. } => io::ErrorKind::UnexpectedEof,
        _ => io::ErrorKind::Other,
    };
    io::Error::new(kind, e)
}

impl Read for RangeReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() || self.pos >= self.size {
            return Ok(0);
        }
        if self.cached(self.pos).is_none() {
            self.fetch(self.pos)?;
        }
        let Some((bytes, offset)) = self.cached(self.pos) else {
            return Err(io::Error::other("range reader cache miss after fetch"));
        };
        let n = (bytes.len() - offset).min(buf.len());
        buf[..n].copy_from_slice(&bytes[offset..offset + n]);
        self.pos += n as u64;
        Ok(n)
    }
}

impl Seek for RangeReader {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        let target = match pos {
            SeekFrom::Start(p) => Some(p),
            SeekFrom::End(d) => self.size.checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        match target {
            Some(p) => {
                self.pos = p;
                Ok(p)
            }
            None => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "seek before the start of the object",
            )),
        }
    }
}
