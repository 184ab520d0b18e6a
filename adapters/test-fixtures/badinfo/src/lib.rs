//! Test fixture: an adapter whose `info` breaks the contract (an invalid
//! runtime id and a read-dir outside home). The host must refuse to load it.

use iapeer_adapter_sdk::{
    AdapterInfo, ControlSequence, Guest, Kind, LaunchCommand, LaunchSpec, export_adapter,
};

struct BadInfo;

impl Guest for BadInfo {
    fn info() -> AdapterInfo {
        AdapterInfo {
            runtime: "Not A Runtime!".into(),
            version: "1.0.0".into(),
            kind: Kind::Router,
            uses_doctrine: false,
            requires_intelligence: None,
            default_binary: "x".into(),
            binary_env: None,
            read_dirs: vec!["../../etc".into()],
        }
    }

    fn build_launch(_spec: LaunchSpec) -> Result<LaunchCommand, String> {
        Err("unreachable".into())
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
}

export_adapter!(BadInfo);
