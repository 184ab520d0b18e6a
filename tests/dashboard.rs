//! The browser dashboard (`GET /` on the daemon's loopback listener), in a
//! real headless Chromium against a fleet of fake runtimes, and its gates
//! with curl. Screenshots land in `target/test-artifacts/dashboard/`.

mod common;
#[path = "common/browser.rs"]
mod browser;

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::json;

use browser::Browser;
use common::{Fleet, curl, wait_until};

const TOKEN: &str = "dashboard-test-token";

fn artifacts(test: &str) -> PathBuf {
    common::repo_root()
        .join("target/test-artifacts/dashboard")
        .join(test)
}

fn now_ms() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
        * 1000.0
}

/// alice (the operator), bob and carol: three claude peers; carol's cwd.
fn fleet() -> (Fleet, PathBuf) {
    let f = Fleet::new()
        .with_env("IAPEER_OPERATOR", "claude-alice")
        .with_env("IAPEER_BEARER_TOKEN", TOKEN);
    f.register("alice", "claude", &[]);
    f.register("bob", "claude", &[]);
    let carol = f.register("carol", "claude", &[]);
    (f, carol)
}

/// `tools/call send_to_peer` over the socket, with the bearer token.
fn send_to_peer(d: &common::Daemon, from: &str, to: &str, message: &str) -> serde_json::Value {
    let body = json!({
        "jsonrpc": "2.0", "id": 1, "method": "tools/call",
        "params": {"name": "send_to_peer", "arguments": {"personality": to, "message": message}},
    })
    .to_string();
    let identity = format!("X-IAPeer-Identity: {from}");
    let bearer = format!("Authorization: Bearer {TOKEN}");
    let mut args = common::MCP_POST.to_vec();
    args.extend(["--data-binary", &body, "-H", &identity, "-H", &bearer]);
    let res = d.unix("/mcp", &args);
    assert_eq!(res.status, 200, "{res:?}");
    res.json()["result"].clone()
}

/// The whole walk an operator takes: the token once, the fleet live as a
/// peer is messaged, stop / start / new from the table, a message from the
/// send box, the pane tail, the keyboard — and no console errors.
#[test]
fn the_dashboard_in_a_real_browser() {
    let repo = common::repo_root();
    let Some(python) = browser::driver_or_skip(&repo) else {
        return;
    };
    let (f, carol_cwd) = fleet();
    let d = f.start_daemon(&[]);
    let shots = artifacts("walk");
    let _ = std::fs::remove_dir_all(&shots);
    let mut b = Browser::open(&python, &repo, &format!("{}/", d.tcp), &shots);

    // The token, once: the form sets the session cookie.
    b.cmd(json!({"op": "login", "token": TOKEN, "screenshot": "00-token"}));
    let loaded = b.cmd(json!({"op": "load"}));
    assert_eq!(loaded["rows"], 3, "{loaded}");
    eprintln!("first fleet frame: {} ms", loaded["first_fleet_ms"]);
    b.cmd(json!({"op": "wait_state", "identity": "claude-bob", "state": "asleep"}));
    wait_until("the event stream to connect", Duration::from_secs(10), || {
        b.cmd(json!({"op": "text", "id": "stream"}))["text"] == "events: live"
    });
    b.cmd(json!({"op": "screenshot", "name": "01-loaded"}));

    // A message from another peer wakes bob: the row turns live by itself.
    let result = send_to_peer(&d, "claude-carol", "bob", "wake up, bob");
    let returned = now_ms();
    assert_eq!(result["isError"], false, "{result}");
    let live = b.cmd(json!({"op": "wait_state", "identity": "claude-bob", "state": "live"}));
    assert_eq!(live["text"], "● live");
    eprintln!(
        "send_to_peer returned → bob live on screen: {:.0} ms",
        live["at"].as_f64().unwrap_or(returned) - returned
    );
    b.cmd(json!({"op": "screenshot", "name": "02-bob-live"}));

    // Stop from the table: stopped, durably.
    b.cmd(json!({"op": "click", "identity": "claude-bob", "verb": "stop"}));
    let stopped = b.cmd(json!({"op": "wait_state", "identity": "claude-bob", "state": "stopped"}));
    assert_eq!(stopped["text"], "✕ stopped");
    wait_until("the stop to say so", Duration::from_secs(10), || {
        let s = b.cmd(json!({"op": "text", "id": "status"}))["text"].clone();
        s.as_str().is_some_and(|s| s.contains("claude stopped"))
    });
    assert!(!f.is_live("claude-bob"));
    b.cmd(json!({"op": "screenshot", "name": "03-bob-stopped"}));
    // Start clears the halt; the peer sleeps until a message comes.
    b.cmd(json!({"op": "click", "identity": "claude-bob", "verb": "start"}));
    b.cmd(json!({"op": "wait_state", "identity": "claude-bob", "state": "asleep"}));

    // `new` asks first: one press only arms it.
    b.cmd(json!({"op": "click", "identity": "claude-bob", "verb": "new"}));
    let armed = b.cmd(json!({"op": "text", "id": "status"}));
    assert!(
        armed["text"].as_str().unwrap().contains("press new again"),
        "{armed}"
    );
    assert!(!f.is_live("claude-bob"), "one press does nothing yet");
    b.cmd(json!({"op": "click", "identity": "claude-bob", "verb": "new"}));
    b.cmd(json!({"op": "wait_state", "identity": "claude-bob", "state": "live", "timeout": 30}));

    // The send box speaks as the configured operator, and wakes carol.
    let sent = b.cmd(json!({
        "op": "send", "identity": "claude-carol", "message": "hello from the dashboard"
    }));
    assert_eq!(
        sent["status"], "delivered to carol (claude), woken for it",
        "{sent}"
    );
    let carol = f.claude_transcript(&carol_cwd);
    assert!(carol.contains("hello from the dashboard"), "{carol}");
    assert!(carol.contains("from-personality=\"alice\""), "{carol}");
    b.cmd(json!({"op": "wait_state", "identity": "claude-carol", "state": "live"}));

    // Its pane tail shows what its terminal showed.
    wait_until("carol's pane tail", Duration::from_secs(15), || {
        let pane = b.cmd(json!({"op": "text", "id": "pane"}))["text"].clone();
        pane.as_str().is_some_and(|p| p.contains("hello from the dashboard"))
    });
    b.cmd(json!({"op": "screenshot", "name": "04-carol-sent"}));

    // The keyboard alone: `s` on a focused row stops it.
    b.cmd(json!({"op": "keys", "identity": "claude-carol", "keys": "s"}));
    b.cmd(json!({"op": "wait_state", "identity": "claude-carol", "state": "stopped"}));

    let stats = b.cmd(json!({"op": "stats"}));
    assert_eq!(stats["stats"]["errors"], json!([]), "{stats}");
    let console = b.cmd(json!({"op": "console"}));
    assert_eq!(console["errors"], json!([]), "{console}");

    // A refused send says the message was not delivered (the browser logs
    // the 502 itself, and nothing else).
    let refused = b.cmd(json!({
        "op": "send", "identity": "claude-carol", "message": "are you there?"
    }));
    let text = refused["status"].as_str().unwrap();
    assert!(text.starts_with("error: message NOT delivered"), "{text}");
    let console = b.cmd(json!({"op": "console"}));
    let errors = console["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 1, "{console}");
    assert!(errors[0]["message"].as_str().unwrap().contains("/fleet/v1/send"));
    b.cmd(json!({"op": "screenshot", "name": "05-end"}));
}

/// The gates, with curl: the token page, the session cookie (per port, not
/// the token), the daemon's own origin allowed and every other refused,
/// and the page's own security headers.
#[test]
fn the_dashboard_gates() {
    let (f, _) = fleet();
    let d = f.start_daemon(&[]);
    let port = d.tcp.rsplit(':').next().unwrap().to_string();
    let url = |p: &str| format!("{}{p}", d.tcp);

    let page = curl(&[&url("/")]);
    assert_eq!(page.status, 200);
    assert!(page.body.contains("name=\"token\""), "{}", page.body);
    assert!(page.headers.contains("content-security-policy: default-src 'none'"));
    assert!(page.headers.contains("x-frame-options: deny"));
    let js = curl(&[&url("/assets/app.js")]);
    assert_eq!(js.status, 200, "the assets carry no data");
    assert!(js.headers.contains("content-type: text/javascript"));
    assert_eq!(curl(&[&url("/fleet/v1/snapshot")]).status, 401);

    let wrong = curl(&[&url("/login"), "--data", "token=nope"]);
    assert_eq!(wrong.status, 401);
    assert!(wrong.body.contains("not the daemon&#39;s token") || wrong.body.contains("not the daemon's token"));
    let origin = format!("Origin: {}", d.tcp);
    let right = curl(&[&url("/login"), "-H", &origin, "--data", &format!("token={TOKEN}")]);
    assert_eq!(right.status, 303, "{right:?}");
    let set_cookie = right
        .headers
        .lines()
        .find_map(|l| l.strip_prefix("set-cookie: "))
        .expect("a session cookie")
        .to_string();
    assert!(set_cookie.contains("httponly") && set_cookie.contains("samesite=strict"));
    assert!(!set_cookie.contains(TOKEN), "the cookie is not the token");
    let cookie_pair = set_cookie.split(';').next().unwrap().to_string();
    assert!(cookie_pair.starts_with(&format!("iapeer_session_{port}=")));
    // The headers were lower-cased by the helper; the value is hex.
    let cookie = format!("Cookie: {cookie_pair}");

    assert_eq!(curl(&[&url("/"), "-H", &cookie]).status, 200);
    let snap = curl(&[&url("/fleet/v1/snapshot"), "-H", &cookie]);
    assert_eq!(snap.status, 200);
    assert_eq!(snap.json()["host"]["operator"], "claude-alice");
    // The page's own origin may act; no other may, cookie or not.
    let stop = curl(&[
        &url("/fleet/v1/peers/bob/stop"),
        "-X",
        "POST",
        "-H",
        &cookie,
        "-H",
        &origin,
    ]);
    assert_eq!(stop.status, 200, "{stop:?}");
    for other in [
        "Origin: http://127.0.0.1:1",
        "Origin: http://evil.example",
        "Origin: null",
        "Sec-Fetch-Site: cross-site",
    ] {
        let r = curl(&[
            &url("/fleet/v1/peers/bob/start"),
            "-X",
            "POST",
            "-H",
            &cookie,
            "-H",
            other,
        ]);
        assert_eq!(r.status, 403, "{other}: {r:?}");
    }
    // Another port's cookie is not this daemon's session.
    let elsewhere = cookie.replace(&format!("iapeer_session_{port}="), "iapeer_session_1=");
    assert_eq!(curl(&[&url("/fleet/v1/snapshot"), "-H", &elsewhere]).status, 401);
    // The token itself still works as a bearer, and the pane tail answers.
    let bearer = format!("Authorization: Bearer {TOKEN}");
    let pane = curl(&[&url("/fleet/v1/peers/bob/pane?lines=5"), "-H", &bearer]);
    assert_eq!(pane.status, 200, "{pane:?}");
    assert_eq!(pane.json()["identity"], "claude-bob");
    let bad = curl(&[&url("/fleet/v1/peers/bob/pane?lines=x"), "-H", &bearer]);
    assert_eq!(bad.status, 400, "{bad:?}");
    let unknown = curl(&[&url("/fleet/v1/peers/nobody/pane"), "-H", &bearer]);
    assert_eq!(unknown.status, 404, "{unknown:?}");
    // Operator verbs are events: the stop above is in the lifecycle log.
    let log = std::fs::read_to_string(f.root.join("logs/iapeer/lifecycle.log")).unwrap();
    assert!(
        log.lines()
            .any(|l| l.contains("ev=operator") && l.contains("verb=stop") && l.contains("identity=claude-bob")),
        "{log}"
    );
}
