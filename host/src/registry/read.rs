//! Reading the registry, `<root>/peers-profiles.json`: serde reads each
//! key into its type, then the peer's rules are checked in a fixed order,
//! the first one broken being the error.

use std::path::Path;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value};

use super::{
    Intelligence, MAX_CONFIG_BYTES, PeerRecord, Registry, RegistryError, clamp_description,
};
use crate::fsutil;
use crate::names::{Personality, Runtime};

/// One key of an untrusted file, read as a `T`. A value of another type
/// is kept instead of failing the whole read: the keys are then checked in
/// a fixed order, and the error shows the value (`got 3`).
#[derive(Debug, Default)]
pub(super) enum Field<T> {
    /// The key is missing (or, read with [`nullable`], `null`).
    #[default]
    Absent,
    Is(T),
    Wrong(Value),
}

impl<T: DeserializeOwned> Field<T> {
    fn from_value(v: Value) -> Field<T> {
        match T::deserialize(&v) {
            Ok(t) => Field::Is(t),
            Err(_) => Field::Wrong(v),
        }
    }
}

/// Any value reads: `null` is a value of the wrong type, like any other.
impl<'de, T: DeserializeOwned> Deserialize<'de> for Field<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Value::deserialize(d).map(Field::from_value)
    }
}

/// For `#[serde(deserialize_with)]`: a key whose `null` counts as absent,
/// as JavaScript's `??` treats it (for files the TypeScript iapeer wrote).
pub(super) fn nullable<'de, D, T>(d: D) -> Result<Field<T>, D::Error>
where
    D: Deserializer<'de>,
    T: DeserializeOwned,
{
    Ok(match Value::deserialize(d)? {
        Value::Null => Field::Absent,
        v => Field::from_value(v),
    })
}

impl<T> Field<T> {
    /// The value, when it has the type.
    pub(super) fn ok(self) -> Option<T> {
        match self {
            Field::Is(t) => Some(t),
            Field::Absent | Field::Wrong(_) => None,
        }
    }

    /// `None` when absent; a value of another type is the error
    /// `<rule>, got <value>`.
    pub(super) fn checked(self, rule: &str) -> Result<Option<T>, String> {
        match self {
            Field::Absent => Ok(None),
            Field::Is(t) => Ok(Some(t)),
            Field::Wrong(v) => Err(format!("{rule}, got {v}")),
        }
    }
}

/// The default runtime: `default_runtime`, else (when that is absent) the
/// legacy `runtime`; `None` when the one that counts is not a string.
pub(super) fn default_runtime(default: Field<String>, legacy: Field<String>) -> Option<String> {
    match default {
        Field::Absent => legacy.ok(),
        given => given.ok(),
    }
}

/// `[default, …listed]`, de-duplicated, default first. Entries that are not
/// valid runtime names are dropped (with a warning): they could never be
/// woken, and one typo must not make the whole registry unreadable.
pub(super) fn runtimes(
    default: &Runtime,
    listed: Field<Vec<Field<Runtime>>>,
    bad: &dyn Fn(String) -> String,
) -> Result<Vec<Runtime>, String> {
    let mut out = vec![default.clone()];
    let listed = listed
        .checked("runtimes must be an array")
        .map_err(bad)?
        .unwrap_or_default();
    for item in listed {
        match item {
            Field::Is(rt) if !out.contains(&rt) => out.push(rt),
            Field::Wrong(v) => tracing::warn!("{}", bad(format!("ignoring runtimes entry {v}"))),
            _ => {}
        }
    }
    Ok(out)
}

/// The top level; the keys it does not name are kept by the editor.
#[derive(Default, Deserialize)]
#[serde(default)]
struct RawRegistry {
    version: Field<i64>,
    peers: Field<Vec<Field<RawPeer>>>,
}

/// One peer as written; `null` counts as absent for every key.
#[derive(Default, Deserialize)]
#[serde(default)]
struct RawPeer {
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
    description: Field<String>,
    #[serde(deserialize_with = "nullable")]
    cwd: Field<String>,
    #[serde(deserialize_with = "nullable")]
    intelligence: Field<String>,
    #[serde(deserialize_with = "nullable")]
    interfaces: Field<Map<String, Value>>,
    /// Keys this version does not know, kept verbatim.
    #[serde(flatten)]
    extra: Map<String, Value>,
}

impl RawPeer {
    /// The record, or the first rule it breaks, naming the peer (by its
    /// index when the personality itself is what is wrong).
    fn into_record(self, index: usize) -> Result<PeerRecord, String> {
        let name = self.personality.ok().unwrap_or_default();
        let bad = |detail: String| format!("peer {name:?}: {detail}");
        let personality =
            Personality::new(name.as_str()).map_err(|e| format!("peers[{index}]: {e}"))?;
        let rt = default_runtime(self.default_runtime, self.runtime)
            .ok_or_else(|| bad("no default_runtime".into()))?;
        let default_runtime = Runtime::new(rt).map_err(|e| bad(e.to_string()))?;
        let runtimes = runtimes(&default_runtime, self.runtimes, &bad)?;
        let description = self
            .description
            .checked("description must be a string")
            .map_err(&bad)?
            .map(|s| clamp_description(&s))
            .unwrap_or_default();
        let cwd = self
            .cwd
            .ok()
            .filter(|s| s.starts_with('/') && !s.contains('\0'))
            .ok_or_else(|| bad("cwd must be an absolute path".into()))?;
        let raw_intelligence = self
            .intelligence
            .checked("intelligence must be a string")
            .map_err(&bad)?
            .filter(|s| !s.is_empty());
        let intelligence = match &raw_intelligence {
            None => Intelligence::default_for(default_runtime.as_str()),
            Some(raw) => Intelligence::parse(raw)
                .ok_or_else(|| bad(format!("unknown intelligence {raw:?}")))?,
        };
        if let Some(mode) = self.extra.get("delivery") {
            let known = mode
                .as_str()
                .is_some_and(|m| m.parse::<super::DeliveryMode>().is_ok());
            if !known {
                return Err(bad(format!(
                    "delivery must be \"at-turn-end\" or \"immediate\", not {mode}"
                )));
            }
        }
        let interfaces = self
            .interfaces
            .checked("interfaces must be an object")
            .map_err(&bad)?
            .map(Value::Object);
        Ok(PeerRecord {
            personality,
            default_runtime,
            runtimes,
            description,
            intelligence,
            raw_intelligence,
            cwd: cwd.into(),
            interfaces,
            extra: self.extra,
        })
    }
}

/// Parses registry text (`path` is only for messages).
pub fn parse_registry(text: &str, path: &Path) -> Result<Registry, RegistryError> {
    let corrupt = |detail: String| RegistryError::Corrupt {
        path: path.to_path_buf(),
        detail,
    };
    let doc: Value = serde_json::from_str(text).map_err(|e| corrupt(format!("not JSON: {e}")))?;
    if !doc.is_object() {
        return Err(corrupt("top level is not an object".into()));
    }
    // Every key reads (a wrong one as `Field::Wrong`): this cannot fail.
    let raw = RawRegistry::deserialize(doc).map_err(|e| corrupt(e.to_string()))?;
    let version = raw
        .version
        .checked("version must be an integer")
        .map_err(&corrupt)?
        .unwrap_or(2);
    let peers = raw
        .peers
        .checked("peers must be an array")
        .map_err(&corrupt)?
        .unwrap_or_default()
        .into_iter()
        .enumerate()
        .map(|(i, peer)| match peer {
            Field::Is(raw) => raw.into_record(i),
            Field::Absent | Field::Wrong(_) => Err(format!("peers[{i}] is not an object")),
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(&corrupt)?;
    let mut seen = std::collections::HashSet::new();
    if let Some(dup) = peers.iter().find(|p| !seen.insert(p.personality.clone())) {
        return Err(corrupt(format!(
            "duplicate personality {:?}",
            dup.personality.as_str()
        )));
    }
    Ok(Registry { version, peers })
}

/// Reads the registry; a missing file is an empty registry.
pub fn read_registry(path: &Path) -> Result<Registry, RegistryError> {
    match read_registry_text(path)? {
        Some(text) => parse_registry(&text, path),
        None => Ok(Registry::empty()),
    }
}

/// The registry's text; `None` when there is no file yet.
pub(super) fn read_registry_text(path: &Path) -> Result<Option<String>, RegistryError> {
    match fsutil::read_regular_text(path, MAX_CONFIG_BYTES) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::InvalidData | std::io::ErrorKind::InvalidInput
            ) =>
        {
            Err(RegistryError::Corrupt {
                path: path.to_path_buf(),
                detail: e.to_string(),
            })
        }
        Err(source) => Err(RegistryError::Io {
            path: path.to_path_buf(),
            source,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::MAX_DESCRIPTION;

    fn parse(text: &str) -> Result<Registry, RegistryError> {
        parse_registry(text, Path::new("/r/peers-profiles.json"))
    }

    #[test]
    fn defaults_and_legacy_runtime_key() {
        let reg =
            parse(r#"{"peers":[{"personality":"t","runtime":"telegram","cwd":"/w"}]}"#).unwrap();
        let p = reg.find("t").unwrap();
        assert_eq!(p.default_runtime.as_str(), "telegram");
        assert_eq!(p.intelligence, Intelligence::Natural);
        assert_eq!(reg.version, 2);
        assert_eq!(parse("{}").unwrap().peers.len(), 0);
    }

    #[test]
    fn corrupt_registries_name_the_file() {
        for text in [
            "",
            "[]",
            "{not json",
            r#"{"peers": {}}"#,
            r#"{"version": "two"}"#,
            r#"{"peers":[{"personality":"Bad Name","runtime":"claude","cwd":"/w"}]}"#,
            r#"{"peers":[{"personality":"a","runtime":"cl-aude","cwd":"/w"}]}"#,
            r#"{"peers":[{"personality":"a","runtime":"claude"}]}"#,
            r#"{"peers":[{"personality":"a","runtime":"claude","cwd":""}]}"#,
            r#"{"peers":[{"personality":"a","runtime":"claude","cwd":"relative/dir"}]}"#,
            r#"{"peers":[{"personality":"a","runtime":"claude","cwd":"/w","intelligence":"genius"}]}"#,
            r#"{"peers":[{"personality":"a","runtime":"claude","cwd":"/w","interfaces":3}]}"#,
            r#"{"peers":[{"personality":"a","runtime":"claude","cwd":"/w"},{"personality":"a","runtime":"codex","cwd":"/x"}]}"#,
            r#"{"peers":[7]}"#,
        ] {
            let err = parse(text).unwrap_err().to_string();
            assert!(
                err.starts_with("corrupt registry /r/peers-profiles.json: "),
                "{text}: {err}"
            );
            assert!(!err.contains('\n'), "{err}");
        }
    }

    /// The rules are checked in one order, whatever the order of the keys:
    /// the first broken one is reported, with the value it got.
    #[test]
    fn the_first_broken_rule_is_reported() {
        for (text, want) in [
            (
                r#"{"peers":5,"version":null}"#,
                "version must be an integer, got null",
            ),
            (r#"{"peers":null}"#, "peers must be an array, got null"),
            (r#"{"peers":[{"a":1},[]]}"#, "peers[0]: invalid personality"),
            (r#"{"peers":[[]]}"#, "peers[0] is not an object"),
            (
                r#"{"peers":[{"cwd":5,"description":5,"personality":"a","runtime":"claude"}]}"#,
                r#"peer "a": description must be a string, got 5"#,
            ),
            (
                r#"{"peers":[{"personality":"a","default_runtime":5,"runtime":"claude","cwd":"/w"}]}"#,
                r#"peer "a": no default_runtime"#,
            ),
            (
                r#"{"peers":[{"interfaces":[],"intelligence":"genius","personality":"a","runtime":"claude","cwd":"/w"}]}"#,
                r#"peer "a": unknown intelligence "genius""#,
            ),
        ] {
            let err = parse(text).unwrap_err().to_string();
            assert!(err.contains(want), "{text}: {err}");
        }
    }

    #[test]
    fn lenient_where_the_typescript_iapeer_is() {
        let reg = parse(
            r#"{"peers":[{"personality":"a","default_runtime":null,"runtime":"codex","cwd":"/w",
                "runtimes":["../x", 7, "claude", "codex"]}]}"#,
        )
        .unwrap();
        let p = reg.find("a").unwrap();
        assert_eq!(p.default_runtime.as_str(), "codex");
        assert_eq!(
            p.runtimes.iter().map(|r| r.as_str()).collect::<Vec<_>>(),
            ["codex", "claude"]
        );
    }

    #[test]
    fn description_is_clamped() {
        let long = "é".repeat(500);
        let reg = parse(&format!(
            r#"{{"peers":[{{"personality":"a","runtime":"claude","cwd":"/w","description":"{long}"}}]}}"#
        ))
        .unwrap();
        assert_eq!(reg.peers[0].description.chars().count(), MAX_DESCRIPTION);
    }
}
