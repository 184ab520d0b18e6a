//! Size-rotated log files (`lifecycle.log`, `delivery.log`, `iapeerd.log`):
//! appended to by the daemon and by every CLI process, rotated
//! `log → log.1 → … → log.<keep>` once the file reaches its size bound.
//! Rotation runs under an `flock` on `<log>.lock`, so processes sharing a
//! log rotate it once, not once each.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use fs2::FileExt;

use crate::fsutil;

/// When a log is rotated and how many old files are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rotation {
    pub max_bytes: u64,
    pub keep: u32,
}

impl Default for Rotation {
    fn default() -> Self {
        Rotation {
            max_bytes: 5 << 20,
            keep: 5,
        }
    }
}

/// `<log>.<n>`: the n-th older file of a rotated log.
pub(crate) fn numbered(path: &Path, n: u32) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".{n}"));
    PathBuf::from(name)
}

/// Appends `bytes` (one or more whole lines) to `path`, rotating first when
/// the file has reached its bound.
pub fn append(path: &Path, bytes: &[u8], rotation: Rotation) -> io::Result<()> {
    if fs::metadata(path).is_ok_and(|m| m.len() >= rotation.max_bytes) {
        rotate(path, rotation)?;
    }
    open_append(path)?.write_all(bytes)
}

/// Opens `path` for appending (created 0600; its directory 0700 when
/// missing, which is rare: no `mkdir` per line). O_APPEND: concurrent
/// writers of whole lines never interleave mid-line.
pub(crate) fn open_append(path: &Path) -> io::Result<fs::File> {
    let open = || {
        fsutil::open_regular_for_write(
            path,
            OpenOptions::new()
                .create(true)
                .append(true)
                .mode(fsutil::FILE_MODE),
        )
    };
    match open() {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            if let Some(dir) = path.parent() {
                fsutil::ensure_private_dir(dir)?;
            }
            open()
        }
        other => other,
    }
}

/// Rotates `path` now (under the rotation lock).
pub(crate) fn rotate(path: &Path, rotation: Rotation) -> io::Result<()> {
    let mut lock_path = path.as_os_str().to_owned();
    lock_path.push(".lock");
    let lock = fsutil::open_lock_file(Path::new(&lock_path))?;
    lock.lock_exclusive()?;
    // Another process may have rotated while we waited for the lock.
    if !fs::metadata(path).is_ok_and(|m| m.len() >= rotation.max_bytes) {
        return Ok(());
    }
    if rotation.keep == 0 {
        return fsutil::remove_if_exists(path);
    }
    let _ = fsutil::remove_if_exists(&numbered(path, rotation.keep));
    for n in (1..rotation.keep).rev() {
        let from = numbered(path, n);
        if from.exists() {
            fs::rename(&from, numbered(path, n + 1))?;
        }
    }
    fs::rename(path, numbered(path, 1))
}

/// A `tracing` writer that appends each event to a rotated file.
#[derive(Debug, Clone)]
pub struct RotatingWriter {
    pub path: PathBuf,
    pub rotation: Rotation,
}

/// One event's bytes, written when the formatter is done with it.
pub struct EventBuffer<'a> {
    writer: &'a RotatingWriter,
    buf: Vec<u8>,
}

impl Write for EventBuffer<'_> {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for EventBuffer<'_> {
    fn drop(&mut self) {
        if !self.buf.is_empty() {
            let _ = append(&self.writer.path, &self.buf, self.writer.rotation);
        }
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for RotatingWriter {
    type Writer = EventBuffer<'a>;
    fn make_writer(&'a self) -> Self::Writer {
        EventBuffer {
            writer: self,
            buf: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotates_at_the_bound_and_keeps_n() {
        let tmp = tempfile::tempdir().unwrap();
        let log = tmp.path().join("logs/x.log");
        let r = Rotation {
            max_bytes: 10,
            keep: 2,
        };
        for i in 0..5 {
            append(&log, format!("line-{i}-xxxx\n").as_bytes(), r).unwrap();
        }
        // Each line is 12 bytes: every append after the first rotates.
        assert_eq!(fs::read_to_string(&log).unwrap(), "line-4-xxxx\n");
        assert_eq!(
            fs::read_to_string(numbered(&log, 1)).unwrap(),
            "line-3-xxxx\n"
        );
        assert_eq!(
            fs::read_to_string(numbered(&log, 2)).unwrap(),
            "line-2-xxxx\n"
        );
        assert!(!numbered(&log, 3).exists());
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            fs::metadata(&log).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
}
