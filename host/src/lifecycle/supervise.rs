//! The supervise tick — the single H4-guarded reap pass — and the eager
//! relaunch of peers that died carrying a `/new` mark.

use serde::Serialize;

use std::path::Path;

use super::{Lifecycle, WakeArgs, WakeResult, canonical};
use crate::events;
use crate::fsutil;
use crate::guard;
use crate::names::Identity;
use crate::store::{self, Mark, SessionState};
use crate::tmux::{Liveness, TmuxError, probe};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SuperviseAction {
    /// Idle longer than the idle bound: killed (the next message resumes).
    ReapedIdle,
    /// Dead without a `/new` mark: state removed (the next message wakes).
    ReapedGone,
    /// Owned by launchd / a systemd unit: not touched.
    SkippedLaunchd,
    Alive,
    /// Liveness could not be decided: not touched.
    Unknown,
    /// Died carrying a `/new` mark: relaunch it fresh now.
    NeedsEagerFresh,
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

impl Lifecycle {
    /// One pass over every recorded session: skip externally owned peers,
    /// forget dead ones (or flag them for an eager fresh relaunch), reap the
    /// idle ones. Only a definite death reaps; an undecidable probe leaves
    /// the session alone.
    pub async fn supervise_tick(&self) -> Vec<SuperviseOutcome> {
        let now = self.clock.now_ms();
        let mut out = Vec::new();
        let mut log = Vec::new();
        for (id, state) in store::read_sessions(&self.cfg) {
            let outcome = self.supervise_one(&id, &state, now).await;
            if !matches!(
                outcome.action,
                SuperviseAction::Alive | SuperviseAction::SkippedLaunchd
            ) {
                let mut fields = vec![
                    ("identity", id.as_str()),
                    ("action", supervise_action_name(outcome.action)),
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
        // H4 first, before anything could touch the peer.
        if guard::is_externally_managed(&self.cfg, id.personality()) {
            return SuperviseOutcome::new(id, SuperviseAction::SkippedLaunchd, None);
        }
        let sock = self.socket(id);
        match probe(&sock) {
            Liveness::Unknown(e) => SuperviseOutcome::new(id, SuperviseAction::Unknown, Some(e)),
            Liveness::Dead(cause) => {
                let _ = store::remove_session(&self.cfg, id);
                if store::has_mark(&self.cfg, id, Mark::New) {
                    // The mark stays: the relaunch's wake consumes it.
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
                SuperviseOutcome::new(
                    id,
                    SuperviseAction::ReapedGone,
                    Some(cause.describe().into()),
                )
            }
            Liveness::Alive => {
                // Idle age from the activity proxy, never older than the wake
                // itself (a resumed session's transcript can be hours old).
                // Adapters expect a canonical cwd; older state files (and the
                // TypeScript iapeer's) may hold it as registered.
                let cwd = canonical(Path::new(&s.cwd));
                let cwd = cwd.to_string_lossy();
                // No adapter (a plugin removed): wokeAt alone bounds it. An
                // adapter that cannot answer is not evidence of idleness.
                let activity = match self.plugins.adapter(id.runtime().as_str()) {
                    None => 0,
                    Some(a) => match a.newest_activity_mtime(&cwd).await {
                        Ok(mt) => mt.unwrap_or(0),
                        Err(e) => {
                            return SuperviseOutcome::new(
                                id,
                                SuperviseAction::Unknown,
                                Some(format!("activity unknown: {e}")),
                            );
                        }
                    },
                };
                let last = activity.max(s.woke_at);
                let age_secs = now.saturating_sub(last) / 1000;
                if age_secs > self.cfg.idle_secs {
                    if let Err(e) = self.kill_session(id).await {
                        return SuperviseOutcome::new(
                            id,
                            SuperviseAction::Unknown,
                            Some(format!("idle {age_secs}s but could not be killed: {e}")),
                        );
                    }
                    let _ = store::remove_session(&self.cfg, id);
                    SuperviseOutcome::new(
                        id,
                        SuperviseAction::ReapedIdle,
                        Some(format!("idle {age_secs}s")),
                    )
                } else {
                    SuperviseOutcome::new(id, SuperviseAction::Alive, None)
                }
            }
        }
    }

    /// Relaunches, fresh, every peer the tick flagged `needs-eager-fresh`.
    /// A failed relaunch leaves the `/new` mark: the peer then wakes fresh on
    /// its next message (graceful degrades to lazy, never lost).
    pub async fn process_eager_relaunches(&self, outcomes: &[SuperviseOutcome]) -> Vec<WakeResult> {
        let mut results = Vec::new();
        for o in outcomes {
            let (SuperviseAction::NeedsEagerFresh, Some(personality), Some(runtime)) =
                (o.action, &o.personality, &o.runtime)
            else {
                continue;
            };
            let args = WakeArgs {
                personality: personality.clone(),
                runtime: Some(runtime.clone()),
                task: String::new(),
                resume: None,
            };
            results.push(self.wake_or_spawn(&args).await);
        }
        results
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

pub fn supervise_action_name(a: SuperviseAction) -> &'static str {
    match a {
        SuperviseAction::ReapedIdle => "reaped-idle",
        SuperviseAction::ReapedGone => "reaped-gone",
        SuperviseAction::SkippedLaunchd => "skipped-launchd",
        SuperviseAction::Alive => "alive",
        SuperviseAction::Unknown => "unknown",
        SuperviseAction::NeedsEagerFresh => "needs-eager-fresh",
    }
}
