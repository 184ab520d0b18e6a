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

    pub fn disabled() -> Self {
        CompileCache { dir: None }
    }

    fn entry(&self, engine: &Engine, sha256: &str) -> Option<PathBuf> {
        let mut h = DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut h);
        let dir = self.dir.as_ref()?;
        Some(dir.join(format!("{sha256}-{:016x}.cwasm", h.finish())))
    }

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
