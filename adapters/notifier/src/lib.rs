//! The notifier runtime adapter (a router: no TUI phases). One adapter serves
//! both notifier roles; `notifier-runtime run` picks the role from
//! `PEER_PERSONALITY`.

use iapeer_adapter_sdk::{
    AdapterInfo, Guest, Kind, LaunchCommand, LaunchSpec, export_adapter, no_tui_delivery,
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
            cwd_read_paths: Vec::new(),
            // Nobody reads what is sent to it.
            default_intelligence: Some("absent".into()),
            binary_dirs: vec!["~/.bun/bin".into(), "~/.local/bin".into()],
            env_remove: vec!["CLAUDE_CODE_*".into(), "CLAUDECODE".into()],
            delivery: no_tui_delivery(),
            limits: None,
        }
    }

    fn build_launch(spec: LaunchSpec) -> Result<LaunchCommand, String> {
        Ok(router_run_launch(&spec))
    }

    iapeer_adapter_sdk::router_predicates!();
}

export_adapter!(Notifier);
