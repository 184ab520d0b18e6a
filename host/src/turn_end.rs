//! Waiting for a peer's turn to end, for the mail that waits on it. A
//! runtime writes its record (the transcript) when a turn ends: the
//! record is looked at every few milliseconds (a scan in the adapter, no
//! process), and the pane is judged again as soon as it moves. A turn end
//! shown only on the pane is still seen within a second: while nothing
//! moves, the pane is judged again at a pace that slows to once a second.

use std::path::PathBuf;
use std::time::Duration;

use tokio::time::Instant;

use crate::lifecycle::{Lifecycle, canonical};
use crate::names::Identity;
use crate::paste;

/// How often the record is looked at.
const STEP: Duration = Duration::from_millis(10);

/// The pane is judged again this soon after the record moved (the
/// repaint follows the record) ...
const QUICK: Duration = Duration::from_millis(20);

/// ... and at most this long after it was last judged.
const SLOW: Duration = Duration::from_secs(1);

/// The session whose turn the mail waits for.
#[derive(Debug, Clone)]
pub(crate) struct MidTurn {
    pub id: Identity,
    pub cwd: PathBuf,
}

/// How long to wait before the next judgement: short after the record
/// moved, doubling while it does not.
pub(crate) struct Watch {
    patience: Duration,
}

impl Watch {
    pub(crate) fn new() -> Watch {
        Watch { patience: QUICK }
    }

    /// Waits until `turn`'s record moves, or for the current patience;
    /// `false` when the daemon is stopping.
    pub(crate) async fn until_it_may_have_ended(&mut self, lc: &Lifecycle, turn: &MidTurn) -> bool {
        let until = Instant::now() + self.patience;
        self.patience = (self.patience * 2).min(SLOW);
        let Ok(adapter) = lc.adapter(turn.id.runtime()) else {
            return pause(lc, until).await;
        };
        let cwd = canonical(&turn.cwd);
        let cwd = cwd.to_string_lossy();
        let start = paste::activity(&adapter, &cwd).await;
        while Instant::now() < until {
            if !pause(lc, (Instant::now() + STEP).min(until)).await {
                return false;
            }
            if paste::activity(&adapter, &cwd).await > start {
                self.patience = QUICK;
                return true;
            }
        }
        true
    }
}

/// Sleeps until `until`; `false` when the daemon started stopping.
async fn pause(lc: &Lifecycle, until: Instant) -> bool {
    tokio::select! {
        _ = lc.stopping().cancelled() => false,
        _ = tokio::time::sleep_until(until) => true,
    }
}
