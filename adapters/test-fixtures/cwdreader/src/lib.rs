//! Test fixture: an adapter in the shape of one for aider, which keeps its
//! chat history in the project folder. It declares a cwd path (contract
//! 0.2), watches it with `host-fs.stat`, and echoes what it may and may not
//! read through `resolve-resume` (the cwd picks the probe):
//! - `<cwd>` ending in `/probe-outside`: stats a path outside the declared one;
//! - `<cwd>` ending in `/probe-relative`: stats the declared name without the cwd;
//! - `<cwd>` ending in `/probe-dir`: reads `.aider/notes` (inside the declared dir);
//! - `<cwd>` ending in `/probe-nested`: reads `.aider/.env` (a secret below it);
//! - anything else: the first line of the history file.
//!
//! `build-launch` says whether it saw the history (it may read cwd paths too).
//! `judge-turn` (contract 0.3) reads the end of the history with
//! `host-fs.read-tail`: a last line that is the user's (`#### …`, as aider
//! writes them) is a turn at work; no history to read, unknown.

use iapeer_adapter_sdk::{
    AdapterInfo, ControlSequence, DeliveryMarkers, Guest, Kind, LaunchCommand, LaunchSpec,
    TurnState, argv_with_extras, export_adapter, host_fs,
};

struct CwdReader;

const HISTORY: &str = ".aider.chat.history.md";

impl Guest for CwdReader {
    fn info() -> AdapterInfo {
        AdapterInfo {
            runtime: "aider".into(),
            version: "0.2.0".into(),
            kind: Kind::Tui,
            uses_doctrine: false,
            requires_intelligence: None,
            default_binary: "aider".into(),
            binary_env: Some("IAPEER_AIDER_BIN".into()),
            read_dirs: Vec::new(),
            cwd_read_paths: vec![HISTORY.into(), ".aider".into()],
            default_intelligence: None,
            binary_dirs: vec!["~/.local/bin".into()],
            env_remove: Vec::new(),
            delivery: DeliveryMarkers {
                paste_placeholders: Vec::new(),
                composer_rows: 3,
            },
            limits: None,
        }
    }

    fn build_launch(spec: LaunchSpec) -> Result<LaunchCommand, String> {
        // The home is passed in 0.2: aider is told where its config lives.
        let seen = host_fs::stat(&format!("{}/{HISTORY}", spec.cwd)).is_ok();
        let head = vec![
            spec.binary.clone(),
            format!("--config={}/.aider.conf.yml", spec.home),
            format!("--history-seen={seen}"),
        ];
        Ok(LaunchCommand {
            argv: argv_with_extras(head, &spec),
            env: Vec::new(),
        })
    }

    fn resolve_resume(cwd: String) -> Result<Option<String>, String> {
        let shown = |r: Result<String, host_fs::FsError>| match r {
            Ok(v) => Ok(Some(v)),
            Err(e) => Err(format!("{e:?}")),
        };
        if cwd.ends_with("/probe-outside") {
            return shown(host_fs::stat(&format!("{cwd}/other.md")).map(|e| e.name));
        }
        if cwd.ends_with("/probe-relative") {
            return shown(host_fs::stat(HISTORY).map(|e| e.name));
        }
        if cwd.ends_with("/probe-nested") {
            return shown(host_fs::read_first_line(&format!("{cwd}/.aider/.env"), 200));
        }
        if cwd.ends_with("/probe-dir") {
            return shown(host_fs::read_first_line(&format!("{cwd}/.aider/notes"), 200));
        }
        shown(host_fs::read_first_line(&format!("{cwd}/{HISTORY}"), 200))
    }

    fn newest_activity_mtime(cwd: String) -> Option<u64> {
        host_fs::stat(&format!("{cwd}/{HISTORY}"))
            .ok()
            .map(|e| e.mtime_ms)
    }

    fn boot_dialog_keys(_pane: String) -> Option<Vec<String>> {
        None
    }

    fn is_input_ready(pane: String) -> bool {
        // Trailing spaces are trimmed: a bare prompt arrives as ">".
        pane.lines().any(|l| l == ">" || l.starts_with("> "))
    }

    fn control_keys(_command: String) -> Option<ControlSequence> {
        None
    }

    fn judge_turn(pane: String, cwd: String) -> TurnState {
        let Ok(tail) = host_fs::read_tail(&format!("{cwd}/{HISTORY}"), 4096) else {
            return TurnState::Unknown;
        };
        let last = tail.lines().rev().find(|l| !l.trim().is_empty());
        if last.is_some_and(|l| l.starts_with("#### ")) {
            TurnState::Working
        } else if Self::is_input_ready(pane) {
            TurnState::Idle
        } else {
            TurnState::Unknown
        }
    }

    fn record_holds(cwd: String, needle: String) -> Option<bool> {
        iapeer_adapter_sdk::tail_holds(Some(&format!("{cwd}/{HISTORY}")), &needle)
    }
}

export_adapter!(CwdReader);
