//! What the panel shows: one row per peer and runtime, read from the
//! lifecycle state (the same answers as `iapeer list`), plus the plugin
//! problems for the footer.

use crate::lifecycle::{Lifecycle, RuntimeState};
use crate::names::{Identity, Personality, Runtime};

/// A runtime's state as the panel names it (a glyph and a word: never
/// colour alone).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowState {
    Live,
    Asleep,
    Stopped,
    CrashLooping,
    Unknown,
}

impl RowState {
    pub fn glyph(self) -> &'static str {
        match self {
            RowState::Live => "●",
            RowState::Asleep => "○",
            RowState::Stopped => "✕",
            RowState::CrashLooping => "‼",
            RowState::Unknown => "?",
        }
    }

    pub fn word(self) -> &'static str {
        match self {
            RowState::Live => "live",
            RowState::Asleep => "asleep",
            RowState::Stopped => "stopped",
            RowState::CrashLooping => "crash-loop",
            RowState::Unknown => "unknown",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub personality: String,
    pub runtime: String,
    pub state: RowState,
    /// Epoch ms of the peer's last activity (its last active runtime only).
    pub last_active_ms: Option<u64>,
    /// `exited (status 1) at 2026-…`, when a session of it ended.
    pub last_exit: Option<String>,
    /// Messages waiting in the peer's mailbox (shown on its first row).
    pub mail: u64,
    /// Where a live TUI is in its turn, when its adapter can tell.
    pub turn: Option<crate::plugins::TurnState>,
}

impl Row {
    pub fn identity(&self) -> Option<Identity> {
        Some(Identity::new(
            &Runtime::new(self.runtime.clone()).ok()?,
            &Personality::new(self.personality.clone()).ok()?,
        ))
    }
}

/// The fleet now, and what is wrong with the plugins.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// False until the first read finished.
    pub read: bool,
    pub rows: Vec<Row>,
    pub problems: Vec<String>,
    pub error: Option<String>,
}

pub async fn snapshot(lc: &Lifecycle) -> Snapshot {
    let mut snap = Snapshot {
        read: true,
        problems: lc
            .plugins
            .reports()
            .into_iter()
            .filter(|r| r.state != crate::plugins::PluginState::Loaded)
            .map(|r| {
                format!(
                    "{} {}: {}",
                    r.runtime.as_deref().unwrap_or("?"),
                    r.state,
                    r.reason.as_deref().unwrap_or("-")
                )
            })
            .collect(),
        ..Snapshot::default()
    };
    let fleet = match lc.fleet().await {
        Ok(f) => f,
        Err(e) => {
            snap.error = Some(e.to_string());
            return snap;
        }
    };
    for peer in fleet {
        for (i, rt) in peer.runtimes.iter().enumerate() {
            let active = peer.last_active_runtime.as_deref() == Some(rt.runtime.as_str());
            let row = Row {
                personality: peer.personality.clone(),
                runtime: rt.runtime.clone(),
                state: match rt.status {
                    RuntimeState::Asleep if rt.crash_loop => RowState::CrashLooping,
                    RuntimeState::Live => RowState::Live,
                    RuntimeState::Asleep => RowState::Asleep,
                    RuntimeState::Stopped => RowState::Stopped,
                    RuntimeState::Unknown => RowState::Unknown,
                },
                last_active_ms: peer.last_active_ms.filter(|_| active),
                last_exit: rt
                    .last_exit
                    .as_ref()
                    .map(|e| format!("{} at {}", e.how, e.at)),
                mail: if i == 0 { peer.queue_depth } else { 0 },
                turn: rt.turn,
            };
            snap.rows.push(row);
        }
    }
    snap
}

/// `12s ago`, `5m ago`, `3h ago`, `2d ago`.
pub fn ago(now_ms: u64, then_ms: u64) -> String {
    let s = now_ms.saturating_sub(then_ms) / 1000;
    match s {
        0..60 => format!("{s}s ago"),
        60..3600 => format!("{}m ago", s / 60),
        3600..86400 => format!("{}h ago", s / 3600),
        _ => format!("{}d ago", s / 86400),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn relative_times() {
        assert_eq!(super::ago(100_000, 95_000), "5s ago");
        assert_eq!(super::ago(10_000_000, 9_400_000), "10m ago");
        assert_eq!(super::ago(1_000_000_000, 0), "11d ago");
    }
}
