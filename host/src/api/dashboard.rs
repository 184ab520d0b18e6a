//! The browser dashboard at `GET /`: one page and its script and style,
//! embedded in the binary, drawn from the fleet API and its event stream.
//!
//! It lives on the loopback listener behind the same gates as the API. A
//! browser cannot put a bearer token on an `EventSource`, so with
//! `IAPEER_BEARER_TOKEN` set the page first asks for the token once and
//! keeps a derived session cookie (`HttpOnly`, `SameSite=Strict`), which
//! the bearer gate also accepts. Cross-site use is refused by the origin
//! gate, not by the cookie alone.

use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use axum::routing::{get, post};
use sha2::{Digest, Sha256};

use super::ApiState;

const INDEX_HTML: &str = include_str!("dashboard/index.html");
const LOGIN_HTML: &str = include_str!("dashboard/login.html");
const APP_JS: &str = include_str!("dashboard/app.js");
const APP_CSS: &str = include_str!("dashboard/app.css");

/// Only this origin's own files and API; no frames, no inline code.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     connect-src 'self'; img-src 'self' data:; form-action 'self'; \
     frame-ancestors 'none'; base-uri 'none'";

pub(super) fn routes() -> Router<Arc<ApiState>> {
    Router::new()
        .route("/", get(index))
        .route("/login", post(login))
        .route("/assets/app.js", get(|| async { asset(APP_JS, "text/javascript") }))
        .route("/assets/app.css", get(|| async { asset(APP_CSS, "text/css") }))
}

fn page(status: StatusCode, html: String) -> Response {
    let mut r = Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "text/html; charset=utf-8");
    for (name, value) in security_headers() {
        r = r.header(name, value);
    }
    r.body(Body::from(html)).expect("static response")
}

fn asset(body: &'static str, content_type: &'static str) -> Response {
    let mut r = Response::builder().header(
        header::CONTENT_TYPE,
        format!("{content_type}; charset=utf-8"),
    );
    for (name, value) in security_headers() {
        r = r.header(name, value);
    }
    r.body(Body::from(body)).expect("static response")
}

fn security_headers() -> [(header::HeaderName, &'static str); 5] {
    [
        (header::CONTENT_SECURITY_POLICY, CSP),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        // Not `no-referrer`: under it a form post carries `Origin: null`.
        (header::REFERRER_POLICY, "same-origin"),
        // Embedded files change with the binary: always revalidate.
        (header::CACHE_CONTROL, "no-cache"),
    ]
}

/// `GET /`: the dashboard, or (token set, no session) the token form.
async fn index(State(state): State<Arc<ApiState>>, headers: HeaderMap) -> Response {
    let lc = state.lifecycle();
    match lc.cfg.bearer_token.as_deref() {
        // 200, not 401: a form asking for the token is a page like any
        // other (the API's own answers stay 401).
        Some(token) if !has_session(&headers, token) => login_page(StatusCode::OK, ""),
        _ => page(StatusCode::OK, INDEX_HTML.to_string()),
    }
}

fn login_page(status: StatusCode, message: &str) -> Response {
    page(status, LOGIN_HTML.replace("{{message}}", message))
}

/// `POST /login` (a form: `token=…`): a right token sets the session
/// cookie and goes back to `/`.
async fn login(State(state): State<Arc<ApiState>>, headers: HeaderMap, body: Bytes) -> Response {
    let lc = state.lifecycle();
    let Some(token) = lc.cfg.bearer_token.as_deref() else {
        return see_other(None);
    };
    let presented = form_urlencoded::parse(&body)
        .find(|(k, _)| k == "token")
        .map(|(_, v)| v.trim().to_string())
        .unwrap_or_default();
    if !super::constant_time_eq(presented.as_bytes(), token.as_bytes()) {
        return login_page(
            StatusCode::UNAUTHORIZED,
            "That is not the daemon's token (IAPEER_BEARER_TOKEN).",
        );
    }
    let cookie = format!(
        "{}={}; Path=/; HttpOnly; SameSite=Strict",
        cookie_name(&headers),
        session_value(token)
    );
    see_other(Some(cookie))
}

fn see_other(cookie: Option<String>) -> Response {
    let mut r = Response::builder()
        .status(StatusCode::SEE_OTHER)
        .header(header::LOCATION, "/");
    if let Some(c) = cookie.and_then(|c| HeaderValue::from_str(&c).ok()) {
        r = r.header(header::SET_COOKIE, c);
    }
    r.body(Body::empty()).expect("static response")
}

/// One cookie per port: two daemons on one host keep their sessions apart
/// (cookies ignore ports).
fn cookie_name(headers: &HeaderMap) -> String {
    let port = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.rsplit_once(':'))
        .map(|(_, p)| p)
        .filter(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
        .unwrap_or("80");
    format!("iapeer_session_{port}")
}

/// The cookie holds a digest of the token, not the token: it opens the
/// dashboard and the fleet API, and is no use as a bearer header.
fn session_value(token: &str) -> String {
    let mut h = Sha256::new();
    h.update(b"iapeer dashboard session\0");
    h.update(token.as_bytes());
    hex::encode(h.finalize())
}

/// Does the request carry this daemon's session cookie?
pub(super) fn has_session(headers: &HeaderMap, token: &str) -> bool {
    let name = cookie_name(headers);
    let expected = session_value(token);
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .any(|(k, v)| k == name && super::constant_time_eq(v.as_bytes(), expected.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_cookie_is_per_port_and_not_the_token() {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_static("127.0.0.1:8765"));
        assert_eq!(cookie_name(&h), "iapeer_session_8765");
        let v = session_value("s3cret");
        assert!(!v.contains("s3cret"));
        h.insert(
            header::COOKIE,
            HeaderValue::from_str(&format!("a=b; iapeer_session_8765={v}")).unwrap(),
        );
        assert!(has_session(&h, "s3cret"));
        assert!(!has_session(&h, "other"));
        h.insert(header::HOST, HeaderValue::from_static("127.0.0.1:9999"));
        assert!(!has_session(&h, "s3cret"), "another port's cookie");
    }
}
