//! The `host-fs` import: read-only file access confined to what an adapter
//! declared: home-relative paths inside its `read-dirs`, and (contract 0.2)
//! absolute paths inside its `cwd-read-paths` under the cwd of the call in
//! progress. Every lookup below a granted directory (or below the cwd) goes
//! through cap-primitives, which refuses `..` and symlinks that would leave
//! it — the same rule the WASI preopens enforce.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::time::UNIX_EPOCH;

use cap_primitives::fs::{self as capfs, OpenOptions};

use super::fscache::ListingCache;
pub use super::fscache::{Entry, EntryKind};
pub use super::secrets::plain_relative_components;

/// Entries one `list-dir` returns at most.
pub const MAX_ENTRIES: usize = 100_000;
/// The longest first line `read-first-line` reads, whatever the guest asks.
pub const MAX_LINE_BYTES: u32 = 16 << 20;
/// The most `read-tail` returns, whatever the adapter asks.
pub const MAX_TAIL_BYTES: u32 = 1 << 20;

/// Where a granted directory appears inside the guest's WASI filesystem.
pub const GUEST_HOME: &str = "/home";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FsError {
    NotFound,
    NotPermitted,
    TooLarge,
    Io(String),
}

impl From<io::Error> for FsError {
    fn from(e: io::Error) -> Self {
        match e.kind() {
            io::ErrorKind::NotFound => FsError::NotFound,
            io::ErrorKind::PermissionDenied => FsError::NotPermitted,
            _ => FsError::Io(e.to_string()),
        }
    }
}

/// One declared directory.
#[derive(Debug)]
struct GrantedDir {
    components: Vec<String>,
    host_path: PathBuf,
}

/// The directories one adapter may read, resolved against a home directory.
pub struct FileGrants {
    dirs: Vec<GrantedDir>,
    /// Declared paths below a peer's cwd, as components.
    cwd_paths: Vec<Vec<String>>,
    /// The home the dirs were granted in, symlinks resolved.
    home: PathBuf,
    /// Listings under the granted dirs, dropped on any reported change.
    listings: ListingCache,
}

impl std::fmt::Debug for FileGrants {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileGrants")
            .field("dirs", &self.dirs)
            .finish()
    }
}

/// Where a host-fs call reads: below an opened directory, or one opened file.
enum Target {
    Below(File, PathBuf),
    File(File),
}

/// Opens `components` below `dir` one at a time, refusing any symlink on
/// the way (not followed, even to a place inside the cwd: a declared path
/// is that path). Non-blocking: a FIFO at the end fails instead of hanging.
fn open_without_links(dir: File, components: &[String]) -> Result<File, FsError> {
    use std::os::fd::{AsRawFd, FromRawFd};
    let mut current = dir;
    for (i, name) in components.iter().enumerate() {
        let last = i + 1 == components.len();
        let c_name = std::ffi::CString::new(name.as_str()).map_err(|_| FsError::NotPermitted)?;
        let flags = libc::O_RDONLY
            | libc::O_NOFOLLOW
            | libc::O_CLOEXEC
            | libc::O_NONBLOCK
            | libc::O_NOCTTY
            | if last { 0 } else { libc::O_DIRECTORY };
        // SAFETY: openat on a descriptor we own with a NUL-terminated name.
        let fd = unsafe { libc::openat(current.as_raw_fd(), c_name.as_ptr(), flags) };
        if fd < 0 {
            let e = io::Error::last_os_error();
            return Err(match e.raw_os_error() {
                Some(libc::ELOOP) => FsError::NotPermitted,
                Some(libc::ENOENT) | Some(libc::ENOTDIR) => FsError::NotFound,
                _ => FsError::from(e),
            });
        }
        // SAFETY: a fresh descriptor nobody else owns.
        current = unsafe { File::from_raw_fd(fd) };
    }
    Ok(current)
}

impl FileGrants {
    /// `read_dirs` must already be validated (see `plain_relative_components`).
    /// A home of `/` grants nothing: `etc` must never mean `/etc`.
    pub fn new(home: &Path, read_dirs: &[String], cwd_paths: &[String]) -> Self {
        let cwd_paths = cwd_paths
            .iter()
            .filter_map(|p| plain_relative_components(p))
            .collect();
        if home == Path::new("/") || !home.is_absolute() {
            return FileGrants {
                dirs: Vec::new(),
                cwd_paths,
                home: PathBuf::new(),
                listings: ListingCache::default(),
            };
        }
        let dirs = read_dirs
            .iter()
            .filter_map(|d| {
                let components = plain_relative_components(d)?;
                Some(GrantedDir {
                    host_path: home.join(d),
                    components,
                })
            })
            .collect();
        FileGrants {
            dirs,
            cwd_paths,
            home: std::fs::canonicalize(home).unwrap_or_else(|_| home.to_path_buf()),
            listings: ListingCache::default(),
        }
    }

    /// Is a granted dir still what was granted? Following symlinks, it must
    /// stay inside home and expose no secret store (`~/.gemini/tmp` made a
    /// link to `~/.ssh` is not `~/.gemini/tmp`). Below it, cap-std never
    /// follows a link out.
    fn usable(&self, dir: &GrantedDir) -> bool {
        let Ok(real) = std::fs::canonicalize(&dir.host_path) else {
            return false;
        };
        if !real.is_dir() {
            return false;
        }
        match real.strip_prefix(&self.home) {
            Ok(rel) if !rel.as_os_str().is_empty() => rel
                .to_str()
                .is_some_and(|rel| super::secrets::touches_secret_store(rel).is_none()),
            _ => false,
        }
    }

    /// The granted directories that exist now (and are still what was
    /// granted), with their guest mount points.
    pub fn preopens(&self) -> impl Iterator<Item = (&Path, String)> {
        self.dirs.iter().filter(|d| self.usable(d)).map(|d| {
            (
                d.host_path.as_path(),
                format!("{GUEST_HOME}/{}", d.components.join("/")),
            )
        })
    }

    /// A bitmask of which granted directories exist: a cached instance whose
    /// preopens were made under another mask is stale.
    pub fn presence_mask(&self) -> u64 {
        self.dirs
            .iter()
            .take(64)
            .enumerate()
            // Only existence, cheaply, on every call: `usable` is judged
            // when the preopens are made (an open dir fd keeps pointing at
            // what was judged) and on every host-fs call.
            .filter(|(_, d)| d.host_path.is_dir())
            .fold(0, |mask, (i, _)| mask | (1 << i))
    }

    /// The granted dir `path` lies in, and the rest below it.
    fn locate(&self, path: &str) -> Result<(&GrantedDir, PathBuf), FsError> {
        let components = plain_relative_components(path).ok_or(FsError::NotPermitted)?;
        let dir = self
            .dirs
            .iter()
            .filter(|d| components.starts_with(&d.components))
            .max_by_key(|d| d.components.len())
            .ok_or(FsError::NotPermitted)?;
        let rest: PathBuf = components[dir.components.len()..].iter().collect();
        Ok((dir, rest))
    }

    /// What `path` reads: below a granted home dir (relative paths), or,
    /// for an absolute path under the call's cwd, the declared cwd path
    /// itself — opened component by component without following a link, so
    /// nothing outside what was declared is reachable (below a declared
    /// directory, cap-std keeps every lookup inside it).
    fn resolve(&self, path: &str, call_cwd: Option<&str>) -> Result<Target, FsError> {
        if !path.starts_with('/') {
            let (dir, rest) = self.locate(path)?;
            return Ok(Target::Below(self.open_granted(dir)?, rest));
        }
        let cwd = call_cwd.ok_or(FsError::NotPermitted)?;
        let rel = match cwd {
            "/" => path.strip_prefix('/'),
            cwd => path.strip_prefix(cwd).and_then(|rel| rel.strip_prefix('/')),
        };
        let components = rel
            .and_then(plain_relative_components)
            .ok_or(FsError::NotPermitted)?;
        let declared = self
            .cwd_paths
            .iter()
            .filter(|d| components.starts_with(d))
            .max_by_key(|d| d.len())
            .ok_or(FsError::NotPermitted)?;
        if !self.cwd_path_allowed(Path::new(cwd), declared) {
            return Err(FsError::NotPermitted);
        }
        // Nothing below a declared directory that names a project secret
        // either (`apps/web/.env` in a monorepo).
        let below = &components[declared.len()..];
        if below
            .iter()
            .any(|c| super::secrets::touches_cwd_secret(c).is_some())
        {
            return Err(FsError::NotPermitted);
        }
        // The cwd itself is walked from `/` without following a link (it is
        // canonical): a folder above it swapped for a link mid-call cannot
        // move the reads elsewhere.
        let root = capfs::open_ambient_dir(Path::new("/"), cap_primitives::ambient_authority())?;
        let cwd_parts: Vec<String> = cwd
            .split('/')
            .filter(|c| !c.is_empty())
            .map(str::to_string)
            .collect();
        let base = open_without_links(root, &cwd_parts)?;
        let opened = open_without_links(base, declared)?;
        let rest: PathBuf = below.iter().collect();
        if opened.metadata()?.is_dir() {
            Ok(Target::Below(opened, rest))
        } else if rest.as_os_str().is_empty() {
            Ok(Target::File(opened))
        } else {
            Err(FsError::NotFound)
        }
    }

    /// May a declared cwd path be read under this cwd? It must not contain
    /// the home (a cwd above it, a path leading to it) nor lie in one of the
    /// home's secret stores (a cwd inside the home). Links are never
    /// followed on the way, so the names decide.
    fn cwd_path_allowed(&self, cwd: &Path, declared: &[String]) -> bool {
        // Not from the root, nor from the kernel's own trees (a declared
        // `self/environ` under /proc is the host's environment).
        if cwd == Path::new("/")
            || ["/proc", "/sys", "/dev"]
                .iter()
                .any(|kernel| cwd.starts_with(kernel))
        {
            return false;
        }
        let real = cwd.join(declared.join("/"));
        if self.home.as_os_str().is_empty() || self.home.starts_with(&real) {
            return false;
        }
        match real.strip_prefix(&self.home).ok().and_then(Path::to_str) {
            Some(home_rel) => super::secrets::touches_secret_store(home_rel).is_none(),
            None => true,
        }
    }

    /// Opens a granted dir, if it is still what was granted.
    fn open_granted(&self, dir: &GrantedDir) -> Result<File, FsError> {
        if !self.usable(dir) {
            return Err(FsError::NotPermitted);
        }
        Ok(capfs::open_ambient_dir(
            &dir.host_path,
            cap_primitives::ambient_authority(),
        )?)
    }

    /// `list-dir`, from the cache when nothing changed under the directory
    /// since it was last read (see `fscache`). Shared, not copied: the
    /// caller converts the entries for the guest anyway.
    pub fn list_dir(&self, path: &str, call_cwd: Option<&str>) -> Result<Arc<Vec<Entry>>, FsError> {
        if path.starts_with('/') {
            // Below a cwd: not cached (few entries, and watched by nobody).
            return match self.resolve(path, call_cwd)? {
                Target::Below(start, rest) => Ok(Arc::new(read_entries(start, &rest)?)),
                Target::File(_) => Err(FsError::Io("not a directory".into())),
            };
        }
        let (dir, rest) = self.locate(path)?;
        let key = dir.host_path.join(&rest);
        let cached = self.listings.watch(&dir.host_path);
        if cached && let Some(hit) = self.listings.get(&key) {
            return Ok(hit);
        }
        let generation = self.listings.generation(&key);
        let stamp = cached.then(|| self.listings.stamp(&key)).flatten();
        let entries = Arc::new(read_entries(self.open_granted(dir)?, &rest)?);
        if cached {
            self.listings.put(key, generation, stamp, entries.clone());
        }
        Ok(entries)
    }

    /// A granted regular file, opened for reading without blocking (a
    /// FIFO or a device in a granted dir must not hang or flood the host).
    fn open_regular(&self, path: &str, call_cwd: Option<&str>) -> Result<std::fs::File, FsError> {
        let file = match self.resolve(path, call_cwd)? {
            Target::File(file) => file,
            Target::Below(_, rest) if rest.as_os_str().is_empty() => {
                return Err(FsError::Io("is a directory".into()));
            }
            Target::Below(start, rest) => {
                let mut options = OpenOptions::new();
                options.read(true);
                cap_primitives::fs::OpenOptionsExt::custom_flags(
                    &mut options,
                    libc::O_NONBLOCK | libc::O_NOCTTY,
                );
                capfs::open(&start, &rest, &options)?
            }
        };
        if !file.metadata()?.is_file() {
            return Err(FsError::Io("not a regular file".into()));
        }
        Ok(file)
    }

    /// `read-tail`: the file's last bytes (at most `max_bytes`, capped),
    /// from the start of a line.
    pub fn read_tail(
        &self,
        path: &str,
        max_bytes: u32,
        call_cwd: Option<&str>,
    ) -> Result<String, FsError> {
        use std::io::{Seek, SeekFrom};
        let mut file = self.open_regular(path, call_cwd)?;
        let len = file.metadata()?.len();
        let window = u64::from(max_bytes.min(MAX_TAIL_BYTES));
        let start = len.saturating_sub(window);
        file.seek(SeekFrom::Start(start))?;
        let mut bytes = Vec::new();
        file.take(window).read_to_end(&mut bytes)?;
        // A line cut by the window is left out.
        if start > 0 {
            let cut = bytes
                .iter()
                .position(|&b| b == b'\n')
                .map_or(bytes.len(), |i| i + 1);
            bytes.drain(..cut);
        }
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    pub fn read_first_line(
        &self,
        path: &str,
        max_bytes: u32,
        call_cwd: Option<&str>,
    ) -> Result<String, FsError> {
        let file = self.open_regular(path, call_cwd)?;
        let limit = u64::from(max_bytes.min(MAX_LINE_BYTES));
        let mut line = Vec::new();
        BufReader::new(file)
            .take(limit + 1)
            .read_until(b'\n', &mut line)?;
        if line.last() == Some(&b'\n') {
            line.pop();
            if line.last() == Some(&b'\r') {
                line.pop();
            }
        } else if line.len() as u64 > limit {
            return Err(FsError::TooLarge);
        }
        Ok(String::from_utf8_lossy(&line).into_owned())
    }
}

impl FileGrants {
    /// `stat`: one entry, a symlink reported as such and not followed.
    pub fn stat(&self, path: &str, call_cwd: Option<&str>) -> Result<Entry, FsError> {
        let name = path.rsplit('/').next().unwrap_or(path).to_string();
        let (start, rest) = match self.resolve(path, call_cwd)? {
            Target::File(file) => (file, PathBuf::new()),
            Target::Below(start, rest) => (start, rest),
        };
        if rest.as_os_str().is_empty() {
            // The opened file or directory itself (never a link: none is
            // followed to get here).
            let meta = start.metadata()?;
            let ty = meta.file_type();
            return Ok(Entry {
                name,
                kind: entry_kind(false, ty.is_dir(), ty.is_file()),
                mtime_ms: mtime_ms(meta.modified().ok()),
                size: meta.len(),
            });
        }
        let meta = capfs::stat(&start, &rest, capfs::FollowSymlinks::No)?;
        let ty = meta.file_type();
        Ok(Entry {
            name,
            kind: entry_kind(ty.is_symlink(), ty.is_dir(), ty.is_file()),
            mtime_ms: mtime_ms(meta.modified().ok().map(|t| t.into_std())),
            size: meta.len(),
        })
    }
}

fn entry_kind(symlink: bool, dir: bool, file: bool) -> EntryKind {
    if symlink {
        EntryKind::Symlink
    } else if dir {
        EntryKind::Directory
    } else if file {
        EntryKind::File
    } else {
        EntryKind::Other
    }
}

fn mtime_ms(t: Option<std::time::SystemTime>) -> u64 {
    t.and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_millis() as u64)
}

/// `same-path`: true when `a` and `b` name the same location. Only the cwd
/// of the scan call running now (`call_cwd`, canonical) is resolved
/// against: `a` is canonicalised only when `b` is that cwd, so the answer
/// says whether `a` is an alias of the peer's folder and nothing else about
/// the host's filesystem. Any other pair is compared as written.
pub fn same_path(a: &str, b: &str, call_cwd: Option<&str>) -> bool {
    if a == b {
        return true;
    }
    if call_cwd != Some(b) {
        return false;
    }
    let a = Path::new(a);
    let plain = a.is_absolute()
        && !a.as_os_str().as_encoded_bytes().contains(&0)
        && a.components()
            .all(|c| matches!(c, Component::RootDir | Component::Normal(_)));
    plain && std::fs::canonicalize(a).is_ok_and(|c| c == Path::new(b))
}

/// The entries of `rest` below an opened granted dir (at most
/// `MAX_ENTRIES`).
fn read_entries(start: File, rest: &Path) -> Result<Vec<Entry>, FsError> {
    let entries = if rest.as_os_str().is_empty() {
        capfs::read_base_dir(&start)?
    } else {
        capfs::read_dir(&start, rest)?
    };
    let mut out = Vec::new();
    for entry in entries.take(MAX_ENTRIES) {
        let entry = entry?;
        let Ok(name) = entry.file_name().into_string() else {
            continue; // not UTF-8: no adapter can name it anyway
        };
        // Entries can vanish between the listing and the stat.
        let (Ok(ty), Ok(meta)) = (entry.file_type(), entry.metadata()) else {
            continue;
        };
        out.push(Entry {
            name,
            kind: entry_kind(ty.is_symlink(), ty.is_dir(), ty.is_file()),
            mtime_ms: mtime_ms(meta.modified().ok().map(|t| t.into_std())),
            size: meta.len(),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn grants(home: &Path) -> FileGrants {
        FileGrants::new(home, &[".claude/projects".to_string()], &[])
    }

    #[test]
    fn relative_components() {
        assert_eq!(
            plain_relative_components(".claude/projects"),
            Some(vec![".claude".into(), "projects".into()])
        );
        for bad in [
            "", "/etc", "a/../b", "a//b", "./a", "a/.", "..", "a\0b", "a/",
        ] {
            assert_eq!(plain_relative_components(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn lists_only_inside_the_grant() {
        let home = tempfile::tempdir().unwrap();
        let proj = home.path().join(".claude/projects/-w");
        fs::create_dir_all(&proj).unwrap();
        fs::write(proj.join("a.jsonl"), "{}\n").unwrap();
        fs::create_dir_all(home.path().join(".ssh")).unwrap();
        let g = grants(home.path());

        let entries = g.list_dir(".claude/projects/-w", None).unwrap();
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].name, "a.jsonl");
        assert_eq!(entries[0].kind, EntryKind::File);
        assert!(entries[0].mtime_ms > 0);
        assert_eq!(g.list_dir(".claude/projects", None).unwrap().len(), 1);

        assert_eq!(g.list_dir(".ssh", None), Err(FsError::NotPermitted));
        assert_eq!(g.list_dir(".claude", None), Err(FsError::NotPermitted));
        assert_eq!(
            g.list_dir(".claude/projects/../../.ssh", None),
            Err(FsError::NotPermitted)
        );
        assert_eq!(g.list_dir("/etc", None), Err(FsError::NotPermitted));
        assert_eq!(
            g.list_dir(".claude/projects/nope", None),
            Err(FsError::NotFound)
        );
    }

    #[test]
    fn symlink_out_of_the_grant_is_refused() {
        let home = tempfile::tempdir().unwrap();
        let projects = home.path().join(".claude/projects");
        fs::create_dir_all(&projects).unwrap();
        std::os::unix::fs::symlink("/etc", projects.join("escape")).unwrap();
        let g = grants(home.path());
        assert_eq!(
            g.list_dir(".claude/projects/escape", None),
            Err(FsError::NotPermitted)
        );
        assert_eq!(
            g.read_first_line(".claude/projects/escape/passwd", 100, None),
            Err(FsError::NotPermitted)
        );
        let listed = g.list_dir(".claude/projects", None).unwrap();
        assert_eq!(listed[0].kind, EntryKind::Symlink);
    }

    #[test]
    fn fifos_and_devices_are_not_read() {
        let home = tempfile::tempdir().unwrap();
        let dir = home.path().join(".claude/projects");
        fs::create_dir_all(&dir).unwrap();
        let fifo = dir.join("pipe.jsonl");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let g = grants(home.path());
        assert_eq!(
            g.read_first_line(".claude/projects/pipe.jsonl", 100, None),
            Err(FsError::Io("not a regular file".into()))
        );
        assert!(
            FileGrants::new(Path::new("/"), &["etc".into()], &[])
                .list_dir("etc", None)
                .is_err()
        );
    }

    #[test]
    fn first_line() {
        let home = tempfile::tempdir().unwrap();
        let dir = home.path().join(".claude/projects");
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("s.jsonl"), "first\r\nsecond\n").unwrap();
        fs::write(dir.join("one"), "only").unwrap();
        fs::write(dir.join("long"), "x".repeat(100)).unwrap();
        let g = grants(home.path());
        assert_eq!(
            g.read_first_line(".claude/projects/s.jsonl", 10, None)
                .unwrap(),
            "first"
        );
        assert_eq!(
            g.read_first_line(".claude/projects/one", 10, None).unwrap(),
            "only"
        );
        assert_eq!(
            g.read_first_line(".claude/projects/long", 10, None),
            Err(FsError::TooLarge)
        );
        assert_eq!(
            g.read_first_line(".claude/projects/long", 100, None)
                .unwrap()
                .len(),
            100
        );
    }

    #[test]
    fn same_path_resolves_symlinks_only_for_plain_paths() {
        let tmp = tempfile::tempdir().unwrap();
        let real = tmp.path().join("real");
        fs::create_dir(&real).unwrap();
        let link = tmp.path().join("link");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        let real = real.canonicalize().unwrap();
        let (real, link) = (real.to_str().unwrap(), link.to_str().unwrap());
        assert!(same_path(link, real, Some(real)));
        assert!(same_path("/x/y", "/x/y", None));
        // Only the call's cwd is resolved against.
        assert!(!same_path(link, real, None));
        assert!(!same_path(link, real, Some("/elsewhere")));
        assert!(!same_path(&format!("{link}/../link"), real, Some(real)));
        assert!(!same_path("relative", real, Some(real)));
        assert!(!same_path("/proc/self/cwd", real, Some("/other")));
    }
}
