//! Every lifecycle decision, in one place. The flow of a wake:
//!
//! heal (supervise tick) → registry lookup → hands-off guard (launchd, systemd) → runtime resolution →
//! adapter → stopped mark → wake lock → stopped + hands-off again → live fast path
//! → cwd exists → wake mode → system prompt → session recorded → launch →
//! READY.

mod control;
mod decide;
mod error;
mod operator;
mod supervise;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio_util::sync::CancellationToken;

pub use control::{Control, ControlOutcome};
pub(crate) use decide::resolve_wake_runtime;
pub use decide::{ModeCause, WakeMode, compose_first_message, resolve_wake_mode};
pub use error::LifecycleError;
pub use operator::{
    AttachTarget, LastExit, NewOutcome, PeerStatus, Peers, RuntimeState, RuntimeStatus, VerbAction,
    VerbOutcome, log_identity,
};
pub use supervise::{SuperviseAction, SuperviseOutcome};

use crate::clock::Clock;
use crate::config::Config;
use crate::deaths::{self, Phase};
use crate::events;
use crate::guard;
use crate::launch::{self, LaunchOutcome, LaunchRequest};
use crate::mail::{Drains, Mailbox};
use crate::names::{Identity, Personality};
use crate::paste;
use crate::plugins::{Adapter, LaunchSpec, PluginHost};
use crate::prompt::{self, PromptInput, SystemFacts};
use crate::registry::{self, Intelligence, PeerRecord, Registry};
use crate::store::{self, Mark, SessionState};
use crate::tmux::{Liveness, Tmux, probe};
use crate::{fsutil, wakelock};

/// How long `attach` lets a boot answer its dialogs before it hands the
/// session to the operator as it is (a login picker is finished by hand).
const HAND_OVER_AFTER: Duration = Duration::from_secs(15);

/// The canonical form of a cwd (what adapters expect), or the path as given
/// when it cannot be resolved.
pub(crate) fn canonical(cwd: &Path) -> PathBuf {
    std::fs::canonicalize(cwd).unwrap_or_else(|_| cwd.to_path_buf())
}

/// Who does the work found along the way: the eager `/new` relaunches a
/// wake's heal pass finds, and the delivery of mail whose sender does not
/// wait for it.
#[derive(Debug, Clone, Default)]
pub enum Handoff {
    /// This process, before it goes on (the CLI: nobody else will).
    #[default]
    Inline,
    /// The daemon's loops: a supervise tick now (so the message that
    /// triggered the heal is not held up by another peer's boot), and its
    /// deliverer for the peers named on `mail`.
    Kick {
        supervise: Arc<tokio::sync::Notify>,
        mail: tokio::sync::mpsc::UnboundedSender<Personality>,
    },
}

/// How many live deliveries run at once: two per core.
fn delivery_slots() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get() * 2)
}

/// The lifecycle engine: configuration, adapters, tmux and a clock.
pub struct Lifecycle {
    pub cfg: Config,
    pub plugins: Arc<PluginHost>,
    pub(crate) tmux: Tmux,
    pub clock: Arc<dyn Clock>,
    handoff: Handoff,
    /// A supervise pass is running in this process: a wake's heal pass is
    /// skipped (the running one heals; two would only race for locks).
    ticking: AtomicBool,
    /// Cancelled when the daemon stops: queued wakes and deliveries give up
    /// (nothing done, the caller is told) instead of starting new work.
    shutdown: CancellationToken,
    /// The last failed launch per identity: a wake that queued behind it
    /// fails with it instead of booting the same broken runtime again.
    failed_launches: Mutex<HashMap<Identity, (Instant, String)>>,
    /// The session shim (this program): records how each runtime ends.
    shim: Option<PathBuf>,
    /// Told every step of every launch (`iapeer plugins try`).
    launch_observer: Option<launch::LaunchObserver>,
    /// The mailbox, opened on first use (most verbs never need it).
    mailbox: OnceLock<Mailbox>,
    /// The mailbox drains running in this process.
    drains: Drains,
    /// The registry as last read, with the stamp of the file it came from.
    registry_seen: Mutex<Option<(fsutil::FileStamp, Registry)>>,
    /// Live deliveries run at most this many at a time (each runs a few
    /// tmux processes): under load, mail gathers and goes in as batches.
    delivery_slots: tokio::sync::Semaphore,
    /// The fleet this daemon joined (none: one machine).
    fleet: OnceLock<Arc<crate::fleetlink::FleetLink>>,
}

/// A wake request.
#[derive(Debug, Clone, Default)]
pub struct WakeArgs {
    pub personality: String,
    pub runtime: Option<String>,
    /// The first message of a session this wake starts ('' = just bring
    /// it up). A session found live, or a router, does not get it here:
    /// `task_delivered` is then `Some(false)` and `delivery` hands it over.
    pub task: String,
    /// `Some(true)` resume (fail loud), `Some(false)` fresh, `None` decide.
    pub resume: Option<bool>,
    /// An operator is about to attach: a boot that is not ready within its
    /// patience is handed over as it is (a login picker finished by hand),
    /// never killed. Automatic wakes keep killing never-ready sessions.
    pub hand_over: bool,
    /// Type nothing the caller did not give: a fresh start skips the
    /// profile's initial prompt (`doctor` boots and sends nothing).
    pub skip_seed: bool,
    /// The topic of the message the wake carries: after a clean park it
    /// decides resume (a topic the session saw) or fresh (a new one).
    pub topic: Option<String>,
}

/// What every step of the spawn half of a wake works on: the request, the
/// peer and its registry, its adapter, the session and its folder.
#[derive(Clone, Copy)]
struct Spawn<'a> {
    args: &'a WakeArgs,
    peer: &'a PeerRecord,
    registry: &'a Registry,
    adapter: &'a Arc<Adapter>,
    id: &'a Identity,
    /// The peer's folder, resolved (links and `..`).
    cwd: &'a Path,
}

/// How the spawn half of a wake will start the runtime, and why.
struct SpawnDecision {
    spawn_mode: SpawnMode,
    resume_ref: Option<String>,
    cause: ModeCause,
    /// The /new mark as it was when the mode was decided (a `new` during
    /// the boot changes it: that boot's death was asked for).
    new_mark_at_start: Option<String>,
}

/// How a wake started a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, strum::IntoStaticStr)]
#[serde(rename_all = "lowercase")]
#[strum(serialize_all = "lowercase")]
pub enum SpawnMode {
    Fresh,
    Resume,
}

/// A wake that left the peer live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Woken {
    pub identity: Identity,
    /// `Some` when this call started the session; `None` when it was live.
    pub spawned: Option<SpawnMode>,
    /// Whether the task reached the session (`None` when there was none).
    pub task_delivered: Option<bool>,
}

impl Woken {
    pub fn woke(&self) -> bool {
        self.spawned.is_some()
    }
}

pub type WakeOutcome = Result<Woken, LifecycleError>;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Status {
    #[serde(rename = "READY")]
    Ready,
    #[serde(rename = "FAILED")]
    Failed,
}

/// A wake outcome in the TypeScript iapeer's JSON shape (what `--json` prints and
/// the fleet API returns).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WakeReport {
    pub status: Status,
    /// A session was spawned by this call.
    pub woke: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub runtime: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub process_address: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<SpawnMode>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The refusal was a durable operator stop.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub stopped: bool,
    #[serde(rename = "taskDelivered", skip_serializing_if = "Option::is_none")]
    pub task_delivered: Option<bool>,
}

impl WakeReport {
    pub fn new(outcome: &WakeOutcome) -> WakeReport {
        match outcome {
            Ok(w) => WakeReport {
                status: Status::Ready,
                woke: w.woke(),
                runtime: Some(w.identity.runtime().to_string()),
                process_address: Some(w.identity.to_string()),
                mode: w.spawned,
                reason: None,
                stopped: false,
                task_delivered: w.task_delivered,
            },
            Err(e) => WakeReport {
                status: Status::Failed,
                woke: false,
                runtime: e.runtime().map(ToString::to_string),
                process_address: None,
                mode: None,
                reason: Some(e.to_string()),
                stopped: matches!(e, LifecycleError::Stopped(_)),
                task_delivered: None,
            },
        }
    }
}

/// How a session is recorded: up, booting under its spawner, or handed
/// to an operator at a startup prompt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BootState {
    Up,
    Booting,
    HandedOver,
}

impl Lifecycle {
    pub fn new(cfg: Config, plugins: Arc<PluginHost>, clock: Arc<dyn Clock>) -> Lifecycle {
        let tmux = Tmux::for_config(&cfg);
        Lifecycle {
            cfg,
            plugins,
            tmux,
            clock,
            handoff: Handoff::Inline,
            ticking: AtomicBool::new(false),
            shutdown: CancellationToken::new(),
            failed_launches: Mutex::default(),
            shim: None,
            launch_observer: None,
            mailbox: OnceLock::new(),
            drains: Drains::default(),
            registry_seen: Mutex::default(),
            delivery_slots: tokio::sync::Semaphore::new(delivery_slots()),
            fleet: OnceLock::new(),
        }
    }

    /// Tells `observer` each step of each launch.
    pub fn with_launch_observer(mut self, observer: launch::LaunchObserver) -> Lifecycle {
        self.launch_observer = Some(observer);
        self
    }

    /// Runs every session under the session shim at `exe` (an `iapeer` or
    /// `iapeerd` binary), so its exit is recorded.
    pub fn with_shim(mut self, exe: Option<PathBuf>) -> Lifecycle {
        self.shim = exe;
        self
    }

    /// Who does the work found along the way (see [`Handoff`]).
    pub fn with_handoff(mut self, handoff: Handoff) -> Lifecycle {
        self.handoff = handoff;
        self
    }

    /// The token that says the daemon is stopping.
    pub fn with_shutdown(mut self, shutdown: CancellationToken) -> Lifecycle {
        self.shutdown = shutdown;
        self
    }

    /// The wake lock of `id`; gives up when the daemon starts stopping, and
    /// starts no new work once it has.
    pub(crate) async fn lock(&self, id: &Identity) -> Result<wakelock::WakeLock, LifecycleError> {
        let lock = wakelock::acquire(&self.cfg, id, self.lock_patience(), &self.shutdown)
            .await
            .map_err(|e| match e {
                wakelock::WakeLockError::Cancelled(_) => LifecycleError::ShuttingDown,
                e => LifecycleError::Busy(e),
            })?;
        if self.shutdown.is_cancelled() {
            return Err(LifecycleError::ShuttingDown);
        }
        Ok(lock)
    }

    /// The wake lock for a verb that acts even without it (stop, new): it
    /// waits its patience, then goes ahead.
    pub(crate) async fn lock_or_proceed(&self, id: &Identity) -> Option<wakelock::WakeLock> {
        wakelock::acquire(&self.cfg, id, self.lock_patience(), &self.shutdown)
            .await
            .ok()
    }

    /// A launch of `id` that failed after `since` (while this caller queued).
    pub(crate) fn failed_since(&self, id: &Identity, since: Instant) -> Option<String> {
        let failures = self
            .failed_launches
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        failures
            .get(id)
            .filter(|(at, _)| *at >= since)
            .map(|(_, reason)| reason.clone())
    }

    fn record_failed_launch(&self, id: &Identity, reason: &str) {
        self.failed_launches
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(id.clone(), (Instant::now(), reason.to_string()));
    }

    /// The registry, with each peer that does not state its nature given
    /// its default runtime's (the adapter's `default-intelligence`).
    pub fn registry(&self) -> Result<Registry, registry::RegistryError> {
        let path = self.cfg.registry_path();
        // Stamped before the read: a write racing it is read next time.
        let stamp = fsutil::stamp(&path);
        let mut seen = self
            .registry_seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let (Some(now), Some((then, reg))) = (stamp, seen.as_ref())
            && now == *then
        {
            return Ok(reg.clone());
        }
        let reg = self.read_registry(&path)?;
        *seen = stamp.map(|s| (s, reg.clone()));
        Ok(reg)
    }

    fn read_registry(&self, path: &Path) -> Result<Registry, registry::RegistryError> {
        let mut reg = registry::read_registry(path)?;
        for peer in reg
            .peers
            .iter_mut()
            .filter(|p| p.raw_intelligence.is_none())
        {
            // The adapter's value was checked against the natures when it
            // was loaded.
            if let Some(a) = self.plugins.adapter(peer.default_runtime.as_str())
                && let Some(nature) = Intelligence::parse(&a.info().default_intelligence)
            {
                peer.intelligence = nature;
            }
        }
        Ok(reg)
    }

    /// The mailbox of this root.
    pub(crate) fn mailbox(&self) -> Result<&Mailbox, LifecycleError> {
        if let Some(mb) = self.mailbox.get() {
            return Ok(mb);
        }
        let mb = Mailbox::open(&self.cfg.mail_path()).map_err(LifecycleError::Mail)?;
        Ok(self.mailbox.get_or_init(|| mb))
    }

    /// This process is the daemon (it kicks its own supervise loop).
    pub(crate) fn in_daemon(&self) -> bool {
        matches!(self.handoff, Handoff::Kick { .. })
    }

    /// Hands `p`'s mailbox to the daemon's deliverer; `false` when this
    /// process is not the daemon (or it is stopping).
    /// This daemon joined a fleet: routing asks `link` who owns a peer.
    pub(crate) fn join_fleet(&self, link: Arc<crate::fleetlink::FleetLink>) {
        let _ = self.fleet.set(link);
    }

    /// The fleet this daemon joined, if any.
    pub(crate) fn fleet_link(&self) -> Option<&Arc<crate::fleetlink::FleetLink>> {
        self.fleet.get()
    }

    pub(crate) fn hand_mail_to_daemon(&self, p: &Personality) -> bool {
        match &self.handoff {
            Handoff::Kick { mail, .. } => mail.send(p.clone()).is_ok(),
            Handoff::Inline => false,
        }
    }

    /// A turn to deliver (see `delivery_slots`).
    pub(crate) async fn delivery_slot(&self) -> tokio::sync::SemaphorePermit<'_> {
        self.delivery_slots
            .acquire()
            .await
            .expect("the delivery slots are never closed")
    }

    /// Cancelled when the daemon starts stopping.
    pub(crate) fn stopping(&self) -> &CancellationToken {
        &self.shutdown
    }

    pub(crate) fn drains(&self) -> &Drains {
        &self.drains
    }

    pub fn socket(&self, id: &Identity) -> PathBuf {
        self.cfg.socket_path(id)
    }

    pub fn is_live(&self, id: &Identity) -> bool {
        probe(&self.socket(id)) == Liveness::Alive
    }

    pub(crate) fn adapter(
        &self,
        runtime: &crate::names::Runtime,
    ) -> Result<Arc<Adapter>, LifecycleError> {
        if let Some(a) = self.plugins.adapter(runtime.as_str()) {
            return Ok(a.clone());
        }
        Err(match self.plugins.why_not_serving(runtime.as_str()) {
            Some(reason) => LifecycleError::AdapterNotServing {
                runtime: runtime.clone(),
                reason,
            },
            None => LifecycleError::NoAdapter(runtime.clone()),
        })
    }

    /// Writes the session's record (what the supervisor walks). A failure
    /// is only loud: the record it replaces (the booting one written before
    /// the launch, or an earlier one) keeps the session supervised.
    fn record_session(&self, id: &Identity, cwd: &Path) {
        if let Err(e) = self.write_record(id, cwd, BootState::Up) {
            tracing::warn!(identity = %id, "session state write failed; the session stays supervised under its earlier record: {e}");
        }
    }

    /// Records a session that is about to boot (see `SessionState::booting`).
    /// A session that cannot be recorded is never started: nothing would
    /// supervise it, now or once the disk has room again.
    fn record_booting(&self, id: &Identity, cwd: &Path) -> Result<(), LifecycleError> {
        self.write_record(id, cwd, BootState::Booting)
            .map_err(|source| LifecycleError::State {
                what: format!(
                    "the session record of {id} (nothing was started: a session that cannot be recorded would run unsupervised)"
                ),
                source,
            })
    }

    fn write_record(&self, id: &Identity, cwd: &Path, boot: BootState) -> std::io::Result<()> {
        let cwd = canonical(cwd);
        let state = SessionState {
            identity: id.to_string(),
            runtime: id.runtime().to_string(),
            personality: id.personality().to_string(),
            cwd: cwd.to_string_lossy().into_owned(),
            woke_at: self.clock.now_ms(),
            booting: boot != BootState::Up,
            handed_over: boot == BootState::HandedOver,
        };
        store::write_session(&self.cfg, &state)
    }

    /// Longest a wake may hold the lock: waiting longer means the holder hangs.
    pub(crate) fn lock_patience(&self) -> Duration {
        self.cfg.boot_deadline + self.cfg.ready_gate + Duration::from_secs(30)
    }

    /// Runs one supervise pass unless one is already running in this
    /// process (`None` then).
    pub async fn try_supervise_tick(&self) -> Option<Vec<SuperviseOutcome>> {
        if self.ticking.swap(true, Ordering::SeqCst) {
            return None;
        }
        struct Done<'a>(&'a AtomicBool);
        impl Drop for Done<'_> {
            fn drop(&mut self) {
                self.0.store(false, Ordering::SeqCst);
            }
        }
        let _done = Done(&self.ticking);
        Some(self.supervise_tick().await)
    }

    /// The heal pass before a wake: the same tick (hands off what launchd or systemd owns) the daemon
    /// runs. Eager `/new` relaunches it finds are never dropped: they run
    /// here (CLI) or are handed to the daemon's loop.
    async fn heal(&self) {
        let Some(outcomes) = self.try_supervise_tick().await else {
            return;
        };
        if !outcomes
            .iter()
            .any(|o| o.action == SuperviseAction::NeedsEagerFresh)
        {
            return;
        }
        match &self.handoff {
            Handoff::Inline => {
                self.process_eager_relaunches(&outcomes).await;
            }
            Handoff::Kick { supervise, .. } => supervise.notify_one(),
        }
    }

    /// Wake (or reuse) a peer's session and deliver `task` to it.
    pub async fn wake_or_spawn(&self, args: &WakeArgs) -> WakeOutcome {
        self.heal().await;
        self.wake(args).await
    }

    /// `wake_or_spawn` without the heal pass (relaunches run inside a tick).
    async fn wake(&self, args: &WakeArgs) -> WakeOutcome {
        if !args.task.trim().is_empty() {
            crate::envelope::check_body(&args.task).map_err(LifecycleError::BadMessage)?;
        }
        let registry = self.registry()?;
        let peer = registry
            .find(&args.personality)
            .ok_or_else(|| LifecycleError::NotRegistered(args.personality.clone()))?;
        let p = &peer.personality;
        if let Some(owner) = guard::external_owner(&self.cfg, p) {
            self.log_wake(p, None, "refused", owner.describe(), None);
            return Err(LifecycleError::ExternallyOwned {
                personality: p.clone(),
                owner,
                mid_wake: false,
            });
        }
        let runtime = resolve_wake_runtime(args.runtime.as_deref(), peer)?;
        let adapter = self.adapter(&runtime)?;
        let id = Identity::new(&runtime, p);
        store::check_marks(&self.cfg, &id).map_err(LifecycleError::StateInTheWay)?;
        if store::has_mark(&self.cfg, &id, Mark::Stopped) {
            self.log_wake(p, Some(&id), "refused", "stopped", None);
            return Err(LifecycleError::Stopped(id));
        }

        let queued_at = Instant::now();
        let _lock = self.lock(&id).await?;
        // A stop or a plist install that landed while we waited still wins.
        if store::has_mark(&self.cfg, &id, Mark::Stopped) {
            self.log_wake(p, Some(&id), "refused", "stopped-mid-wake", None);
            return Err(LifecycleError::Stopped(id));
        }
        if let Some(owner) = guard::external_owner(&self.cfg, p) {
            let cause = format!("{}-mid-wake", owner.describe());
            self.log_wake(p, Some(&id), "refused", &cause, None);
            return Err(LifecycleError::ExternallyOwned {
                personality: p.clone(),
                owner,
                mid_wake: true,
            });
        }

        let liveness = probe(&self.socket(&id));
        if liveness == Liveness::Alive {
            self.check_orphan_boot(&id).await?;
        }
        if liveness != Liveness::Alive
            && let Some(reason) = self.failed_since(&id, queued_at)
        {
            // The wake this one queued behind just failed to boot the same
            // runtime: share its failure rather than boot it again.
            return Err(LifecycleError::Launch {
                id,
                reason: format!("{reason} (a concurrent wake just failed the same way)"),
                message_pasted: false,
            });
        }
        match liveness {
            // Unknown is never dead: spawning would kill whatever runs there.
            Liveness::Unknown(why) => Err(LifecycleError::LivenessUnknown { id, why }),
            // Live fast path: a concurrent wake already brought it up. A
            // task is a first message: a live session gets it through
            // `delivery`, from the caller.
            Liveness::Alive => {
                self.record_session(&id, &peer.cwd);
                Ok(Woken {
                    identity: id,
                    spawned: None,
                    task_delivered: (!args.task.trim().is_empty()).then_some(false),
                })
            }
            Liveness::Dead(_) => {
                self.spawn_locked(args, peer, &registry, &adapter, &id)
                    .await
            }
        }
    }

    /// The spawn half of a wake, under the lock, with the session known dead:
    /// the crash-loop guard, the mode, the launch, and what its outcome
    /// leaves recorded.
    async fn spawn_locked(
        &self,
        args: &WakeArgs,
        peer: &PeerRecord,
        registry: &Registry,
        adapter: &Arc<Adapter>,
        id: &Identity,
    ) -> WakeOutcome {
        // The dead session's record goes now: a failure before the launch
        // must not leave it for every later tick to retry.
        let _ = store::remove_session(&self.cfg, id);
        let cwd = match std::fs::canonicalize(&peer.cwd) {
            Ok(c) if c.is_dir() => c,
            _ => return Err(LifecycleError::CwdMissing(peer.cwd.clone())),
        };
        let spawn = Spawn {
            args,
            peer,
            registry,
            adapter,
            id,
            cwd: &cwd,
        };
        self.refuse_a_crash_loop(&spawn)?;
        let mode = self.decide_mode(&spawn).await?;
        let launched_at = self.clock.now_ms();
        let outcome = self.launch(&spawn, &mode).await?;
        self.settle(&spawn, outcome, mode, launched_at).await
    }

    /// A peer that keeps dying is left asleep instead of paying a boot (up
    /// to the boot deadline) on every message. An operator attaching is
    /// there to see why: the guard does not keep them out.
    fn refuse_a_crash_loop(&self, spawn: &Spawn<'_>) -> Result<(), LifecycleError> {
        let Spawn { args, peer, id, .. } = *spawn;
        let p = &peer.personality;
        if !args.hand_over
            && let Some(verdict) =
                deaths::crash_loop(&self.cfg, id, self.clock.now_ms(), self.guard())
        {
            let reason = format!("{} deaths in {}s", verdict.deaths, verdict.window_secs);
            self.log_wake(p, Some(id), "refused", "crash-loop", Some(&reason));
            return Err(LifecycleError::CrashLoop {
                id: id.clone(),
                deaths: verdict.deaths,
                window_secs: verdict.window_secs,
                last: verdict.last.cause,
            });
        }
        Ok(())
    }

    /// Fresh or resumed, and why: the /new mark, the caller's wish, and
    /// (only when it decides) whether the adapter finds something to resume.
    async fn decide_mode(&self, spawn: &Spawn<'_>) -> Result<SpawnDecision, LifecycleError> {
        let Spawn {
            args,
            peer,
            adapter,
            id,
            cwd,
            ..
        } = *spawn;
        let p = &peer.personality;
        let cwd_str = cwd.to_string_lossy();
        let new_mark_at_start = store::read_mark(&self.cfg, id, Mark::New);
        let new_mark = new_mark_at_start.is_some();
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
        // A clean park lets the message's topic decide.
        let topics = if store::has_mark(&self.cfg, id, Mark::IdleReaped) {
            let mb = self.mailbox()?;
            Some(mb.topics(id.as_str())?)
        } else {
            None
        };
        let parked = topics.as_deref().map(|topics| decide::Parked {
            natural: peer.intelligence == Intelligence::Natural,
            topic: args.topic.as_deref(),
            topics,
        });
        let ephemeral = self.is_ephemeral(peer);
        let mode = resolve_wake_mode(new_mark, args.resume, ephemeral, parked, || {
            check.unwrap_or_else(|| Err("resume check skipped".into()))
        });
        let (spawn_mode, resume_ref, cause) = match mode {
            WakeMode::Fail(reason) => {
                let cause = if args.resume == Some(true) {
                    "attach-nothing-to-resume"
                } else {
                    "resume-check-failed"
                };
                self.log_wake(p, Some(id), "fail", cause, Some(&reason));
                return Err(LifecycleError::CannotResume {
                    id: id.clone(),
                    reason,
                });
            }
            WakeMode::Fresh(c) => (SpawnMode::Fresh, None, c),
            WakeMode::Resume { cause, reference } => (SpawnMode::Resume, reference, cause),
        };
        self.log_wake(p, Some(id), spawn_mode.into(), cause.as_str(), None);
        Ok(SpawnDecision {
            spawn_mode,
            resume_ref,
            cause,
            new_mark_at_start,
        })
    }

    /// Builds the launch (the spec, the first message, the environment),
    /// records the boot, and runs it.
    async fn launch(
        &self,
        spawn: &Spawn<'_>,
        mode: &SpawnDecision,
    ) -> Result<LaunchOutcome, LifecycleError> {
        let Spawn {
            args,
            peer,
            registry,
            adapter,
            id,
            cwd,
        } = *spawn;
        let p = &peer.personality;
        let cwd_str = cwd.to_string_lossy().into_owned();
        let fresh = mode.spawn_mode == SpawnMode::Fresh;

        let info = adapter.info();
        let system_prompt_file = if info.uses_doctrine {
            self.write_system_prompt(peer, cwd, id, registry)?
        } else {
            None
        };
        let profile = registry::read_profile(cwd).ok().flatten();
        let seed = profile
            .as_ref()
            .and_then(|p| p.initial_prompt.as_deref())
            .filter(|_| !args.skip_seed);
        let first_message = compose_first_message(seed, &args.task, fresh);
        let launch_env = registry::read_launch_env(cwd, id.runtime());
        let rt = id.runtime().as_str();
        let spec = LaunchSpec {
            personality: p.to_string(),
            identity: id.to_string(),
            cwd: cwd_str.clone(),
            binary: self
                .cfg
                .resolve_binary(rt, info.binary_env.as_deref(), &info.default_binary),
            system_prompt_file: system_prompt_file.map(|f| f.to_string_lossy().into_owned()),
            resume: !fresh,
            resume_ref: mode.resume_ref.clone(),
            extra_args: launch_env.start_args,
            intelligence: Some(peer.intelligence.to_string()),
            home: std::fs::canonicalize(&self.cfg.home)
                .unwrap_or_else(|_| self.cfg.home.clone())
                .to_string_lossy()
                .into_owned(),
        };
        // Recorded before the launch: if this process dies mid-boot, the
        // session it leaves is still supervised (ticks skip it while we hold
        // the lock, and adopt or reap it once we are gone).
        // A hand-over asked of an earlier boot is not this one's.
        let _ = store::clear_mark(&self.cfg, id, Mark::HandOver);
        if let Err(e) = self.record_booting(id, cwd) {
            let reason = e.to_string();
            events::log(
                &self.cfg,
                "wake-failed",
                &[("identity", id.as_str()), ("reason", &reason)],
            );
            return Err(e);
        }
        let shim = self.usable_shim();
        Ok(launch::launch(
            &self.tmux,
            LaunchRequest {
                adapter,
                identity: id,
                socket: self.socket(id),
                spec,
                parent_env: self.cfg.env.clone(),
                launch_env: launch_env.env,
                first_message,
                boot_deadline: self.cfg.boot_deadline,
                ready_gate: self.cfg.ready_gate,
                stuck_after: self.cfg.stuck_screen,
                shim: shim.map(|exe| launch::Shim {
                    exe: exe.clone(),
                    exit_file: self.cfg.state_file(id, "exit"),
                    exits_log: self.cfg.log_dir.join("exits.log"),
                }),
                hand_over_after: args.hand_over.then_some(HAND_OVER_AFTER),
                marks: Some(launch::BootMarks {
                    hand_over: store::mark_path(&self.cfg, id, Mark::HandOver),
                    stopped: store::mark_path(&self.cfg, id, Mark::Stopped),
                }),
                observer: self.launch_observer.clone(),
                in_flight: self.in_flight(id),
                pane_log: shim.filter(|_| self.cfg.pane_logs).map(|exe| {
                    crate::panelog::pipe_command(
                        exe,
                        &crate::panelog::path(&self.cfg, id),
                        self.cfg.pane_log,
                    )
                }),
            },
        )
        .await)
    }

    /// What a launch's outcome leaves recorded (the session, a death, the
    /// /new mark consumed), and the wake's answer.
    async fn settle(
        &self,
        spawn: &Spawn<'_>,
        outcome: LaunchOutcome,
        mode: SpawnDecision,
        launched_at: u64,
    ) -> WakeOutcome {
        let Spawn {
            args,
            adapter: _,
            id,
            cwd,
            ..
        } = *spawn;
        let SpawnDecision {
            spawn_mode,
            cause,
            new_mark_at_start,
            ..
        } = mode;
        match outcome {
            LaunchOutcome::Failed {
                reason,
                session_left,
                message_pasted,
                died,
            } => {
                // A stop or a `new` that killed the boot asked for it.
                let asked = store::has_mark(&self.cfg, id, Mark::Stopped)
                    || store::read_mark(&self.cfg, id, Mark::New) != new_mark_at_start;
                if let Some(phase) = died.filter(|_| !asked) {
                    self.record_death(id, &reason, launched_at, phase);
                }
                if session_left {
                    // Keep what is still running under supervision; it is
                    // the fresh session the /new mark asked for.
                    self.record_session(id, cwd);
                    self.consume_new_mark(id, cause);
                } else if let Liveness::Dead(_) = probe(&self.socket(id)) {
                    let _ = store::remove_session(&self.cfg, id);
                } else {
                    // The kill after a failed boot did not take (or tmux
                    // timed out creating it): whatever runs there stays
                    // recorded, so the supervisor still watches it.
                    tracing::warn!(identity = %id, "a failed launch left something running; it stays supervised");
                }
                events::log(
                    &self.cfg,
                    "wake-failed",
                    &[("identity", id.as_str()), ("reason", &reason)],
                );
                self.record_failed_launch(id, &reason);
                // Stopped before anything was pasted: say that, plainly.
                if !message_pasted && store::has_mark(&self.cfg, id, Mark::Stopped) {
                    return Err(LifecycleError::Stopped(id.clone()));
                }
                Err(LifecycleError::Launch {
                    id: id.clone(),
                    reason,
                    message_pasted,
                })
            }
            LaunchOutcome::HandedOver { pane_tail } => {
                // The operator's now: never reaped at the boot deadline, no
                // paste or control key until it is ready (see
                // `SessionState::handed_over`).
                if let Err(e) = self.write_record(id, cwd, BootState::HandedOver) {
                    // Still recorded as booting: reaped at the boot deadline.
                    tracing::warn!(identity = %id, "cannot record the hand-over; the boot stays supervised as an ordinary one: {e}");
                }
                let _ = store::clear_mark(&self.cfg, id, Mark::HandOver);
                events::log(
                    &self.cfg,
                    "wake-handed-over",
                    &[("identity", id.as_str()), ("pane", &pane_tail)],
                );
                if !args.task.trim().is_empty() {
                    return Err(LifecycleError::NotDelivered {
                        id: id.clone(),
                        detail: "its boot was handed to its operator at a startup prompt".into(),
                    });
                }
                Ok(Woken {
                    identity: id.clone(),
                    spawned: Some(spawn_mode),
                    task_delivered: None,
                })
            }
            LaunchOutcome::Ready { delivered } => {
                self.record_session(id, cwd);
                self.consume_new_mark(id, cause);
                self.came_up(id);
                self.start_topics(id, spawn_mode, args.topic.as_deref());
                // A router takes no first message at launch: the caller
                // hands it over through `delivery`.
                let has_task = !args.task.trim().is_empty();
                Ok(Woken {
                    identity: id.clone(),
                    spawned: Some(spawn_mode),
                    task_delivered: has_task.then_some(delivered),
                })
            }
        }
    }

    /// A live session still recorded as booting, with the lock ours: its
    /// spawner died mid-boot, or it was handed to an operator at a startup
    /// prompt. Ready → adopt it here; not yet → refuse (a paste or a key now
    /// would land in a login picker or a dialog).
    pub(crate) async fn check_orphan_boot(&self, id: &Identity) -> Result<(), LifecycleError> {
        let Some(s) = store::read_session(&self.cfg, id).filter(|s| s.booting) else {
            return Ok(());
        };
        let s = self.take_hand_over(s);
        if self.boot_is_ready(id, &self.socket(id)).await {
            self.adopt_boot(id, s);
            return Ok(());
        }
        let reason = if s.handed_over {
            format!(
                "{id} is at a startup prompt handed to its operator (`iapeer attach {}`); it takes messages once it is ready",
                id.personality()
            )
        } else {
            format!(
                "{id} is still booting after its spawner died; the supervisor adopts it once it is ready (or reaps it after the boot deadline)"
            )
        };
        Err(LifecycleError::Launch {
            id: id.clone(),
            reason,
            message_pasted: false,
        })
    }

    /// A booting record with an `attach` hand-over waiting (asked while
    /// someone held the lock): the operator's now (lock held).
    pub(crate) fn take_hand_over(&self, mut s: SessionState) -> SessionState {
        let Some(id) = s.identity() else { return s };
        if s.booting && !s.handed_over && store::has_mark(&self.cfg, &id, Mark::HandOver) {
            s.handed_over = true;
            let _ = store::write_session(&self.cfg, &s);
        }
        let _ = store::clear_mark(&self.cfg, &id, Mark::HandOver);
        s
    }

    /// A boot that became ready without its spawner (lock held): supervised
    /// as up from now on.
    pub(crate) fn adopt_boot(&self, id: &Identity, mut s: SessionState) {
        s.booting = false;
        s.handed_over = false;
        s.woke_at = self.clock.now_ms();
        let _ = store::write_session(&self.cfg, &s);
        self.came_up(id);
    }

    /// A runtime came up: deaths outside the window no longer count, and
    /// any streak of failed boots is over.
    fn came_up(&self, id: &Identity) {
        let _ = deaths::trim(
            &self.cfg,
            id,
            self.clock.now_ms(),
            self.cfg.crashloop_window_secs,
        );
    }

    /// The shim, if its binary is still there (an upgrade in progress may
    /// have removed it): without it the runtime runs bare, unrecorded.
    fn usable_shim(&self) -> Option<&PathBuf> {
        let shim = self.shim.as_ref()?;
        if shim.is_file() {
            Some(shim)
        } else {
            tracing::warn!(shim = %shim.display(), "the session shim is gone; this session's exit will not be recorded");
            None
        }
    }

    /// Adds a death to the identity's ring, with the shim's exit record
    /// when it belongs to this session (written at or after `since_ms`).
    /// A runtime that was up and quit cleanly (`/exit`) did not die.
    pub(crate) fn record_death(&self, id: &Identity, cause: &str, since_ms: u64, phase: Phase) {
        let exit = deaths::read_exit(&self.cfg, id, since_ms);
        if phase == Phase::Running && exit.as_ref().is_some_and(|e| e.clean_quit()) {
            return;
        }
        let death = deaths::Death {
            at: self.clock.now_ms(),
            boot: phase == Phase::Boot,
            status: exit.as_ref().and_then(|e| e.status),
            signal: exit.as_ref().and_then(|e| e.signal),
            cause: cause.to_string(),
            tail: exit.map(|e| e.tail).unwrap_or_default(),
        };
        if let Err(e) = deaths::record(&self.cfg, id, death) {
            tracing::warn!(identity = %id, "cannot record a death: {e}");
        }
    }

    /// The crash-loop guard's settings.
    pub(crate) fn guard(&self) -> deaths::Guard {
        deaths::Guard {
            max: self.cfg.crashloop_max,
            window_secs: self.cfg.crashloop_window_secs,
            boot_deadline_secs: self.cfg.boot_deadline.as_secs(),
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
    ) -> Result<Option<PathBuf>, LifecycleError> {
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
            .map_err(|e| LifecycleError::state(path.display().to_string(), e))?;
        Ok(Some(path))
    }

    /// Whether the peer's profile says `wake_policy: ephemeral`.
    pub(crate) fn is_ephemeral(&self, peer: &PeerRecord) -> bool {
        registry::read_profile(&peer.cwd)
            .ok()
            .flatten()
            .is_some_and(|p| p.ephemeral)
    }

    /// A session came up: the park is over, an ephemeral one is unarmed,
    /// a fresh one forgets the last session's topics, and the wake's topic
    /// is its first.
    fn start_topics(&self, id: &Identity, mode: SpawnMode, topic: Option<&str>) {
        let _ = store::clear_mark(&self.cfg, id, Mark::IdleReaped);
        let _ = store::clear_mark(&self.cfg, id, Mark::EphemeralArmed);
        let Ok(mb) = self.mailbox() else { return };
        if mode == SpawnMode::Fresh {
            let _ = mb.reset_topics(id.as_str());
        }
        if let Some(topic) = topic.map(str::trim).filter(|t| !t.is_empty()) {
            self.note_topic(id, topic);
        }
    }

    /// A session saw `topic` (`ev=topic-note` in lifecycle.log).
    pub(crate) fn note_topic(&self, id: &Identity, topic: &str) {
        let topic = crate::envelope::clip_topic(topic);
        if topic.is_empty() {
            return;
        }
        if let Ok(mb) = self.mailbox()
            && mb
                .note_topic(id.as_str(), &topic, self.clock.now_ms())
                .is_ok()
        {
            events::log(
                &self.cfg,
                "topic-note",
                &[("identity", id.as_str()), ("topic", &topic)],
            );
        }
    }

    /// Where a paste into `id` is recorded while in flight.
    pub(crate) fn in_flight(&self, id: &Identity) -> paste::InFlight {
        paste::InFlight(store::pasting_path(&self.cfg, id))
    }

    fn log_wake(
        &self,
        p: &Personality,
        id: Option<&Identity>,
        mode: &str,
        cause: &str,
        reason: Option<&str>,
    ) {
        let runtime = id.map(|id| id.runtime().as_str()).unwrap_or("");
        let id = id.map(Identity::as_str).unwrap_or("");
        let mut fields = vec![
            ("personality", p.as_str()),
            ("identity", id),
            ("runtime", runtime),
            ("mode", mode),
            ("cause", cause),
        ];
        if let Some(r) = reason {
            fields.push(("reason", r));
        }
        events::log(&self.cfg, "wake", &fields);
    }
}
