//! Each subcommand of `iapeer`: its arguments (clap) and how it runs.
//! Names are parsed into their types here, so a bad one is a usage error
//! (exit 2) before anything is read or touched.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Subcommand};

use super::{Ctx, demo, doctor, logs, mcp_config, plugin_new, plugin_try, plugins, status, verbs};
use crate::lifecycle::{Control, WakeArgs};
use crate::names::{Identity, PeerAddress, Personality, Runtime};

/// A peer, and optionally which of its runtimes.
#[derive(Debug, Args)]
pub struct PeerArgs {
    /// The peer (its personality).
    pub peer: Personality,
    /// One of its runtimes (default: the live one, else its default).
    pub runtime: Option<Runtime>,
}

impl PeerArgs {
    pub fn runtime(&self) -> Option<&str> {
        self.runtime.as_ref().map(Runtime::as_str)
    }
}

/// `--message TEXT` or `--message-file FILE`.
#[derive(Debug, Clone, Args)]
pub struct MessageArgs {
    /// The message text.
    #[arg(long, conflicts_with = "message_file")]
    message: Option<String>,
    /// Read the message from a file (`-` = stdin).
    #[arg(long, value_name = "FILE")]
    message_file: Option<PathBuf>,
}

impl MessageArgs {
    fn given(&self) -> bool {
        self.message.is_some() || self.message_file.is_some()
    }

    fn read(&self) -> anyhow::Result<Option<String>> {
        verbs::read_message(self.message.as_deref(), self.message_file.as_deref())
    }
}

#[derive(Debug, Args)]
pub struct Wake {
    /// The peer (its personality).
    peer: Personality,
    /// Which of its runtimes (default: its default runtime).
    #[arg(long)]
    runtime: Option<Runtime>,
    #[command(flatten)]
    message: MessageArgs,
    /// Resume the previous session; fail if there is none.
    #[arg(long, conflicts_with = "fresh")]
    resume: bool,
    /// Start a fresh session.
    #[arg(long)]
    fresh: bool,
}

impl Wake {
    pub fn run(&self, ctx: &Ctx) -> anyhow::Result<i32> {
        let resume = match (self.resume, self.fresh) {
            (true, _) => Some(true),
            (_, true) => Some(false),
            _ => None,
        };
        if !self.message.given()
            && let Some(done) =
                super::fleet::carry_verb(ctx, "wake", &self.peer, self.runtime.as_ref(), false)
        {
            return done;
        }
        let args = WakeArgs {
            topic: None,
            skip_seed: false,
            personality: self.peer.to_string(),
            runtime: self.runtime.as_ref().map(ToString::to_string),
            task: self.message.read()?.unwrap_or_default(),
            resume,
            hand_over: false,
        };
        verbs::wake(ctx.cfg, args, ctx.json)
    }
}

#[derive(Debug, Args)]
pub struct Send {
    /// The peer to message (its personality; `bob@host` names its host in
    /// a fleet across machines).
    peer: PeerAddress,
    /// Deliver to this runtime of the peer (default: where it is live, else its default).
    #[arg(long)]
    runtime: Option<Runtime>,
    #[command(flatten)]
    message: MessageArgs,
    /// The sender, <runtime>-<personality> (default: $PEER_IDENTITY, else
    /// the peer of the current directory, else the one natural peer).
    #[arg(long, value_name = "IDENTITY")]
    from: Option<Identity>,
    /// A topic for the message (at most 200 characters).
    #[arg(long)]
    topic: Option<String>,
    /// A file to point the peer at (repeatable; made absolute).
    #[arg(long = "attachment", value_name = "PATH")]
    attachments: Vec<PathBuf>,
    /// Seconds to wait for the message to go in before saying it is
    /// queued (it stays in the mailbox and goes in later).
    #[arg(long, value_name = "SECS", default_value_t = crate::route::DEFAULT_WAIT_SECS,
          value_parser = clap::value_parser!(u32).range(0..=i64::from(crate::route::MAX_WAIT_SECS)))]
    wait: u32,
}

impl Send {
    pub fn run(&self, ctx: &Ctx) -> anyhow::Result<i32> {
        let peer = &self.peer;
        let Some(text) = self.message.read()?.filter(|m| !m.trim().is_empty()) else {
            crate::errln!(
                "iapeer send: {peer}: a message is required (--message or --message-file)"
            );
            return Ok(2);
        };
        let cwd = std::env::current_dir()?;
        let request = crate::route::SendRequest {
            runtime: self.runtime.clone(),
            topic: self.topic.clone(),
            attachments: self
                .attachments
                .iter()
                .map(|a| cwd.join(a).to_string_lossy().into_owned())
                .collect(),
            wait_secs: Some(self.wait),
            personality: peer.clone(),
            ..crate::route::SendRequest::new(peer.personality().clone(), text)
        };
        let args = verbs::SendArgs {
            from: self.from.as_ref().map(ToString::to_string),
            request,
        };
        verbs::send(ctx.cfg, args, ctx.json)
    }
}

/// What a peer's terminal showed (its pane log): its last lines.
#[derive(Debug, Args)]
pub struct Logs {
    #[command(flatten)]
    target: PeerArgs,
    /// How many lines to show.
    #[arg(short = 'n', long, default_value_t = 50)]
    lines: usize,
    /// Keep printing what the pane shows next (Ctrl-C stops).
    #[arg(short, long)]
    follow: bool,
    /// Keep the terminal's escape sequences.
    #[arg(long)]
    raw: bool,
}

impl Logs {
    pub fn run(&self, ctx: &Ctx) -> anyhow::Result<i32> {
        let args = logs::LogsArgs {
            peer: self.target.peer.as_str(),
            runtime: self.target.runtime(),
            lines: self.lines,
            follow: self.follow,
            raw: self.raw,
        };
        logs::logs(ctx.cfg, args)
    }
}

/// `interrupt` and `compact`: the adapter's keys into the live session.
pub fn control(target: &PeerArgs, ctx: &Ctx, command: Control) -> anyhow::Result<i32> {
    let peer = target.peer.as_str();
    verbs::control(ctx.cfg, peer, target.runtime(), command, ctx.json)
}

#[derive(Debug, Args)]
pub struct McpConfig {
    client: mcp_config::Client,
    /// The peer whose folder gets the config (claude: <cwd>/.mcp.json).
    peer: Option<Personality>,
    /// Write the config file instead of printing it (idempotent).
    #[arg(long)]
    write: bool,
}

impl McpConfig {
    pub fn run(&self, ctx: &Ctx) -> anyhow::Result<i32> {
        let peer = self.peer.as_ref().map(Personality::as_str);
        mcp_config::run(ctx.cfg, self.client, peer, self.write)
    }
}

#[derive(Debug, Args)]
pub struct Demo {
    /// Keep the throwaway fleet (and say how to reach it).
    #[arg(long)]
    keep: bool,
}

impl Demo {
    pub fn run(&self, ctx: &Ctx) -> anyhow::Result<i32> {
        demo::run(ctx.cfg, self.keep)
    }
}

#[derive(Debug, Args)]
pub struct Doctor {
    /// A registered peer (its runtime, in its folder) or a runtime (in
    /// a new empty folder); default: the runtimes the peers use.
    name: Option<Personality>,
    /// Seconds the boot may take.
    #[arg(long, value_name = "N", default_value_t = 60, value_parser = crate::config::parse_secs)]
    timeout_secs: u64,
    /// Also write each screen judged to DIR (`NN-ready.txt`,
    /// `NN-dialog-Down.txt`…): goldens for the adapter's tests.
    #[arg(long, value_name = "DIR")]
    save_panes: Option<PathBuf>,
}

impl Doctor {
    pub fn run(&self, ctx: &Ctx) -> anyhow::Result<i32> {
        let timeout = Duration::from_secs(self.timeout_secs);
        let name = self.name.as_ref().map(Personality::as_str);
        doctor::run(ctx.cfg, name, timeout, self.save_panes.as_deref())
    }
}

/// `stop` and `start`: one peer (and runtime) or every one.
#[derive(Debug, Args)]
pub struct Halt {
    /// The peer (its personality).
    #[arg(required_unless_present = "all")]
    peer: Option<Personality>,
    /// One of its runtimes (default: all of them).
    runtime: Option<Runtime>,
    /// Every registered peer.
    #[arg(long, conflicts_with_all = ["peer", "runtime"])]
    all: bool,
}

impl Halt {
    pub fn run(&self, ctx: &Ctx, halt: verbs::Halt) -> anyhow::Result<i32> {
        let (verb, reset) = match halt {
            verbs::Halt::Stop => ("stop", false),
            verbs::Halt::Start { reset } => ("start", reset),
        };
        if let Some(peer) = &self.peer
            && let Some(done) =
                super::fleet::carry_verb(ctx, verb, peer, self.runtime.as_ref(), reset)
        {
            return done;
        }
        verbs::stop_or_start(
            ctx.cfg,
            halt,
            self.peer.as_ref().map(Personality::as_str),
            self.runtime.as_ref().map(Runtime::as_str),
            self.all,
            ctx.json,
        )
    }
}

#[derive(Debug, Args)]
pub struct Start {
    #[command(flatten)]
    halt: Halt,
    /// Also forget the peer's recorded deaths (lifts the crash-loop guard).
    #[arg(long)]
    reset: bool,
}

impl Start {
    pub fn run(&self, ctx: &Ctx) -> anyhow::Result<i32> {
        self.halt.run(ctx, verbs::Halt::Start { reset: self.reset })
    }
}

#[derive(Debug, Args)]
pub struct Attach {
    #[command(flatten)]
    target: PeerArgs,
    /// Print the socket and identity instead of attaching.
    #[arg(long)]
    print: bool,
}

impl Attach {
    pub fn run(&self, ctx: &Ctx) -> anyhow::Result<i32> {
        let peer = self.target.peer.as_str();
        verbs::attach(ctx.cfg, peer, self.target.runtime(), self.print, ctx.json)
    }
}

#[derive(Debug, Args)]
pub struct List {
    /// Print the table once, even on a terminal.
    #[arg(long)]
    plain: bool,
    /// Every host of the fleet and its peers, from this host's daemon.
    #[arg(long)]
    fleet: bool,
}

impl List {
    pub fn run(&self, ctx: &Ctx) -> anyhow::Result<i32> {
        use std::io::IsTerminal;
        if self.fleet {
            return super::fleet::list(ctx.cfg, ctx.json);
        }
        let terminal = std::io::stdout().is_terminal() && std::io::stdin().is_terminal();
        if terminal && !ctx.json && !self.plain {
            crate::panel::run_alone(ctx.cfg)
        } else {
            verbs::list(ctx.cfg, ctx.json)
        }
    }
}

#[derive(Debug, Args)]
pub struct Register {
    /// The peer's name (its personality): ^[a-z][a-z0-9-]{0,31}$.
    peer: Personality,
    /// The peer's folder: its sessions start there (it must exist).
    #[arg(long, value_name = "DIR")]
    cwd: PathBuf,
    /// Its default runtime (claude, codex, … or one a plugin adds).
    #[arg(long)]
    runtime: Runtime,
    /// More runtimes it may run as, comma-separated.
    #[arg(long, value_delimiter = ',')]
    runtimes: Vec<Runtime>,
    /// Who is at the other end (default: natural for the human-facing
    /// runtimes such as telegram, absent for the notifier, else artificial).
    #[arg(long, value_parser = clap::builder::PossibleValuesParser::new(crate::registry::INTELLIGENCES))]
    intelligence: Option<String>,
    /// One line saying what the peer is for.
    #[arg(long)]
    description: Option<String>,
}

impl Register {
    pub fn run(&self, ctx: &Ctx) -> anyhow::Result<i32> {
        let args = verbs::RegisterArgs {
            peer: self.peer.clone(),
            cwd: self.cwd.clone(),
            runtime: self.runtime.clone(),
            runtimes: self.runtimes.clone(),
            intelligence: self.intelligence.clone(),
            description: self.description.clone(),
        };
        verbs::register(ctx.cfg, args, ctx.json)
    }
}

/// `iapeer <runtime>`: folder launch with that runtime.
pub fn folder_launch(args: &[String], ctx: &Ctx) -> anyhow::Result<i32> {
    let verb = &args[0];
    if !crate::names::is_valid_runtime(verb) {
        crate::errln!("iapeer: unknown command {verb:?} (see iapeer --help)");
        return Ok(2);
    }
    if args[1..].iter().any(|a| a == "--help" || a == "-h") {
        crate::outln!(
            "Bring up the peer of the current directory with the runtime {verb:?}, fresh\n\nUsage: iapeer {verb} [--json]"
        );
        return Ok(0);
    }
    let json = ctx.json || args[1..].iter().any(|a| a == "--json");
    if let Some(extra) = args[1..].iter().find(|a| *a != "--json") {
        crate::errln!("iapeer {verb}: unexpected argument {extra:?}");
        return Ok(2);
    }
    verbs::launch(ctx.cfg, Some(verb), json)
}

#[derive(Debug, Subcommand)]
pub enum PluginsCommand {
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
    Remove { runtime: Runtime },
    /// The install checks, nothing installed: exit 0 when it would serve.
    Check { file: PathBuf },
    /// Scaffold an adapter project that builds with one command (it carries
    /// the SDK and the contract).
    New {
        /// The runtime it serves: ^[a-z][a-z0-9]{0,31}$.
        name: Runtime,
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
        #[arg(long, value_name = "N", default_value_t = 30, value_parser = crate::config::parse_secs)]
        timeout_secs: u64,
    },
    /// The compile cache.
    #[command(subcommand)]
    Cache(CacheCommand),
}

#[derive(Debug, Subcommand)]
pub enum CacheCommand {
    /// Every compiled component, in use or stale.
    Ls,
    /// Delete the stale ones (plugins that are gone, other wasmtime builds).
    Clean,
}

impl PluginsCommand {
    pub fn run(&self, ctx: &Ctx) -> anyhow::Result<i32> {
        let (cfg, json) = (ctx.cfg, ctx.json);
        match self {
            Self::New { name, dir } => plugin_new::run(cfg, name, dir.as_deref()),
            Self::Try {
                file,
                message,
                cwd,
                timeout_secs,
            } => {
                let Some(bin) = ctx.bare_bin else {
                    anyhow::bail!(
                        "plugins try needs --bin PATH: the runtime binary to try it with"
                    );
                };
                let args = plugin_try::TryArgs {
                    file,
                    bin,
                    message: message.clone(),
                    cwd: cwd.as_deref(),
                    timeout: Duration::from_secs(*timeout_secs),
                };
                plugin_try::run(cfg, args)
            }
            Self::List => plugins::list(cfg, json),
            Self::Inspect { file } => plugins::inspect(cfg, file, json),
            Self::Grant { target } => plugins::grant(cfg, target),
            Self::Revoke { target } => plugins::revoke(cfg, target),
            Self::Install { file } => plugins::install(cfg, file),
            Self::Remove { runtime } => plugins::remove(cfg, runtime.as_str()),
            Self::Check { file } => plugins::check(cfg, file, json),
            Self::Cache(CacheCommand::Ls) => plugins::cache(cfg, false),
            Self::Cache(CacheCommand::Clean) => plugins::cache(cfg, true),
        }
    }
}

/// `status`: ask the running daemon how it is.
pub fn daemon_status(ctx: &Ctx) -> anyhow::Result<i32> {
    status::status(ctx.cfg, ctx.json)
}
