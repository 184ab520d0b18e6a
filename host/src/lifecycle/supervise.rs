//! The supervise tick — the single reap pass, hands off what launchd or systemd owns — and the eager
//! relaunch of peers that died carrying a `/new` mark.
//!
//! Every action that changes a session (forgetting a dead one, killing an
//! idle one) happens with the identity's wake lock held and the state read
//! again under it: a lock held by someone else means a wake or a delivery
//! is at work, so the session is busy and this tick leaves it alone.

use std::path::Path;

use serde::Serialize;

use super::{Lifecycle, WakeArgs, WakeOutcome, canonical};
use crate::deaths::Phase;
use crate::events;
use crate::fsutil;
use crate::guard;
use crate::names::Identity;
use crate::store::{self, Mark, SessionState};
use crate::tmux::{Liveness, TmuxError, probe};
use crate::wakelock::{self, WakeLock};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, strum::IntoStaticStr, strum::Display)]
#[serde(rename_all = "kebab-case")]
#[strum(serialize_all = "kebab-case")]
pub enum SuperviseAction {
    /// Idle longer than the idle bound: killed (the next message resumes).
    ReapedIdle,
    /// An ephemeral peer done (armed and quiet) or idle past its bound:
    /// killed, no death, no park (its next message starts fresh).
    ReapedEphemeral,
    /// Dead without a `/new` mark: state removed (the next message wakes).
    ReapedGone,
    /// Dead while stopped: state removed, never relaunched.
    SkippedStopped,
    /// Owned by launchd / a systemd unit: not touched (the wire name
    /// predates systemd support).
    #[serde(rename = "skipped-launchd")]
    #[strum(serialize = "skipped-launchd")]
    SkippedExternallyOwned,
    /// A wake or a delivery holds the peer's lock: left for the next tick.
    SkippedBusy,
    Alive,
    /// Liveness could not be decided: not touched.
    Unknown,
    /// Its spawner died mid-boot; it became ready: now supervised as usual.
    AdoptedBoot,
    /// Its spawner died mid-boot and it never became ready: killed.
    ReapedBoot,
    /// Its spawner died mid-boot; it is still within the boot deadline.
    Booting,
    /// Died carrying a `/new` mark: relaunch it fresh now. Its `.session`
    /// stays until the relaunch settles, so a relaunch that never runs (the
    /// process died) is found again by the next tick.
    NeedsEagerFresh,
}

impl SuperviseAction {
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SuperviseOutcome {
    pub identity: String,
    pub action: SuperviseAction,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub personality: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub runtime: Option<String>,
}

impl SuperviseOutcome {
    fn new(id: &Identity, action: SuperviseAction, reason: Option<String>) -> Self {
        SuperviseOutcome {
            identity: id.to_string(),
            action,
            reason,
            personality: None,
            runtime: None,
        }
    }
}

/// A session's idle age against its bound.
struct Idleness {
    age: u64,
    bound: u64,
    /// Why the activity could not be read (the bound is then the max age).
    unreadable: Option<String>,
}

impl Idleness {
    fn describe(&self) -> String {
        match &self.unreadable {
            None => format!("idle {}s", self.age),
            Some(e) => format!(
                "activity unreadable ({e}) for {}s, past IAPEER_MAX_AGE_SECS ({}s)",
                self.age, self.bound
            ),
        }
    }
}

/// How a recorded session ended: the shim's record of it when there is
/// one, else what the probe saw.
fn exit_description(
    cfg: &crate::config::Config,
    id: &Identity,
    s: &SessionState,
    probe_saw: &str,
) -> String {
    crate::deaths::read_exit(cfg, id, s.woke_at)
        .map_or_else(|| probe_saw.to_string(), |e| e.describe())
}

/// How long a booting record may lack its session: a spawner killed right
/// after recording it may have left a tmux client still creating it.
const SPAWN_GRACE: std::time::Duration = std::time::Duration::from_secs(30);

/// The identity's wake lock if it is free now; a busy lock means a wake
/// or a delivery is at work, and this tick leaves the session alone.
fn try_lock(cfg: &crate::config::Config, id: &Identity) -> Result<WakeLock, SuperviseOutcome> {
    match wakelock::try_acquire(cfg, id) {
        Ok(Some(lock)) => Ok(lock),
        Ok(None) => Err(SuperviseOutcome::new(
            id,
            SuperviseAction::SkippedBusy,
            None,
        )),
        Err(e) => Err(SuperviseOutcome::new(
            id,
            SuperviseAction::Unknown,
            Some(e.to_string()),
        )),
    }
}

/// What one session needs, decided without the lock.
enum Verdict {
    Done(SuperviseOutcome),
    /// Dead, or idle past the bound: act only under the lock.
    Act,
}

impl Lifecycle {
    /// One pass over every recorded session: skip externally owned peers,
    /// forget dead ones (or flag them for an eager fresh relaunch), reap the
    /// idle ones. Only a definite death reaps; an undecidable probe leaves
    /// the session alone.
    pub async fn supervise_tick(&self) -> Vec<SuperviseOutcome> {
        let now = self.clock.now_ms();
        let mut out = Vec::new();
        let mut log = Vec::new();
        // A writer killed mid-write leaves its temp file behind: swept in
        // the same listing.
        for (id, state) in store::read_sessions_sweeping(&self.cfg) {
            let outcome = self.supervise_one(&id, &state, now).await;
            if !matches!(
                outcome.action,
                SuperviseAction::Alive
                    | SuperviseAction::SkippedExternallyOwned
                    | SuperviseAction::Booting
            ) {
                let mut fields = vec![
                    ("identity", id.as_str()),
                    ("action", outcome.action.as_str()),
                ];
                if let Some(r) = &outcome.reason {
                    fields.push(("reason", r));
                }
                log.push(events::line("supervise", &fields));
            }
            out.push(outcome);
        }
        events::append(&self.cfg, &log);
        out
    }

    async fn supervise_one(&self, id: &Identity, s: &SessionState, now: u64) -> SuperviseOutcome {
        // Owned by launchd or systemd: hands off, before anything could touch it.
        if guard::is_externally_managed(&self.cfg, id.personality()) {
            return SuperviseOutcome::new(id, SuperviseAction::SkippedExternallyOwned, None);
        }
        if s.booting {
            return self.supervise_boot(id, now).await;
        }
        if let Verdict::Done(outcome) = self.look(id, s, now).await {
            return outcome;
        }
        let _lock = match try_lock(&self.cfg, id) {
            Ok(lock) => lock,
            Err(outcome) => return outcome,
        };
        // Under the lock, from the state as it is now: a wake or a delivery
        // may have finished between the look and the lock.
        let Some(s) = store::read_session(&self.cfg, id) else {
            return SuperviseOutcome::new(id, SuperviseAction::SkippedBusy, None);
        };
        match self.look(id, &s, now).await {
            Verdict::Done(outcome) => outcome,
            Verdict::Act => self.act_locked(id, &s, now).await,
        }
    }

    /// A session recorded as booting. While its spawner holds the lock it
    /// is busy; once the lock is free, the spawner is gone (a finished boot
    /// rewrites the record): adopt it if it is ready, reap it once the boot
    /// deadline has passed, else leave it for the next tick.
    async fn supervise_boot(&self, id: &Identity, now: u64) -> SuperviseOutcome {
        let _lock = match try_lock(&self.cfg, id) {
            Ok(lock) => lock,
            Err(outcome) => return outcome,
        };
        let Some(s) = store::read_session(&self.cfg, id).filter(|s| s.booting) else {
            // The boot finished (or someone forgot it) meanwhile.
            return SuperviseOutcome::new(id, SuperviseAction::SkippedBusy, None);
        };
        let s = self.take_hand_over(s);
        let sock = self.socket(id);
        match probe(&sock) {
            Liveness::Unknown(e) => SuperviseOutcome::new(id, SuperviseAction::Unknown, Some(e)),
            Liveness::Dead(cause) => {
                // The record is written before `tmux new-session`: a spawner
                // killed in between may have left a tmux client that is
                // still bringing the session up. Only the shim's exit record
                // proves the runtime ran (and died).
                let exit = crate::deaths::read_exit(&self.cfg, id, s.woke_at);
                let age_ms = now.saturating_sub(s.woke_at);
                if exit.is_none() && !s.handed_over && u128::from(age_ms) < SPAWN_GRACE.as_millis()
                {
                    return SuperviseOutcome::new(id, SuperviseAction::Booting, None);
                }
                let how = exit_description(&self.cfg, id, &s, cause.describe());
                let how = if s.handed_over {
                    // A handed-over boot that ended was the operator's to end.
                    format!("ended at its startup prompt, handed to its operator: {how}")
                } else if exit.is_some() {
                    let how = format!("died while booting with no spawner: {how}");
                    self.record_death(id, &how, s.woke_at, Phase::Boot);
                    how
                } else {
                    // Nothing ran: no death for the crash-loop guard.
                    format!("its spawner died before the session came up: {how}")
                };
                let _ = store::remove_session(&self.cfg, id);
                SuperviseOutcome::new(id, SuperviseAction::ReapedGone, Some(how))
            }
            Liveness::Alive => {
                if self.boot_is_ready(id, &sock).await {
                    self.adopt_boot(id, s);
                    return SuperviseOutcome::new(
                        id,
                        SuperviseAction::AdoptedBoot,
                        Some("its spawner died; the session is ready".into()),
                    );
                }
                let age_ms = now.saturating_sub(s.woke_at);
                // The operator's boot waits for them as long as an idle
                // session would; an orphan only as long as a boot may take.
                let patience_ms = if s.handed_over {
                    self.cfg.idle_secs.saturating_mul(1000)
                } else {
                    u64::try_from(self.cfg.boot_deadline.as_millis()).unwrap_or(u64::MAX)
                };
                if age_ms <= patience_ms {
                    return SuperviseOutcome::new(id, SuperviseAction::Booting, None);
                }
                let age = age_ms / 1000;
                let tail = self
                    .tmux
                    .capture_pane(&sock, id.as_str())
                    .await
                    .map(|p| crate::paste::pane_tail(&p))
                    .unwrap_or_default();
                if let Err(e) = self.kill_session(id).await {
                    return SuperviseOutcome::new(
                        id,
                        SuperviseAction::Unknown,
                        Some(format!("an orphaned boot could not be killed: {e}")),
                    );
                }
                if s.handed_over {
                    let why = format!(
                        "handed to its operator at a startup prompt and left there {age}s (idle bound {}s); pane tail: {tail}",
                        self.cfg.idle_secs
                    );
                    let _ = store::remove_session(&self.cfg, id);
                    return SuperviseOutcome::new(id, SuperviseAction::ReapedIdle, Some(why));
                }
                let why = format!(
                    "never-became-ready after its spawner died ({age}s booting); pane tail: {tail}"
                );
                self.record_death(id, &why, s.woke_at, Phase::Boot);
                let _ = store::remove_session(&self.cfg, id);
                SuperviseOutcome::new(id, SuperviseAction::ReapedBoot, Some(why))
            }
        }
    }

    /// Has a booting session reached its input composer (a router: at once)?
    pub(super) async fn boot_is_ready(&self, id: &Identity, sock: &Path) -> bool {
        let Some(adapter) = self.plugins.adapter(id.runtime().as_str()) else {
            return true;
        };
        if adapter.info().kind == crate::plugins::AdapterKind::Router {
            return true;
        }
        let Ok(pane) = self.tmux.capture_pane(sock, id.as_str()).await else {
            return false;
        };
        matches!(adapter.boot_dialog_keys(&pane).await, Ok(None))
            && adapter.is_input_ready(&pane).await.unwrap_or(false)
    }

    /// The lock-free look at one session.
    async fn look(&self, id: &Identity, s: &SessionState, now: u64) -> Verdict {
        match probe(&self.socket(id)) {
            Liveness::Unknown(e) => {
                Verdict::Done(SuperviseOutcome::new(id, SuperviseAction::Unknown, Some(e)))
            }
            Liveness::Dead(_) => Verdict::Act,
            Liveness::Alive => match self.idleness(id, s, now).await {
                Err(outcome) => Verdict::Done(outcome),
                Ok(idle) if idle.age > idle.bound => Verdict::Act,
                Ok(idle)
                    if self
                        .ephemeral_bound(id, s, idle.age)
                        .is_some_and(|b| idle.age > b) =>
                {
                    Verdict::Act
                }
                Ok(_) => Verdict::Done(SuperviseOutcome::new(id, SuperviseAction::Alive, None)),
            },
        }
    }

    /// How idle a session is: seconds since its last sign of life (its
    /// activity proxy, never older than the wake itself — a resumed
    /// session's transcript can be hours old) against the idle bound.
    ///
    /// An adapter that cannot read the activity is not evidence of
    /// idleness, so the session is *unknown* — but not forever: once it is
    /// older than `IAPEER_MAX_AGE_SECS` (4 h) since its wake, it is reaped
    /// as idle, so a session nobody can read never runs unsupervised.
    async fn idleness(
        &self,
        id: &Identity,
        s: &SessionState,
        now: u64,
    ) -> Result<Idleness, SuperviseOutcome> {
        // Adapters expect a canonical cwd; older state files (and the
        // TypeScript iapeer's) may hold it as registered.
        let cwd = canonical(Path::new(&s.cwd));
        let cwd = cwd.to_string_lossy();
        // No adapter (a plugin removed): wokeAt alone bounds it.
        let activity = match self.plugins.adapter(id.runtime().as_str()) {
            None => 0,
            Some(a) => match a.newest_activity_mtime(&cwd).await {
                Ok(mt) => mt.unwrap_or(0),
                Err(e) => {
                    let since_wake = now.saturating_sub(s.woke_at) / 1000;
                    if since_wake > self.cfg.max_age_secs {
                        return Ok(Idleness {
                            age: since_wake,
                            bound: self.cfg.max_age_secs,
                            unreadable: Some(e.to_string()),
                        });
                    }
                    return Err(SuperviseOutcome::new(
                        id,
                        SuperviseAction::Unknown,
                        Some(format!("activity unknown: {e}")),
                    ));
                }
            },
        };
        Ok(Idleness {
            age: now.saturating_sub(activity.max(s.woke_at)) / 1000,
            bound: self.cfg.idle_secs,
            unreadable: None,
        })
    }

    /// The idle bound of an ephemeral session (`None`: not ephemeral):
    /// short once armed, longer while it never answered.
    fn ephemeral_bound(&self, id: &Identity, s: &SessionState, age: u64) -> Option<u64> {
        // Under both bounds nothing is reaped: the profile is not read
        // (this runs for every live session on every tick).
        if age
            <= self
                .cfg
                .ephemeral_quiet_secs
                .min(self.cfg.ephemeral_idle_secs)
        {
            return None;
        }
        let ephemeral = crate::registry::read_profile(Path::new(&s.cwd))
            .ok()
            .flatten()
            .is_some_and(|p| p.ephemeral);
        ephemeral.then(|| {
            if store::has_mark(&self.cfg, id, Mark::EphemeralArmed) {
                self.cfg.ephemeral_quiet_secs
            } else {
                self.cfg.ephemeral_idle_secs
            }
        })
    }

    /// An ephemeral session whose work is done: armed (it answered, or
    /// said `self-done`) and quiet for `IAPEER_EPHEMERAL_QUIET_SECS`, or
    /// never armed and idle for `IAPEER_EPHEMERAL_IDLE_SECS`. Killed without a death
    /// or a park; its mailbox's next message wakes a fresh one.
    async fn reap_ephemeral(
        &self,
        id: &Identity,
        s: &SessionState,
        idle: &Idleness,
    ) -> Option<SuperviseOutcome> {
        let bound = self.ephemeral_bound(id, s, idle.age)?;
        if idle.age <= bound {
            return None;
        }
        let why = if store::has_mark(&self.cfg, id, Mark::EphemeralArmed) {
            format!("armed and quiet {}s (outcome ephemeral-done)", idle.age)
        } else {
            format!(
                "unarmed idle {}s (outcome ephemeral-unarmed-bound)",
                idle.age
            )
        };
        if let Err(e) = self.kill_session(id).await {
            return Some(SuperviseOutcome::new(
                id,
                SuperviseAction::Unknown,
                Some(format!("{why} but could not be killed: {e}")),
            ));
        }
        let _ = store::clear_mark(&self.cfg, id, Mark::EphemeralArmed);
        let _ = store::remove_session(&self.cfg, id);
        Some(SuperviseOutcome::new(
            id,
            SuperviseAction::ReapedEphemeral,
            Some(why),
        ))
    }

    /// Forgets, flags or reaps a session whose look said so (lock held).
    async fn act_locked(&self, id: &Identity, s: &SessionState, now: u64) -> SuperviseOutcome {
        match probe(&self.socket(id)) {
            Liveness::Unknown(e) => SuperviseOutcome::new(id, SuperviseAction::Unknown, Some(e)),
            Liveness::Dead(cause) => {
                // Junk where a mark belongs is not a mark: said here, and
                // refused by the next wake.
                if let Err(e) = store::check_marks(&self.cfg, id) {
                    tracing::warn!(identity = %id, "{e}");
                }
                if store::has_mark(&self.cfg, id, Mark::Stopped) {
                    let _ = store::remove_session(&self.cfg, id);
                    return SuperviseOutcome::new(id, SuperviseAction::SkippedStopped, None);
                }
                if store::has_mark(&self.cfg, id, Mark::New) {
                    return SuperviseOutcome {
                        personality: Some(id.personality().to_string()),
                        runtime: Some(id.runtime().to_string()),
                        ..SuperviseOutcome::new(
                            id,
                            SuperviseAction::NeedsEagerFresh,
                            Some("/new graceful mark — eager fresh re-launch".into()),
                        )
                    };
                }
                // Nobody asked for this one: a death, unless the runtime
                // quit cleanly on its own (`/exit`). The shim's record says
                // how, when it belongs to this session.
                let how = exit_description(&self.cfg, id, s, cause.describe());
                self.record_death(id, &how, s.woke_at, Phase::Running);
                let _ = store::remove_session(&self.cfg, id);
                SuperviseOutcome::new(id, SuperviseAction::ReapedGone, Some(how))
            }
            Liveness::Alive => {
                let idle = match self.idleness(id, s, now).await {
                    Ok(idle) => idle,
                    Err(outcome) => return outcome,
                };
                if let Some(outcome) = self.reap_ephemeral(id, s, &idle).await {
                    return outcome;
                }
                if idle.age <= idle.bound {
                    return SuperviseOutcome::new(id, SuperviseAction::Alive, None);
                }
                let why = idle.describe();
                if let Err(e) = self.kill_session(id).await {
                    return SuperviseOutcome::new(
                        id,
                        SuperviseAction::Unknown,
                        Some(format!("{why} but could not be killed: {e}")),
                    );
                }
                let _ = store::remove_session(&self.cfg, id);
                // A clean park: the next wake lets the topic decide.
                let _ = store::set_mark(&self.cfg, id, Mark::IdleReaped, self.clock.now_ms());
                SuperviseOutcome::new(id, SuperviseAction::ReapedIdle, Some(why))
            }
        }
    }

    /// Relaunches, fresh, every peer the tick flagged `needs-eager-fresh`.
    /// A relaunch that fails leaves the `/new` mark (the peer then wakes
    /// fresh on its next message: graceful degrades to lazy, never lost)
    /// and forgets the dead session, so later ticks do not retry forever.
    pub async fn process_eager_relaunches(
        &self,
        outcomes: &[SuperviseOutcome],
    ) -> Vec<WakeOutcome> {
        let mut results = Vec::new();
        for o in outcomes {
            let (SuperviseAction::NeedsEagerFresh, Some(personality), Some(runtime)) =
                (o.action, &o.personality, &o.runtime)
            else {
                continue;
            };
            let args = WakeArgs {
                topic: None,
                skip_seed: false,
                personality: personality.clone(),
                runtime: Some(runtime.clone()),
                task: String::new(),
                resume: None,
                hand_over: false,
            };
            let result = self.wake(&args).await;
            if let Err(e) = &result {
                tracing::warn!(identity = %o.identity, "eager fresh relaunch failed; the /new mark stays: {e}");
                if let Ok(id) = Identity::parse(&o.identity) {
                    self.forget_if_dead(&id);
                }
            }
            results.push(result);
        }
        results
    }

    /// Drops the record of a session that is provably dead, unless someone
    /// holds its lock (then they own its fate).
    fn forget_if_dead(&self, id: &Identity) {
        if let Ok(Some(_lock)) = wakelock::try_acquire(&self.cfg, id)
            && let Liveness::Dead(_) = probe(&self.socket(id))
        {
            let _ = store::remove_session(&self.cfg, id);
        }
    }

    /// Kills a session; the server (and its socket) go with the last one.
    /// `Err` when tmux did not answer in time: the session may still run, so
    /// it is never treated as gone.
    pub async fn kill_session(&self, id: &Identity) -> Result<(), String> {
        let sock = self.socket(id);
        match probe(&sock) {
            Liveness::Dead(_) => {
                let _ = fsutil::remove_if_exists(&sock);
                return Ok(());
            }
            // Not provably ours: never talk to it.
            Liveness::Unknown(why) => return Err(why),
            Liveness::Alive => {}
        }
        if let Err(e @ (TmuxError::Timeout { .. } | TmuxError::Spawn(_))) =
            self.tmux.kill_session(&sock, id.as_str()).await
        {
            return Err(e.to_string());
        }
        match self.tmux.list_sessions(&sock).await {
            // Someone else's session shares the server: leave it running.
            Ok(rest) if !rest.is_empty() => Ok(()),
            Ok(_) => {
                let _ = self.tmux.kill_server(&sock).await;
                let _ = fsutil::remove_if_exists(&sock);
                Ok(())
            }
            // "no server running": the last session took the server along.
            Err(TmuxError::Failed { .. }) => {
                if let Liveness::Dead(_) = probe(&sock) {
                    let _ = fsutil::remove_if_exists(&sock);
                }
                Ok(())
            }
            Err(e) => Err(e.to_string()),
        }
    }
}
