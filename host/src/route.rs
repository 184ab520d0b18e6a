//! `send_to_peer` routing, shared by the MCP tool, the fleet API and
//! `iapeer send`. The order of checks:
//!
//! 1. validate the request (limits in the error text);
//! 2. the target must be registered, and the caller too (with its runtime);
//! 3. telegram sender policy on the intended channel, before any wake;
//! 4. build the IAP envelope from the caller's record;
//! 5. resolve a live target: the named runtime, else the default, else the
//!    one live runtime (two are ambiguous);
//! 6. hit: refuse a self-send, deliver warm under the peer's wake lock;
//! 7. miss: wake with the envelope as the task, verify the peer is live
//!    before acting on the result, and deliver over the live path if the
//!    wake did not.
//!
//! A message is delivered exactly once, or the error says it was NOT
//! delivered. One `ev=delivery` line per call goes to `delivery.log`.

use std::time::Instant;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::clock::iso8601_utc;
use crate::envelope::{self, MAX_ATTACHMENTS, MAX_TOPIC_CHARS, Sender};
use crate::events::{self, EventLog};
use crate::lifecycle::{Delivery, Lifecycle, LifecycleError, WakeArgs};
use crate::names::{Identity, Personality, Runtime};
use crate::registry::{Intelligence, PeerRecord, Registry};

/// One message to route: the arguments of the MCP tool `send_to_peer`
/// (its input schema is derived from this type) and the body of the fleet
/// API's send (which adds `from`). The names are checked as they are read.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SendRequest {
    /// The peer to message.
    pub personality: Personality,
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
}

impl SendRequest {
    /// Reads a request from JSON; the error names the field at fault.
    pub fn from_json(value: serde_json::Value) -> Result<SendRequest, String> {
        serde_path_to_error::deserialize(value).map_err(|e| e.to_string())
    }

    pub fn new(personality: Personality, message: impl Into<String>) -> SendRequest {
        SendRequest {
            personality,
            runtime: None,
            message: message.into(),
            topic: None,
            attachments: Vec::new(),
        }
    }
}

/// Which front door a message came through (logged as `path=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, strum::IntoStaticStr)]
#[strum(serialize_all = "lowercase")]
pub enum Door {
    Mcp,
    Cli,
    Fleet,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeliveredTo {
    pub personality: String,
    pub runtime: String,
}

/// The tool result of a delivered message (the MCP tool's `structuredContent`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Sent {
    pub ok: bool,
    pub delivered_to: DeliveredTo,
    /// The target was asleep and this message woke it.
    pub woke: bool,
    pub ts: String,
}

/// Why a message was not delivered. Every message says so.
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
    #[error(
        "telegram policy: \"{caller}\" has no interfaces.telegram.bot in the registry, so it may not message a telegram channel; message NOT delivered"
    )]
    TelegramPolicy { caller: String },
    #[error("cannot send to self; message NOT delivered")]
    SelfSend,
    #[error("peer \"{personality}\" is live in multiple runtimes ({}) — specify runtime; message NOT delivered", .runtimes.join(", "))]
    Ambiguous {
        personality: String,
        runtimes: Vec<String>,
    },
    /// A durable operator stop (its reason, verbatim).
    #[error("{0}; message NOT delivered")]
    Stopped(LifecycleError),
    #[error(
        "peer \"{personality}\" was asleep and the wake failed: {reason}; message NOT delivered"
    )]
    WakeFailed { personality: String, reason: String },
    #[error(
        "peer \"{0}\" reported READY but is not live (verify-before-act); message NOT delivered"
    )]
    VerifyBeforeAct(String),
    /// Live, but the delivery did not go through (the error says so).
    #[error("{0}")]
    NotDelivered(LifecycleError),
    /// Given to the peer, but not confirmed taken: it may still arrive.
    #[error("{0}")]
    Unconfirmed(String),
    #[error("{0}; message NOT delivered")]
    Lifecycle(LifecycleError),
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
                | SendError::SelfSend
                | SendError::Ambiguous { .. }
                | SendError::TelegramPolicy { .. }
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

/// A telegram channel is open only to callers with a telegram bot.
fn telegram_policy(caller: &PeerRecord, channel: &Runtime) -> Result<(), SendError> {
    if channel.as_str() != "telegram" {
        return Ok(());
    }
    let has_bot = caller
        .interfaces
        .as_ref()
        .and_then(|i| i.get("telegram"))
        .and_then(|t| t.get("bot"))
        .and_then(|b| b.as_str())
        .is_some_and(|b| !b.trim().is_empty());
    if has_bot {
        Ok(())
    } else {
        Err(SendError::TelegramPolicy {
            caller: caller.personality.to_string(),
        })
    }
}

/// Routes one message (see the module docs) and logs the outcome.
pub async fn send(
    lc: &Lifecycle,
    caller: &Identity,
    req: &SendRequest,
    door: Door,
) -> Result<Sent, SendError> {
    let started = Instant::now();
    let result = route(lc, caller, req).await;
    log_delivery(lc, caller, req, door, &result, started);
    result
}

async fn route(lc: &Lifecycle, caller: &Identity, req: &SendRequest) -> Result<Sent, SendError> {
    validate(req)?;
    let registry = lc.registry().map_err(|e| SendError::Lifecycle(e.into()))?;
    let target = registry
        .find(req.personality.as_str())
        .ok_or_else(|| SendError::UnknownTarget(req.personality.to_string()))?;
    let caller_rec = registry
        .find(caller.personality().as_str())
        .ok_or_else(|| SendError::UnknownCaller(caller.personality().to_string()))?;
    if !caller_rec.declares(caller.runtime().as_str()) {
        return Err(SendError::CallerRuntimeUndeclared {
            personality: caller.personality().to_string(),
            runtime: caller.runtime().to_string(),
        });
    }
    let intended = req
        .runtime
        .clone()
        .unwrap_or_else(|| target.default_runtime.clone());
    telegram_policy(caller_rec, &intended)?;
    let text = envelope::build(
        &Sender {
            personality: caller.personality().as_str(),
            runtime: caller.runtime().as_str(),
            intelligence: caller_rec.intelligence.as_str(),
        },
        req.topic.as_deref(),
        &req.attachments,
        &req.message,
    );

    // Hit: deliver warm. A session that died since the look falls through
    // to the wake, with the runtime it had.
    let live = resolve_live(lc, target, req.runtime.as_ref())?;
    let mut wake_runtime = req.runtime.clone();
    if let Some(rt) = live {
        let id = Identity::new(&rt, &target.personality);
        if &id == caller {
            return Err(SendError::SelfSend);
        }
        telegram_policy(caller_rec, &rt)?;
        match lc.deliver_if_live(&id, &target.cwd, &text).await {
            Ok(Delivery::Accepted) => return Ok(sent(&id, false)),
            Ok(Delivery::NotLive) => wake_runtime = Some(rt),
            Err(e @ LifecycleError::Launch { .. }) => {
                return Err(SendError::WakeFailed {
                    personality: target.personality.to_string(),
                    reason: e.to_string(),
                });
            }
            Err(e) => return Err(delivery_error(e)),
        }
    }

    // Miss: wake with the envelope as the first message.
    let wake_id = Identity::new(
        wake_runtime.as_ref().unwrap_or(&target.default_runtime),
        &target.personality,
    );
    if &wake_id == caller {
        return Err(SendError::SelfSend);
    }
    let woken = lc
        .wake_or_spawn(&WakeArgs {
            skip_seed: false,
            personality: target.personality.to_string(),
            runtime: wake_runtime.as_ref().map(ToString::to_string),
            task: text.clone(),
            resume: None,
            hand_over: false,
        })
        .await
        .map_err(|e| match e {
            LifecycleError::Launch {
                ref id,
                ref reason,
                message_pasted: true,
            } => SendError::Unconfirmed(format!(
                "woke {id} and gave it the message, but the launch then failed: {reason}; \
                 delivery NOT confirmed (it may still arrive: check before resending)"
            )),
            e @ (LifecycleError::Stopped(_)
            | LifecycleError::NotDelivered { .. }
            | LifecycleError::Unconfirmed { .. }
            | LifecycleError::ShuttingDown) => delivery_error(e),
            e if e.is_bad_request() => SendError::Lifecycle(e),
            e => SendError::WakeFailed {
                personality: target.personality.to_string(),
                reason: e.to_string(),
            },
        })?;
    let id = woken.identity.clone();
    // Taken (the ready gate or the live path saw it): delivered, whatever
    // the session does next.
    if woken.task_delivered == Some(true) {
        return Ok(sent(&id, woken.woke()));
    }
    // Up, but the envelope did not go in with the wake (a router whose
    // first paste failed): verify before acting, then once more over the
    // live path.
    if !lc.is_live(&id) {
        return Err(SendError::VerifyBeforeAct(target.personality.to_string()));
    }
    if &id == caller {
        return Err(SendError::SelfSend);
    }
    telegram_policy(caller_rec, id.runtime())?;
    match lc.deliver_if_live(&id, &target.cwd, &text).await {
        Ok(Delivery::Accepted) => Ok(sent(&id, woken.woke())),
        Ok(Delivery::NotLive) => Err(SendError::VerifyBeforeAct(target.personality.to_string())),
        Err(e) => Err(delivery_error(e)),
    }
}

/// A failed delivery attempt, as the caller should read it.
fn delivery_error(e: LifecycleError) -> SendError {
    match e {
        LifecycleError::Stopped(_) => SendError::Stopped(e),
        LifecycleError::NotDelivered { .. } => SendError::NotDelivered(e),
        LifecycleError::Unconfirmed { .. } => SendError::Unconfirmed(e.to_string()),
        e => SendError::Lifecycle(e),
    }
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

fn sent(id: &Identity, woke: bool) -> Sent {
    Sent {
        ok: true,
        delivered_to: DeliveredTo {
            personality: id.personality().to_string(),
            runtime: id.runtime().to_string(),
        },
        woke,
        ts: iso8601_utc(crate::clock::SystemClock.now_ms()),
    }
}

use crate::clock::Clock as _;

fn log_delivery(
    lc: &Lifecycle,
    caller: &Identity,
    req: &SendRequest,
    door: Door,
    result: &Result<Sent, SendError>,
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
    let via;
    let woke;
    match result {
        Ok(s) => {
            via = format!("{}-{}", s.delivered_to.runtime, s.delivered_to.personality);
            woke = s.woke.to_string();
            fields.extend([
                ("ok", "true"),
                ("via", via.as_str()),
                ("woke", woke.as_str()),
            ]);
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
