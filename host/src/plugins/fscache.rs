//! Directory listings for `host-fs.list-dir`, kept in memory and dropped
//! the moment the kernel reports a change under them (inotify, through
//! `notify`). An adapter's activity scan lists the same directories on
//! every ready-gate poll and every tick; a codex sessions tree of 10 000
//! files costs ~35 ms to list with a `statx` per file, and about the copy
//! of the entries once cached.
//!
//! Only directories under a granted directory that is being watched are
//! cached: without a watcher (none on this platform, the watch limit
//! reached) every listing is read fresh. A listing read while a change was
//! reported for its directory is not kept (it may predate the change).
//!
//! Consistency: a hit is also checked against the directory's own mtime
//! (one `statx`), so a file created or removed is seen by the very next
//! call. A file that only grew is seen once its inotify event is handled,
//! typically well under a millisecond later — indistinguishable, for an
//! activity proxy, from having looked a moment earlier.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::SystemTime;

use notify::{RecommendedWatcher, RecursiveMode, Watcher};

/// What a listed entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    File,
    Directory,
    Symlink,
    Other,
}

/// One entry of a directory listing, as the host lists it for a guest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub name: String,
    pub kind: EntryKind,
    pub mtime_ms: u64,
    pub size: u64,
}

/// A listing and the directory mtime it was read at.
struct Listing {
    dir_mtime: Option<SystemTime>,
    entries: Arc<Vec<Entry>>,
}

fn dir_mtime(dir: &Path) -> Option<SystemTime> {
    std::fs::metadata(dir).and_then(|m| m.modified()).ok()
}

#[derive(Default)]
struct State {
    listings: HashMap<PathBuf, Listing>,
    /// Bumped for a directory on every reported change under it.
    generations: HashMap<PathBuf, u64>,
}

impl State {
    fn changed(&mut self, path: &Path) {
        for dir in [Some(path), path.parent()].into_iter().flatten() {
            self.listings.remove(dir);
            *self.generations.entry(dir.to_path_buf()).or_insert(0) += 1;
        }
    }

    fn forget_all(&mut self) {
        self.listings.clear();
        for g in self.generations.values_mut() {
            *g += 1;
        }
    }
}

#[derive(Default)]
pub(crate) struct ListingCache {
    state: Arc<Mutex<State>>,
    watcher: Mutex<Option<RecommendedWatcher>>,
    /// Granted roots under watch (or that could not be watched: `false`).
    roots: Mutex<HashMap<PathBuf, bool>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl ListingCache {
    /// Watches `root` (recursively) if it exists and is not watched yet;
    /// `true` when listings under it may be cached.
    pub(crate) fn watch(&self, root: &Path) -> bool {
        if let Some(&watched) = lock(&self.roots).get(root) {
            return watched;
        }
        if !root.is_dir() {
            // Created later: looked at again on the next call.
            return false;
        }
        let mut watcher = lock(&self.watcher);
        if watcher.is_none() {
            let state = self.state.clone();
            *watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
                let mut s = lock(&state);
                match event {
                    Ok(e) if e.need_rescan() => s.forget_all(),
                    Ok(e) if e.kind.is_access() => {}
                    Ok(e) => e.paths.iter().for_each(|p| s.changed(p)),
                    Err(_) => s.forget_all(),
                }
            })
            .ok();
        }
        let watched = watcher
            .as_mut()
            .is_some_and(|w| w.watch(root, RecursiveMode::Recursive).is_ok());
        lock(&self.roots).insert(root.to_path_buf(), watched);
        watched
    }

    pub(crate) fn get(&self, dir: &Path) -> Option<Arc<Vec<Entry>>> {
        let (entries, at) = {
            let s = lock(&self.state);
            let l = s.listings.get(dir)?;
            (l.entries.clone(), l.dir_mtime)
        };
        // Created or removed entries change the directory's mtime.
        (at.is_some() && dir_mtime(dir) == at).then_some(entries)
    }

    /// The change count of `dir`, to pass back to [`ListingCache::put`].
    pub(crate) fn generation(&self, dir: &Path) -> u64 {
        lock(&self.state).generations.get(dir).copied().unwrap_or(0)
    }

    /// Keeps a listing read at `generation`, unless a change was reported
    /// for the directory since.
    /// `dir_mtime` must have been taken before the listing was read.
    pub(crate) fn put(
        &self,
        dir: PathBuf,
        generation: u64,
        dir_mtime: Option<SystemTime>,
        entries: Arc<Vec<Entry>>,
    ) {
        let mut s = lock(&self.state);
        if s.generations.get(&dir).copied().unwrap_or(0) == generation {
            s.listings.insert(dir, Listing { dir_mtime, entries });
        }
    }

    /// The directory's mtime now (taken before reading a listing to cache).
    pub(crate) fn stamp(&self, dir: &Path) -> Option<SystemTime> {
        dir_mtime(dir)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reported_change_drops_the_listing_and_blocks_a_racing_put() {
        let tmp = tempfile::tempdir().unwrap();
        let c = ListingCache::default();
        let dir = tmp.path().join("sessions");
        std::fs::create_dir(&dir).unwrap();
        let g = c.generation(&dir);
        c.put(dir.clone(), g, c.stamp(&dir), Arc::default());
        assert!(c.get(&dir).is_some());
        // A file below it changed.
        lock(&c.state).changed(&dir.join("rollout.jsonl"));
        assert!(c.get(&dir).is_none());
        // A listing read before that change must not be kept.
        c.put(dir.clone(), g, c.stamp(&dir), Arc::default());
        assert!(c.get(&dir).is_none());
        c.put(
            dir.clone(),
            c.generation(&dir),
            c.stamp(&dir),
            Arc::default(),
        );
        assert!(c.get(&dir).is_some());
        // A new entry changes the directory's mtime: seen at once, event or not.
        let old = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_000);
        std::fs::File::open(&dir)
            .unwrap()
            .set_modified(old)
            .unwrap();
        c.put(
            dir.clone(),
            c.generation(&dir),
            c.stamp(&dir),
            Arc::default(),
        );
        assert!(c.get(&dir).is_some());
        std::fs::write(dir.join("new.jsonl"), "x").unwrap();
        assert!(c.get(&dir).is_none());
    }
}
