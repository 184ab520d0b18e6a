//! The command-line front ends of both binaries (clap). Exit codes: 0 done,
//! 1 refused or failed (one line on stderr naming the cause), 2 usage.

mod demo;
mod doctor;
mod logs;
mod mcp_config;
mod plugin_new;
mod plugin_try;
mod plugins;
mod status;
mod table;
mod trial;
pub(crate) mod verbs;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::app::{GlobalArgs, finish, parse_args};
use crate::config::Config;
use crate::lifecycle::{Control, WakeArgs};
use crate::names::{Personality, Runtime};

/// The bare `--bin PATH`, if one was given.
fn bare_bin(global: &GlobalArgs) -> Option<&str> {
    global
        .bins
        .iter()
        .find(|(rt, _)| rt.is_empty())
        .map(|(_, path)| path.as_str())
}

#[derive(Debug, Parser)]
#[command(
    name = "iapeer",
    version,
    about = "Operate a fleet of iapeer agent sessions"
)]
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
    /// Bring a peer up (resuming or fresh, as its state says), optionally with a message.
    Wake {
        peer: String,
        #[arg(long)]
        runtime: Option<String>,
        #[command(flatten)]
        message: MessageArgs,
        /// Resume the previous session; fail if there is none.
        #[arg(long, conflicts_with = "fresh")]
        resume: bool,
        /// Start a fresh session.
        #[arg(long)]
        fresh: bool,
    },
    /// Send an IAP message, as MCP send_to_peer does: pasted into a live
    /// session, or the first message of the wake it causes.
    Send {
        peer: Personality,
        #[arg(long)]
        runtime: Option<Runtime>,
        #[command(flatten)]
        message: MessageArgs,
        /// The sender, <runtime>-<personality> (default: $PEER_IDENTITY, else
        /// the peer of the current directory, else the one natural peer).
        #[arg(long, value_name = "IDENTITY")]
        from: Option<String>,
        /// A topic for the message (at most 200 characters).
        #[arg(long)]
        topic: Option<String>,
        /// A file to point the peer at (repeatable; made absolute).
        #[arg(long = "attachment", value_name = "PATH")]
        attachments: Vec<PathBuf>,
    },
    /// What a peer's terminal showed (its pane log), last lines first.
    Logs {
        peer: String,
        runtime: Option<String>,
        /// How many lines to show.
        #[arg(short = 'n', long, default_value_t = 50)]
        lines: usize,
        /// Keep printing what the pane shows next (Ctrl-C stops).
        #[arg(short, long)]
        follow: bool,
        /// Keep the terminal's escape sequences.
        #[arg(long)]
        raw: bool,
    },
    /// Interrupt a peer's current turn (the adapter's `interrupt` keys).
    Interrupt(ControlArgs),
    /// Compact a peer's conversation (the adapter's `compact` keys).
    Compact(ControlArgs),
    /// Ask the running daemon how it is (exit 1 when none answers).
    Status,
    /// Print (or install with --write) what a Claude Code or Codex session
    /// needs to reach this daemon's send_to_peer under its own identity.
    McpConfig {
        client: mcp_config::Client,
        /// The peer whose folder gets the config (claude: <cwd>/.mcp.json).
        peer: Option<String>,
        /// Write the config file instead of printing it (idempotent).
        #[arg(long)]
        write: bool,
    },
    /// See the main job in one command: a sleeping peer woken by a message
    /// and the message delivered, then the panel (a throwaway fleet on a
    /// stand-in runtime; no account needed).
    Demo {
        /// Keep the throwaway fleet (and say how to reach it).
        #[arg(long)]
        keep: bool,
    },
    /// Boot a runtime as a peer would, to input-ready, and stop, typing
    /// nothing: each step with its time and judged pane, and the runtime's
    /// version next to the one its adapter was verified with.
    Doctor {
        /// A registered peer (its runtime, in its folder) or a runtime (in
        /// a new empty folder); default: the runtimes the peers use.
        name: Option<String>,
        /// Seconds the boot may take.
        #[arg(long, value_name = "N", default_value_t = 60)]
        timeout_secs: u64,
        /// Also write each screen judged to DIR (`NN-ready.txt`,
        /// `NN-dialog-Down.txt`…): goldens for the adapter's tests.
        #[arg(long, value_name = "DIR")]
        save_panes: Option<PathBuf>,
    },
    /// Stop a peer durably: kill its session; wakes are refused until `start`.
    Stop {
        #[arg(required_unless_present = "all")]
        peer: Option<String>,
        runtime: Option<String>,
        #[arg(long, conflicts_with_all = ["peer", "runtime"])]
        all: bool,
    },
    /// Undo `stop`: the next message wakes the peer.
    Start {
        #[arg(required_unless_present = "all")]
        peer: Option<String>,
        runtime: Option<String>,
        #[arg(long, conflicts_with_all = ["peer", "runtime"])]
        all: bool,
        /// Also forget the peer's recorded deaths (lifts the crash-loop guard).
        #[arg(long)]
        reset: bool,
    },
    /// Restart a peer with a fresh session (its initial prompt first).
    New {
        peer: String,
        runtime: Option<String>,
    },
    /// Drop the /new mark: the peer's next relaunch is fresh.
    MarkNew {
        peer: String,
        runtime: Option<String>,
    },
    /// Attach the terminal to a peer's session, resuming it if it sleeps.
    Attach {
        peer: String,
        runtime: Option<String>,
        /// Print the socket and identity instead of attaching.
        #[arg(long)]
        print: bool,
    },
    /// Folder launch: bring up the peer of the current directory, fresh.
    Launch { runtime: Option<String> },
    /// Every registered peer: live / asleep / stopped per runtime. On a
    /// terminal, a live panel (keys: arrows/jk, Enter attach, w s S n, l log,
    /// / filter, q quit); `--plain` or `--json` print once.
    List {
        /// Print the table once, even on a terminal.
        #[arg(long)]
        plain: bool,
    },
    /// One supervise pass: reap gone and idle sessions, relaunch /new ones.
    Supervise {
        /// Run one tick and exit (continuous supervision is iapeerd's job).
        #[arg(long, required = true)]
        once: bool,
    },
    /// Add or update a peer in the registry.
    Register {
        peer: String,
        #[arg(long)]
        cwd: PathBuf,
        #[arg(long)]
        runtime: String,
        /// More runtimes, comma-separated.
        #[arg(long, value_delimiter = ',')]
        runtimes: Vec<String>,
        #[arg(long)]
        intelligence: Option<String>,
        #[arg(long)]
        description: Option<String>,
    },
    /// `iapeer <runtime>`: folder launch with that runtime.
    #[command(external_subcommand)]
    Runtime(Vec<String>),
}

#[derive(Debug, Clone, Args)]
struct MessageArgs {
    /// The message text.
    #[arg(long, conflicts_with = "message_file")]
    message: Option<String>,
    /// Read the message from a file (`-` = stdin).
    #[arg(long, value_name = "FILE")]
    message_file: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
enum PluginsCommand {
    /// Every adapter found (built-in and plugin dirs), loaded or not, and why.
    List,
    /// Validate one adapter file without installing it.
    Inspect { file: PathBuf },
    /// Let a plugin-dir adapter read the directories it declares (bound to
    /// the file's sha256: a changed file needs a new grant).
    Grant {
        /// The `.wasm` file, or the runtime of a plugin-dir adapter.
        target: String,
    },
    /// Take a grant back.
    Revoke {
        /// The `.wasm` file, or the runtime it serves.
        target: String,
    },
    /// Validate an adapter, try it with nothing granted, and copy it into
    /// the first plugin dir as `<runtime>.wasm`.
    Install { file: PathBuf },
    /// Delete the plugin-dir file(s) serving a runtime (and their grants).
    Remove { runtime: String },
    /// The install checks, nothing installed: exit 0 when it would serve.
    Check { file: PathBuf },
    /// Scaffold an adapter project that builds with one command (it carries
    /// the SDK and the contract).
    New {
        /// The runtime it serves (`^[a-z][a-z0-9]{0,31}$`).
        name: String,
        /// Where (default: ./iapeer-adapter-NAME).
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
    /// Try an adapter against a real binary (`--bin PATH`): a wake in a
    /// throwaway root, each step with its time and the pane text it judged.
    Try {
        file: PathBuf,
        /// The first message to paste (the ready gate then waits for it).
        #[arg(long)]
        message: Option<String>,
        /// The peer's folder (default: the current directory).
        #[arg(long, value_name = "DIR")]
        cwd: Option<PathBuf>,
        /// Seconds each of the boot and the ready gate may take.
        #[arg(long, value_name = "N", default_value_t = 30)]
        timeout_secs: u64,
    },
    /// The compile cache.
    #[command(subcommand)]
    Cache(CacheCommand),
}

/// What `interrupt` and `compact` take.
#[derive(Debug, clap::Args)]
struct ControlArgs {
    peer: String,
    runtime: Option<String>,
}

impl ControlArgs {
    fn run(&self, cfg: &Config, command: Control, json: bool) -> anyhow::Result<i32> {
        verbs::control(cfg, &self.peer, self.runtime.as_deref(), command, json)
    }
}

#[derive(Debug, Subcommand)]
enum CacheCommand {
    /// Every compiled component, in use or stale.
    Ls,
    /// Delete the stale ones (plugins that are gone, other wasmtime builds).
    Clean,
}

fn wake_args(
    peer: &str,
    runtime: &Option<String>,
    task: Option<String>,
    resume: Option<bool>,
) -> WakeArgs {
    WakeArgs {
        skip_seed: false,
        personality: peer.to_string(),
        runtime: runtime.clone(),
        task: task.unwrap_or_default(),
        resume,
        hand_over: false,
    }
}

fn run(cfg: &Config, command: &Command, global: &GlobalArgs) -> anyhow::Result<i32> {
    let json = global.json;
    if let Some(path) = bare_bin(global)
        && !matches!(command, Command::Plugins(PluginsCommand::Try { .. }))
    {
        anyhow::bail!(
            "--bin {path:?}: expected RUNTIME=PATH (a bare PATH only with `plugins try`)"
        );
    }
    match command {
        Command::Plugins(PluginsCommand::New { name, dir }) => {
            plugin_new::run(cfg, name, dir.as_deref())
        }
        Command::Plugins(PluginsCommand::Try {
            file,
            message,
            cwd,
            timeout_secs,
        }) => {
            let Some(bin) = bare_bin(global) else {
                anyhow::bail!("plugins try needs --bin PATH: the runtime binary to try it with");
            };
            plugin_try::run(
                cfg,
                plugin_try::TryArgs {
                    file,
                    bin,
                    message: message.clone(),
                    cwd: cwd.as_deref(),
                    timeout: std::time::Duration::from_secs((*timeout_secs).max(1)),
                },
            )
        }
        Command::Plugins(PluginsCommand::List) => plugins::list(cfg, json),
        Command::Plugins(PluginsCommand::Inspect { file }) => plugins::inspect(cfg, file, json),
        Command::Plugins(PluginsCommand::Grant { target }) => plugins::grant(cfg, target),
        Command::Plugins(PluginsCommand::Revoke { target }) => plugins::revoke(cfg, target),
        Command::Plugins(PluginsCommand::Install { file }) => plugins::install(cfg, file),
        Command::Plugins(PluginsCommand::Remove { runtime }) => plugins::remove(cfg, runtime),
        Command::Plugins(PluginsCommand::Check { file }) => plugins::check(cfg, file, json),
        Command::Plugins(PluginsCommand::Cache(CacheCommand::Ls)) => plugins::cache(cfg, false),
        Command::Plugins(PluginsCommand::Cache(CacheCommand::Clean)) => plugins::cache(cfg, true),
        Command::Wake {
            peer,
            runtime,
            message,
            resume,
            fresh,
        } => {
            let task =
                verbs::read_message(message.message.as_deref(), message.message_file.as_deref())?;
            let mode = if *resume {
                Some(true)
            } else if *fresh {
                Some(false)
            } else {
                None
            };
            verbs::wake(cfg, wake_args(peer, runtime, task, mode), json)
        }
        Command::Send {
            peer,
            runtime,
            message,
            from,
            topic,
            attachments,
        } => {
            let text =
                verbs::read_message(message.message.as_deref(), message.message_file.as_deref())?
                    .filter(|m| !m.trim().is_empty())
                    .ok_or_else(|| {
                        anyhow::anyhow!(
                            "{peer}: send needs a non-empty --message or --message-file"
                        )
                    })?;
            let cwd = std::env::current_dir()?;
            let request = crate::route::SendRequest {
                runtime: runtime.clone(),
                topic: topic.clone(),
                attachments: attachments
                    .iter()
                    .map(|a| cwd.join(a).to_string_lossy().into_owned())
                    .collect(),
                ..crate::route::SendRequest::new(peer.clone(), text)
            };
            verbs::send(
                cfg,
                verbs::SendArgs {
                    from: from.clone(),
                    request,
                },
                json,
            )
        }
        Command::Status => status::status(cfg, json),
        Command::Logs {
            peer,
            runtime,
            lines,
            follow,
            raw,
        } => logs::logs(
            cfg,
            logs::LogsArgs {
                peer,
                runtime: runtime.as_deref(),
                lines: *lines,
                follow: *follow,
                raw: *raw,
            },
        ),
        Command::Interrupt(a) => a.run(cfg, Control::Interrupt, json),
        Command::Compact(a) => a.run(cfg, Control::Compact, json),
        Command::McpConfig {
            client,
            peer,
            write,
        } => mcp_config::run(cfg, *client, peer.as_deref(), *write),
        Command::Demo { keep } => demo::run(cfg, *keep),
        Command::Doctor {
            name,
            timeout_secs,
            save_panes,
        } => doctor::run(
            cfg,
            name.as_deref(),
            std::time::Duration::from_secs((*timeout_secs).max(1)),
            save_panes.as_deref(),
        ),
        Command::Stop { peer, runtime, all } => verbs::stop_or_start(
            cfg,
            verbs::Halt::Stop,
            peer.as_deref(),
            runtime.as_deref(),
            *all,
            json,
        ),
        Command::Start {
            peer,
            runtime,
            all,
            reset,
        } => verbs::stop_or_start(
            cfg,
            verbs::Halt::Start { reset: *reset },
            peer.as_deref(),
            runtime.as_deref(),
            *all,
            json,
        ),
        Command::New { peer, runtime } => verbs::new(cfg, peer, runtime.as_deref(), json),
        Command::MarkNew { peer, runtime } => verbs::mark_new(cfg, peer, runtime.as_deref(), json),
        Command::Attach {
            peer,
            runtime,
            print,
        } => verbs::attach(cfg, peer, runtime.as_deref(), *print, json),
        Command::Launch { runtime } => verbs::launch(cfg, runtime.as_deref(), json),
        Command::List { plain } => {
            use std::io::IsTerminal;
            let terminal = std::io::stdout().is_terminal() && std::io::stdin().is_terminal();
            if terminal && !json && !plain {
                crate::panel::run(cfg)
            } else {
                verbs::list(cfg, json)
            }
        }
        Command::Supervise { once: _ } => verbs::supervise_once(cfg, json),
        Command::Register {
            peer,
            cwd,
            runtime,
            runtimes,
            intelligence,
            description,
        } => verbs::register(
            cfg,
            verbs::RegisterArgs {
                peer: peer.clone(),
                cwd: cwd.clone(),
                runtime: runtime.clone(),
                runtimes: runtimes.clone(),
                intelligence: intelligence.clone(),
                description: description.clone(),
            },
            json,
        ),
        Command::Runtime(args) => {
            let verb = &args[0];
            if !crate::names::is_valid_runtime(verb) {
                crate::errln!("iapeer: unknown command {verb:?} (see iapeer --help)");
                return Ok(2);
            }
            let json = json || args[1..].iter().any(|a| a == "--json");
            if let Some(extra) = args[1..].iter().find(|a| *a != "--json") {
                crate::errln!("iapeer {verb}: unexpected argument {extra:?}");
                return Ok(2);
            }
            verbs::launch(cfg, Some(verb), json)
        }
    }
}

/// Entry point of the `iapeer` binary.
pub fn iapeer_main() -> ExitCode {
    if let Some(code) = crate::shim::dispatch().or_else(crate::panelog::dispatch) {
        return code;
    }
    let cli: IapeerCli = match parse_args("iapeer") {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    cli.global.init_logging("warn", None);
    let cfg = match cli.global.config() {
        Ok(cfg) => cfg,
        Err(e) => {
            crate::errln!("iapeer: {e}");
            return ExitCode::from(2);
        }
    };
    if let Err(e) = cfg.check_private_dirs() {
        return finish("iapeer", Err(e.into()));
    }
    finish("iapeer", run(&cfg, &cli.command, &cli.global))
}
