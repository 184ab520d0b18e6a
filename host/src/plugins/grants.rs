//! The operator's grants: which plugin-dir adapter may read which
//! directories. A grant names the exact file by its sha256, so a changed
//! file needs a new one. Built-in adapters are trusted as shipped.
//!
//! `<root>/plugins/grants.json` (0600):
//! `{"grants": [{"sha256": "…", "runtime": "aider", "file": "/…/aider.wasm",
//!   "read_dirs": [".aider"], "granted_at": "2026-11-25T12:00:00.000Z"}]}`

use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::fsutil;

const MAX_FILE_BYTES: u64 = 1 << 20;

/// One grant: this file (by content) may read these dirs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    pub sha256: String,
    pub runtime: String,
    /// Where the file was when granted (for people; the sha256 decides).
    pub file: String,
    pub read_dirs: Vec<String>,
    /// Paths below a peer's cwd (contract 0.2).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cwd_read_paths: Vec<String>,
    pub granted_at: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grants {
    #[serde(default)]
    pub grants: Vec<Grant>,
}

impl Grants {
    /// The grants in `path`; a missing file is none. A file that cannot be
    /// read or parsed is an error (and grants nothing).
    pub fn read(path: &Path) -> Result<Grants, String> {
        match fsutil::read_regular_file(path, MAX_FILE_BYTES) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| format!("{} is not valid: {e}", path.display())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Grants::default()),
            Err(e) => Err(format!("cannot read {}: {e}", path.display())),
        }
    }

    /// May the file with `sha256` read every one of `read_dirs` and
    /// `cwd_paths`?
    pub fn covers(&self, sha256: &str, read_dirs: &[String], cwd_paths: &[String]) -> bool {
        self.grants.iter().any(|g| {
            g.sha256 == sha256
                && read_dirs.iter().all(|d| g.read_dirs.contains(d))
                && cwd_paths.iter().all(|p| g.cwd_read_paths.contains(p))
        })
    }

    /// Adds the grant and writes the file. It replaces any earlier grant
    /// for the same bytes or the same path (what was there before is gone).
    pub fn add(path: &Path, grant: Grant) -> Result<(), String> {
        let mut all = Grants::read(path)?;
        all.grants
            .retain(|g| g.sha256 != grant.sha256 && g.file != grant.file);
        all.grants.push(grant);
        all.write(path)
    }

    /// Removes the grants `matches` selects; how many went.
    pub fn remove(path: &Path, matches: impl Fn(&Grant) -> bool) -> Result<usize, String> {
        let mut all = Grants::read(path)?;
        let before = all.grants.len();
        all.grants.retain(|g| !matches(g));
        let removed = before - all.grants.len();
        if removed > 0 {
            all.write(path)?;
        }
        Ok(removed)
    }

    fn write(&self, path: &Path) -> Result<(), String> {
        let text = serde_json::to_vec_pretty(self).map_err(|e| e.to_string())?;
        fsutil::write_atomic(path, &text)
            .map_err(|e| format!("cannot write {}: {e}", path.display()))
    }
}

/// Where the grants live under `root`.
pub fn path(root: &Path) -> PathBuf {
    root.join("plugins").join("grants.json")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant(sha: &str, dirs: &[&str]) -> Grant {
        Grant {
            sha256: sha.into(),
            runtime: "aider".into(),
            file: "/p/aider.wasm".into(),
            read_dirs: dirs.iter().map(|d| d.to_string()).collect(),
            cwd_read_paths: Vec::new(),
            granted_at: "2026-11-25T00:00:00.000Z".into(),
        }
    }

    #[test]
    fn a_grant_covers_its_file_and_dirs_only() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("plugins/grants.json");
        assert_eq!(Grants::read(&path).unwrap(), Grants::default());
        Grants::add(&path, grant("aa", &[".aider"])).unwrap();
        let g = Grants::read(&path).unwrap();
        assert!(g.covers("aa", &[".aider".into()], &[]));
        assert!(g.covers("aa", &[], &[]));
        assert!(!g.covers("bb", &[".aider".into()], &[]), "another file");
        assert!(
            !g.covers("aa", &[".aider".into(), ".x".into()], &[]),
            "more dirs"
        );
        // Granting again replaces; revoking removes.
        Grants::add(&path, grant("aa", &[".aider", ".x"])).unwrap();
        assert_eq!(Grants::read(&path).unwrap().grants.len(), 1);
        assert_eq!(Grants::remove(&path, |g| g.runtime == "aider").unwrap(), 1);
        assert!(!Grants::read(&path).unwrap().covers("aa", &[], &[]));
        // A corrupt file grants nothing and is not overwritten.
        std::fs::write(&path, "{oops").unwrap();
        assert!(Grants::read(&path).is_err());
        assert!(Grants::add(&path, grant("cc", &[])).is_err());
        use std::os::unix::fs::PermissionsExt;
        Grants::remove(&path, |_| true).unwrap_err();
        std::fs::remove_file(&path).unwrap();
        Grants::add(&path, grant("cc", &[])).unwrap();
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
}
