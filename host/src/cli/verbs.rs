//! The lifecycle verbs of `iapeer`. They act directly on state and tmux, so
//! they work while the daemon is down; the cross-process wake lock keeps them
//! safe beside it.

use std::io::{IsTerminal, Read};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};
use serde_json::json;

use super::table;
use crate::clock::SystemClock;
use crate::config::Config;
use crate::lifecycle::{Lifecycle, VerbOutcome, WakeArgs, WakeResult, supervise_action_name};
use crate::names::{Personality, Runtime};
use crate::plugins::PluginHost;
use crate::registry::{self, Registration};

/// A failure already reported on stdout (as JSON): exit 1, print nothing more.
#[derive(Debug, thiserror::Error)]
#[error("failed")]
pub struct ExitQuietly;

pub fn lifecycle(cfg: &Config) -> anyhow::Result<Lifecycle> {
    let plugins = block_on(PluginHost::load(&cfg.plugin_options()))?.map_err(anyhow::Error::msg)?;
    Ok(Lifecycle::new(
        cfg.clone(),
        Arc::new(plugins),
        Arc::new(SystemClock),
    ))
}

/// Runs a future to completion on the process's async runtime.
pub fn block_on<F: std::future::Future>(f: F) -> anyhow::Result<F::Output> {
    static RUNTIME: std::sync::OnceLock<Result<tokio::runtime::Runtime, String>> =
        std::sync::OnceLock::new();
    let rt = RUNTIME
        .get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(|e| anyhow::anyhow!("cannot start the async runtime: {e}"))?;
    Ok(rt.block_on(f))
}

fn print_json(v: &impl serde::Serialize) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

/// `--message TEXT` or `--message-file F` (`-` = stdin).
pub fn read_message(text: Option<&str>, file: Option<&Path>) -> anyhow::Result<Option<String>> {
    match (text, file) {
        (Some(t), _) => Ok(Some(t.to_string())),
        (None, Some(f)) if f == Path::new("-") => {
            let mut s = String::new();
            std::io::stdin()
                .read_to_string(&mut s)
                .context("cannot read the message from stdin")?;
            Ok(Some(s))
        }
        (None, Some(f)) => std::fs::read_to_string(f)
            .map(Some)
            .with_context(|| format!("cannot read the message file {}", f.display())),
        (None, None) => Ok(None),
    }
}

/// A failed wake as one line naming the peer and the cause.
fn wake_failure(peer: &str, r: &WakeResult) -> anyhow::Error {
    let rt = r
        .runtime
        .as_deref()
        .map(|rt| format!(" ({rt})"))
        .unwrap_or_default();
    anyhow::anyhow!(
        "{peer}{rt}: {}",
        r.reason.as_deref().unwrap_or("wake failed")
    )
}

/// Runs a wake; `Ok(Some(r))` when human output is still to be printed for
/// a READY result (JSON and failures are handled here).
fn run_wake(lc: &Lifecycle, args: &WakeArgs, json: bool) -> anyhow::Result<Option<WakeResult>> {
    let r = block_on(lc.wake_or_spawn(args))?;
    if json {
        print_json(&r)?;
        if !r.is_ready() {
            return Err(anyhow::Error::new(ExitQuietly));
        }
        return Ok(None);
    }
    if !r.is_ready() {
        return Err(wake_failure(&args.personality, &r));
    }
    Ok(Some(r))
}

pub fn wake(cfg: &Config, args: WakeArgs, json: bool) -> anyhow::Result<i32> {
    let Some(r) = run_wake(&lifecycle(cfg)?, &args, json)? else {
        return Ok(0);
    };
    let id = r.process_address.as_deref().unwrap_or("?");
    match (r.woke, r.task_delivered) {
        (true, _) => println!("woke {id} ({})", r.mode.unwrap_or("fresh")),
        (false, Some(true)) => println!("{id} is live; message delivered"),
        _ => println!("{id} is live"),
    }
    Ok(0)
}

pub fn send(cfg: &Config, mut args: WakeArgs, json: bool) -> anyhow::Result<i32> {
    let lc = lifecycle(cfg)?;
    if args.runtime.is_none() {
        // A message goes where the peer is live; only a sleeping peer is woken.
        args.runtime = lc
            .delivery_runtime(&args.personality)
            .map_err(|e| anyhow::anyhow!("{}: {e}", args.personality))?;
    }
    let Some(r) = run_wake(&lc, &args, json)? else {
        return Ok(0);
    };
    let rt = r.runtime.as_deref().unwrap_or("?");
    if r.woke {
        println!("woke {} ({rt}) and delivered the message", args.personality);
    } else {
        println!("delivered to {} ({rt})", args.personality);
    }
    Ok(0)
}

fn print_outcomes(rows: &[VerbOutcome], json: bool) -> anyhow::Result<i32> {
    if json {
        print_json(&json!({ "outcomes": rows }))?;
    } else {
        for r in rows {
            match &r.reason {
                Some(reason) => {
                    println!("{} ({}): {} — {reason}", r.personality, r.runtime, r.action)
                }
                None => println!("{} ({}): {}", r.personality, r.runtime, r.action),
            }
        }
    }
    Ok(if rows.iter().all(VerbOutcome::ok) {
        0
    } else {
        1
    })
}

/// The personalities a verb targets: one peer, or `--all` registered ones.
fn targets(lc: &Lifecycle, peer: Option<&str>, all: bool) -> anyhow::Result<Vec<String>> {
    match (peer, all) {
        (Some(p), false) => Ok(vec![p.to_string()]),
        (None, true) => Ok(lc
            .registry()?
            .peers
            .iter()
            .map(|p| p.personality.to_string())
            .collect()),
        _ => bail!("name a peer or pass --all"),
    }
}

/// `stop` (durable halt) or `start` (undo it) for one peer or `--all`.
pub fn stop_or_start(
    cfg: &Config,
    stop: bool,
    peer: Option<&str>,
    runtime: Option<&str>,
    all: bool,
    json: bool,
) -> anyhow::Result<i32> {
    let lc = lifecycle(cfg)?;
    let mut rows = Vec::new();
    for p in targets(&lc, peer, all)? {
        let outcome = if stop {
            block_on(lc.stop(&p, runtime))?
        } else {
            lc.start(&p, runtime)
        };
        rows.extend(outcome.map_err(anyhow::Error::msg)?);
    }
    print_outcomes(&rows, json)
}

pub fn mark_new(
    cfg: &Config,
    peer: &str,
    runtime: Option<&str>,
    json: bool,
) -> anyhow::Result<i32> {
    let lc = lifecycle(cfg)?;
    let row = lc.mark_new(peer, runtime).map_err(anyhow::Error::msg)?;
    print_outcomes(&[row], json)
}

pub fn new(cfg: &Config, peer: &str, runtime: Option<&str>, json: bool) -> anyhow::Result<i32> {
    let lc = lifecycle(cfg)?;
    let (row, wake) = block_on(lc.new_session(peer, runtime))?.map_err(anyhow::Error::msg)?;
    if json {
        print_json(&json!({ "outcome": row, "wake": wake }))?;
        return Ok(if row.ok() { 0 } else { 1 });
    }
    if !row.ok() {
        bail!(
            "new: {} ({}): {} — {}",
            row.personality,
            row.runtime,
            row.action,
            row.reason.unwrap_or_default()
        );
    }
    println!("new: {}-{} fresh session up", row.runtime, row.personality);
    Ok(0)
}

pub fn attach(
    cfg: &Config,
    peer: &str,
    runtime: Option<&str>,
    print: bool,
    json: bool,
) -> anyhow::Result<i32> {
    let lc = lifecycle(cfg)?;
    let target =
        block_on(lc.attach_target(peer, runtime))?.map_err(|e| anyhow::anyhow!("{peer}: {e}"))?;
    if json {
        print_json(&target)?;
        return Ok(0);
    }
    if print {
        println!(
            "socket={} identity={} woke={}",
            target.socket.display(),
            target.identity,
            target.woke
        );
        return Ok(0);
    }
    // Attach only to a live socket this user owns.
    if crate::tmux::probe(&target.socket) != crate::tmux::Liveness::Alive {
        bail!("{peer}: {} is not live", target.identity);
    }
    eprintln!(
        "{}attaching {}…",
        if target.woke { "woke + " } else { "" },
        target.identity
    );
    crate::events::log(
        cfg,
        "attach",
        &[
            ("identity", &target.identity),
            ("woke", &target.woke.to_string()),
        ],
    );
    let err = lc
        .tmux
        .attach_command(&target.socket, &target.identity)
        .exec();
    Err(anyhow::anyhow!("cannot run tmux attach: {err}"))
}

pub fn launch(cfg: &Config, runtime: Option<&str>, json: bool) -> anyhow::Result<i32> {
    let cwd = std::env::current_dir().context("cannot read the current directory")?;
    let lc = lifecycle(cfg)?;
    let r = block_on(lc.folder_launch(&cwd, runtime))?.map_err(anyhow::Error::msg)?;
    if json {
        print_json(&r)?;
        return Ok(if r.is_ready() { 0 } else { 1 });
    }
    if !r.is_ready() {
        bail!("launch: {}", r.reason.unwrap_or_default());
    }
    let id = r.process_address.clone().unwrap_or_default();
    let how = if r.woke { "fresh" } else { "already live" };
    if std::io::stdout().is_terminal() {
        eprintln!("launched {id} ({how}) — attaching…");
        let sock = lc.cfg.sock_dir.join(format!("tmux-iap-{id}.sock"));
        let err = lc.tmux.attach_command(&sock, &id).exec();
        bail!("cannot run tmux attach: {err}");
    }
    println!("launched {id} ({how})");
    Ok(0)
}

pub fn list(cfg: &Config, json: bool) -> anyhow::Result<i32> {
    let lc = lifecycle(cfg)?;
    let fleet = block_on(lc.fleet())?.map_err(anyhow::Error::msg)?;
    if json {
        print_json(&json!({ "peers": fleet }))?;
        return Ok(0);
    }
    if fleet.is_empty() {
        println!("no peers registered");
        return Ok(0);
    }
    let mut rows = vec![
        ["PEER", "DEFAULT", "INTELLIGENCE", "RUNTIMES", "LAST-ACTIVE"]
            .map(String::from)
            .to_vec(),
    ];
    for p in &fleet {
        let runtimes: Vec<String> = p
            .runtimes
            .iter()
            .map(|r| {
                let glyph = match r.status {
                    "live" => '●',
                    "stopped" => '✕',
                    "unknown" => '?',
                    _ => '○',
                };
                format!("{glyph} {}", r.runtime)
            })
            .collect();
        let mut name = p.personality.clone();
        if p.launchd_managed {
            name.push_str(" (launchd)");
        }
        rows.push(vec![
            name,
            p.default_runtime.clone(),
            p.intelligence.clone(),
            runtimes.join("  "),
            p.last_active_runtime.clone().unwrap_or_else(|| "-".into()),
        ]);
    }
    print!("{}", table::render(&rows));
    Ok(0)
}

pub fn supervise_once(cfg: &Config, json: bool) -> anyhow::Result<i32> {
    let lc = lifecycle(cfg)?;
    let (outcomes, relaunches) = block_on(async {
        let outcomes = lc.supervise_tick().await;
        let relaunches = lc.process_eager_relaunches(&outcomes).await;
        (outcomes, relaunches)
    })?;
    if json {
        print_json(&json!({ "outcomes": outcomes, "relaunches": relaunches }))?;
        return Ok(0);
    }
    if outcomes.is_empty() {
        println!("no sessions recorded");
    }
    let rows: Vec<Vec<String>> = outcomes
        .iter()
        .map(|o| {
            vec![
                o.identity.clone(),
                supervise_action_name(o.action).to_string(),
                o.reason.clone().unwrap_or_default(),
            ]
        })
        .collect();
    print!("{}", table::render(&rows));
    for r in &relaunches {
        match r.status {
            crate::lifecycle::Status::Ready => println!(
                "relaunched {} fresh",
                r.process_address.as_deref().unwrap_or("?")
            ),
            crate::lifecycle::Status::Failed => println!(
                "relaunch of {} failed: {}",
                r.runtime.as_deref().unwrap_or("?"),
                r.reason.as_deref().unwrap_or("")
            ),
        }
    }
    Ok(0)
}

pub struct RegisterArgs {
    pub peer: String,
    pub cwd: PathBuf,
    pub runtime: String,
    pub runtimes: Vec<String>,
    pub intelligence: Option<String>,
    pub description: Option<String>,
}

pub fn register(cfg: &Config, a: RegisterArgs, json: bool) -> anyhow::Result<i32> {
    let personality = Personality::new(&a.peer)?;
    let runtime = Runtime::new(&a.runtime)?;
    let runtimes = a
        .runtimes
        .iter()
        .filter(|r| !r.is_empty())
        .map(|r| Runtime::new(r.as_str()))
        .collect::<Result<Vec<_>, _>>()?;
    let cwd = std::fs::canonicalize(&a.cwd)
        .with_context(|| format!("peer cwd {} does not exist", a.cwd.display()))?;
    if !cwd.is_dir() {
        bail!("peer cwd {} is not a directory", cwd.display());
    }
    let record = registry::upsert_peer(
        &cfg.root,
        &cfg.registry_path(),
        &Registration {
            personality,
            runtime,
            runtimes,
            cwd,
            intelligence: a.intelligence,
            description: a.description,
        },
    )?;
    if json {
        print_json(&json!({
            "personality": record.personality,
            "default_runtime": record.default_runtime,
            "runtimes": record.runtimes,
            "intelligence": record.intelligence,
            "cwd": record.cwd,
        }))?;
    } else {
        let rts: Vec<&str> = record.runtimes.iter().map(|r| r.as_str()).collect();
        println!(
            "registered {} ({}) at {}",
            record.personality,
            rts.join(", "),
            record.cwd.display()
        );
    }
    Ok(0)
}
