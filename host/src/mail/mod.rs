//! The durable mailbox: every accepted message is committed here, with an
//! id, before anything is typed anywhere, and leaves only delivered or
//! dead-lettered. `route` decides, the mailbox keeps, `delivery` delivers.

mod store;

use std::collections::HashMap;
use std::sync::Mutex;

use serde::Serialize;

pub use store::{Incoming, MailError, Mailbox, Message, NewMessage, Told};

use crate::clock::iso8601_utc;

/// A message's id: a UUID v7 (time-ordered), as text.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct MessageId(String);

impl MessageId {
    fn generate() -> MessageId {
        MessageId(uuid::Uuid::now_v7().to_string())
    }

    /// A caller's id, checked: a UUID in its hyphenated form.
    pub fn parse(raw: &str) -> Result<MessageId, String> {
        let raw = raw.trim();
        match uuid::Uuid::try_parse(raw) {
            Ok(u) if raw.len() == 36 => Ok(MessageId(u.to_string())),
            _ => {
                let shown: String = raw.chars().take(48).collect();
                let more = if raw.chars().count() > 48 { "…" } else { "" };
                Err(format!(
                    "invalid message id {shown:?}{more} (expected the id a send returned, like 0193c4f2-…)"
                ))
            }
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for MessageId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// This process, as a message's claimer: its pid and start time, so a
/// reused pid is not taken for it.
pub fn claimer() -> String {
    let pid = std::process::id();
    format!("{pid}@{}", start_time(pid).unwrap_or_default())
}

/// Whether the process that wrote `token` (see [`claimer`]) still runs.
pub fn claimer_alive(token: &str) -> bool {
    let Some((pid, started)) = token.split_once('@') else {
        return false;
    };
    let Ok(pid) = pid.parse::<u32>() else {
        return false;
    };
    match start_time(pid) {
        Some(now) => now == started,
        // No /proc (macOS): the pid alone.
        None if !std::path::Path::new("/proc/self/stat").exists() => {
            let pid = libc::pid_t::try_from(pid).unwrap_or(0);
            // SAFETY: signal 0 only checks that the process exists.
            pid > 0 && unsafe { libc::kill(pid, 0) } == 0
        }
        None => false,
    }
}

/// A process's start time in clock ticks since boot (`/proc/<pid>/stat`,
/// field 22), as text.
fn start_time(pid: u32) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses.
    let after = &stat[stat.rfind(')')? + 1..];
    after.split_whitespace().nth(19).map(str::to_string)
}

/// Drains running in this process, one per peer: a drain asked for while
/// one runs makes that one look again instead of queueing behind it.
#[derive(Debug, Default)]
pub struct Drains(Mutex<HashMap<String, bool>>);

/// A drain in progress; dropping it (done, failed or cancelled) ends it.
pub struct Draining<'a> {
    drains: &'a Drains,
    peer: String,
}

impl Drains {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, bool>> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The drain of `peer` is ours to run, or `None`: the running one will
    /// look again.
    pub fn enter(&self, peer: &str) -> Option<Draining<'_>> {
        let mut map = self.map();
        if let Some(again) = map.get_mut(peer) {
            *again = true;
            return None;
        }
        map.insert(peer.to_string(), false);
        Some(Draining {
            drains: self,
            peer: peer.to_string(),
        })
    }

    /// Whether another look was asked for since the last (and clears it).
    pub fn again(&self, peer: &str) -> bool {
        self.map().get_mut(peer).is_some_and(std::mem::take)
    }
}

impl Drop for Draining<'_> {
    fn drop(&mut self) {
        self.drains.map().remove(&self.peer);
    }
}

/// Where a message stands.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, strum::EnumString, strum::IntoStaticStr, strum::Display,
)]
#[strum(serialize_all = "lowercase")]
pub enum MessageState {
    /// Waiting for its peer (the reason is kept with it).
    Queued,
    /// Claimed by a deliverer holding the peer's lock: being typed in, or
    /// typed in and the runtime has not yet shown it took it.
    Submitted,
    Delivered,
    /// Given up (its TTL ran out, or it can never be delivered).
    Dead,
    /// For a peer of another host, not yet in the fleet's stream.
    Outbound,
    /// For a peer of another host, in the fleet's stream or that host's
    /// mailbox: the reason is what that host last told.
    Forwarded,
}

impl MessageState {
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    /// Not yet delivered nor dead, here or at another host.
    pub fn is_waiting(self) -> bool {
        !matches!(self, MessageState::Delivered | MessageState::Dead)
    }
}

impl Message {
    /// What a waiting message waits for, in words.
    pub fn waiting_reason(&self) -> String {
        match (self.state, &self.why) {
            (MessageState::Submitted, _) => {
                "being delivered: being typed in, or typed in and its runtime has not yet shown it took it".into()
            }
            (MessageState::Outbound, None) => format!(
                "for host {}: not yet handed to the fleet",
                self.to_host.as_deref().unwrap_or("?")
            ),
            (_, Some(why)) => why.clone(),
            (_, None) => "accepted; not tried yet".into(),
        }
    }
}

/// What a sender learns of its message (`message_status`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "kebab-case")]
pub enum Status {
    Queued {
        id: MessageId,
        to: String,
        why: String,
        queue_depth: u64,
        since: String,
    },
    Delivered {
        id: MessageId,
        to: String,
        at: String,
        woke: bool,
        /// Typed in, but a crash came before the runtime showed it took it,
        /// and nothing since says otherwise (why, when so).
        #[serde(skip_serializing_if = "Option::is_none")]
        unconfirmed: Option<String>,
    },
    DeadLettered {
        id: MessageId,
        to: String,
        why: String,
        at: String,
    },
}

impl Status {
    pub fn of(m: &Message, queue_depth: u64) -> Status {
        let at = |ms: Option<u64>| iso8601_utc(ms.unwrap_or(m.created_ms));
        match m.state {
            MessageState::Delivered => Status::Delivered {
                id: m.id.clone(),
                to: m
                    .to_identity
                    .clone()
                    .unwrap_or_else(|| m.personality.clone()),
                at: at(m.done_ms),
                woke: m.woke,
                unconfirmed: m.why.clone(),
            },
            MessageState::Dead => Status::DeadLettered {
                id: m.id.clone(),
                to: m.personality.clone(),
                why: m.why.clone().unwrap_or_default(),
                at: at(m.done_ms),
            },
            _ => Status::Queued {
                id: m.id.clone(),
                to: m.personality.clone(),
                why: m.waiting_reason(),
                queue_depth,
                since: iso8601_utc(m.created_ms),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn new<'a>(to: &'a str, text: &'a str) -> NewMessage<'a> {
        NewMessage {
            personality: to,
            runtime: None,
            sender: "claude-alice",
            door: "mcp",
            topic: None,
            envelope: Box::leak(Box::new(move |_: &MessageId| text.to_string())),
            ttl: Duration::from_secs(60),
        }
    }

    fn open() -> (tempfile::TempDir, Mailbox) {
        let dir = tempfile::tempdir().unwrap();
        let mb = Mailbox::open(&dir.path().join("state/mail.db")).unwrap();
        (dir, mb)
    }

    #[test]
    fn a_message_lives_from_commit_to_delivery() {
        let (_dir, mb) = open();
        let a = mb.commit(&new("bob", "one"), 1_000).unwrap();
        let b = mb.commit(&new("bob", "two"), 1_001).unwrap();
        mb.commit(&new("carol", "three"), 1_002).unwrap();
        let waiting: Vec<_> = mb
            .waiting(Some("bob"))
            .unwrap()
            .into_iter()
            .map(|m| m.envelope)
            .collect();
        assert_eq!(waiting, ["one", "two"]);
        assert_eq!(mb.depth("bob").unwrap(), 2);
        // A claim takes only what is still queued.
        assert_eq!(
            mb.claim(&[a.clone(), b.clone()], "claude-bob", "p1", 2_000)
                .unwrap()
                .len(),
            2
        );
        assert!(
            mb.claim(std::slice::from_ref(&a), "codex-bob", "p2", 2_001)
                .unwrap()
                .is_empty()
        );
        assert_eq!(mb.get(&a).unwrap().unwrap().state, MessageState::Submitted);
        assert_eq!(
            mb.delivered(std::slice::from_ref(&a), "claude-bob", false, None, 2_100)
                .unwrap(),
            1
        );
        assert_eq!(
            mb.requeue(std::slice::from_ref(&b), "a dialog is up", 0)
                .unwrap(),
            1
        );
        let m = mb.get(&b).unwrap().unwrap();
        assert_eq!(
            (m.state, m.why.as_deref(), m.attempts),
            (MessageState::Queued, Some("a dialog is up"), 1)
        );
        match Status::of(&mb.get(&a).unwrap().unwrap(), 0) {
            Status::Delivered { to, .. } => assert_eq!(to, "claude-bob"),
            other => panic!("{other:?}"),
        }
        // Delivered is final.
        assert_eq!(mb.requeue(std::slice::from_ref(&a), "x", 0).unwrap(), 0);
        assert_eq!(mb.dead_letter(&[a], "x", 3_000).unwrap(), 0);
        assert_eq!(
            mb.depths().unwrap(),
            [("bob".to_string(), 1), ("carol".to_string(), 1)]
        );
    }

    #[test]
    fn expiry_dead_letters_and_retry_revives() {
        let (_dir, mb) = open();
        let a = mb.commit(&new("bob", "one"), 1_000).unwrap();
        assert!(mb.expired(60_999).unwrap().is_empty());
        assert_eq!(mb.expired(61_000).unwrap().len(), 1);
        mb.dead_letter(std::slice::from_ref(&a), "expired", 61_000)
            .unwrap();
        let json = serde_json::to_value(Status::of(&mb.get(&a).unwrap().unwrap(), 0)).unwrap();
        assert_eq!(json["state"], "dead-lettered");
        assert_eq!(mb.retry(&a, Duration::from_secs(5), 70_000).unwrap(), 1);
        let m = mb.get(&a).unwrap().unwrap();
        assert_eq!((m.state, m.expires_ms), (MessageState::Queued, 75_000));
        assert_eq!(mb.prune(u64::MAX).unwrap(), 0);
    }

    #[test]
    fn two_handles_share_one_file_and_state_is_private() {
        use std::os::unix::fs::PermissionsExt;
        let (dir, one) = open();
        let two = Mailbox::open(one.path()).unwrap();
        let id = one.commit(&new("bob", "hi"), 1).unwrap();
        assert_eq!(
            two.claim(std::slice::from_ref(&id), "claude-bob", "p1", 2)
                .unwrap(),
            std::slice::from_ref(&id)
        );
        assert!(one.claim(&[id], "claude-bob", "p2", 3).unwrap().is_empty());
        for f in ["state/mail.db", "state/mail.db-wal"] {
            let mode = std::fs::metadata(dir.path().join(f))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{f}");
        }
    }

    #[test]
    fn a_claimer_is_alive_while_its_process_runs() {
        assert!(claimer_alive(&claimer()));
        assert!(!claimer_alive("4194304@1"));
        assert!(!claimer_alive("garbage"));
        let me = claimer();
        let (pid, _) = me.split_once('@').unwrap();
        assert!(
            !claimer_alive(&format!("{pid}@0")),
            "a reused pid is another process"
        );
    }

    #[test]
    fn a_session_keeps_its_sixteen_latest_topics() {
        let (_dir, mb) = open();
        for i in 0..20u64 {
            mb.note_topic("claude-bob", &format!("t{i}"), i).unwrap();
        }
        mb.note_topic("claude-bob", "t5", 100).unwrap();
        let topics = mb.topics("claude-bob").unwrap();
        assert_eq!(topics.len(), 16);
        assert_eq!(topics.first().unwrap(), "t4", "{topics:?}");
        assert_eq!(topics.last().unwrap(), "t5", "seen again: the most recent");
        mb.note_topic("claude-bob", "new", 101).unwrap();
        let topics = mb.topics("claude-bob").unwrap();
        assert_eq!(topics.first().unwrap(), "t6", "the oldest went: {topics:?}");
        assert!(mb.topics("codex-bob").unwrap().is_empty());
        mb.reset_topics("claude-bob").unwrap();
        assert!(mb.topics("claude-bob").unwrap().is_empty());
    }

    #[test]
    fn ids_are_checked() {
        assert!(MessageId::parse("nope").is_err());
        assert!(MessageId::parse("'; DROP TABLE messages; --").is_err());
        let id = MessageId::generate();
        assert_eq!(MessageId::parse(id.as_str()).unwrap(), id);
    }
}
