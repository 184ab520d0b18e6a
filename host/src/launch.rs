//! The launch primitive: bring up one session for a fully decided spec.
//! Lifecycle decides when and how (fresh or resume); this module only does:
//! intelligence gate → fresh tmux server → boot loop (the adapter answers
//! startup dialogs and says when input is ready) → first message (bracketed
//! paste) → ready gate (the adapter's activity proxy advances).
//!
//! Polling is adaptive: 20 ms at first, growing to 500 ms, so an instantly
//! ready runtime is READY in tens of milliseconds and a slow one costs little.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::clock::{Clock, SystemClock};
use crate::deaths::Phase;
use crate::fsutil;
use crate::names::Identity;
use crate::paste::{self, InFlight, Taken, activity, pane_tail, tail_suffix};
use crate::plugins::{Adapter, AdapterInfo, AdapterKind, LaunchSpec};
use crate::poll::Poll;
use crate::tmux::{Liveness, Tmux, probe};

const FIRST_POLL: Duration = Duration::from_millis(20);
const MAX_POLL: Duration = Duration::from_millis(500);
/// How long a TUI may take to repaint after dialog keys before the host
/// looks at the same screen again (never past the boot deadline). Long:
/// keys sent twice do harm (a second Down overshoots), and a TUI that
/// takes this long to answer a key is stuck anyway.
const REPAINT_WAIT: Duration = Duration::from_secs(30);
/// How long a dialog's screen must hold still before it gets keys.
const DIALOG_SETTLE: Duration = Duration::from_millis(300);
/// A router that dies within this long of its start failed to start.
const ROUTER_STARTUP_GRACE: Duration = Duration::from_millis(200);

/// Everything one launch needs, decided by the caller.
pub struct LaunchRequest<'a> {
    pub adapter: &'a Adapter,
    pub identity: &'a Identity,
    pub socket: PathBuf,
    pub spec: LaunchSpec,
    /// The parent environment the session inherits.
    pub parent_env: BTreeMap<String, String>,
    /// Extra variables from the peer's `launch.env`.
    pub launch_env: Vec<(String, String)>,
    /// The first message ('' = a bare bring-up).
    pub first_message: String,
    pub boot_deadline: Duration,
    pub ready_gate: Duration,
    /// A screen that is neither a dialog the adapter answers nor input-ready
    /// and stays unchanged this long fails the boot with its text (no boot
    /// deadline wait for a dialog nobody will answer).
    pub stuck_after: Duration,
    /// The session shim that records how the runtime ends (`None`: the
    /// runtime runs bare and its exit is not recorded).
    pub shim: Option<Shim>,
    /// An operator attaches next: after this long, a boot that is not
    /// ready is handed over as it is instead of killed at the deadline.
    pub hand_over_after: Option<Duration>,
    /// The `pipe-pane` command that keeps the session's pane log.
    pub pane_log: Option<String>,
    /// The operator's word from another process, looked at on every poll
    /// of the boot loop.
    pub marks: Option<BootMarks>,
    /// Told each step (`iapeer plugins try` shows them).
    pub observer: Option<LaunchObserver>,
    /// Where the first message's paste is recorded while in flight.
    pub in_flight: InFlight,
}

/// A step of a launch, as an observer sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LaunchStep {
    /// What the adapter asked to run, and the variables it added.
    Command {
        argv: Vec<String>,
        env: Vec<(String, String)>,
    },
    /// The tmux session exists.
    Started,
    /// A pane the boot loop judged (as the adapter received it: plain text,
    /// trailing spaces trimmed) and the adapter's verdict.
    Judged { pane: String, verdict: Verdict },
    /// The first message was pasted, showed in the composer, and Enter
    /// was pressed.
    Pasted,
    /// The first message did not go in this time (nothing was submitted);
    /// the boot loop looks again.
    PasteRefused(String),
    /// The ready gate saw the activity proxy move past its baseline.
    Processed { baseline: u64, now: u64 },
}

/// What the adapter said of a pane during the boot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// `boot-dialog-keys` answered with these keys (sent).
    DialogKeys(Vec<String>),
    /// `is-input-ready`: the composer shows.
    Ready,
    /// Neither: keep waiting.
    NotReady,
    /// `boot-dialog-keys` answered with no keys: a screen the adapter
    /// knows passes by itself (a progress screen); nothing pressed, and the
    /// stuck-screen rule does not apply.
    Waiting,
    /// A dialog the adapter would answer, but it was still changing: its
    /// keys were held back until it holds still.
    Unsettled,
}

pub type LaunchObserver = std::sync::Arc<dyn Fn(&LaunchStep) + Send + Sync>;

impl LaunchRequest<'_> {
    /// Tells the observer, if any; the step (a pane copy, an argv copy)
    /// is only built when someone listens: the boot loop polls often.
    fn note(&self, step: impl FnOnce() -> LaunchStep) {
        if let Some(observer) = &self.observer {
            observer(&step());
        }
    }
}

/// Files whose appearance changes a boot in progress at its next look.
#[derive(Debug, Clone)]
pub struct BootMarks {
    /// `iapeer attach`: hand the boot over as it is.
    pub hand_over: PathBuf,
    /// `iapeer stop`: end it now rather than at the boot deadline.
    pub stopped: PathBuf,
}

impl BootMarks {
    /// Has the operator stopped the peer since the wake began?
    fn stop_asked(&self) -> bool {
        fsutil::regular_file_exists(&self.stopped).unwrap_or(false)
    }
}

/// Where the shim lives and where it writes.
#[derive(Debug, Clone)]
pub struct Shim {
    pub exe: PathBuf,
    pub exit_file: PathBuf,
    pub exits_log: PathBuf,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LaunchOutcome {
    /// Up; `delivered` when a first message was accepted.
    Ready { delivered: bool },
    /// Not ready (yet), left running for the operator who attaches next;
    /// a first message was not delivered.
    HandedOver { pane_tail: String },
    /// Not up. `session_left` when a session is still running (the ready
    /// gate timed out after delivery): the caller keeps it supervised.
    /// `message_pasted` when the first message went in before the failure.
    /// `died` when the runtime was started and then ended (it exited, or
    /// never became ready and was killed), and in which phase: a death for
    /// the crash-loop guard, as opposed to a refusal before anything ran.
    Failed {
        reason: String,
        session_left: bool,
        message_pasted: bool,
        died: Option<Phase>,
    },
}

/// A failure before anything ran.
fn failed(reason: impl Into<String>) -> LaunchOutcome {
    LaunchOutcome::Failed {
        reason: reason.into(),
        session_left: false,
        message_pasted: false,
        died: None,
    }
}

/// The runtime ran and did not come up.
fn died(reason: impl Into<String>) -> LaunchOutcome {
    LaunchOutcome::Failed {
        reason: reason.into(),
        session_left: false,
        message_pasted: false,
        died: Some(Phase::Boot),
    }
}

/// "<program> exited during boot (status 1): <last lines>", or the pane
/// tail the boot loop saw when the shim left no record.
fn death_reason(req: &LaunchRequest<'_>, launched_ms: u64, phase: &str, last_pane: &str) -> String {
    // How the runtime ended, from the shim's record of this launch.
    let exit = req
        .shim
        .as_ref()
        .and_then(|shim| crate::deaths::read_exit_file(&shim.exit_file, launched_ms));
    match exit {
        Some(rec) if rec.tail.is_empty() => format!("{} {} during {phase}", rec.program, rec.how()),
        Some(rec) => format!("{} {} during {phase}: {}", rec.program, rec.how(), rec.tail),
        None => format!(
            "tmux session vanished during {phase}{}",
            tail_suffix(last_pane)
        ),
    }
}

/// The child environment, in this order: the parent's, then
/// `launch.env`, then the adapter's, then the identity variables (so nothing
/// can override them), then PATH (the parent's, else the adapter's
/// `binary-dirs` before the system dirs); finally every variable that would
/// make the runtime think it runs inside another session (the adapter's
/// `env-remove`, and tmux's own) is dropped.
pub fn compose_env(
    parent: &BTreeMap<String, String>,
    launch_env: &[(String, String)],
    adapter_env: &[(String, String)],
    identity: &Identity,
    info: &AdapterInfo,
) -> BTreeMap<String, String> {
    let mut env = parent.clone();
    env.extend(launch_env.iter().cloned());
    env.extend(adapter_env.iter().cloned());
    env.insert(
        "PEER_PERSONALITY".into(),
        identity.personality().to_string(),
    );
    env.insert("PEER_RUNTIME".into(), identity.runtime().to_string());
    env.insert("PEER_IDENTITY".into(), identity.to_string());
    let path = match parent.get("PATH").filter(|p| !p.is_empty()) {
        Some(p) => p.clone(),
        None => {
            let home = parent.get("HOME").cloned().unwrap_or_default();
            let adapter_dirs = info.binary_dirs.iter().map(|d| match d.strip_prefix("~/") {
                Some(rest) => format!("{home}/{rest}"),
                None => d.clone(),
            });
            let system = ["/usr/local/bin", "/usr/bin", "/bin"].map(String::from);
            let mut dirs: Vec<String> = Vec::new();
            for d in adapter_dirs.chain(system) {
                if !dirs.contains(&d) {
                    dirs.push(d);
                }
            }
            dirs.join(":")
        }
    };
    env.insert("PATH".into(), path);
    env.retain(|k, _| !info.removes_env(k) && k != "TMUX" && k != "TMUX_PANE");
    env
}

/// Brings the session up (see the module docs).
pub async fn launch(tmux: &Tmux, req: LaunchRequest<'_>) -> LaunchOutcome {
    let info = req.adapter.info();
    // The intelligence gate (a peer whose nature the runtime does not
    // serve never starts), before any tmux or file work.
    if let Some(required) = &info.requires_intelligence
        && req.spec.intelligence.as_deref() != Some(required.as_str())
    {
        return failed(format!(
            "{} requires intelligence={required} (peer has {})",
            info.runtime,
            req.spec.intelligence.as_deref().unwrap_or("unknown")
        ));
    }
    let cmd = match req.adapter.build_launch(&req.spec).await {
        Ok(c) => c,
        Err(e) => return failed(format!("cannot build the launch command: {e}")),
    };
    req.note(|| LaunchStep::Command {
        argv: cmd.argv.clone(),
        env: cmd.env.clone(),
    });
    let env = compose_env(
        &req.parent_env,
        &req.launch_env,
        &cmd.env,
        req.identity,
        info,
    );
    let sock = req.socket.as_path();
    let id = req.identity.as_str();

    // tmux does not create the socket dir; without it the session dies at once.
    if let Some(dir) = sock.parent()
        && let Err(e) = fsutil::ensure_private_dir(dir)
    {
        return failed(format!(
            "cannot create the socket dir {}: {e}",
            dir.display()
        ));
    }
    // Pre-clean: a stray server on this socket would swallow the new session;
    // a socket that is not provably ours is never touched.
    match probe(sock) {
        Liveness::Dead(crate::tmux::DeathCause::SocketMissing) => {}
        Liveness::Dead(crate::tmux::DeathCause::StaleSocket) => {
            let _ = fsutil::remove_if_exists(sock);
        }
        Liveness::Alive => {
            let _ = tmux.kill_server(sock).await;
            let _ = fsutil::remove_if_exists(sock);
        }
        Liveness::Unknown(why) => {
            return failed(format!("cannot start on {}: {why}", sock.display()));
        }
    }
    let argv = match &req.shim {
        Some(shim) => crate::shim::wrap(
            &shim.exe,
            &shim.exit_file,
            &shim.exits_log,
            tmux.bin(),
            sock,
            id,
            &cmd.argv,
        ),
        None => cmd.argv.clone(),
    };
    let launched_ms = SystemClock.now_ms();
    if let Err(e) = tmux
        .new_session(
            sock,
            id,
            Path::new(&req.spec.cwd),
            &argv,
            &env,
            req.pane_log.as_deref(),
        )
        .await
    {
        return died(e.to_string());
    }
    req.note(|| LaunchStep::Started);

    if info.kind == AdapterKind::Router {
        // No TUI phases; but a router that cannot start (a missing binary,
        // a bad flag) dies within moments: give it those moments.
        let mut poll = Poll::new(ROUTER_STARTUP_GRACE, FIRST_POLL, FIRST_POLL);
        while poll.pause().await {
            if let Liveness::Dead(_) = probe(sock) {
                return died(death_reason(&req, launched_ms, "startup", ""));
            }
        }
        return LaunchOutcome::Ready { delivered: false };
    }
    boot(tmux, &req, sock, launched_ms, &env).await
}

/// The boot loop (dialogs answered, the composer awaited, the first
/// message pasted) and the ready gate of a TUI.
async fn boot(
    tmux: &Tmux,
    req: &LaunchRequest<'_>,
    sock: &Path,
    launched_ms: u64,
    env: &BTreeMap<String, String>,
) -> LaunchOutcome {
    let id = req.identity.as_str();
    let cwd = req.spec.cwd.as_str();
    let message = req.first_message.trim_end_matches(['\n', '\r']);
    let has_message = !message.trim().is_empty();
    let baseline = activity(req.adapter, cwd).await;
    let patience = match req.hand_over_after {
        Some(after) if !has_message => after.min(req.boot_deadline),
        _ => req.boot_deadline,
    };
    let mut poll = Poll::new(patience, FIRST_POLL, MAX_POLL);
    let mut last_pane = String::new();
    // Why the first message did not go in at the last try, if it did not.
    let mut last_refusal: Option<String> = None;
    let mut still = Stillness::default();
    loop {
        if !poll.pause().await {
            if req.hand_over_after.is_some() && !has_message {
                return LaunchOutcome::HandedOver {
                    pane_tail: pane_tail(&last_pane),
                };
            }
            return kill_and_fail(
                tmux,
                sock,
                match &last_refusal {
                    // Ready, but the message never went in: say why.
                    Some(why) => format!("the first message never went in: {why}"),
                    None => format!(
                        "never-became-ready (stuck at a startup prompt or boot hang){}",
                        tail_suffix(&last_pane)
                    ),
                },
            )
            .await;
        }
        if let Liveness::Dead(_) = probe(sock) {
            return died(death_reason(req, launched_ms, "boot", &last_pane));
        }
        if let Some(marks) = &req.marks {
            if marks.stop_asked() {
                let _ = tmux.kill_server(sock).await;
                let _ = fsutil::remove_if_exists(sock);
                return failed("stopped by its operator during boot");
            }
            if fsutil::regular_file_exists(&marks.hand_over).unwrap_or(false) {
                return LaunchOutcome::HandedOver {
                    pane_tail: pane_tail(&last_pane),
                };
            }
        }
        let pane = tmux.capture_pane(sock, id).await.unwrap_or_default();
        if pane.trim().is_empty() {
            continue;
        }
        let words = worded_rows(&pane);
        still.saw(&words);
        last_pane = pane;
        match req.adapter.boot_dialog_keys(&last_pane).await {
            Ok(Some(keys)) if keys.is_empty() => {
                req.note(|| LaunchStep::Judged {
                    pane: last_pane.clone(),
                    verdict: Verdict::Waiting,
                });
                still = Stillness::default();
                continue;
            }
            Ok(Some(keys)) => {
                // Answer only a screen that held still: a TUI may mount a
                // dialog twice (Claude Code's folder trust resets its cursor
                // ~150 ms after the first paint), and keys meant for the
                // first would land in the second (Enter on "No, exit").
                tokio::time::sleep(DIALOG_SETTLE).await;
                let again = tmux.capture_pane(sock, id).await.unwrap_or_default();
                if worded_rows(&again) != words {
                    req.note(|| LaunchStep::Judged {
                        pane: last_pane.clone(),
                        verdict: Verdict::Unsettled,
                    });
                    continue;
                }
                req.note(|| LaunchStep::Judged {
                    pane: last_pane.clone(),
                    verdict: Verdict::DialogKeys(keys.clone()),
                });
                let _ = tmux.send_keys(sock, id, &keys).await;
                // Judge the screen again only once the TUI has answered the
                // keys: a slow repaint must never get the same keys twice
                // (a second Down overshoots "Resume full session").
                let left = poll.remaining();
                wait_for_repaint(tmux, sock, id, &last_pane, left, req.marks.as_ref()).await;
                poll.reset();
                still = Stillness::default();
                continue;
            }
            Ok(None) => {}
            Err(e) => return kill_and_fail(tmux, sock, e.to_string()).await,
        }
        let ready = req.adapter.is_input_ready(&last_pane).await;
        if let Ok(ready) = ready {
            req.note(|| LaunchStep::Judged {
                pane: last_pane.clone(),
                verdict: if ready {
                    Verdict::Ready
                } else {
                    Verdict::NotReady
                },
            });
        }
        match ready {
            Ok(true) if !has_message => return LaunchOutcome::Ready { delivered: false },
            Ok(true) => {
                let taken = Taken { cwd, baseline };
                let to = paste::Composer {
                    tmux,
                    sock,
                    id,
                    adapter: req.adapter,
                    in_flight: &req.in_flight,
                };
                // The pane just judged ready: no second look before the paste.
                match paste::deliver(&to, message, &taken, Some(last_pane.clone())).await {
                    Ok(()) => {
                        req.note(|| LaunchStep::Pasted);
                        break;
                    }
                    Err(refused) => {
                        let why = refused.to_string();
                        req.note(|| LaunchStep::PasteRefused(why.clone()));
                        last_refusal = Some(why);
                    }
                }
            }
            Ok(false) if still.for_at_least(req.stuck_after) => {
                if req.hand_over_after.is_some() && !has_message {
                    return LaunchOutcome::HandedOver {
                        pane_tail: pane_tail(&last_pane),
                    };
                }
                let version = crate::runtime_version::of(&req.spec.binary, env).await;
                return kill_and_fail(tmux, sock, stuck_reason(req, &last_pane, version)).await;
            }
            Ok(false) => {}
            Err(e) => return kill_and_fail(tmux, sock, e.to_string()).await,
        }
    }

    // The ready gate: the model has processed the message once its
    // transcript moves past the pre-delivery baseline.
    let mut poll = Poll::new(req.ready_gate, FIRST_POLL, MAX_POLL);
    loop {
        let now = activity(req.adapter, cwd).await;
        if now > baseline {
            req.in_flight.settle();
            req.note(|| LaunchStep::Processed { baseline, now });
            return LaunchOutcome::Ready { delivered: true };
        }
        if let Liveness::Dead(_) = probe(sock) {
            req.in_flight.settle();
            return LaunchOutcome::Failed {
                reason: death_reason(req, launched_ms, "ready-gate", ""),
                session_left: false,
                message_pasted: true,
                died: Some(Phase::Running),
            };
        }
        if req.marks.as_ref().is_some_and(BootMarks::stop_asked) {
            let _ = tmux.kill_server(sock).await;
            let _ = fsutil::remove_if_exists(sock);
            return LaunchOutcome::Failed {
                reason: "stopped by its operator before the message was seen processed".into(),
                session_left: false,
                message_pasted: true,
                died: None,
            };
        }
        if !poll.pause().await {
            return LaunchOutcome::Failed {
                reason: format!(
                    "model-did-not-process-task (no activity advance after delivery in {}s: {})",
                    req.ready_gate.as_secs(),
                    watched(req.adapter.info(), &req.spec.home, cwd, baseline)
                ),
                session_left: true,
                message_pasted: true,
                died: None,
            };
        }
    }
}

/// What the adapter's activity proxy reads and what it saw, for a ready
/// gate that timed out: each declared place and whether it exists, and
/// the newest time it reported (a misnamed file shows up as missing).
fn watched(info: &AdapterInfo, home: &str, cwd: &str, newest: u64) -> String {
    let places: Vec<String> = info
        .read_dirs
        .iter()
        .map(|d| (format!("~/{d}"), Path::new(home).join(d)))
        .chain(
            info.cwd_read_paths
                .iter()
                .map(|p| (format!("<cwd>/{p}"), Path::new(cwd).join(p))),
        )
        .map(|(shown, path)| match path.exists() {
            true => shown,
            false => format!("{shown} (missing)"),
        })
        .collect();
    let what = match places.len() {
        0 => format!("the {} adapter declares nothing it reads", info.runtime),
        _ => format!("the {} adapter watches {}", info.runtime, places.join(", ")),
    };
    let seen = match newest {
        0 => "and found no activity there".to_string(),
        ms => format!(
            "and its newest activity stayed at {}",
            crate::clock::iso8601_utc(ms)
        ),
    };
    format!("{what}, {seen}")
}

/// Waits (at most `REPAINT_WAIT`, at most `left`) until the pane differs
/// from `judged`, or the operator stops the peer.
async fn wait_for_repaint(
    tmux: &Tmux,
    sock: &Path,
    id: &str,
    judged: &str,
    left: Duration,
    marks: Option<&BootMarks>,
) {
    let mut poll = Poll::new(
        REPAINT_WAIT.min(left),
        FIRST_POLL,
        Duration::from_millis(200),
    );
    while poll.pause().await {
        if marks.is_some_and(BootMarks::stop_asked) {
            return;
        }
        match tmux.capture_pane(sock, id).await {
            Ok(now) if now != judged => return,
            Ok(_) => {}
            // Gone or unreadable: the boot loop finds out why.
            Err(_) => return,
        }
    }
}

/// A session that never became usable is not left behind: the next wake
/// would otherwise take it for a live peer.
/// How long the boot loop has seen the same screen.
#[derive(Default)]
struct Stillness {
    rows: Vec<String>,
    since: Option<std::time::Instant>,
}

impl Stillness {
    fn saw(&mut self, rows: &[String]) {
        if self.since.is_none() || self.rows != rows {
            self.rows = rows.to_vec();
            self.since = Some(std::time::Instant::now());
        }
    }

    fn for_at_least(&self, d: Duration) -> bool {
        self.since.is_some_and(|t| t.elapsed() >= d)
    }
}

/// Why a boot stuck at a screen the adapter does not know failed: the
/// screen's words and the runtime's own version, for the operator to
/// compare with the versions the adapter was verified with.
fn stuck_reason(req: &LaunchRequest<'_>, pane: &str, version: Option<String>) -> String {
    let info = req.adapter.info();
    let release = info.version.split('+').next().unwrap_or_default();
    let verified = crate::runtime_version::verified_with(&info.version)
        .map(|v| format!(", adapter {release} verified with {v}"))
        .unwrap_or_else(|| format!(", adapter {release}"));
    format!(
        "never-became-ready: stuck at a screen the {} adapter does not know (unchanged for {}s; runtime {}{verified}): {}",
        info.runtime,
        req.stuck_after.as_secs(),
        version.as_deref().unwrap_or("version unknown"),
        screen_text(pane)
    )
}

/// The rows of a screen that carry words, spaces collapsed: what must
/// stay the same for a screen to count as unchanged (a logo animated in
/// block or braille characters is not a change; a spinner beside words is).
fn worded_rows(pane: &str) -> Vec<String> {
    pane.lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|l| l.chars().any(char::is_alphanumeric))
        .collect()
}

/// A screen's words on one line: its last worded rows joined with ` ⏎ `,
/// at most 480 characters.
fn screen_text(pane: &str) -> String {
    let rows = worded_rows(pane);
    let text = rows[rows.len().saturating_sub(10)..]
        .join(" ⏎ ")
        .replace('"', "'");
    text.chars().take(480).collect()
}

async fn kill_and_fail(tmux: &Tmux, sock: &Path, reason: String) -> LaunchOutcome {
    let _ = tmux.kill_server(sock).await;
    let _ = fsutil::remove_if_exists(sock);
    died(reason)
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::plugins::legacy_claude_info as legacy;

    /// A 0.2 adapter decides what is removed and where its binary lives.
    #[test]
    fn env_rules_come_from_the_adapter() {
        let id = Identity::parse("aider-bob").unwrap();
        let mut info = legacy();
        info.env_remove = vec!["AIDER_PARENT_*".into()];
        info.binary_dirs = vec!["~/.aider/bin".into(), "/usr/bin".into()];
        let parent: BTreeMap<String, String> = [
            ("HOME", "/h"),
            ("CLAUDE_CODE_ENTRYPOINT", "cli"),
            ("AIDER_PARENT_PID", "1"),
            ("TMUX_PANE", "%1"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let env = compose_env(&parent, &[], &[], &id, &info);
        assert_eq!(
            env["CLAUDE_CODE_ENTRYPOINT"], "cli",
            "not this runtime's marker"
        );
        assert!(!env.contains_key("AIDER_PARENT_PID"));
        assert!(!env.contains_key("TMUX_PANE"), "tmux's own always go");
        assert_eq!(env["PATH"], "/h/.aider/bin:/usr/bin:/usr/local/bin:/bin");
        // Paste placeholders are the adapter's too.
        info.delivery.paste_placeholders = vec!["[paste".into()];
        assert!(crate::paste::paste_shown(
            "a\n> ",
            "a\n> [paste 1]",
            "zzz",
            &info.delivery
        ));
        assert!(!crate::paste::paste_shown(
            "a\n> ",
            "a\n> [Pasted text #1]",
            "zzz",
            &info.delivery
        ));
    }

    #[test]
    fn pane_tail_is_one_clipped_line() {
        assert_eq!(pane_tail(""), "");
        assert_eq!(pane_tail("a\n\n  b   c \n\n d \"q\"\n\n"), "b c ⏎ d 'q'");
        assert_eq!(pane_tail(&"x".repeat(500)).chars().count(), 160);
    }

    #[test]
    fn env_composition() {
        let id = Identity::parse("claude-bob").unwrap();
        let parent: BTreeMap<String, String> = [
            ("HOME", "/h"),
            ("CLAUDECODE", "1"),
            ("CLAUDE_CODE_ENTRYPOINT", "cli"),
            ("TMUX", "/tmp/x,1,0"),
            ("PEER_IDENTITY", "spoofed"),
            ("KEEP", "yes"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let pairs = |v: &[(&str, &str)]| -> Vec<(String, String)> {
            v.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let launch_env = pairs(&[("FOO", "bar"), ("PATH", "/evil"), ("PEER_RUNTIME", "x")]);
        let adapter_env = pairs(&[("A", "b"), ("KEEP", "adapter")]);
        let env = compose_env(&parent, &launch_env, &adapter_env, &id, &legacy());
        assert_eq!(env["PEER_IDENTITY"], "claude-bob");
        assert_eq!(env["PEER_RUNTIME"], "claude");
        assert_eq!(env["PEER_PERSONALITY"], "bob");
        assert_eq!(env["FOO"], "bar");
        assert_eq!(env["A"], "b");
        assert_eq!(env["KEEP"], "adapter");
        assert!(
            env["PATH"].starts_with("/h/.bun/bin:"),
            "PATH is the parent's or the fallback"
        );
        assert!(!env.contains_key("CLAUDECODE"));
        assert!(!env.contains_key("CLAUDE_CODE_ENTRYPOINT"));
        assert!(!env.contains_key("TMUX"));
        let mut parent = parent;
        parent.insert("PATH".into(), "/usr/bin".into());
        assert_eq!(
            compose_env(&parent, &launch_env, &[], &id, &legacy())["PATH"],
            "/usr/bin"
        );
    }
}
