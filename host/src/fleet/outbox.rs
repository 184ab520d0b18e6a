//! Mail sent from here to peers of other hosts: handed to the fleet's
//! stream (`forward`), and what those hosts tell of it applied to this
//! mailbox (`hear`), so `message_status` and a waiting `send_to_peer` say
//! what they would say of local mail.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::consumer::PullConsumer;
use tokio_util::sync::CancellationToken;

use super::wire::{self, Kind, WireStatus};
use super::{Current, Fleet, Handled};
use crate::lifecycle::Lifecycle;
use crate::mail::{MessageId, Told};
use crate::names::HostName;

/// How long the forwarder rests when nothing nudges it, and after the
/// fleet could not take a message.
const FORWARD_REST: Duration = Duration::from_secs(1);
/// … after the fleet did not take a message.
const RETRY_FORWARD: Duration = Duration::from_millis(500);

/// Hands every outbound message to the stream, oldest first, with its id
/// as the stream's dedup id: a message published twice (a crash between
/// the publish and its mark) is kept once.
pub async fn forward(fleet: Arc<Fleet>, current: Current, shutdown: CancellationToken) {
    let mut swept: Option<std::time::Instant> = None;
    loop {
        let lc = current();
        // Off the per-send path: mail unheard of is looked for once a minute.
        if swept.is_none_or(|t| t.elapsed() >= UNHEARD_SWEEP)
            && let Ok(mb) = lc.mailbox()
        {
            give_up_unheard(&lc, mb);
            swept = Some(std::time::Instant::now());
        }
        let rest = tokio::select! {
            _ = shutdown.cancelled() => return,
            r = forward_once(&fleet, &lc) => r,
        };
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = fleet.link.outbound_nudged() => {}
            _ = tokio::time::sleep(rest) => {}
        }
    }
}

/// One pass; how long to rest after it.
async fn forward_once(fleet: &Fleet, lc: &Lifecycle) -> Duration {
    let mb = match lc.mailbox() {
        Ok(mb) => mb,
        Err(e) => {
            tracing::warn!("fleet: mailbox: {e}");
            return FORWARD_REST;
        }
    };
    let pending = match mb.outbound() {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!("fleet: outbound mail: {e}");
            return FORWARD_REST;
        }
    };
    let me = fleet.link.host();
    // Published all at once, then each marked as its ack comes.
    let mut sent = Vec::new();
    for m in pending {
        let now = lc.clock.now_ms();
        let Some(to) = m.to_host.as_deref().and_then(|h| HostName::new(h).ok()) else {
            let _ = mb.abroad_dead(&m.id, "its host's name is unreadable", now);
            continue;
        };
        if m.expires_ms <= now {
            let why = format!("the fleet could not take it for host {to} before its TTL ran out");
            if mb.abroad_dead(&m.id, &why, now).unwrap_or(0) == 1 {
                crate::delivery::bounce(lc, mb, &m, &why, now);
            }
            continue;
        }
        let publish = async_nats::jetstream::message::PublishMessage::build()
            .message_id(m.id.as_str())
            .payload(m.wire.clone().unwrap_or_default().into());
        match fleet
            .js
            .send_publish(wire::subject(Kind::Mail, &to, me), publish)
            .await
        {
            Ok(ack) => sent.push((m.id, to, ack)),
            Err(e) => {
                unreachable(mb, &m.id, &to, &e);
                break;
            }
        }
    }
    let mut rest = FORWARD_REST;
    for (id, to, ack) in sent {
        match ack.await {
            Ok(_) => {
                let why =
                    format!("handed to host {to}: in the fleet's stream until {to} takes it in");
                let _ = mb.forwarded(&id, &why);
            }
            Err(e) => {
                unreachable(mb, &id, &to, &e);
                rest = RETRY_FORWARD;
            }
        }
    }
    rest
}

/// How long past its time to live a message handed to another host may go
/// unheard of before it is given up here: that host refuses it from then,
/// and its own expiry would have been told.
const UNHEARD_GRACE_MS: u64 = 3600 * 1000;
/// How often the forwarder looks for such mail.
const UNHEARD_SWEEP: Duration = Duration::from_secs(60);

/// Gives up on forwarded mail long past its time to live with no word of
/// its fate (its host gone for good, or the stream lost it); its sender is
/// told.
fn give_up_unheard(lc: &Lifecycle, mb: &crate::mail::Mailbox) {
    let now = lc.clock.now_ms();
    let Ok(abroad) = mb.abroad() else { return };
    for m in abroad {
        if m.state != crate::mail::MessageState::Forwarded
            || m.expires_ms.saturating_add(UNHEARD_GRACE_MS) > now
        {
            continue;
        }
        let why = format!(
            "host {} never told what became of it before its time to live ran out",
            m.to_host.as_deref().unwrap_or("?")
        );
        if mb.abroad_dead(&m.id, &why, now).unwrap_or(0) == 1 {
            crate::delivery::bounce(lc, mb, &m, &why, now);
        }
    }
}

/// Still outbound, and why.
fn unreachable(
    mb: &crate::mail::Mailbox,
    id: &MessageId,
    to: &HostName,
    e: &dyn std::fmt::Display,
) {
    let why = format!("not yet handed to host {to}: the fleet is unreachable ({e})");
    let _ = mb.outbound_waits(id, &why);
}

/// Applies what other hosts tell of mail sent from here; each news is
/// acked once applied (applying it twice changes nothing).
pub async fn hear(
    fleet: Arc<Fleet>,
    current: Current,
    consumer: PullConsumer,
    shutdown: CancellationToken,
) {
    drop(fleet);
    super::consume(consumer, shutdown, |msg| {
        let lc = current();
        async move {
            let Some(from) = wire::sender_host(&msg.subject) else {
                return Handled::Done;
            };
            match serde_json::from_slice::<WireStatus>(&msg.payload) {
                Ok(status) => apply(&lc, &from, &status),
                Err(e) => {
                    tracing::warn!(host = %from, "fleet: unreadable news of a message: {e}");
                    Handled::Done
                }
            }
        }
    })
    .await;
}

fn apply(lc: &Lifecycle, from: &HostName, status: &WireStatus) -> Handled {
    let Ok(id) = MessageId::parse(status.id()) else {
        tracing::warn!(host = %from, "fleet: news of a message with a bad id");
        return Handled::Done;
    };
    let Ok(mb) = lc.mailbox() else {
        return Handled::Again;
    };
    let waiting;
    let told = match status {
        WireStatus::Waiting { why, .. } => {
            waiting = format!("at host {from}: {why}");
            Told::Waiting { why: &waiting }
        }
        WireStatus::Delivered {
            to,
            woke,
            unconfirmed,
            at_ms,
            ..
        } => Told::Delivered {
            to_identity: to,
            woke: *woke,
            unconfirmed: unconfirmed.as_deref(),
            at_ms: *at_ms,
        },
        WireStatus::DeadLettered { why, at_ms, .. } => Told::Dead { why, at_ms: *at_ms },
    };
    match mb.told(&id, from.as_str(), &told) {
        Ok(n) => {
            if n == 1
                && let (WireStatus::DeadLettered { why, .. }, Ok(Some(m))) = (status, mb.get(&id))
            {
                crate::delivery::bounce(lc, mb, &m, why, lc.clock.now_ms());
            }
            Handled::Done
        }
        Err(e) => {
            tracing::warn!(%id, "fleet: cannot note news of a message: {e}");
            Handled::Again
        }
    }
}
