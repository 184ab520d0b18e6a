//! Requests from one host to another: a few calls of the fleet API carried
//! to the host that owns the peer (its snapshot, a peer's record, and the
//! verbs `wake`, `stop`, `start`, `new`), answered by that host's own API.
//! Nothing else is carried: a send goes as mail, never as a call.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::Fleet;
use super::wire::{self, Kind};
use crate::names::{HostName, is_valid_personality};

/// One carried call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CtlRequest {
    /// `GET` or `POST`.
    pub method: String,
    /// Under `/fleet/v1`.
    pub path: String,
    #[serde(default)]
    pub body: Option<serde_json::Value>,
}

/// Its answer: the HTTP status and the JSON body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CtlReply {
    pub status: u16,
    pub body: serde_json::Value,
}

/// Runs a carried call against this host's API.
pub type Answerer = Arc<dyn Fn(CtlRequest) -> BoxFuture<'static, CtlReply> + Send + Sync>;

/// The verbs carried to a peer's owner.
pub const VERBS: [&str; 4] = ["wake", "stop", "start", "new"];

impl CtlRequest {
    /// Whether this host answers such a call from another: the snapshot,
    /// a peer's record, or one of [`VERBS`] on a peer.
    pub fn is_carried(&self) -> bool {
        let Some(rest) = self.path.strip_prefix("/fleet/v1/") else {
            return false;
        };
        let parts: Vec<&str> = rest.split('/').collect();
        match (self.method.as_str(), parts.as_slice()) {
            ("GET", ["snapshot"]) => true,
            ("GET", ["peers", p]) => is_valid_personality(p),
            ("POST", ["peers", p, verb]) => is_valid_personality(p) && VERBS.contains(verb),
            _ => false,
        }
    }
}

/// How long a carried call may take (a wake boots a runtime).
pub const ASK_TIMEOUT: Duration = Duration::from_secs(300);

/// Answers the calls carried to this host, each in its own task.
pub fn serve(
    fleet: &Arc<Fleet>,
    mut sub: async_nats::Subscriber,
    answer: Answerer,
    tasks: &TaskTracker,
    shutdown: CancellationToken,
) {
    let client = fleet.client.clone();
    let inner = tasks.clone();
    tasks.spawn(async move {
        loop {
            let msg = tokio::select! {
                _ = shutdown.cancelled() => return,
                m = sub.next() => match m { Some(m) => m, None => return },
            };
            let Some(reply) = msg.reply.clone() else { continue };
            let from = wire::sender_host(&msg.subject);
            // Answered only into the asking host's own inbox: the server
            // lets an answer through to whatever reply subject the asker
            // named, which could be a subject only this host may use.
            let inbox = from.as_ref().map(|h| format!("{}.", super::inbox_prefix(h)));
            if !inbox.is_some_and(|i| reply.starts_with(&i)) {
                tracing::warn!(subject = %msg.subject, reply = %crate::term::clip(&reply, 64), "fleet: a call whose answer would go elsewhere than its host's inbox; dropped");
                continue;
            }
            let (client, answer) = (client.clone(), answer.clone());
            inner.spawn(async move {
                let answered = match serde_json::from_slice::<CtlRequest>(&msg.payload) {
                    Ok(req) if req.is_carried() => {
                        tracing::info!(
                            host = from.as_ref().map_or("?", HostName::as_str),
                            method = %req.method,
                            path = %req.path,
                            "fleet: a call from another host"
                        );
                        answer(req).await
                    }
                    Ok(req) => CtlReply {
                        status: 403,
                        body: serde_json::json!({"error": format!("{} {} is not carried between hosts", req.method, req.path)}),
                    },
                    Err(e) => CtlReply {
                        status: 400,
                        body: serde_json::json!({"error": format!("unreadable call: {e}")}),
                    },
                };
                if let Ok(bytes) = serde_json::to_vec(&answered) {
                    let _ = client.publish(reply, bytes.into()).await;
                }
            });
        }
    });
}

/// Carries `req` to `host` and returns its answer.
pub async fn ask(
    fleet: &Fleet,
    host: &HostName,
    req: &CtlRequest,
    timeout: Duration,
) -> anyhow::Result<CtlReply> {
    let payload = serde_json::to_vec(req)?;
    let subject = wire::subject(Kind::Ctl, host, fleet.link.host());
    let asked = fleet.client.send_request(
        subject,
        async_nats::Request::new()
            .payload(payload.into())
            .timeout(Some(timeout)),
    );
    let msg = asked
        .await
        .map_err(|e| anyhow::anyhow!("host {host} did not answer: {e}"))?;
    Ok(serde_json::from_slice(&msg.payload)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(method: &str, path: &str) -> CtlRequest {
        CtlRequest {
            method: method.into(),
            path: path.into(),
            body: None,
        }
    }

    #[test]
    fn only_reads_and_the_four_verbs_are_carried() {
        assert!(req("GET", "/fleet/v1/snapshot").is_carried());
        assert!(req("GET", "/fleet/v1/peers/bob").is_carried());
        assert!(req("POST", "/fleet/v1/peers/bob/wake").is_carried());
        assert!(req("POST", "/fleet/v1/peers/bob/new").is_carried());
        assert!(!req("POST", "/fleet/v1/send").is_carried());
        assert!(!req("POST", "/fleet/v1/peers/bob/interrupt").is_carried());
        assert!(!req("POST", "/fleet/v1/reload").is_carried());
        assert!(!req("GET", "/fleet/v1/peers/../x").is_carried());
        assert!(!req("GET", "/fleet/v1/peers/bob/pane").is_carried());
        assert!(!req("DELETE", "/fleet/v1/snapshot").is_carried());
    }
}
