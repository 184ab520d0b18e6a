//! The peer registry (`<root>/peers-profiles.json`), the local peer profile
//! (`<cwd>/.iapeer/peer-profile.json`) and `launch.env`. Every reader treats
//! the file as untrusted: a malformed one is a one-line error naming the file.
//!
//! This file holds the types; reading, editing, the profile, launch.env and
//! a peer's nature each have their own file.

use std::path::PathBuf;

use serde_json::{Map, Value};

use crate::names::{Personality, Runtime};

mod edit;
mod intelligence;
mod launch_env;
mod profile;
mod read;

pub use edit::{Registration, RegistryLock, render_registry, same_dir, upsert_peer};
pub use intelligence::{INTELLIGENCES, Intelligence};
pub use launch_env::{LaunchEnv, parse_launch_env, read_launch_env};
pub use profile::{PeerProfile, normalize_personality, profile_path, read_profile};
pub use read::{parse_registry, read_registry};

/// The largest registry, profile or launch.env read (a planted device or
/// a runaway file must not exhaust memory).
pub const MAX_CONFIG_BYTES: u64 = 16 << 20;

/// Descriptions are clamped to this many characters.
pub const MAX_DESCRIPTION: usize = 450;

/// `s` cut to [`MAX_DESCRIPTION`] characters.
fn clamp_description(s: &str) -> String {
    s.chars().take(MAX_DESCRIPTION).collect()
}

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("corrupt registry {path}: {detail}")]
    Corrupt { path: PathBuf, detail: String },
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid peer profile {path}: {detail}")]
    Profile { path: PathBuf, detail: String },
    #[error("{0}")]
    Invalid(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct PeerRecord {
    pub personality: Personality,
    pub default_runtime: Runtime,
    /// Declared runtimes, the default first.
    pub runtimes: Vec<Runtime>,
    pub description: String,
    /// The nature, normalized.
    pub intelligence: Intelligence,
    /// The nature as written (a legacy spelling is written back verbatim).
    pub raw_intelligence: Option<String>,
    pub cwd: PathBuf,
    pub interfaces: Option<Value>,
    /// Keys this version does not know, preserved on write.
    pub extra: Map<String, Value>,
}

/// When a live peer gets its mail (`delivery` in its registry entry).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, strum::EnumString, strum::IntoStaticStr)]
#[strum(serialize_all = "kebab-case")]
pub enum DeliveryMode {
    /// Only idle at its composer: mail waits while it works (the default).
    #[default]
    AtTurnEnd,
    /// Whenever its composer takes input, mid-turn too (the runtime queues
    /// it itself, if it does).
    Immediate,
}

impl PeerRecord {
    pub fn declares(&self, runtime: &str) -> bool {
        self.runtimes.iter().any(|r| r == runtime)
    }

    /// Its `delivery` (checked when the registry was read).
    pub fn delivery(&self) -> DeliveryMode {
        self.extra
            .get("delivery")
            .and_then(Value::as_str)
            .and_then(|s| s.parse().ok())
            .unwrap_or_default()
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Registry {
    pub version: i64,
    pub peers: Vec<PeerRecord>,
}

impl Registry {
    pub fn find(&self, personality: &str) -> Option<&PeerRecord> {
        self.peers.iter().find(|p| p.personality == personality)
    }

    /// What a missing file reads as.
    fn empty() -> Registry {
        Registry {
            version: 2,
            peers: Vec::new(),
        }
    }
}
