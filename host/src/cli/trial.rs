//! One wake in a throwaway root, each step printed with its time and the
//! pane text the adapter judged: what `plugins try` and `doctor` share.
//! The peer's folder and the operator's home are used as they are (the
//! runtime writes its transcripts there); the registry, sockets, logs and
//! marks live in a temporary root that goes when the trial ends.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::signal::unix::{Signal, SignalKind, signal};

use super::verbs::block_on;
use crate::clock::SystemClock;
use crate::config::Config;
use crate::launch::{LaunchStep, Verdict};
use crate::lifecycle::{Lifecycle, WakeArgs};
use crate::names::{Identity, Personality, Runtime};
use crate::plugins::PluginHost;
use crate::registry::{self, Registration};

/// Pane lines shown per judged screen (the bottom ones).
const PANE_LINES: usize = 8;

/// A throwaway root and the configuration pointing into it.
pub struct Trial {
    pub cfg: Config,
    /// Ctrl-C, SIGTERM and SIGHUP, caught from the start: a trial killed
    /// any way but SIGKILL ends its session instead of leaving a runtime
    /// running where nothing will ever stop it.
    interrupts: Arc<Mutex<Interrupts>>,
    interrupted: Arc<AtomicBool>,
    /// Set once [`Trial::exit_on_interrupt`]'s cleanup has run.
    cleaned_up: Arc<AtomicBool>,
    /// Where each screen judged is written (`NN-<verdict>.txt`), if anywhere.
    pub save_panes: Option<PathBuf>,
    /// The personality of the peer woken (`try`, `doctor`).
    peer: &'static str,
    scratch: tempfile::TempDir,
}

/// How a trial wake ended.
pub enum Ending {
    Ready,
    Failed,
    Interrupted,
}

impl Ending {
    pub fn exit_code(&self) -> i32 {
        match self {
            Ending::Ready => 0,
            Ending::Failed => 1,
            Ending::Interrupted => 130,
        }
    }
}

impl Trial {
    /// `cfg` with its state moved under a new temporary directory and both
    /// waits (boot, ready gate) cut to `timeout`; the peer woken is `peer`.
    pub fn new(cfg: &Config, peer: &'static str, timeout: Duration) -> anyhow::Result<Trial> {
        let interrupts = block_on(async { Interrupts::new() })??;
        let scratch = tempfile::Builder::new()
            .prefix(&format!("iapeer-{peer}-"))
            .tempdir()
            .context("cannot make the throwaway root")?;
        let root = scratch.path();
        let mut c = cfg.clone();
        c.root = root.to_path_buf();
        c.sock_dir = root.join("s");
        c.state_dir = root.join("state/lifecycle");
        c.log_dir = root.join("logs/iapeer");
        c.daemon_socket = root.join("state/iapeer/router.sock");
        c.boot_deadline = timeout;
        c.ready_gate = timeout;
        // A real peer named like the trial's, owned by launchd or systemd,
        // is none of the trial's business.
        c.launch_agents_dir = root.join("launchagents");
        c.systemd_user_dir = root.join("systemd");

        Ok(Trial {
            cfg: c,
            interrupts: Arc::new(Mutex::new(interrupts)),
            interrupted: Arc::default(),
            cleaned_up: Arc::default(),
            save_panes: None,
            peer,
            scratch,
        })
    }

    /// For a trial that does not go through [`Trial::wake`] (the demo): the
    /// first interrupt marks the trial interrupted and runs `cleanup` (which
    /// ends what the trial was waiting on); if the trial has not returned
    /// within 2 s of the cleanup, this removes the throwaway root and exits
    /// 130 itself.
    pub fn exit_on_interrupt(&self, cleanup: impl FnOnce() + Send + 'static) {
        let interrupts = self.interrupts.clone();
        let interrupted = self.interrupted.clone();
        let cleaned_up = self.cleaned_up.clone();
        let root = self.scratch.path().to_path_buf();
        std::thread::spawn(move || {
            let mut interrupts = interrupts.lock().unwrap_or_else(PoisonError::into_inner);
            if block_on(interrupts.any()).is_ok() {
                interrupted.store(true, Ordering::SeqCst);
                cleanup();
                cleaned_up.store(true, Ordering::SeqCst);
                std::thread::sleep(Duration::from_secs(2));
                let _ = std::fs::remove_dir_all(&root);
                crate::panel::restore_terminal();
                std::process::exit(Ending::Interrupted.exit_code());
            }
        });
    }

    /// Leaves the throwaway root in place when the trial ends.
    pub fn keep(&mut self) {
        self.scratch.disable_cleanup(true);
    }

    /// Whether an interrupt came (see [`Trial::exit_on_interrupt`]). When
    /// one did, this first waits for its cleanup: the trial returning
    /// early (its wake failed as the sessions went) must not end the
    /// process while the cleanup still runs.
    pub fn interrupted(&self) -> bool {
        if !self.interrupted.load(Ordering::SeqCst) {
            return false;
        }
        let until = Instant::now() + Duration::from_secs(10);
        while !self.cleaned_up.load(Ordering::SeqCst) && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(20));
        }
        true
    }

    /// A directory inside the throwaway root (made on first use).
    pub fn dir(&self, name: &str) -> anyhow::Result<PathBuf> {
        let d = self.scratch.path().join(name);
        std::fs::create_dir_all(&d).with_context(|| format!("cannot make {}", d.display()))?;
        Ok(d)
    }

    /// Wakes a fresh `runtime` session in `cwd` with `plugins`, printing
    /// every step, then ends it. With `message` the ready gate waits for
    /// it to be processed; without one nothing at all is typed (not even
    /// the folder's profile seed).
    pub fn wake(
        &self,
        plugins: PluginHost,
        runtime: &Runtime,
        cwd: &Path,
        message: Option<String>,
    ) -> anyhow::Result<Ending> {
        let personality = Personality::new(self.peer).expect("a valid name");
        registry::upsert_peer(
            &self.cfg.root,
            &self.cfg.registry_path(),
            &Registration {
                personality: personality.clone(),
                runtime: runtime.clone(),
                runtimes: Vec::new(),
                cwd: cwd.to_path_buf(),
                intelligence: None,
                description: None,
            },
        )?;
        let started = Instant::now();
        if let Some(dir) = &self.save_panes {
            clear_saved_panes(dir)?;
        }
        let printer = Printer::new(started, self.save_panes.clone());
        let session_started = printer.session_started.clone();
        let lc = Lifecycle::new(self.cfg.clone(), Arc::new(plugins), Arc::new(SystemClock))
            .with_shim(crate::shim::current())
            .with_launch_observer(Arc::new(move |step| printer.show(step)));
        let args = WakeArgs {
            topic: None,
            personality: self.peer.into(),
            runtime: Some(runtime.to_string()),
            skip_seed: message.is_none(),
            task: message.unwrap_or_default(),
            resume: Some(false),
            hand_over: false,
        };
        // An interrupt ends the trial, not just this process: the session
        // and the throwaway root go with it.
        let mut interrupts = self
            .interrupts
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let outcome = block_on(async {
            tokio::select! {
                biased;
                _ = interrupts.any() => None,
                outcome = crate::delivery::wake_with_task(&lc, &args) => Some(outcome),
            }
        })?;
        drop(interrupts);
        let id = Identity::new(runtime, &personality);
        let took = started.elapsed().as_secs_f64();
        let ending = match outcome {
            None => {
                crate::outln!("{took:>8.3}s  interrupted");
                Ending::Interrupted
            }
            Some(Ok(w)) => {
                let delivered = match w.task_delivered {
                    Some(true) => ", message processed",
                    _ => "",
                };
                crate::outln!("{took:>8.3}s  ok: {id} woke{delivered}");
                Ending::Ready
            }
            Some(Err(e)) => {
                crate::outln!("{took:>8.3}s  FAILED: {e}");
                Ending::Failed
            }
        };
        let interrupted = matches!(ending, Ending::Interrupted);
        self.end_session(
            &lc,
            &id,
            session_started.load(Ordering::Relaxed),
            interrupted,
        );
        Ok(ending)
    }

    /// Ends the trial's session and waits (a few seconds at most) for its
    /// shim to record the exit, so nothing writes into the throwaway root
    /// once it is gone.
    fn end_session(&self, lc: &Lifecycle, id: &Identity, started: bool, interrupted: bool) {
        end_sessions(&self.cfg, &lc.tmux, &[id], started, interrupted);
    }
}

/// Takes the screens an earlier run saved out of `dir` (only files named
/// as this module names them), so the folder holds one boot's screens.
fn clear_saved_panes(dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot make {}", dir.display()))?;
    for entry in std::fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display()))? {
        let path = entry?.path();
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        let ours = name.ends_with(".txt")
            && name.len() > 3
            && name[..2].bytes().all(|b| b.is_ascii_digit())
            && name.as_bytes()[2] == b'-';
        if ours {
            std::fs::remove_file(&path)
                .with_context(|| format!("cannot remove {}", path.display()))?;
        }
    }
    Ok(())
}

/// The signals that end a trial.
struct Interrupts {
    int: Signal,
    term: Signal,
    hup: Signal,
}

impl Interrupts {
    /// Registers the handlers (inside the runtime) and keeps them: a
    /// signal that comes before anyone waits is still seen.
    fn new() -> anyhow::Result<Interrupts> {
        let on = |kind| signal(kind).context("cannot catch signals");
        Ok(Interrupts {
            int: on(SignalKind::interrupt())?,
            term: on(SignalKind::terminate())?,
            hup: on(SignalKind::hangup())?,
        })
    }

    async fn any(&mut self) {
        tokio::select! {
            _ = self.int.recv() => {}
            _ = self.term.recv() => {}
            _ = self.hup.recv() => {}
        }
    }
}

/// Operator-given or adapter-given text on one line of the report.
pub fn one_line(s: &str) -> std::borrow::Cow<'_, str> {
    crate::term::escape_controls(s, false)
}

/// Prints launch steps as they happen; a judged screen only when it or its
/// verdict changed.
struct Printer {
    started: Instant,
    last: Mutex<Option<(String, Verdict)>>,
    /// A session was started (so its shim will write an exit record).
    session_started: Arc<AtomicBool>,
    save_panes: Option<PathBuf>,
    saved: std::sync::atomic::AtomicUsize,
}

impl Printer {
    fn new(started: Instant, save_panes: Option<PathBuf>) -> Self {
        Printer {
            started,
            last: Mutex::new(None),
            session_started: Arc::default(),
            save_panes,
            saved: Default::default(),
        }
    }

    /// `NN-ready.txt`, `NN-not-ready.txt`, `NN-dialog-Down.txt` (the keys
    /// sent, `+`-joined): a golden for the adapter's tests.
    fn save(&self, pane: &str, verdict: &Verdict) {
        let Some(dir) = &self.save_panes else { return };
        let n = self.saved.fetch_add(1, Ordering::Relaxed) + 1;
        let what = match verdict {
            Verdict::Ready => "ready".to_string(),
            Verdict::NotReady => "not-ready".to_string(),
            Verdict::Waiting => "waiting".to_string(),
            Verdict::Unsettled => "unsettled".to_string(),
            Verdict::DialogKeys(keys) => {
                let keys: Vec<String> = keys
                    .iter()
                    .map(|k| {
                        k.chars()
                            .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
                            .collect()
                    })
                    .collect();
                format!("dialog-{}", keys.join("+"))
            }
        };
        let file = dir.join(format!("{n:02}-{what}.txt"));
        if let Err(e) = crate::fsutil::write_atomic(&file, format!("{pane}\n").as_bytes()) {
            crate::outln!("           (not saved: {}: {e})", file.display());
        }
    }

    fn show(&self, step: &LaunchStep) {
        let t = self.started.elapsed().as_secs_f64();
        match step {
            LaunchStep::Command { argv, env } => {
                crate::outln!("{t:>8.3}s  command: {}", one_line(&shown_argv(argv)));
                for (k, v) in env {
                    crate::outln!("           env: {}={}", one_line(k), one_line(v));
                }
            }
            LaunchStep::Started => {
                self.session_started.store(true, Ordering::Relaxed);
                crate::outln!("{t:>8.3}s  session started");
            }
            LaunchStep::Judged { pane, verdict } => {
                let mut last = self.last.lock().unwrap_or_else(PoisonError::into_inner);
                let now = (pane.clone(), verdict.clone());
                if last.as_ref() == Some(&now) {
                    return;
                }
                *last = Some(now);
                self.save(pane, verdict);
                let said = match verdict {
                    Verdict::DialogKeys(keys) => format!("a dialog: sent keys {keys:?}"),
                    Verdict::Ready => "ready (is-input-ready: true)".into(),
                    Verdict::NotReady => "not ready yet (no dialog, no composer)".into(),
                    Verdict::Waiting => {
                        "a screen the adapter knows passes by itself: waiting".into()
                    }
                    Verdict::Unsettled => "a dialog, still changing: keys held back".into(),
                };
                crate::outln!("{t:>8.3}s  pane judged {}:", one_line(&said));
                let lines: Vec<&str> = pane.lines().filter(|l| !l.trim().is_empty()).collect();
                for l in &lines[lines.len().saturating_sub(PANE_LINES)..] {
                    crate::outln!("           │ {}", one_line(l));
                }
            }
            LaunchStep::Pasted => {
                crate::outln!("{t:>8.3}s  message pasted, seen in the composer, Enter pressed")
            }
            LaunchStep::PasteRefused(why) => {
                crate::outln!("{t:>8.3}s  message not pasted this time: {}", one_line(why))
            }
            LaunchStep::Processed { baseline, now } => crate::outln!(
                "{t:>8.3}s  processed: newest-activity-mtime moved {baseline} → {now}"
            ),
        }
    }
}

fn shown_argv(argv: &[String]) -> String {
    argv.iter()
        .map(|a| {
            if a.is_empty() || a.contains(char::is_whitespace) {
                format!("{a:?}")
            } else {
                a.clone()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Ends the sessions of `ids` and waits (a few seconds at most) for their
/// shims to record the exits. After an interrupt it keeps looking for a
/// second: a `tmux new-session` under way when the interrupt landed starts
/// its server after the first look. `started`: a session was seen up, so
/// its exit is awaited even if it is already gone.
pub(super) fn end_sessions(
    cfg: &Config,
    tmux: &crate::tmux::Tmux,
    ids: &[&Identity],
    started: bool,
    interrupted: bool,
) {
    let kill_live = |ended: &mut Vec<bool>| {
        for (id, ended) in ids.iter().zip(ended.iter_mut()) {
            let sock = cfg.socket_path(id);
            if crate::tmux::probe(&sock) == crate::tmux::Liveness::Alive {
                *ended = true;
                let _ = block_on(tmux.kill_server(&sock));
            }
        }
    };
    let mut ended = vec![started; ids.len()];
    kill_live(&mut ended);
    if interrupted {
        let until = Instant::now() + Duration::from_secs(1);
        while Instant::now() < until {
            std::thread::sleep(Duration::from_millis(50));
            kill_live(&mut ended);
        }
    }
    let deadline = Instant::now() + Duration::from_secs(7);
    for (id, _) in ids.iter().zip(&ended).filter(|(_, ended)| **ended) {
        let exit = cfg.state_file(id, "exit");
        while !exit.exists() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}
