//! The browser dashboard (`GET /` on the daemon's loopback listener), in a
//! real headless Chromium against a fleet of fake runtimes, and its gates
//! with curl. Screenshots land in `target/test-artifacts/dashboard/`.

use crate::browser;
use crate::common;
use crate::toolchain::Case;

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

    // The page asks for the token, keeps it in the tab, and shows the fleet.
    // A token no header can carry (a pasted smart quote) is refused at once.
    let refused =
        b.cmd(json!({"op": "login", "token": format!("{TOKEN}\u{201d}"), "expect_error": true}));
    assert!(
        refused["error_text"]
            .as_str()
            .unwrap()
            .contains("visible ASCII"),
        "{refused}"
    );
    b.cmd(json!({"op": "login", "token": TOKEN, "screenshot": "00-token"}));
    let loaded = b.cmd(json!({"op": "load"}));
    assert_eq!(loaded["rows"], 3, "{loaded}");
    eprintln!("first fleet frame: {} ms", loaded["first_fleet_ms"]);
    b.cmd(json!({"op": "wait_state", "identity": "claude-bob", "state": "asleep"}));
    wait_until(
        "the event stream to connect",
        Duration::from_secs(10),
        || b.cmd(json!({"op": "text", "id": "stream"}))["text"] == "events: live",
    );
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

    // A filter that hides the selected row moves the selection to a row in
    // view: keys never act on a hidden peer.
    let filter = |text: &str| {
        format!(
            "const f = document.getElementById('filter'); f.value = {text:?}; \
             f.dispatchEvent(new Event('input')); \
             const s = document.querySelector('#rows tr.selected'); \
             return s ? s.dataset.identity : null;"
        )
    };
    b.cmd(json!({"op": "keys", "identity": "claude-bob", "keys": "j"}));
    let moved = b.cmd(json!({"op": "script", "js": filter("carol")}));
    assert_eq!(moved["value"], "claude-carol", "{moved}");
    let none = b.cmd(json!({"op": "script", "js": filter("nobody")}));
    assert_eq!(none["value"], json!(null), "{none}");
    // A re-read that hides the selected row (its state left the filter)
    // clears the selection; it never jumps to a peer nobody picked.
    b.cmd(json!({"op": "script", "js": filter("asleep")}));
    b.cmd(json!({"op": "script", "js":
        "document.querySelector('#rows tr[data-identity=\"claude-bob\"] td.peer').click();"}));
    let selected = "const s = document.querySelector('#rows tr.selected'); \
                    return s ? s.dataset.identity : null;";
    let now = b.cmd(json!({"op": "script", "js": selected}));
    assert_eq!(now["value"], "claude-bob", "{now}");
    let bearer = format!("Authorization: Bearer {TOKEN}");
    let verb = |v: &str| {
        d.unix(
            &format!("/fleet/v1/peers/bob/{v}"),
            &["-X", "POST", "-H", &bearer],
        )
    };
    assert_eq!(verb("stop").status, 200);
    b.cmd(json!({"op": "wait_state", "identity": "claude-bob", "state": "stopped"}));
    let after = b.cmd(json!({"op": "script", "js": selected}));
    assert_eq!(after["value"], json!(null), "{after}");
    assert_eq!(verb("start").status, 200);
    b.cmd(json!({"op": "wait_state", "identity": "claude-bob", "state": "asleep"}));
    b.cmd(json!({"op": "script", "js": filter("")}));

    // `new` asks first: one press only arms it, and a held key (a repeat)
    // does not confirm it.
    b.cmd(json!({"op": "click", "identity": "claude-bob", "verb": "new"}));
    let armed = b.cmd(json!({"op": "text", "id": "status"}));
    assert!(
        armed["text"].as_str().unwrap().contains("press new again"),
        "{armed}"
    );
    b.cmd(json!({"op": "script", "js":
        "document.dispatchEvent(new KeyboardEvent('keydown', {key: 'n', repeat: true}));"}));
    let still = b.cmd(json!({"op": "text", "id": "status"}));
    assert!(
        still["text"].as_str().unwrap().contains("press new again"),
        "{still}"
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
        pane.as_str()
            .is_some_and(|p| p.contains("hello from the dashboard"))
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
    assert!(
        text.starts_with("error: ") && text.contains("is stopped"),
        "{text}"
    );
    assert_eq!(
        text.matches("NOT delivered").count(),
        1,
        "said once: {text}"
    );
    let console = b.cmd(json!({"op": "console"}));
    let errors = console["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 1, "{console}");
    assert!(
        errors[0]["message"]
            .as_str()
            .unwrap()
            .contains("/fleet/v1/send")
    );
    b.cmd(json!({"op": "screenshot", "name": "05-end"}));
}

/// The gates, with curl: the page is open (it holds no data), the API
/// behind it needs the token, the daemon's own origin may act and no other
/// may, and the page's own security headers.
fn the_dashboard_gates() {
    let (f, _) = fleet();
    let d = f.start_daemon(&[]);
    let url = |p: &str| format!("{}{p}", d.tcp);
    let bearer = format!("Authorization: Bearer {TOKEN}");
    let origin = format!("Origin: {}", d.tcp);

    let page = curl(&[&url("/")]);
    assert_eq!(page.status, 200);
    assert!(page.body.contains("id=\"token-form\""), "{}", page.body);
    assert!(
        page.headers
            .contains("content-security-policy: default-src 'none'")
    );
    assert!(page.headers.contains("x-frame-options: deny"));
    assert!(!page.headers.contains("set-cookie"), "no cookies at all");
    // A link from another site may open the page, but not the API.
    let linked = curl(&[&url("/"), "-H", "Sec-Fetch-Site: cross-site"]);
    assert_eq!(linked.status, 200);
    let js = curl(&[&url("/assets/app.js")]);
    assert_eq!(js.status, 200, "the assets carry no data");
    assert!(js.headers.contains("content-type: text/javascript"));
    let wrong_method = curl(&[&url("/"), "-X", "POST"]);
    assert_eq!(wrong_method.status, 405);
    assert!(wrong_method.json()["error"].is_string());
    assert_eq!(curl(&[&url("/fleet/v1/snapshot")]).status, 401);

    let snap = curl(&[&url("/fleet/v1/snapshot"), "-H", &bearer]);
    assert_eq!(snap.status, 200);
    assert_eq!(snap.json()["host"]["operator"], "claude-alice");
    assert_eq!(snap.json()["host"]["dashboard"], format!("{}/", d.tcp));
    // The page's own origin may act; no other may, token or not.
    let stop = curl(&[
        &url("/fleet/v1/peers/bob/stop"),
        "-X",
        "POST",
        "-H",
        &bearer,
        "-H",
        &origin,
        "-H",
        "Sec-Fetch-Site: same-origin",
    ]);
    assert_eq!(stop.status, 200, "{stop:?}");
    for other in [
        "Origin: http://127.0.0.1:1",
        "Origin: http://evil.example",
        "Origin: null",
        "Sec-Fetch-Site: cross-site",
        "Sec-Fetch-Site: same-site",
    ] {
        let r = curl(&[
            &url("/fleet/v1/peers/bob/start"),
            "-X",
            "POST",
            "-H",
            &bearer,
            "-H",
            other,
        ]);
        assert_eq!(r.status, 403, "{other}: {r:?}");
    }
    // The pane tail answers, bounded, and never through a planted link.
    let pane = curl(&[&url("/fleet/v1/peers/bob/pane?lines=5"), "-H", &bearer]);
    assert_eq!(pane.status, 200, "{pane:?}");
    assert_eq!(pane.json()["identity"], "claude-bob");
    // Bad input is a JSON error like any other, even where an extractor
    // refuses it (a query, a path that is not UTF-8).
    for path in [
        "/fleet/v1/peers/bob/pane?lines=x",
        "/fleet/v1/events?replay=-5",
        "/fleet/v1/peers/%ff/pane",
    ] {
        let bad = curl(&[&url(path), "-H", &bearer]);
        assert_eq!(bad.status, 400, "{path}: {bad:?}");
        assert!(bad.json()["error"].is_string(), "{path}: {bad:?}");
    }
    let unknown = curl(&[&url("/fleet/v1/peers/nobody/pane"), "-H", &bearer]);
    assert_eq!(unknown.status, 404, "{unknown:?}");
    let panes = f.root.join("logs/iapeer/panes");
    std::fs::create_dir_all(&panes).unwrap();
    let secret = f.dir.path().join("secret.txt");
    std::fs::write(&secret, "not for the dashboard\n").unwrap();
    std::os::unix::fs::symlink(&secret, panes.join("claude-carol.log")).unwrap();
    let linked = curl(&[&url("/fleet/v1/peers/carol/pane"), "-H", &bearer]).json();
    assert_eq!(linked["lines"], json!([]), "{linked}");
    assert!(
        linked["note"].as_str().unwrap().contains("symbolic link"),
        "{linked}"
    );
    // Operator verbs are events: the stop above is in the lifecycle log.
    let log = std::fs::read_to_string(f.root.join("logs/iapeer/lifecycle.log")).unwrap();
    assert!(
        log.lines().any(|l| l.contains("ev=operator")
            && l.contains("verb=stop")
            && l.contains("identity=claude-bob")),
        "{log}"
    );
}

/// A wrong IAPEER_OPERATOR is named as wrong (status and the page), not
/// reported as unset.
fn a_wrong_operator_is_named() {
    let f = Fleet::new().with_env("IAPEER_OPERATOR", "claude-nobody");
    f.register("bob", "claude", &[]);
    let d = f.start_daemon(&[]);
    let status = d.get("/fleet/v1/status").json();
    assert_eq!(status["operator"], json!(null));
    let problem = status["operator_problem"].as_str().unwrap();
    assert!(
        problem.contains("\"nobody\" is not a registered peer"),
        "{problem}"
    );
    let printed = f.ok(&["status"]);
    assert!(
        printed.contains("operator:  none: IAPEER_OPERATOR="),
        "{printed}"
    );
}

/// In a real browser.
pub const BROWSER_CASES: &[Case] = crate::cases![the_dashboard_in_a_real_browser];

/// With curl only.
pub const CASES: &[Case] = crate::cases![the_dashboard_gates, a_wrong_operator_is_named];
