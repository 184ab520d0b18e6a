//! The command-line front ends of both binaries (clap). Exit codes: 0 done,
//! 1 refused or failed (one line on stderr naming the cause), 2 usage.

mod plugins;
pub use plugins::state_name;
pub mod table;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::config::{self, Config, Overrides};

/// Options every command accepts.
#[derive(Debug, Clone, Args)]
pub struct GlobalArgs {
    /// State root (default: $IAPEER_ROOT, else ~/.iapeer).
    #[arg(long, global = true, value_name = "DIR")]
    pub root: Option<PathBuf>,
    /// A directory of *.wasm adapters (repeatable; default: $IAPEER_PLUGIN_DIR, else <root>/plugins).
    #[arg(long = "plugin-dir", global = true, value_name = "DIR")]
    pub plugin_dirs: Vec<PathBuf>,
    /// Do not load the built-in adapters.
    #[arg(long, global = true)]
    pub no_builtin_plugins: bool,
    /// tmux socket directory (default: $IAPEER_SOCK_DIR, else <IAPEER_ROOT>/socks, else /tmp).
    #[arg(long, global = true, value_name = "DIR")]
    pub sock_dir: Option<PathBuf>,
    /// launchd plist directory for the H4 guard (default: $IAPEER_LAUNCHAGENTS_DIR).
    #[arg(long, global = true, value_name = "DIR")]
    pub launchagents_dir: Option<PathBuf>,
    /// systemd user unit directory for the H4 guard (default: $IAPEER_SYSTEMD_USER_DIR).
    #[arg(long, global = true, value_name = "DIR")]
    pub systemd_user_dir: Option<PathBuf>,
    /// Binary for a runtime, beating its env override (repeatable): --bin claude=/path/to/claude
    #[arg(long = "bin", global = true, value_name = "RUNTIME=PATH", value_parser = parse_bin)]
    pub bins: Vec<(String, String)>,
    /// Seconds a TUI may take to show its input composer (default: $IAPEER_BOOT_DEADLINE_SECS, else 240).
    #[arg(long, global = true, value_name = "N")]
    pub boot_deadline_secs: Option<String>,
    /// Seconds to wait for the first message to be processed (default: $IAPEER_READY_GATE_SECS, else 120).
    #[arg(long, global = true, value_name = "N")]
    pub ready_gate_secs: Option<String>,
    /// Idle seconds after which a session is reaped (default: $IAPEER_IDLE_SECS, else 3600).
    #[arg(long, global = true, value_name = "N")]
    pub idle_secs: Option<String>,
    /// Wall-clock session age bound, kept for compatibility (default: $IAPEER_MAX_AGE_SECS, else 14400).
    #[arg(long, global = true, value_name = "N")]
    pub max_age_secs: Option<String>,
    /// Log filter (default: $RUST_LOG, else warn), e.g. --log debug
    #[arg(long, global = true, value_name = "FILTER")]
    pub log: Option<String>,
}

fn parse_bin(s: &str) -> Result<(String, String), String> {
    let (rt, path) = s
        .split_once('=')
        .ok_or_else(|| format!("expected RUNTIME=PATH, got {s:?}"))?;
    if !crate::names::is_valid_runtime(rt) || path.is_empty() {
        return Err(format!("expected RUNTIME=PATH, got {s:?}"));
    }
    Ok((rt.to_string(), path.to_string()))
}

impl GlobalArgs {
    pub fn config(&self) -> Config {
        let o = Overrides {
            root: self.root.clone(),
            sock_dir: self.sock_dir.clone(),
            launch_agents_dir: self.launchagents_dir.clone(),
            systemd_user_dir: self.systemd_user_dir.clone(),
            plugin_dirs: self.plugin_dirs.clone(),
            no_builtin_plugins: self.no_builtin_plugins,
            bins: self.bins.clone(),
            boot_deadline_secs: self.boot_deadline_secs.clone(),
            ready_gate_secs: self.ready_gate_secs.clone(),
            idle_secs: self.idle_secs.clone(),
            max_age_secs: self.max_age_secs.clone(),
        };
        Config::new(config::process_env(), &o)
    }

    /// Logs go to stderr, filtered by --log, else RUST_LOG, else warnings.
    pub fn init_logging(&self, default: &str) {
        let filter = self
            .log
            .clone()
            .or_else(|| std::env::var("RUST_LOG").ok())
            .unwrap_or_else(|| default.to_string());
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_writer(std::io::stderr)
            .try_init();
    }
}

#[derive(Debug, Parser)]
#[command(name = "iapeer", version, about = "Operate a fleet of iapeer agent sessions")]
struct IapeerCli {
    #[command(flatten)]
    global: GlobalArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Runtime adapters: list what is loaded, inspect a .wasm file.
    #[command(subcommand)]
    Plugins(PluginsCommand),
}

#[derive(Debug, Subcommand)]
enum PluginsCommand {
    /// Every adapter found (built-in and plugin dirs), loaded or not, and why.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Validate one adapter file without installing it.
    Inspect {
        file: PathBuf,
        #[arg(long)]
        json: bool,
    },
}

/// Entry point of the `iapeer` binary.
pub fn iapeer_main() -> ExitCode {
    let cli = IapeerCli::parse();
    cli.global.init_logging("warn");
    let cfg = cli.global.config();
    let result = match &cli.command {
        Command::Plugins(PluginsCommand::List { json }) => plugins::list(&cfg, *json),
        Command::Plugins(PluginsCommand::Inspect { file, json }) => {
            plugins::inspect(&cfg, file, *json)
        }
    };
    finish("iapeer", result)
}

/// Maps a command's outcome to the exit code, printing a failure as one line.
pub fn finish(program: &str, result: anyhow::Result<i32>) -> ExitCode {
    match result {
        Ok(code) => ExitCode::from(code as u8),
        Err(e) => {
            eprintln!("{program}: {e:#}");
            ExitCode::from(1)
        }
    }
}
