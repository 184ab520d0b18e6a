//! The daemon's front door, served on both listeners: MCP at `POST /mcp`
//! (one tool, `send_to_peer`, on the official Rust SDK), the fleet API
//! under `/fleet/v1` (plain JSON and an SSE event stream) and the browser
//! dashboard at `/`. All are thin: every handler calls the same library
//! function the CLI calls, and the dashboard only calls the fleet API.
//!
//! Gates, outermost first: a loopback `Host` on TCP (DNS rebinding), no
//! cross-origin browser request (only the dashboard's own origin may send
//! an `Origin`; anyone may load the page's static files), the optional
//! bearer token, and a body size cap.

mod dashboard;
mod events;
mod fleet;
mod mcp;
mod remote;

pub(crate) use remote::answer as answer_carried;
pub(crate) mod reload;

pub(crate) use fleet::operator_sender;

use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::lifecycle::Lifecycle;

/// The largest request body accepted (a 16 000-character message is far
/// below it).
pub(crate) const MAX_BODY_BYTES: usize = 1 << 20;
/// A request body must arrive within this long of its headers.
const BODY_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// What the daemon knows about itself, for `status` and the snapshot.
#[derive(Debug)]
pub(crate) struct DaemonInfo {
    pub pid: u32,
    pub started: Instant,
    pub started_ms: u64,
    pub sock: PathBuf,
    pub tcp: Option<String>,
    pub tick_secs: u64,
    pub heartbeat: Duration,
    pub last_tick: Mutex<Option<TickSummary>>,
}

/// The outcome of the last supervise pass.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct TickSummary {
    pub at: String,
    pub ms: u64,
    /// Sessions per supervise action (`alive`, `reaped-idle`, …).
    pub actions: std::collections::BTreeMap<String, usize>,
    pub relaunched: usize,
    pub relaunch_failed: usize,
}

/// Shared by every handler.
pub(crate) struct ApiState {
    lifecycle: RwLock<Arc<Lifecycle>>,
    pub info: DaemonInfo,
    /// Cancelled when the daemon stops: event streams end.
    pub shutdown: CancellationToken,
    /// Routes and verbs run as tracked tasks: a client that hangs up does
    /// not abort a wake half-way, and shutdown waits for them.
    pub tasks: TaskTracker,
    /// The daemon's one reload task.
    reloader: std::sync::OnceLock<reload::Reloader>,
    /// Open event streams, bounded: they never end on their own, and they
    /// share the listeners' connection cap with every request.
    pub event_streams: Arc<tokio::sync::Semaphore>,
    /// Wakes the event streams when the logs change.
    log_watch: events::LogWatch,
    /// The fleet across hosts, once joined.
    pub fleet: std::sync::OnceLock<Arc<crate::fleet::Fleet>>,
}

impl ApiState {
    pub fn new(lifecycle: Arc<Lifecycle>, info: DaemonInfo, shutdown: CancellationToken) -> Self {
        ApiState {
            log_watch: events::LogWatch::new(&lifecycle.cfg),
            lifecycle: RwLock::new(lifecycle),
            info,
            shutdown,
            tasks: TaskTracker::new(),
            reloader: std::sync::OnceLock::new(),
            event_streams: Arc::new(tokio::sync::Semaphore::new(events::MAX_STREAMS)),
            fleet: std::sync::OnceLock::new(),
        }
    }

    pub fn set_reloader(&self, r: reload::Reloader) {
        let _ = self.reloader.set(r);
    }

    pub fn reloader(&self) -> Option<&reload::Reloader> {
        self.reloader.get()
    }

    /// The current lifecycle (replaced when the plugins are reloaded).
    pub fn lifecycle(&self) -> Arc<Lifecycle> {
        self.lifecycle
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub fn replace_lifecycle(&self, next: Arc<Lifecycle>) {
        *self
            .lifecycle
            .write()
            .unwrap_or_else(PoisonError::into_inner) = next;
    }

    pub fn record_tick(&self, summary: TickSummary) {
        *self
            .info
            .last_tick
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(summary);
    }

    /// Runs `work` as a tracked task and waits for it.
    pub async fn run<T: Send + 'static>(
        &self,
        work: impl Future<Output = T> + Send + 'static,
    ) -> Result<T, tokio::task::JoinError> {
        self.tasks.spawn(work).await
    }
}

/// Which listener a router serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Listener {
    Unix,
    Tcp,
}

/// The whole front door for one listener.
pub(crate) fn router(state: Arc<ApiState>, listener: Listener) -> Router {
    let mcp = Router::new()
        .fallback_service(mcp::service(state.clone()))
        .layer(middleware::from_fn(mcp::parse_gate));
    // The dashboard's static files answer without the token (the page asks
    // for it); everything else is behind the bearer gate.
    let gated = Router::new()
        .nest("/mcp", mcp)
        .nest("/fleet/v1", fleet::routes())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(state.clone(), bearer_gate));
    let mut app = dashboard::routes()
        .merge(gated)
        .layer(middleware::from_fn(read_body))
        .layer(middleware::from_fn(move |req: Request, next: Next| {
            refuse_cross_origin(listener, req, next)
        }));
    if listener == Listener::Tcp {
        app = app.layer(middleware::from_fn(loopback_host));
    }
    app.with_state(state)
}

/// `{"error": "…"}` with a status.
pub(crate) fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (
        status,
        axum::Json(serde_json::json!({ "error": message.into() })),
    )
        .into_response()
}

async fn not_found() -> Response {
    error(StatusCode::NOT_FOUND, "no such endpoint")
}

pub(super) async fn method_not_allowed() -> Response {
    error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed here")
}

/// Reads the whole request body up front, at most `MAX_BODY_BYTES` and
/// within `BODY_READ_TIMEOUT`: a client that sends headers and then
/// withholds its body is answered 408 instead of holding a handler (and
/// the daemon's shutdown) forever.
async fn read_body(req: Request, next: Next) -> Response {
    let (parts, body) = req.into_parts();
    let bytes = match tokio::time::timeout(
        BODY_READ_TIMEOUT,
        axum::body::to_bytes(body, MAX_BODY_BYTES),
    )
    .await
    {
        Err(_) => {
            return error(
                StatusCode::REQUEST_TIMEOUT,
                "the request body did not arrive in time",
            );
        }
        Ok(Err(e)) if too_large(&e) => {
            return error(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("request body larger than {MAX_BODY_BYTES} bytes"),
            );
        }
        Ok(Err(e)) => return error(StatusCode::BAD_REQUEST, format!("bad request body: {e}")),
        Ok(Ok(b)) => b,
    };
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

/// Was the body refused for its size (rather than malformed)?
fn too_large(e: &axum::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = source {
        if err.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        source = err.source();
    }
    false
}

/// With `IAPEER_BEARER_TOKEN` set, every request carries it (the
/// TypeScript iapeer's 401: `www-authenticate: Bearer` and a JSON-RPC error body).
async fn bearer_gate(State(state): State<Arc<ApiState>>, req: Request, next: Next) -> Response {
    let lc = state.lifecycle();
    let Some(token) = lc.cfg.bearer_token.as_deref() else {
        return next.run(req).await;
    };
    // The scheme is case-insensitive (RFC 7235); the token is not.
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map_or("", |(_, token)| token.trim());
    if constant_time_eq(presented.as_bytes(), token.as_bytes()) {
        return next.run(req).await;
    }
    let body = r#"{"jsonrpc":"2.0","id":null,"error":{"code":-32001,"message":"unauthorized"}}"#;
    Response::builder()
        .status(StatusCode::UNAUTHORIZED)
        .header(header::WWW_AUTHENTICATE, "Bearer")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body))
        .expect("static response")
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A browser page may drive the daemon only from the daemon's own origin
/// (the dashboard), on TCP. A browser marks its requests with `Origin`
/// (every `POST`, every cross-origin request) and `Sec-Fetch-Site`; curl,
/// SDK clients and agents send neither.
async fn refuse_cross_origin(listener: Listener, req: Request, next: Next) -> Response {
    // The page's files hold no data: a link from elsewhere may open them.
    if same_origin_or_none(listener, req.headers())
        || dashboard::is_page_read(req.method(), req.uri().path())
    {
        next.run(req).await
    } else {
        error(
            StatusCode::FORBIDDEN,
            "requests from another browser origin are refused",
        )
    }
}

fn same_origin_or_none(listener: Listener, headers: &HeaderMap) -> bool {
    let site = headers
        .get("sec-fetch-site")
        .map(|v| v.to_str().unwrap_or("?"));
    if site.is_some_and(|s| s != "same-origin" && s != "none") {
        return false;
    }
    let Some(origin) = headers.get(header::ORIGIN) else {
        return true;
    };
    // The Host was checked to be loopback before this gate runs (TCP).
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    listener == Listener::Tcp
        && host.is_some_and(|host| {
            origin
                .to_str()
                .ok()
                .and_then(|o| o.strip_prefix("http://"))
                .is_some_and(|o| o.eq_ignore_ascii_case(host))
        })
}

/// On TCP the `Host` must be a loopback name: a DNS-rebound page would
/// otherwise reach the fleet API under its own name.
async fn loopback_host(req: Request, next: Next) -> Response {
    if host_is_loopback(req.headers()) {
        next.run(req).await
    } else {
        error(StatusCode::FORBIDDEN, "Host must be a loopback address")
    }
}

fn host_is_loopback(headers: &HeaderMap) -> bool {
    let Some(host) = headers.get(header::HOST) else {
        // HTTP/1.0 without Host: only a local client gets here.
        return true;
    };
    let Ok(host) = host.to_str() else {
        return false;
    };
    let host = host.to_ascii_lowercase();
    let host = host.as_str();
    let (name, port) = match host.strip_prefix('[') {
        Some(v6) => v6.split_once(']').unwrap_or((v6, "")),
        None => host.split_once(':').map_or((host, ""), |(n, p)| (n, p)),
    };
    let port = port.strip_prefix(':').unwrap_or(port);
    matches!(name, "127.0.0.1" | "localhost" | "::1") && port.bytes().all(|b| b.is_ascii_digit())
}

/// A JSON body, for the handlers that answer with one.
pub(crate) fn json(status: StatusCode, body: &impl Serialize) -> Response {
    match serde_json::to_vec(body) {
        Ok(bytes) => Response::builder()
            .status(status)
            .header(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )
            .body(Body::from(bytes))
            .expect("valid response"),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts() {
        let h = |v: &str| {
            let mut m = HeaderMap::new();
            m.insert(header::HOST, HeaderValue::from_str(v).unwrap());
            host_is_loopback(&m)
        };
        assert!(h("127.0.0.1:8765"));
        assert!(h("localhost"));
        assert!(h("LocalHost:8765"));
        assert!(h("[::1]:8765"));
        assert!(!h("evil.example:8765"));
        assert!(!h("127.0.0.1.evil.example"));
        assert!(!h("127.0.0.1:1@evil.example"));
        assert!(!h("[::1]:80x"));
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }

    #[test]
    fn only_the_dashboards_own_origin() {
        let h = |pairs: &[(&'static str, &str)]| {
            let mut m = HeaderMap::new();
            for (k, v) in pairs {
                m.insert(*k, HeaderValue::from_str(v).unwrap());
            }
            m
        };
        let tcp = Listener::Tcp;
        assert!(same_origin_or_none(tcp, &h(&[("host", "127.0.0.1:8765")])));
        let own = h(&[
            ("host", "127.0.0.1:8765"),
            ("origin", "http://127.0.0.1:8765"),
        ]);
        assert!(same_origin_or_none(tcp, &own));
        assert!(!same_origin_or_none(Listener::Unix, &own));
        for origin in [
            "http://127.0.0.1:9999",
            "http://localhost:8765",
            "https://127.0.0.1:8765",
            "null",
            "http://127.0.0.1:8765.evil.example",
        ] {
            let m = h(&[("host", "127.0.0.1:8765"), ("origin", origin)]);
            assert!(!same_origin_or_none(tcp, &m), "{origin}");
        }
        for site in ["cross-site", "same-site", "bogus"] {
            let m = h(&[("host", "127.0.0.1:8765"), ("sec-fetch-site", site)]);
            assert!(!same_origin_or_none(tcp, &m), "{site}");
        }
        let typed = h(&[("host", "127.0.0.1:8765"), ("sec-fetch-site", "none")]);
        assert!(same_origin_or_none(tcp, &typed));
    }
}
