//! The fleet API (`/fleet/v1`): plain JSON for operators and tools, over
//! the same verb functions the CLI calls. Errors are `{"error": "…"}` with
//! 400 (bad input), 401 (bearer), 404 (unknown peer or endpoint), 405
//! (wrong method), 502 (the verb ran and failed or was refused) or 500.

// An early answer is the HTTP response itself; boxing it would buy nothing
// on a request path.
#![allow(clippy::result_large_err)]

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{ApiState, error, events, json};
use crate::clock::{Clock, SystemClock, iso8601_utc};
use crate::lifecycle::{Control, LifecycleError, Peers, WakeArgs, WakeReport};
use crate::names::{Identity, is_valid_personality};
use crate::plugins::PluginState;
use crate::route::{self, Door, SendError, SendRequest};
use crate::store;

/// The most recent events `GET /peers/<p>` returns.
const PEER_EVENTS: usize = 50;
/// Pane lines `GET /peers/<p>/pane` returns by default, and at most.
const PANE_LINES: usize = 60;
const MAX_PANE_LINES: usize = 2000;

pub(super) fn routes() -> Router<Arc<ApiState>> {
    Router::new()
        .route("/status", get(status))
        .route("/snapshot", get(snapshot))
        .route("/events", get(events::stream))
        .route("/peers/{personality}", get(peer))
        .route("/peers/{personality}/pane", get(pane))
        .route("/peers/{personality}/{verb}", post(verb))
        .route("/send", post(send))
        .route("/messages/{id}", get(message))
        .route("/plugins", get(plugins))
        .route("/reload", post(reload))
        .layer(axum::middleware::map_response(json_errors))
}

/// Every error here is `{"error": "…"}`, including the plain-text ones the
/// extractors answer with (a bad query, a path that is not UTF-8).
async fn json_errors(res: Response) -> Response {
    let plain = res
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/plain"));
    if !(plain && res.status().is_client_error()) {
        return res;
    }
    let status = res.status();
    let text = axum::body::to_bytes(res.into_body(), 64 << 10)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_string())
        .unwrap_or_default();
    error(status, text)
}

/// `GET /plugins`: every adapter the daemon found, loaded or not, and why.
async fn plugins(State(state): State<Arc<ApiState>>) -> Response {
    let lc = state.lifecycle();
    json(StatusCode::OK, &json!({ "plugins": lc.plugins.reports() }))
}

/// `POST /reload`: reload the plugin dirs now (as SIGHUP and the file
/// watcher do) and say what serves afterwards.
async fn reload(State(state): State<Arc<ApiState>>) -> Response {
    let Some(reloader) = state.reloader() else {
        return error(StatusCode::SERVICE_UNAVAILABLE, "no reload task");
    };
    match reloader.reload().await {
        Ok(summary) => json(StatusCode::OK, &summary),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e),
    }
}

fn lifecycle_status(e: &LifecycleError) -> StatusCode {
    match e {
        LifecycleError::NotRegistered(_) => StatusCode::NOT_FOUND,
        e if e.is_bad_request() => StatusCode::BAD_REQUEST,
        _ => StatusCode::BAD_GATEWAY,
    }
}

fn send_status(e: &SendError) -> StatusCode {
    if e.is_unknown_target() {
        StatusCode::NOT_FOUND
    } else if e.is_bad_request() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::BAD_GATEWAY
    }
}

fn panicked(e: tokio::task::JoinError) -> Response {
    error(
        StatusCode::INTERNAL_SERVER_ERROR,
        format!("the verb panicked: {e}"),
    )
}

/// The daemon's own state: what `iapeer status` prints.
pub(crate) fn status_value(state: &ApiState) -> Value {
    let lc = state.lifecycle();
    let info = &state.info;
    let adapters: Vec<Value> = lc
        .plugins
        .reports()
        .iter()
        .map(|r| {
            json!({
                "runtime": r.runtime,
                "version": r.version,
                "source": r.source,
                "state": r.state,
                "reason": r.reason,
            })
        })
        .collect();
    let operator = operator_sender(&lc);
    let last_tick = info
        .last_tick
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    json!({
        "api": 1,
        "pid": info.pid,
        "version": env!("CARGO_PKG_VERSION"),
        "started": iso8601_utc(info.started_ms),
        "uptime_secs": info.started.elapsed().as_secs(),
        "root": lc.cfg.root,
        "listeners": { "sock": info.sock, "tcp": info.tcp },
        "dashboard": info.tcp.as_deref().map(|mcp| format!("{}/", mcp.trim_end_matches("/mcp"))),
        "adapters": adapters,
        "adapters_loaded": lc.plugins.reports().iter().filter(|r| r.state == PluginState::Loaded).count(),
        "sessions": store::read_sessions(&lc.cfg).len(),
        "tick_secs": info.tick_secs,
        "operator": operator.as_ref().ok().map(|id| id.to_string()),
        "operator_problem": operator.err(),
        "last_tick": last_tick,
    })
}

async fn status(State(state): State<Arc<ApiState>>) -> Response {
    json(StatusCode::OK, &status_value(&state))
}

/// What a snapshot covers.
#[derive(Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
enum Scope {
    /// This host's peers.
    #[default]
    Host,
    /// Every host of the fleet this daemon joined, and their peers.
    Fleet,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SnapshotQuery {
    #[serde(default)]
    scope: Scope,
}

async fn snapshot(State(state): State<Arc<ApiState>>, Query(q): Query<SnapshotQuery>) -> Response {
    let lc = state.lifecycle();
    let fleet = match state.run(async move { lc.fleet().await }).await {
        Ok(Ok(f)) => f,
        Ok(Err(e)) => return error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        Err(e) => return panicked(e),
    };
    let mut body = json!({
        "api": 1,
        "version": env!("CARGO_PKG_VERSION"),
        "ts": iso8601_utc(SystemClock.now_ms()),
        "host": status_value(&state),
        "peers": fleet,
    });
    if q.scope == Scope::Fleet {
        let local = body["peers"].as_array().cloned().unwrap_or_default();
        let whole = super::remote::fleet_snapshot(&state, local).await;
        body["peers"] = whole["peers"].clone();
        body["hosts"] = whole["hosts"].clone();
        body["joined"] = whole["joined"].clone();
    }
    json(StatusCode::OK, &body)
}

/// The registry record of a peer named in a path, or the error answer.
fn registered(
    lc: &crate::lifecycle::Lifecycle,
    personality: &str,
) -> Result<crate::registry::PeerRecord, Response> {
    if !is_valid_personality(personality) {
        return Err(error(
            StatusCode::BAD_REQUEST,
            format!("invalid personality {personality:?}"),
        ));
    }
    lc.registered_peer(personality)
        .map_err(|e| error(lifecycle_status(&e), e.to_string()))
}

async fn peer(
    State(state): State<Arc<ApiState>>,
    headers: axum::http::HeaderMap,
    Path(personality): Path<String>,
) -> Response {
    let path = format!("/fleet/v1/peers/{personality}");
    if let Some(carried) =
        super::remote::carry_if_remote(&state, &headers, &personality, "GET", path, None).await
    {
        return carried;
    }
    let lc = state.lifecycle();
    let record = match registered(&lc, &personality) {
        Ok(r) => r,
        Err(r) => return r,
    };
    let row = {
        let lc = lc.clone();
        match state
            .run(async move { lc.peer_status(&record).await })
            .await
        {
            Ok(row) => row,
            Err(e) => return panicked(e),
        }
    };
    let recent = events::recent(&lc.cfg, PEER_EVENTS, |e| events::concerns(e, &personality));
    json(StatusCode::OK, &json!({ "peer": row, "events": recent }))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PaneQuery {
    runtime: Option<String>,
    #[serde(default = "default_pane_lines")]
    lines: usize,
}

fn default_pane_lines() -> usize {
    PANE_LINES
}

/// `GET /peers/<p>/pane?runtime=&lines=`: the last lines its terminal
/// showed (the named runtime's pane log, else the one written last),
/// escape sequences stripped.
async fn pane(
    State(state): State<Arc<ApiState>>,
    Path(personality): Path<String>,
    Query(q): Query<PaneQuery>,
) -> Response {
    let lc = state.lifecycle();
    let record = match registered(&lc, &personality) {
        Ok(r) => r,
        Err(r) => return r,
    };
    let id = match crate::lifecycle::log_identity(&lc.cfg, &record, q.runtime.as_deref()) {
        Ok(id) => id,
        Err(e) => return error(lifecycle_status(&e), e.to_string()),
    };
    let lines = q.lines.clamp(1, MAX_PANE_LINES);
    // File reads and the escape stripping run off the async workers.
    let tail = {
        let (cfg, id) = (lc.cfg.clone(), id.clone());
        tokio::task::spawn_blocking(move || crate::panelog::tail(&cfg, &id, lines)).await
    };
    let tail = match tail {
        Ok(t) => t,
        Err(e) => return panicked(e),
    };
    let (lines, note) = match tail {
        Ok(l) => (l, None),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            (Vec::new(), Some(format!("no pane log for {id} yet")))
        }
        Err(e) => (
            Vec::new(),
            Some(format!("cannot read the pane log of {id}: {e}")),
        ),
    };
    json(
        StatusCode::OK,
        &json!({ "identity": id.as_str(), "lines": lines, "note": note }),
    )
}

/// The optional body of a verb: `{"runtime": "codex"}`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct VerbBody {
    #[serde(default)]
    runtime: Option<crate::names::Runtime>,
    /// `start` only: also forget the recorded deaths (crash-loop guard).
    #[serde(default)]
    reset: bool,
}

fn parse_body<T: Default + serde::de::DeserializeOwned>(body: &Bytes) -> Result<T, Response> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    let bad = |e: String| error(StatusCode::BAD_REQUEST, format!("invalid JSON body: {e}"));
    // An object, not anything serde would take for one (`[]` reads as a
    // struct with every field defaulted).
    match serde_json::from_slice::<Value>(body).map_err(|e| bad(e.to_string()))? {
        v @ Value::Object(_) => serde_path_to_error::deserialize(v).map_err(|e| bad(e.to_string())),
        other => Err(bad(format!("expected an object, got {}", kind(&other)))),
    }
}

/// What a JSON value is, for an error that must not echo it back whole.
fn kind(v: &Value) -> &'static str {
    match v {
        Value::Object(_) => "an object",
        Value::Array(_) => "an array",
        Value::String(_) => "a string",
        Value::Number(_) => "a number",
        Value::Bool(_) => "a boolean",
        Value::Null => "null",
    }
}

async fn verb(
    State(state): State<Arc<ApiState>>,
    headers: axum::http::HeaderMap,
    Path((personality, verb)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    if !is_valid_personality(&personality) {
        return error(
            StatusCode::BAD_REQUEST,
            format!("invalid personality {personality:?}"),
        );
    }
    let body: VerbBody = match parse_body(&body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    if crate::fleet::ctl::VERBS.contains(&verb.as_str()) {
        let path = format!("/fleet/v1/peers/{personality}/{verb}");
        let carried =
            json!({"runtime": body.runtime.as_ref().map(|r| r.as_str()), "reset": body.reset});
        if let Some(answer) = super::remote::carry_if_remote(
            &state,
            &headers,
            &personality,
            "POST",
            path,
            Some(carried),
        )
        .await
        {
            return answer;
        }
    }
    let lc = state.lifecycle();
    let (runtime, reset) = (body.runtime.map(String::from), body.reset);
    let work = async move {
        let peers = Peers::One {
            personality: &personality,
            runtime: runtime.as_deref(),
        };
        match verb.as_str() {
            "wake" => {
                let outcome = lc
                    .wake_or_spawn(&WakeArgs {
                        topic: None,
                        skip_seed: false,
                        personality: personality.clone(),
                        runtime: runtime.clone(),
                        task: String::new(),
                        resume: None,
                        hand_over: false,
                    })
                    .await;
                let status = match &outcome {
                    Ok(_) => StatusCode::OK,
                    Err(e) => lifecycle_status(e),
                };
                json(status, &WakeReport::new(&outcome))
            }
            "stop" | "start" => {
                let rows = if verb == "stop" {
                    lc.stop(peers).await
                } else {
                    lc.start(peers, reset)
                };
                match rows {
                    Ok(rows) => {
                        let ok = rows.iter().all(|r| r.ok());
                        let status = if ok {
                            StatusCode::OK
                        } else {
                            StatusCode::BAD_GATEWAY
                        };
                        json(status, &json!({ "outcomes": rows }))
                    }
                    Err(e) => error(lifecycle_status(&e), e.to_string()),
                }
            }
            "new" => match lc.new_session(&personality, runtime.as_deref()).await {
                Ok(out) => {
                    let status = if out.outcome.ok() {
                        StatusCode::OK
                    } else {
                        StatusCode::BAD_GATEWAY
                    };
                    json(status, &out)
                }
                Err(e) => error(lifecycle_status(&e), e.to_string()),
            },
            other => match other.parse::<Control>() {
                Ok(command) => match lc.control(&personality, runtime.as_deref(), command).await {
                    Ok(out) => json(StatusCode::OK, &out),
                    Err(e) => error(lifecycle_status(&e), e.to_string()),
                },
                Err(_) => error(
                    StatusCode::NOT_FOUND,
                    format!("unknown verb {other:?} (wake, stop, start, new, interrupt, compact)"),
                ),
            },
        }
    };
    state.run(work).await.unwrap_or_else(panicked)
}

/// `POST /send`: the MCP tool's arguments (a [`SendRequest`]) and
/// `from`, the sender `<runtime>-<personality>` (default: the operator).
async fn send(State(state): State<Arc<ApiState>>, body: Bytes) -> Response {
    let mut body: serde_json::Map<String, Value> = match parse_body(&body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let from = match body.remove("from") {
        None | Some(Value::Null) => None,
        Some(Value::String(from)) => Some(from),
        Some(other) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!(
                    "\"from\" must be a string <runtime>-<personality>, got {}",
                    kind(&other)
                ),
            );
        }
    };
    let req = match SendRequest::from_json(Value::Object(body)) {
        Ok(r) => r,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("invalid JSON body: {e}; message NOT delivered"),
            );
        }
    };
    let lc = state.lifecycle();
    let caller = match &from {
        Some(from) => match Identity::parse(from.trim()) {
            Ok(id) => id,
            Err(e) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    format!("\"from\": {e}; message NOT delivered"),
                );
            }
        },
        None => match default_sender(&lc) {
            Ok(id) => id,
            Err(r) => return r,
        },
    };
    let result = state
        .run(async move { route::send(&lc, &caller, &req, Door::Fleet).await })
        .await;
    match result {
        Ok(Ok(outcome @ route::SendOutcome::Delivered(_))) => json(StatusCode::OK, &outcome),
        // Accepted, not yet delivered.
        Ok(Ok(outcome @ route::SendOutcome::Queued(_))) => json(StatusCode::ACCEPTED, &outcome),
        Ok(Err(e)) => error(send_status(&e), e.to_string()),
        Err(e) => panicked(e),
    }
}

/// `GET /messages/<id>`: what became of a message (`message_status`).
async fn message(State(state): State<Arc<ApiState>>, Path(id): Path<String>) -> Response {
    let lc = state.lifecycle();
    match state
        .run(async move { route::message_status(&lc, &id) })
        .await
    {
        Ok(Ok(status)) => json(StatusCode::OK, &status),
        Ok(Err(e)) if e.starts_with("invalid message id") => error(StatusCode::BAD_REQUEST, e),
        Ok(Err(e)) if e.starts_with("no message") => error(StatusCode::NOT_FOUND, e),
        Ok(Err(e)) => error(StatusCode::INTERNAL_SERVER_ERROR, e),
        Err(e) => panicked(e),
    }
}

/// Without `from`, the operator speaks: `IAPEER_OPERATOR`, else the
/// registry's one natural (human-facing) peer. The error says which
/// setting is wrong, so the dashboard can show it.
pub(crate) fn operator_sender(lc: &crate::lifecycle::Lifecycle) -> Result<Identity, String> {
    let registry = lc.registry().map_err(|e| e.to_string())?;
    let Some(op) = &lc.cfg.operator else {
        return route::natural_sender(&registry).ok_or_else(|| {
            "no sender: set IAPEER_OPERATOR (<runtime>-<personality>) or pass \"from\"; \
             there is not exactly one natural peer to default to"
                .to_string()
        });
    };
    let id = Identity::parse(op).map_err(|_| {
        format!("IAPEER_OPERATOR={op:?} is not an identity (<runtime>-<personality>)")
    })?;
    match registry.find(id.personality().as_str()) {
        None => Err(format!(
            "IAPEER_OPERATOR={op:?}: {:?} is not a registered peer",
            id.personality().as_str()
        )),
        Some(peer) if !peer.declares(id.runtime().as_str()) => Err(format!(
            "IAPEER_OPERATOR={op:?}: {:?} does not declare the runtime {:?}",
            id.personality().as_str(),
            id.runtime().as_str()
        )),
        Some(_) => Ok(id),
    }
}

fn default_sender(lc: &crate::lifecycle::Lifecycle) -> Result<Identity, Response> {
    operator_sender(lc).map_err(|e| error(StatusCode::BAD_REQUEST, e))
}
