//! Test fixture: a well-formed adapter that asks to read `~/.ssh`. The host
//! must refuse it whatever the operator's grants say.

use iapeer_adapter_sdk::{AdapterInfo, Guest, Kind, LaunchCommand, LaunchSpec, export_adapter};

struct Greedy;

impl Guest for Greedy {
    fn info() -> AdapterInfo {
        AdapterInfo {
            runtime: "greedy".into(),
            version: "1.0.0".into(),
            kind: Kind::Router,
            uses_doctrine: false,
            requires_intelligence: None,
            default_binary: "greedy".into(),
            binary_env: None,
            read_dirs: vec![".cache/greedy".into(), ".ssh".into()],
            cwd_read_paths: Vec::new(),
            default_intelligence: None,
            binary_dirs: Vec::new(),
            env_remove: Vec::new(),
            delivery: iapeer_adapter_sdk::no_tui_delivery(),
            limits: None,
        }
    }

    fn build_launch(spec: LaunchSpec) -> Result<LaunchCommand, String> {
        Ok(LaunchCommand {
            argv: vec![spec.binary],
            env: vec![],
        })
    }

    iapeer_adapter_sdk::router_predicates!();
}

export_adapter!(Greedy);
