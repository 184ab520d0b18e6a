//! The per-identity wake lock: two wakes of one dead peer produce exactly one
//! spawn. In-process waiters queue on an async mutex (cheap, fair); across
//! processes an exclusive `flock` on `<id>.wake.lock` serialises them, and
//! the kernel releases it when the holder dies, so a crashed wake never
//! leaves a stale lock behind.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::sync::{Arc, LazyLock, Mutex, PoisonError};
use std::time::{Duration, Instant};

use fs2::FileExt;
use tokio::sync::OwnedMutexGuard;

use crate::config::Config;
use crate::fsutil;
use crate::names::Identity;

type ProcessLocks = Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>;
static PROCESS_LOCKS: LazyLock<ProcessLocks> = LazyLock::new(Default::default);

/// Held while a wake runs; dropping it releases both levels.
pub struct WakeLock {
    file: File,
    _in_process: OwnedMutexGuard<()>,
}

impl Drop for WakeLock {
    fn drop(&mut self) {
        let _ = FileExt::unlock(&self.file);
    }
}

#[derive(Debug, thiserror::Error)]
pub enum WakeLockError {
    #[error("wake already in progress for {0} (lock held for more than {1:?})")]
    Busy(String, Duration),
    #[error("cannot open the wake lock for {0}: {1}")]
    Io(String, io::Error),
}

/// Waits up to `patience` for the lock of `id`.
pub async fn acquire(
    cfg: &Config,
    id: &Identity,
    patience: Duration,
) -> Result<WakeLock, WakeLockError> {
    let started = Instant::now();
    let path = cfg.state_file(id, "wake.lock");
    let mutex = PROCESS_LOCKS
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .entry(path.to_string_lossy().into_owned())
        .or_default()
        .clone();
    let in_process = tokio::time::timeout(patience, mutex.lock_owned())
        .await
        .map_err(|_| WakeLockError::Busy(id.to_string(), patience))?;

    let io_err = |e| WakeLockError::Io(id.to_string(), e);
    fsutil::ensure_private_dir(&cfg.state_dir).map_err(io_err)?;
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(fsutil::FILE_MODE)
        .open(&path)
        .map_err(io_err)?;
    // Another process holds it: poll, quickly at first.
    let mut pause = Duration::from_millis(2);
    loop {
        match file.try_lock_exclusive() {
            Ok(()) => {
                return Ok(WakeLock {
                    file,
                    _in_process: in_process,
                });
            }
            Err(e)
                if e.kind() == io::ErrorKind::WouldBlock
                    || e.raw_os_error() == Some(libc::EWOULDBLOCK) =>
            {
                if started.elapsed() >= patience {
                    return Err(WakeLockError::Busy(id.to_string(), patience));
                }
                tokio::time::sleep(pause).await;
                pause = (pause * 3 / 2).min(Duration::from_millis(50));
            }
            Err(e) => return Err(io_err(e)),
        }
    }
}
