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
    matches!(open_trusted_dir(dir), Ok(Some(_)))
}

/// Why a directory is not trusted (see [`open_trusted_dir`]).
#[derive(Debug, thiserror::Error)]
pub enum UntrustedDir {
    #[error("{} is not owned by this user or others can write to it (chmod go-w it, or use another dir)", .0.display())]
    Dir(std::path::PathBuf),
    #[error("{}: its parent {} lets other users replace it", .dir.display(), .ancestor.display())]
    Ancestor {
        dir: std::path::PathBuf,
        ancestor: std::path::PathBuf,
    },
    #[error("cannot open {}: {}", .0.display(), .1)]
    Io(std::path::PathBuf, io::Error),
}

/// Opens `dir` once for a trust decision that cannot be raced: the path is
/// resolved, its ancestors are checked (none lets another user swap what
/// is below), the last component is opened without following a link, and
/// owner and mode are judged on the opened descriptor. List and open files
/// relative to the result. `Ok(None)`: there is no such directory.
pub fn open_trusted_dir(dir: &Path) -> Result<Option<File>, UntrustedDir> {
    // SAFETY: geteuid cannot fail.
    let me = unsafe { libc::geteuid() };
    // Both the path as given (a link in a dir others can write could be
    // swapped for another) and where it leads.
    let given = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
    let safe_parent = |a: &Path| {
        fs::metadata(a).is_ok_and(|m| {
            let mode = m.permissions().mode();
            (m.uid() == me || m.uid() == 0) && (mode & 0o022 == 0 || mode & 0o1000 != 0)
        })
    };
    let canonical = match dir.canonicalize() {
        Ok(c) => c,
        // Not there yet: whoever creates it must not do so where others
        // could swap it afterwards.
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return match given
                .ancestors()
                .skip(1)
                .filter(|a| a.exists())
                .find(|a| !safe_parent(a))
            {
                Some(ancestor) => Err(UntrustedDir::Ancestor {
                    dir: dir.to_path_buf(),
                    ancestor: ancestor.to_path_buf(),
                }),
                None => Ok(None),
            };
        }
        Err(e) => return Err(UntrustedDir::Io(dir.to_path_buf(), e)),
    };
    if let Some(ancestor) = given
        .ancestors()
        .skip(1)
        .chain(canonical.ancestors().skip(1))
        .find(|a| !safe_parent(a))
    {
        return Err(UntrustedDir::Ancestor {
            dir: dir.to_path_buf(),
            ancestor: ancestor.to_path_buf(),
        });
    }
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW)
        .open(&canonical)
        .map_err(|e| UntrustedDir::Io(dir.to_path_buf(), e))?;
    let meta = file
        .metadata()
        .map_err(|e| UntrustedDir::Io(dir.to_path_buf(), e))?;
    if !meta.is_dir() || meta.uid() != me || meta.permissions().mode() & 0o022 != 0 {
        return Err(UntrustedDir::Dir(dir.to_path_buf()));
    }
    Ok(Some(file))
}

/// Fails with a one-line reason when `dir` exists but other users could
/// write to it (or to an ancestor): a state root or socket dir like that
/// would let them delete a peer's socket and get a second session started.
pub fn check_private_dir(dir: &Path) -> Result<(), UntrustedDir> {
    open_trusted_dir(dir).map(drop)
}

/// Opens `path` for reading, non-blocking, so a FIFO or a device planted
/// under the name fails instead of hanging or flooding the reader.
pub fn open_regular_for_read(path: &Path) -> io::Result<File> {
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        // Read paths are often the operator's own (a file to inspect):
        // say what it is, without advising to delete it.
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "{} is {}, not a regular file",
                path.display(),
                file_kind(&meta)
            ),
        ));
    }
    Ok(file)
}

/// Opens a log or state file this program wrote, for reading: like
/// [`open_regular_for_read`], and never through a symlink at the last
/// component (a link planted at a pane log would otherwise serve any file
/// the daemon can read, to anyone who may read its logs).
pub fn open_state_for_read(path: &Path) -> io::Result<File> {
    open_regular_for_write(path, OpenOptions::new().read(true))
}

/// Opens a file the program writes, locks or reads back with `options`: non-blocking
/// (a FIFO fails at once instead of hanging), never through a symlink at
/// the last component, and only when it is a regular file. The error names
/// the path and what is in the way.
pub fn open_regular_for_write(path: &Path, options: &mut OpenOptions) -> io::Result<File> {
    let file = options
        .custom_flags(libc::O_NONBLOCK | libc::O_NOFOLLOW)
        .open(path)
        .map_err(|e| in_the_way(path, e))?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(not_regular(path, &meta));
    }
    Ok(file)
}

/// What an `open` error means when something other than a regular file
/// sits at `path`; other errors pass through.
fn in_the_way(path: &Path, e: io::Error) -> io::Error {
    let what = match e.raw_os_error() {
        Some(libc::ELOOP) => "a symbolic link (state files are never followed)",
        Some(libc::ENXIO) => "a FIFO or socket",
        Some(libc::EISDIR) => "a directory",
        _ => return e,
    };
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!(
            "{} is {what}, not a regular file; remove it",
            path.display()
        ),
    )
}

fn not_regular(path: &Path, meta: &fs::Metadata) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!(
            "{} is {}, not a regular file; remove it",
            path.display(),
            file_kind(meta)
        ),
    )
}

fn file_kind(meta: &fs::Metadata) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    let t = meta.file_type();
    if t.is_dir() {
        "a directory"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_socket() {
        "a socket"
    } else if t.is_char_device() || t.is_block_device() {
        "a device"
    } else {
        "something else"
    }
}

/// What sits at `path` without following a symlink: `Ok(true)` for a
/// regular file, `Ok(false)` for nothing, an error naming the path for
/// anything else (a directory where a mark file belongs must not count as
/// the mark, nor be ignored in silence).
pub fn regular_file_exists(path: &Path) -> io::Result<bool> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.is_file() => Ok(true),
        Ok(m) if m.file_type().is_symlink() => {
            Err(in_the_way(path, io::Error::from_raw_os_error(libc::ELOOP)))
        }
        Ok(m) => Err(not_regular(path, &m)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

/// Reads a regular file of at most `max` bytes (see [`open_regular_for_read`]).
pub fn read_regular_file(path: &Path, max: u64) -> io::Result<Vec<u8>> {
    use std::io::Read;
    let file = open_regular_for_read(path)?;
    let meta = file.metadata()?;
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

/// What a file is now (which inode, its size and times): equal stamps
/// mean unchanged contents, as every write of ours replaces the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileStamp {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

/// The stamp of `path`, if it can be read.
pub fn stamp(path: &Path) -> Option<FileStamp> {
    let m = fs::metadata(path).ok()?;
    Some(FileStamp {
        dev: m.dev(),
        ino: m.ino(),
        size: m.size(),
        mtime: (m.mtime(), m.mtime_nsec()),
        ctime: (m.ctime(), m.ctime_nsec()),
    })
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
    // The rename would replace a link, not write through it; still, a link
    // there is someone's intent (a dotfile): say so rather than break it.
    if fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink()) {
        return Err(in_the_way(path, io::Error::from_raw_os_error(libc::ELOOP)));
    }
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
    result.map_err(|e: io::Error| {
        let _ = fs::remove_file(&tmp);
        match fs::symlink_metadata(path) {
            Ok(m) if !m.is_file() && !m.file_type().is_symlink() => not_regular(path, &m),
            _ => io::Error::new(e.kind(), format!("cannot write {}: {e}", path.display())),
        }
    })
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

/// Removes the temp files [`write_atomic`] left beside `path` when their
/// writer was killed: the writer is gone, or the file is older than a
/// minute (no write takes that long; a recycled pid must not keep one).
pub fn sweep_stale_temps(path: &Path) {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return;
    };
    let prefix = format!(".{}.", name.to_string_lossy());
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.filter_map(Result::ok) {
        let Ok(entry_name) = entry.file_name().into_string() else {
            continue;
        };
        if !entry_name.starts_with(&prefix) || temp_file_pid(&entry_name).is_none() {
            continue;
        }
        let stale = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age.as_secs() >= 60);
        if stale {
            let _ = fs::remove_file(entry.path());
        } else {
            remove_if_orphaned_temp(&entry.path(), &entry_name);
        }
    }
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
    open_regular_for_write(
        path,
        OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(FILE_MODE),
    )
}

/// Removes a file; a file that is already gone is not an error.
pub fn remove_if_exists(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(io::Error::new(
            e.kind(),
            format!("cannot remove {}: {e}", path.display()),
        )),
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
