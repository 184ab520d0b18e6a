//! Compile cache: a component compiled once is stored as
//! `<dir>/<sha256 of the wasm>-<engine compatibility hash>.cwasm` and later
//! loaded with a cheap mmap instead of a ~100 ms Cranelift compile.
//!
//! Loading precompiled code trusts the file completely, so the cache is only
//! used in a directory this user owns and nobody else can write to; anything
//! unreadable or stale is recompiled and replaced.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};

use wasmtime::Engine;
use wasmtime::component::Component;

use crate::fsutil;

/// Where a component came from: compiled now or loaded from the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    Compiled,
    Cached,
}

#[derive(Debug, Clone)]
pub struct CompileCache {
    dir: Option<PathBuf>,
}

impl CompileCache {
    /// A cache in `dir` (created 0700 if missing); `None` disables caching.
    pub fn new(dir: Option<&Path>) -> Self {
        let dir = dir.and_then(|d| {
            fsutil::ensure_private_dir(d).ok()?;
            if fsutil::is_trusted_dir(d) {
                Some(d.to_path_buf())
            } else {
                tracing::warn!(dir = %d.display(), "compile cache dir is not private to this user; not using it");
                None
            }
        });
        CompileCache { dir }
    }

    /// No cache: every load compiles (what a cold start costs).
    #[cfg(any(test, feature = "testing"))]
    pub fn disabled() -> Self {
        CompileCache { dir: None }
    }

    /// `-<engine compatibility hash>.cwasm`: what this engine's entries end in.
    fn suffix(engine: &Engine) -> String {
        let mut h = DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut h);
        format!("-{:016x}.cwasm", h.finish())
    }

    fn entry(&self, engine: &Engine, sha256: &str) -> Option<PathBuf> {
        let dir = self.dir.as_ref()?;
        Some(dir.join(format!("{sha256}{}", Self::suffix(engine))))
    }

    /// Every compiled entry, and whether it is still of use: compiled by
    /// this engine from one of the `live` digests.
    pub(crate) fn entries(&self, engine: &Engine, live: &[String]) -> Vec<CacheEntry> {
        let Some(dir) = &self.dir else {
            return Vec::new();
        };
        let suffix = Self::suffix(engine);
        let mut entries: Vec<CacheEntry> = std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                if !name.ends_with(".cwasm") {
                    return None;
                }
                let meta = e.metadata().ok()?;
                let in_use = name
                    .strip_suffix(&suffix)
                    .is_some_and(|sha| live.iter().any(|l| l == sha));
                Some(CacheEntry {
                    path: e.path(),
                    bytes: meta.len(),
                    in_use,
                })
            })
            .collect();
        entries.sort_by(|a, b| a.path.cmp(&b.path));
        entries
    }
}

/// One compiled component in the cache.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct CacheEntry {
    pub path: PathBuf,
    pub bytes: u64,
    /// Compiled by this engine from a plugin that is still there.
    pub in_use: bool,
}

impl CompileCache {
    /// The compiled component for `wasm` (whose digest is `sha256`).
    pub fn load(
        &self,
        engine: &Engine,
        wasm: &[u8],
        sha256: &str,
    ) -> wasmtime::Result<(Component, Origin)> {
        let entry = self.entry(engine, sha256);
        if let Some(path) = entry.as_ref().filter(|p| p.is_file()) {
            // SAFETY: the file is in a directory only this user can write,
            // named by the digest of the wasm it was compiled from and by the
            // engine's compatibility hash; wasmtime still checks its header.
            match unsafe { Component::deserialize_file(engine, path) } {
                Ok(c) => return Ok((c, Origin::Cached)),
                Err(e) => {
                    tracing::warn!(path = %path.display(), "stale compile cache entry, recompiling: {e:#}")
                }
            }
        }
        let component = Component::from_binary(engine, wasm)?;
        if let Some(path) = entry {
            match component.serialize() {
                Ok(bytes) => {
                    if let Err(e) = fsutil::write_atomic(&path, &bytes) {
                        tracing::debug!(path = %path.display(), "cannot write compile cache: {e}");
                    }
                }
                Err(e) => tracing::debug!("cannot serialize component: {e:#}"),
            }
        }
        Ok((component, Origin::Compiled))
    }
}
