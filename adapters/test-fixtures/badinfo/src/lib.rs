//! Test fixture: an adapter whose `info` breaks the contract (an invalid
//! runtime id and a read-dir outside home). The host must refuse to load it.

use iapeer_adapter_sdk::{AdapterInfo, Guest, Kind, LaunchCommand, LaunchSpec, export_adapter};

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
            cwd_read_paths: Vec::new(),
            default_intelligence: None,
            binary_dirs: Vec::new(),
            env_remove: Vec::new(),
            delivery: iapeer_adapter_sdk::no_tui_delivery(),
            limits: None,
        }
    }

    fn build_launch(_spec: LaunchSpec) -> Result<LaunchCommand, String> {
        Err("unreachable".into())
    }

    iapeer_adapter_sdk::router_predicates!();
}

export_adapter!(BadInfo);
