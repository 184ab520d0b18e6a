//! The per-identity wake lock: two wakes of one dead peer produce exactly one
//! spawn. In-process waiters queue on an async mutex (cheap, fair); across
//! processes an exclusive `flock` on `<id>.wake.lock` serialises them, and
//! the kernel releases it when the holder dies, so a crashed wake never
//! leaves a stale lock behind.

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::sync::{Arc, LazyLock, Mutex, PoisonError};
use std::time::Duration;

use fs2::FileExt;
use tokio::sync::OwnedMutexGuard;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::fsutil;
use crate::names::Identity;
use crate::poll::Poll;

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
    #[error("the daemon is shutting down; gave up waiting for {0}")]
    Cancelled(String),
    #[error("cannot open the wake lock for {0}: {1}")]
    Io(String, io::Error),
}

/// Waits up to `patience` for the lock of `id`, or until `cancel` fires
/// (the daemon is stopping: a queued waiter gives up at once).
pub async fn acquire(
    cfg: &Config,
    id: &Identity,
    patience: Duration,
    cancel: &CancellationToken,
) -> Result<WakeLock, WakeLockError> {
    tokio::select! {
        lock = acquire_patiently(cfg, id, patience) => lock,
        _ = cancel.cancelled() => Err(WakeLockError::Cancelled(id.to_string())),
    }
}

async fn acquire_patiently(
    cfg: &Config,
    id: &Identity,
    patience: Duration,
) -> Result<WakeLock, WakeLockError> {
    let mut poll = Poll::new(
        patience,
        Duration::from_millis(2),
        Duration::from_millis(50),
    );
    let in_process = tokio::time::timeout(patience, process_mutex(cfg, id).lock_owned())
        .await
        .map_err(|_| WakeLockError::Busy(id.to_string(), patience))?;
    let file = open(cfg, id)?;
    // Another process holds it: poll, quickly at first.
    loop {
        if try_flock(&file, id)? {
            return Ok(WakeLock {
                file,
                _in_process: in_process,
            });
        }
        if !poll.pause().await {
            return Err(WakeLockError::Busy(id.to_string(), patience));
        }
    }
}

/// Takes the lock only if nobody holds it: `Ok(None)` means busy (a wake,
/// a delivery or another reaper is at work on this identity).
pub fn try_acquire(cfg: &Config, id: &Identity) -> Result<Option<WakeLock>, WakeLockError> {
    let Ok(in_process) = process_mutex(cfg, id).try_lock_owned() else {
        return Ok(None);
    };
    let file = open(cfg, id)?;
    Ok(try_flock(&file, id)?.then_some(WakeLock {
        file,
        _in_process: in_process,
    }))
}

fn process_mutex(cfg: &Config, id: &Identity) -> Arc<tokio::sync::Mutex<()>> {
    let path = cfg.state_file(id, "wake.lock");
    PROCESS_LOCKS
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .entry(path.to_string_lossy().into_owned())
        .or_default()
        .clone()
}

fn open(cfg: &Config, id: &Identity) -> Result<File, WakeLockError> {
    let io_err = |e| WakeLockError::Io(id.to_string(), e);
    fsutil::ensure_private_dir(&cfg.state_dir).map_err(io_err)?;
    fsutil::open_lock_file(&cfg.state_file(id, "wake.lock")).map_err(io_err)
}

/// `Ok(false)` when another process holds the lock.
fn try_flock(file: &File, id: &Identity) -> Result<bool, WakeLockError> {
    match file.try_lock_exclusive() {
        Ok(()) => Ok(true),
        Err(e)
            if e.kind() == io::ErrorKind::WouldBlock
                || e.raw_os_error() == Some(libc::EWOULDBLOCK) =>
        {
            Ok(false)
        }
        Err(e) => Err(WakeLockError::Io(id.to_string(), e)),
    }
}
