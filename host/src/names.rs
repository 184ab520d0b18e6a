//! Peer names: personality, runtime and identity validation. A name becomes
//! part of a file or socket path only after it passed these checks, so none of
//! them can smuggle a `/`, `..` or a shell metacharacter into a path.

use std::fmt;

use serde::{Deserialize, Serialize};

/// What a personality looks like, as a JSON-schema pattern.
pub const PERSONALITY_PATTERN: &str = "^[a-z][a-z0-9-]{0,31}$";
/// What a host's name in a fleet looks like (as a personality: it is a
/// token of NATS subjects and KV keys).
pub const HOST_PATTERN: &str = "^[a-z][a-z0-9-]{0,31}$";
/// What a runtime id looks like: no dashes (see [`is_valid_runtime`]).
pub const RUNTIME_PATTERN: &str = "^[a-z][a-z0-9]{0,31}$";

/// Why a string is not a valid name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("invalid personality {0:?}: expected {PERSONALITY_PATTERN}")]
    Personality(String),
    #[error("invalid runtime {0:?}: expected {RUNTIME_PATTERN}")]
    Runtime(String),
    #[error("invalid host name {0:?}: expected {HOST_PATTERN}")]
    Host(String),
    #[error("invalid peer {0:?}: expected <personality> or <personality>@<host>")]
    Address(String),
    #[error("invalid identity {0:?}: expected <runtime>-<personality>")]
    Identity(String),
}

fn valid_name(s: &str, dash_allowed: bool) -> bool {
    let bytes = s.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 32
        && bytes[0].is_ascii_lowercase()
        && bytes[1..]
            .iter()
            .all(|&b| b.is_ascii_lowercase() || b.is_ascii_digit() || (dash_allowed && b == b'-'))
}

/// [`PERSONALITY_PATTERN`]
pub fn is_valid_personality(s: &str) -> bool {
    valid_name(s, true)
}

/// [`RUNTIME_PATTERN`] — no dashes: the runtime is the left half of an
/// identity, split at the first `-`.
pub fn is_valid_runtime(s: &str) -> bool {
    valid_name(s, false)
}

macro_rules! name_type {
    ($(#[$doc:meta])* $name:ident, $check:ident, $err:ident, $pattern:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            pub fn new(s: impl Into<String>) -> Result<Self, NameError> {
                let s = s.into();
                if $check(&s) { Ok(Self(s)) } else { Err(NameError::$err(s)) }
            }
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        /// A string matching the name's pattern, inline where it is used.
        impl schemars::JsonSchema for $name {
            fn inline_schema() -> bool {
                true
            }
            fn schema_name() -> std::borrow::Cow<'static, str> {
                stringify!($name).into()
            }
            fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
                schemars::json_schema!({"type": "string", "pattern": $pattern})
            }
        }

        impl std::str::FromStr for $name {
            type Err = NameError;
            fn from_str(s: &str) -> Result<Self, NameError> {
                Self::new(s)
            }
        }

        impl TryFrom<String> for $name {
            type Error = NameError;
            fn try_from(s: String) -> Result<Self, NameError> {
                Self::new(s)
            }
        }

        impl From<$name> for String {
            fn from(n: $name) -> String {
                n.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }
    };
}

name_type!(
    /// A validated personality (the peer's name).
    Personality,
    is_valid_personality,
    Personality,
    PERSONALITY_PATTERN
);
name_type!(
    /// A validated host name: one daemon's name in a fleet.
    HostName,
    is_valid_personality,
    Host,
    HOST_PATTERN
);

impl HostName {
    /// The machine's name made into a host name (lower case, anything
    /// else a dash, at most 32), or `host` when nothing is left.
    pub fn of_machine() -> HostName {
        let raw = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .or_else(|| std::env::var("HOSTNAME").ok())
            .unwrap_or_default();
        let short = raw
            .trim()
            .split('.')
            .next()
            .unwrap_or("")
            .to_ascii_lowercase();
        let mut name: String = short
            .chars()
            .map(|c| {
                if c.is_ascii_lowercase() || c.is_ascii_digit() {
                    c
                } else {
                    '-'
                }
            })
            .take(32)
            .collect();
        if !name.starts_with(|c: char| c.is_ascii_lowercase()) {
            name = format!("h{name}").chars().take(32).collect();
        }
        HostName::new(name).unwrap_or_else(|_| HostName("host".into()))
    }
}

/// What a peer's address looks like, as a JSON-schema pattern.
pub const ADDRESS_PATTERN: &str = "^[a-z][a-z0-9-]{0,31}(@[a-z][a-z0-9-]{0,31})?$";

/// A peer as a caller names it: `bob`, or `bob@gpu` to name the host too
/// (in a fleet across machines, where a caller must be explicit). Derefs
/// to the personality.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PeerAddress {
    personality: Personality,
    host: Option<HostName>,
}

impl PeerAddress {
    pub fn new(s: impl Into<String>) -> Result<PeerAddress, NameError> {
        let s = s.into();
        let Some((p, h)) = s.split_once('@') else {
            return Ok(Personality::new(s)?.into());
        };
        let bad = || NameError::Address(s.clone());
        Ok(PeerAddress {
            personality: Personality::new(p).map_err(|_| bad())?,
            host: Some(HostName::new(h).map_err(|_| bad())?),
        })
    }

    pub fn personality(&self) -> &Personality {
        &self.personality
    }

    /// The host it names, if any.
    pub fn host(&self) -> Option<&HostName> {
        self.host.as_ref()
    }
}

impl From<Personality> for PeerAddress {
    fn from(personality: Personality) -> PeerAddress {
        PeerAddress {
            personality,
            host: None,
        }
    }
}

impl std::ops::Deref for PeerAddress {
    type Target = Personality;
    fn deref(&self) -> &Personality {
        &self.personality
    }
}

impl fmt::Display for PeerAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.host {
            Some(h) => write!(f, "{}@{h}", self.personality),
            None => f.write_str(self.personality.as_str()),
        }
    }
}

impl std::str::FromStr for PeerAddress {
    type Err = NameError;
    fn from_str(s: &str) -> Result<Self, NameError> {
        Self::new(s)
    }
}

impl TryFrom<String> for PeerAddress {
    type Error = NameError;
    fn try_from(s: String) -> Result<Self, NameError> {
        Self::new(s)
    }
}

impl From<PeerAddress> for String {
    fn from(a: PeerAddress) -> String {
        a.to_string()
    }
}

impl schemars::JsonSchema for PeerAddress {
    fn inline_schema() -> bool {
        true
    }
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "PeerAddress".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({"type": "string", "pattern": ADDRESS_PATTERN})
    }
}

name_type!(
    /// A validated runtime id (`claude`, `codex`, …).
    Runtime,
    is_valid_runtime,
    Runtime,
    RUNTIME_PATTERN
);

/// `<runtime>-<personality>`: the tmux session name, the process address and
/// the key of every lifecycle state file.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Identity {
    runtime: Runtime,
    personality: Personality,
    text: String,
}

impl std::str::FromStr for Identity {
    type Err = NameError;
    fn from_str(s: &str) -> Result<Self, NameError> {
        Identity::parse(s)
    }
}

impl Identity {
    pub fn new(runtime: &Runtime, personality: &Personality) -> Self {
        Identity {
            text: format!("{runtime}-{personality}"),
            runtime: runtime.clone(),
            personality: personality.clone(),
        }
    }

    /// Splits at the first `-`: the left half must be a runtime, the right
    /// half a personality.
    pub fn parse(s: &str) -> Result<Self, NameError> {
        let bad = || NameError::Identity(s.to_string());
        let (rt, p) = s.split_once('-').ok_or_else(bad)?;
        let runtime = Runtime::new(rt).map_err(|_| bad())?;
        let personality = Personality::new(p).map_err(|_| bad())?;
        Ok(Identity::new(&runtime, &personality))
    }

    pub fn runtime(&self) -> &Runtime {
        &self.runtime
    }

    pub fn personality(&self) -> &Personality {
        &self.personality
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl Serialize for Identity {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn personality_rules() {
        for ok in ["a", "bob", "company-checker", "a1-2", &"a".repeat(32)] {
            assert!(is_valid_personality(ok), "{ok}");
        }
        for bad in [
            "",
            "1a",
            "-a",
            "A",
            "a_b",
            "a.b",
            "a/b",
            "..",
            "a b",
            "é",
            &"a".repeat(33),
            "a;rm",
        ] {
            assert!(!is_valid_personality(bad), "{bad}");
        }
    }

    #[test]
    fn runtime_rules() {
        assert!(is_valid_runtime("claude"));
        assert!(is_valid_runtime("codex2"));
        assert!(!is_valid_runtime("my-rt"));
        assert!(!is_valid_runtime("Claude"));
        assert!(!is_valid_runtime(""));
        assert!(!is_valid_runtime(&"a".repeat(33)));
    }

    #[test]
    fn identity_splits_at_first_dash() {
        let id = Identity::parse("claude-company-checker").unwrap();
        assert_eq!(id.runtime().as_str(), "claude");
        assert_eq!(id.personality().as_str(), "company-checker");
        assert_eq!(id.as_str(), "claude-company-checker");
        assert!(Identity::parse("noseparator").is_err());
        assert!(Identity::parse("claude-").is_err());
        assert!(Identity::parse("-bob").is_err());
        assert!(Identity::parse("claude-../x").is_err());
    }

    #[test]
    fn serde_validates() {
        let p: Result<Personality, _> = serde_json::from_str("\"bob\"");
        assert!(p.is_ok());
        let p: Result<Personality, _> = serde_json::from_str("\"../etc\"");
        assert!(p.is_err());
    }
}
