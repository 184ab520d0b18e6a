//! The fleet API across hosts: calls on a peer another host owns are
//! carried to it, calls carried here are answered by this host's own API,
//! and the snapshot of the whole fleet gathers every host's.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::StatusCode;
use axum::response::Response;
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

use super::{ApiState, error, json};
use crate::fleet::Fleet;
use crate::fleet::ctl::{self, CtlReply, CtlRequest};
use crate::fleetlink::Owner;
use crate::names::{HostName, Personality};

/// Marks a call carried here from another host: it is answered here or
/// not at all, never carried on (which would hide who asked).
const CARRIED: &str = "x-iapeer-carried";

/// The largest answer read back from this host's API for another.
const MAX_CARRIED_ANSWER: usize = 8 << 20;

/// Answers a call carried here from another host with this host's API
/// (as a local client would get it, the bearer token included).
pub(crate) async fn answer(router: Router, token: Option<String>, req: CtlRequest) -> CtlReply {
    let mut builder = axum::http::Request::builder()
        .method(req.method.as_str())
        .uri(req.path.as_str())
        .header("content-type", "application/json")
        .header(CARRIED, "1");
    if let Some(t) = token {
        builder = builder.header("authorization", format!("Bearer {t}"));
    }
    let body = req.body.map(|b| b.to_string()).unwrap_or_default();
    let Ok(request) = builder.body(Body::from(body)) else {
        return CtlReply {
            status: 400,
            body: json!({"error": "unreadable call"}),
        };
    };
    let response = match router.oneshot(request).await {
        Ok(r) => r,
        Err(never) => match never {},
    };
    let status = response.status().as_u16();
    let bytes = match http_body_util::Limited::new(response.into_body(), MAX_CARRIED_ANSWER)
        .collect()
        .await
    {
        Ok(b) => b.to_bytes(),
        Err(e) => {
            return CtlReply {
                status: 500,
                body: json!({"error": format!("answer unreadable: {e}")}),
            };
        }
    };
    CtlReply {
        status,
        body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    }
}

/// The fleet, once this daemon has joined one.
fn joined(state: &ApiState) -> Option<&Arc<Fleet>> {
    state.fleet.get()
}

/// When `personality` is not registered here and another host owns it:
/// the call carried to that host, and its answer.
pub(crate) async fn carry_if_remote(
    state: &Arc<ApiState>,
    headers: &axum::http::HeaderMap,
    personality: &str,
    method: &str,
    path: String,
    body: Option<Value>,
) -> Option<Response> {
    if headers.contains_key(CARRIED) {
        return None;
    }
    let fleet = joined(state)?;
    let p = Personality::new(personality).ok()?;
    let lc = state.lifecycle();
    if lc.registry().ok()?.find(personality).is_some() {
        return None;
    }
    let host = match fleet.link.owner(&p) {
        Owner::There(h) => h,
        Owner::Contested(hosts) => {
            let names: Vec<&str> = hosts.iter().map(HostName::as_str).collect();
            return Some(error(
                StatusCode::CONFLICT,
                format!(
                    "peer \"{p}\" is claimed by more than one host ({}): refused until one lets go",
                    names.join(", ")
                ),
            ));
        }
        Owner::Here | Owner::Nobody => return None,
    };
    let req = CtlRequest {
        method: method.into(),
        path,
        body,
    };
    let fleet = fleet.clone();
    let asked = state
        .run(async move { ctl::ask(&fleet, &host, &req, ctl::ASK_TIMEOUT).await })
        .await;
    Some(match asked {
        Ok(Ok(reply)) => {
            let status = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::BAD_GATEWAY);
            json(status, &reply.body)
        }
        Ok(Err(e)) => error(StatusCode::BAD_GATEWAY, e.to_string()),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    })
}

/// How long the whole-fleet snapshot waits for each host.
const SNAPSHOT_WAIT: Duration = Duration::from_secs(2);

/// Every host of the fleet (up or down) and every peer, each row with its
/// host; this host's rows are `local`.
pub(crate) async fn fleet_snapshot(state: &Arc<ApiState>, local: Vec<Value>) -> Value {
    let Some(fleet) = joined(state).cloned() else {
        return json!({ "hosts": [], "peers": local, "joined": false });
    };
    let me = fleet.link.host().clone();
    let work = async move {
        let live = fleet.beats.live();
        let asks = live.iter().filter(|(h, ..)| *h != me).map(|(h, ..)| {
            let fleet = fleet.clone();
            let h = h.clone();
            async move {
                let req = CtlRequest {
                    method: "GET".into(),
                    path: "/fleet/v1/snapshot".into(),
                    body: None,
                };
                let answer = ctl::ask(&fleet, &h, &req, SNAPSHOT_WAIT).await;
                (h, answer)
            }
        });
        let answers = futures::future::join_all(asks).await;
        (fleet, me, live, answers)
    };
    let Ok((fleet, me, live, answers)) = state.run(work).await else {
        return json!({ "hosts": [], "peers": local, "joined": true });
    };
    let mut hosts = Vec::new();
    let mut peers: Vec<Value> = local
        .into_iter()
        .map(|mut row| {
            row["host"] = me.as_str().into();
            row
        })
        .collect();
    let mut seen = std::collections::BTreeSet::new();
    seen.insert(me.clone());
    hosts.push(json!({
        "host": me.as_str(), "up": true, "here": true, "heartbeat_age_ms": 0,
    }));
    for (h, answer) in answers {
        seen.insert(h.clone());
        let age = live
            .iter()
            .find(|(l, ..)| *l == h)
            .map(|(_, ago, _)| ago.as_millis() as u64);
        match answer {
            Ok(CtlReply { status: 200, body }) => {
                hosts.push(
                    json!({"host": h.as_str(), "up": true, "here": false, "heartbeat_age_ms": age}),
                );
                for mut row in body["peers"].as_array().cloned().unwrap_or_default() {
                    row["host"] = h.as_str().into();
                    peers.push(row);
                }
            }
            Ok(other) => hosts.push(
                json!({"host": h.as_str(), "up": true, "here": false, "heartbeat_age_ms": age,
                "problem": other.body["error"].as_str().unwrap_or("no snapshot")}),
            ),
            Err(e) => hosts.push(
                json!({"host": h.as_str(), "up": true, "here": false, "heartbeat_age_ms": age,
                "problem": e.to_string()}),
            ),
        }
    }
    // Hosts that claim peers and do not beat: down, their peers listed.
    for (p, claimants) in fleet.link.claims() {
        for h in claimants {
            if !seen.contains(&h) {
                seen.insert(h.clone());
                hosts.push(json!({"host": h.as_str(), "up": false, "here": false}));
            }
            let up = live.iter().any(|(l, ..)| *l == h);
            if !up {
                peers.push(
                    json!({"personality": p.as_str(), "host": h.as_str(), "host_down": true}),
                );
            }
        }
    }
    json!({ "hosts": hosts, "peers": peers, "joined": true })
}
