//! The notifier runtime adapter (a router: no TUI phases). One adapter serves
//! both notifier roles; `notifier-runtime run` picks the role from
//! `PEER_PERSONALITY`.

use iapeer_adapter_sdk::{
    AdapterInfo, ControlSequence, Guest, Kind, LaunchCommand, LaunchSpec, export_adapter,
    router_run_launch,
};

struct Notifier;

impl Guest for Notifier {
    fn info() -> AdapterInfo {
        AdapterInfo {
            runtime: "notifier".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            kind: Kind::Router,
            uses_doctrine: false,
            requires_intelligence: None,
            default_binary: "notifier-runtime".into(),
            binary_env: Some("NOTIFIER_RUNTIME_BIN".into()),
            read_dirs: Vec::new(),
        }
    }

    fn build_launch(spec: LaunchSpec) -> Result<LaunchCommand, String> {
        Ok(router_run_launch(&spec))
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

export_adapter!(Notifier);
