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
//!
//! A boot that never becomes ready costs up to the boot deadline (240 s),
//! so three of them never fit in a 300 s window: N *boot failures in a
//! row* (no successful wake between them) trip the guard too, as long as
//! the first of them started within W plus N boot deadlines.

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

/// The last `n` non-empty lines of a pane, each with its runs of blanks
/// squeezed, joined into one line with ` ⏎ `.
pub fn flat_tail(pane: &str, n: usize) -> String {
    let lines: Vec<String> = pane
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|l| !l.is_empty())
        .collect();
    lines[lines.len().saturating_sub(n)..].join(" ⏎ ")
}

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

    /// A clean quit (`/exit`, status 0): the runtime's own decision, not a
    /// crash — once it was up. During a boot it is a failure all the same
    /// (Claude Code's "No, exit" on the Bypass Permissions dialog).
    pub fn clean_quit(&self) -> bool {
        !self.hangup && self.status == Some(0)
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

/// Where in a session's life its runtime died.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Before it came up: it exited during boot, or never became ready.
    Boot,
    /// After it came up.
    Running,
}

/// One entry of the deaths ring.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Death {
    /// Epoch ms.
    pub at: u64,
    /// The runtime never came up (it exited during its boot, or never
    /// became ready), and no wake has succeeded since: part of a streak.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub boot: bool,
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

/// The identity's last exit record, if it was written at or after
/// `since_ms` (an older one belongs to an earlier session).
pub fn read_exit(cfg: &Config, id: &Identity, since_ms: u64) -> Option<ExitRecord> {
    read_exit_file(&cfg.state_file(id, "exit"), since_ms)
}

/// [`read_exit`] from the record's path.
pub fn read_exit_file(path: &std::path::Path, since_ms: u64) -> Option<ExitRecord> {
    let bytes = fsutil::read_regular_file(path, MAX_FILE_BYTES).ok()?;
    serde_json::from_slice::<ExitRecord>(&bytes)
        .ok()
        .filter(|e| e.at >= since_ms)
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
                boot: false,
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

/// A successful wake: drops deaths older than the window and ends any
/// streak of failed boots.
pub fn trim(cfg: &Config, id: &Identity, now_ms: u64, window_secs: u64) -> io::Result<()> {
    let ring = deaths(cfg, id);
    let keep: Vec<Death> = ring
        .iter()
        .filter(|d| now_ms.saturating_sub(d.at) < window_secs.saturating_mul(1000))
        .map(|d| Death {
            boot: false,
            ..d.clone()
        })
        .collect();
    if keep == ring {
        return Ok(());
    }
    write(cfg, id, &keep)
}

pub fn clear(cfg: &Config, id: &Identity) -> io::Result<()> {
    fsutil::remove_if_exists(&cfg.state_file(id, "deaths"))
}

/// The guard's settings.
#[derive(Debug, Clone, Copy)]
pub struct Guard {
    pub max: u64,
    pub window_secs: u64,
    /// How long one boot may take (stretches the window for boot streaks).
    pub boot_deadline_secs: u64,
}

/// Why the guard refuses: `deaths` within `window_secs`, the last one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrashLoop {
    pub deaths: usize,
    pub window_secs: u64,
    pub last: Death,
}

/// The crash-loop verdict: `Some` when at least `max` deaths fell in the
/// window, or the last `max` were boot failures in a row (see the module).
pub fn crash_loop(cfg: &Config, id: &Identity, now_ms: u64, guard: Guard) -> Option<CrashLoop> {
    if guard.max == 0 {
        return None; // `IAPEER_CRASHLOOP_MAX=0`: the guard is off.
    }
    let ring = deaths(cfg, id);
    // The ring holds 16: a larger N could never be reached.
    let max = usize::try_from(guard.max).unwrap_or(RING).clamp(1, RING);
    let age = |d: &Death| now_ms.saturating_sub(d.at);
    let window_ms = guard.window_secs.saturating_mul(1000);
    let recent: Vec<&Death> = ring.iter().filter(|d| age(d) < window_ms).collect();
    if recent.len() >= max {
        return Some(CrashLoop {
            deaths: recent.len(),
            window_secs: guard.window_secs,
            last: (*recent.last().expect("non-empty")).clone(),
        });
    }
    let streak = ring.iter().rev().take_while(|d| d.boot).count();
    if streak < max {
        return None;
    }
    let span_secs = guard
        .window_secs
        .saturating_add((max as u64).saturating_mul(guard.boot_deadline_secs));
    let first = &ring[ring.len() - max];
    (age(first) < span_secs.saturating_mul(1000)).then(|| CrashLoop {
        deaths: max,
        window_secs: age(first).div_ceil(1000),
        last: ring.last().expect("non-empty").clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(dir: &std::path::Path) -> Config {
        let mut env = crate::config::Env::new();
        env.insert("HOME".into(), dir.to_string_lossy().into_owned());
        Config::new(env, &Default::default()).unwrap()
    }

    fn death(at: u64) -> Death {
        Death {
            at,
            boot: false,
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
        let guard = |max| Guard {
            max,
            window_secs: 5,
            boot_deadline_secs: 240,
        };
        let verdict = crash_loop(&cfg, &id, 20_000, guard(3)).unwrap();
        assert_eq!((verdict.deaths, verdict.last.at), (4, 19_000));
        assert!(crash_loop(&cfg, &id, 20_000, guard(5)).is_none());
        assert!(
            crash_loop(&cfg, &id, 20_000, guard(0)).is_none(),
            "0 turns it off"
        );
        assert!(crash_loop(&cfg, &id, 20_000, guard(99)).is_none());
        let huge = Guard {
            max: 3,
            window_secs: u64::MAX,
            boot_deadline_secs: u64::MAX,
        };
        assert_eq!(crash_loop(&cfg, &id, 20_000, huge).unwrap().deaths, 16);
        trim(&cfg, &id, 20_000, 5).unwrap();
        assert_eq!(deaths(&cfg, &id).len(), 4);
        trim(&cfg, &id, 100_000, 5).unwrap();
        assert!(
            !cfg.state_file(&id, "deaths").exists(),
            "an empty ring is no file"
        );
    }

    #[test]
    fn boots_that_never_come_up_trip_the_guard_even_when_slower_than_the_window() {
        let tmp = tempfile::tempdir().unwrap();
        let cfg = cfg(tmp.path());
        let id = Identity::parse("claude-bob").unwrap();
        let guard = Guard {
            max: 3,
            window_secs: 300,
            boot_deadline_secs: 240,
        };
        // Three never-ready boots, 240 s apart: never three in 300 s.
        for at in [240_000, 480_000, 720_000] {
            record(
                &cfg,
                &id,
                Death {
                    boot: true,
                    ..death(at)
                },
            )
            .unwrap();
        }
        let verdict = crash_loop(&cfg, &id, 721_000, guard).expect("a streak of failed boots");
        assert_eq!((verdict.deaths, verdict.window_secs), (3, 481));
        // A streak long past (W + N deadlines) no longer refuses.
        assert!(crash_loop(&cfg, &id, 240_000 + 1_020_000, guard).is_none());
        // A successful wake ends the streak.
        trim(&cfg, &id, 721_000, 300).unwrap();
        assert!(crash_loop(&cfg, &id, 721_000, guard).is_none());
        assert!(deaths(&cfg, &id).iter().all(|d| !d.boot));
        // A crash after an up-and-running session breaks a streak as well.
        for at in [2_000_000, 2_400_000] {
            record(
                &cfg,
                &id,
                Death {
                    boot: true,
                    ..death(at)
                },
            )
            .unwrap();
        }
        record(&cfg, &id, death(2_800_000)).unwrap();
        record(
            &cfg,
            &id,
            Death {
                boot: true,
                ..death(3_200_000)
            },
        )
        .unwrap();
        assert!(crash_loop(&cfg, &id, 3_200_001, guard).is_none());
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
