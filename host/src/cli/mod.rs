//! The command-line front ends of both binaries (clap). Exit codes: 0 done,
//! 1 refused or failed (one line on stderr naming the cause), 2 usage.

mod commands;
mod demo;
mod doctor;
mod fleet;
mod logs;
mod mail;
mod mcp_config;
mod plugin_new;
mod plugin_try;
mod plugins;
mod status;
mod table;
mod trial;
pub(crate) mod verbs;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::app::{GlobalArgs, finish, parse_args};
use crate::config::Config;
use crate::lifecycle::Control;
use crate::names::Runtime;

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
    Plugins(commands::PluginsCommand),
    /// Bring a peer up (resuming or fresh, as its state says), optionally with a message.
    Wake(commands::Wake),
    /// Send an IAP message, as MCP send_to_peer does: pasted into a live
    /// session, or the first message of the wake it causes.
    Send(commands::Send),
    /// What a peer's terminal showed (its pane log): its last lines.
    Logs(commands::Logs),
    /// The mailbox: what waits for each peer (or one), and --retry,
    /// --drop or --status of a message by its id.
    Mail(mail::Mail),
    /// Interrupt a peer's current turn (the adapter's `interrupt` keys).
    Interrupt(commands::PeerArgs),
    /// Compact a peer's conversation (the adapter's `compact` keys).
    Compact(commands::PeerArgs),
    /// Ask the running daemon how it is (exit 1 when none answers).
    Status,
    /// The fleet across hosts: its listing, a host's NATS key, a host's
    /// server permissions.
    Fleet {
        #[command(subcommand)]
        command: fleet::FleetCommand,
    },
    /// Print (or install with --write) what a Claude Code or Codex session
    /// needs to reach this daemon's send_to_peer under its own identity.
    McpConfig(commands::McpConfig),
    /// See the main job in one command: a sleeping peer woken by a message
    /// and the message delivered, then the panel (a throwaway fleet on a
    /// stand-in runtime; no account needed).
    Demo(commands::Demo),
    /// Boot a runtime as a peer would, to input-ready, and stop, typing
    /// nothing: each step with its time and judged pane, and the runtime's
    /// version next to the one its adapter was verified with.
    Doctor(commands::Doctor),
    /// Stop a peer durably: kill its session; wakes are refused until `start`.
    Stop(commands::Halt),
    /// Undo `stop`: the next message wakes the peer.
    Start(commands::Start),
    /// Restart a peer with a fresh session now (its initial prompt first).
    New(commands::PeerArgs),
    /// Mark a peer for a fresh start: its next wake begins a new
    /// conversation instead of resuming. A live session runs on.
    MarkNew(commands::PeerArgs),
    /// Run by an ephemeral peer in its own session ($PEER_IDENTITY): its
    /// work is done, and its session is reaped once quiet.
    SelfDone,
    /// Attach the terminal to a peer's session, resuming it if it sleeps.
    Attach(commands::Attach),
    /// Folder launch: bring up the peer of the current directory, fresh.
    Launch {
        /// Which of its runtimes (default: its default).
        runtime: Option<Runtime>,
    },
    /// Every registered peer: live / asleep / stopped per runtime. On a
    /// terminal, a live panel (keys: arrows/jk, Enter attach, w s S n, l log,
    /// / filter, q quit); `--plain` or `--json` print once.
    List(commands::List),
    /// One supervise pass: reap gone and idle sessions, relaunch /new ones.
    Supervise {
        /// Run one tick and exit (continuous supervision is iapeerd's job).
        #[arg(long, required = true)]
        once: bool,
    },
    /// Add or update a peer in the registry.
    Register(commands::Register),
    /// `iapeer <runtime>`: folder launch with that runtime.
    #[command(external_subcommand)]
    Runtime(Vec<String>),
}

/// What every subcommand runs with.
pub struct Ctx<'a> {
    cfg: &'a Config,
    /// `--json`: print the result as JSON.
    json: bool,
    /// A bare `--bin PATH` (only `plugins try` takes one).
    bare_bin: Option<&'a str>,
}

impl Command {
    fn run(&self, ctx: &Ctx) -> anyhow::Result<i32> {
        if let Some(path) = ctx.bare_bin
            && !matches!(self, Command::Plugins(commands::PluginsCommand::Try { .. }))
        {
            crate::errln!(
                "iapeer: --bin {path:?}: expected RUNTIME=PATH (a bare PATH only with `plugins try`)"
            );
            return Ok(2);
        }
        let (cfg, json) = (ctx.cfg, ctx.json);
        match self {
            Command::Plugins(c) => c.run(ctx),
            Command::Wake(c) => c.run(ctx),
            Command::Send(c) => c.run(ctx),
            Command::Logs(c) => c.run(ctx),
            Command::Mail(c) => c.run(ctx),
            Command::Interrupt(peer) => commands::control(peer, ctx, Control::Interrupt),
            Command::Compact(peer) => commands::control(peer, ctx, Control::Compact),
            Command::Status => commands::daemon_status(ctx),
            Command::Fleet { command } => command.run(ctx),
            Command::McpConfig(c) => c.run(ctx),
            Command::Demo(c) => c.run(ctx),
            Command::Doctor(c) => c.run(ctx),
            Command::Stop(c) => c.run(ctx, verbs::Halt::Stop),
            Command::Start(c) => c.run(ctx),
            Command::New(p) => fleet::carry_verb(ctx, "new", &p.peer, p.runtime.as_ref(), false)
                .unwrap_or_else(|| verbs::new(cfg, p.peer.as_str(), p.runtime(), json)),
            Command::MarkNew(p) => verbs::mark_new(cfg, p.peer.as_str(), p.runtime(), json),
            Command::SelfDone => verbs::self_done(cfg),
            Command::Attach(c) => c.run(ctx),
            Command::Launch { runtime } => {
                verbs::launch(cfg, runtime.as_ref().map(Runtime::as_str), json)
            }
            Command::List(c) => c.run(ctx),
            Command::Supervise { once: _ } => verbs::supervise_once(cfg, json),
            Command::Register(c) => c.run(ctx),
            Command::Runtime(args) => commands::folder_launch(args, ctx),
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
    // The one async runtime of this process, built here rather than at
    // the first await deep in a verb.
    if let Err(e) = crate::app::runtime() {
        return finish("iapeer", Err(e));
    }
    let ctx = Ctx {
        cfg: &cfg,
        json: cli.global.json,
        bare_bin: cli
            .global
            .bins
            .iter()
            .find(|(rt, _)| rt.is_empty())
            .map(|(_, path)| path.as_str()),
    };
    finish("iapeer", cli.command.run(&ctx))
}
