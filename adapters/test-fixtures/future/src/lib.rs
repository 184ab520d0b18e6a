//! Test fixture: an adapter built against a future contract,
//! `iapeer:adapter@0.4.0` (0.3.0 is real now, so the fixture moved on: it
//! stays one version ahead of what the host serves). A host that serves
//! 0.1–0.3 must report it as incompatible, not crash and not half-load it.

wit_bindgen::generate!({ world: "runtime-adapter", path: "wit" });

use exports::iapeer::adapter::adapter::Guest;
use iapeer::adapter::types::{AdapterInfo, ControlSequence, Kind, LaunchCommand, LaunchSpec};

struct Future;

impl Guest for Future {
    fn info() -> AdapterInfo {
        AdapterInfo {
            runtime: "future".into(),
            version: "3.0.0".into(),
            kind: Kind::Router,
            uses_doctrine: false,
            requires_intelligence: None,
            default_binary: "future-runtime".into(),
            binary_env: None,
            read_dirs: Vec::new(),
        }
    }

    fn build_launch(spec: LaunchSpec) -> Result<LaunchCommand, String> {
        Ok(LaunchCommand {
            argv: vec![spec.binary],
            env: Vec::new(),
        })
    }

    fn resolve_resume(_cwd: String) -> Result<Option<String>, String> {
        Ok(None)
    }

    fn newest_activity_mtime(_cwd: String) -> Option<u64> {
        None
    }

    fn boot_dialog_keys(_pane: String) -> Option<Vec<String>> {
        None
    }

    fn is_input_ready(_pane: String) -> bool {
        true
    }

    fn control_keys(_command: String) -> Option<ControlSequence> {
        None
    }

    fn capabilities() -> Vec<String> {
        vec!["time-travel".into()]
    }
}

export!(Future);
