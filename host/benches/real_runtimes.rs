//! `cargo bench -- real`: the real Claude Code and Codex CLIs against the
//! scripted model stand-in. A dead peer woken to input-ready and to its
//! message reaching the model, next to the same CLI (the same argv and
//! environment, read from the process iapeerd started) run bare in tmux
//! and judged by the same adapter call; and a real claude's MCP
//! `send_to_peer` to another real claude, from the `tool_use` sent to the
//! `tool_result` received. Skipped, and said, without the CLIs.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use iapeer::plugins::{CompileCache, PluginHost};
use serde_json::{Value, json};

use crate::common::{Fleet, output_text};
use crate::real::*;
use crate::{Block, Stats, row, stats_of};

/// Timed rounds per figure (each boots a real CLI).
const ROUNDS: usize = 7;

pub fn bench() {
    println!("## real runtimes");
    for runtime in ["claude", "codex"] {
        wake_against_bare(runtime);
    }
    mcp_round_trip();
}

/// Seconds since the epoch, the model stand-in's clock.
fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// The first request whose serialized body carries `marker`.
fn request_with(model: &Model, marker: &str) -> Option<Value> {
    requests(model)
        .into_iter()
        .find(|r| r["kind"] == "turn" && r["body"].to_string().contains(marker))
}

/// Waits (60 s at most) for the model to get a turn carrying `marker`;
/// when it arrived, seconds since the epoch.
fn arrival(model: &Model, marker: &str) -> f64 {
    let end = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(r) = request_with(model, marker) {
            return r["t"].as_f64().unwrap();
        }
        assert!(Instant::now() < end, "the model never heard {marker}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn secs(d: f64) -> Duration {
    Duration::from_secs_f64(d.max(0.0))
}

fn ratio(a: &Stats, floor: &Stats) -> String {
    format!(
        "{:.2}×",
        a.median.as_secs_f64() / floor.median.as_secs_f64()
    )
}

/// The runtime's command line and environment as iapeerd started it.
struct Launched {
    argv: Vec<String>,
    env: Vec<String>,
    cwd: PathBuf,
}

fn launched(f: &Fleet, id: &str) -> Launched {
    let pid = runtime_pid(f, id).expect("the runtime's pid");
    let split = |file: &str| -> Vec<String> {
        std::fs::read(format!("/proc/{pid}/{file}"))
            .unwrap()
            .split(|b| *b == 0)
            .filter(|s| !s.is_empty())
            .map(|s| String::from_utf8_lossy(s).into_owned())
            .collect()
    };
    Launched {
        argv: split("cmdline"),
        env: split("environ"),
        cwd: std::fs::read_link(format!("/proc/{pid}/cwd")).unwrap(),
    }
}

/// The same CLI run bare: a tmux server of its own, the same size, argv
/// and environment; the time until `ready(pane)`.
fn bare_boot(l: &Launched, sock: &Path, ready: &dyn Fn(&str) -> bool) -> Duration {
    let _ = std::fs::remove_file(sock);
    let t = Instant::now();
    let ok = Command::new("tmux")
        .args(["-f", "/dev/null", "-S"])
        .arg(sock)
        .args([
            "new-session",
            "-d",
            "-s",
            "x",
            "-x",
            "220",
            "-y",
            "50",
            "--",
            "env",
            "-i",
        ])
        .args(&l.env)
        .args(&l.argv)
        .current_dir(&l.cwd)
        .status()
        .unwrap()
        .success();
    assert!(ok);
    let end = Instant::now() + Duration::from_secs(60);
    while !ready(&capture(sock)) {
        assert!(Instant::now() < end, "bare never ready:\n{}", capture(sock));
        std::thread::sleep(Duration::from_millis(5));
    }
    t.elapsed()
}

fn capture(sock: &Path) -> String {
    let out = Command::new("tmux")
        .arg("-S")
        .arg(sock)
        .args(["capture-pane", "-p", "-t", "x"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn tmux(sock: &Path, args: &[&str]) {
    let _ = Command::new("tmux").arg("-S").arg(sock).args(args).status();
}

fn wake(f: &Fleet, args: &[&str]) {
    let out = f.run(args);
    assert!(out.status.success(), "{args:?}: {}", output_text(&out));
}

/// A dead `runtime` peer to input-ready and to its message at the model,
/// iapeerd against the same CLI bare, rounds interleaved.
fn wake_against_bare(runtime: &str) {
    let codex = runtime == "codex";
    let Some((model, mut f)) = real_fleet(runtime) else {
        println!(
            "{runtime}: SKIPPED (the real CLI is not installed; tests/interop/install-clis.sh)"
        );
        return;
    };
    // Every round kills the session behind iapeer's back.
    f.set_env("IAPEER_CRASHLOOP_MAX", "0");
    let id = format!("{runtime}-bob");
    // A first conversation (it answers the folder's dialogs once), then a
    // resuming boot whose command line the bare runs repeat.
    boot(&f, &model, runtime);
    f.crash(&id);
    wake(&f, &["wake", "bob"]);
    settle(&f, &id);
    assert!(
        idle(&f, &id),
        "the resumed {runtime} is not idle:\n{}",
        f.pane(&id)
    );
    let l = launched(&f, &id);
    f.crash(&id);
    let plugins = PluginHost::load(&crate::options(&f.home, CompileCache::disabled()))
        .block()
        .unwrap();
    let adapter = plugins.adapter(runtime).unwrap().clone();
    let ready = move |pane: &str| adapter.is_input_ready(pane).block().unwrap_or(false);
    let sock = f.dir.path().join("bare.sock");

    let (mut ours, mut bare, mut ours_msg, mut bare_msg) = (vec![], vec![], vec![], vec![]);
    for i in 0..ROUNDS {
        let t = Instant::now();
        wake(&f, &["wake", "bob"]);
        ours.push(t.elapsed());
        settle(&f, &id);
        f.crash(&id);

        bare.push(bare_boot(&l, &sock, &ready));
        tmux(&sock, &["kill-server"]);

        let marker = format!("rw{i}ours");
        let t = now();
        wake(&f, &["wake", "bob", "--message", &marker]);
        ours_msg.push(secs(arrival(&model, &marker) - t));
        settle(&f, &id);
        f.crash(&id);

        let marker = format!("rw{i}bare");
        let t = now();
        bare_boot(&l, &sock, &ready);
        // What a script would do: a bracketed paste, Enter once it shows.
        tmux(&sock, &["set-buffer", "-b", "m", &marker]);
        tmux(&sock, &["paste-buffer", "-p", "-d", "-b", "m", "-t", "x"]);
        let end = Instant::now() + Duration::from_secs(10);
        while !capture(&sock).contains(&marker) && Instant::now() < end {
            std::thread::sleep(Duration::from_millis(5));
        }
        tmux(&sock, &["send-keys", "-t", "x", "Enter"]);
        bare_msg.push(secs(arrival(&model, &marker) - t));
        std::thread::sleep(Duration::from_millis(500));
        tmux(&sock, &["kill-server"]);
    }
    let (ours, bare) = (stats_of(ours), stats_of(bare));
    let (ours_msg, bare_msg) = (stats_of(ours_msg), stats_of(bare_msg));
    let bin = if codex { real_codex() } else { real_claude() };
    let version = cli_version(&bin.unwrap());
    println!("{runtime}: {version}");
    row(
        &format!("{runtime} bare in tmux → input-ready (the floor)"),
        &bare,
    );
    row(
        &format!("`iapeer wake`, dead {runtime} peer → input-ready"),
        &ours,
    );
    println!("  ratio {}", ratio(&ours, &bare));
    row(
        &format!("{runtime} bare in tmux, typed → message at the model"),
        &bare_msg,
    );
    row(
        &format!("`iapeer wake --message`, dead {runtime} → message at the model"),
        &ours_msg,
    );
    println!("  ratio {}", ratio(&ours_msg, &bare_msg));
}

/// A real claude (bob) calls `send_to_peer` for a real claude (alice),
/// live and asleep: from the model's `tool_use` (its answer all sent) to
/// the `tool_result` request, and to alice's model hearing the message.
fn mcp_round_trip() {
    let model = Model::start(false);
    let Some(mut f) = claude_fleet(&model) else {
        println!("mcp: SKIPPED (the real claude is not installed)");
        return;
    };
    f.set_env("IAPEER_CRASHLOOP_MAX", "0");
    let _daemon = f.start_daemon(&[]);
    f.sender();
    f.register("bob", "claude", &[]);
    f.register("alice", "claude", &[]);
    for peer in ["bob", "alice"] {
        wake(&f, &["mcp-config", "claude", peer, "--write"]);
    }
    boot(&f, &model, "claude");
    wake(&f, &["wake", "alice"]);
    settle(&f, "claude-alice");
    for asleep in [false, true] {
        let (mut results, mut heard) = (vec![], vec![]);
        for i in 0..=ROUNDS {
            if asleep {
                f.crash("claude-alice");
            }
            let ask = format!("mcp{i}ask{asleep}");
            let note = format!("mcp{i}note{asleep}");
            model.script(json!([
                {"when": ask, "tool_use": {"name": "mcp__iapeer__send_to_peer",
                    "input": {"personality": "alice", "message": note}}},
                {"when": "delivered_to", "reply": "sent"},
            ]));
            let (sent, out) = send(&f, &ask);
            assert!(sent, "{out}");
            let sent_at = wait_for(|| request_with(&model, &ask).and_then(|r| r["done"].as_f64()));
            // Bob's next turn after the one answered with the tool_use
            // carries its result (alice's turns never carry the ask).
            let result_at = wait_for(|| {
                requests(&model)
                    .into_iter()
                    .filter(|r| r["kind"] == "turn" && r["body"].to_string().contains(&ask))
                    .nth(1)
                    .and_then(|r| r["t"].as_f64())
            });
            // Bob's later turns carry the note too (in his tool_use).
            let heard_at = wait_for(|| {
                requests(&model)
                    .into_iter()
                    .find(|r| {
                        let b = r["body"].to_string();
                        r["kind"] == "turn" && b.contains(&note) && !b.contains(&ask)
                    })
                    .and_then(|r| r["t"].as_f64())
            });
            settle(&f, "claude-bob");
            settle(&f, "claude-alice");
            // The first round warms up (the MCP connection, the daemon).
            if i > 0 {
                results.push(secs(result_at - sent_at));
                heard.push(secs(heard_at - sent_at));
            }
        }
        let alice = if asleep { "asleep (woken)" } else { "live" };
        row(
            &format!("MCP send_to_peer, alice {alice}: tool_use → tool_result"),
            &stats_of(results),
        );
        row(
            &format!("MCP send_to_peer, alice {alice}: tool_use → at alice's model"),
            &stats_of(heard),
        );
    }
}

fn wait_for(mut f: impl FnMut() -> Option<f64>) -> f64 {
    let end = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < end, "timed out");
        std::thread::sleep(Duration::from_millis(5));
    }
}
