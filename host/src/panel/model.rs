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
    /// The host it runs on, when another host of the fleet owns it.
    pub host: Option<String>,
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
    /// This host's name, when its daemon joined a fleet.
    pub host: Option<String>,
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
                host: None,
            };
            snap.rows.push(row);
        }
    }
    add_other_hosts(lc, &mut snap).await;
    snap
}

/// The peers of the fleet's other hosts, as this host's daemon sees them
/// (nothing when no daemon answers or it joined no fleet).
async fn add_other_hosts(lc: &Lifecycle, snap: &mut Snapshot) {
    let Ok(answer) = crate::client::get_json(
        &lc.cfg.daemon_socket,
        "/fleet/v1/snapshot?scope=fleet",
        lc.cfg.bearer_token.as_deref(),
    )
    .await
    else {
        return;
    };
    if answer["joined"] != serde_json::Value::Bool(true) {
        return;
    }
    let here = answer["hosts"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|h| h["here"] == true)
        .and_then(|h| h["host"].as_str())
        .map(str::to_string);
    for peer in answer["peers"].as_array().into_iter().flatten() {
        let host = peer["host"].as_str().map(str::to_string);
        if host.is_none() || host == here {
            continue;
        }
        let personality = peer["personality"].as_str().unwrap_or("?").to_string();
        let runtimes = peer["runtimes"].as_array().cloned().unwrap_or_default();
        if runtimes.is_empty() {
            // Its host is down.
            snap.rows.push(Row {
                personality,
                runtime: "?".into(),
                state: RowState::Unknown,
                last_active_ms: None,
                last_exit: Some("its host is down".into()),
                mail: 0,
                turn: None,
                host,
            });
            continue;
        }
        for (i, rt) in runtimes.iter().enumerate() {
            snap.rows.push(Row {
                personality: personality.clone(),
                runtime: rt["runtime"].as_str().unwrap_or("?").to_string(),
                state: match rt["status"].as_str() {
                    Some("live") => RowState::Live,
                    Some("asleep") if rt["crash_loop"] == true => RowState::CrashLooping,
                    Some("asleep") => RowState::Asleep,
                    Some("stopped") => RowState::Stopped,
                    _ => RowState::Unknown,
                },
                last_active_ms: None,
                last_exit: None,
                mail: if i == 0 {
                    peer["queue_depth"].as_u64().unwrap_or(0)
                } else {
                    0
                },
                turn: None,
                host: host.clone(),
            });
        }
    }
    snap.host = here;
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
