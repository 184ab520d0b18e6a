//! The soak test: part of the default `cargo test` run (about 30 s), in
//! its own test binary so it does not share the machine with the other
//! lifecycle tests. Alone, with its output:
//!
//! ```sh
//! cargo test --test soak -- --nocapture
//! ```

mod common;

use std::time::Duration;

use common::Fleet;

/// 1 000 wake / send / stop / start / mark-new / crash cycles over 20 peers
/// from four threads, with a fifth of the CLI processes SIGKILLed at a
/// random moment. It must end with no tmux server that nothing supervises,
/// no state file left for a dead session, and every message whose `send`
/// said delivered in its transcript exactly once. Then a daemon drains the
/// mailboxes: every message a `send` accepted (delivered or queued) is in
/// its transcript exactly once, a killed send's at most once.
#[test]
fn soak() {
    use std::path::PathBuf;
    use std::sync::atomic::{AtomicU64, Ordering};
    let f = Fleet::new()
        .with_env("IAPEER_CRASHLOOP_MAX", "1000")
        .with_env("IAPEER_BOOT_DEADLINE_SECS", "10");
    let from = f.sender();
    let peers: Vec<String> = (0..20).map(|i| format!("s{i:02}")).collect();
    let cwds: Vec<PathBuf> = peers.iter().map(|p| f.register(p, "claude", &[])).collect();
    let seed = AtomicU64::new(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64,
    );
    // xorshift: no dependency, reproducible from the printed seed.
    let next = || {
        let mut x = seed.fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::SeqCst);
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    println!("soak seed {}", seed.load(Ordering::SeqCst));
    let delivered = std::sync::Mutex::new(Vec::<(usize, String)>::new());
    let queued = std::sync::Mutex::new(Vec::<(usize, String)>::new());
    let killed = std::sync::Mutex::new(Vec::<(usize, String)>::new());
    let counter = AtomicU64::new(0);
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                while counter.fetch_add(1, Ordering::SeqCst) < 1000 {
                    let p = (next() % 20) as usize;
                    let peer = peers[p].as_str();
                    let n = counter.load(Ordering::SeqCst);
                    let msg = format!("soak message {n} to {peer}");
                    let args: Vec<&str> = match next() % 8 {
                        0..=2 => vec!["send", peer, "--from", from, "--message", &msg],
                        3 => vec!["wake", peer],
                        4 => vec!["stop", peer],
                        5 => vec!["start", peer],
                        6 => vec!["mark-new", peer],
                        _ => {
                            f.crash(&format!("claude-{peer}"));
                            continue;
                        }
                    };
                    let sending = args[0] == "send";
                    let mut child = f
                        .cmd(&args)
                        .stdout(std::process::Stdio::piped())
                        .stderr(std::process::Stdio::null())
                        .spawn()
                        .unwrap();
                    if next() % 5 == 0 {
                        std::thread::sleep(Duration::from_millis(next() % 80));
                        let _ = child.kill();
                        let _ = child.wait();
                        if sending {
                            killed.lock().unwrap().push((p, msg));
                        }
                        continue;
                    }
                    let out = child.wait_with_output().unwrap();
                    let said = String::from_utf8_lossy(&out.stdout);
                    if out.status.success() && sending {
                        if said.starts_with("queued for") {
                            queued.lock().unwrap().push((p, msg));
                        } else {
                            delivered.lock().unwrap().push((p, msg));
                        }
                    }
                }
            });
        }
    });

    // Settle: un-stop everyone, let two ticks adopt or reap what is left.
    f.ok(&["start", "--all"]);
    std::thread::sleep(Duration::from_secs(11)); // past the boot deadline
    f.ok(&["supervise", "--once"]);
    f.ok(&["supervise", "--once"]);

    // Nothing runs unsupervised; nothing is recorded that does not run.
    for p in &peers {
        let id = format!("claude-{p}");
        assert_eq!(
            f.is_live(&id),
            f.state(&id, "session").exists(),
            "{id}: live and recorded must agree"
        );
    }
    let state_dir = f.root.join("state/lifecycle");
    let leftovers: Vec<String> = std::fs::read_dir(&state_dir)
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "temp files left: {leftovers:?}");
    // Every message reported delivered is in its transcript, exactly once.
    let delivered = delivered.into_inner().unwrap();
    println!("{} messages reported delivered", delivered.len());
    for (p, msg) in &delivered {
        let text = f.claude_transcript(&cwds[*p]);
        let count = text.matches(&format!("{msg}]]>")).count();
        assert_eq!(count, 1, "{msg:?} appears {count} times");
    }
    // A daemon delivers what the CLIs left queued (or half-typed when
    // killed): every accepted message once, a killed send's at most once.
    let queued = queued.into_inner().unwrap();
    println!("{} messages reported queued", queued.len());
    let d = f.start_daemon(&[]);
    let waiting = || f.ok(&["mail"]);
    let started = std::time::Instant::now();
    while !waiting().starts_with("no mail waiting") {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "mail still waiting: {}",
            waiting()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    drop(d);
    for (p, msg) in delivered.iter().chain(&queued) {
        let text = f.claude_transcript(&cwds[*p]);
        let count = text.matches(&format!("{msg}]]>")).count();
        assert_eq!(count, 1, "{msg:?} appears {count} times after the drain");
    }
    for (p, msg) in killed.into_inner().unwrap() {
        let text = f.claude_transcript(&cwds[p]);
        let count = text.matches(&format!("{msg}]]>")).count();
        // Killed before its commit: never there. Killed after: delivered
        // once, even between its paste and its Enter (the stand-in takes
        // pasted lines as they come; the next deliverer finds the message
        // id in its record instead of typing it again).
        assert!(
            count <= 1,
            "{msg:?} (its send killed) appears {count} times"
        );
    }
    // And a full stop leaves no tmux server behind.
    f.ok(&["stop", "--all"]);
    let live: Vec<String> = std::fs::read_dir(&f.socks)
        .map(|d| {
            d.filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| std::os::unix::net::UnixStream::connect(f.socks.join(n)).is_ok())
                .collect()
        })
        .unwrap_or_default();
    assert!(live.is_empty(), "tmux servers left running: {live:?}");
}
