//! The local peer profile, `<cwd>/.iapeer/peer-profile.json`: what a peer
//! folder says about its peer (read leniently: a key of the wrong type is
//! ignored, except a personality or runtime that is not a valid name).

use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;

use super::read::{Field, default_runtime, nullable, runtimes};
use super::{Intelligence, MAX_CONFIG_BYTES, RegistryError};
use crate::fsutil;
use crate::names::{Personality, Runtime};

/// What the lifecycle needs from `<cwd>/.iapeer/peer-profile.json`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PeerProfile {
    pub personality: Option<Personality>,
    pub default_runtime: Option<Runtime>,
    pub runtimes: Vec<Runtime>,
    pub intelligence: Option<Intelligence>,
    pub initial_prompt: Option<String>,
    /// `wake_policy: "ephemeral"`: one fresh session per message, reaped
    /// once it is done (anything else is the warm default).
    pub ephemeral: bool,
}

/// The profile as written; `null` counts as absent for every key, and keys
/// not named here are ignored.
#[derive(Default, Deserialize)]
#[serde(default)]
struct RawProfile {
    #[serde(deserialize_with = "nullable")]
    personality: Field<String>,
    #[serde(deserialize_with = "nullable")]
    default_runtime: Field<String>,
    /// The legacy name of `default_runtime` (which wins when both are there).
    #[serde(deserialize_with = "nullable")]
    runtime: Field<String>,
    #[serde(deserialize_with = "nullable")]
    runtimes: Field<Vec<Field<Runtime>>>,
    #[serde(deserialize_with = "nullable")]
    intelligence: Field<String>,
    #[serde(deserialize_with = "nullable")]
    initial_prompt: Field<String>,
    #[serde(deserialize_with = "nullable")]
    wake_policy: Field<String>,
}

pub fn profile_path(cwd: &Path) -> PathBuf {
    cwd.join(".iapeer/peer-profile.json")
}

/// Reads the local profile; `Ok(None)` when there is none. The personality
/// is normalized ([`normalize_personality`]); runtimes are read only with a
/// default runtime; an unknown intelligence and an empty initial prompt
/// count as absent.
pub fn read_profile(cwd: &Path) -> Result<Option<PeerProfile>, RegistryError> {
    let path = profile_path(cwd);
    let text = match fsutil::read_regular_text(&path, MAX_CONFIG_BYTES) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(RegistryError::Io { path, source }),
    };
    let bad = |detail: String| RegistryError::Profile {
        path: path.clone(),
        detail,
    };
    let doc: Value = serde_json::from_str(&text).map_err(|e| bad(format!("not JSON: {e}")))?;
    if !doc.is_object() {
        return Err(bad("not a JSON object".into()));
    }
    // Every key reads (a wrong one as `Field::Wrong`): this cannot fail.
    let raw = RawProfile::deserialize(doc).map_err(|e| bad(e.to_string()))?;
    let personality = raw
        .personality
        .ok()
        .map(|p| Personality::new(normalize_personality(&p)).map_err(|e| bad(e.to_string())))
        .transpose()?;
    let default_runtime = default_runtime(raw.default_runtime, raw.runtime)
        .map(|r| Runtime::new(r).map_err(|e| bad(e.to_string())))
        .transpose()?;
    let runtimes = match &default_runtime {
        Some(d) => runtimes(d, raw.runtimes, &|d| d).map_err(bad)?,
        None => Vec::new(),
    };
    let intelligence = raw.intelligence.ok().and_then(|i| Intelligence::parse(&i));
    let initial_prompt = raw.initial_prompt.ok().filter(|s| !s.is_empty());
    let ephemeral = raw.wake_policy.ok().is_some_and(|p| p == "ephemeral");
    Ok(Some(PeerProfile {
        personality,
        default_runtime,
        runtimes,
        intelligence,
        initial_prompt,
        ephemeral,
    }))
}

/// A folder's name made a personality the way the TypeScript iapeer does,
/// ASCII part: lower case, every run of other characters becomes one `-`,
/// no edge dashes, at most 32 bytes. (Non-ASCII letters are not
/// transliterated: they separate.)
pub fn normalize_personality(raw: &str) -> String {
    let mut out = String::new();
    for c in raw.chars().flat_map(char::to_lowercase) {
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            out.push(c);
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    let trimmed = out.trim_matches('-');
    let cut: String = trimmed.chars().take(32).collect();
    cut.trim_end_matches('-').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn personality_normalisation() {
        for (raw, want) in [
            ("My Project", "my-project"),
            ("a___b...c", "a-b-c"),
            ("--lead-and-trail--", "lead-and-trail"),
            ("bob", "bob"),
            ("2nd", "2nd"),
        ] {
            assert_eq!(normalize_personality(raw), want, "{raw}");
        }
        assert_eq!(normalize_personality(&"a".repeat(40)), "a".repeat(32));
        assert!(Personality::new(normalize_personality("2nd")).is_err());
    }
}
