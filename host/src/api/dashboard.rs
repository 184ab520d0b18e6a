//! The browser dashboard at `GET /`: one page and its script and style,
//! embedded in the binary, drawn from the fleet API and its event stream.
//!
//! The page holds no data and needs no login of its own: with
//! `IAPEER_BEARER_TOKEN` set, the script asks for the token when the API
//! answers 401 and keeps it in the tab's `sessionStorage`, which is scoped
//! to this origin (port included), and sends it as the bearer header. No
//! cookie: a browser would hand a cookie to every other port on the host.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{Method, header};
use axum::response::Response;
use axum::routing::get;

use super::ApiState;

const INDEX_HTML: &str = include_str!("dashboard/index.html");
const APP_JS: &str = include_str!("dashboard/app.js");
const APP_CSS: &str = include_str!("dashboard/app.css");

/// The page's script and style. They and `/` are free of data and open to
/// a plain navigation from anywhere (the origin gate lets a `GET` through).
const ASSETS: [(&str, &str, &str); 2] = [
    ("/assets/app.js", APP_JS, "text/javascript"),
    ("/assets/app.css", APP_CSS, "text/css"),
];

/// Only this origin's own files and API; no frames, no inline code.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     connect-src 'self'; img-src 'self' data:; form-action 'none'; \
     frame-ancestors 'none'; base-uri 'none'";

pub(super) fn routes() -> Router<Arc<ApiState>> {
    ASSETS
        .iter()
        .fold(Router::new(), |router, &(path, body, content_type)| {
            router.route(path, get(move || async move { page(body, content_type) }))
        })
        .route("/", get(index))
        .method_not_allowed_fallback(super::method_not_allowed)
}

/// The page says whether the API wants a token (not the token), so the
/// script asks for it before its first request instead of after a 401.
async fn index(State(state): State<Arc<ApiState>>) -> Response {
    let auth = if state.lifecycle().cfg.bearer_token.is_some() {
        "bearer"
    } else {
        "none"
    };
    let html = INDEX_HTML.replacen("data-auth=\"none\"", &format!("data-auth=\"{auth}\""), 1);
    page(html, "text/html")
}

/// Is this a read of one of the page's files?
pub(super) fn is_page_read(method: &Method, path: &str) -> bool {
    (method == Method::GET || method == Method::HEAD)
        && (path == "/" || ASSETS.iter().any(|(p, ..)| *p == path))
}

fn page(body: impl Into<Body>, content_type: &'static str) -> Response {
    Response::builder()
        .header(
            header::CONTENT_TYPE,
            format!("{content_type}; charset=utf-8"),
        )
        .header(header::CONTENT_SECURITY_POLICY, CSP)
        .header(header::X_CONTENT_TYPE_OPTIONS, "nosniff")
        .header(header::X_FRAME_OPTIONS, "DENY")
        // A page that opened the dashboard keeps no handle on it.
        .header("cross-origin-opener-policy", "same-origin")
        .header(header::REFERRER_POLICY, "same-origin")
        // Embedded files change with the binary: always revalidate.
        .header(header::CACHE_CONTROL, "no-cache")
        .body(body.into())
        .expect("static response")
}
