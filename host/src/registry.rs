//! The peer registry (`<root>/peers-profiles.json`), the local peer profile
//! (`<cwd>/.iapeer/peer-profile.json`) and `launch.env`. Every reader treats
//! the file as untrusted: a malformed one is a one-line error naming the file.

use std::fs::File;
use std::path::{Path, PathBuf};

use fs2::FileExt;
use serde_json::{Map, Value};

use crate::fsutil;
use crate::names::{Personality, Runtime};

/// The largest registry, profile or launch.env read (a planted device or
/// a runaway file must not exhaust memory).
pub const MAX_CONFIG_BYTES: u64 = 16 << 20;

/// Descriptions are clamped to this many characters.
pub const MAX_DESCRIPTION: usize = 450;

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

/// The nature of a peer.
pub const INTELLIGENCES: &[&str] = &["natural", "artificial", "absent"];

/// The nature a runtime implies when a peer does not say.
pub fn default_intelligence(runtime: &str) -> &'static str {
    match runtime {
        "telegram" | "discord" | "matrix" | "email" | "web" => "natural",
        "notifier" | "webhook" | "api" | "cron" => "absent",
        _ => "artificial",
    }
}

/// `human` and `scripted` are legacy spellings.
fn normalize_intelligence(raw: &str) -> Option<&'static str> {
    match raw {
        "natural" | "human" => Some("natural"),
        "artificial" => Some("artificial"),
        "absent" | "scripted" => Some("absent"),
        _ => None,
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct PeerRecord {
    pub personality: Personality,
    pub default_runtime: Runtime,
    /// Declared runtimes, the default first.
    pub runtimes: Vec<Runtime>,
    pub description: String,
    /// Normalized nature (`natural`, `artificial`, `absent`).
    pub intelligence: String,
    /// The nature as written (a legacy spelling is written back verbatim).
    pub raw_intelligence: Option<String>,
    pub cwd: PathBuf,
    pub interfaces: Option<Value>,
    /// Keys this version does not know, preserved on write.
    pub extra: Map<String, Value>,
}

impl PeerRecord {
    pub fn declares(&self, runtime: &str) -> bool {
        self.runtimes.iter().any(|r| r == runtime)
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
}

fn clamp(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}

/// `[default, …listed]`, de-duplicated, default first. Entries that are not
/// valid runtime names are dropped (with a warning): they could never be
/// woken, and one typo must not make the whole registry unreadable.
fn parse_runtimes(
    default: &Runtime,
    listed: Option<&Value>,
    bad: &dyn Fn(String) -> String,
) -> Result<Vec<Runtime>, String> {
    let mut out = vec![default.clone()];
    match listed {
        None | Some(Value::Null) => {}
        Some(Value::Array(items)) => {
            for item in items {
                match item.as_str().map(Runtime::new) {
                    Some(Ok(rt)) if !out.contains(&rt) => out.push(rt),
                    Some(Ok(_)) => {}
                    _ => tracing::warn!("{}", bad(format!("ignoring runtimes entry {item}"))),
                }
            }
        }
        Some(other) => return Err(bad(format!("runtimes must be an array, got {other}"))),
    }
    Ok(out)
}

/// The default runtime: `default_runtime`, else the legacy `runtime` (a
/// `null` counts as absent, as JavaScript's `??` treats it, for registries the TypeScript iapeer wrote).
fn default_runtime_field(obj: &Map<String, Value>) -> Option<&str> {
    ["default_runtime", "runtime"]
        .iter()
        .find_map(|k| obj.get(*k).filter(|v| !v.is_null()))
        .and_then(Value::as_str)
}

/// The original's name normalisation, ASCII part: lower case, every run of
/// other characters becomes one `-`, no edge dashes, at most 32 bytes.
/// (Transliteration of non-ASCII letters is not done: they separate.)
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

fn parse_peer(v: &Value, index: usize) -> Result<PeerRecord, String> {
    let obj = v
        .as_object()
        .ok_or_else(|| format!("peers[{index}] is not an object"))?;
    let name = obj.get("personality").and_then(Value::as_str).unwrap_or("");
    let bad = |detail: String| format!("peer {name:?}: {detail}");
    let personality = Personality::new(name).map_err(|e| format!("peers[{index}]: {e}"))?;
    let rt = default_runtime_field(obj).ok_or_else(|| bad("no default_runtime".into()))?;
    let default_runtime = Runtime::new(rt).map_err(|e| bad(e.to_string()))?;
    let runtimes = parse_runtimes(&default_runtime, obj.get("runtimes"), &bad)?;
    let description = match obj.get("description") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => clamp(s, MAX_DESCRIPTION),
        Some(other) => return Err(bad(format!("description must be a string, got {other}"))),
    };
    let cwd = obj
        .get("cwd")
        .and_then(Value::as_str)
        .filter(|s| s.starts_with('/') && !s.contains('\0'))
        .ok_or_else(|| bad("cwd must be an absolute path".into()))?;
    let raw_intelligence = match obj.get("intelligence") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.is_empty() => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(other) => return Err(bad(format!("intelligence must be a string, got {other}"))),
    };
    let intelligence = match &raw_intelligence {
        None => default_intelligence(default_runtime.as_str()).to_string(),
        Some(raw) => normalize_intelligence(raw)
            .ok_or_else(|| bad(format!("unknown intelligence {raw:?}")))?
            .to_string(),
    };
    let interfaces = match obj.get("interfaces") {
        None | Some(Value::Null) => None,
        Some(v @ Value::Object(_)) => Some(v.clone()),
        Some(other) => return Err(bad(format!("interfaces must be an object, got {other}"))),
    };
    let known = [
        "personality",
        "default_runtime",
        "runtime",
        "runtimes",
        "description",
        "cwd",
        "intelligence",
        "interfaces",
    ];
    let extra = obj
        .iter()
        .filter(|(k, _)| !known.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    Ok(PeerRecord {
        personality,
        default_runtime,
        runtimes,
        description,
        intelligence,
        raw_intelligence,
        cwd: PathBuf::from(cwd),
        interfaces,
        extra,
    })
}

/// Parses registry text (`path` is only for messages).
pub fn parse_registry(text: &str, path: &Path) -> Result<Registry, RegistryError> {
    let corrupt = |detail: String| RegistryError::Corrupt {
        path: path.to_path_buf(),
        detail,
    };
    let doc: Value = serde_json::from_str(text).map_err(|e| corrupt(format!("not JSON: {e}")))?;
    let obj = doc
        .as_object()
        .ok_or_else(|| corrupt("top level is not an object".into()))?;
    let version = match obj.get("version") {
        None => 2,
        Some(v) => v
            .as_i64()
            .ok_or_else(|| corrupt(format!("version must be an integer, got {v}")))?,
    };
    let peers = match obj.get("peers") {
        None => Vec::new(),
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, v)| parse_peer(v, i))
            .collect::<Result<Vec<_>, _>>()
            .map_err(corrupt)?,
        Some(other) => return Err(corrupt(format!("peers must be an array, got {other}"))),
    };
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
        None => Ok(Registry {
            version: 2,
            peers: Vec::new(),
        }),
    }
}

/// The registry's text; `None` when there is no file yet.
fn read_registry_text(path: &Path) -> Result<Option<String>, RegistryError> {
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
            .unwrap_or_else(|| p.intelligence.clone())
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

/// Inserts or updates a peer, atomically and under the registry lock.
/// Merge rules: cwd and default runtime from the call win; runtimes are the
/// union with the default first; intelligence = explicit, else existing, else
/// the runtime's default; a blank description keeps the existing one.
/// The same directory, however spelt (links and `..` resolved when both
/// exist).
fn same_dir(a: &Path, b: &Path) -> bool {
    a == b
        || matches!(
            (std::fs::canonicalize(a), std::fs::canonicalize(b)),
            (Ok(x), Ok(y)) if x == y
        )
}

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
        Some(raw) => Some(normalize_intelligence(raw).ok_or_else(|| {
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
        None => Registry {
            version: 2,
            peers: Vec::new(),
        },
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
        (Some(n), Some(o)) if o.intelligence == n => (n.to_string(), o.raw_intelligence.clone()),
        (Some(n), _) => (n.to_string(), r.intelligence.clone()),
        (None, Some(o)) => (o.intelligence.clone(), o.raw_intelligence.clone()),
        (None, None) => (default_intelligence(r.runtime.as_str()).to_string(), None),
    };
    let description = match r.description.as_deref().map(str::trim) {
        Some(d) if !d.is_empty() => clamp(d, MAX_DESCRIPTION),
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
            .unwrap_or_else(|| record.intelligence.clone());
        obj.insert("intelligence".into(), written.into());
    }
    obj.insert(
        "cwd".into(),
        record.cwd.to_string_lossy().into_owned().into(),
    );
}

// ---- the local profile -----------------------------------------------------

/// What the lifecycle needs from `<cwd>/.iapeer/peer-profile.json`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PeerProfile {
    pub personality: Option<Personality>,
    pub default_runtime: Option<Runtime>,
    pub runtimes: Vec<Runtime>,
    pub intelligence: Option<String>,
    pub initial_prompt: Option<String>,
}

pub fn profile_path(cwd: &Path) -> PathBuf {
    cwd.join(".iapeer/peer-profile.json")
}

/// Reads the local profile; `Ok(None)` when there is none.
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
    let obj = doc
        .as_object()
        .ok_or_else(|| bad("not a JSON object".into()))?;
    let personality = obj
        .get("personality")
        .and_then(Value::as_str)
        .map(|p| Personality::new(normalize_personality(p)).map_err(|e| bad(e.to_string())))
        .transpose()?;
    let default_runtime = default_runtime_field(obj)
        .map(|r| Runtime::new(r).map_err(|e| bad(e.to_string())))
        .transpose()?;
    let runtimes = match &default_runtime {
        Some(d) => parse_runtimes(d, obj.get("runtimes"), &|d| d).map_err(bad)?,
        None => Vec::new(),
    };
    let intelligence = obj
        .get("intelligence")
        .and_then(Value::as_str)
        .and_then(normalize_intelligence)
        .map(str::to_string);
    let initial_prompt = obj
        .get("initial_prompt")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_string);
    Ok(Some(PeerProfile {
        personality,
        default_runtime,
        runtimes,
        intelligence,
        initial_prompt,
    }))
}

// ---- launch.env ------------------------------------------------------------

/// `<cwd>/.iapeer/runtimes/<runtime>/launch.env`: extra child env and start
/// arguments.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LaunchEnv {
    pub env: Vec<(String, String)>,
    /// `PEER_START_ARGS`, split on whitespace.
    pub start_args: Vec<String>,
}

fn env_key_ok(k: &str) -> bool {
    let b = k.as_bytes();
    !b.is_empty()
        && (b[0].is_ascii_alphabetic() || b[0] == b'_')
        && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'_')
}

/// Lines `KEY=VALUE` or `export KEY=VALUE`; blank, `#` and other lines are
/// ignored; a value wrapped in matching quotes is unwrapped. Nothing here is
/// ever given to a shell.
pub fn parse_launch_env(text: &str) -> LaunchEnv {
    let mut out = LaunchEnv::default();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line
            .strip_prefix("export ")
            .map(str::trim_start)
            .unwrap_or(line);
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let key = key.trim();
        if !env_key_ok(key) || value.contains('\0') {
            continue;
        }
        let value = value.trim();
        let value = [b'"', b'\'']
            .iter()
            .find_map(|q| {
                let b = value.as_bytes();
                (b.len() >= 2 && b[0] == *q && b[b.len() - 1] == *q)
                    .then(|| &value[1..value.len() - 1])
            })
            .unwrap_or(value);
        if key == "PEER_START_ARGS" {
            out.start_args = value.split_whitespace().map(str::to_string).collect();
        } else {
            out.env.push((key.to_string(), value.to_string()));
        }
    }
    out
}

pub fn read_launch_env(cwd: &Path, runtime: &Runtime) -> LaunchEnv {
    let path = cwd
        .join(".iapeer/runtimes")
        .join(runtime.as_str())
        .join("launch.env");
    fsutil::read_regular_text(&path, MAX_CONFIG_BYTES)
        .map(|t| parse_launch_env(&t))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(p.intelligence, "natural");
        assert_eq!(p.raw_intelligence.as_deref(), Some("human"));
        assert_eq!(p.extra.get("future_key"), Some(&Value::from(1)));
        // Round trip keeps the raw spelling and unknown keys.
        let again = parse(&render_registry(&reg)).unwrap();
        assert_eq!(again, reg);
    }

    #[test]
    fn defaults_and_legacy_runtime_key() {
        let reg =
            parse(r#"{"peers":[{"personality":"t","runtime":"telegram","cwd":"/w"}]}"#).unwrap();
        let p = reg.find("t").unwrap();
        assert_eq!(p.default_runtime.as_str(), "telegram");
        assert_eq!(p.intelligence, "natural");
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

    #[test]
    fn lenient_where_the_original_is() {
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

    #[test]
    fn description_is_clamped() {
        let long = "é".repeat(500);
        let reg = parse(&format!(
            r#"{{"peers":[{{"personality":"a","runtime":"claude","cwd":"/w","description":"{long}"}}]}}"#
        ))
        .unwrap();
        assert_eq!(reg.peers[0].description.chars().count(), MAX_DESCRIPTION);
    }

    #[test]
    fn launch_env_rules() {
        let e = parse_launch_env(
            "# comment\n\nFOO=bar\nexport QUOTED=\"a b\"\nSINGLE='x'\nPEER_START_ARGS=--model  opus\nnot an assignment\nBAD-KEY=1\nEMPTY=\n",
        );
        assert_eq!(
            e.env,
            [
                ("FOO".to_string(), "bar".to_string()),
                ("QUOTED".to_string(), "a b".to_string()),
                ("SINGLE".to_string(), "x".to_string()),
                ("EMPTY".to_string(), String::new()),
            ]
        );
        assert_eq!(e.start_args, ["--model", "opus"]);
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
        assert_eq!(p.intelligence, "artificial");
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
