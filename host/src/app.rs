//! What both binaries share to start: the options every command takes,
//! the command line's parsing and exit codes, logging, the async runtime
//! of the synchronous front ends, and the lifecycle they drive.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Args;

use crate::clock::SystemClock;
use crate::config::{self, Config, Overrides};
use crate::lifecycle::Lifecycle;
use crate::plugins::PluginHost;

/// Options every command accepts.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Global options")]
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
    /// tmux socket directory (default: $IAPEER_SOCK_DIR, else <root>/socks).
    #[arg(long, global = true, value_name = "DIR")]
    pub sock_dir: Option<PathBuf>,
    /// launchd plist directory for the hands-off guard (default: $IAPEER_LAUNCHAGENTS_DIR).
    #[arg(long, global = true, value_name = "DIR")]
    pub launchagents_dir: Option<PathBuf>,
    /// systemd user unit directory for the hands-off guard (default: $IAPEER_SYSTEMD_USER_DIR).
    #[arg(long, global = true, value_name = "DIR")]
    pub systemd_user_dir: Option<PathBuf>,
    /// Binary for a runtime, beating its env override (repeatable): --bin claude=/path/to/claude
    /// (`plugins try` takes a bare PATH: the file's runtime)
    #[arg(long = "bin", global = true, value_name = "RUNTIME=PATH", value_parser = parse_bin)]
    pub bins: Vec<(String, String)>,
    /// Seconds a TUI may take to show its input composer (default: $IAPEER_BOOT_DEADLINE_SECS, else 240).
    #[arg(long, global = true, value_name = "N", value_parser = config::parse_secs)]
    pub boot_deadline_secs: Option<u64>,
    /// Seconds to wait for the first message to be processed (default: $IAPEER_READY_GATE_SECS, else 120).
    #[arg(long, global = true, value_name = "N", value_parser = config::parse_secs)]
    pub ready_gate_secs: Option<u64>,
    /// Idle seconds after which a session is reaped (default: $IAPEER_IDLE_SECS, else 3600).
    #[arg(long, global = true, value_name = "N", value_parser = config::parse_secs)]
    pub idle_secs: Option<u64>,
    /// Age at which a session whose activity cannot be read is reaped (default: $IAPEER_MAX_AGE_SECS, else 14400).
    #[arg(long, global = true, value_name = "N", value_parser = config::parse_secs)]
    pub max_age_secs: Option<u64>,
    /// Print the result as JSON (verbs that report one); anywhere on the line.
    #[arg(long, global = true)]
    pub json: bool,
    /// Log filter (default: $RUST_LOG, else warn for iapeer and info for iapeerd), e.g. --log debug
    #[arg(long, global = true, value_name = "FILTER")]
    pub log: Option<String>,
}

/// `RUNTIME=PATH`, or a bare `PATH` (runtime left empty: only `plugins
/// try` takes one, see [`bare_bin`]).
fn parse_bin(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((rt, path)) if crate::names::is_valid_runtime(rt) && !path.is_empty() => {
            Ok((rt.to_string(), path.to_string()))
        }
        None if !s.is_empty() => Ok((String::new(), s.to_string())),
        _ => Err(format!("expected RUNTIME=PATH, got {s:?}")),
    }
}

impl GlobalArgs {
    /// The configuration, or the setting that is not a number in its range.
    pub fn config(&self) -> Result<Config, config::BadNumber> {
        let o = Overrides {
            root: self.root.clone(),
            sock_dir: self.sock_dir.clone(),
            launch_agents_dir: self.launchagents_dir.clone(),
            systemd_user_dir: self.systemd_user_dir.clone(),
            plugin_dirs: self.plugin_dirs.clone(),
            no_builtin_plugins: self.no_builtin_plugins,
            bins: self.bins.clone(),
            boot_deadline_secs: self.boot_deadline_secs,
            ready_gate_secs: self.ready_gate_secs,
            idle_secs: self.idle_secs,
            max_age_secs: self.max_age_secs,
        };
        Config::new(config::process_env(), &o)
    }

    /// Logs go to stderr (and to the rotated `file` when given), filtered
    /// by --log, else RUST_LOG, else `default`.
    pub fn init_logging(&self, default: &str, file: Option<crate::logfile::RotatingWriter>) {
        use tracing_subscriber::fmt::writer::MakeWriterExt;
        let filter = self
            .log
            .clone()
            .or_else(|| std::env::var("RUST_LOG").ok())
            .unwrap_or_else(|| default.to_string());
        // A filter that does not parse is said once, escaped, and the
        // default used (the subscriber would print it raw).
        let filter = tracing_subscriber::EnvFilter::try_new(&filter).unwrap_or_else(|e| {
            crate::term::err_line(&format!("ignoring the log filter {filter:?}: {e}"));
            tracing_subscriber::EnvFilter::new(default)
        });
        // Colour only on a terminal; a closed or full stderr is ignored (the
        // file, when there is one, still gets every event).
        let builder = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .log_internal_errors(false);
        let stderr = crate::term::ForgivingStderr;
        let _ = match file {
            Some(f) => builder
                .with_ansi(false)
                .with_writer(stderr.and(f))
                .try_init(),
            None => builder
                .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
                .with_writer(stderr)
                .try_init(),
        };
    }
}

/// Parses the command line. Usage errors go to stderr as clap words them,
/// but line by line through [`crate::term::err_line`] (an argument that
/// holds escape sequences is shown escaped, a huge one clipped); help and
/// version go to stdout, and a stdout that fails is said (not exit 0).
pub fn parse_args<T: clap::Parser>(program: &str) -> Result<T, ExitCode> {
    let e = match T::try_parse() {
        Ok(cli) => return Ok(cli),
        Err(e) => e,
    };
    let text = e.render().to_string();
    if e.use_stderr() {
        for line in text.trim_end().lines() {
            crate::term::err_line(line);
        }
        return Err(ExitCode::from(e.exit_code() as u8));
    }
    crate::term::out(&text);
    match crate::term::output_failure() {
        Some(err) if err.kind() != std::io::ErrorKind::BrokenPipe => {
            crate::errln!("{program}: cannot write the help: {err}");
            Err(ExitCode::from(1))
        }
        _ => Err(ExitCode::SUCCESS),
    }
}

/// Maps a command's outcome to the exit code, printing a failure as one
/// line. A reader that went away (a closed pipe: `iapeer list | head -1`)
/// is not a failure; any other output error (a full disk) is, and the line
/// says the command itself ran.
pub fn finish(program: &str, result: anyhow::Result<i32>) -> ExitCode {
    let broken_pipe = |e: &std::io::Error| e.kind() == std::io::ErrorKind::BrokenPipe;
    let output = crate::term::output_failure();
    match result {
        Err(e) if e.is::<ExitQuietly>() => ExitCode::from(1),
        Err(e) if e.is::<crate::term::StdoutClosed>() => ExitCode::SUCCESS,
        Err(e) => {
            crate::errln!("{program}: {e:#}");
            ExitCode::from(1)
        }
        Ok(_) if output.as_ref().is_some_and(|e| !broken_pipe(e)) => {
            let e = output.unwrap_or_else(|| std::io::Error::other("?"));
            crate::errln!("{program}: the command ran, but its output could not be written: {e}");
            ExitCode::from(1)
        }
        Ok(code) => ExitCode::from(code as u8),
    }
}

/// A failure already reported on stdout (as JSON): exit 1, print nothing more.
#[derive(Debug, thiserror::Error)]
#[error("failed")]
pub struct ExitQuietly;

pub fn lifecycle(cfg: &Config) -> anyhow::Result<Lifecycle> {
    let plugins = block_on(PluginHost::load(&cfg.plugin_options()))?.map_err(anyhow::Error::msg)?;
    Ok(
        Lifecycle::new(cfg.clone(), Arc::new(plugins), Arc::new(SystemClock))
            .with_shim(crate::shim::current()),
    )
}

/// The async runtime of the synchronous front end (`iapeer`, the tests,
/// the benchmarks): one per process, built on first use. `iapeerd` builds
/// its own in `main` and never touches this one.
pub fn runtime() -> anyhow::Result<&'static tokio::runtime::Runtime> {
    static RUNTIME: std::sync::OnceLock<Result<tokio::runtime::Runtime, String>> =
        std::sync::OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(|e| anyhow::anyhow!("cannot start the async runtime: {e}"))
}

/// Runs a future to completion on [`runtime`].
pub fn block_on<F: std::future::Future>(f: F) -> anyhow::Result<F::Output> {
    Ok(runtime()?.block_on(f))
}
