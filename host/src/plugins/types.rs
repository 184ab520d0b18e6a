//! The host's own view of the adapter contract. Every WIT version's generated
//! types convert into these, so the lifecycle code never sees a versioned
//! binding type.

use serde::Serialize;

use crate::names::Runtime;

/// How the host drives a session (see `kind` in `wit/adapter.wit`).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, strum::IntoStaticStr,
)]
#[serde(rename_all = "lowercase")]
#[strum(serialize_all = "lowercase")]
pub enum AdapterKind {
    Tui,
    Router,
}

impl AdapterKind {
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// Static facts about an adapter, validated at load.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AdapterInfo {
    pub runtime: Runtime,
    pub version: String,
    pub kind: AdapterKind,
    pub uses_doctrine: bool,
    pub requires_intelligence: Option<String>,
    pub default_binary: String,
    pub binary_env: Option<String>,
    /// Home-relative directories the adapter may read.
    pub read_dirs: Vec<String>,
    /// Paths below the peer's cwd the adapter may read (contract 0.2).
    pub cwd_read_paths: Vec<String>,
    /// The nature of a peer of this runtime whose registry entry does not
    /// say (`natural`, `artificial`, `absent`).
    pub default_intelligence: String,
    /// Where the runtime is installed: in front of the system dirs on a
    /// session's fallback PATH (`~/` = home).
    pub binary_dirs: Vec<String>,
    /// Inherited variables removed from a session's environment (a
    /// trailing `*` matches a prefix).
    pub env_remove: Vec<String>,
    pub delivery: DeliveryMarkers,
    /// What it declared it needs beyond the defaults (contract 0.2).
    pub limits: Option<DeclaredLimits>,
    /// The contract version the adapter was built for (`0.1`, `0.2`).
    pub contract: String,
}

/// An adapter's declared needs (`info.limits`), before the operator's caps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct DeclaredLimits {
    pub memory_mib: u32,
    pub call_ms: u32,
    pub scan_ms: u32,
}

impl AdapterInfo {
    /// Should `name` be kept out of a session's environment?
    pub fn removes_env(&self, name: &str) -> bool {
        self.env_remove
            .iter()
            .any(|pattern| match pattern.strip_suffix('*') {
                Some(prefix) => name.starts_with(prefix),
                None => name == pattern,
            })
    }
}

/// How the host recognises a paste in a TUI's pane.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeliveryMarkers {
    /// Shown in place of a long paste (`[Pasted text`).
    pub paste_placeholders: Vec<String>,
    /// Non-empty rows at the bottom of the pane that hold the composer.
    pub composer_rows: usize,
}

/// `info` as an adapter of any contract version answered it, before
/// validation (see `plugins::validate`). Fields a version does not have
/// carry what a host of that version assumed.
pub struct RawInfo {
    pub runtime: String,
    pub version: String,
    pub kind: AdapterKind,
    pub uses_doctrine: bool,
    pub requires_intelligence: Option<String>,
    pub default_binary: String,
    pub binary_env: Option<String>,
    pub read_dirs: Vec<String>,
    pub cwd_read_paths: Vec<String>,
    pub default_intelligence: Option<String>,
    pub binary_dirs: Vec<String>,
    pub env_remove: Vec<String>,
    pub paste_placeholders: Vec<String>,
    pub composer_rows: u32,
    pub limits: Option<DeclaredLimits>,
    pub contract: (u64, u64),
}

/// Input of `build-launch`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LaunchSpec {
    pub personality: String,
    pub identity: String,
    pub cwd: String,
    pub binary: String,
    pub system_prompt_file: Option<String>,
    pub resume: bool,
    pub resume_ref: Option<String>,
    pub extra_args: Vec<String>,
    pub intelligence: Option<String>,
    /// The user's home (contract 0.2).
    pub home: String,
}

/// Output of `build-launch`, checked by the host (see `Adapter::build_launch`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LaunchCommand {
    pub argv: Vec<String>,
    pub env: Vec<(String, String)>,
}

/// Output of `resolve-resume`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResumeCheck {
    /// There is a session to continue; the reference identifies it when the
    /// runtime has such a notion.
    Resumable(Option<String>),
    /// Nothing to resume, and why.
    Nothing(String),
}

/// Output of `turn-state` (contract 0.3): where a session is in its turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, strum::IntoStaticStr, strum::Display)]
#[serde(rename_all = "lowercase")]
#[strum(serialize_all = "lowercase")]
pub enum TurnState {
    /// At its composer, the last turn ended: a message may go in.
    Idle,
    /// The model or a tool is at work: a message waits.
    Working,
    /// A dialog or prompt is up: no key may go in.
    Dialog,
    /// The adapter cannot tell (or predates 0.3).
    Unknown,
}

/// Output of `control-keys`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ControlSequence {
    pub steps: Vec<Vec<String>>,
    pub step_delay_ms: u32,
}
