//! The front door, black-box: a daemon started on a temp root, real tmux,
//! fake runtimes, and clients this project did not write (curl, the
//! official Python MCP SDK).

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};

use crate::common::{self, Daemon, Fleet, curl, tool_text, wait_until};

/// alice (caller), bob and carol (targets): three claude peers.
fn fleet_of_three() -> (Fleet, PathBuf, PathBuf) {
    let f = Fleet::new();
    f.register("alice", "claude", &[]);
    let bob = f.register("bob", "claude", &[]);
    let carol = f.register("carol", "claude", &[]);
    (f, bob, carol)
}

fn spawns_of(f: &Fleet, identity: &str) -> usize {
    f.runs()
        .iter()
        .filter(|r| r.contains(&format!("identity={identity} ")))
        .count()
}

fn envelopes(transcript: &str) -> usize {
    transcript.matches("<iap from-personality=").count()
}

fn assert_not_delivered(result: &Value, needle: &str) {
    assert_eq!(result["isError"], true, "{result}");
    let text = tool_text(result);
    assert!(text.contains("NOT delivered"), "{text}");
    assert!(text.contains(needle), "{needle:?} not in {text:?}");
}

#[test]
fn send_to_peer_wakes_a_sleeping_peer_and_delivers_to_a_live_one() {
    let (f, bob, _) = fleet_of_three();
    let d = f.start_daemon(&[]);

    let first = d.send_to_peer(
        Some("claude-alice"),
        json!({"personality": "bob", "message": "hello bob", "topic": "greetings"}),
    );
    assert_eq!(first["isError"], false, "{first}");
    let sc = &first["structuredContent"];
    assert_eq!(sc["ok"], true);
    assert_eq!(sc["woke"], true);
    assert_eq!(
        sc["delivered_to"],
        json!({"personality": "bob", "runtime": "claude"})
    );
    assert!(sc["ts"].as_str().unwrap().ends_with('Z'));
    // The text content is the same JSON, pretty-printed.
    let text: Value = serde_json::from_str(&tool_text(&first)).unwrap();
    assert_eq!(&text, sc);

    let second = d.send_to_peer(
        Some("claude-alice"),
        json!({"personality": "bob", "message": "still there?"}),
    );
    assert_eq!(second["structuredContent"]["woke"], false, "{second}");

    let t = f.claude_transcript(&bob);
    assert_eq!(envelopes(&t), 2, "{t}");
    assert!(t.contains(
        "<iap from-personality=\"alice\" from-runtime=\"claude\" from-intelligence=\"artificial\" topic=\"greetings\" id=\""
    ));
    assert!(t.contains("IAP message from known peers. Reply via send_to_peer."));
    assert!(
        t.contains("<message><![CDATA[hello bob]]></message>"),
        "{t}"
    );
    assert_eq!(t.matches("hello bob").count(), 1, "delivered once");
    assert_eq!(spawns_of(&f, "claude-bob"), 1);
    assert_eq!(spawns_of(&f, "claude-alice"), 0, "the caller is not woken");

    // delivery.log: one line per call, never the body.
    let log = std::fs::read_to_string(f.root.join("logs/iapeer/delivery.log")).unwrap();
    let lines: Vec<&str> = log.lines().collect();
    assert_eq!(lines.len(), 2, "{log}");
    assert!(
        lines[0].contains(
            "ev=delivery caller=claude-alice to=bob ok=true via=claude-bob woke=true ms="
        ),
        "{log}"
    );
    assert!(
        lines[0].contains(&format!(" id={}", sc["id"].as_str().unwrap())),
        "{log}"
    );
    assert!(lines[0].contains(" len=9 topic=greetings"), "{log}");
    assert!(lines[1].contains("woke=false"), "{log}");
    assert!(!log.contains("hello bob"), "the body is never logged");
}

/// Ten senders to a peer mid-turn: nothing is typed while it works; when
/// the turn ends all ten go in as one paste, each once, in the order they
/// were accepted.
#[test]
fn ten_senders_to_a_peer_mid_turn_wait_for_the_turn_end() {
    let (f, bob, _) = fleet_of_three();
    let f = f.with_env("FAKE_TURN_SECS", "4");
    let d = f.start_daemon(&[]);
    let first = d.send_to_peer(
        Some("claude-alice"),
        json!({"personality": "bob", "message": "start a long turn"}),
    );
    assert_eq!(first["structuredContent"]["woke"], true, "{first}");
    let turns = || std::fs::read_to_string(f.home.join("fake-turns.log")).unwrap_or_default();
    wait_until("the turn", Duration::from_secs(10), || {
        turns().contains("start")
    });
    let results: Vec<Value> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..10)
            .map(|i| {
                let d = &d;
                s.spawn(move || {
                    d.send_to_peer(
                        Some("claude-alice"),
                        json!({"personality": "bob", "message": format!("mid-turn note {i:02}"), "wait_secs": 0}),
                    )
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut ids = Vec::new();
    for r in &results {
        let sc = &r["structuredContent"];
        assert_eq!(sc["queued"], true, "{r}");
        ids.push(sc["id"].as_str().unwrap().to_string());
    }
    // Answered on commit (wait_secs 0); the daemon then finds it mid-turn.
    let why = |id: &str| {
        d.message_status(Some("claude-alice"), id)["structuredContent"]["why"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    wait_until("a note found mid-turn", Duration::from_secs(5), || {
        ids.iter().any(|id| why(id).contains("mid-turn"))
    });
    wait_until("all ten delivered", Duration::from_secs(20), || {
        ids.iter().all(|id| {
            d.message_status(Some("claude-alice"), id)["structuredContent"]["state"] == "delivered"
        })
    });
    wait_until("the second turn's end", Duration::from_secs(10), || {
        turns().matches("end").count() >= 2
    });
    let log = turns();
    assert!(!log.contains("DURING"), "typed into a turn:\n{log}");
    assert_eq!(
        log.matches("start").count(),
        2,
        "one paste for the ten:\n{log}"
    );
    let t = f.claude_transcript(&bob);
    // The order they were accepted in (ids sort as they commit).
    let mut order: Vec<(String, usize)> = results
        .iter()
        .enumerate()
        .map(|(i, r)| {
            (
                r["structuredContent"]["id"].as_str().unwrap().to_string(),
                i,
            )
        })
        .collect();
    order.sort();
    let positions: Vec<usize> = order
        .iter()
        .map(|(_, i)| {
            let needle = format!("mid-turn note {i:02}]]>");
            assert_eq!(t.matches(&needle).count(), 1, "{needle}: {t}");
            t.find(&needle).unwrap()
        })
        .collect();
    assert!(
        positions.windows(2).all(|w| w[0] < w[1]),
        "out of order: {t}"
    );
}

#[test]
fn twenty_concurrent_sends_to_a_sleeping_peer_spawn_it_once() {
    let (f, _, carol) = fleet_of_three();
    let d = f.start_daemon(&[]);
    let results: Vec<Value> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..20)
            .map(|i| {
                let d = &d;
                s.spawn(move || {
                    d.send_to_peer(
                        Some("claude-alice"),
                        json!({"personality": "carol", "message": format!("note number {i:02}")}),
                    )
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for r in &results {
        assert_eq!(r["isError"], false, "{r}");
    }
    // The wake carried what was waiting then (one paste); the rest went
    // to the live session.
    assert!(
        results
            .iter()
            .any(|r| r["structuredContent"]["woke"] == true),
        "a caller woke her"
    );
    assert_eq!(spawns_of(&f, "claude-carol"), 1, "one spawn");
    let t = f.claude_transcript(&carol);
    assert_eq!(envelopes(&t), 20, "{t}");
    for i in 0..20 {
        assert_eq!(
            t.matches(&format!("note number {i:02}]]>")).count(),
            1,
            "message {i} exactly once"
        );
    }
}

#[test]
fn refusals_say_the_message_was_not_delivered() {
    let (f, _, _) = fleet_of_three();
    f.register("tg", "telegram", &[]);
    f.register("owned", "claude", &[]);
    std::fs::write(f.launch_agents.join("com.iapeer.owned.plist"), "<plist/>").unwrap();
    f.ok(&["stop", "carol"]);
    let d = f.start_daemon(&[]);
    let send = |identity: Option<&str>, args: Value| d.send_to_peer(identity, args);
    let to = |p: &str| json!({"personality": p, "message": "hi"});

    assert_not_delivered(&send(Some("claude-alice"), to("carol")), "is stopped");
    // launchd's peer is not woken by us; its mail waits for it to be up.
    let owned = send(
        Some("claude-alice"),
        json!({"personality": "owned", "message": "hi", "wait_secs": 0}),
    );
    assert_eq!(owned["structuredContent"]["queued"], true, "{owned}");
    let owned_id = owned["structuredContent"]["id"].as_str().unwrap();
    wait_until("the reason it waits", Duration::from_secs(5), || {
        d.message_status(Some("claude-alice"), owned_id)["structuredContent"]["why"]
            .as_str()
            .is_some_and(|why| why.contains("launchd-managed"))
    });
    assert_not_delivered(
        &send(Some("claude-alice"), to("nobody")),
        "not in the iapeer peers index",
    );
    assert_not_delivered(&send(None, to("bob")), "x-iapeer-identity");
    assert_not_delivered(&send(Some("alice"), to("bob")), "x-iapeer-identity");
    assert_not_delivered(
        &send(Some("claude-zoe"), to("bob")),
        "unknown caller \"zoe\"",
    );
    assert_not_delivered(&send(Some("codex-alice"), to("bob")), "not declared");
    assert_not_delivered(
        &send(Some("claude-alice"), to("alice")),
        "cannot send to self",
    );
    assert_not_delivered(&send(Some("claude-alice"), to("tg")), "telegram policy");
    let long = "x".repeat(16_001);
    assert_not_delivered(
        &send(
            Some("claude-alice"),
            json!({"personality": "bob", "message": long}),
        ),
        "at most 16000",
    );
    assert_not_delivered(
        &send(
            Some("claude-alice"),
            json!({"personality": "bob", "message": "hi", "extra": 1}),
        ),
        "unknown field",
    );
    assert_not_delivered(
        &send(
            Some("claude-alice"),
            json!({"personality": "../etc", "message": "hi"}),
        ),
        "invalid personality",
    );
    let unknown = d.mcp(
        Some("claude-alice"),
        "tools/call",
        json!({"name": "rm_rf", "arguments": {}}),
    );
    assert!(tool_text(&unknown.json()["result"]).contains("unknown tool: rm_rf"));
    for bad in ["nope", "'; DROP TABLE messages; --"] {
        let st = d.message_status(Some("claude-alice"), bad);
        assert_eq!(st["isError"], true, "{st}");
        assert!(tool_text(&st).contains("invalid message id"), "{st}");
    }
    let st = d.message_status(Some("claude-alice"), "01a2518e-04b7-7559-9c00-5d033d3b8d4b");
    assert!(tool_text(&st).contains("no message"), "{st}");

    // Nothing was started for any of them.
    assert!(f.runs().is_empty(), "{:?}", f.runs());
    // A telegram-capable caller gets through to the bridge.
    f.set_peer_field(
        "alice",
        "interfaces",
        json!({"telegram": {"bot": "alice_bot"}}),
    );
    let ok = send(Some("claude-alice"), to("tg"));
    assert_eq!(ok["isError"], false, "{ok}");
    f.wait_for_router_line("telegram-tg", "from-personality=\"alice\"");
}

#[test]
fn malformed_hostile_and_silent_clients_do_not_hurt_the_daemon() {
    let (f, bob, _) = fleet_of_three();
    let d = f.start_daemon(&[]);
    let mcp_headers = common::MCP_POST;

    // Clients that connect and never send a byte, on both listeners.
    let _silent_unix = std::os::unix::net::UnixStream::connect(&d.sock).unwrap();
    let port = d.tcp.rsplit(':').next().unwrap();
    let _silent_tcp = std::net::TcpStream::connect(format!("127.0.0.1:{port}")).unwrap();

    // Malformed JSON: a JSON-RPC parse error.
    let mut args = mcp_headers.to_vec();
    args.extend(["--data-binary", r#"{"jsonrpc":"2.0","id":1,"method":"#]);
    let bad = d.unix("/mcp", &args);
    assert_eq!(bad.status, 400, "{bad:?}");
    assert_eq!(bad.json()["error"]["code"], -32700);

    // A 10 MB body: refused, not read into memory.
    let big = f.dir.path().join("big.json");
    let mut file = std::fs::File::create(&big).unwrap();
    file.write_all(&vec![b'a'; 10 << 20]).unwrap();
    let at_big = format!("@{}", big.display());
    // The daemon answers 413 and hangs up without reading the rest: curl
    // may see the hang-up while it still sends (a broken pipe) before the
    // answer. Either way the body was refused.
    let refused_big = |path: &str, extra: &[&str]| {
        let sock = d.sock.to_str().unwrap().to_string();
        let url = format!("http://x{path}");
        let out = std::process::Command::new("curl")
            .args([
                "-s",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                "-H",
                "Expect:",
            ])
            .args(["--max-time", "60", "--unix-socket", &sock, &url])
            .args(extra)
            .args(["--data-binary", at_big.as_str()])
            .output()
            .unwrap();
        let code = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            code == "413" || out.status.code() == Some(55),
            "{path}: {code} {out:?}"
        );
    };
    refused_big("/mcp", &mcp_headers);
    refused_big("/fleet/v1/send", &[]);

    // Fleet API: bad JSON, hostile names, unknown things, wrong methods.
    assert_eq!(d.post("/fleet/v1/send", "{bad").status, 400);
    assert_eq!(d.get("/fleet/v1/peers/..%2F..%2Fetc").status, 400);
    assert_eq!(d.post("/fleet/v1/peers/Bob;rm/wake", "").status, 400);
    assert_eq!(d.post("/fleet/v1/peers/bob/explode", "").status, 404);
    assert_eq!(d.get("/nowhere").status, 404);
    let wrong = d.get("/fleet/v1/send");
    assert_eq!(wrong.status, 405);
    assert!(wrong.json()["error"].is_string());
    // A browser page may not drive the daemon, nor a DNS-rebound name.
    let browser = d.unix(
        "/fleet/v1/snapshot",
        &["-H", "Origin: https://evil.example"],
    );
    assert_eq!(browser.status, 403);
    let rebound = curl(&[
        &format!("{}/fleet/v1/snapshot", d.tcp),
        "-H",
        "Host: evil.example",
    ]);
    assert_eq!(rebound.status, 403);

    // Through all of that, a real message still goes through, once.
    let ok = d.send_to_peer(
        Some("claude-alice"),
        json!({"personality": "bob", "message": "after the storm"}),
    );
    assert_eq!(ok["isError"], false, "{ok}");
    assert_eq!(
        f.claude_transcript(&bob).matches("after the storm").count(),
        1
    );
    assert_eq!(curl(&[&format!("{}/fleet/v1/status", d.tcp)]).status, 200);
}

#[test]
fn the_bearer_gate() {
    let (f, _, _) = fleet_of_three();
    let f = f.with_env("IAPEER_BEARER_TOKEN", "s3cret-token");
    let d = f.start_daemon(&[]);
    for (path, args) in [
        ("/fleet/v1/status", vec![]),
        ("/mcp", vec!["-X", "POST", "--data-binary", "{}"]),
    ] {
        let no = d.unix(path, &args);
        assert_eq!(no.status, 401, "{path}");
        assert!(no.headers.contains("www-authenticate: bearer"), "{no:?}");
        assert_eq!(
            no.json(),
            json!({"jsonrpc":"2.0","id":null,"error":{"code":-32001,"message":"unauthorized"}})
        );
        let mut wrong = args.clone();
        wrong.extend(["-H", "Authorization: Bearer s3cret-tokeN"]);
        assert_eq!(d.unix(path, &wrong).status, 401);
    }
    let tcp = curl(&[
        &format!("{}/fleet/v1/status", d.tcp),
        "-H",
        "Authorization: Bearer s3cret-token",
    ]);
    assert_eq!(tcp.status, 200);
    // The CLI takes the token from the same environment.
    assert!(f.ok(&["status"]).contains("running"));
    let mut args = common::MCP_POST.to_vec();
    args.extend([
        "-H",
        "Authorization: Bearer s3cret-token",
        "--data-binary",
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#,
    ]);
    let ok = d.unix("/mcp", &args);
    assert_eq!(ok.status, 200, "{ok:?}");
    assert_eq!(ok.json()["result"]["tools"][0]["name"], "send_to_peer");
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[test]
fn listeners_discovery_status_and_a_clean_stop() {
    let (f, _, _) = fleet_of_three();
    let state = f.root.join("state/iapeer");
    // A stale socket from a crashed daemon is replaced.
    std::fs::create_dir_all(&state).unwrap();
    drop(std::os::unix::net::UnixListener::bind(state.join("router.sock")).unwrap());

    let d = f.start_daemon(&["--tick-secs", "3600"]);
    assert_eq!(mode(&state), 0o700);
    assert_eq!(mode(&d.sock), 0o600);
    let discovery: Value =
        serde_json::from_str(&std::fs::read_to_string(state.join("router.json")).unwrap()).unwrap();
    assert_eq!(mode(&state.join("router.json")), 0o600);
    assert_eq!(discovery["sock"], d.sock.to_str().unwrap());
    assert_eq!(discovery["tcp"], format!("{}/mcp", d.tcp));
    assert!(d.tcp.starts_with("http://127.0.0.1:"), "loopback only");
    assert!(
        d.stderr()
            .contains(&format!("tcp={}/mcp sock={}", d.tcp, d.sock.display()))
    );

    // A second daemon is refused and leaves the first one's files alone.
    let second = f.daemon_cmd(&["--port", "0"]).output().unwrap();
    assert_eq!(second.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&second.stderr).contains("already running"));
    assert!(state.join("router.json").exists() && d.sock.exists());

    let status: Value = serde_json::from_str(&f.ok(&["status", "--json"])).unwrap();
    assert_eq!(status["pid"], d.pid());
    assert_eq!(status["listeners"]["tcp"], format!("{}/mcp", d.tcp));
    assert_eq!(status["adapters_loaded"], 4);
    assert_eq!(status["last_tick"]["actions"], json!({}));
    let human = f.ok(&["status"]);
    assert!(human.contains("iapeerd 0.1.0 running"), "{human}");

    refused_for_another_user(&f, &d);

    let sock = d.sock.clone();
    assert!(d.terminate().success());
    assert!(!sock.exists(), "socket removed");
    assert!(!state.join("router.json").exists(), "router.json removed");
    let err = f.refused(&["status"]);
    assert!(err.contains("no daemon answers"), "{err}");
}

/// As root, a client running as `nobody` is refused on loopback TCP; it
/// cannot reach the Unix socket through its 0700 dir; and with the
/// permissions opened up, `SO_PEERCRED` still turns it away. Skipped when
/// not root or without setpriv.
fn refused_for_another_user(f: &Fleet, d: &Daemon) {
    let root = unsafe { libc::geteuid() } == 0;
    let setpriv = Command::new("setpriv").arg("--version").output().is_ok();
    if !root || !setpriv {
        eprintln!("skipping the foreign-uid check (needs root and setpriv)");
        return;
    }
    let nobody_curl = |args: &[&str]| {
        Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .args(["curl", "-s", "-S", "--max-time", "10"])
            .args(args)
            .output()
            .unwrap()
    };
    // Loopback TCP: the kernel's socket table names the client's uid.
    let tcp = nobody_curl(&[&format!("{}/fleet/v1/status", d.tcp)]);
    assert!(
        !tcp.status.success() && tcp.stdout.is_empty(),
        "another user is refused on TCP too: {:?}",
        String::from_utf8_lossy(&tcp.stdout)
    );
    wait_until(
        "the TCP refusal to be logged",
        Duration::from_secs(5),
        || {
            d.stderr()
                .contains("refused a TCP connection from another user (uid 65534)")
        },
    );
    let sock = d.sock.to_str().unwrap();
    let as_nobody = || nobody_curl(&["--unix-socket", sock, "http://x/fleet/v1/status"]);
    let denied = as_nobody();
    assert!(!denied.status.success(), "the 0700 dir keeps nobody out");
    // Open every directory on the way and the socket itself.
    let mut opened = Vec::new();
    for dir in d.sock.ancestors().skip(1) {
        if dir == Path::new("/tmp") || dir == Path::new("/") {
            break;
        }
        opened.push((dir.to_path_buf(), mode(dir)));
        common::chmod(dir, 0o755);
    }
    common::chmod(&d.sock, 0o777);
    let refused = as_nobody();
    assert!(
        !refused.status.success() && refused.stdout.is_empty(),
        "peer credentials refuse another uid: {:?}",
        String::from_utf8_lossy(&refused.stderr)
    );
    for (dir, m) in opened {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(m)).unwrap();
    }
    common::chmod(&d.sock, 0o600);
    wait_until("the refusal to be logged", Duration::from_secs(5), || {
        d.stderr()
            .contains("refused a connection from another user")
    });
    let _ = f;
}

#[test]
fn the_fleet_api() {
    let (f, bob, _) = fleet_of_three();
    f.register("tg", "telegram", &[]);
    let d = f.start_daemon(&["--heartbeat-secs", "1"]);

    // Events: connect first, so what follows streams in.
    let events_out = f.dir.path().join("events.txt");
    let mut events = Command::new("curl")
        .args([
            "-s",
            "-N",
            "--max-time",
            "8",
            "--unix-socket",
            d.sock.to_str().unwrap(),
        ])
        .arg("http://x/fleet/v1/events?replay=2")
        .stdout(std::fs::File::create(&events_out).unwrap())
        .spawn()
        .unwrap();
    wait_until("the event stream", Duration::from_secs(10), || {
        std::fs::read_to_string(&events_out).is_ok_and(|t| t.contains("connected"))
    });

    let snap = d.get("/fleet/v1/snapshot");
    assert_eq!(snap.status, 200);
    let snap = snap.json();
    assert_eq!(snap["api"], 1);
    assert_eq!(snap["host"]["pid"], d.pid());
    let names: Vec<&str> = snap["peers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["personality"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["alice", "bob", "carol", "tg"]);
    assert_eq!(
        snap["peers"][1]["runtimes"][0],
        json!({"runtime": "claude", "status": "asleep"})
    );

    // Verbs, with the status codes of the reference.
    let woke = d.post("/fleet/v1/peers/bob/wake", "");
    assert_eq!(woke.status, 200, "{woke:?}");
    assert_eq!(woke.json()["status"], "READY");
    assert_eq!(woke.json()["woke"], true);
    assert!(f.is_live("claude-bob"));
    let stopped = d.post("/fleet/v1/peers/bob/stop", r#"{"runtime": "claude"}"#);
    assert_eq!(stopped.status, 200);
    assert_eq!(stopped.json()["outcomes"][0]["action"], "stopped");
    assert!(!f.is_live("claude-bob"));
    let refused = d.post("/fleet/v1/peers/bob/wake", "");
    assert_eq!(refused.status, 502);
    assert_eq!(refused.json()["stopped"], true);
    assert_eq!(
        d.post("/fleet/v1/peers/bob/start", "").json()["outcomes"][0]["action"],
        "started"
    );
    let fresh = d.post("/fleet/v1/peers/bob/new", "");
    assert_eq!(fresh.status, 200, "{fresh:?}");
    assert_eq!(fresh.json()["outcome"]["action"], "fresh");
    assert_eq!(d.post("/fleet/v1/peers/nobody/wake", "").status, 404);
    assert_eq!(
        d.post("/fleet/v1/peers/bob/wake", r#"{"runtime": "codex"}"#)
            .status,
        400
    );
    assert_eq!(
        d.post("/fleet/v1/peers/bob/wake", r#"{"runtim": "x"}"#)
            .status,
        400
    );
    // tg needs natural intelligence and has it; an artificial one fails.
    f.register("bot", "telegram", &["--intelligence", "artificial"]);
    let failed = d.post("/fleet/v1/peers/bot/wake", "");
    assert_eq!(failed.status, 502);
    assert!(
        failed.json()["reason"]
            .as_str()
            .unwrap()
            .contains("requires intelligence=natural")
    );

    // Send: from the single natural peer by default, or as named.
    let sent = d.post(
        "/fleet/v1/send",
        r#"{"personality": "bob", "message": "from the operator"}"#,
    );
    assert_eq!(sent.status, 200, "{sent:?}");
    assert_eq!(sent.json()["delivered_to"]["runtime"], "claude");
    assert!(f.claude_transcript(&bob).contains(
        "from-personality=\"tg\" from-runtime=\"telegram\" from-intelligence=\"natural\""
    ));
    let as_alice = d.post(
        "/fleet/v1/send",
        r#"{"personality": "bob", "message": "from alice", "from": "claude-alice"}"#,
    );
    assert_eq!(as_alice.status, 200);
    assert_eq!(
        d.post(
            "/fleet/v1/send",
            r#"{"personality": "nobody", "message": "x"}"#
        )
        .status,
        404
    );
    assert_eq!(
        d.post("/fleet/v1/send", r#"{"personality": "bob"}"#).status,
        400
    );
    assert_eq!(
        d.post(
            "/fleet/v1/send",
            r#"{"personality": "bob", "message": "x", "from": "nope"}"#
        )
        .status,
        400
    );

    // A peer's row and its recent events.
    let peer = d.get("/fleet/v1/peers/bob").json();
    assert_eq!(peer["peer"]["runtimes"][0]["status"], "live");
    let evs = peer["events"].as_array().unwrap();
    assert!(evs.len() <= 50 && !evs.is_empty());
    assert!(
        evs.iter()
            .any(|e| e["ev"] == "delivery" && e["to"] == "bob")
    );
    assert!(
        evs.iter()
            .any(|e| e["ev"] == "wake" && e["log"] == "lifecycle")
    );
    assert!(evs.iter().all(|e| common_concerns(e, "bob")), "{evs:?}");
    assert_eq!(d.get("/fleet/v1/peers/nobody").status, 404);

    // The stream saw the wake and the deliveries as they happened, and a heartbeat.
    wait_until("events to stream", Duration::from_secs(10), || {
        std::fs::read_to_string(&events_out)
            .is_ok_and(|t| t.contains("from alice") || t.matches("event: delivery").count() >= 2)
    });
    let _ = events.wait();
    let stream = std::fs::read_to_string(&events_out).unwrap();
    assert!(
        stream.starts_with(": connected") || stream.starts_with(":connected"),
        "{stream}"
    );
    assert!(stream.contains("event: lifecycle"), "{stream}");
    assert!(stream.contains("event: delivery"), "{stream}");
    assert!(stream.contains("\"caller\":\"claude-alice\""), "{stream}");
    assert!(
        stream.contains(":hb") || stream.contains(": hb"),
        "{stream}"
    );
}

fn common_concerns(e: &Value, p: &str) -> bool {
    let f = |k: &str| e[k].as_str().unwrap_or("");
    f("personality") == p
        || f("to") == p
        || f("identity").ends_with(&format!("-{p}"))
        || f("caller").ends_with(&format!("-{p}"))
        || f("via").ends_with(&format!("-{p}"))
}

#[test]
fn shutdown_waits_for_an_in_flight_wake_and_the_next_daemon_supervises() {
    let (f, bob, _) = fleet_of_three();
    // bob's TUI repaints late: the wake is still booting when SIGTERM lands.
    let f = f.with_env("FAKE_BOOT_SECS", "4");
    let d = f.start_daemon(&[]);
    let sock = d.sock.clone();
    let (call, queued) = std::thread::scope(|s| {
        let call = s.spawn(|| {
            d.send_to_peer(
                Some("claude-alice"),
                json!({"personality": "bob", "message": "finish me"}),
            )
        });
        wait_until("bob to start booting", Duration::from_secs(10), || {
            spawns_of(&f, "claude-bob") == 1
        });
        // A second message queues behind the boot (on bob's wake lock).
        let queued = s.spawn(|| {
            d.send_to_peer(
                Some("claude-alice"),
                json!({"personality": "bob", "message": "queued behind"}),
            )
        });
        std::thread::sleep(Duration::from_millis(1000));
        let _ = Command::new("kill")
            .args(["-TERM", &d.pid().to_string()])
            .status();
        (call.join().unwrap(), queued.join().unwrap())
    });
    assert_eq!(
        call["isError"], false,
        "the in-flight wake finished: {call}"
    );
    // The queued one is kept (the daemon stops before typing it), and
    // its sender is told so.
    assert_eq!(queued["isError"], false, "{queued}");
    assert_eq!(queued["structuredContent"]["queued"], true, "{queued}");
    assert!(f.claude_transcript(&bob).contains("finish me"));
    assert!(!f.claude_transcript(&bob).contains("queued behind"));
    assert!(d.terminate().success());
    assert!(!sock.exists());
    assert!(f.is_live("claude-bob"), "sessions outlive the daemon");

    // The next daemon delivers what was kept, once, and supervises what
    // the last one left: with a tiny idle bound it reaps bob.
    let f = f.with_env("IAPEER_IDLE_SECS", "1");
    let d2 = f.start_daemon(&["--tick-secs", "1"]);
    wait_until("the kept message", Duration::from_secs(20), || {
        f.claude_transcript(&bob).contains("queued behind")
    });
    assert_eq!(
        f.claude_transcript(&bob).matches("queued behind").count(),
        1
    );
    // The kill and the record's removal are two steps of one reap.
    wait_until(
        "the next daemon to reap bob",
        Duration::from_secs(20),
        || !f.is_live("claude-bob") && !f.state("claude-bob", "session").exists(),
    );
    let status: Value = serde_json::from_str(&f.ok(&["status", "--json"])).unwrap();
    assert!(status["last_tick"].is_object());
    assert!(d2.terminate().success());
}

/// The eager `/new` relaunch found by a wake's heal pass runs in the
/// daemon at once (the tick timer is an hour away).
#[test]
fn a_heal_pass_in_the_daemon_kicks_the_eager_relaunch() {
    let (f, _, _) = fleet_of_three();
    let d = f.start_daemon(&["--tick-secs", "3600"]);
    f.ok(&["wake", "carol"]);
    f.ok(&["mark-new", "carol"]);
    f.crash("claude-carol");
    let sent = d.send_to_peer(
        Some("claude-alice"),
        json!({"personality": "bob", "message": "wake bob, heal carol"}),
    );
    assert_eq!(sent["isError"], false);
    wait_until("carol's eager relaunch", Duration::from_secs(20), || {
        f.is_live("claude-carol") && !f.state("claude-carol", "new").exists()
    });
    assert_eq!(spawns_of(&f, "claude-carol"), 2);
}

#[test]
fn no_tcp_serves_only_the_socket() {
    let f = Fleet::new();
    let d = f.start_daemon(&["--no-tcp"]);
    assert!(d.tcp.is_empty());
    let discovery: Value = serde_json::from_str(
        &std::fs::read_to_string(f.root.join("state/iapeer/router.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(discovery["tcp"], Value::Null);
    assert!(d.stderr().contains("tcp=off"));
    assert_eq!(
        d.get("/fleet/v1/status").json()["listeners"]["tcp"],
        Value::Null
    );
}

#[test]
fn mcp_config_installs_client_configs_idempotently() {
    let (f, bob, _) = fleet_of_three();
    let f = f.with_env("IAPEER_PORT", "9911");
    // Something of the operator's own is kept.
    std::fs::write(
        bob.join(".mcp.json"),
        r#"{"mcpServers": {"mine": {"type": "stdio", "command": "x"}}}"#,
    )
    .unwrap();
    let first = f.ok(&["mcp-config", "claude", "bob", "--write"]);
    assert!(
        first.contains("wrote") && first.contains(".mcp.json"),
        "{first}"
    );
    let again = f.ok(&["mcp-config", "claude", "bob", "--write"]);
    assert!(!again.contains("wrote"), "idempotent: {again}");
    let mcp: Value =
        serde_json::from_str(&std::fs::read_to_string(bob.join(".mcp.json")).unwrap()).unwrap();
    assert_eq!(mcp["mcpServers"]["mine"]["command"], "x");
    let entry = &mcp["mcpServers"]["iapeer"];
    assert_eq!(entry["type"], "http");
    assert_eq!(entry["url"], "http://127.0.0.1:9911/mcp");
    assert_eq!(entry["headers"]["X-IAPeer-Identity"], "${PEER_IDENTITY}");
    let settings: Value = serde_json::from_str(
        &std::fs::read_to_string(bob.join(".claude/settings.local.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(settings["enabledMcpjsonServers"], json!(["iapeer"]));

    // Codex: one user-level entry; with a daemon running, its real URL.
    let d = f.start_daemon(&[]);
    f.ok(&["mcp-config", "codex", "--write"]);
    let toml = std::fs::read_to_string(f.home.join(".codex/config.toml")).unwrap();
    assert!(toml.contains("[mcp_servers.iapeer]"), "{toml}");
    assert!(toml.contains(&format!("url = \"{}/mcp\"", d.tcp)), "{toml}");
    assert!(toml.contains("env_http_headers = { X-IAPeer-Identity = \"PEER_IDENTITY\" }"));
    assert!(
        f.ok(&["mcp-config", "codex", "--write"])
            .contains("unchanged")
    );
    // Printing touches nothing; a peer that does not exist is an error.
    assert!(
        f.ok(&["mcp-config", "claude"])
            .contains("\"X-IAPeer-Identity\": \"${PEER_IDENTITY}\"")
    );
    assert!(
        f.refused(&["mcp-config", "claude", "nobody", "--write"])
            .contains("not registered")
    );
}

/// A busy model takes a message late: the caller is told it is queued,
/// typed in but not yet seen taken (never "NOT delivered", which would
/// invite a duplicate); it is checked before any second try, and it does
/// arrive, once, and is then reported delivered.
#[test]
fn a_slow_model_gets_unconfirmed_not_a_false_not_delivered() {
    let (f, bob, _) = fleet_of_three();
    let d = f.start_daemon(&[]);
    let woke = d.send_to_peer(
        Some("claude-alice"),
        json!({"personality": "bob", "message": "first"}),
    );
    assert_eq!(woke["isError"], false, "{woke}");
    drop(d);
    // From now on bob writes each input line 5 s late (the grace is 3 s).
    let f = f.with_env("FAKE_WRITE_LAG_SECS", "5");
    f.crash("claude-bob");
    let d = f.start_daemon(&[]);
    let woke_slow = d.send_to_peer(
        Some("claude-alice"),
        json!({"personality": "bob", "message": "slow wake"}),
    );
    // The ready gate (20 s here) outwaits the lag: a wake is confirmed.
    assert_eq!(woke_slow["isError"], false, "{woke_slow}");
    let live = d.send_to_peer(
        Some("claude-alice"),
        json!({"personality": "bob", "message": "slow and live", "wait_secs": 0}),
    );
    assert_eq!(live["isError"], false, "{live}");
    let sc = &live["structuredContent"];
    assert_eq!(sc["queued"], true, "{live}");
    let id = sc["id"].as_str().unwrap().to_string();
    wait_until("the late message", Duration::from_secs(15), || {
        f.claude_transcript(&bob).contains("slow and live")
    });
    wait_until("reported delivered", Duration::from_secs(10), || {
        d.message_status(Some("claude-alice"), &id)["structuredContent"]["state"] == "delivered"
    });
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        f.claude_transcript(&bob).matches("slow and live").count(),
        1
    );
}

/// A peer that takes the message and then exits: delivered is delivered.
#[test]
fn a_peer_that_exits_after_taking_the_message_was_still_delivered() {
    let (f, bob, _) = fleet_of_three();
    let f = f.with_env("FAKE_EXIT_ON", "DIE");
    let d = f.start_daemon(&[]);
    let r = d.send_to_peer(
        Some("claude-alice"),
        json!({"personality": "bob", "message": "last words\nDIE\nnever read"}),
    );
    assert_eq!(r["isError"], false, "{r}");
    assert_eq!(r["structuredContent"]["woke"], true);
    assert!(f.claude_transcript(&bob).contains("last words"));
}

/// Senders behind a wake that fails to boot share its failure instead of
/// each booting the broken runtime again: every message is accepted and
/// kept (queued, with the reason), and the runtime was booted once.
#[test]
fn a_failed_boot_is_shared_by_the_senders_queued_behind_it() {
    let (f, _, _) = fleet_of_three();
    let f = f
        .with_env("FAKE_STUCK", "1")
        .with_env("IAPEER_BOOT_DEADLINE_SECS", "2");
    let d = f.start_daemon(&[]);
    let results: Vec<Value> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..5)
            .map(|i| {
                let d = &d;
                s.spawn(move || {
                    d.send_to_peer(
                        Some("claude-alice"),
                        json!({"personality": "carol", "message": format!("try {i}"), "wait_secs": 0}),
                    )
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut ids = Vec::new();
    for r in &results {
        assert_eq!(r["isError"], false, "{r}");
        let sc = &r["structuredContent"];
        assert_eq!(sc["queued"], true, "{r}");
        ids.push(sc["id"].as_str().unwrap().to_string());
    }
    // Answered on commit (wait_secs 0): the daemon's first boot fails.
    wait_until("the failed boot", Duration::from_secs(15), || {
        ids.iter().any(|id| {
            d.message_status(Some("claude-alice"), id)["structuredContent"]["why"]
                .as_str()
                .is_some_and(|why| why.contains("never-became-ready"))
        })
    });
    assert_eq!(
        spawns_of(&f, "claude-carol"),
        1,
        "booted once, not five times"
    );
    // Each says what it waits for: the failed boot, or the message ahead.
    for id in &ids {
        let st = d.message_status(Some("claude-alice"), id);
        let sc = &st["structuredContent"];
        assert_eq!(sc["state"], "queued", "{st}");
        let why = sc["why"].as_str().unwrap();
        assert!(
            why.contains("never-became-ready")
                || why.contains("behind an earlier message")
                || why.contains("being delivered"),
            "{why}"
        );
    }
}

#[test]
fn requests_the_sdk_would_refuse_get_clear_errors() {
    let f = Fleet::new();
    let d = f.start_daemon(&[]);
    let mut args = common::MCP_POST.to_vec();
    args.extend([
        "--data-binary",
        r#"[{"jsonrpc":"2.0","id":1,"method":"tools/list"}]"#,
    ]);
    let batch = d.unix("/mcp", &args);
    assert_eq!(batch.status, 400);
    assert_eq!(batch.json()["error"]["code"], -32600);
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let deep_file = f.dir.path().join("deep.json");
    std::fs::write(&deep_file, deep).unwrap();
    let at = format!("@{}", deep_file.display());
    let mut args = common::MCP_POST.to_vec();
    args.extend(["--data-binary", at.as_str()]);
    assert_eq!(d.unix("/mcp", &args).json()["error"]["code"], -32700);
    let get = d.get("/mcp");
    assert_eq!(get.status, 405);
    assert!(get.json()["error"]["message"].is_string());

    // Headers, then a body that never comes: answered 408 (not held).
    use std::io::Read;
    let mut s = std::os::unix::net::UnixStream::connect(&d.sock).unwrap();
    s.write_all(b"POST /fleet/v1/send HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
        .unwrap();
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");

    // A malformed chunked body is a bad request, not a large one.
    let mut s = std::os::unix::net::UnixStream::connect(&d.sock).unwrap();
    s.write_all(
        b"POST /fleet/v1/send HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    )
    .unwrap();
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
}

/// A modal that swallows input never showed the paste: that is never
/// taken for a delivery (the composer "cleared" only counts for a paste
/// that was seen in it).
#[test]
fn a_modal_on_screen_gets_no_paste_and_the_sender_is_told() {
    let (f, bob, _) = fleet_of_three();
    let f = f.with_env("FAKE_MODAL", "1");
    f.ok(&["wake", "bob", "--message", "first"]);
    let d = f.start_daemon(&[]);
    let r = d.send_to_peer(
        Some("claude-alice"),
        json!({"personality": "bob", "message": "must not be lost", "wait_secs": 1}),
    );
    // The modal is no composer: nothing is typed into it, and the sender
    // knows the message waits, and why.
    assert_eq!(r["isError"], false, "{r}");
    let sc = &r["structuredContent"];
    assert_eq!(sc["queued"], true, "{r}");
    // The adapter sees the dialog (contract 0.3), before any paste.
    assert!(
        sc["reason"]
            .as_str()
            .unwrap()
            .contains("shows a dialog or prompt"),
        "{r}"
    );
    let id = sc["id"].as_str().unwrap();
    let st = d.message_status(Some("claude-alice"), id);
    assert_eq!(st["structuredContent"]["state"], "queued", "{st}");
    std::thread::sleep(Duration::from_secs(3));
    assert!(!f.claude_transcript(&bob).contains("must not be lost"));
    assert_eq!(
        d.message_status(Some("claude-alice"), id)["structuredContent"]["state"],
        "queued"
    );
}

/// A `.wasm` copied into the plugin dir serves without a restart; a
/// changed file that does not validate leaves the old version serving; a
/// removed file unloads; unchanged adapters are reused.
#[test]
fn the_plugin_dirs_are_watched_and_reloaded_in_place() {
    let f = Fleet::new();
    let plugins = f.root.join("plugins");
    let d = f.start_daemon(&[]);
    let served = |d: &Daemon| -> Vec<String> {
        d.get("/fleet/v1/status").json()["adapters"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| a["state"] == "loaded")
            .map(|a| a["runtime"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(served(&d), ["claude", "codex", "telegram", "notifier"]);
    // The daemon created its plugin dir (0700) so this copy is seen.
    assert_eq!(mode(&plugins), 0o700);
    std::fs::copy(
        common::example_plugin("gemini.wasm"),
        plugins.join("gemini.wasm"),
    )
    .unwrap();
    // It reads ~/.gemini/tmp: it waits for the operator's grant.
    wait_until("gemini to be seen", Duration::from_secs(15), || {
        f.ok(&["plugins", "list"]).contains("needs-grant")
    });
    assert!(!served(&d).contains(&"gemini".to_string()));
    let granted = f.ok(&["plugins", "grant", "gemini"]);
    assert!(granted.contains("granted gemini"), "{granted}");
    assert!(
        granted.contains("read-only access to ~/.gemini/tmp"),
        "{granted}"
    );
    wait_until("gemini to serve", Duration::from_secs(15), || {
        served(&d).contains(&"gemini".to_string())
    });
    // Broken bytes at the same path: the previous version keeps serving.
    std::fs::write(plugins.join("gemini.wasm"), b"\0asm garbage").unwrap();
    wait_until(
        "the broken file to be noticed",
        Duration::from_secs(15),
        || {
            let listed = f.ok(&["plugins", "list"]);
            listed.contains("the previous version keeps serving")
        },
    );
    assert!(served(&d).contains(&"gemini".to_string()));
    let listed = f.ok(&["plugins", "list"]);
    assert!(
        listed.contains("as served by the running iapeerd"),
        "{listed}"
    );
    // Removed: unloaded. The fleet verb reloads at once and says so.
    std::fs::remove_file(plugins.join("gemini.wasm")).unwrap();
    let after = d.post("/fleet/v1/reload", "");
    assert_eq!(after.status, 200, "{after:?}");
    assert_eq!(
        after.json()["adapters"],
        json!(["claude", "codex", "notifier", "telegram"])
    );
    assert_eq!(after.json()["reused"], 4, "the built-ins were not reloaded");
    assert_eq!(served(&d), ["claude", "codex", "telegram", "notifier"]);
    // SIGHUP goes through the same task.
    std::fs::copy(
        common::example_plugin("gemini.wasm"),
        plugins.join("gemini.wasm"),
    )
    .unwrap();
    let _ = Command::new("kill")
        .args(["-HUP", &d.pid().to_string()])
        .status();
    wait_until("gemini again", Duration::from_secs(15), || {
        served(&d).contains(&"gemini".to_string())
    });
    assert!(d.stderr().contains("[iapeerd] plugins reloaded"));
}

/// Event streams never end on their own and share the listeners'
/// connection cap: at most 32 are open at once (one more is a 503), so
/// subscribers can never crowd out requests (regression: 256 idle streams
/// made the daemon unreachable).
#[test]
fn event_streams_are_capped_and_never_crowd_out_requests() {
    use std::io::{BufRead, BufReader};
    use std::os::unix::net::UnixStream;
    let f = Fleet::new();
    let d = f.start_daemon(&[]);
    let open = || {
        let mut s = UnixStream::connect(&d.sock).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(b"GET /fleet/v1/events HTTP/1.1\r\nHost: localhost\r\n\r\n")
            .unwrap();
        let mut status = String::new();
        let mut r = BufReader::new(s.try_clone().unwrap());
        r.read_line(&mut status).unwrap();
        (s, status)
    };
    let streams: Vec<UnixStream> = (0..32)
        .map(|i| {
            let (s, status) = open();
            assert!(status.contains(" 200 "), "stream {i}: {status}");
            s
        })
        .collect();
    let (_, status) = open();
    assert!(status.contains(" 503 "), "the 33rd: {status}");
    assert_eq!(
        d.get("/fleet/v1/status").status,
        200,
        "requests still served"
    );
    drop(streams);
    wait_until("a stream slot to free up", Duration::from_secs(10), || {
        open().1.contains(" 200 ")
    });
}

/// A client that sends requests and never reads the answers is cut once
/// it has read nothing for a while (`--write-stall-secs`): it cannot hold
/// a connection slot (or an event stream's permit) forever.
#[test]
fn a_client_that_never_reads_its_answers_is_cut() {
    use std::io::Read;
    let (f, _, _) = fleet_of_three();
    let d = f.start_daemon(&["--write-stall-secs", "2"]);
    let mut conn = std::os::unix::net::UnixStream::connect(&d.sock).unwrap();
    let mut writer = conn.try_clone().unwrap();
    let requests = 3000;
    // Pipelined, never read: the answers fill both socket buffers.
    let flood = std::thread::spawn(move || {
        let one = b"GET /fleet/v1/snapshot HTTP/1.1\r\nHost: x\r\n\r\n";
        for _ in 0..requests {
            if writer.write_all(one).is_err() {
                return;
            }
        }
    });
    std::thread::sleep(Duration::from_secs(5));
    // Now read: a connection still served would answer all of them and
    // stay open (the read would time out); a cut one ends early.
    conn.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 1 << 16];
    loop {
        match conn.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(e) => panic!("the connection was not cut: {e}"),
        }
    }
    let answered = String::from_utf8_lossy(&got)
        .matches("HTTP/1.1 200")
        .count();
    assert!(answered < requests, "all {answered} answered: not cut");
    flood.join().unwrap();
    eprintln!("cut after {answered} of {requests} answers");
    assert_eq!(d.get("/fleet/v1/status").status, 200);
}

/// An ephemeral peer (`wake_policy: ephemeral`) takes one message per
/// session: each message waits in its mailbox until the last session is
/// done and reaped (quiet after it answered or said `self-done`, or idle
/// past the unarmed bound), then wakes a fresh one. Each session sees its
/// one message; none is lost.
#[test]
fn an_ephemeral_peer_drains_its_mailbox_one_wake_per_message() {
    let (f, _, _) = fleet_of_three();
    let f = f
        .with_env("IAPEER_EPHEMERAL_QUIET_SECS", "1")
        .with_env("IAPEER_EPHEMERAL_IDLE_SECS", "3");
    let eph = f.register("eph", "claude", &[]);
    std::fs::create_dir_all(eph.join(".iapeer")).unwrap();
    std::fs::write(
        eph.join(".iapeer/peer-profile.json"),
        r#"{"wake_policy": "ephemeral"}"#,
    )
    .unwrap();
    let d = f.start_daemon(&["--tick-secs", "1"]);
    let mut ids = Vec::new();
    for i in 0..3 {
        let r = d.send_to_peer(
            Some("claude-alice"),
            json!({"personality": "eph", "message": format!("job {i}"), "wait_secs": 0}),
        );
        assert_eq!(r["isError"], false, "{r}");
        ids.push(r["structuredContent"]["id"].as_str().unwrap().to_string());
    }
    // The first session is done once it says so: reaped when quiet.
    wait_until("the first session", Duration::from_secs(10), || {
        f.is_live("claude-eph")
    });
    let done = f
        .cmd(&["self-done"])
        .env("PEER_IDENTITY", "claude-eph")
        .output()
        .unwrap();
    assert!(done.status.success(), "{}", common::output_text(&done));
    let all_in = wait_until_ok(Duration::from_secs(40), || {
        ids.iter().all(|id| {
            d.message_status(Some("claude-alice"), id)["structuredContent"]["state"] == "delivered"
        })
    });
    if !all_in {
        let statuses: Vec<Value> = ids
            .iter()
            .map(|id| d.message_status(Some("claude-alice"), id)["structuredContent"].clone())
            .collect();
        let log =
            std::fs::read_to_string(f.root.join("logs/iapeer/lifecycle.log")).unwrap_or_default();
        panic!("not all delivered: {statuses:#?}\n{log}");
    }
    assert_eq!(
        spawns_of(&f, "claude-eph"),
        3,
        "one fresh session per message"
    );
    let log = std::fs::read_to_string(f.root.join("logs/iapeer/lifecycle.log")).unwrap();
    assert_eq!(
        log.matches("identity=claude-eph runtime=claude mode=fresh cause=ephemeral-policy")
            .count(),
        3,
        "{log}"
    );
    assert!(log.contains("action=reaped-ephemeral"), "{log}");
    // Each session's transcript holds its one message.
    let dir = std::fs::read_dir(f.home.join(".claude/projects")).unwrap();
    let mut per_session = Vec::new();
    for project in dir.flatten() {
        for t in std::fs::read_dir(project.path()).unwrap().flatten() {
            let text = std::fs::read_to_string(t.path()).unwrap();
            if text.contains("job ") {
                per_session.push(text.matches("job ").count());
            }
        }
    }
    assert_eq!(per_session, [1, 1, 1], "one message per session");
}

fn wait_until_ok(within: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let start = std::time::Instant::now();
    while start.elapsed() < within {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    cond()
}

/// `kill -9` of the daemon at many moments of a delivery — before the
/// commit, between the commit and the paste, between the paste and the
/// runtime's confirmation (a model that writes 1 s late): the next daemon
/// settles what was left by looking at the runtime first, and every
/// accepted message reaches the peer exactly once; none twice.
#[test]
fn kill_9_of_the_daemon_mid_delivery_loses_and_doubles_nothing() {
    let (f, bob, _) = fleet_of_three();
    let f = f.with_env("FAKE_WRITE_LAG_SECS", "1");
    f.ok(&["wake", "bob"]);
    let delays = [0u64, 5, 15, 40, 70, 100, 130, 160, 190, 220, 260, 700];
    let rounds = 24;
    for round in 0..rounds {
        let d = f.start_daemon(&[]);
        let msg = format!("k{round:02}x");
        std::thread::scope(|s| {
            s.spawn(|| {
                // The daemon dies under it: the call's own fate is not
                // the point here, so a plain curl whose failure is fine.
                let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params":
                    {"name": "send_to_peer", "arguments": {"personality": "bob", "message": msg, "wait_secs": 5}}});
                let _ = Command::new("curl")
                    .args(["-s", "--unix-socket", d.sock.to_str().unwrap(), "http://x/mcp", "-X", "POST",
                        "-H", "content-type: application/json",
                        "-H", "accept: application/json, text/event-stream",
                        "-H", "X-IAPeer-Identity: claude-alice",
                        "--data-binary", &body.to_string()])
                    .output();
            });
            std::thread::sleep(Duration::from_millis(delays[round % delays.len()]));
            let _ = Command::new("kill")
                .args(["-KILL", &d.pid().to_string()])
                .status();
        });
        drop(d);
    }
    let d = f.start_daemon(&[]);
    let settled = wait_until_ok(Duration::from_secs(60), || {
        f.ok(&["mail"]).starts_with("no mail waiting")
    });
    assert!(settled, "mail still waiting: {}", f.ok(&["mail"]));
    std::thread::sleep(Duration::from_secs(2));
    let history: Vec<Value> = serde_json::from_str(&f.ok(&["mail", "--all", "--json"])).unwrap();
    let delivered = history.iter().filter(|m| m["state"] == "delivered").count();
    assert!(
        history.iter().all(|m| m["state"] == "delivered"),
        "{history:#?}"
    );
    let t = f.claude_transcript(&bob);
    let log = std::fs::read_to_string(f.root.join("logs/iapeer/lifecycle.log")).unwrap();
    let mailbox = iapeer::mail::Mailbox::open(&f.root.join("state/mail.db")).unwrap();
    let mut reached = 0;
    for round in 0..rounds {
        let n = t.matches(&format!("k{round:02}x]]>")).count();
        assert!(n <= 1, "k{round:02}x reached bob {n} times:\n{t}\n{log}");
        reached += n;
    }
    let missing: Vec<String> = history
        .iter()
        .filter_map(|m| {
            let id = iapeer::mail::MessageId::parse(m["id"].as_str().unwrap()).unwrap();
            let envelope = mailbox.get(&id).unwrap().unwrap().envelope;
            let body = envelope
                .split("CDATA[")
                .nth(1)?
                .split("]]>")
                .next()?
                .to_string();
            (!t.contains(&format!("{body}]]>"))).then(|| format!("{id} {body} {m}"))
        })
        .collect();
    assert_eq!(
        reached, delivered,
        "every accepted message reached bob; missing: {missing:#?}\n{log}\n{t}"
    );
    eprintln!(
        "{delivered} of {rounds} sends were accepted before their kill; each delivered once; \
         left mid-delivery and settled by the next daemon: {} taken, {} typed again",
        log.matches("ev=mail-recovered").filter(|_| true).count()
            - log.matches("outcome=again").count(),
        log.matches("outcome=again").count()
    );
    drop(d);
}

/// A message that cannot go in within its time to live is dead-lettered,
/// and its sender gets a bounce: an IAP envelope from the system, woken
/// for it like any message. `iapeer mail --retry` queues it again.
#[test]
fn a_message_past_its_ttl_is_dead_lettered_and_bounced_to_its_sender() {
    let (f, bob, _) = fleet_of_three();
    let alice = bob.parent().unwrap().join("alice");
    let f = f.with_env("IAPEER_MAIL_TTL_SECS", "2");
    // Only bob's runtime shows the modal.
    let env_dir = bob.join(".iapeer/runtimes/claude");
    std::fs::create_dir_all(&env_dir).unwrap();
    std::fs::write(env_dir.join("launch.env"), "FAKE_MODAL=1\n").unwrap();
    f.ok(&["wake", "bob", "--message", "first"]);
    let d = f.start_daemon(&[]);
    let r = d.send_to_peer(
        Some("claude-alice"),
        json!({"personality": "bob", "message": "behind the modal", "wait_secs": 0}),
    );
    let id = r["structuredContent"]["id"].as_str().unwrap().to_string();
    let dead = wait_until_ok(Duration::from_secs(15), || {
        d.message_status(Some("claude-alice"), &id)["structuredContent"]["state"] == "dead-lettered"
    });
    assert!(dead, "{}", d.message_status(Some("claude-alice"), &id));
    let st = d.message_status(Some("claude-alice"), &id);
    let why = st["structuredContent"]["why"].as_str().unwrap();
    assert!(
        why.contains("time to live") && why.contains("claude-bob"),
        "{why}"
    );
    // alice was asleep: the bounce woke her, from the system.
    wait_until("the bounce", Duration::from_secs(15), || {
        f.claude_transcript(&alice).contains(&id)
    });
    let t = f.claude_transcript(&alice);
    assert!(
        t.contains("from-personality=\"iapeer\" from-runtime=\"system\""),
        "{t}"
    );
    assert!(t.contains("was NOT delivered"), "{t}");
    assert!(!f.claude_transcript(&bob).contains("behind the modal"));
    // The operator queues it again: it waits once more (the modal is still up).
    f.ok(&["mail", "--retry", &id]);
    let st = d.message_status(Some("claude-alice"), &id);
    assert_eq!(st["structuredContent"]["state"], "queued", "{st}");
}
