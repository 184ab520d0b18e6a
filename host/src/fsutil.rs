//! File primitives every state writer uses: private directories and atomic
//! writes (temp file in the same directory, fsync, rename), so a crash never
//! leaves a half-written file behind and nothing is readable by other users.

use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

/// Mode of every state file.
pub const FILE_MODE: u32 = 0o600;
/// Mode of every state directory.
pub const DIR_MODE: u32 = 0o700;

/// Creates `dir` (and missing parents) with mode 0700. An existing directory
/// is left as it is.
pub fn ensure_private_dir(dir: &Path) -> io::Result<()> {
    DirBuilder::new().recursive(true).mode(DIR_MODE).create(dir)
}

/// True when `dir` is a directory owned by this user that nobody else can
/// write to, and no ancestor lets anyone else swap it out (each is owned by
/// this user or root and not writable by others, unless sticky like /tmp).
pub fn is_trusted_dir(dir: &Path) -> bool {
    let me = unsafe { libc::geteuid() };
    let Ok(dir) = dir.canonicalize() else {
        return false;
    };
    let private =
        |m: &fs::Metadata| m.is_dir() && m.uid() == me && m.permissions().mode() & 0o022 == 0;
    if !fs::metadata(&dir).is_ok_and(|m| private(&m)) {
        return false;
    }
    dir.ancestors().skip(1).all(|a| {
        fs::metadata(a).is_ok_and(|m| {
            let mode = m.permissions().mode();
            (m.uid() == me || m.uid() == 0) && (mode & 0o022 == 0 || mode & 0o1000 != 0)
        })
    })
}

/// Reads a regular file of at most `max` bytes. Opened non-blocking, so a
/// FIFO or a device planted under the name fails instead of hanging or
/// flooding the reader.
pub fn read_regular_file(path: &Path, max: u64) -> io::Result<Vec<u8>> {
    use std::io::Read;
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a regular file",
        ));
    }
    if meta.len() > max {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("larger than {max} bytes"),
        ));
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.take(max + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > max {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("larger than {max} bytes"),
        ));
    }
    Ok(bytes)
}

/// [`read_regular_file`] as UTF-8 text.
pub fn read_regular_text(path: &Path, max: u64) -> io::Result<String> {
    String::from_utf8(read_regular_file(path, max)?)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "not UTF-8"))
}

/// Writes `bytes` to `path` atomically with mode 0600, creating the parent
/// directory (0700) if needed, and makes it durable (fsync of the file and
/// of the directory).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    replace(path, bytes, true)
}

/// [`write_atomic`] without the fsyncs: readers never see a torn file, but
/// a power cut may lose the last write. For records whose loss costs little
/// and which can come by the thousand in one tick (the deaths ring).
pub fn write_atomic_lazy(path: &Path, bytes: &[u8]) -> io::Result<()> {
    replace(path, bytes, false)
}

fn replace(path: &Path, bytes: &[u8], durable: bool) -> io::Result<()> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let dir = path
        .parent()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path has no parent"))?;
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path has no file name"))?;
    let tmp = dir.join(format!(
        ".{}.{}.{}.tmp",
        name.to_string_lossy(),
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let create = || {
        OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(FILE_MODE)
            .open(&tmp)
    };
    let result = (|| {
        // The directory almost always exists: create it only when missing
        // (a `mkdir` per write is measurable over a thousand-session tick).
        let mut f = match create() {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                ensure_private_dir(dir)?;
                create()?
            }
            other => other?,
        };
        f.write_all(bytes)?;
        if durable {
            f.sync_all()?;
        }
        fs::rename(&tmp, path)?;
        if durable {
            // Make the rename itself durable.
            File::open(dir).and_then(|d| d.sync_all()).ok();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Removes `path` (named `name`) if it is a temp file of [`write_atomic`]
/// whose writer is gone (a process killed between create and rename leaves
/// one behind). The writer's pid is part of the name; a live pid's file is
/// left alone. Meant for a pass that lists the directory anyway.
pub fn remove_if_orphaned_temp(path: &Path, name: &str) -> bool {
    let Some(pid) = temp_file_pid(name) else {
        return false;
    };
    // SAFETY: kill with signal 0 only checks that the process exists.
    let gone = unsafe { libc::kill(pid, 0) } == -1
        && io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH);
    gone && fs::remove_file(path).is_ok()
}

/// The writer pid in `.<name>.<pid>.<n>.tmp`.
fn temp_file_pid(name: &str) -> Option<i32> {
    let inner = name.strip_prefix('.')?.strip_suffix(".tmp")?;
    let mut parts = inner.rsplitn(3, '.');
    let _counter: u64 = parts.next()?.parse().ok()?;
    parts.next()?.parse().ok().filter(|&pid| pid > 0)
}

/// Opens (creating, 0600) a file used only as an `flock` target; its
/// content is never touched.
pub fn open_lock_file(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(FILE_MODE)
        .open(path)
}

/// Removes a file; a file that is already gone is not an error.
pub fn remove_if_exists(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_is_private_and_complete() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("a/b/state.json");
        write_atomic(&path, b"{\"x\":1}").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"{\"x\":1}");
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let dir_mode = fs::metadata(path.parent().unwrap())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(dir_mode & 0o777, 0o700);
        write_atomic(&path, b"2").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"2");
        // No temp files left behind.
        assert_eq!(fs::read_dir(path.parent().unwrap()).unwrap().count(), 1);
    }

    #[test]
    fn temp_files_of_dead_writers_are_swept() {
        let tmp = tempfile::tempdir().unwrap();
        assert_eq!(temp_file_pid(".claude-bob.new.8379.0.tmp"), Some(8379));
        assert_eq!(temp_file_pid("claude-bob.session"), None);
        // pid 2^22+1 is above Linux's pid_max: never alive.
        let dead = ".x.session.4194305.3.tmp";
        fs::write(tmp.path().join(dead), "").unwrap();
        let mine = format!(".y.session.{}.0.tmp", std::process::id());
        fs::write(tmp.path().join(&mine), "").unwrap();
        assert!(remove_if_orphaned_temp(&tmp.path().join(dead), dead));
        assert!(!tmp.path().join(dead).exists());
        assert!(!remove_if_orphaned_temp(&tmp.path().join(&mine), &mine));
        assert!(tmp.path().join(mine).exists(), "a live writer's file stays");
    }

    #[test]
    fn regular_files_only() {
        let tmp = tempfile::tempdir().unwrap();
        let f = tmp.path().join("f");
        fs::write(&f, "hello").unwrap();
        assert_eq!(read_regular_text(&f, 10).unwrap(), "hello");
        assert!(read_regular_text(&f, 3).is_err());
        assert!(read_regular_file(Path::new("/dev/zero"), 1 << 20).is_err());
        let fifo = tmp.path().join("fifo");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        assert!(read_regular_file(&fifo, 10).is_err());
        assert!(read_regular_file(tmp.path(), 10).is_err());
    }

    #[test]
    fn trusted_dir_rejects_group_writable() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("d");
        ensure_private_dir(&dir).unwrap();
        assert!(is_trusted_dir(&dir));
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o770)).unwrap();
        assert!(!is_trusted_dir(&dir));
        // A private dir inside a dir others may write to is not trusted.
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o700)).unwrap();
        let inner = dir.join("inner");
        ensure_private_dir(&inner).unwrap();
        assert!(is_trusted_dir(&inner));
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o777)).unwrap();
        assert!(!is_trusted_dir(&inner));
        assert!(!is_trusted_dir(&tmp.path().join("missing")));
    }
}
