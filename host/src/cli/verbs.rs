//! The lifecycle verbs of `iapeer`: each one calls the same library
//! function the fleet API calls, then prints the typed result (a human line
//! or `--json`). They act directly on state and tmux, so they work while
//! the daemon is down; the cross-process wake lock keeps them safe beside it.

use std::io::{IsTerminal, Read};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde_json::json;

use super::table;
pub use crate::app::{ExitQuietly, block_on, lifecycle};
use crate::config::Config;
use crate::lifecycle::{
    Lifecycle, LifecycleError, Peers, RuntimeState, VerbOutcome, WakeArgs, WakeReport,
};
use crate::names::{Identity, Personality, Runtime};
use crate::registry::{self, Registration};
use crate::route::{self, Door, SendOutcome, SendRequest};

pub(crate) fn print_json(v: &impl serde::Serialize) -> anyhow::Result<()> {
    Ok(crate::term::out_json(v)?)
}

/// The most bytes a message can take (16 000 characters of up to four
/// UTF-8 bytes each): a message file is never read further than this.
const MAX_MESSAGE_BYTES: u64 = crate::envelope::MAX_MESSAGE_CHARS as u64 * 4;

/// `--message TEXT` or `--message-file F` (`-` = stdin), at most the
/// envelope's limit: `/dev/zero` or an endless stdin is cut off after
/// [`MAX_MESSAGE_BYTES`] + 1 bytes with a one-line error.
pub fn read_message(text: Option<&str>, file: Option<&Path>) -> anyhow::Result<Option<String>> {
    let capped = |reader: &mut dyn Read, what: &str| -> anyhow::Result<String> {
        let mut bytes = Vec::new();
        reader
            .take(MAX_MESSAGE_BYTES + 1)
            .read_to_end(&mut bytes)
            .with_context(|| format!("cannot read the message from {what}"))?;
        if bytes.len() as u64 > MAX_MESSAGE_BYTES {
            bail!(
                "the message in {what} is longer than {} characters (the envelope's limit)",
                crate::envelope::MAX_MESSAGE_CHARS
            );
        }
        String::from_utf8(bytes).map_err(|_| anyhow::anyhow!("the message in {what} is not UTF-8"))
    };
    let message = match (text, file) {
        (Some(t), _) => t.to_string(),
        (None, Some(f)) if f == Path::new("-") => capped(&mut std::io::stdin().lock(), "stdin")?,
        (None, Some(f)) => {
            let what = f.display().to_string();
            let mut file = std::fs::File::open(f)
                .with_context(|| format!("cannot read the message file {what}"))?;
            capped(&mut file, &what)?
        }
        (None, None) => return Ok(None),
    };
    // Given, it must say something: an empty or blank message is refused,
    // not turned into a plain wake.
    crate::envelope::check_body(&message).map_err(anyhow::Error::msg)?;
    Ok(Some(message))
}

/// A lifecycle failure as one line naming the peer (and runtime) and the cause.
fn failure(peer: &str, e: &LifecycleError) -> anyhow::Error {
    match e.runtime() {
        Some(rt) => anyhow::anyhow!("{peer} ({rt}): {e}"),
        None => anyhow::anyhow!("{peer}: {e}"),
    }
}

pub fn wake(cfg: &Config, args: WakeArgs, json: bool) -> anyhow::Result<i32> {
    let lc = lifecycle(cfg)?;
    let outcome = block_on(crate::delivery::wake_with_task(&lc, &args))?;
    if json {
        print_json(&WakeReport::new(&outcome))?;
        return if outcome.is_ok() {
            Ok(0)
        } else {
            Err(ExitQuietly.into())
        };
    }
    let w = outcome.map_err(|e| {
        let line = failure(&args.personality, &e);
        if args.task.trim().is_empty() {
            line
        } else {
            // Every failure says what became of the message (as a send does).
            anyhow::anyhow!("{line}{}", e.undelivered_note())
        }
    })?;
    match (w.spawned, w.task_delivered) {
        (Some(mode), _) => crate::outln!("woke {} ({})", w.identity, <&str>::from(mode)),
        (None, Some(true)) => crate::outln!("{} is live; message delivered", w.identity),
        _ => crate::outln!("{} is live", w.identity),
    }
    Ok(0)
}

/// Everything `iapeer send` takes besides the config.
pub struct SendArgs {
    pub from: Option<String>,
    pub request: SendRequest,
}

/// `iapeer send`: the same routing as MCP `send_to_peer`, in-process.
pub fn send(cfg: &Config, args: SendArgs, json: bool) -> anyhow::Result<i32> {
    let lc = lifecycle(cfg)?;
    let caller = sender(&lc, args.from.as_deref())?;
    let mut result = block_on(route::send(&lc, &caller, &args.request, Door::Cli))?;
    let target = &args.request.personality;
    // A peer not registered here may be another host's: this host's
    // daemon knows the fleet and routes it.
    if matches!(&result, Err(e) if e.is_unknown_target())
        && let Some(through) = send_through_daemon(cfg, &caller, &args.request)
    {
        result = through;
    }
    match (result, json) {
        (Ok(outcome), true) => print_json(&outcome).map(|()| 0),
        (Ok(SendOutcome::Delivered(sent)), false) => {
            let to = &sent.delivered_to;
            if sent.woke {
                crate::outln!(
                    "woke {} ({}) and delivered the message",
                    to.personality,
                    to.runtime
                );
            } else {
                crate::outln!("delivered to {} ({})", to.personality, to.runtime);
            }
            Ok(0)
        }
        (Ok(SendOutcome::Queued(q)), false) => {
            crate::outln!(
                "queued for {} (id {}, {} waiting): {}",
                q.to,
                q.id,
                q.queue_depth,
                q.reason
            );
            Ok(0)
        }
        (Err(e), true) => {
            print_json(&json!({ "ok": false, "error": e.to_string() }))?;
            Err(ExitQuietly.into())
        }
        (Err(e), false) => bail!("{target}: {e}"),
    }
}

/// A send handed to this host's daemon (which knows the fleet), when one
/// answers; `None` when none does. Its answer read back as a send's.
fn send_through_daemon(
    cfg: &Config,
    caller: &Identity,
    req: &route::SendRequest,
) -> Option<Result<SendOutcome, route::SendError>> {
    let sock = crate::discovery::read(cfg)
        .and_then(|d| d.sock)
        .unwrap_or_else(|| cfg.daemon_socket.clone());
    let mut body = serde_json::to_value(req).ok()?;
    body["from"] = caller.as_str().into();
    let wait = std::time::Duration::from_secs(u64::from(
        req.wait_secs
            .unwrap_or(route::DEFAULT_WAIT_SECS)
            .min(route::MAX_WAIT_SECS),
    )) + std::time::Duration::from_secs(30);
    let answer = block_on(crate::client::post_body(
        &sock,
        "/fleet/v1/send",
        cfg.bearer_token.as_deref(),
        &body,
        wait,
    ))
    .ok()?;
    Some(match answer {
        Ok(v) => serde_json::from_value(v).map_err(|e| route::SendError::Relayed(e.to_string())),
        Err(crate::client::ClientError::Connect(_)) => return None,
        Err(crate::client::ClientError::Status { body, .. }) => Err(route::SendError::Relayed(
            serde_json::from_str::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v["error"].as_str().map(str::to_string))
                .unwrap_or(body),
        )),
        Err(e) => Err(route::SendError::Relayed(e.to_string())),
    })
}

/// Who `iapeer send` speaks as: `--from`, else `$PEER_IDENTITY`, else the
/// peer of the current directory, else the registry's one natural
/// (human-facing) peer.
fn sender(lc: &Lifecycle, from: Option<&str>) -> anyhow::Result<Identity> {
    let explicit = from.map(|f| ("--from", f.to_string())).or_else(|| {
        lc.cfg
            .env
            .get("PEER_IDENTITY")
            .filter(|v| !v.trim().is_empty())
            .map(|v| ("PEER_IDENTITY", v.trim().to_string()))
    });
    if let Some((source, raw)) = explicit {
        return Identity::parse(&raw)
            .with_context(|| format!("{source} must be <runtime>-<personality>"));
    }
    let cwd = std::env::current_dir().context("cannot read the current directory")?;
    match lc.peer_of_folder(&cwd)? {
        Some((p, Some(rt))) => return Ok(Identity::new(&rt, &p)),
        // Never another peer's name in its place.
        Some((p, None)) => bail!(
            "{p}, the peer of this folder, has no runtime to speak as: pass --from <runtime>-{p}"
        ),
        None => {}
    }
    route::natural_sender(&lc.registry()?).ok_or_else(|| {
        anyhow::anyhow!(
            "no sender: pass --from <runtime>-<personality>, set PEER_IDENTITY, or run from a peer folder"
        )
    })
}

fn print_outcomes(rows: &[VerbOutcome], json: bool) -> anyhow::Result<i32> {
    if json {
        print_json(&json!({ "outcomes": rows }))?;
    } else {
        for r in rows {
            match &r.reason {
                Some(reason) => {
                    crate::outln!("{} ({}): {} — {reason}", r.personality, r.runtime, r.action)
                }
                None => crate::outln!("{} ({}): {}", r.personality, r.runtime, r.action),
            }
        }
    }
    Ok(if rows.iter().all(VerbOutcome::ok) {
        0
    } else {
        1
    })
}

fn peers<'a>(
    peer: Option<&'a str>,
    runtime: Option<&'a str>,
    all: bool,
) -> anyhow::Result<Peers<'a>> {
    match (peer, all) {
        (Some(personality), false) => Ok(Peers::One {
            personality,
            runtime,
        }),
        (None, true) => Ok(Peers::All),
        _ => bail!("name a peer or pass --all"),
    }
}

/// Which of the pair.
pub enum Halt {
    Stop,
    Start { reset: bool },
}

/// `stop` (durable halt) or `start` (undo it) for one peer or `--all`.
pub fn stop_or_start(
    cfg: &Config,
    halt: Halt,
    peer: Option<&str>,
    runtime: Option<&str>,
    all: bool,
    json: bool,
) -> anyhow::Result<i32> {
    let lc = lifecycle(cfg)?;
    let targets = peers(peer, runtime, all)?;
    let rows = match halt {
        Halt::Stop => block_on(lc.stop(targets))?,
        Halt::Start { reset } => lc.start(targets, reset),
    };
    let rows = rows.map_err(|e| failure(peer.unwrap_or("--all"), &e))?;
    print_outcomes(&rows, json)
}

/// `interrupt` / `compact`: the adapter's keys into the live session.
pub fn control(
    cfg: &Config,
    peer: &str,
    runtime: Option<&str>,
    command: crate::lifecycle::Control,
    json: bool,
) -> anyhow::Result<i32> {
    let lc = lifecycle(cfg)?;
    let out = block_on(lc.control(peer, runtime, command))?.map_err(|e| failure(peer, &e))?;
    if json {
        print_json(&out)?;
    } else {
        crate::outln!(
            "{} ({}): {} sent",
            out.personality,
            out.runtime,
            <&str>::from(out.command)
        );
    }
    Ok(0)
}

pub fn mark_new(
    cfg: &Config,
    peer: &str,
    runtime: Option<&str>,
    json: bool,
) -> anyhow::Result<i32> {
    let lc = lifecycle(cfg)?;
    let row = lc.mark_new(peer, runtime).map_err(|e| failure(peer, &e))?;
    print_outcomes(&[row], json)
}

/// `iapeer self-done`, run by an ephemeral peer from its own session: its
/// work is done; the supervisor reaps it once quiet.
pub fn self_done(cfg: &Config) -> anyhow::Result<i32> {
    let lc = lifecycle(cfg)?;
    let raw = lc
        .cfg
        .env
        .get("PEER_IDENTITY")
        .map(|v| v.trim().to_string());
    let id = raw
        .as_deref()
        .filter(|v| !v.is_empty())
        .ok_or_else(|| {
            anyhow::anyhow!("self-done: PEER_IDENTITY is not set (run it from a peer's session)")
        })
        .and_then(|v| {
            Identity::parse(v)
                .with_context(|| "self-done: PEER_IDENTITY must be <runtime>-<personality>")
        })?;
    let peer = lc
        .registered_peer(id.personality().as_str())
        .map_err(|e| failure(id.personality().as_str(), &e))?;
    crate::store::set_mark(
        &lc.cfg,
        &id,
        crate::store::Mark::EphemeralArmed,
        lc.clock.now_ms(),
    )
    .context("self-done: cannot set the mark")?;
    if lc.is_ephemeral(&peer) {
        crate::outln!("{id}: done; its session is reaped once quiet");
    } else {
        crate::errln!(
            "self-done: {id} is not ephemeral (its profile has no wake_policy: ephemeral); nothing will reap it early"
        );
    }
    Ok(0)
}

pub fn new(cfg: &Config, peer: &str, runtime: Option<&str>, json: bool) -> anyhow::Result<i32> {
    let lc = lifecycle(cfg)?;
    let out = block_on(lc.new_session(peer, runtime))?.map_err(|e| failure(peer, &e))?;
    if json {
        print_json(&out)?;
        return Ok(if out.outcome.ok() { 0 } else { 1 });
    }
    let row = out.outcome;
    if !row.ok() {
        bail!(
            "new: {} ({}): {} — {}",
            row.personality,
            row.runtime,
            row.action,
            row.reason.unwrap_or_default()
        );
    }
    crate::outln!("new: {}-{} fresh session up", row.runtime, row.personality);
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
    let target = block_on(lc.attach_target(peer, runtime))?.map_err(|e| failure(peer, &e))?;
    if json {
        print_json(&target)?;
        return Ok(0);
    }
    if print {
        crate::outln!(
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
    crate::errln!(
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
    // On a terminal the operator attaches next: a stuck boot is theirs.
    let attaching = std::io::stdout().is_terminal() && !json;
    let outcome = block_on(lc.folder_launch(&cwd, runtime, attaching))?;
    if json {
        print_json(&WakeReport::new(&outcome))?;
        return Ok(if outcome.is_ok() { 0 } else { 1 });
    }
    let w = outcome.map_err(|e| anyhow::anyhow!("launch: {e}"))?;
    let how = if w.woke() { "fresh" } else { "already live" };
    if std::io::stdout().is_terminal() {
        crate::errln!("launched {} ({how}) — attaching…", w.identity);
        let err = lc
            .tmux
            .attach_command(&lc.socket(&w.identity), w.identity.as_str())
            .exec();
        bail!("cannot run tmux attach: {err}");
    }
    crate::outln!("launched {} ({how})", w.identity);
    Ok(0)
}

pub fn list(cfg: &Config, json: bool) -> anyhow::Result<i32> {
    let lc = lifecycle(cfg)?;
    let fleet = block_on(lc.fleet())??;
    if json {
        print_json(&json!({ "peers": fleet }))?;
        return Ok(0);
    }
    if fleet.is_empty() {
        crate::outln!("no peers registered");
        return Ok(0);
    }
    let mut rows = vec![
        [
            "PEER",
            "DEFAULT",
            "INTELLIGENCE",
            "RUNTIMES",
            "LAST-ACTIVE",
            "LAST-EXIT",
        ]
        .map(String::from)
        .to_vec(),
    ];
    for p in &fleet {
        let runtimes: Vec<String> = p
            .runtimes
            .iter()
            .map(|r| {
                let glyph = match r.status {
                    RuntimeState::Live => '●',
                    RuntimeState::Stopped => '✕',
                    RuntimeState::Unknown => '?',
                    RuntimeState::Asleep => '○',
                };
                format!("{glyph} {}", r.runtime)
            })
            .collect();
        let mut name = p.personality.clone();
        if let Some(owner) = p.managed_by {
            name.push_str(&format!(" ({owner})"));
        }
        // The newest exit across the peer's runtimes.
        let last_exit = p
            .runtimes
            .iter()
            .filter_map(|r| r.last_exit.as_ref().map(|e| (r, e)))
            .max_by_key(|(_, e)| &e.at)
            .map(|(r, e)| format!("{} {} at {}", r.runtime, e.how, e.at))
            .unwrap_or_else(|| "-".into());
        rows.push(vec![
            name,
            p.default_runtime.clone(),
            p.intelligence.clone(),
            runtimes.join("  "),
            p.last_active_runtime.clone().unwrap_or_else(|| "-".into()),
            last_exit,
        ]);
    }
    crate::out!("{}", table::render(&rows));
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
        let relaunches: Vec<WakeReport> = relaunches.iter().map(WakeReport::new).collect();
        print_json(&json!({ "outcomes": outcomes, "relaunches": relaunches }))?;
        return Ok(0);
    }
    if outcomes.is_empty() {
        crate::outln!("no sessions recorded");
    }
    let rows: Vec<Vec<String>> = outcomes
        .iter()
        .map(|o| {
            vec![
                o.identity.clone(),
                o.action.to_string(),
                o.reason.clone().unwrap_or_default(),
            ]
        })
        .collect();
    crate::out!("{}", table::render(&rows));
    for r in &relaunches {
        match r {
            Ok(w) => crate::outln!("relaunched {} fresh", w.identity),
            Err(e) => crate::outln!(
                "relaunch of {} failed: {e}",
                e.runtime().map_or("?", |r| r.as_str())
            ),
        }
    }
    Ok(0)
}

pub struct RegisterArgs {
    pub peer: Personality,
    pub cwd: PathBuf,
    pub runtime: Runtime,
    pub runtimes: Vec<Runtime>,
    pub intelligence: Option<String>,
    pub description: Option<String>,
}

pub fn register(cfg: &Config, a: RegisterArgs, json: bool) -> anyhow::Result<i32> {
    let RegisterArgs {
        peer: personality,
        runtime,
        runtimes,
        ..
    } = a;
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
        crate::outln!(
            "registered {} ({}) at {}",
            record.personality,
            rts.join(", "),
            record.cwd.display()
        );
    }
    Ok(0)
}
