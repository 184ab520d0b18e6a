//! Operator verbs: stop / start / new / mark-new, attach, folder launch, and
//! the fleet listing. All of them reuse the wake for bring-up, so the hands-off guard, the
//! wake lock and the stopped mark apply everywhere. They return typed
//! outcomes; printing them is the caller's business (CLI or fleet API).

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::{Lifecycle, LifecycleError, WakeArgs, WakeReport, canonical, resolve_wake_runtime};
use crate::guard;
use crate::names::{Identity, Personality, Runtime};
use crate::plugins::TurnState;
use crate::registry::{self, PeerRecord};
use crate::store::{self, Mark};
use crate::tmux::{Liveness, probe};

/// What a stop / start / new / mark-new did to one runtime of a peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, strum::IntoStaticStr, strum::Display)]
#[serde(rename_all = "kebab-case")]
#[strum(serialize_all = "kebab-case")]
pub enum VerbAction {
    Stopped,
    Started,
    Fresh,
    Marked,
    Failed,
    /// Launchd or a systemd user unit owns the peer: nothing was touched.
    #[serde(rename = "refused-launchd")]
    #[strum(serialize = "refused-launchd")]
    RefusedExternallyOwned,
}

/// One row of a stop / start / new / mark-new outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VerbOutcome {
    pub personality: String,
    pub runtime: String,
    pub action: VerbAction,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl VerbOutcome {
    fn new(
        peer: &PeerRecord,
        runtime: &Runtime,
        action: VerbAction,
        reason: Option<String>,
    ) -> Self {
        VerbOutcome {
            personality: peer.personality.to_string(),
            runtime: runtime.to_string(),
            action,
            reason,
        }
    }

    pub fn ok(&self) -> bool {
        !matches!(
            self.action,
            VerbAction::Failed | VerbAction::RefusedExternallyOwned
        )
    }
}

/// `new`'s outcome row and the wake that brought the fresh session up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NewOutcome {
    pub outcome: VerbOutcome,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wake: Option<WakeReport>,
}

/// The peers a stop / start applies to.
#[derive(Debug, Clone, Copy)]
pub enum Peers<'a> {
    /// One peer: one runtime, or every declared one.
    One {
        personality: &'a str,
        runtime: Option<&'a str>,
    },
    /// Every registered peer, every declared runtime.
    All,
}

fn hands_off(owner: &guard::Owner) -> String {
    format!("{} (hands off: its supervisor owns it)", owner.describe())
}

/// Where `attach` connects.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AttachTarget {
    pub identity: String,
    pub socket: PathBuf,
    pub woke: bool,
    pub runtime: String,
}

/// The state of one runtime of a peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, strum::IntoStaticStr, strum::Display)]
#[serde(rename_all = "lowercase")]
#[strum(serialize_all = "lowercase")]
pub enum RuntimeState {
    Live,
    Asleep,
    Stopped,
    /// Liveness undecidable (a socket that is not provably ours).
    Unknown,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RuntimeStatus {
    pub runtime: String,
    pub status: RuntimeState,
    /// How this runtime's session last ended, if one ever did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_exit: Option<LastExit>,
    /// Asleep and refused wakes by the crash-loop guard (`start --reset`
    /// clears it). Only present when true.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub crash_loop: bool,
    /// Where a live TUI is in its turn, when its adapter can tell.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub turn: Option<TurnState>,
}

/// A session's last exit, as the session shim recorded it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LastExit {
    /// ISO 8601 UTC, so it also sorts by time.
    pub at: String,
    /// `exited (status 1)`, `killed by signal 9`, `hung up (…)`.
    pub how: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signal: Option<i32>,
    /// The pane's last lines.
    pub tail: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PeerStatus {
    pub personality: String,
    pub default_runtime: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_active_runtime: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_active_ms: Option<u64>,
    pub intelligence: String,
    pub description: String,
    pub cwd: PathBuf,
    /// Owned by launchd or a systemd user unit (the wire name predates
    /// systemd support).
    #[serde(rename = "launchd_managed")]
    pub externally_managed: bool,
    /// Which supervisor owns it: `launchd` or `systemd`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub managed_by: Option<&'static str>,
    pub runtimes: Vec<RuntimeStatus>,
    /// Messages waiting in its mailbox.
    pub queue_depth: u64,
}

impl Lifecycle {
    /// The registry record of a peer.
    pub fn registered_peer(&self, personality: &str) -> Result<PeerRecord, LifecycleError> {
        self.registry()?
            .find(personality)
            .cloned()
            .ok_or_else(|| LifecycleError::NotRegistered(personality.to_string()))
    }

    /// The peers and runtimes a stop/start acts on: an explicit runtime
    /// (must be declared), else every declared one.
    fn verb_targets(
        &self,
        peers: Peers<'_>,
    ) -> Result<Vec<(PeerRecord, Vec<Runtime>)>, LifecycleError> {
        match peers {
            Peers::One {
                personality,
                runtime,
            } => {
                let peer = self.registered_peer(personality)?;
                let runtimes = match runtime {
                    Some(r) => vec![resolve_wake_runtime(Some(r), &peer)?],
                    None => peer.runtimes.clone(),
                };
                Ok(vec![(peer, runtimes)])
            }
            Peers::All => Ok(self
                .registry()?
                .peers
                .into_iter()
                .map(|p| {
                    let runtimes = p.runtimes.clone();
                    (p, runtimes)
                })
                .collect()),
        }
    }

    /// The refusal rows of a peer an external supervisor owns.
    fn refused_externally_owned(
        &self,
        peer: &PeerRecord,
        runtimes: &[Runtime],
    ) -> Option<Vec<VerbOutcome>> {
        let owner = guard::external_owner(&self.cfg, &peer.personality)?;
        Some(
            runtimes
                .iter()
                .map(|rt| {
                    VerbOutcome::new(
                        peer,
                        rt,
                        VerbAction::RefusedExternallyOwned,
                        Some(hands_off(&owner)),
                    )
                })
                .collect(),
        )
    }

    /// `stop`: a durable operator halt. The mark is set first (new wakes
    /// refuse at once), then the wake lock is taken (an in-flight wake
    /// finishes first), then the session is killed.
    pub async fn stop(&self, peers: Peers<'_>) -> Result<Vec<VerbOutcome>, LifecycleError> {
        let mut out = Vec::new();
        for (peer, runtimes) in self.verb_targets(peers)? {
            if let Some(refused) = self.refused_externally_owned(&peer, &runtimes) {
                out.extend(refused);
                continue;
            }
            for rt in runtimes {
                out.push(self.stop_one(&peer, rt).await);
            }
        }
        self.log_verb("stop", &out);
        Ok(out)
    }

    /// One `operator` event per outcome row in `lifecycle.log`: who was
    /// stopped, started or renewed by hand shows in the event stream (and
    /// explains a death afterwards).
    fn log_verb(&self, verb: &str, rows: &[VerbOutcome]) {
        let lines: Vec<String> = rows
            .iter()
            .map(|r| {
                let identity = format!("{}-{}", r.runtime, r.personality);
                let action: &'static str = r.action.into();
                let mut fields = vec![
                    ("verb", verb),
                    ("identity", identity.as_str()),
                    ("action", action),
                ];
                if let Some(reason) = &r.reason {
                    fields.push(("reason", reason));
                }
                crate::events::line("operator", &fields)
            })
            .collect();
        crate::events::append(&self.cfg, &lines);
    }

    async fn stop_one(&self, peer: &PeerRecord, rt: Runtime) -> VerbOutcome {
        let id = Identity::new(&rt, &peer.personality);
        let row = |action, reason| VerbOutcome::new(peer, &rt, action, reason);
        // Junk at another mark's path does not keep the peer running; junk
        // at the stopped mark's own path still lets the session be killed,
        // and the row says the halt is not durable.
        let marked = store::set_mark(&self.cfg, &id, Mark::Stopped, self.clock.now_ms());
        // Even if an in-flight wake outlasts our patience, the operator
        // asked for a halt: kill anyway (that wake then fails).
        let _lock = self.lock_or_proceed(&id).await;
        let was_live = self.is_live(&id);
        match self.kill_session(&id).await {
            Ok(()) => {
                let _ = store::remove_session(&self.cfg, &id);
                // A clean park: the next wake lets the topic decide.
                if was_live {
                    let _ = store::set_mark(&self.cfg, &id, Mark::IdleReaped, self.clock.now_ms());
                }
                match marked {
                    Ok(()) => row(VerbAction::Stopped, None),
                    Err(e) => row(
                        VerbAction::Failed,
                        Some(format!(
                            "the session was killed, but the stopped mark cannot be written ({e}): \
                             the next message wakes it"
                        )),
                    ),
                }
            }
            Err(e) => row(
                VerbAction::Failed,
                Some(format!(
                    "marked stopped, but the session could not be killed: {e}"
                )),
            ),
        }
    }

    /// `start`: clears the stopped mark (the next message wakes the peer);
    /// with `reset`, also forgets its deaths (the crash-loop guard).
    pub fn start(&self, peers: Peers<'_>, reset: bool) -> Result<Vec<VerbOutcome>, LifecycleError> {
        let mut out = Vec::new();
        for (peer, runtimes) in self.verb_targets(peers)? {
            if let Some(refused) = self.refused_externally_owned(&peer, &runtimes) {
                out.extend(refused);
                continue;
            }
            out.extend(runtimes.into_iter().map(|rt| {
                let id = Identity::new(&rt, &peer.personality);
                let cleared = store::clear_mark(&self.cfg, &id, Mark::Stopped).and_then(|()| {
                    if reset {
                        crate::deaths::clear(&self.cfg, &id)
                    } else {
                        Ok(())
                    }
                });
                let (action, reason) = match cleared {
                    Ok(()) => (VerbAction::Started, None),
                    Err(e) => (
                        VerbAction::Failed,
                        Some(format!("cannot clear the stopped mark: {e}")),
                    ),
                };
                VerbOutcome::new(&peer, &rt, action, reason)
            }));
        }
        self.log_verb("start", &out);
        Ok(out)
    }

    /// `mark-new`: sets the `/new` mark; the next wake or relaunch is fresh.
    pub fn mark_new(
        &self,
        personality: &str,
        runtime: Option<&str>,
    ) -> Result<VerbOutcome, LifecycleError> {
        let peer = self.registered_peer(personality)?;
        let rt = resolve_wake_runtime(runtime, &peer)?;
        let id = Identity::new(&rt, &peer.personality);
        store::set_mark(&self.cfg, &id, Mark::New, self.clock.now_ms())
            .map_err(|e| LifecycleError::state("the /new mark", e))?;
        let row = VerbOutcome::new(&peer, &rt, VerbAction::Marked, None);
        self.log_verb("mark-new", std::slice::from_ref(&row));
        Ok(row)
    }

    /// `new`: an unconditional fresh restart — clears the stopped mark, kills
    /// the session, and wakes fresh with the initial prompt. It works through
    /// the /new mark, so a message that slips in between the kill and the
    /// wake also gets the fresh session, never a resumed one.
    pub async fn new_session(
        &self,
        personality: &str,
        runtime: Option<&str>,
    ) -> Result<NewOutcome, LifecycleError> {
        let out = self.renew(personality, runtime).await?;
        self.log_verb("new", std::slice::from_ref(&out.outcome));
        Ok(out)
    }

    async fn renew(
        &self,
        personality: &str,
        runtime: Option<&str>,
    ) -> Result<NewOutcome, LifecycleError> {
        let peer = self.registered_peer(personality)?;
        let rt = resolve_wake_runtime(runtime, &peer)?;
        let row = |action, reason| VerbOutcome::new(&peer, &rt, action, reason);
        if let Some(owner) = guard::external_owner(&self.cfg, &peer.personality) {
            return Ok(NewOutcome {
                outcome: row(VerbAction::RefusedExternallyOwned, Some(hands_off(&owner))),
                wake: None,
            });
        }
        let id = Identity::new(&rt, &peer.personality);
        store::check_marks(&self.cfg, &id).map_err(LifecycleError::StateInTheWay)?;
        let _ = store::clear_mark(&self.cfg, &id, Mark::Stopped);
        let _ = store::clear_mark(&self.cfg, &id, Mark::IdleReaped);
        store::set_mark(&self.cfg, &id, Mark::New, self.clock.now_ms())
            .map_err(|e| LifecycleError::state("the /new mark", e))?;
        {
            let _lock = self.lock_or_proceed(&id).await;
            if let Err(e) = self.kill_session(&id).await {
                return Ok(NewOutcome {
                    outcome: row(
                        VerbAction::Failed,
                        Some(format!("the running session could not be killed: {e}")),
                    ),
                    wake: None,
                });
            }
            let _ = store::remove_session(&self.cfg, &id);
        }
        let wake = self
            .wake_or_spawn(&WakeArgs {
                topic: None,
                skip_seed: false,
                personality: peer.personality.to_string(),
                runtime: Some(rt.to_string()),
                task: String::new(),
                resume: Some(false),
                hand_over: false,
            })
            .await;
        let outcome = match &wake {
            Ok(_) => row(VerbAction::Fresh, None),
            Err(e) => row(VerbAction::Failed, Some(e.to_string())),
        };
        Ok(NewOutcome {
            outcome,
            wake: Some(WakeReport::new(&wake)),
        })
    }

    /// The declared runtime with the freshest activity, if any has some
    /// (on a tie the first declared one).
    pub async fn last_active_runtime(&self, peer: &PeerRecord) -> Option<(Runtime, u64)> {
        let cwd = canonical(&peer.cwd);
        let cwd = cwd.to_string_lossy();
        let mut best: Option<(Runtime, u64)> = None;
        for rt in &peer.runtimes {
            let Some(adapter) = self.plugins.adapter(rt.as_str()) else {
                continue;
            };
            if let Ok(Some(mt)) = adapter.newest_activity_mtime(&cwd).await
                && best.as_ref().is_none_or(|(_, b)| mt > *b)
            {
                best = Some((rt.clone(), mt));
            }
        }
        best
    }

    /// The declared runtimes of a peer that are live right now.
    pub fn live_runtimes(&self, peer: &PeerRecord) -> Vec<Runtime> {
        peer.runtimes
            .iter()
            .filter(|rt| self.is_live(&Identity::new(rt, &peer.personality)))
            .cloned()
            .collect()
    }

    /// The runtime a message goes to when the sender names none: the
    /// default if it is live, else the one other declared runtime that is
    /// live; `None` when nothing is live (a wake then brings up the
    /// default). Two live non-default runtimes are ambiguous.
    pub fn delivery_runtime(&self, peer: &PeerRecord) -> Result<Option<Runtime>, LifecycleError> {
        if self.is_live(&Identity::new(&peer.default_runtime, &peer.personality)) {
            return Ok(Some(peer.default_runtime.clone()));
        }
        let live = self.live_runtimes(peer);
        match live.as_slice() {
            [] => Ok(None),
            [one] => Ok(Some(one.clone())),
            many => Err(LifecycleError::AmbiguousRuntime {
                personality: peer.personality.to_string(),
                runtimes: many.iter().map(ToString::to_string).collect(),
            }),
        }
    }

    /// `attach`: make sure the peer is live — resuming it, never fresh —
    /// and say where to attach. Runtime: explicit, else the last active one,
    /// else the default.
    pub async fn attach_target(
        &self,
        personality: &str,
        runtime: Option<&str>,
    ) -> Result<AttachTarget, LifecycleError> {
        let peer = self.registered_peer(personality)?;
        let rt = match runtime {
            Some(r) => resolve_wake_runtime(Some(r), &peer)?,
            None => self
                .last_active_runtime(&peer)
                .await
                .map(|(rt, _)| rt)
                .unwrap_or_else(|| peer.default_runtime.clone()),
        };
        let id = Identity::new(&rt, &peer.personality);
        let target = |woke| AttachTarget {
            identity: id.to_string(),
            socket: self.socket(&id),
            woke,
            runtime: rt.to_string(),
        };
        if self.is_live(&id) {
            // A boot the operator is about to finish by hand is theirs now:
            // nobody kills it at the boot deadline. Its spawner (or, for an
            // orphan, whoever holds the lock next) sees the mark.
            if store::read_session(&self.cfg, &id).is_some_and(|s| s.booting && !s.handed_over) {
                store::set_mark(&self.cfg, &id, Mark::HandOver, self.clock.now_ms())
                    .map_err(|e| LifecycleError::state("the hand-over mark", e))?;
                if let Ok(Some(_lock)) = crate::wakelock::try_acquire(&self.cfg, &id)
                    && let Some(s) = store::read_session(&self.cfg, &id)
                {
                    self.take_hand_over(s);
                }
            }
            return Ok(target(false));
        }
        self.wake_or_spawn(&WakeArgs {
            topic: None,
            skip_seed: false,
            personality: peer.personality.to_string(),
            runtime: Some(rt.to_string()),
            task: String::new(),
            resume: Some(true),
            hand_over: true,
        })
        .await?;
        Ok(target(true))
    }

    /// The peer that lives in `cwd`, and its default runtime: the folder's
    /// peer profile (`.iapeer/peer-profile.json`) if it has one, else the
    /// peer registered there. A profile whose peer is registered in another
    /// folder (copied along with a project) is refused.
    pub fn peer_of_folder(
        &self,
        cwd: &Path,
    ) -> Result<Option<(Personality, Option<Runtime>)>, LifecycleError> {
        let same = registry::same_dir;
        let registry = self.registry()?;
        let Some(profile) = registry::read_profile(cwd)? else {
            return Ok(registry
                .peers
                .iter()
                .find(|p| same(&p.cwd, cwd))
                .map(|p| (p.personality.clone(), Some(p.default_runtime.clone()))));
        };
        let personality = profile
            .personality
            .ok_or_else(|| LifecycleError::NoPersonality(registry::profile_path(cwd)))?;
        let registered = registry.find(personality.as_str());
        if let Some(peer) = registered
            && !same(&peer.cwd, cwd)
        {
            return Err(LifecycleError::ProfileElsewhere {
                profile: registry::profile_path(cwd),
                personality,
                registered_cwd: peer.cwd.clone(),
            });
        }
        // A profile that names no runtime: the registered default.
        let runtime = profile
            .default_runtime
            .or_else(|| registered.map(|p| p.default_runtime.clone()));
        Ok(Some((personality, runtime)))
    }

    /// `launch` (`iapeer <runtime>`): bring up the peer of `cwd`, always
    /// fresh, its initial prompt delivered once. A live session is reused.
    /// With `hand_over` (the operator attaches next), a boot stuck at a
    /// login picker is handed over instead of killed.
    pub async fn folder_launch(
        &self,
        cwd: &Path,
        runtime: Option<&str>,
        hand_over: bool,
    ) -> super::WakeOutcome {
        let (personality, default_runtime) = self
            .peer_of_folder(cwd)?
            .ok_or_else(|| LifecycleError::NoProfile(registry::profile_path(cwd)))?;
        let runtime = runtime
            .map(str::to_string)
            .or_else(|| default_runtime.map(|r| r.to_string()));
        self.wake_or_spawn(&WakeArgs {
            topic: None,
            skip_seed: false,
            personality: personality.to_string(),
            runtime,
            task: String::new(),
            resume: Some(false),
            hand_over,
        })
        .await
    }

    /// One registered peer with the state of each runtime.
    pub async fn peer_status(&self, peer: &PeerRecord) -> PeerStatus {
        let now = self.clock.now_ms();
        let mut runtimes: Vec<RuntimeStatus> = peer
            .runtimes
            .iter()
            .map(|rt| {
                let id = Identity::new(rt, &peer.personality);
                let status = match probe(&self.socket(&id)) {
                    Liveness::Alive => RuntimeState::Live,
                    Liveness::Unknown(_) => RuntimeState::Unknown,
                    Liveness::Dead(_) if store::has_mark(&self.cfg, &id, Mark::Stopped) => {
                        RuntimeState::Stopped
                    }
                    Liveness::Dead(_) => RuntimeState::Asleep,
                };
                let last_exit = crate::deaths::read_exit(&self.cfg, &id, 0).map(|e| LastExit {
                    at: crate::clock::iso8601_utc(e.at),
                    how: e.how(),
                    status: e.status,
                    signal: e.signal,
                    tail: e.tail,
                });
                let crash_loop = status == RuntimeState::Asleep
                    && crate::deaths::crash_loop(&self.cfg, &id, now, self.guard()).is_some();
                RuntimeStatus {
                    runtime: rt.to_string(),
                    status,
                    last_exit,
                    crash_loop,
                    turn: None,
                }
            })
            .collect();
        for rt in runtimes
            .iter_mut()
            .filter(|r| r.status == RuntimeState::Live)
        {
            if let Ok(runtime) = Runtime::new(rt.runtime.as_str()) {
                rt.turn = self
                    .turn_of(&Identity::new(&runtime, &peer.personality), &peer.cwd)
                    .await;
            }
        }
        let last = self.last_active_runtime(peer).await;
        let owner = guard::external_owner(&self.cfg, &peer.personality);
        PeerStatus {
            personality: peer.personality.to_string(),
            default_runtime: peer.default_runtime.to_string(),
            last_active_runtime: last.as_ref().map(|(rt, _)| rt.to_string()),
            last_active_ms: last.map(|(_, ms)| ms),
            intelligence: peer.intelligence.to_string(),
            description: peer.description.clone(),
            cwd: peer.cwd.clone(),
            externally_managed: owner.is_some(),
            managed_by: owner.as_ref().map(guard::Owner::name),
            runtimes,
            queue_depth: 0,
        }
    }

    /// Where a live TUI session is in its turn (`None`: a router, or its
    /// adapter cannot tell).
    pub async fn turn_of(&self, id: &Identity, cwd: &Path) -> Option<TurnState> {
        let adapter = self.adapter(id.runtime()).ok()?;
        if adapter.info().kind != crate::plugins::AdapterKind::Tui {
            return None;
        }
        let pane = self
            .tmux
            .capture_pane(&self.socket(id), id.as_str())
            .await
            .ok()?;
        let cwd = super::canonical(cwd);
        match adapter.turn_state(&pane, &cwd.to_string_lossy()).await {
            Ok(TurnState::Unknown) | Err(_) => None,
            Ok(turn) => Some(turn),
        }
    }

    /// Every registered peer with the state of each runtime.
    pub async fn fleet(&self) -> Result<Vec<PeerStatus>, LifecycleError> {
        let reg = self.registry()?;
        let depths = self
            .mailbox()
            .and_then(|mb| Ok(mb.depths()?))
            .unwrap_or_default();
        let mut fleet = Vec::with_capacity(reg.peers.len());
        for peer in &reg.peers {
            let mut status = self.peer_status(peer).await;
            status.queue_depth = depths
                .iter()
                .find(|(p, _)| *p == status.personality)
                .map_or(0, |(_, n)| *n);
            fleet.push(status);
        }
        Ok(fleet)
    }
}

/// Whose log to show for a peer: the named runtime's, else the one written
/// last, else the default runtime's.
pub fn log_identity(
    cfg: &crate::config::Config,
    peer: &PeerRecord,
    runtime: Option<&str>,
) -> Result<Identity, LifecycleError> {
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    Ok(match runtime {
        Some(r) => {
            let rt = resolve_wake_runtime(Some(r), peer)?;
            Identity::new(&rt, &peer.personality)
        }
        None => peer
            .runtimes
            .iter()
            .map(|rt| Identity::new(rt, &peer.personality))
            .filter_map(|id| modified(&crate::panelog::path(cfg, &id)).map(|m| (m, id)))
            .max_by_key(|(m, _)| *m)
            .map(|(_, id)| id)
            .unwrap_or_else(|| Identity::new(&peer.default_runtime, &peer.personality)),
    })
}
