//! Mail for this host's peers from other hosts: checked (the sender must
//! be a peer of the host it came from, the target one of ours), taken into
//! the mailbox once by its id, acked only then, and delivered as local mail
//! is. What becomes of it is told back to its host (`report`).

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::consumer::PullConsumer;
use tokio_util::sync::CancellationToken;

use super::wire::{self, Kind, WireMessage, WireStatus};
use super::{Current, Fleet, Handled};
use crate::envelope::{self, Sender};
use crate::fleetlink::Owner;
use crate::lifecycle::Lifecycle;
use crate::mail::{Incoming, Message, MessageId, MessageState};
use crate::names::{HostName, Identity, Personality};
use crate::store::{self, Mark};

/// Takes in each message of this host's mail consumer.
pub async fn take_in(
    fleet: Arc<Fleet>,
    current: Current,
    consumer: PullConsumer,
    shutdown: CancellationToken,
) {
    super::consume(consumer, shutdown, |msg| {
        let fleet = fleet.clone();
        let lc = current();
        async move {
            let Some(from) = wire::sender_host(&msg.subject) else {
                tracing::warn!(subject = %msg.subject, "fleet: mail on a subject without a host; dropped");
                return Handled::Done;
            };
            let m = match serde_json::from_slice::<WireMessage>(&msg.payload) {
                Ok(m) => m,
                Err(e) => {
                    tracing::warn!(host = %from, "fleet: unreadable mail; dropped: {e}");
                    return Handled::Done;
                }
            };
            keep(&fleet, &lc, &from, &m)
        }
    })
    .await;
}

/// Why a message from `from` cannot be taken in, if it cannot. A sender
/// must be a peer that host claims, and the target one this host claims;
/// where another host claims the same name too, the envelope names the
/// sender's host (`alice@a`) and only a caller naming this host
/// (`bob@here`) reaches the target.
fn refusal(fleet: &Fleet, lc: &Lifecycle, from: &HostName, m: &WireMessage) -> Option<String> {
    let Ok(sender) = Identity::parse(&m.from) else {
        return Some(format!(
            "refused: the sender {:?} is not a peer's identity",
            clip(&m.from)
        ));
    };
    if !fleet.link.claimed_by(sender.personality(), from) {
        return Some(format!(
            "refused: {} is not a peer of host {from}, which sent it",
            sender.personality()
        ));
    }
    let Ok(to) = Personality::new(&m.to) else {
        return Some(format!("refused: {:?} is not a personality", clip(&m.to)));
    };
    let me = fleet.link.host();
    if !fleet.link.claimed_by(&to, me) {
        return Some(format!("peer \"{to}\" is not a peer of host {me}"));
    }
    if m.expires_ms <= lc.clock.now_ms() {
        return Some(format!(
            "its time to live ran out before host {me} took it in"
        ));
    }
    let registry = match lc.registry() {
        Ok(r) => r,
        Err(e) => {
            return Some(format!(
                "host {}: the registry is unreadable: {e}",
                fleet.link.host()
            ));
        }
    };
    let Some(target) = registry.find(to.as_str()) else {
        return Some(format!(
            "peer \"{to}\" is not in the peers index of host {}",
            fleet.link.host()
        ));
    };
    let runtime = m
        .runtime
        .as_deref()
        .map(crate::names::Runtime::new)
        .transpose();
    let runtime = match runtime {
        Ok(Some(r)) if !target.declares(r.as_str()) => {
            return Some(format!(
                "runtime \"{r}\" is not declared for \"{to}\" on host {me}"
            ));
        }
        Ok(r) => r.unwrap_or_else(|| target.default_runtime.clone()),
        Err(e) => return Some(format!("refused: {e}")),
    };
    if store::has_mark(&lc.cfg, &Identity::new(&runtime, &to), Mark::Stopped) {
        return Some(format!(
            "{to} ({runtime}) is stopped by the operator on host {}",
            fleet.link.host()
        ));
    }
    if let Err(e) = envelope::check_body(&m.body) {
        return Some(format!("refused: {e}"));
    }
    // The limits a send is held to here, held to there too.
    let topic_chars = m.topic.as_deref().map_or(0, |t| t.chars().count());
    if topic_chars > envelope::MAX_TOPIC_CHARS
        || m.attachments.len() > envelope::MAX_ATTACHMENTS
        || m.attachments
            .iter()
            .any(|a| !a.starts_with('/') || a.contains(['\r', '\n', '\0']))
    {
        return Some("refused: its topic or attachments are past a send's limits".into());
    }
    None
}

/// A field of a message refused, as kept and logged: its first 64
/// characters (a hostile host's could be a megabyte).
fn clip(s: &str) -> String {
    crate::term::clip(s, 64).into_owned()
}

/// Takes one message in (or keeps it refused), once.
fn keep(fleet: &Fleet, lc: &Lifecycle, from: &HostName, m: &WireMessage) -> Handled {
    let Ok(id) = MessageId::parse(&m.id) else {
        tracing::warn!(host = %from, "fleet: mail with a bad id; dropped");
        return Handled::Done;
    };
    let refused = refusal(fleet, lc, from, m);
    let sender = Identity::parse(&m.from).ok();
    // A name more than one host claims is told apart by its host.
    let label = sender
        .as_ref()
        .map(|s| match fleet.link.owner(s.personality()) {
            Owner::Contested(_) => format!("{}@{from}", s.personality()),
            _ => s.personality().to_string(),
        });
    let envelope = match (&refused, &sender, &label) {
        (None, Some(s), Some(label)) => envelope::build(
            id.as_str(),
            &Sender {
                personality: label,
                runtime: s.runtime().as_str(),
                intelligence: intelligence(&m.intelligence),
            },
            m.topic.as_deref(),
            &m.attachments,
            &m.body,
        ),
        _ => String::new(),
    };
    let Ok(mb) = lc.mailbox() else {
        return Handled::Again;
    };
    let now = lc.clock.now_ms();
    // A refused message is kept with its fields cut short.
    let (to, from_id, topic) = match refused {
        Some(_) => (clip(&m.to), clip(&m.from), m.topic.as_deref().map(clip)),
        None => (m.to.clone(), m.from.clone(), m.topic.clone()),
    };
    let runtime = m.runtime.as_deref().map(clip);
    let taken = mb.take_in(
        &Incoming {
            id: &id,
            personality: &to,
            runtime: runtime.as_deref(),
            sender: &from_id,
            topic: topic.as_deref(),
            envelope: &envelope,
            created_ms: m.created_ms,
            expires_ms: m.expires_ms,
            from_host: from.as_str(),
            refused: refused.as_deref(),
        },
        now,
    );
    match taken {
        Ok(new) => {
            if let Some(why) = &refused {
                tracing::warn!(%id, host = %from, "fleet: {why}");
            } else if new && let Ok(p) = Personality::new(&m.to) {
                lc.hand_mail_to_daemon(&p);
            }
            Handled::Done
        }
        Err(e) => {
            tracing::warn!(%id, "fleet: cannot take mail in: {e}");
            Handled::Again
        }
    }
}

/// The intelligences an envelope may name; anything else is `artificial`.
fn intelligence(claimed: &str) -> &'static str {
    match claimed {
        "natural" => "natural",
        "absent" => "absent",
        _ => "artificial",
    }
}

/// How long the reporter rests when nothing changes here (changes made by
/// another process, `iapeer mail --drop`, are seen then).
const REPORT_REST: Duration = Duration::from_secs(1);
/// … and after the fleet could not take news.
const RETRY_TELLING: Duration = Duration::from_millis(500);

/// Tells each message's host what became of it, as it changes: waiting
/// (and why), delivered, dead-lettered.
pub async fn report(fleet: Arc<Fleet>, current: Current, shutdown: CancellationToken) {
    loop {
        let lc = current();
        let Ok(mb) = lc.mailbox() else {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(REPORT_REST) => continue,
            }
        };
        // Listening before looking: a change while telling is not missed.
        let changed = mb.changed();
        tokio::pin!(changed);
        changed.as_mut().enable();
        let rest = tell_once(&fleet, mb).await;
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = changed => {}
            _ = tokio::time::sleep(rest) => {}
        }
    }
}

/// Tells every news due; how long to rest after (less when the fleet
/// could not take it).
async fn tell_once(fleet: &Fleet, mb: &crate::mail::Mailbox) -> Duration {
    let due = match mb.reports_due() {
        Ok(d) => d,
        Err(e) => {
            tracing::warn!("fleet: news due: {e}");
            return REPORT_REST;
        }
    };
    // Published all at once, then each marked told as its ack comes.
    let mut sent = Vec::new();
    for m in due {
        let to = m.from_host.as_deref().and_then(|h| HostName::new(h).ok());
        let (Some(to), Some(status)) = (to, status_of(&m)) else {
            let _ = mb.reported(&m);
            continue;
        };
        let Ok(payload) = serde_json::to_vec(&status) else {
            continue;
        };
        let subject = wire::subject(Kind::Status, &to, fleet.link.host());
        match fleet.js.publish(subject, payload.into()).await {
            Ok(ack) => sent.push((m, ack)),
            Err(e) => {
                tracing::debug!(host = %to, "fleet: cannot tell news yet: {e}");
                break;
            }
        }
    }
    let mut rest = REPORT_REST;
    for (m, ack) in sent {
        match ack.await {
            Ok(_) => {
                let _ = mb.reported(&m);
            }
            Err(e) => {
                tracing::debug!("fleet: news not taken yet: {e}");
                rest = RETRY_TELLING;
            }
        }
    }
    rest
}

/// What to tell of `m`, as it stands.
fn status_of(m: &Message) -> Option<WireStatus> {
    let id = m.id.to_string();
    Some(match m.state {
        MessageState::Delivered => WireStatus::Delivered {
            id,
            to: m
                .to_identity
                .clone()
                .unwrap_or_else(|| m.personality.clone()),
            woke: m.woke,
            unconfirmed: m.why.clone(),
            at_ms: m.done_ms.unwrap_or(m.created_ms),
        },
        MessageState::Dead => WireStatus::DeadLettered {
            id,
            why: m.why.clone().unwrap_or_default(),
            at_ms: m.done_ms.unwrap_or(m.created_ms),
        },
        MessageState::Queued => WireStatus::Waiting {
            id,
            why: m.waiting_reason(),
        },
        // Being typed in: its outcome follows at once.
        MessageState::Submitted | MessageState::Outbound | MessageState::Forwarded => {
            return None;
        }
    })
}
