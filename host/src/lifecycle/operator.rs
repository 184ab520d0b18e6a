//! Operator verbs: stop / start / new / mark-new, attach, folder launch, and
//! the fleet listing. All of them reuse `wake_or_spawn` for bring-up, so H4,
//! the wake lock and the stopped mark apply everywhere.

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::{Lifecycle, WakeArgs, WakeResult, canonical, resolve_wake_runtime};
use crate::guard;
use crate::names::{Identity, Runtime};
use crate::registry::{self, PeerRecord};
use crate::store::{self, Mark};
use crate::tmux::{Liveness, probe};
use crate::wakelock;

/// One row of a stop / start / new / mark-new outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VerbOutcome {
    pub personality: String,
    pub runtime: String,
    /// `stopped`, `started`, `fresh`, `marked`, `failed`, `refused-launchd`.
    pub action: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl VerbOutcome {
    fn new(peer: &PeerRecord, runtime: &Runtime, action: &str, reason: Option<String>) -> Self {
        VerbOutcome {
            personality: peer.personality.to_string(),
            runtime: runtime.to_string(),
            action: action.into(),
            reason,
        }
    }

    pub fn ok(&self) -> bool {
        !matches!(self.action.as_str(), "failed" | "refused-launchd")
    }
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

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RuntimeStatus {
    pub runtime: String,
    /// `live`, `asleep`, `stopped`, or `unknown` (liveness undecidable).
    pub status: &'static str,
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
    pub launchd_managed: bool,
    pub runtimes: Vec<RuntimeStatus>,
}

impl Lifecycle {
    /// The registry record of a peer, or a one-line reason.
    pub fn registered_peer(&self, personality: &str) -> Result<PeerRecord, String> {
        let reg = self.registry().map_err(|e| e.to_string())?;
        reg.find(personality)
            .cloned()
            .ok_or_else(|| format!("peer {personality:?} is not registered"))
    }

    /// The runtimes a verb applies to: the explicit one (must be declared),
    /// else all declared ones.
    fn verb_runtimes(
        &self,
        peer: &PeerRecord,
        runtime: Option<&str>,
    ) -> Result<Vec<Runtime>, String> {
        match runtime {
            Some(r) => resolve_wake_runtime(Some(r), peer).map(|rt| vec![rt]),
            None => Ok(peer.runtimes.clone()),
        }
    }

    /// The peer and runtimes a stop/start acts on, or the refusal rows of a
    /// peer an external supervisor owns.
    #[allow(clippy::type_complexity)]
    fn verb_targets(
        &self,
        personality: &str,
        runtime: Option<&str>,
    ) -> Result<Result<(PeerRecord, Vec<Runtime>), Vec<VerbOutcome>>, String> {
        let peer = self.registered_peer(personality)?;
        let runtimes = self.verb_runtimes(&peer, runtime)?;
        Ok(match self.refused_launchd(&peer, &runtimes) {
            Some(refused) => Err(refused),
            None => Ok((peer, runtimes)),
        })
    }

    fn refused_launchd(&self, peer: &PeerRecord, runtimes: &[Runtime]) -> Option<Vec<VerbOutcome>> {
        let owner = guard::external_owner(&self.cfg, &peer.personality)?;
        Some(
            runtimes
                .iter()
                .map(|rt| VerbOutcome::new(peer, rt, "refused-launchd", Some(hands_off(&owner))))
                .collect(),
        )
    }

    /// `stop`: a durable operator halt. The mark is set first (new wakes
    /// refuse at once), then the wake lock is taken (an in-flight wake
    /// finishes first), then the session is killed.
    pub async fn stop(
        &self,
        personality: &str,
        runtime: Option<&str>,
    ) -> Result<Vec<VerbOutcome>, String> {
        let (peer, runtimes) = match self.verb_targets(personality, runtime)? {
            Ok(targets) => targets,
            Err(refused) => return Ok(refused),
        };
        let mut out = Vec::new();
        for rt in runtimes {
            let id = Identity::new(&rt, &peer.personality);
            let row = |action: &str, reason| VerbOutcome::new(&peer, &rt, action, reason);
            if let Err(e) = store::set_mark(&self.cfg, &id, Mark::Stopped, self.clock.now_ms()) {
                out.push(row(
                    "failed",
                    Some(format!("cannot write the stopped mark: {e}")),
                ));
                continue;
            }
            // Even if an in-flight wake outlasts our patience, the operator
            // asked for a halt: kill anyway (that wake then fails).
            let _lock = wakelock::acquire(&self.cfg, &id, self.lock_patience()).await;
            match self.kill_session(&id).await {
                Ok(()) => {
                    let _ = store::remove_session(&self.cfg, &id);
                    out.push(row("stopped", None));
                }
                Err(e) => out.push(row(
                    "failed",
                    Some(format!(
                        "marked stopped, but the session could not be killed: {e}"
                    )),
                )),
            }
        }
        Ok(out)
    }

    /// `start`: clears the stopped mark (the next message wakes the peer).
    pub fn start(
        &self,
        personality: &str,
        runtime: Option<&str>,
    ) -> Result<Vec<VerbOutcome>, String> {
        let (peer, runtimes) = match self.verb_targets(personality, runtime)? {
            Ok(targets) => targets,
            Err(refused) => return Ok(refused),
        };
        Ok(runtimes
            .into_iter()
            .map(|rt| {
                let id = Identity::new(&rt, &peer.personality);
                let (action, reason) = match store::clear_mark(&self.cfg, &id, Mark::Stopped) {
                    Ok(()) => ("started", None),
                    Err(e) => (
                        "failed",
                        Some(format!("cannot clear the stopped mark: {e}")),
                    ),
                };
                VerbOutcome::new(&peer, &rt, action, reason)
            })
            .collect())
    }

    /// `mark-new`: drops the `/new` mark; the next relaunch is fresh.
    pub fn mark_new(
        &self,
        personality: &str,
        runtime: Option<&str>,
    ) -> Result<VerbOutcome, String> {
        let peer = self.registered_peer(personality)?;
        let rt = resolve_wake_runtime(runtime, &peer)?;
        let id = Identity::new(&rt, &peer.personality);
        store::set_mark(&self.cfg, &id, Mark::New, self.clock.now_ms())
            .map_err(|e| format!("cannot write the /new mark: {e}"))?;
        Ok(VerbOutcome::new(&peer, &rt, "marked", None))
    }

    /// `new`: an unconditional fresh restart — clears the stopped mark, kills
    /// the session, and wakes fresh with the initial prompt. It works through
    /// the /new mark, so a message that slips in between the kill and the
    /// wake also gets the fresh session, never a resumed one.
    pub async fn new_session(
        &self,
        personality: &str,
        runtime: Option<&str>,
    ) -> Result<(VerbOutcome, WakeResult), String> {
        let peer = self.registered_peer(personality)?;
        let rt = resolve_wake_runtime(runtime, &peer)?;
        let row = |action: &str, reason| VerbOutcome::new(&peer, &rt, action, reason);
        if let Some(owner) = guard::external_owner(&self.cfg, &peer.personality) {
            let reason = hands_off(&owner);
            let wake = WakeResult::failed(Some(rt.as_str()), reason.clone());
            return Ok((row("refused-launchd", Some(reason)), wake));
        }
        let id = Identity::new(&rt, &peer.personality);
        let _ = store::clear_mark(&self.cfg, &id, Mark::Stopped);
        store::set_mark(&self.cfg, &id, Mark::New, self.clock.now_ms())
            .map_err(|e| format!("cannot write the /new mark: {e}"))?;
        {
            let _lock = wakelock::acquire(&self.cfg, &id, self.lock_patience()).await;
            if let Err(e) = self.kill_session(&id).await {
                let reason = format!("the running session could not be killed: {e}");
                let wake = WakeResult::failed(Some(rt.as_str()), reason.clone());
                return Ok((row("failed", Some(reason)), wake));
            }
            let _ = store::remove_session(&self.cfg, &id);
        }
        let wake = self
            .wake_or_spawn(&WakeArgs {
                personality: peer.personality.to_string(),
                runtime: Some(rt.to_string()),
                task: String::new(),
                resume: Some(false),
            })
            .await;
        let outcome = if wake.is_ready() {
            row("fresh", None)
        } else {
            row("failed", wake.reason.clone())
        };
        Ok((outcome, wake))
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

    /// The runtime a message goes to when the sender names none: the
    /// default if it is live, else the one other declared runtime that is
    /// live, else the default (which the wake then brings up). Two live
    /// non-default runtimes are ambiguous.
    pub fn delivery_runtime(&self, personality: &str) -> Result<Option<String>, String> {
        let peer = self.registered_peer(personality)?;
        let live = |rt: &Runtime| self.is_live(&Identity::new(rt, &peer.personality));
        if live(&peer.default_runtime) {
            return Ok(Some(peer.default_runtime.to_string()));
        }
        let others: Vec<&Runtime> = peer.runtimes.iter().filter(|rt| live(rt)).collect();
        match others.as_slice() {
            [] => Ok(None),
            [one] => Ok(Some(one.to_string())),
            many => Err(format!(
                "{personality:?} is live in several runtimes ({}); name one with --runtime",
                many.iter()
                    .map(|r| r.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        }
    }

    /// `attach`: make sure the peer is live — resuming it, never fresh —
    /// and say where to attach. Runtime: explicit, else the last active one,
    /// else the default.
    pub async fn attach_target(
        &self,
        personality: &str,
        runtime: Option<&str>,
    ) -> Result<AttachTarget, String> {
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
            return Ok(target(false));
        }
        let woke = self
            .wake_or_spawn(&WakeArgs {
                personality: peer.personality.to_string(),
                runtime: Some(rt.to_string()),
                task: String::new(),
                resume: Some(true),
            })
            .await;
        if !woke.is_ready() {
            return Err(woke.reason.unwrap_or_else(|| "wake failed".into()));
        }
        Ok(target(true))
    }

    /// `launch` (`iapeer <runtime>`): bring up the peer of `cwd`, always
    /// fresh, its initial prompt delivered once. A live session is reused.
    pub async fn folder_launch(
        &self,
        cwd: &Path,
        runtime: Option<&str>,
    ) -> Result<WakeResult, String> {
        let profile = registry::read_profile(cwd)
            .map_err(|e| e.to_string())?
            .ok_or_else(|| {
                format!(
                    "no peer profile in {}",
                    registry::profile_path(cwd).display()
                )
            })?;
        let personality = profile.personality.ok_or_else(|| {
            format!(
                "{} names no personality",
                registry::profile_path(cwd).display()
            )
        })?;
        let runtime = runtime
            .map(str::to_string)
            .or_else(|| profile.default_runtime.map(|r| r.to_string()));
        Ok(self
            .wake_or_spawn(&WakeArgs {
                personality: personality.to_string(),
                runtime,
                task: String::new(),
                resume: Some(false),
            })
            .await)
    }

    /// Every registered peer with the state of each runtime.
    pub async fn fleet(&self) -> Result<Vec<PeerStatus>, String> {
        let reg = self.registry().map_err(|e| e.to_string())?;
        let mut fleet = Vec::with_capacity(reg.peers.len());
        for peer in &reg.peers {
            let runtimes = peer
                .runtimes
                .iter()
                .map(|rt| {
                    let id = Identity::new(rt, &peer.personality);
                    let status = match probe(&self.socket(&id)) {
                        Liveness::Alive => "live",
                        Liveness::Unknown(_) => "unknown",
                        Liveness::Dead(_) if store::has_mark(&self.cfg, &id, Mark::Stopped) => {
                            "stopped"
                        }
                        Liveness::Dead(_) => "asleep",
                    };
                    RuntimeStatus {
                        runtime: rt.to_string(),
                        status,
                    }
                })
                .collect();
            let last = self.last_active_runtime(peer).await;
            fleet.push(PeerStatus {
                personality: peer.personality.to_string(),
                default_runtime: peer.default_runtime.to_string(),
                last_active_runtime: last.as_ref().map(|(rt, _)| rt.to_string()),
                last_active_ms: last.map(|(_, ms)| ms),
                intelligence: peer.intelligence.clone(),
                description: peer.description.clone(),
                cwd: peer.cwd.clone(),
                launchd_managed: guard::is_externally_managed(&self.cfg, &peer.personality),
                runtimes,
            });
        }
        Ok(fleet)
    }
}
