//! `send_to_peer` routing, shared by the MCP tool, the fleet API and
//! `iapeer send`. The order of checks:
//!
//! 1. validate the request (limits in the error text);
//! 2. the target must be registered, and the caller too (with its runtime);
//! 3. telegram sender policy on the intended channel, before any wake;
//! 4. where it would go now (the named runtime, else where the peer is
//!    live, else its default; two live runtimes are ambiguous): no
//!    self-send, no stopped peer, telegram policy on that channel;
//! 5. build the IAP envelope from the caller's record and commit it to the
//!    target's mailbox (from here it is never lost);
//! 6. `delivery` drains the target's mailbox (warm, or by a wake);
//! 7. answer `delivered` if it went in within `wait_secs`, else `queued`
//!    with the reason; a message dead-lettered meanwhile is an error.
//!
//! Refused before step 5: NOT delivered, nothing kept. One `ev=delivery`
//! line per call goes to `delivery.log`.

use std::time::{Duration, Instant};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::clock::iso8601_utc;
use crate::delivery::{self, Refusal};
use crate::envelope::{self, MAX_ATTACHMENTS, MAX_TOPIC_CHARS, Sender};
use crate::events::{self, EventLog};
use crate::fleet::wire::WireMessage;
use crate::fleetlink::{FleetLink, Owner};
use crate::lifecycle::{Lifecycle, LifecycleError};
use crate::mail::{Message, MessageId, MessageState, NewMessage};
use crate::names::{HostName, Identity, PeerAddress, Personality, Runtime};
use crate::registry::{Intelligence, PeerRecord, Registry};
use crate::store::{self, Mark};

/// How long a send waits for its message to go in when the caller does not
/// say, and the most it may ask for.
pub const DEFAULT_WAIT_SECS: u32 = 3;
pub const MAX_WAIT_SECS: u32 = 600;

/// One message to route: the arguments of the MCP tool `send_to_peer`
/// (its input schema is derived from this type) and the body of the fleet
/// API's send (which adds `from`). The names are checked as they are read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SendRequest {
    /// The peer to message (`bob`, or `bob@host` to name its host in a fleet across machines).
    pub personality: PeerAddress,
    /// Deliver to this runtime of the peer (default: where it is live, else its default runtime).
    #[serde(default)]
    pub runtime: Option<Runtime>,
    /// The message text.
    #[schemars(length(min = 1, max = envelope::MAX_MESSAGE_CHARS))]
    pub message: String,
    /// An optional topic for the conversation.
    #[serde(default)]
    #[schemars(length(max = MAX_TOPIC_CHARS))]
    pub topic: Option<String>,
    /// Absolute paths of files the peer should look at.
    #[serde(default)]
    #[schemars(length(max = MAX_ATTACHMENTS))]
    pub attachments: Vec<String>,
    /// Seconds to wait for the message to go in before answering `queued`
    /// (default 3, at most 600). A queued message is still delivered later;
    /// `message_status` tells what became of it.
    #[serde(default)]
    #[schemars(range(max = MAX_WAIT_SECS))]
    pub wait_secs: Option<u32>,
}

impl SendRequest {
    /// Reads a request from JSON; the error names the field at fault.
    pub fn from_json(value: serde_json::Value) -> Result<SendRequest, String> {
        serde_path_to_error::deserialize(value).map_err(|e| e.to_string())
    }

    pub fn new(personality: Personality, message: impl Into<String>) -> SendRequest {
        SendRequest {
            personality: personality.into(),
            runtime: None,
            message: message.into(),
            topic: None,
            attachments: Vec::new(),
            wait_secs: None,
        }
    }

    fn wait(&self) -> Duration {
        Duration::from_secs(u64::from(
            self.wait_secs
                .unwrap_or(DEFAULT_WAIT_SECS)
                .min(MAX_WAIT_SECS),
        ))
    }
}

/// The arguments of the MCP tool `message_status` (and the fleet API's).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StatusRequest {
    /// The id `send_to_peer` returned.
    pub id: String,
}

impl StatusRequest {
    pub fn from_json(value: serde_json::Value) -> Result<StatusRequest, String> {
        serde_path_to_error::deserialize(value).map_err(|e| e.to_string())
    }
}

/// What became of a message, by its id; the error is one line.
pub fn message_status(lc: &Lifecycle, id: &str) -> Result<crate::mail::Status, String> {
    let id = MessageId::parse(id)?;
    let mb = lc.mailbox().map_err(|e| e.to_string())?;
    let m = mb.get(&id).map_err(|e| e.to_string())?.ok_or_else(|| {
        format!("no message {id} in the mailbox (unknown, or pruned after a week)")
    })?;
    if !m.state.is_waiting() {
        return Ok(crate::mail::Status::of(&m, 0));
    }
    let depth = mb.depth(&m.personality).map_err(|e| e.to_string())?;
    let mut status = crate::mail::Status::of(&m, depth);
    if let crate::mail::Status::Queued { why, .. } = &mut status {
        *why = why_waiting(lc, &m);
    }
    Ok(status)
}

/// Which front door a message came through (logged as `path=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, strum::IntoStaticStr)]
#[strum(serialize_all = "lowercase")]
pub enum Door {
    Mcp,
    Cli,
    Fleet,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveredTo {
    pub personality: String,
    pub runtime: String,
}

/// A delivered message (the MCP tool's `structuredContent`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sent {
    pub ok: bool,
    pub id: MessageId,
    pub delivered_to: DeliveredTo,
    /// The target was asleep and this message woke it.
    pub woke: bool,
    pub ts: String,
}

/// An accepted message that has not gone in yet: kept in the mailbox and
/// delivered when the peer can take it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Queued {
    pub ok: bool,
    pub queued: bool,
    pub id: MessageId,
    pub to: String,
    /// Messages waiting for that peer, this one included.
    pub queue_depth: u64,
    /// What it waits for.
    pub reason: String,
}

/// What a send did with an accepted message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum SendOutcome {
    Delivered(Sent),
    Queued(Queued),
}

impl SendOutcome {
    pub fn id(&self) -> &MessageId {
        match self {
            SendOutcome::Delivered(s) => &s.id,
            SendOutcome::Queued(q) => &q.id,
        }
    }
}

/// Why a message was not accepted, or was given up on. Every one says
/// NOT delivered.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// The request itself is malformed (a limit, a name, a missing field).
    #[error("{0}; message NOT delivered")]
    Invalid(String),
    #[error(
        "missing or malformed x-iapeer-identity header (expected <runtime>-<personality>, got {0:?}); message NOT delivered"
    )]
    BadCaller(String),
    #[error("unknown caller \"{0}\"; message NOT delivered")]
    UnknownCaller(String),
    #[error(
        "caller runtime \"{runtime}\" is not declared for \"{personality}\"; message NOT delivered"
    )]
    CallerRuntimeUndeclared {
        personality: String,
        runtime: String,
    },
    #[error("peer \"{0}\" is not in the iapeer peers index; message NOT delivered")]
    UnknownTarget(String),
    /// More than one host of the fleet claims the peer.
    #[error("peer \"{personality}\" is claimed by more than one host ({}): name one as {personality}@<host>, or let one go; message NOT delivered", .hosts.join(", "))]
    Contested {
        personality: String,
        hosts: Vec<String>,
    },
    /// Self-send or telegram policy.
    #[error("{0}; message NOT delivered")]
    Refused(#[from] Refusal),
    #[error("peer \"{personality}\" is live in multiple runtimes ({}) — specify runtime; message NOT delivered", .runtimes.join(", "))]
    Ambiguous {
        personality: String,
        runtimes: Vec<String>,
    },
    /// A durable operator stop (its reason, verbatim).
    #[error("{0}; message NOT delivered")]
    Stopped(LifecycleError),
    /// Accepted, then given up on (its reason).
    #[error("{why}; message NOT delivered (id {id})")]
    DeadLettered { id: MessageId, why: String },
    #[error("{0}; message NOT delivered")]
    Lifecycle(LifecycleError),
    /// The daemon's answer to a send handed to it (its own words).
    #[error("{0}")]
    Relayed(String),
}

impl SendError {
    /// The caller's mistake (400/404-ish) rather than the target's failure.
    pub fn is_bad_request(&self) -> bool {
        matches!(
            self,
            SendError::Invalid(_)
                | SendError::BadCaller(_)
                | SendError::UnknownCaller(_)
                | SendError::CallerRuntimeUndeclared { .. }
                | SendError::Refused(_)
                | SendError::Ambiguous { .. }
        ) || matches!(self, SendError::Lifecycle(e) if e.is_bad_request())
    }

    pub fn is_unknown_target(&self) -> bool {
        matches!(self, SendError::UnknownTarget(_))
    }
}

/// The limits the names' types do not carry: the message, the topic, the
/// attachments.
fn validate(req: &SendRequest) -> Result<(), SendError> {
    let bad = |m: String| Err(SendError::Invalid(m));
    if req.attachments.len() > MAX_ATTACHMENTS {
        return bad(format!(
            "too many attachments: {} (at most {MAX_ATTACHMENTS})",
            req.attachments.len()
        ));
    }
    for a in &req.attachments {
        if !a.starts_with('/') || a.contains(['\r', '\n']) || a.contains('\0') {
            return bad(format!(
                "attachment {a:?} must be an absolute path without line breaks"
            ));
        }
    }
    if req.message.trim().is_empty() {
        return bad("message is required (1 to 16000 characters)".into());
    }
    let topic_chars = req.topic.as_deref().map_or(0, |t| t.chars().count());
    if topic_chars > MAX_TOPIC_CHARS {
        return bad(format!(
            "topic is {topic_chars} characters (at most {MAX_TOPIC_CHARS})"
        ));
    }
    envelope::check_body(&req.message).map_err(SendError::Invalid)
}

/// The caller's identity from a header value (`<runtime>-<personality>`).
pub fn parse_caller(header: Option<&str>) -> Result<Identity, SendError> {
    let raw = header.unwrap_or("").trim();
    Identity::parse(raw).map_err(|_| SendError::BadCaller(raw.to_string()))
}

/// The registry's one natural (human-facing) peer: who an operator's
/// message comes from when it names no sender. `None` unless exactly one.
pub fn natural_sender(registry: &Registry) -> Option<Identity> {
    let mut natural = registry
        .peers
        .iter()
        .filter(|p| p.intelligence == Intelligence::Natural);
    match (natural.next(), natural.next()) {
        (Some(one), None) => Some(Identity::new(&one.default_runtime, &one.personality)),
        _ => None,
    }
}

/// Routes one message (see the module docs) and logs the outcome.
pub async fn send(
    lc: &Lifecycle,
    caller: &Identity,
    req: &SendRequest,
    door: Door,
) -> Result<SendOutcome, SendError> {
    let started = Instant::now();
    let result = route(lc, caller, req, door).await;
    log_delivery(lc, caller, req, door, &result, started);
    result
}

async fn route(
    lc: &Lifecycle,
    caller: &Identity,
    req: &SendRequest,
    door: Door,
) -> Result<SendOutcome, SendError> {
    validate(req)?;
    // The system's own identity (bounces) is never a caller's.
    if caller.as_str() == delivery::SYSTEM_SENDER {
        return Err(SendError::BadCaller(caller.to_string()));
    }
    let registry = lc.registry().map_err(|e| SendError::Lifecycle(e.into()))?;
    let target = registry.find(req.personality.as_str());
    // In a fleet, a peer is where the fleet says it is, or where the
    // caller says (`bob@host`).
    match (lc.fleet_link(), req.personality.host()) {
        (Some(link), Some(host)) if host == link.host() => {}
        (Some(link), Some(host)) => {
            if !link.knows(host) {
                return Err(SendError::Invalid(format!(
                    "{}: host {host} is not in the fleet (it claims no peer and was not heard beating)",
                    req.personality
                )));
            }
            let caller_rec = caller_record(&registry, caller)?;
            return route_remote(lc, link, caller, caller_rec, req, door, host).await;
        }
        (None, Some(host)) => {
            return Err(SendError::Invalid(format!(
                "{} names host {host}, and this daemon joined no fleet",
                req.personality
            )));
        }
        (Some(link), None) => match (link.owner(&req.personality), target) {
            (Owner::There(host), None) => {
                let caller_rec = caller_record(&registry, caller)?;
                return route_remote(lc, link, caller, caller_rec, req, door, &host).await;
            }
            (Owner::There(host), Some(_)) => {
                return Err(SendError::Contested {
                    personality: req.personality.to_string(),
                    hosts: vec![host.to_string(), format!("{} (here)", link.host())],
                });
            }
            (Owner::Contested(hosts), _) => {
                return Err(SendError::Contested {
                    personality: req.personality.to_string(),
                    hosts: hosts.iter().map(ToString::to_string).collect(),
                });
            }
            (Owner::Here | Owner::Nobody, _) => {}
        },
        (None, None) => {}
    }
    let target = target.ok_or_else(|| SendError::UnknownTarget(req.personality.to_string()))?;
    let caller_rec = caller_record(&registry, caller)?;
    // A runtime the peer does not declare could never take it, and mail
    // batched behind it would share its fate.
    if let Some(rt) = &req.runtime
        && !target.declares(rt.as_str())
    {
        return Err(SendError::Lifecycle(LifecycleError::UndeclaredRuntime {
            personality: target.personality.to_string(),
            runtime: rt.to_string(),
        }));
    }
    let intended = req
        .runtime
        .clone()
        .unwrap_or_else(|| target.default_runtime.clone());
    delivery::telegram_policy(caller_rec, &intended)?;
    // Where it would go now: what can be refused is refused before the
    // message is accepted.
    let now_to = resolve_live(lc, target, req.runtime.as_ref())?.unwrap_or(intended);
    let now_to = Identity::new(&now_to, &target.personality);
    delivery::admit(&registry, caller.as_str(), &now_to)?;
    if store::has_mark(&lc.cfg, &now_to, Mark::Stopped) {
        return Err(SendError::Stopped(LifecycleError::Stopped(now_to)));
    }
    let text = |id: &MessageId| envelope_of(id, caller, caller_rec, req);
    let mb = lc.mailbox().map_err(SendError::Lifecycle)?;
    let id = mb
        .commit(
            &new_message(lc, target.personality.as_str(), caller, req, door, &text),
            lc.clock.now_ms(),
        )
        .map_err(|e| SendError::Lifecycle(e.into()))?;
    // Accepted: whatever happens now, it is in the mailbox. An ephemeral
    // sender has answered: its session may go once quiet.
    if lc.is_ephemeral(caller_rec) {
        let _ = store::set_mark(&lc.cfg, caller, Mark::EphemeralArmed, lc.clock.now_ms());
    }
    // A sender that does not wait is answered now; the daemon delivers.
    // Anywhere else this call delivers (nobody else may).
    let handed_over = req.wait().is_zero() && lc.hand_mail_to_daemon(&target.personality);
    if !handed_over {
        match delivery::drain(lc, &target.personality).await {
            // The daemon watches for the turn's end (not this call: its
            // sender waits at most `wait_secs`).
            Ok(Some(_)) => {
                lc.hand_mail_to_daemon(&target.personality);
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(peer = %target.personality, "mailbox drain: {e}"),
        }
    }
    wait_for(lc, &id, req.wait()).await
}

/// The IAP envelope of `req` from `caller`, with the id it is given.
fn envelope_of(id: &MessageId, caller: &Identity, rec: &PeerRecord, req: &SendRequest) -> String {
    envelope::build(
        id.as_str(),
        &Sender {
            personality: caller.personality().as_str(),
            runtime: caller.runtime().as_str(),
            intelligence: rec.intelligence.as_str(),
        },
        req.topic.as_deref(),
        &req.attachments,
        &req.message,
    )
}

/// `req` from `caller` to `personality`, as the mailbox takes it.
fn new_message<'a>(
    lc: &Lifecycle,
    personality: &'a str,
    caller: &'a Identity,
    req: &'a SendRequest,
    door: Door,
    envelope: &'a dyn Fn(&MessageId) -> String,
) -> NewMessage<'a> {
    NewMessage {
        personality,
        runtime: req.runtime.as_ref().map(Runtime::as_str),
        sender: caller.as_str(),
        door: door.into(),
        topic: req.topic.as_deref(),
        envelope,
        ttl: lc.cfg.mail_ttl,
    }
}

/// The caller's record: registered, and declaring the runtime it calls from.
fn caller_record<'r>(
    registry: &'r Registry,
    caller: &Identity,
) -> Result<&'r PeerRecord, SendError> {
    let rec = registry
        .find(caller.personality().as_str())
        .ok_or_else(|| SendError::UnknownCaller(caller.personality().to_string()))?;
    if !rec.declares(caller.runtime().as_str()) {
        return Err(SendError::CallerRuntimeUndeclared {
            personality: caller.personality().to_string(),
            runtime: caller.runtime().to_string(),
        });
    }
    Ok(rec)
}

/// A message for a peer another host owns: committed outbound, handed to
/// the fleet by the daemon's forwarder, delivered by its owner, and its
/// fate told back here.
async fn route_remote(
    lc: &Lifecycle,
    link: &FleetLink,
    caller: &Identity,
    caller_rec: &PeerRecord,
    req: &SendRequest,
    door: Door,
    host: &HostName,
) -> Result<SendOutcome, SendError> {
    let now = lc.clock.now_ms();
    let expires =
        now.saturating_add(u64::try_from(lc.cfg.mail_ttl.as_millis()).unwrap_or(u64::MAX));
    let text = |id: &MessageId| envelope_of(id, caller, caller_rec, req);
    let wire = |id: &MessageId| {
        serde_json::to_string(&WireMessage {
            id: id.to_string(),
            from: caller.to_string(),
            intelligence: caller_rec.intelligence.as_str().into(),
            to: req.personality.as_str().to_string(),
            runtime: req.runtime.as_ref().map(ToString::to_string),
            topic: req.topic.clone(),
            attachments: req.attachments.clone(),
            body: req.message.clone(),
            created_ms: now,
            expires_ms: expires,
        })
        .unwrap_or_default()
    };
    let mb = lc.mailbox().map_err(SendError::Lifecycle)?;
    let id = mb
        .commit_outbound(
            &new_message(lc, req.personality.as_str(), caller, req, door, &text),
            host.as_str(),
            &wire,
            now,
        )
        .map_err(|e| SendError::Lifecycle(e.into()))?;
    link.nudge_outbound();
    if lc.is_ephemeral(caller_rec) {
        let _ = store::set_mark(&lc.cfg, caller, Mark::EphemeralArmed, now);
    }
    wait_for(lc, &id, req.wait()).await
}

/// The message's fate once it is known, or `queued` after `wait`.
async fn wait_for(
    lc: &Lifecycle,
    id: &MessageId,
    wait: Duration,
) -> Result<SendOutcome, SendError> {
    let mb = lc.mailbox().map_err(SendError::Lifecycle)?;
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        // A change made in this process (the daemon's delivery, news from
        // another host) wakes this at once; another process's, at the poll.
        let changed = mb.changed();
        tokio::pin!(changed);
        changed.as_mut().enable();
        let m = mb
            .get(id)
            .map_err(|e| SendError::Lifecycle(e.into()))?
            .ok_or_else(|| SendError::DeadLettered {
                id: id.clone(),
                why: "it was dropped from the mailbox".into(),
            })?;
        match m.state {
            MessageState::Delivered => return Ok(SendOutcome::Delivered(sent(&m))),
            MessageState::Dead => {
                return Err(SendError::DeadLettered {
                    id: id.clone(),
                    why: m.why.unwrap_or_default(),
                });
            }
            _ if tokio::time::Instant::now() >= deadline => {
                let depth = mb.depth(&m.personality).unwrap_or(1);
                return Ok(SendOutcome::Queued(queued(lc, &m, depth)));
            }
            _ => {
                tokio::select! {
                    _ = changed => {}
                    _ = tokio::time::sleep(Duration::from_millis(20)) => {}
                }
            }
        }
    }
}

fn queued(lc: &Lifecycle, m: &Message, depth: u64) -> Queued {
    let mut reason = why_waiting(lc, m);
    // Said only when no daemon will try again (the daemon itself will; a
    // CLI asks its socket).
    if !lc.in_daemon() && std::os::unix::net::UnixStream::connect(&lc.cfg.daemon_socket).is_err() {
        reason.push_str(" (no iapeerd is running to retry it: it waits for the next send to this peer or for iapeerd)");
    }
    Queued {
        ok: true,
        queued: true,
        id: m.id.clone(),
        to: m.personality.clone(),
        queue_depth: depth,
        reason,
    }
}

/// What a waiting message waits for; one never tried waits behind an
/// older one, which says why.
fn why_waiting(lc: &Lifecycle, m: &Message) -> String {
    if m.why.is_none() && m.state == MessageState::Queued {
        let head = lc
            .mailbox()
            .ok()
            .and_then(|mb| mb.oldest_waiting(&m.personality).ok().flatten());
        if let Some(head) = head.filter(|h| h.id != m.id) {
            return format!(
                "behind an earlier message ({}): {}",
                head.id,
                head.waiting_reason()
            );
        }
    }
    m.waiting_reason()
}

/// The live runtime a message goes to: the named one (if live), else the
/// default (if live), else the only live declared runtime.
fn resolve_live(
    lc: &Lifecycle,
    target: &PeerRecord,
    explicit: Option<&Runtime>,
) -> Result<Option<Runtime>, SendError> {
    if let Some(rt) = explicit {
        let live = lc.is_live(&Identity::new(rt, &target.personality));
        return Ok(live.then(|| rt.clone()));
    }
    lc.delivery_runtime(target).map_err(|e| match e {
        LifecycleError::AmbiguousRuntime {
            personality,
            runtimes,
        } => SendError::Ambiguous {
            personality,
            runtimes,
        },
        e => SendError::Lifecycle(e),
    })
}

fn sent(m: &Message) -> Sent {
    let to = m
        .to_identity
        .as_deref()
        .and_then(|i| Identity::parse(i).ok());
    Sent {
        ok: true,
        id: m.id.clone(),
        delivered_to: DeliveredTo {
            personality: m.personality.clone(),
            runtime: to.map(|i| i.runtime().to_string()).unwrap_or_default(),
        },
        woke: m.woke,
        ts: iso8601_utc(m.done_ms.unwrap_or(m.created_ms)),
    }
}

fn log_delivery(
    lc: &Lifecycle,
    caller: &Identity,
    req: &SendRequest,
    door: Door,
    result: &Result<SendOutcome, SendError>,
    started: Instant,
) {
    let ms = started.elapsed().as_millis().to_string();
    let len = req.message.chars().count().to_string();
    let att = req.attachments.len().to_string();
    let mut fields: Vec<(&str, &str)> = Vec::new();
    if door != Door::Mcp {
        fields.push(("path", door.into()));
    }
    fields.push(("caller", caller.as_str()));
    fields.push(("to", req.personality.as_str()));
    if let Some(rt) = &req.runtime {
        fields.push(("rt", rt.as_str()));
    }
    let id = result
        .as_ref()
        .map(|o| o.id().to_string())
        .unwrap_or_default();
    let via;
    let woke;
    let depth;
    match result {
        Ok(SendOutcome::Delivered(s)) => {
            via = format!("{}-{}", s.delivered_to.runtime, s.delivered_to.personality);
            woke = s.woke.to_string();
            fields.extend([
                ("ok", "true"),
                ("via", via.as_str()),
                ("woke", woke.as_str()),
            ]);
        }
        Ok(SendOutcome::Queued(q)) => {
            depth = q.queue_depth.to_string();
            fields.extend([("ok", "true"), ("queued", "true"), ("qd", depth.as_str())]);
        }
        Err(_) => fields.push(("ok", "false")),
    }
    fields.push(("ms", &ms));
    fields.push(("len", &len));
    if !req.attachments.is_empty() {
        fields.push(("att", &att));
    }
    let topic = req.topic.as_deref().map(envelope::clip_topic);
    if let Some(t) = topic.as_deref().filter(|t| !t.is_empty()) {
        fields.push(("topic", t));
    }
    if !id.is_empty() {
        fields.push(("id", &id));
    }
    let err = result.as_ref().err().map(ToString::to_string);
    if let Some(e) = &err {
        fields.push(("err", e));
    }
    events::append_to(
        &lc.cfg,
        EventLog::Delivery,
        &[events::line("delivery", &fields)],
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(message: &str) -> SendRequest {
        SendRequest::new(Personality::new("bob").unwrap(), message)
    }

    fn invalid(r: &SendRequest) -> String {
        match validate(r) {
            Err(e @ SendError::Invalid(_)) => e.to_string(),
            other => panic!("expected a validation error, got {:?}", other.err()),
        }
    }

    fn read(json: serde_json::Value) -> Result<SendRequest, String> {
        SendRequest::from_json(json)
    }

    #[test]
    fn validation_names_the_limit() {
        assert!(validate(&req("hi")).is_ok());
        assert!(invalid(&req("")).contains("message is required"));
        let e = invalid(&req(&"x".repeat(16_001)));
        assert!(e.contains("16001") && e.contains("16000"), "{e}");
        assert!(e.ends_with("message NOT delivered"), "{e}");
        // Characters, not bytes.
        assert!(validate(&req(&"é".repeat(16_000))).is_ok());
        let mut r = req("hi");
        r.topic = Some("t".repeat(201));
        assert!(invalid(&r).contains("at most 200"));
        r.topic = None;
        r.attachments = vec!["/a".into(); 21];
        assert!(invalid(&r).contains("at most 20"));
        r.attachments = vec!["relative/path".into()];
        assert!(invalid(&r).contains("absolute path"));
        r.attachments = vec!["/a\nb".into()];
        assert!(invalid(&r).contains("line breaks"));
    }

    #[test]
    fn names_are_checked_as_the_request_is_read() {
        use serde_json::json;
        let ok = read(json!({"personality": "bob", "runtime": "codex", "message": "hi"})).unwrap();
        assert_eq!(ok.runtime.unwrap().as_str(), "codex");
        let e = read(json!({"personality": "Bob!", "message": "hi"})).unwrap_err();
        assert!(e.contains("invalid personality"), "{e}");
        let to = read(json!({"personality": "bob@gpu", "message": "hi"})).unwrap();
        assert_eq!(
            (
                to.personality.as_str(),
                to.personality.host().map(|h| h.as_str())
            ),
            ("bob", Some("gpu"))
        );
        let e = read(json!({"personality": "bob@", "message": "hi"})).unwrap_err();
        assert!(e.contains("invalid peer"), "{e}");
        let e =
            read(json!({"personality": "bob", "runtime": "No-Such", "message": "hi"})).unwrap_err();
        assert!(e.contains("invalid runtime"), "{e}");
        let e = read(json!({"message": "hi"})).unwrap_err();
        assert!(e.contains("missing field `personality`"), "{e}");
        let e = read(json!({"personality": "bob", "message": "hi", "from": "x"})).unwrap_err();
        assert!(e.contains("unknown field `from`"), "{e}");
        let e = read(json!({"personality": "bob", "message": {"a": 1}})).unwrap_err();
        assert!(e.starts_with("message: invalid type: map"), "{e}");
    }

    #[test]
    fn caller_header() {
        assert_eq!(
            parse_caller(Some("claude-alice")).unwrap().as_str(),
            "claude-alice"
        );
        for bad in [
            None,
            Some(""),
            Some("alice"),
            Some("Claude-alice"),
            Some("claude-../x"),
        ] {
            let e = parse_caller(bad).unwrap_err().to_string();
            assert!(e.contains("x-iapeer-identity"), "{e}");
        }
    }
}
