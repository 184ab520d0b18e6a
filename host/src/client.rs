//! A small HTTP client for the daemon's fleet API over its Unix socket
//! (what `iapeer status` uses): one request per connection, bounded in time.

use std::path::Path;
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;

/// How long a client waits for the daemon to answer.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot connect: {0}")]
    Connect(std::io::Error),
    #[error("the daemon did not answer within {0:?}")]
    Timeout(Duration),
    #[error("HTTP error: {0}")]
    Http(#[from] hyper::Error),
    #[error("bad request: {0}")]
    Request(#[from] http::Error),
    #[error("the daemon answered {status}: {body}")]
    Status { status: u16, body: String },
    #[error("the daemon's answer is not JSON: {0}")]
    Json(#[from] serde_json::Error),
}

/// `GET <path>` on the daemon's socket; the JSON body of a 2xx answer.
pub async fn get_json(
    sock: &Path,
    path: &str,
    bearer: Option<&str>,
) -> Result<serde_json::Value, ClientError> {
    request_json(sock, http::Method::GET, path, bearer).await
}

/// `POST <path>` with no body (a verb such as `reload`).
pub async fn post_json(
    sock: &Path,
    path: &str,
    bearer: Option<&str>,
) -> Result<serde_json::Value, ClientError> {
    request_json(sock, http::Method::POST, path, bearer).await
}

/// `POST <path>` with a JSON body, waiting up to `wait` for the answer (a
/// send or a wake carried to another host takes a while).
pub async fn post_body(
    sock: &Path,
    path: &str,
    bearer: Option<&str>,
    body: &serde_json::Value,
    wait: Duration,
) -> Result<serde_json::Value, ClientError> {
    let body = serde_json::to_vec(body)?;
    tokio::time::timeout(wait, request(sock, http::Method::POST, path, bearer, body))
        .await
        .map_err(|_| ClientError::Timeout(wait))?
}

/// Follows the daemon's event stream (`GET /fleet/v1/events`): `connected`
/// once it answered, then `on_event` for each event, until the stream ends
/// or fails.
pub async fn watch_events(
    sock: &Path,
    bearer: Option<&str>,
    connected: impl FnOnce(),
    mut on_event: impl FnMut(),
) -> Result<(), ClientError> {
    let res = tokio::time::timeout(
        ANSWER_TIMEOUT,
        send(
            sock,
            http::Method::GET,
            "/fleet/v1/events",
            bearer,
            Vec::new(),
        ),
    )
    .await
    .map_err(|_| ClientError::Timeout(ANSWER_TIMEOUT))??;
    if !res.status().is_success() {
        return Err(ClientError::Status {
            status: res.status().as_u16(),
            body: String::new(),
        });
    }
    connected();
    let mut body = res.into_body();
    while let Some(frame) = body.frame().await {
        if let Some(data) = frame?.data_ref()
            && data.windows(5).any(|w| w == b"data:")
        {
            on_event();
        }
    }
    Ok(())
}

async fn request_json(
    sock: &Path,
    method: http::Method,
    path: &str,
    bearer: Option<&str>,
) -> Result<serde_json::Value, ClientError> {
    tokio::time::timeout(
        ANSWER_TIMEOUT,
        request(sock, method, path, bearer, Vec::new()),
    )
    .await
    .map_err(|_| ClientError::Timeout(ANSWER_TIMEOUT))?
}

async fn request(
    sock: &Path,
    method: http::Method,
    path: &str,
    bearer: Option<&str>,
    body: Vec<u8>,
) -> Result<serde_json::Value, ClientError> {
    let res = send(sock, method, path, bearer, body).await?;
    let status = res.status();
    let body = res.into_body().collect().await?.to_bytes();
    if !status.is_success() {
        return Err(ClientError::Status {
            status: status.as_u16(),
            body: String::from_utf8_lossy(&body).trim().to_string(),
        });
    }
    Ok(serde_json::from_slice(&body)?)
}

/// One request on a fresh connection to the daemon's socket; the answer's
/// head, its body still to read.
async fn send(
    sock: &Path,
    method: http::Method,
    path: &str,
    bearer: Option<&str>,
    body: Vec<u8>,
) -> Result<http::Response<hyper::body::Incoming>, ClientError> {
    let stream = tokio::net::UnixStream::connect(sock)
        .await
        .map_err(ClientError::Connect)?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    let mut req = http::Request::builder()
        .method(method)
        .uri(path)
        .header(http::header::HOST, "localhost");
    if let Some(token) = bearer {
        req = req.header(http::header::AUTHORIZATION, format!("Bearer {token}"));
    }
    if !body.is_empty() {
        req = req.header(http::header::CONTENT_TYPE, "application/json");
    }
    Ok(sender
        .send_request(req.body(Full::new(Bytes::from(body)))?)
        .await?)
}
