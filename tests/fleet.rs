//! A fleet across hosts on a real `nats-server` with JetStream: two or
//! three `iapeerd` hosts, each with its own root, tmux sockets and name,
//! each signed in with its own nkey under the permissions `iapeer fleet
//! permissions` prints. Each host reaches the server through its own
//! loopback link, which a test cuts to partition it.

use std::time::Duration;

use serde_json::{Value, json};

use crate::common::panel::Panel;
use crate::common::wait_until;
use crate::nats::{Host, Link, Nats, Netns, Tls, host_key};

pub const CASES: &[crate::toolchain::Case] = crate::cases![
    a_message_crosses_hosts_and_wakes_its_peer,
    mail_for_a_host_that_is_down_goes_in_once_it_returns,
    a_partition_heals_and_the_mail_goes_through_once,
    kill_9_of_either_daemon_mid_flight_loses_and_doubles_nothing,
    the_nats_server_restarted_mid_flight_loses_nothing,
    a_host_cannot_speak_for_another_hosts_peers,
    a_personality_two_hosts_claim_is_refused_with_both_names,
    the_panel_shows_every_hosts_peers_and_acts_on_them,
    hosts_join_over_tls_and_an_unknown_certificate_is_turned_away,
    a_reload_keeps_the_mailbox_one_file_for_every_process,
    two_daemons_started_at_once_under_one_name_one_joins,
];

/// The cases that put a host in a network namespace of its own (root).
pub const NETNS_CASES: &[crate::toolchain::Case] =
    crate::cases![a_host_behind_a_link_taken_down_gets_its_mail_once_it_is_back];

/// The cases that drive the dashboard in a browser, in a fleet.
pub const BROWSER_CASES: &[crate::toolchain::Case] =
    crate::cases![the_dashboard_shows_every_hosts_peers_and_acts_on_them];

/// A server and hosts `names`, each with one peer (`peers[i]` on
/// `names[i]`), each host through its own link; daemons started.
struct World {
    nats: Nats,
    links: Vec<Link>,
    hosts: Vec<Host>,
    _dir: tempfile::TempDir,
}

impl World {
    fn new(names: &[&str], peers: &[&str]) -> World {
        let dir = tempfile::Builder::new()
            .prefix("iapf")
            .tempdir_in("/tmp")
            .unwrap();
        let keys: Vec<_> = names.iter().map(|n| host_key(dir.path(), n)).collect();
        let nats = Nats::start(dir.path(), &keys.iter().collect::<Vec<_>>());
        let links: Vec<Link> = names.iter().map(|_| Link::to(nats.port)).collect();
        let mut hosts: Vec<Host> = keys
            .into_iter()
            .zip(&links)
            .map(|(k, l)| Host::new(&k.name.clone(), k, l.url()))
            .collect();
        for (h, p) in hosts.iter_mut().zip(peers) {
            h.world.register(p, "claude", &[]);
            h.start();
        }
        for h in &hosts {
            for (owner, p) in names.iter().zip(peers) {
                h.wait_owner(p, owner);
            }
        }
        World {
            nats,
            links,
            hosts,
            _dir: dir,
        }
    }

    fn host(&self, name: &str) -> &Host {
        self.hosts.iter().find(|h| h.name == name).unwrap()
    }

    fn host_mut(&mut self, name: &str) -> &mut Host {
        self.hosts.iter_mut().find(|h| h.name == name).unwrap()
    }
}

/// `send_to_peer` on `host`'s daemon as `from`: the structured answer, or
/// the error text.
fn send(host: &Host, from: &str, to: &str, message: &str, wait: u32) -> Result<Value, String> {
    let r = host.daemon().send_to_peer(
        Some(from),
        json!({"personality": to, "message": message, "wait_secs": wait}),
    );
    if r["isError"] == true {
        Err(crate::common::tool_text(&r))
    } else {
        Ok(r["structuredContent"].clone())
    }
}

fn status(host: &Host, id: &str) -> Value {
    host.daemon().message_status(None, id)["structuredContent"].clone()
}

/// How many times `needle` is in the transcript of `peer` on `host`.
fn seen(host: &Host, peer_cwd: &std::path::Path, needle: &str) -> usize {
    host.world
        .claude_transcript(peer_cwd)
        .matches(needle)
        .count()
}

fn cwd(host: &Host, peer: &str) -> std::path::PathBuf {
    host.world
        .dir
        .path()
        .join("w")
        .join(peer)
        .canonicalize()
        .unwrap()
}

fn a_message_crosses_hosts_and_wakes_its_peer() {
    let w = World::new(&["a", "b"], &["alice", "bob"]);
    let (a, b) = (w.host("a"), w.host("b"));
    let sent = send(a, "claude-alice", "bob", "hello bob across hosts", 30).unwrap();
    assert_eq!(sent["woke"], true, "{sent}");
    assert_eq!(sent["delivered_to"]["personality"], "bob", "{sent}");
    let id = sent["id"].as_str().unwrap().to_string();
    let bob = cwd(b, "bob");
    assert_eq!(seen(b, &bob, "hello bob across hosts"), 1);
    let transcript = b.world.claude_transcript(&bob);
    assert!(
        transcript.contains("from-personality=\\\"alice\\\"")
            || transcript.contains("from-personality=\"alice\""),
        "the envelope names the verified sender: {transcript}"
    );
    assert_eq!(status(a, &id)["state"], "delivered");

    // Live now: no wake.
    let again = send(a, "claude-alice", "bob", "second, live", 30).unwrap();
    assert_eq!(again["woke"], false, "{again}");
    // The reply goes the other way, by the peer's bare name.
    let reply = send(b, "claude-bob", "alice", "hello alice from b", 30).unwrap();
    assert_eq!(reply["woke"], true, "{reply}");
    assert_eq!(seen(a, &cwd(a, "alice"), "hello alice from b"), 1);

    // One listing of the whole fleet, from either host.
    let list = a.fleet_list();
    let hosts: Vec<(&str, bool)> = list["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| (h["host"].as_str().unwrap(), h["up"].as_bool().unwrap()))
        .collect();
    assert!(
        hosts.contains(&("a", true)) && hosts.contains(&("b", true)),
        "{list}"
    );
    let row = |p: &str| {
        list["peers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["personality"] == p)
            .cloned()
            .unwrap_or_else(|| panic!("{p} in {list}"))
    };
    assert_eq!(row("bob")["host"], "b");
    assert_eq!(row("alice")["host"], "a");
    assert_eq!(row("bob")["runtimes"][0]["status"], "live", "{list}");

    // A runtime bob does not declare: refused at b, and said so here (and
    // bounced to alice, as local mail given up is).
    let r = a.daemon().send_to_peer(
        Some("claude-alice"),
        json!({"personality": "bob", "runtime": "codex", "message": "to codex", "wait_secs": 30}),
    );
    let refused = crate::common::tool_text(&r);
    assert!(
        refused.contains("not declared for \"bob\" on host b"),
        "{refused}"
    );
    // A verb on another host's peer is carried to its owner.
    let out = a.world.run(&["stop", "bob"]);
    assert!(out.status.success(), "{out:?}");
    wait_until("bob stopped on b", Duration::from_secs(10), || {
        !b.world.is_live("claude-bob")
    });
    let refused = send(a, "claude-alice", "bob", "to a stopped peer", 5).unwrap_err();
    assert!(
        refused.contains("stopped by the operator on host b"),
        "{refused}"
    );
    assert!(a.world.run(&["start", "bob"]).status.success());
    let woke = send(a, "claude-alice", "bob", "after start", 30).unwrap();
    assert_eq!(woke["woke"], true, "{woke}");
}

fn mail_for_a_host_that_is_down_goes_in_once_it_returns() {
    let mut w = World::new(&["a", "b"], &["alice", "bob"]);
    w.host_mut("b").stop();
    let a = w.host("a");
    wait_until("b to show down", Duration::from_secs(10), || {
        a.fleet_list()["hosts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|h| h["host"] == "b" && h["up"] == false)
    });
    let mut ids = Vec::new();
    for i in 0..3 {
        let q = send(
            a,
            "claude-alice",
            "bob",
            &format!("while b is down #{i}"),
            1,
        )
        .unwrap();
        assert_eq!(q["queued"], true, "{q}");
        assert!(q["reason"].as_str().unwrap().contains("host b"), "{q}");
        ids.push(q["id"].as_str().unwrap().to_string());
    }
    assert_eq!(status(a, &ids[0])["state"], "queued");
    w.host_mut("b").start();
    let a = w.host("a");
    for id in &ids {
        wait_until("each message delivered", Duration::from_secs(60), || {
            status(a, id)["state"] == "delivered"
        });
    }
    let b = w.host("b");
    for i in 0..3 {
        assert_eq!(seen(b, &cwd(b, "bob"), &format!("while b is down #{i}")), 1);
    }
}

fn a_partition_heals_and_the_mail_goes_through_once() {
    let w = World::new(&["a", "b"], &["alice", "bob"]);
    let (a, b) = (w.host("a"), w.host("b"));
    // The owner cut off: the message waits in the stream.
    w.links[1].cut();
    let q = send(a, "claude-alice", "bob", "across a partition", 2).unwrap();
    assert_eq!(q["queued"], true, "{q}");
    let id = q["id"].as_str().unwrap().to_string();
    std::thread::sleep(Duration::from_secs(2));
    w.links[1].heal();
    wait_until("delivered after the heal", Duration::from_secs(60), || {
        status(a, &id)["state"] == "delivered"
    });
    // The sender cut off: the message waits in its own mailbox.
    w.links[0].cut();
    let q = send(a, "claude-alice", "bob", "from a cut-off sender", 2).unwrap();
    let id = q["id"].as_str().unwrap().to_string();
    let why = status(a, &id)["why"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(why.contains("host b"), "{why}");
    std::thread::sleep(Duration::from_secs(2));
    w.links[0].heal();
    wait_until("delivered after the heal", Duration::from_secs(60), || {
        status(a, &id)["state"] == "delivered"
    });
    // A link that drops everything silently (nothing closes) for a while.
    w.links[1].stall();
    let q = send(a, "claude-alice", "bob", "across a silent partition", 2).unwrap();
    let id = q["id"].as_str().unwrap().to_string();
    std::thread::sleep(Duration::from_secs(4));
    w.links[1].heal();
    wait_until(
        "delivered after the silent partition",
        Duration::from_secs(120),
        || status(a, &id)["state"] == "delivered",
    );
    let bob = cwd(b, "bob");
    assert_eq!(seen(b, &bob, "across a partition"), 1);
    assert_eq!(seen(b, &bob, "from a cut-off sender"), 1);
    assert_eq!(seen(b, &bob, "across a silent partition"), 1);
}

fn kill_9_of_either_daemon_mid_flight_loses_and_doubles_nothing() {
    let mut w = World::new(&["a", "b"], &["alice", "bob"]);
    let rounds = 12;
    let mut all = Vec::new();
    for round in 0..rounds {
        let victim = if round % 2 == 0 { "b" } else { "a" };
        let mut ids = Vec::new();
        for i in 0..4 {
            let a = w.host("a");
            let q = send(a, "claude-alice", "bob", &format!("r{round} m{i}"), 0).unwrap();
            ids.push((
                format!("r{round} m{i}"),
                q["id"].as_str().unwrap().to_string(),
            ));
            if i == 1 {
                // Mid-flight: two sent, two to come.
                std::thread::sleep(Duration::from_millis(10 * round as u64));
                w.host_mut(victim).kill();
                w.host_mut(victim).start();
            }
        }
        all.extend(ids);
    }
    let a = w.host("a");
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    let undelivered = || -> Vec<String> {
        all.iter()
            .filter_map(|(text, id)| {
                let s = status(a, id);
                (s["state"] != "delivered").then(|| format!("{text} ({id}): {s}"))
            })
            .collect()
    };
    while !undelivered().is_empty() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    let left = undelivered();
    let b = w.host("b");
    assert!(
        left.is_empty(),
        "every message delivered: {left:#?}\non b: {}",
        b.world.ok(&["mail", "--all"])
    );
    let bob = cwd(b, "bob");
    let transcript = b.world.claude_transcript(&bob);
    let wrong: Vec<String> = all
        .iter()
        .filter_map(|(text, id)| {
            let n = transcript.matches(id.as_str()).count();
            (n != 1).then(|| format!("{text} ({id}) seen {n} times"))
        })
        .collect();
    assert!(wrong.is_empty(), "each message exactly once: {wrong:?}");
}

fn the_nats_server_restarted_mid_flight_loses_nothing() {
    let mut w = World::new(&["a", "b"], &["alice", "bob"]);
    let mut ids = Vec::new();
    for i in 0..6 {
        if i == 3 {
            w.nats.restart(Duration::from_millis(500));
        }
        let q = send(
            w.host("a"),
            "claude-alice",
            "bob",
            &format!("through a restart #{i}"),
            0,
        )
        .unwrap();
        ids.push(q["id"].as_str().unwrap().to_string());
    }
    let a = w.host("a");
    for id in &ids {
        wait_until(
            "delivered after the server came back",
            Duration::from_secs(90),
            || status(a, id)["state"] == "delivered",
        );
    }
    let b = w.host("b");
    for i in 0..6 {
        assert_eq!(
            seen(b, &cwd(b, "bob"), &format!("through a restart #{i}")),
            1
        );
    }
}

fn a_host_cannot_speak_for_another_hosts_peers() {
    let dir = tempfile::Builder::new()
        .prefix("iapf")
        .tempdir_in("/tmp")
        .unwrap();
    let keys: Vec<_> = ["a", "b", "c"]
        .iter()
        .map(|n| host_key(dir.path(), n))
        .collect();
    let nats = Nats::start(dir.path(), &keys.iter().collect::<Vec<_>>());
    let mut keys = keys.into_iter();
    let mut a = Host::new("a", keys.next().unwrap(), nats.url());
    let mut b = Host::new("b", keys.next().unwrap(), nats.url());
    let c_key = keys.next().unwrap();
    a.world.register("alice", "claude", &[]);
    b.world.register("bob", "claude", &[]);
    a.start();
    b.start();
    b.wait_owner("alice", "a");
    let seed = std::fs::read_to_string(&c_key.seed).unwrap();
    let forged = |id: &str, body: &str| {
        json!({
            "id": id, "from": "claude-alice", "intelligence": "natural", "to": "bob",
            "body": body, "created_ms": 1, "expires_ms": u64::MAX / 2,
        })
        .to_string()
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (subject_refused, kv_refused) = rt.block_on(async {
        let client = async_nats::ConnectOptions::with_nkey(seed.trim().to_string())
            .custom_inbox_prefix("_INBOX_c")
            .connect(nats.url())
            .await
            .unwrap();
        let js = async_nats::jetstream::new(client.clone());
        // Posing as host a on the subject: the server refuses the publish.
        let as_a = js
            .publish(
                "iap.mail.b.a",
                forged("01939f4e-0000-7000-8000-000000000001", "forged as host a").into(),
            )
            .await;
        let subject_refused = match as_a {
            Ok(ack) => ack.await.is_err(),
            Err(_) => true,
        };
        // As itself, claiming a's peer: taken to b, refused there.
        js.publish(
            "iap.mail.b.c",
            forged("01939f4e-0000-7000-8000-000000000002", "forged as alice").into(),
        )
        .await
        .unwrap()
        .await
        .unwrap();
        // Writing a's claims: refused by the server.
        let kv = js.publish("$KV.iap-owners.a.mallory", "{}".into()).await;
        let kv_refused = match kv {
            Ok(ack) => ack.await.is_err(),
            Err(_) => true,
        };
        // Rolling up the claims bucket (wiping every host's keys) with a
        // key of its own: the bucket takes no roll-ups.
        let mut headers = async_nats::HeaderMap::new();
        headers.insert("Nats-Rollup", "all");
        let rollup = js
            .publish_with_headers("$KV.iap-owners.c.zzz", headers, "{}".into())
            .await;
        let rollup_refused = match rollup {
            Ok(ack) => ack.await.is_err(),
            Err(_) => true,
        };
        assert!(rollup_refused, "a roll-up of the claims bucket is refused");
        // A consumer of its own, then widened to another host's mail.
        let own = async_nats::jetstream::consumer::pull::Config {
            durable_name: Some("mail-c".into()),
            filter_subject: "iap.mail.c.*".into(),
            ..Default::default()
        };
        js.create_consumer_on_stream(own.clone(), "IAP_MAIL")
            .await
            .expect("its own consumer");
        let widened = async_nats::jetstream::consumer::pull::Config {
            filter_subject: "iap.mail.*.a".into(),
            ..own
        };
        let stolen = js.create_consumer_on_stream(widened, "IAP_MAIL").await;
        assert!(stolen.is_err(), "a consumer of its own widened to a's mail");
        // A call whose answer would go to a subject only b may use (a
        // claim of bob by a host that is not there): never answered.
        client
            .publish_with_reply(
                "iap.ctl.b.c",
                "$KV.iap-owners.zz.bob",
                serde_json::json!({"method": "GET", "path": "/fleet/v1/snapshot"})
                    .to_string()
                    .into(),
            )
            .await
            .unwrap();
        client.flush().await.unwrap();
        // A call on a's peer sent to b: answered by b, never carried on.
        let call = serde_json::json!({"method": "POST", "path": "/fleet/v1/peers/alice/stop"});
        let answer = client
            .request("iap.ctl.b.c", call.to_string().into())
            .await
            .expect("b answers");
        let answer: serde_json::Value = serde_json::from_slice(&answer.payload).unwrap();
        assert_eq!(answer["status"], 404, "{answer}");
        (subject_refused, kv_refused)
    });
    assert!(subject_refused, "a publish as another host goes nowhere");
    assert!(kv_refused, "a host writes only its own claims");
    let log = nats.log();
    assert!(
        log.contains("Publish Violation") && log.contains("Subject \"iap.mail.b.a\""),
        "{log}"
    );
    // b kept the forged mail dead, with why, and typed nothing.
    wait_until(
        "b to refuse the forged mail",
        Duration::from_secs(10),
        || {
            let out = b.world.run(&[
                "--json",
                "mail",
                "--status",
                "01939f4e-0000-7000-8000-000000000002",
            ]);
            String::from_utf8_lossy(&out.stdout).contains("not a peer of host c")
        },
    );
    assert!(!b.world.is_live("claude-bob"), "nothing woke bob");
    let alice = a.world.run(&["--json", "list"]);
    assert!(
        !String::from_utf8_lossy(&alice.stdout).contains("\"stopped\""),
        "a call relayed through b stopped nothing on a"
    );
    // Every claim is still there: a send from a still reaches bob.
    let sent = send(&a, "claude-alice", "bob", "claims intact", 30).unwrap();
    assert_eq!(sent["delivered_to"]["personality"], "bob", "{sent}");
    let bob = b.world.dir.path().join("w/bob").canonicalize().unwrap();
    assert!(
        b.world.claude_transcripts(&bob).is_empty()
            || !b.world.claude_transcript(&bob).contains("forged"),
        "nothing forged reached bob"
    );
    drop(rt);
}

fn a_personality_two_hosts_claim_is_refused_with_both_names() {
    let w = World::new(&["a", "b"], &["alice", "bob"]);
    let (a, b) = (w.host("a"), w.host("b"));
    // A second bob, on a: a does not claim it (b owns bob), and a send to
    // bob on a names both hosts.
    a.world.register("bob", "claude", &[]);
    let refused = send(a, "claude-alice", "bob", "which bob?", 5).unwrap_err();
    assert!(
        refused.contains("bob") && refused.contains('b') && refused.contains("a (here)"),
        "{refused}"
    );
    // Named with its host, each bob is reached.
    let there = send(a, "claude-alice", "bob@b", "to the bob of b", 30).unwrap();
    assert_eq!(there["delivered_to"]["personality"], "bob", "{there}");
    assert_eq!(seen(b, &cwd(b, "bob"), "to the bob of b"), 1);
    let here = send(a, "claude-alice", "bob@a", "to the bob of a", 30).unwrap();
    assert_eq!(here["woke"], true, "{here}");
    assert_eq!(seen(a, &cwd(a, "bob"), "to the bob of a"), 1);
    assert_eq!(seen(b, &cwd(b, "bob"), "to the bob of a"), 0);
    // A host the fleet does not know is refused at once.
    let nowhere = send(a, "claude-alice", "bob@zz", "to nowhere", 1).unwrap_err();
    assert!(nowhere.contains("host zz is not in the fleet"), "{nowhere}");
    // b's bob still gets mail from elsewhere.
    let ok = send(b, "claude-bob", "alice", "still fine", 30).unwrap();
    assert_eq!(ok["delivered_to"]["personality"], "alice");
}

fn the_panel_shows_every_hosts_peers_and_acts_on_them() {
    let w = World::new(&["a", "b"], &["alice", "bob"]);
    let (a, b) = (w.host("a"), w.host("b"));
    let panel = Panel::start(&a.world, 120);
    panel.wait_for("the fleet's host column", "HOST");
    panel.wait_for("bob's row", "bob");
    let screen = panel.screen();
    let line = |screen: &str, peer: &str| {
        screen
            .lines()
            .find(|l| l.contains(peer))
            .unwrap_or("")
            .to_string()
    };
    assert!(
        line(&screen, "bob").contains(" b "),
        "bob's row names host b:\n{screen}"
    );
    assert!(
        line(&screen, "alice").contains(" a "),
        "alice's row names host a:\n{screen}"
    );
    // Select bob (filter), stop him: carried to b.
    panel.keys(&["/", "b", "o", "b", "Enter"]);
    panel.keys(&["s"]);
    panel.wait_for("the stop carried to b", "done by host b");
    wait_until("bob stopped on b", Duration::from_secs(10), || {
        let out = b.world.run(&["--json", "list"]);
        String::from_utf8_lossy(&out.stdout).contains("\"stopped\"")
    });
    panel.keys(&["S"]);
    wait_until("bob started on b", Duration::from_secs(10), || {
        let out = b.world.run(&["--json", "list"]);
        !String::from_utf8_lossy(&out.stdout).contains("\"stopped\"")
    });
}

fn hosts_join_over_tls_and_an_unknown_certificate_is_turned_away() {
    let dir = tempfile::Builder::new()
        .prefix("iapf")
        .tempdir_in("/tmp")
        .unwrap();
    let tls = Tls::make(dir.path());
    let keys: Vec<_> = ["a", "b"].iter().map(|n| host_key(dir.path(), n)).collect();
    let nats = Nats::start_tls(dir.path(), &keys.iter().collect::<Vec<_>>(), &tls);
    let url = format!("tls://127.0.0.1:{}", nats.port);
    let mut keys = keys.into_iter();
    let mut a = Host::new("a", keys.next().unwrap(), url.clone());
    let mut b = Host::new("b", keys.next().unwrap(), url);
    // Without the CA, the server's certificate is not trusted: no join.
    a.world.register("alice", "claude", &[]);
    a.spawn();
    std::thread::sleep(Duration::from_secs(3));
    let stderr = a.daemon().stderr();
    assert!(!stderr.contains("JOINED"), "{stderr}");
    assert!(stderr.contains("cannot join the fleet yet"), "{stderr}");
    a.stop();
    for h in [&mut a, &mut b] {
        h.extra = vec!["--fleet-ca".into(), tls.ca.to_str().unwrap().into()];
    }
    b.world.register("bob", "claude", &[]);
    a.start();
    b.start();
    a.wait_owner("bob", "b");
    let sent = send(&a, "claude-alice", "bob", "over TLS", 30).unwrap();
    assert_eq!(sent["woke"], true, "{sent}");
}

fn a_host_behind_a_link_taken_down_gets_its_mail_once_it_is_back() {
    let ns = Netns::new();
    let dir = tempfile::Builder::new()
        .prefix("iapf")
        .tempdir_in("/tmp")
        .unwrap();
    let keys: Vec<_> = ["a", "b"].iter().map(|n| host_key(dir.path(), n)).collect();
    let nats = Nats::start_at(dir.path(), &keys.iter().collect::<Vec<_>>(), &ns.root_ip);
    let mut keys = keys.into_iter();
    let mut a = Host::new("a", keys.next().unwrap(), nats.url());
    let mut b = Host::new("b", keys.next().unwrap(), nats.url());
    // b reaches the server only over the veth link into its namespace.
    b.wrapper = ns.exec();
    a.world.register("alice", "claude", &[]);
    b.world.register("bob", "claude", &[]);
    a.start();
    b.start();
    a.wait_owner("bob", "b");
    b.wait_owner("alice", "a");
    let sent = send(&a, "claude-alice", "bob", "over the veth link", 30).unwrap();
    assert_eq!(sent["woke"], true, "{sent}");
    ns.link_down();
    let q = send(&a, "claude-alice", "bob", "while the link is down", 2).unwrap();
    assert_eq!(q["queued"], true, "{q}");
    let r = send(&b, "claude-bob", "alice", "from behind the partition", 2).unwrap();
    assert_eq!(r["queued"], true, "{r}");
    std::thread::sleep(Duration::from_secs(3));
    ns.link_up();
    let (q, r) = (q["id"].as_str().unwrap(), r["id"].as_str().unwrap());
    wait_until(
        "a's message delivered after the link is back",
        Duration::from_secs(120),
        || status(&a, q)["state"] == "delivered",
    );
    wait_until(
        "b's message delivered after the link is back",
        Duration::from_secs(120),
        || status(&b, r)["state"] == "delivered",
    );
    assert_eq!(seen(&b, &cwd(&b, "bob"), "while the link is down"), 1);
    assert_eq!(seen(&a, &cwd(&a, "alice"), "from behind the partition"), 1);
}

/// A plugin reload opens the mailbox again while the fleet's tasks still
/// hold the one open before. Nothing of that may drop the daemon's locks
/// on the database: another process would then take itself for the last
/// one and remove the write-ahead log under the daemon, whose commits from
/// then on no other process sees (and a kill -9 loses).
fn a_reload_keeps_the_mailbox_one_file_for_every_process() {
    let w = World::new(&["a", "b"], &["alice", "bob"]);
    let a = w.host("a");
    a.world.register("carol", "claude", &[]);
    let d = a.daemon();
    let send = |text: &str| -> String {
        send(a, "claude-alice", "carol", text, 0).unwrap()["id"]
            .as_str()
            .unwrap()
            .to_string()
    };
    send("before the reload");
    let hup = std::process::Command::new("kill")
        .args(["-HUP", &d.pid().to_string()])
        .status()
        .unwrap();
    assert!(hup.success());
    wait_until("the reload", Duration::from_secs(20), || {
        d.stderr().contains("plugins reloaded")
    });
    send("after the reload");
    // Another process opens and closes the mailbox meanwhile.
    a.world.ok(&["mail", "--all"]);
    let id = send("after another process read it");
    let out = a.world.ok(&["mail", "--status", &id]);
    assert!(!out.contains("no message"), "{out}");
    let deleted: Vec<String> = std::fs::read_dir(format!("/proc/{}/fd", d.pid()))
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .map(|p| p.to_string_lossy().into_owned())
        .filter(|p| p.contains("mail.db") && p.ends_with("(deleted)"))
        .collect();
    assert!(
        deleted.is_empty(),
        "the daemon writes to removed files: {deleted:?}"
    );
}

fn the_dashboard_shows_every_hosts_peers_and_acts_on_them() {
    let repo = crate::common::repo_root();
    let python = crate::browser::driver_python(&repo).expect("the browser's driver");
    let dir = tempfile::Builder::new()
        .prefix("iapf")
        .tempdir_in("/tmp")
        .unwrap();
    let keys: Vec<_> = ["a", "b"].iter().map(|n| host_key(dir.path(), n)).collect();
    let nats = Nats::start(dir.path(), &keys.iter().collect::<Vec<_>>());
    let mut keys = keys.into_iter();
    let mut a = Host::new("a", keys.next().unwrap(), nats.url());
    let mut b = Host::new("b", keys.next().unwrap(), nats.url());
    a.tcp = true;
    a.world.register("alice", "claude", &[]);
    b.world.register("bob", "claude", &[]);
    a.start();
    b.start();
    a.wait_owner("bob", "b");
    let shots = repo.join("target/test-artifacts/dashboard/fleet");
    let _ = std::fs::remove_dir_all(&shots);
    let url = format!("{}/", a.daemon().tcp);
    let mut page = crate::browser::Browser::open(&python, &repo, &url, &shots);
    let loaded = page.cmd(json!({"op": "load"}));
    assert_eq!(loaded["rows"], 2, "alice here, bob on b: {loaded}");
    let rows = page.cmd(json!({"op": "script", "js": "return Array.from(document.querySelectorAll('#rows tr')).map(tr => [tr.dataset.identity, tr.querySelector('td.host').textContent, getComputedStyle(tr.querySelector('td.host')).display])"}));
    let rows = rows["value"].as_array().unwrap().clone();
    assert!(
        rows.contains(&json!(["claude-bob", "b", "table-cell"])),
        "{rows:?}"
    );
    assert!(
        rows.contains(&json!(["claude-alice", "a", "table-cell"])),
        "{rows:?}"
    );
    let summary = page.cmd(json!({"op": "text", "id": "summary"}));
    assert!(
        summary["text"]
            .as_str()
            .unwrap()
            .contains("hosts: a ●, b ●"),
        "{summary}"
    );
    page.cmd(json!({"op": "screenshot", "name": "fleet"}));
    // A verb on bob's row is carried to b.
    page.cmd(json!({"op": "click", "identity": "claude-bob", "verb": "stop"}));
    page.cmd(json!({"op": "wait_state", "identity": "claude-bob", "state": "stopped"}));
    let out = b.world.run(&["--json", "list"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("\"stopped\""));
    page.cmd(json!({"op": "click", "identity": "claude-bob", "verb": "start"}));
    page.cmd(json!({"op": "wait_state", "identity": "claude-bob", "state": "asleep"}));
}

fn two_daemons_started_at_once_under_one_name_one_joins() {
    let dir = tempfile::Builder::new()
        .prefix("iapf")
        .tempdir_in("/tmp")
        .unwrap();
    let key = host_key(dir.path(), "b");
    let twin = crate::nats::HostKey {
        name: key.name.clone(),
        seed: key.seed.clone(),
        user: key.user.clone(),
    };
    let nats = Nats::start(dir.path(), &[&key]);
    let mut one = Host::new("b", key, nats.url());
    let mut two = Host::new("b", twin, nats.url());
    one.world.register("bob", "claude", &[]);
    two.world.register("carol", "claude", &[]);
    one.spawn();
    two.spawn();
    std::thread::sleep(Duration::from_secs(4));
    let joined: Vec<bool> = [&one, &two]
        .iter()
        .map(|h| h.daemon().stderr().contains("JOINED"))
        .collect();
    assert_eq!(joined.iter().filter(|j| **j).count(), 1, "{joined:?}");
    let refused = if joined[0] { &two } else { &one };
    let stderr = refused.daemon().stderr();
    assert!(
        stderr.contains("in use by another live iapeerd"),
        "{stderr}"
    );
}
