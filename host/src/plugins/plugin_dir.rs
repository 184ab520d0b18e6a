//! A plugin dir read without a race. Whoever can change a plugin file
//! decides what iapeerd runs (adapters choose session argv), so the dir is
//! opened once and judged on its descriptor, listed through it, and each
//! file is opened relative to it without following a link and judged on
//! its own descriptor before a byte is read: no path is looked up twice,
//! so nothing can be swapped in between.

use std::ffi::{CString, OsStr, OsString};
use std::fs::File;
use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::MAX_PLUGIN_BYTES;
use crate::fsutil;

pub(crate) struct PluginDir {
    path: PathBuf,
    dir: File,
}

impl PluginDir {
    /// `Ok(None)`: there is no such dir (nothing to load). A dir another
    /// user could write to, or replace, is refused.
    pub fn open(path: &Path) -> Result<Option<PluginDir>, String> {
        match fsutil::open_trusted_dir(path) {
            Ok(Some(dir)) => Ok(Some(PluginDir {
                path: path.to_path_buf(),
                dir,
            })),
            Ok(None) => Ok(None),
            Err(e) => Err(format!("{e}; not loading from it")),
        }
    }

    /// The `*.wasm` names in the dir, sorted (directories left out).
    pub fn wasm_names(&self) -> Vec<OsString> {
        let Ok(entries) = cap_primitives::fs::read_base_dir(&self.dir) else {
            return Vec::new();
        };
        let mut names: Vec<OsString> = entries
            .filter_map(Result::ok)
            .filter(|e| !e.file_type().is_ok_and(|t| t.is_dir()))
            .map(|e| e.file_name())
            .filter(|n| Path::new(n).extension().is_some_and(|x| x == "wasm"))
            .collect();
        names.sort();
        names
    }

    /// The path a name in this dir is shown as.
    pub fn path_of(&self, name: &OsStr) -> PathBuf {
        self.path.join(name)
    }

    /// The bytes of `name`: a regular file of its own in the dir (not a
    /// link to one elsewhere), owned by this user, writable by nobody else.
    pub fn read(&self, name: &OsStr) -> Result<Vec<u8>, String> {
        let c_name = CString::new(name.as_bytes()).map_err(|_| "a name with a NUL byte")?;
        // SAFETY: openat with a valid dir descriptor and a NUL-terminated
        // name; the returned descriptor is owned by the File below.
        let fd = unsafe {
            libc::openat(
                self.dir.as_raw_fd(),
                c_name.as_ptr(),
                libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC,
            )
        };
        if fd < 0 {
            let e = std::io::Error::last_os_error();
            return Err(match e.raw_os_error() {
                Some(libc::ELOOP) => {
                    "a symbolic link; copy the file into the plugin dir (`iapeer plugins install`)"
                        .to_string()
                }
                _ => format!("cannot read: {e}"),
            });
        }
        // SAFETY: fd is a fresh descriptor nobody else owns.
        let file = unsafe { File::from_raw_fd(fd) };
        let meta = file.metadata().map_err(|e| format!("cannot read: {e}"))?;
        if !meta.is_file() {
            return Err("not a regular file; not loading it".into());
        }
        // SAFETY: geteuid cannot fail.
        if meta.uid() != unsafe { libc::geteuid() } {
            return Err("not owned by this user; not loading it".into());
        }
        if meta.mode() & 0o022 != 0 {
            return Err("writable by other users (group or world); not loading it".into());
        }
        if meta.len() > MAX_PLUGIN_BYTES {
            return Err(format!("cannot read: larger than {MAX_PLUGIN_BYTES} bytes"));
        }
        let mut bytes = Vec::with_capacity(meta.len() as usize);
        file.take(MAX_PLUGIN_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| format!("cannot read: {e}"))?;
        if bytes.len() as u64 > MAX_PLUGIN_BYTES {
            return Err(format!("cannot read: larger than {MAX_PLUGIN_BYTES} bytes"));
        }
        Ok(bytes)
    }
}
