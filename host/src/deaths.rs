//! How sessions end, and the crash-loop guard built on it.
//!
//! - `<id>.exit`: the last exit of the identity's session process, written
//!   by the session shim the moment the runtime ends (status or signal, the
//!   pane's last lines). Every exit, expected or not.
//! - `<id>.deaths`: a ring of the last 16 *deaths* — exits nobody asked for
//!   (a crash, a runtime that quits at once, a boot that never became
//!   ready). Operator stops, idle reaps and `new` are not deaths.
//!
//! N deaths within W seconds refuse further wakes until the window passes,
//! a wake succeeds (which trims the ring), or `iapeer start --reset`.

use std::io;

use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::fsutil;
use crate::names::Identity;

/// How many deaths the ring keeps.
pub const RING: usize = 16;
const MAX_FILE_BYTES: u64 = 256 << 10;
/// How much of a pane's tail is kept per exit.
pub const TAIL_CHARS: usize = 600;

/// How a session's process ended, as the shim saw it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExitRecord {
    /// Epoch ms.
    pub at: u64,
    /// The runtime binary's file name.
    pub program: String,
    #[serde(default)]
    pub status: Option<i32>,
    #[serde(default)]
    pub signal: Option<i32>,
    /// The session was hung up (killed from outside) before the runtime ended.
    #[serde(default)]
    pub hangup: bool,
    /// The pane's last non-empty lines, flattened.
    #[serde(default)]
    pub tail: String,
}

impl ExitRecord {
    /// `exited (status 1)`, `killed by signal 9`, `hung up`.
    pub fn how(&self) -> String {
        match (self.status, self.signal, self.hangup) {
            (_, _, true) => "hung up (the session was killed)".into(),
            (Some(code), _, _) => format!("exited (status {code})"),
            (None, Some(sig), _) => format!("killed by signal {sig}"),
            (None, None, false) => "ended".into(),
        }
    }

    /// One line: `claude exited (status 1): <tail>`.
    pub fn describe(&self) -> String {
        if self.tail.is_empty() {
            format!("{} {}", self.program, self.how())
        } else {
            format!("{} {}: {}", self.program, self.how(), self.tail)
        }
    }
}

/// One entry of the deaths ring.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Death {
    /// Epoch ms.
    pub at: u64,
    #[serde(default)]
    pub status: Option<i32>,
    #[serde(default)]
    pub signal: Option<i32>,
    /// Why, in one line (the exit, or the boot failure).
    #[serde(default)]
    pub cause: String,
    #[serde(default)]
    pub tail: String,
}

/// The TypeScript iapeer wrote bare epoch-ms numbers; both are read.
#[derive(Deserialize)]
#[serde(untagged)]
enum StoredDeath {
    Full(Death),
    Time(u64),
}

pub fn read_exit(cfg: &Config, id: &Identity) -> Option<ExitRecord> {
    let bytes = fsutil::read_regular_file(&cfg.state_file(id, "exit"), MAX_FILE_BYTES).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// The ring, oldest first; a missing or malformed file is an empty ring.
pub fn deaths(cfg: &Config, id: &Identity) -> Vec<Death> {
    let Ok(bytes) = fsutil::read_regular_file(&cfg.state_file(id, "deaths"), MAX_FILE_BYTES) else {
        return Vec::new();
    };
    let stored: Vec<StoredDeath> = serde_json::from_slice(&bytes).unwrap_or_default();
    stored
        .into_iter()
        .map(|d| match d {
            StoredDeath::Full(d) => d,
            StoredDeath::Time(at) => Death {
                at,
                status: None,
                signal: None,
                cause: String::new(),
                tail: String::new(),
            },
        })
        .collect()
}

fn write(cfg: &Config, id: &Identity, ring: &[Death]) -> io::Result<()> {
    let path = cfg.state_file(id, "deaths");
    if ring.is_empty() {
        return fsutil::remove_if_exists(&path);
    }
    fsutil::write_atomic_lazy(&path, &serde_json::to_vec(ring).map_err(io::Error::other)?)
}

/// Appends a death (the ring keeps the last 16).
pub fn record(cfg: &Config, id: &Identity, death: Death) -> io::Result<()> {
    let mut ring = deaths(cfg, id);
    ring.push(death);
    let skip = ring.len().saturating_sub(RING);
    write(cfg, id, &ring[skip..])
}

/// Drops deaths older than the window (a successful wake does this).
pub fn trim(cfg: &Config, id: &Identity, now_ms: u64, window_secs: u64) -> io::Result<()> {
    let ring = deaths(cfg, id);
    let keep: Vec<Death> = ring
        .iter()
        .filter(|d| now_ms.saturating_sub(d.at) < window_secs * 1000)
        .cloned()
        .collect();
    if keep.len() == ring.len() {
        return Ok(());
    }
    write(cfg, id, &keep)
}

pub fn clear(cfg: &Config, id: &Identity) -> io::Result<()> {
    fsutil::remove_if_exists(&cfg.state_file(id, "deaths"))
}

/// The crash-loop verdict: `Some((deaths in the window, the last one))`
/// when there were at least `max`.
pub fn crash_loop(
    cfg: &Config,
    id: &Identity,
    now_ms: u64,
    max: u64,
    window_secs: u64,
) -> Option<(usize, Death)> {
    let recent: Vec<Death> = deaths(cfg, id)
        .into_iter()
        .filter(|d| now_ms.saturating_sub(d.at) < window_secs * 1000)
        .collect();
    (recent.len() as u64 >= max).then(|| (recent.len(), recent.last().cloned().expect("non-empty")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(dir: &std::path::Path) -> Config {
        let mut env = crate::config::Env::new();
        env.insert("HOME".into(), dir.to_string_lossy().into_owned());
        Config::new(env, &Default::default())
    }

    fn death(at: u64) -> Death {
        Death {
            at,
            status: Some(1),
            signal: None,
            cause: format!("died at {at}"),
            tail: String::new(),
        }
    }

    #[test]
    fn the_ring_keeps_sixteen_and_the_guard_counts_the_window() {
        let tmp = tempfile::tempdir().unwrap();
        let cfg = cfg(tmp.path());
        let id = Identity::parse("claude-bob").unwrap();
        for i in 0..20 {
            record(&cfg, &id, death(i * 1000)).unwrap();
        }
        let ring = deaths(&cfg, &id);
        assert_eq!(ring.len(), 16);
        assert_eq!(ring[0].at, 4000);
        // Window 5 s at t=20 s: deaths at 16..19 s are inside.
        let (n, last) = crash_loop(&cfg, &id, 20_000, 3, 5).unwrap();
        assert_eq!((n, last.at), (4, 19_000));
        assert!(crash_loop(&cfg, &id, 20_000, 5, 5).is_none());
        trim(&cfg, &id, 20_000, 5).unwrap();
        assert_eq!(deaths(&cfg, &id).len(), 4);
        trim(&cfg, &id, 100_000, 5).unwrap();
        assert!(
            !cfg.state_file(&id, "deaths").exists(),
            "an empty ring is no file"
        );
    }

    #[test]
    fn the_typescript_format_and_garbage() {
        let tmp = tempfile::tempdir().unwrap();
        let cfg = cfg(tmp.path());
        let id = Identity::parse("claude-bob").unwrap();
        fsutil::write_atomic(&cfg.state_file(&id, "deaths"), b"[1000, 2000]").unwrap();
        assert_eq!(
            deaths(&cfg, &id).iter().map(|d| d.at).collect::<Vec<_>>(),
            [1000, 2000]
        );
        fsutil::write_atomic(&cfg.state_file(&id, "deaths"), b"{not json").unwrap();
        assert!(deaths(&cfg, &id).is_empty());
    }

    #[test]
    fn exit_descriptions() {
        let mut e = ExitRecord {
            at: 0,
            program: "claude".into(),
            status: Some(1),
            signal: None,
            hangup: false,
            tail: "cannot be used with root".into(),
        };
        assert_eq!(
            e.describe(),
            "claude exited (status 1): cannot be used with root"
        );
        e.status = None;
        e.signal = Some(9);
        e.tail.clear();
        assert_eq!(e.describe(), "claude killed by signal 9");
    }
}
