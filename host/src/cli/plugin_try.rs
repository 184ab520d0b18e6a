//! `iapeer plugins try FILE --bin PATH [--message TEXT] [--cwd DIR]`: an
//! adapter against a real binary before anything is installed. It runs the
//! wake the host would run — build the command, start the session, judge
//! the pane until it is ready (answering dialogs), paste the message, wait
//! for the activity proxy to move — in a throwaway root, and prints each
//! step with its time and the pane text the adapter judged. It fails fast
//! (`--timeout-secs`, 30 by default, for the boot and the ready gate) and
//! says why.

use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::Context;

use super::verbs::block_on;
use crate::clock::SystemClock;
use crate::config::Config;
use crate::launch::{LaunchStep, Verdict};
use crate::lifecycle::{Lifecycle, WakeArgs};
use crate::names::{Identity, Personality, Runtime};
use crate::plugins::{Grant, Grants, PluginHost};
use crate::registry::{self, Registration};

/// The peer a try wakes.
const PEER: &str = "try";
/// Pane lines shown per judged screen (the bottom ones).
const PANE_LINES: usize = 8;

pub struct TryArgs<'a> {
    pub file: &'a Path,
    pub bin: &'a str,
    pub message: Option<String>,
    pub cwd: Option<&'a Path>,
    pub timeout: Duration,
}

pub fn run(cfg: &Config, a: TryArgs<'_>) -> anyhow::Result<i32> {
    let report = super::plugins::checked(cfg, a.file)?;
    let runtime = Runtime::new(report.runtime.clone().unwrap_or_default())
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let cwd = match a.cwd {
        Some(d) => d.to_path_buf(),
        None => std::env::current_dir()?,
    };
    let cwd = cwd
        .canonicalize()
        .with_context(|| format!("the peer's cwd {}", cwd.display()))?;
    if !cwd.is_dir() {
        anyhow::bail!("--cwd {}: not a directory", cwd.display());
    }
    let scratch = tempfile::Builder::new()
        .prefix("iapeer-try-")
        .tempdir()
        .context("cannot make the throwaway root")?;
    let cfg = throwaway_config(cfg, scratch.path(), &runtime, a.bin, a.timeout);
    let installed = cfg.plugin_dirs[0].join(format!("{runtime}.wasm"));
    let bytes = crate::fsutil::read_regular_file(a.file, crate::plugins::MAX_PLUGIN_BYTES)?;
    crate::fsutil::write_atomic(&installed, &bytes)?;
    crate::outln!(
        "trying {} ({runtime} {}, contract {}) with {} in {}",
        one_line(&a.file.display().to_string()),
        report.version.as_deref().unwrap_or("-"),
        report.wit.as_deref().unwrap_or("-"),
        one_line(a.bin),
        one_line(&cwd.display().to_string())
    );
    if let Some(reads) = report.reads() {
        Grants::add(
            &crate::plugins::grants_path(&cfg.root),
            Grant {
                sha256: report.sha256.clone(),
                runtime: runtime.to_string(),
                file: installed.display().to_string(),
                read_dirs: report.read_dirs.clone(),
                cwd_read_paths: report.cwd_read_paths.clone(),
                granted_at: "for this try".into(),
            },
        )
        .map_err(anyhow::Error::msg)?;
        crate::outln!("granted for this try only: it reads {reads}");
    }
    registry::upsert_peer(
        &cfg.root,
        &cfg.registry_path(),
        &Registration {
            personality: Personality::new(PEER).expect("a valid name"),
            runtime: runtime.clone(),
            runtimes: Vec::new(),
            cwd: cwd.clone(),
            intelligence: None,
            description: None,
        },
    )?;
    let plugins = block_on(PluginHost::load(&cfg.plugin_options()))?.map_err(anyhow::Error::msg)?;
    if let Some(why) = plugins.why_not_serving(runtime.as_str()) {
        anyhow::bail!("{}: {why}", a.file.display());
    }
    let started = Instant::now();
    let printer = Printer::new(started);
    let session_started = printer.session_started.clone();
    let lc = Lifecycle::new(cfg.clone(), Arc::new(plugins), Arc::new(SystemClock))
        .with_shim(crate::shim::current())
        .with_launch_observer(Arc::new(move |step| printer.show(step)));
    let args = WakeArgs {
        personality: PEER.into(),
        runtime: Some(runtime.to_string()),
        task: a.message.unwrap_or_default(),
        resume: Some(false),
        hand_over: false,
    };
    // Ctrl-C ends the try, not just this process: the session and the
    // throwaway root go with it.
    let outcome = block_on(async {
        tokio::select! {
            outcome = lc.wake_or_spawn(&args) => Some(outcome),
            _ = tokio::signal::ctrl_c() => None,
        }
    })?;
    let id = Identity::new(&runtime, &Personality::new(PEER).expect("a valid name"));
    let took = started.elapsed().as_secs_f64();
    let code = match outcome {
        None => {
            crate::outln!("{took:>8.3}s  interrupted");
            130
        }
        Some(Ok(w)) => {
            let delivered = match w.task_delivered {
                Some(true) => ", message processed",
                _ => "",
            };
            crate::outln!("{took:>8.3}s  ok: {id} woke{delivered}");
            0
        }
        Some(Err(e)) => {
            crate::outln!("{took:>8.3}s  FAILED: {e}");
            1
        }
    };
    end_session(
        &lc,
        &cfg,
        &id,
        session_started.load(std::sync::atomic::Ordering::Relaxed),
    );
    Ok(code)
}

/// Ends the try's session and waits (a few seconds at most) for its shim
/// to record the exit, so nothing writes into the throwaway root once it
/// is gone.
fn end_session(lc: &Lifecycle, cfg: &Config, id: &Identity, started: bool) {
    let sock = cfg.socket_path(id);
    let alive = crate::tmux::probe(&sock) == crate::tmux::Liveness::Alive;
    if alive {
        let _ = block_on(lc.tmux.kill_server(&sock));
    }
    if !alive && !started {
        return;
    }
    let exit = cfg.state_file(id, "exit");
    let deadline = Instant::now() + Duration::from_secs(7);
    while !exit.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Operator-given or adapter-given text on one line of the report.
fn one_line(s: &str) -> std::borrow::Cow<'_, str> {
    crate::term::escape_controls(s, false)
}

/// `cfg` with its state moved under `scratch`, the file's runtime run from
/// `bin`, and both waits cut to `timeout`. The compile cache and the home
/// stay the operator's (the runtime writes its transcripts there).
fn throwaway_config(
    cfg: &Config,
    scratch: &Path,
    runtime: &Runtime,
    bin: &str,
    timeout: Duration,
) -> Config {
    let mut c = cfg.clone();
    c.root = scratch.to_path_buf();
    c.sock_dir = scratch.join("s");
    c.state_dir = scratch.join("state/lifecycle");
    c.log_dir = scratch.join("logs/iapeer");
    c.daemon_socket = scratch.join("state/iapeer/router.sock");
    c.plugin_dirs = vec![scratch.join("plugins")];
    c.bin_overrides.insert(runtime.to_string(), absolute(bin));
    c.boot_deadline = timeout;
    c.ready_gate = timeout;
    c
}

/// A relative `--bin` names a file here, not one on PATH.
fn absolute(bin: &str) -> String {
    if bin.contains('/') {
        std::path::absolute(bin)
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_else(|_| bin.to_string())
    } else {
        bin.to_string()
    }
}

/// Prints launch steps as they happen; a judged screen only when it or its
/// verdict changed.
struct Printer {
    started: Instant,
    last: Mutex<Option<(String, Verdict)>>,
    /// A session was started (so its shim will write an exit record).
    session_started: Arc<std::sync::atomic::AtomicBool>,
}

impl Printer {
    fn new(started: Instant) -> Self {
        Printer {
            started,
            last: Mutex::new(None),
            session_started: Arc::default(),
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
                self.session_started
                    .store(true, std::sync::atomic::Ordering::Relaxed);
                crate::outln!("{t:>8.3}s  session started");
            }
            LaunchStep::Judged { pane, verdict } => {
                let mut last = self.last.lock().unwrap_or_else(PoisonError::into_inner);
                let now = (pane.clone(), verdict.clone());
                if last.as_ref() == Some(&now) {
                    return;
                }
                *last = Some(now);
                let said = match verdict {
                    Verdict::DialogKeys(keys) => format!("a dialog: sent keys {keys:?}"),
                    Verdict::Ready => "ready (is-input-ready: true)".into(),
                    Verdict::NotReady => "not ready yet (no dialog, no composer)".into(),
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
