//! In-session controls (`interrupt`, `compact`): the adapter says which
//! keys mean what in its TUI; the host sends them, step by step, under the
//! peer's wake lock so they never interleave with a paste.

use serde::Serialize;

use super::{Lifecycle, LifecycleError, resolve_wake_runtime};
use crate::events;
use crate::names::Identity;
use crate::paste;
use crate::plugins::AdapterKind;

/// A control command the adapters understand (`control-keys`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, strum::IntoStaticStr, strum::EnumString)]
#[serde(rename_all = "lowercase")]
#[strum(serialize_all = "lowercase")]
pub enum Control {
    /// Stop the current turn (claude/codex: Escape).
    Interrupt,
    /// Compact the conversation (claude/codex: `/compact` + Enter).
    Compact,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ControlOutcome {
    pub personality: String,
    pub runtime: String,
    pub command: Control,
    /// How many `send-keys` steps went out.
    pub steps: usize,
}

impl Lifecycle {
    /// Sends a control command to a peer's live session: the named runtime,
    /// else the runtime it is live in.
    pub async fn control(
        &self,
        personality: &str,
        runtime: Option<&str>,
        command: Control,
    ) -> Result<ControlOutcome, LifecycleError> {
        let peer = self.registered_peer(personality)?;
        let rt = match runtime {
            Some(r) => resolve_wake_runtime(Some(r), &peer)?,
            None => self
                .delivery_runtime(&peer)?
                .unwrap_or_else(|| peer.default_runtime.clone()),
        };
        let id = Identity::new(&rt, &peer.personality);
        let adapter = self.adapter(&rt)?;
        let name: &'static str = command.into();
        let sequence = adapter
            .control_keys(name)
            .await
            .map_err(|e| LifecycleError::Adapter {
                id: id.clone(),
                reason: e.to_string(),
            })?
            .ok_or_else(|| LifecycleError::ControlUnsupported {
                runtime: rt.clone(),
                command: name.to_string(),
            })?;
        let _lock = self.lock(&id).await?;
        if !self.is_live(&id) {
            return Err(LifecycleError::NotLive { id });
        }
        // Keys meant for the composer must not land in a startup prompt.
        self.check_orphan_boot(&id).await?;
        let sock = self.socket(&id);
        if adapter.info().kind == AdapterKind::Tui {
            // Nor into a dialog that came up since, nor on top of a paste a
            // killed sender left: an Enter there answers or submits it. The
            // screen is judged again before every step.
            let in_flight = self.in_flight(&id);
            let to = paste::Composer {
                tmux: &self.tmux,
                sock: &sock,
                id: id.as_str(),
                adapter: &adapter,
                in_flight: &in_flight,
            };
            paste::send_into_composer(&to, &sequence)
                .await
                .map_err(|refused| match refused {
                    paste::PasteRefused::NotReady(pane) => LifecycleError::NoComposer {
                        id: id.clone(),
                        pane,
                    },
                    other => LifecycleError::ControlRefused {
                        id: id.clone(),
                        why: other.to_string(),
                    },
                })?;
        } else {
            paste::send_sequence(&self.tmux, &sock, id.as_str(), &sequence).await?;
        }
        events::log(
            &self.cfg,
            "control",
            &[("identity", id.as_str()), ("command", name)],
        );
        Ok(ControlOutcome {
            personality: peer.personality.to_string(),
            runtime: rt.to_string(),
            command,
            steps: sequence.steps.len(),
        })
    }
}
