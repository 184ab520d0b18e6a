//! Every lifecycle decision, in one place. The flow of a wake:
//!
//! heal (supervise tick) → registry lookup → H4 guard → runtime resolution →
//! adapter → stopped mark → wake lock → stopped + H4 again → live fast path
//! → cwd exists → wake mode → system prompt → launch → session state → READY.

mod decide;
mod operator;
mod supervise;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

pub use decide::{
    ModeCause, WakeMode, compose_first_message, resolve_wake_mode, resolve_wake_runtime,
};
pub use operator::{AttachTarget, PeerStatus, RuntimeStatus, VerbOutcome};
pub use supervise::{SuperviseAction, SuperviseOutcome, supervise_action_name};

use crate::clock::Clock;
use crate::config::Config;
use crate::events;
use crate::guard::{self, Owner};
use crate::launch::{self, LaunchOutcome, LaunchRequest};
use crate::names::{Identity, Personality};
use crate::plugins::{Adapter, LaunchSpec, PluginHost};
use crate::prompt::{self, PromptInput, SystemFacts};
use crate::registry::{self, PeerRecord, Registry};
use crate::store::{self, Mark, SessionState};
use crate::tmux::{Liveness, Tmux, probe};
use crate::{fsutil, wakelock};

/// How long a wake waits after delivering to a live TUI for its activity
/// proxy to move (proof the message was accepted).
const LIVE_DELIVERY_GRACE: Duration = Duration::from_secs(3);

/// The canonical form of a cwd (what adapters expect), or the path as given
/// when it cannot be resolved.
pub(crate) fn canonical(cwd: &Path) -> PathBuf {
    std::fs::canonicalize(cwd).unwrap_or_else(|_| cwd.to_path_buf())
}

/// The lifecycle engine: configuration, adapters, tmux and a clock.
pub struct Lifecycle {
    pub cfg: Config,
    pub plugins: Arc<PluginHost>,
    pub tmux: Tmux,
    pub clock: Arc<dyn Clock>,
}

/// A wake request.
#[derive(Debug, Clone, Default)]
pub struct WakeArgs {
    pub personality: String,
    pub runtime: Option<String>,
    /// The message for the peer ('' = just bring it up).
    pub task: String,
    /// `Some(true)` resume (fail loud), `Some(false)` fresh, `None` decide.
    pub resume: Option<bool>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Status {
    #[serde(rename = "READY")]
    Ready,
    #[serde(rename = "FAILED")]
    Failed,
}

/// The outcome of a wake, with the reference's field names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WakeResult {
    pub status: Status,
    /// A session was spawned by this call.
    pub woke: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub runtime: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub process_address: Option<String>,
    /// `fresh` or `resume` when this call spawned a session.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The refusal was a durable operator stop.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub stopped: bool,
    /// Whether the task reached the session (absent when there was none).
    #[serde(rename = "taskDelivered", skip_serializing_if = "Option::is_none")]
    pub task_delivered: Option<bool>,
}

impl WakeResult {
    fn failed(runtime: Option<&str>, reason: impl Into<String>) -> Self {
        WakeResult {
            status: Status::Failed,
            woke: false,
            runtime: runtime.map(str::to_string),
            process_address: None,
            mode: None,
            reason: Some(reason.into()),
            stopped: false,
            task_delivered: None,
        }
    }

    pub fn is_ready(&self) -> bool {
        self.status == Status::Ready
    }
}

fn owner_refusal(p: &Personality, owner: &Owner, mid_wake: bool) -> String {
    let who = match owner {
        Owner::Launchd(_) => "launchd KeepAlive owns its lifecycle",
        Owner::SystemdUser(_) => "its systemd user unit owns its lifecycle",
    };
    if mid_wake {
        format!(
            "\"{p}\" became {} mid-wake; the daemon does not wake it",
            owner.describe()
        )
    } else {
        format!(
            "\"{p}\" is {}; the daemon does not wake it ({who})",
            owner.describe()
        )
    }
}

fn stopped_refusal(p: &Personality, runtime: &str) -> String {
    format!("\"{p}\" ({runtime}) is stopped and not accepting messages; start it to resume")
}

impl Lifecycle {
    pub fn new(cfg: Config, plugins: Arc<PluginHost>, clock: Arc<dyn Clock>) -> Lifecycle {
        let tmux = Tmux::from_path(cfg.env.get("PATH").map(String::as_str));
        Lifecycle {
            cfg,
            plugins,
            tmux,
            clock,
        }
    }

    pub fn registry(&self) -> Result<Registry, registry::RegistryError> {
        registry::read_registry(&self.cfg.registry_path())
    }

    pub fn socket(&self, id: &Identity) -> PathBuf {
        self.cfg.socket_path(id)
    }

    pub fn is_live(&self, id: &Identity) -> bool {
        probe(&self.socket(id)) == Liveness::Alive
    }

    fn adapter(&self, runtime: &str) -> Result<&Arc<Adapter>, String> {
        self.plugins.adapter(runtime).ok_or_else(|| {
            format!("no adapter for runtime {runtime:?} (see `iapeer plugins list`)")
        })
    }

    fn record_session(&self, id: &Identity, cwd: &Path) {
        let cwd = canonical(cwd);
        let state = SessionState {
            identity: id.to_string(),
            runtime: id.runtime().to_string(),
            personality: id.personality().to_string(),
            cwd: cwd.to_string_lossy().into_owned(),
            woke_at: self.clock.now_ms(),
        };
        // The session is up either way; without the record it is only not
        // idle-supervised, so say so loudly rather than fail the wake.
        if let Err(e) = store::write_session(&self.cfg, &state) {
            tracing::warn!(identity = %id, "session state write failed; the session is live but not supervised: {e}");
        }
    }

    /// Longest a wake may hold the lock: waiting longer means the holder hangs.
    fn lock_patience(&self) -> Duration {
        self.cfg.boot_deadline + self.cfg.ready_gate + Duration::from_secs(30)
    }

    /// Wake (or reuse) a peer's session and deliver `task` to it.
    pub async fn wake_or_spawn(&self, args: &WakeArgs) -> WakeResult {
        // Heal strays first: the same H4-guarded pass the daemon runs.
        let _ = self.supervise_tick().await;

        let registry = match self.registry() {
            Ok(r) => r,
            Err(e) => return WakeResult::failed(None, e.to_string()),
        };
        let Some(peer) = registry.find(&args.personality) else {
            return WakeResult::failed(None, format!("unknown peer {:?}", args.personality));
        };
        let p = &peer.personality;
        if let Some(owner) = guard::external_owner(&self.cfg, p) {
            self.log_wake(p, None, "refused", owner.describe(), None);
            return WakeResult::failed(None, owner_refusal(p, &owner, false));
        }
        let runtime = match resolve_wake_runtime(args.runtime.as_deref(), peer) {
            Ok(r) => r,
            Err(e) => return WakeResult::failed(None, e),
        };
        let rt = runtime.as_str();
        let adapter = match self.adapter(rt) {
            Ok(a) => a.clone(),
            Err(e) => return WakeResult::failed(Some(rt), e),
        };
        let id = Identity::new(&runtime, p);
        if store::has_mark(&self.cfg, &id, Mark::Stopped) {
            self.log_wake(p, Some(&id), "refused", "stopped", None);
            return WakeResult {
                stopped: true,
                ..WakeResult::failed(Some(rt), stopped_refusal(p, rt))
            };
        }

        let _lock = match wakelock::acquire(&self.cfg, &id, self.lock_patience()).await {
            Ok(l) => l,
            Err(e) => return WakeResult::failed(Some(rt), e.to_string()),
        };
        // A stop or a plist install that landed while we waited still wins.
        if store::has_mark(&self.cfg, &id, Mark::Stopped) {
            self.log_wake(p, Some(&id), "refused", "stopped-mid-wake", None);
            return WakeResult {
                stopped: true,
                ..WakeResult::failed(Some(rt), stopped_refusal(p, rt))
            };
        }
        if let Some(owner) = guard::external_owner(&self.cfg, p) {
            let cause = format!("{}-mid-wake", owner.describe());
            self.log_wake(p, Some(&id), "refused", &cause, None);
            return WakeResult::failed(Some(rt), owner_refusal(p, &owner, true));
        }

        let sock = self.socket(&id);
        let liveness = probe(&sock);
        if let Liveness::Unknown(why) = &liveness {
            // Unknown is never dead: spawning would kill whatever runs there.
            return WakeResult::failed(
                Some(rt),
                format!("cannot tell whether {id} is running ({why}); not starting another"),
            );
        }
        // Live fast path: a concurrent wake already brought it up.
        if liveness == Liveness::Alive {
            self.record_session(&id, &peer.cwd);
            let task_delivered = if args.task.trim().is_empty() {
                None
            } else {
                Some(
                    self.deliver_live(&adapter, &id, &peer.cwd, &args.task)
                        .await,
                )
            };
            let mut r = WakeResult {
                status: Status::Ready,
                woke: false,
                runtime: Some(rt.to_string()),
                process_address: Some(id.to_string()),
                mode: None,
                reason: None,
                stopped: false,
                task_delivered,
            };
            if task_delivered == Some(false) {
                r.status = Status::Failed;
                r.reason = Some(format!(
                    "{id} is live but did not accept the message; message NOT delivered"
                ));
            }
            return r;
        }
        self.spawn_locked(args, peer, &registry, &adapter, &id)
            .await
    }

    /// The spawn half of a wake, under the lock, with the session known dead.
    async fn spawn_locked(
        &self,
        args: &WakeArgs,
        peer: &PeerRecord,
        registry: &Registry,
        adapter: &Arc<Adapter>,
        id: &Identity,
    ) -> WakeResult {
        let p = &peer.personality;
        let rt = id.runtime().as_str();
        let cwd = match std::fs::canonicalize(&peer.cwd) {
            Ok(c) if c.is_dir() => c,
            _ => {
                return WakeResult::failed(
                    Some(rt),
                    format!("peer cwd does not exist: {}", peer.cwd.display()),
                );
            }
        };
        let cwd_str = cwd.to_string_lossy().into_owned();
        let new_mark = store::has_mark(&self.cfg, id, Mark::New);
        // Ask the adapter only when the answer decides the mode.
        let check = if !new_mark && args.resume != Some(false) {
            Some(
                adapter
                    .resolve_resume(&cwd_str)
                    .await
                    .map_err(|e| e.to_string()),
            )
        } else {
            None
        };
        let mode = resolve_wake_mode(new_mark, args.resume, || {
            check.unwrap_or_else(|| Err("resume check skipped".into()))
        });
        let (fresh, resume_ref, cause) = match &mode {
            WakeMode::Fail(reason) => {
                let cause = if args.resume == Some(true) {
                    "attach-nothing-to-resume"
                } else {
                    "resume-check-failed"
                };
                self.log_wake(p, Some(id), "fail", cause, Some(reason));
                return WakeResult::failed(Some(rt), reason.clone());
            }
            WakeMode::Fresh(c) => (true, None, *c),
            WakeMode::Resume { cause, reference } => (false, reference.clone(), *cause),
        };
        let mode_name = if fresh { "fresh" } else { "resume" };
        self.log_wake(p, Some(id), mode_name, cause.as_str(), None);

        let info = adapter.info();
        let system_prompt_file = if info.uses_doctrine {
            match self.write_system_prompt(peer, &cwd, id, registry) {
                Ok(path) => path,
                Err(e) => return WakeResult::failed(Some(rt), e),
            }
        } else {
            None
        };
        let profile = registry::read_profile(&cwd).ok().flatten();
        let seed = profile.as_ref().and_then(|p| p.initial_prompt.as_deref());
        let first_message = compose_first_message(seed, &args.task, fresh);
        let launch_env = registry::read_launch_env(&cwd, id.runtime());
        let spec = LaunchSpec {
            personality: p.to_string(),
            identity: id.to_string(),
            cwd: cwd_str.clone(),
            binary: self
                .cfg
                .resolve_binary(rt, info.binary_env.as_deref(), &info.default_binary),
            system_prompt_file: system_prompt_file.map(|f| f.to_string_lossy().into_owned()),
            resume: !fresh,
            resume_ref,
            extra_args: launch_env.start_args,
            intelligence: Some(peer.intelligence.clone()),
        };
        let outcome = launch::launch(
            &self.tmux,
            LaunchRequest {
                adapter,
                identity: id,
                socket: self.socket(id),
                spec,
                parent_env: self.cfg.env.clone(),
                launch_env: launch_env.env,
                first_message: first_message.clone(),
                boot_deadline: self.cfg.boot_deadline,
                ready_gate: self.cfg.ready_gate,
            },
        )
        .await;
        match outcome {
            LaunchOutcome::Failed {
                reason,
                session_left,
            } => {
                if session_left {
                    // Keep what is still running under supervision; it is
                    // the fresh session the /new mark asked for.
                    self.record_session(id, &cwd);
                    self.consume_new_mark(id, cause);
                }
                events::log(
                    &self.cfg,
                    "wake-failed",
                    &[("identity", id.as_str()), ("reason", &reason)],
                );
                WakeResult::failed(Some(rt), reason)
            }
            LaunchOutcome::Ready { delivered } => {
                self.record_session(id, &cwd);
                self.consume_new_mark(id, cause);
                let has_task = !args.task.trim().is_empty();
                // A router takes no first message at launch: hand it over now.
                let delivered = delivered
                    || (has_task && self.deliver_live(adapter, id, &cwd, &args.task).await);
                WakeResult {
                    status: Status::Ready,
                    woke: true,
                    runtime: Some(rt.to_string()),
                    process_address: Some(id.to_string()),
                    mode: Some(mode_name),
                    reason: None,
                    stopped: false,
                    task_delivered: has_task.then_some(delivered),
                }
            }
        }
    }

    /// The /new mark is consumed only by a relaunch that brought a session
    /// up: a failed one leaves it, so the next wake is still fresh.
    fn consume_new_mark(&self, id: &Identity, cause: ModeCause) {
        if cause == ModeCause::NewMark {
            let _ = store::clear_mark(&self.cfg, id, Mark::New);
        }
    }

    /// Writes the composed prompt of a doctrine peer; `None` for a bare one.
    fn write_system_prompt(
        &self,
        peer: &PeerRecord,
        cwd: &Path,
        id: &Identity,
        registry: &Registry,
    ) -> Result<Option<PathBuf>, String> {
        let facts = SystemFacts::gather(&self.cfg.env);
        let text = prompt::compose(&PromptInput {
            personality: peer.personality.as_str(),
            description: &peer.description,
            cwd,
            registered_cwd: &peer.cwd,
            facts: &facts,
            root: &self.cfg.root,
            home: &self.cfg.home,
            peers: &registry.peers,
        });
        let Some(text) = text else { return Ok(None) };
        let path = self.cfg.state_file(id, "system-prompt.md");
        fsutil::write_atomic(&path, text.as_bytes())
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        Ok(Some(path))
    }

    /// Delivers a message to a live session; true when it was accepted.
    pub async fn deliver_live(
        &self,
        adapter: &Adapter,
        id: &Identity,
        cwd: &Path,
        message: &str,
    ) -> bool {
        let sock = self.socket(id);
        let cwd = canonical(cwd);
        let cwd = cwd.to_string_lossy();
        let baseline = launch::activity(adapter, &cwd).await;
        let message = message.trim_end_matches(['\n', '\r']);
        if launch::deliver(&self.tmux, &sock, id.as_str(), message, adapter)
            .await
            .is_err()
        {
            return false;
        }
        if adapter.info().kind == crate::plugins::AdapterKind::Router {
            return true;
        }
        let started = tokio::time::Instant::now();
        let mut pause = Duration::from_millis(20);
        let mut pressed_again = false;
        while started.elapsed() < LIVE_DELIVERY_GRACE {
            if launch::activity(adapter, &cwd).await > baseline {
                return true;
            }
            // A swallowed Enter leaves the paste sitting in the composer.
            if !pressed_again && started.elapsed() > LIVE_DELIVERY_GRACE / 3 {
                pressed_again = true;
                let _ = self
                    .tmux
                    .send_keys(&sock, id.as_str(), &["Enter".to_string()])
                    .await;
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 3 / 2).min(Duration::from_millis(250));
        }
        launch::activity(adapter, &cwd).await > baseline
    }

    fn log_wake(
        &self,
        p: &Personality,
        id: Option<&Identity>,
        mode: &str,
        cause: &str,
        reason: Option<&str>,
    ) {
        let id = id.map(Identity::to_string).unwrap_or_default();
        let rt = id.split_once('-').map(|(r, _)| r).unwrap_or("");
        let mut fields = vec![
            ("personality", p.as_str()),
            ("identity", id.as_str()),
            ("runtime", rt),
        ];
        fields.push(("mode", mode));
        fields.push(("cause", cause));
        if let Some(r) = reason {
            fields.push(("reason", r));
        }
        events::log(&self.cfg, "wake", &fields);
    }
}
