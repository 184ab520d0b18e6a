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

/// Output of `control-keys`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ControlSequence {
    pub steps: Vec<Vec<String>>,
    pub step_delay_ms: u32,
}
