//! Writing the registry: `iapeer register` inserts or updates one peer
//! under a lock, changing only that peer's bytes so the file keeps the
//! user's formatting, key order and unknown keys.

use std::fs::File;
use std::path::{Path, PathBuf};

use fs2::FileExt;
use serde_json::{Map, Value};

use super::read::{parse_registry, read_registry_text};
use super::{
    INTELLIGENCES, Intelligence, MAX_CONFIG_BYTES, PeerRecord, Registry, RegistryError,
    clamp_description,
};
use crate::fsutil;
use crate::names::{Personality, Runtime};

fn peer_json(p: &PeerRecord) -> Value {
    let mut obj = p.extra.clone();
    obj.insert("personality".into(), p.personality.as_str().into());
    obj.insert("default_runtime".into(), p.default_runtime.as_str().into());
    // Legacy mirror of default_runtime, read by older iapeer versions.
    obj.insert("runtime".into(), p.default_runtime.as_str().into());
    obj.insert(
        "runtimes".into(),
        p.runtimes.iter().map(|r| Value::from(r.as_str())).collect(),
    );
    obj.insert("description".into(), p.description.clone().into());
    obj.insert(
        "intelligence".into(),
        p.raw_intelligence
            .clone()
            .unwrap_or_else(|| p.intelligence.as_str().to_string())
            .into(),
    );
    obj.insert("cwd".into(), p.cwd.to_string_lossy().into_owned().into());
    if let Some(i) = &p.interfaces {
        obj.insert("interfaces".into(), i.clone());
    }
    Value::Object(obj)
}

/// The registry as written: pretty JSON, peers sorted, trailing newline.
pub fn render_registry(reg: &Registry) -> String {
    let mut peers: Vec<&PeerRecord> = reg.peers.iter().collect();
    peers.sort_by(|a, b| a.personality.cmp(&b.personality));
    let doc = serde_json::json!({
        "version": reg.version,
        "peers": peers.into_iter().map(peer_json).collect::<Vec<_>>(),
    });
    let mut text = serde_json::to_string_pretty(&doc).expect("JSON values always serialize");
    text.push('\n');
    text
}

/// What `iapeer register` asks for.
#[derive(Debug, Clone)]
pub struct Registration {
    pub personality: Personality,
    pub runtime: Runtime,
    pub runtimes: Vec<Runtime>,
    pub cwd: PathBuf,
    pub intelligence: Option<String>,
    pub description: Option<String>,
}

/// Holds `<root>/peers-profiles.lock` exclusively; released on drop or when
/// the process dies.
pub struct RegistryLock(File);

impl RegistryLock {
    pub fn acquire(root: &Path) -> std::io::Result<RegistryLock> {
        fsutil::ensure_private_dir(root)?;
        let f = fsutil::open_lock_file(&root.join("peers-profiles.lock"))?;
        f.lock_exclusive()?;
        Ok(RegistryLock(f))
    }
}

impl Drop for RegistryLock {
    fn drop(&mut self) {
        let _ = FileExt::unlock(&self.0);
    }
}

/// The same directory, however spelt (links and `..` resolved when both
/// exist).
pub fn same_dir(a: &Path, b: &Path) -> bool {
    a == b
        || matches!(
            (std::fs::canonicalize(a), std::fs::canonicalize(b)),
            (Ok(x), Ok(y)) if x == y
        )
}

/// Inserts or updates a peer, atomically and under the registry lock.
/// Merge rules: cwd and default runtime from the call win; runtimes are the
/// union with the default first; intelligence = explicit, else existing, else
/// the runtime's default; a blank description keeps the existing one.
pub fn upsert_peer(
    root: &Path,
    path: &Path,
    r: &Registration,
) -> Result<PeerRecord, RegistryError> {
    let io = |source| RegistryError::Io {
        path: path.to_path_buf(),
        source,
    };
    let explicit = match r.intelligence.as_deref() {
        None => None,
        Some(raw) => Some(Intelligence::parse(raw).ok_or_else(|| {
            RegistryError::Invalid(format!(
                "unknown intelligence {raw:?} (expected one of {})",
                INTELLIGENCES.join(", ")
            ))
        })?),
    };
    let _lock = RegistryLock::acquire(root).map_err(io)?;
    fsutil::sweep_stale_temps(path);
    let text = read_registry_text(path)?;
    let reg = match &text {
        Some(t) => parse_registry(t, path)?,
        None => Registry::empty(),
    };
    // One peer per directory: resume, the activity that confirms a
    // delivery, idleness and the peer profile are all found by cwd, so a
    // second peer there would take the first one's conversation.
    if let Some(other) = reg
        .peers
        .iter()
        .find(|p| p.personality != r.personality && same_dir(&p.cwd, &r.cwd))
    {
        return Err(RegistryError::Invalid(format!(
            "{} is already the cwd of peer {:?}; a directory holds one peer",
            r.cwd.display(),
            other.personality.as_str()
        )));
    }
    let existing = reg
        .peers
        .iter()
        .position(|p| p.personality == r.personality);
    let old = existing.map(|i| reg.peers[i].clone());
    let mut runtimes = vec![r.runtime.clone()];
    for rt in old
        .iter()
        .flat_map(|o| o.runtimes.iter())
        .chain(r.runtimes.iter())
    {
        if !runtimes.contains(rt) {
            runtimes.push(rt.clone());
        }
    }
    let (intelligence, raw_intelligence) = match (explicit, &old) {
        // Re-asserting the same nature keeps a legacy spelling.
        (Some(n), Some(o)) if o.intelligence == n => (n, o.raw_intelligence.clone()),
        (Some(n), _) => (n, r.intelligence.clone()),
        (None, Some(o)) => (o.intelligence, o.raw_intelligence.clone()),
        (None, None) => (Intelligence::default_for(r.runtime.as_str()), None),
    };
    let description = match r.description.as_deref().map(str::trim) {
        Some(d) if !d.is_empty() => clamp_description(d),
        _ => old
            .as_ref()
            .map(|o| o.description.clone())
            .unwrap_or_default(),
    };
    let record = PeerRecord {
        personality: r.personality.clone(),
        default_runtime: r.runtime.clone(),
        runtimes,
        description,
        intelligence,
        raw_intelligence,
        cwd: r.cwd.clone(),
        interfaces: old.as_ref().and_then(|o| o.interfaces.clone()),
        extra: old.as_ref().map(|o| o.extra.clone()).unwrap_or_default(),
    };
    let rendered = edit_registry_text(text.as_deref(), existing, &record);
    if rendered.len() as u64 > MAX_CONFIG_BYTES {
        return Err(RegistryError::Invalid(format!(
            "{} would grow to {} bytes, past the {} it can be read back at; not written",
            path.display(),
            rendered.len(),
            MAX_CONFIG_BYTES
        )));
    }
    fsutil::write_atomic(path, rendered.as_bytes()).map_err(io)?;
    Ok(record)
}

/// The registry text with one peer inserted (`at: None`) or updated. Only
/// that peer's bytes change: the rest of the file — other peers, key order,
/// unknown keys, layout — is kept byte for byte, and nobody gains default
/// fields. `text` has been parsed by [`parse_registry`] already.
fn edit_registry_text(text: Option<&str>, at: Option<usize>, record: &PeerRecord) -> String {
    if let Some(edited) = text.and_then(|t| splice_peer(t, at, record)) {
        return edited;
    }
    // No file yet, or one without a `peers` array: write the whole document.
    let mut doc: Value = text
        .and_then(|t| serde_json::from_str(t).ok())
        .unwrap_or_else(|| serde_json::json!({ "version": 2 }));
    if let Some(obj) = doc.as_object_mut() {
        obj.insert("peers".into(), Value::Array(vec![peer_json(record)]));
    }
    let mut out = serde_json::to_string_pretty(&doc).expect("JSON values always serialize");
    out.push('\n');
    out
}

/// The top level, with `peers` left as its original text.
#[derive(serde::Deserialize)]
struct PeersText<'a> {
    #[serde(borrow)]
    peers: Option<&'a serde_json::value::RawValue>,
}

/// [`edit_registry_text`] on a file with a `peers` array: the new or
/// updated peer object replaces (or follows) the original bytes, written
/// compact or pretty like the element it replaces (or the last one).
fn splice_peer(text: &str, at: Option<usize>, record: &PeerRecord) -> Option<String> {
    use serde_json::value::RawValue;
    let peers = serde_json::from_str::<PeersText<'_>>(text).ok()?.peers?;
    let items: Vec<&RawValue> = serde_json::from_str(peers.get()).ok()?;
    // Every raw value borrows from `text`: its offset is its position.
    let offset = |raw: &str| raw.as_ptr() as usize - text.as_ptr() as usize;
    // The whitespace that starts the line an element starts on.
    let indent_before = |start: usize| -> &str {
        let line = &text[text[..start].rfind('\n').map_or(0, |n| n + 1)..start];
        if line.trim().is_empty() { line } else { "" }
    };
    let render = |obj: Value, like: &str, indent: &str| -> Option<String> {
        if !like.contains('\n') {
            return serde_json::to_string(&obj).ok();
        }
        let pretty = serde_json::to_string_pretty(&obj).ok()?;
        Some(pretty.replace('\n', &format!("\n{indent}")))
    };
    match at {
        Some(i) => {
            let raw = items.get(i)?.get();
            let mut obj: Map<String, Value> = serde_json::from_str(raw).ok()?;
            update_peer_json(&mut obj, record);
            let start = offset(raw);
            let new = render(Value::Object(obj), raw, indent_before(start))?;
            Some(format!(
                "{}{new}{}",
                &text[..start],
                &text[start + raw.len()..]
            ))
        }
        None => match items.last() {
            Some(last) => {
                let last = last.get();
                let start = offset(last);
                let end = start + last.len();
                let indent = indent_before(start);
                let new = render(peer_json(record), last, indent)?;
                let separator = if text[..start].ends_with(indent) && !indent.is_empty() {
                    format!(",\n{indent}")
                } else if text[..start].ends_with('\n') {
                    ",\n".to_string()
                } else {
                    ",".to_string()
                };
                Some(format!("{}{separator}{new}{}", &text[..end], &text[end..]))
            }
            None => {
                let open = offset(peers.get()) + 1;
                let new = serde_json::to_string(&peer_json(record)).ok()?;
                Some(format!("{}{new}{}", &text[..open], &text[open..]))
            }
        },
    }
}

/// Writes `record` into an existing peer object, touching only the keys
/// the record decides; a key the object lacks and the record leaves at its
/// default stays absent.
fn update_peer_json(obj: &mut Map<String, Value>, record: &PeerRecord) {
    obj.insert("personality".into(), record.personality.as_str().into());
    obj.insert(
        "default_runtime".into(),
        record.default_runtime.as_str().into(),
    );
    if obj.contains_key("runtime") {
        obj.insert("runtime".into(), record.default_runtime.as_str().into());
    }
    if obj.contains_key("runtimes") || record.runtimes.len() > 1 {
        obj.insert(
            "runtimes".into(),
            record
                .runtimes
                .iter()
                .map(|r| Value::from(r.as_str()))
                .collect(),
        );
    }
    if obj.contains_key("description") || !record.description.is_empty() {
        obj.insert("description".into(), record.description.clone().into());
    }
    if obj.contains_key("intelligence") || record.raw_intelligence.is_some() {
        let written = record
            .raw_intelligence
            .clone()
            .unwrap_or_else(|| record.intelligence.as_str().to_string());
        obj.insert("intelligence".into(), written.into());
    }
    obj.insert(
        "cwd".into(),
        record.cwd.to_string_lossy().into_owned().into(),
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::read_registry;

    fn parse(text: &str) -> Result<Registry, RegistryError> {
        parse_registry(text, Path::new("/r/peers-profiles.json"))
    }

    #[test]
    fn reads_the_documented_shape() {
        let reg = parse(
            r#"{"version": 2, "peers": [{
              "personality": "assistant", "default_runtime": "claude", "runtime": "claude",
              "runtimes": ["codex", "claude", "codex"], "description": "General.",
              "intelligence": "human", "cwd": "/w/a",
              "interfaces": {"telegram": {"bot": "a"}}, "future_key": 1 }]}"#,
        )
        .unwrap();
        let p = reg.find("assistant").unwrap();
        assert_eq!(
            p.runtimes,
            [
                Runtime::new("claude").unwrap(),
                Runtime::new("codex").unwrap()
            ]
        );
        assert_eq!(p.intelligence, Intelligence::Natural);
        assert_eq!(p.raw_intelligence.as_deref(), Some("human"));
        assert_eq!(p.extra.get("future_key"), Some(&Value::from(1)));
        // Round trip keeps the raw spelling and unknown keys.
        let again = parse(&render_registry(&reg)).unwrap();
        assert_eq!(again, reg);
    }

    #[test]
    fn upsert_merges() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("peers-profiles.json");
        let reg = |rt: &str, rts: &[&str], i: Option<&str>, d: Option<&str>| Registration {
            personality: Personality::new("bob").unwrap(),
            runtime: Runtime::new(rt).unwrap(),
            runtimes: rts.iter().map(|r| Runtime::new(*r).unwrap()).collect(),
            cwd: "/w/bob".into(),
            intelligence: i.map(str::to_string),
            description: d.map(str::to_string),
        };
        let p = upsert_peer(tmp.path(), &path, &reg("claude", &[], None, Some("first"))).unwrap();
        assert_eq!(p.intelligence, Intelligence::Artificial);
        let p = upsert_peer(
            tmp.path(),
            &path,
            &reg("codex", &["claude"], None, Some("  ")),
        )
        .unwrap();
        assert_eq!(p.default_runtime.as_str(), "codex");
        assert_eq!(
            p.runtimes.iter().map(|r| r.as_str()).collect::<Vec<_>>(),
            ["codex", "claude"]
        );
        assert_eq!(p.description, "first");
        assert!(upsert_peer(tmp.path(), &path, &reg("claude", &[], Some("genius"), None)).is_err());
        let on_disk = read_registry(&path).unwrap();
        assert_eq!(on_disk.peers.len(), 1);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.ends_with("}\n"));
        assert!(text.contains("\n  \"peers\""));
    }

    #[test]
    fn upsert_keeps_the_files_shape() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("peers-profiles.json");
        // Compact, with minimal peers and a key we do not know.
        let mut peers: Vec<String> = (0..200)
            .map(|i| format!(r#"{{"personality":"p{i}","runtime":"claude","cwd":"/w"}}"#))
            .collect();
        peers.push(r#"{"personality":"bob","default_runtime":"claude","cwd":"/w","x":1}"#.into());
        let before = format!(r#"{{"peers":[{}],"note":"keep"}}"#, peers.join(","));
        std::fs::write(&path, &before).unwrap();
        let reg = Registration {
            personality: Personality::new("bob").unwrap(),
            runtime: Runtime::new("codex").unwrap(),
            runtimes: vec![],
            cwd: "/w/bob".into(),
            intelligence: None,
            description: None,
        };
        upsert_peer(tmp.path(), &path, &reg).unwrap();
        let after = std::fs::read_to_string(&path).unwrap();
        assert!(!after.trim_end().contains('\n'), "stays compact");
        assert!(after.contains(r#"{"personality":"p7","runtime":"claude","cwd":"/w"}"#));
        assert!(
            after.starts_with(r#"{"peers":[{"personality":"p0""#),
            "byte for byte"
        );
        assert!(after.contains(r#""note":"keep""#));
        assert!(after.contains(r#""x":1"#));
        assert!(!after.contains("description") && !after.contains("intelligence"));
        // Only bob's entry grew (its runtimes list).
        assert!(
            after.len() < before.len() + 60,
            "{} -> {}",
            before.len(),
            after.len()
        );
        let bob = read_registry(&path).unwrap().find("bob").cloned().unwrap();
        assert_eq!(bob.default_runtime.as_str(), "codex");
        assert_eq!(bob.runtimes.len(), 2);
    }

    /// One peer per line, keys in the author's order: a registration
    /// changes only its own line.
    #[test]
    fn upsert_changes_only_its_own_peer() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("peers-profiles.json");
        let lines: Vec<String> = (0..50)
            .map(|i| format!(r#"  {{"runtime":"claude","personality":"p{i}","cwd":"/w"}}"#))
            .collect();
        let before = format!("{{\"version\":2,\"peers\":[\n{}\n]}}\n", lines.join(",\n"));
        std::fs::write(&path, &before).unwrap();
        // A directory holds one peer: each registration its own.
        let reg = |p: &str, rt: &str, cwd: &str| Registration {
            personality: Personality::new(p).unwrap(),
            runtime: Runtime::new(rt).unwrap(),
            runtimes: vec![],
            cwd: cwd.into(),
            intelligence: None,
            description: None,
        };
        upsert_peer(tmp.path(), &path, &reg("p3", "claude", "/w2")).unwrap();
        let after = std::fs::read_to_string(&path).unwrap();
        let changed: Vec<(&str, &str)> = before
            .lines()
            .zip(after.lines())
            .filter(|(a, b)| a != b)
            .collect();
        assert_eq!(changed.len(), 1, "{changed:?}");
        assert!(changed[0].1.contains(r#""cwd":"/w2""#), "{changed:?}");
        upsert_peer(tmp.path(), &path, &reg("newbie", "codex", "/w3")).unwrap();
        let after2 = std::fs::read_to_string(&path).unwrap();
        assert_eq!(after2.lines().count(), after.lines().count() + 1);
        assert!(
            after2.contains(",\n  {"),
            "indented like the others:\n{after2}"
        );
        let parsed = read_registry(&path).unwrap();
        assert_eq!(parsed.peers.len(), 51);
        assert_eq!(
            parsed.find("newbie").unwrap().default_runtime.as_str(),
            "codex"
        );
        // An empty array and a pretty file work too.
        std::fs::write(&path, "{\"peers\": []}").unwrap();
        upsert_peer(tmp.path(), &path, &reg("a", "claude", "/wa")).unwrap();
        upsert_peer(tmp.path(), &path, &reg("b", "claude", "/wb")).unwrap();
        assert_eq!(read_registry(&path).unwrap().peers.len(), 2);
    }

    #[test]
    fn upsert_refuses_to_grow_past_the_read_cap() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("peers-profiles.json");
        let pad = "y".repeat((MAX_CONFIG_BYTES - 100) as usize);
        let before = format!(r#"{{"peers":[],"pad":"{pad}"}}"#);
        std::fs::write(&path, &before).unwrap();
        // A stale temp file of a killed writer goes on the next write.
        let stale = tmp.path().join(".peers-profiles.json.4194305.0.tmp");
        std::fs::write(&stale, "x").unwrap();
        let reg = Registration {
            personality: Personality::new("bob").unwrap(),
            runtime: Runtime::new("claude").unwrap(),
            runtimes: vec![],
            cwd: "/w/bob".into(),
            intelligence: None,
            description: Some("d".repeat(300)),
        };
        let err = upsert_peer(tmp.path(), &path, &reg)
            .unwrap_err()
            .to_string();
        assert!(err.contains("can be read back"), "{err}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), before, "untouched");
        assert!(!stale.exists());
    }
}
