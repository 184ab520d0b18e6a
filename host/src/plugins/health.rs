//! Quarantine: a plugin-dir adapter whose calls keep failing by its own
//! fault (traps, its time in wasm, memory bombs) is taken out of service
//! instead of costing every wake its call budget. Calls then fail at once
//! with the reason; `plugins list` shows it; the operator's reload (SIGHUP,
//! `POST /fleet/v1/reload`) or a changed file lifts it.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// This many crashed calls …
pub const QUARANTINE_AFTER: usize = 5;
/// … within this long quarantine an adapter.
pub const QUARANTINE_WINDOW: Duration = Duration::from_secs(60);

#[derive(Debug, Default)]
pub(crate) struct Health {
    /// When recent calls crashed, oldest first (at most `QUARANTINE_AFTER`).
    crashes: VecDeque<Instant>,
    /// Why it is out of service.
    quarantined: Option<String>,
}

impl Health {
    /// Counts a crashed call; quarantines on the `QUARANTINE_AFTER`th
    /// within the window (`true` then).
    pub(crate) fn crashed(&mut self, now: Instant, last: &str) -> bool {
        while self
            .crashes
            .front()
            .is_some_and(|t| now.duration_since(*t) >= QUARANTINE_WINDOW)
        {
            self.crashes.pop_front();
        }
        self.crashes.push_back(now);
        if self.crashes.len() < QUARANTINE_AFTER || self.quarantined.is_some() {
            return false;
        }
        self.crashes.pop_front();
        self.quarantined = Some(format!(
            "{QUARANTINE_AFTER} crashed calls within {}s, the last: {last}",
            QUARANTINE_WINDOW.as_secs()
        ));
        true
    }

    pub(crate) fn quarantined(&self) -> Option<&str> {
        self.quarantined.as_deref()
    }

    pub(crate) fn lift(&mut self) {
        *self = Health::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn five_crashes_in_a_minute_quarantine_and_a_lift_forgets() {
        let t0 = Instant::now();
        let mut h = Health::default();
        // Spread out: never five within the window.
        for i in 0..10 {
            assert!(!h.crashed(t0 + Duration::from_secs(20 * i), "trap"));
        }
        assert!(h.quarantined().is_none());
        let t1 = t0 + Duration::from_secs(1000);
        for i in 0..4 {
            assert!(!h.crashed(t1 + Duration::from_secs(i), "trap"));
        }
        assert!(h.crashed(t1 + Duration::from_secs(5), "timed out after 1s"));
        let why = h.quarantined().unwrap();
        assert!(
            why.contains("5 crashed calls within 60s") && why.contains("timed out"),
            "{why}"
        );
        h.lift();
        assert!(h.quarantined().is_none());
        assert!(!h.crashed(t1 + Duration::from_secs(6), "trap"));
    }
}
