//! The embedded home's writer lock.
//!
//! Any number of `heimdex` processes may use one home at once. Readers (search, show,
//! status) need no lock: the store is SQLite in WAL mode, and the index is a snapshot that
//! writers replace atomically, so a reader sees the last complete flush. Writers (index,
//! reindex, check --repair) take an advisory lock on `HOME/writer.lock` before they open
//! the index, so each one loads what the previous writer flushed and no flush overwrites
//! another's documents. The operating system releases the lock when the process ends, even
//! when it is killed, so a crashed run never blocks the next one.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use super::EngineError;

/// Who holds a home's writer lock, as far as the lock file says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockHolder {
    /// Process id of the holder.
    pub pid: Option<u32>,
    /// What it said it was doing (`index`, `reindex`, …).
    pub what: String,
}

impl std::fmt::Display for LockHolder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.pid {
            Some(pid) => write!(f, "{} (pid {pid})", self.what),
            None => f.write_str(&self.what),
        }
    }
}

/// The exclusive writer lock of an embedded home; released when dropped (or when the
/// process ends, however it ends).
#[derive(Debug)]
pub struct HomeLock {
    file: File,
    path: PathBuf,
}

impl HomeLock {
    fn lock_path(home: &Path) -> PathBuf {
        home.join("writer.lock")
    }

    fn open_file(home: &Path) -> Result<(File, PathBuf), EngineError> {
        std::fs::create_dir_all(home).map_err(|e| EngineError::io(home, e))?;
        let path = Self::lock_path(home);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| EngineError::io(&path, e))?;
        Ok((file, path))
    }

    /// Take the lock if it is free. `Err(holder)` when another process holds it.
    pub fn try_acquire(home: &Path, what: &str) -> Result<Result<Self, LockHolder>, EngineError> {
        let (file, path) = Self::open_file(home)?;
        match file.try_lock() {
            Ok(()) => Ok(Ok(Self::stamped(file, path, what)?)),
            Err(TryLockError::WouldBlock) => Ok(Err(read_holder(&path))),
            Err(TryLockError::Error(e)) => Err(EngineError::io(&path, e)),
        }
    }

    /// Take the lock, waiting for the process that holds it to finish.
    pub async fn acquire(home: &Path, what: &str) -> Result<Self, EngineError> {
        let (file, path) = Self::open_file(home)?;
        let what = what.to_owned();
        tokio::task::spawn_blocking(move || {
            file.lock().map_err(|e| EngineError::io(&path, e))?;
            Self::stamped(file, path, &what)
        })
        .await
        .map_err(|e| EngineError::Task(e.to_string()))?
    }

    /// Write who holds the lock into the file, for the message a waiting process prints.
    fn stamped(mut file: File, path: PathBuf, what: &str) -> Result<Self, EngineError> {
        let text = format!("{}\n{what}\n", std::process::id());
        file.set_len(0)
            .and_then(|()| file.seek(SeekFrom::Start(0)))
            .and_then(|_| file.write_all(text.as_bytes()))
            .and_then(|()| file.flush())
            .map_err(|e| EngineError::io(&path, e))?;
        Ok(Self { file, path })
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for HomeLock {
    fn drop(&mut self) {
        // Unlocking is what closing the file does too; doing it explicitly documents it.
        let _ = self.file.unlock();
    }
}

fn read_holder(path: &Path) -> LockHolder {
    let mut text = String::new();
    let _ = File::open(path).and_then(|mut f| f.read_to_string(&mut text));
    let mut lines = text.lines();
    let pid = lines.next().and_then(|l| l.trim().parse().ok());
    let what = lines
        .next()
        .map(str::trim)
        .filter(|w| !w.is_empty())
        .unwrap_or("another heimdex process")
        .to_owned();
    LockHolder { pid, what }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn second_writer_sees_the_holder_and_gets_the_lock_after_release() {
        let home = tempfile::tempdir().expect("tempdir");
        let first = HomeLock::try_acquire(home.path(), "index")
            .expect("io")
            .expect("free");
        let holder = HomeLock::try_acquire(home.path(), "reindex")
            .expect("io")
            .expect_err("held");
        assert_eq!(holder.pid, Some(std::process::id()));
        assert_eq!(holder.what, "index");
        let waiter = tokio::spawn({
            let home = home.path().to_path_buf();
            async move { HomeLock::acquire(&home, "reindex").await }
        });
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        assert!(!waiter.is_finished(), "must wait while the lock is held");
        drop(first);
        let second = waiter.await.expect("join").expect("acquired");
        assert!(second.path().ends_with("writer.lock"));
    }
}
