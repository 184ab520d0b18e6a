//! Lifecycle state under `<root>/state/lifecycle/`, keyed by identity:
//! `<id>.session` (what the supervisor walks), the `<id>.stopped` and
//! `<id>.new` marks. Files are written atomically, 0600 in a 0700 dir; a
//! garbage `.session` file is skipped, never fatal.

use std::fs;
use std::io;

use serde::{Deserialize, Serialize};

use crate::clock::iso8601_utc;
use crate::config::Config;
use crate::fsutil;
use crate::names::Identity;

/// A `.session` file is a few hundred bytes; anything huge is garbage.
const MAX_SESSION_BYTES: u64 = 64 << 10;

/// A durable mark on an identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mark {
    /// `stop`: the operator halted the peer; wakes are refused until `start`.
    Stopped,
    /// `/new`: the next (eager) relaunch is fresh; consumed by that wake.
    New,
    /// `attach` asked for the boot in progress: its spawner hands it over
    /// at its next look instead of killing it at the deadline.
    HandOver,
    /// A clean park (an idle reap, a stop): the next wake lets the
    /// message's topic decide resume or fresh; consumed when it comes up.
    IdleReaped,
    /// An ephemeral peer answered (or said `self-done`): reaped once quiet.
    EphemeralArmed,
}

impl Mark {
    fn suffix(self) -> &'static str {
        match self {
            Mark::Stopped => "stopped",
            Mark::New => "new",
            Mark::HandOver => "hand-over",
            Mark::IdleReaped => "idle-reaped",
            Mark::EphemeralArmed => "ephemeral-armed",
        }
    }
}

impl Mark {
    const ALL: [Mark; 5] = [
        Mark::Stopped,
        Mark::New,
        Mark::HandOver,
        Mark::IdleReaped,
        Mark::EphemeralArmed,
    ];
}

/// Whether a mark is set: a regular file at its path (a directory or a
/// FIFO planted there is not a mark; [`check_marks`] reports it).
pub fn has_mark(cfg: &Config, id: &Identity, mark: Mark) -> bool {
    fsutil::regular_file_exists(&mark_path(cfg, id, mark)).unwrap_or(false)
}

/// Fails, naming the path, when anything but a regular file sits where one
/// of `id`'s marks belongs: the verbs refuse rather than act on a state
/// they cannot read.
pub fn check_marks(cfg: &Config, id: &Identity) -> io::Result<()> {
    for mark in Mark::ALL {
        fsutil::regular_file_exists(&mark_path(cfg, id, mark))?;
    }
    Ok(())
}

/// Sets a mark (its content is the time it was set, ISO 8601 + newline).
pub fn set_mark(cfg: &Config, id: &Identity, mark: Mark, now_ms: u64) -> io::Result<()> {
    let stamp = format!("{}\n", iso8601_utc(now_ms));
    fsutil::write_atomic(&mark_path(cfg, id, mark), stamp.as_bytes())
}

/// A mark's content (the time it was set), if it is set: two reads that
/// differ mean it was set again in between.
pub fn read_mark(cfg: &Config, id: &Identity, mark: Mark) -> Option<String> {
    fsutil::read_regular_text(&mark_path(cfg, id, mark), 256).ok()
}

/// `<state>/<id>.<mark>`.
pub fn mark_path(cfg: &Config, id: &Identity, mark: Mark) -> std::path::PathBuf {
    cfg.state_file(id, mark.suffix())
}

pub fn clear_mark(cfg: &Config, id: &Identity, mark: Mark) -> io::Result<()> {
    fsutil::remove_if_exists(&mark_path(cfg, id, mark))
}

/// Where a paste in flight is recorded (see `paste::InFlight`).
pub fn pasting_path(cfg: &Config, id: &Identity) -> std::path::PathBuf {
    cfg.state_file(id, "pasting")
}

/// A session the daemon brought up (`<id>.session`), as the TypeScript
/// iapeer writes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionState {
    pub identity: String,
    pub runtime: String,
    pub personality: String,
    pub cwd: String,
    #[serde(rename = "wokeAt")]
    pub woke_at: u64,
    /// Recorded at spawn, before the boot finished: if its spawner dies
    /// (a SIGKILLed CLI, a killed daemon), the next tick adopts the session
    /// once it is ready, or reaps it once the boot deadline has passed.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub booting: bool,
    /// A boot handed to an operator at a startup prompt (`iapeer attach`):
    /// still `booting`, but never reaped at the boot deadline (the idle
    /// bound since the wake applies), and no paste or control key goes in
    /// until it is ready.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub handed_over: bool,
}

impl SessionState {
    /// The validated identity, when the record is consistent.
    pub fn identity(&self) -> Option<Identity> {
        let id = Identity::parse(&self.identity).ok()?;
        (id.runtime() == self.runtime.as_str() && id.personality() == self.personality.as_str())
            .then_some(id)
    }
}

pub fn write_session(cfg: &Config, s: &SessionState) -> io::Result<()> {
    let id = s
        .identity()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "inconsistent session state"))?;
    let json = serde_json::to_vec(s).map_err(io::Error::other)?;
    fsutil::write_atomic(&cfg.state_file(&id, "session"), &json)
}

pub fn remove_session(cfg: &Config, id: &Identity) -> io::Result<()> {
    fsutil::remove_if_exists(&cfg.state_file(id, "session"))
}

/// The `.session` record of one identity, if there is a well-formed one.
pub fn read_session(cfg: &Config, id: &Identity) -> Option<SessionState> {
    let bytes =
        fsutil::read_regular_file(&cfg.state_file(id, "session"), MAX_SESSION_BYTES).ok()?;
    let s: SessionState = serde_json::from_slice(&bytes).ok()?;
    (s.identity().as_ref() == Some(id) && !s.cwd.is_empty()).then_some(s)
}

/// Every well-formed `.session` file. A file that does not parse, names an
/// invalid identity, has an empty cwd, or whose name does not match its
/// identity is skipped.
pub fn read_sessions(cfg: &Config) -> Vec<(Identity, SessionState)> {
    scan_sessions(cfg, false)
}

/// [`read_sessions`], removing on the way (in the same directory listing)
/// the temp files of writers that were killed mid-write: the supervise
/// tick's pass.
pub fn read_sessions_sweeping(cfg: &Config) -> Vec<(Identity, SessionState)> {
    scan_sessions(cfg, true)
}

fn scan_sessions(cfg: &Config, sweep: bool) -> Vec<(Identity, SessionState)> {
    let Ok(entries) = fs::read_dir(&cfg.state_dir) else {
        return Vec::new();
    };
    let mut out: Vec<(Identity, SessionState)> = entries
        .filter_map(Result::ok)
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            if sweep && fsutil::remove_if_orphaned_temp(&e.path(), &name) {
                return None;
            }
            let stem = name.strip_suffix(".session")?;
            let bytes = fsutil::read_regular_file(&e.path(), MAX_SESSION_BYTES).ok()?;
            let s: SessionState = serde_json::from_slice(&bytes).ok()?;
            let id = s.identity()?;
            (id.as_str() == stem && !s.cwd.is_empty()).then_some((id, s))
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}
