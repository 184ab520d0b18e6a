//! The one polling helper every wait uses (boot loop, ready gate, paste
//! confirmation, delivery grace, cross-process lock): a deadline plus a
//! pause that starts short and grows by half each time, so a runtime that
//! is ready at once costs milliseconds and a slow one costs few wake-ups.

use std::time::Duration;

use tokio::time::{Instant, sleep};

#[derive(Debug, Clone)]
pub(crate) struct Poll {
    deadline: Instant,
    first: Duration,
    pause: Duration,
    max: Duration,
}

impl Poll {
    /// Polls for at most `within`, pausing `first`, then ×1.5 up to `max`.
    pub(crate) fn new(within: Duration, first: Duration, max: Duration) -> Poll {
        Poll {
            deadline: Instant::now() + within,
            first,
            pause: first,
            max,
        }
    }

    /// Sleeps for the next pause (never past the deadline); `false` when
    /// the deadline had already passed, so a loop reads
    /// `loop { if done() { … } if !poll.pause().await { break } }`.
    pub(crate) async fn pause(&mut self) -> bool {
        let now = Instant::now();
        if now >= self.deadline {
            return false;
        }
        sleep(self.pause.min(self.deadline - now)).await;
        self.pause = (self.pause * 3 / 2).min(self.max);
        true
    }

    /// How long until the deadline.
    pub(crate) fn remaining(&self) -> Duration {
        self.deadline.saturating_duration_since(Instant::now())
    }

    /// Back to the shortest pause (something changed: look again soon).
    pub(crate) fn reset(&mut self) {
        self.pause = self.first;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn pauses_grow_and_stop_at_the_deadline() {
        let started = Instant::now();
        let mut p = Poll::new(
            Duration::from_millis(100),
            Duration::from_millis(10),
            Duration::from_millis(40),
        );
        let mut pauses = 0;
        while p.pause().await {
            pauses += 1;
        }
        assert_eq!(started.elapsed(), Duration::from_millis(100));
        // 10 + 15 + 22 + 33 + 20 (clipped to the deadline)
        assert_eq!(pauses, 5);
        p.reset();
        assert!(!p.pause().await, "an expired poll never sleeps again");
    }
}
