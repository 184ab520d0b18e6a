//! The Telegram bridge runtime adapter (a router: no TUI phases).

use iapeer_adapter_sdk::{
    AdapterInfo, Guest, Kind, LaunchCommand, LaunchSpec, export_adapter, intelligence_gate_error,
    no_tui_delivery, router_run_launch,
};

struct Telegram;

/// A Telegram bridge speaks for a human: only natural peers may run one.
const REQUIRED_INTELLIGENCE: &str = "natural";

impl Guest for Telegram {
    fn info() -> AdapterInfo {
        AdapterInfo {
            runtime: "telegram".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            kind: Kind::Router,
            uses_doctrine: false,
            requires_intelligence: Some(REQUIRED_INTELLIGENCE.into()),
            default_binary: "telegram-runtime".into(),
            binary_env: Some("TELEGRAM_RUNTIME_BIN".into()),
            read_dirs: Vec::new(),
            cwd_read_paths: Vec::new(),
            // A human is behind the bridge.
            default_intelligence: Some("natural".into()),
            binary_dirs: vec!["~/.bun/bin".into(), "~/.local/bin".into()],
            env_remove: vec!["CLAUDE_CODE_*".into(), "CLAUDECODE".into()],
            delivery: no_tui_delivery(),
            limits: None,
        }
    }

    fn build_launch(spec: LaunchSpec) -> Result<LaunchCommand, String> {
        // The host enforces the gate from `info` before any launch work; this
        // is the same rule, so the adapter is safe on its own.
        if spec.intelligence.as_deref() != Some(REQUIRED_INTELLIGENCE) {
            return Err(intelligence_gate_error(
                REQUIRED_INTELLIGENCE,
                spec.intelligence.as_deref(),
            ));
        }
        Ok(router_run_launch(&spec))
    }

    iapeer_adapter_sdk::router_predicates!();
}

export_adapter!(Telegram);
