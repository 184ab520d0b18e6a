//! The benchmark command: `cargo bench` (all groups) or
//! `cargo bench -- plugins`. Figures go to stdout as a table; the recorded
//! numbers and how they were taken are in BENCHMARKS.md.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use std::collections::BTreeMap;
use std::sync::Arc;

use iapeer::clock::SystemClock;
use iapeer::config::{Config, Overrides};
use iapeer::lifecycle::{Lifecycle, SuperviseAction, WakeArgs};
use iapeer::names::Identity;
use iapeer::plugins::{CallBudgets, CompileCache, LaunchSpec, PluginHost, PluginOptions};
use iapeer::store::{self, SessionState};

#[path = "../../tests/common/browser.rs"]
mod browser;
#[path = "../../tests/common/mod.rs"]
mod common;
#[path = "../../tests/common/nats.rs"]
mod nats;
#[path = "../../tests/common/real.rs"]
mod real;
mod real_runtimes;

use common::Block;

struct Stats {
    n: usize,
    min: Duration,
    median: Duration,
    p99: Duration,
}

fn measure(n: usize, mut f: impl FnMut()) -> Stats {
    // One untimed round warms caches and lazily created state.
    f();
    let mut samples: Vec<Duration> = (0..n)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .collect();
    samples.sort();
    Stats {
        n,
        min: samples[0],
        median: samples[n / 2],
        p99: samples[(n * 99 / 100).min(n - 1)],
    }
}

/// [`measure`], with `setup` run untimed before each timed `f`.
fn measure_after(n: usize, mut setup: impl FnMut(), mut f: impl FnMut()) -> Stats {
    setup();
    f();
    let samples = (0..n)
        .map(|_| {
            setup();
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .collect();
    stats_of(samples)
}

fn fmt(d: Duration) -> String {
    let us = d.as_secs_f64() * 1e6;
    if us >= 10_000.0 {
        format!("{:.1} ms", us / 1000.0)
    } else if us >= 100.0 {
        format!("{us:.0} µs")
    } else {
        format!("{us:.2} µs")
    }
}

fn row(name: &str, s: &Stats) {
    println!(
        "{name:<58} n={:<6} min {:>10}  median {:>10}  p99 {:>10}",
        s.n,
        fmt(s.min),
        fmt(s.median),
        fmt(s.p99)
    );
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn options(home: &Path, cache: CompileCache) -> PluginOptions {
    PluginOptions {
        home: home.to_path_buf(),
        plugin_dirs: vec![],
        builtins: true,
        cache,
        budgets: CallBudgets::default(),
        caps: iapeer::plugins::LimitCaps::default(),
        grants: None,
    }
}

/// The native equivalent of the claude adapter's activity scan.
fn native_newest_jsonl(dir: &Path) -> Option<u64> {
    let mut newest = None;
    for entry in std::fs::read_dir(dir).ok()? {
        let Ok(entry) = entry else { continue };
        if !entry.file_name().to_string_lossy().ends_with(".jsonl") {
            continue;
        }
        let Ok(meta) = entry.metadata() else { continue };
        let ms = meta
            .modified()
            .ok()?
            .duration_since(UNIX_EPOCH)
            .ok()?
            .as_millis() as u64;
        newest = Some(newest.map_or(ms, |n: u64| n.max(ms)));
    }
    newest
}

fn bench_plugins() {
    println!("## plugins");
    let home = tempfile::tempdir().unwrap();
    let plugins_dist = repo_root().join("plugins-dist");

    // Cold load: compile + probe + validate, one component at a time.
    for name in ["claude", "codex", "telegram", "notifier"] {
        let file = plugins_dist.join(format!("{name}.wasm"));
        let opts = options(home.path(), CompileCache::disabled());
        let s = measure(10, || {
            PluginHost::inspect(&file, &opts).block().unwrap();
        });
        row(
            &format!("load {name}.wasm cold (compile + instantiate + info)"),
            &s,
        );
    }
    // Warm load from the compile cache.
    let cache_dir = home.path().join("cache");
    let cache = CompileCache::new(Some(&cache_dir));
    PluginHost::load(&options(home.path(), cache.clone()))
        .block()
        .unwrap();
    for name in ["claude", "codex"] {
        let file = plugins_dist.join(format!("{name}.wasm"));
        let opts = options(home.path(), cache.clone());
        let s = measure(200, || {
            PluginHost::inspect(&file, &opts).block().unwrap();
        });
        row(
            &format!("load {name}.wasm from cache (mmap + instantiate + info)"),
            &s,
        );
    }
    let s = measure(50, || {
        PluginHost::load(&options(home.path(), cache.clone()))
            .block()
            .unwrap();
    });
    row("PluginHost::load, 4 built-ins, warm cache", &s);
    // The adapter written in Python (~18 MB, CPython inside), when built
    // (adapters/python-gemini/build.sh; IAPEER_PYTHON_ADAPTER or its default
    // output): cold is what `plugins install` pays once, warm every start.
    let python = std::env::var_os("IAPEER_PYTHON_ADAPTER")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target/python-gemini/gemini.wasm"));
    if python.is_file() {
        let opts = options(home.path(), CompileCache::disabled());
        row(
            "load the Python gemini adapter cold (compile + instantiate + info)",
            &measure(3, || {
                PluginHost::inspect(&python, &opts).block().unwrap();
            }),
        );
        let opts = options(home.path(), cache.clone());
        let report = PluginHost::inspect(&python, &opts).block().unwrap();
        row(
            "load the Python gemini adapter from cache",
            &measure(20, || {
                PluginHost::inspect(&python, &opts).block().unwrap();
            }),
        );
        let dir = home.path().join("py");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::copy(&python, dir.join("gemini.wasm")).unwrap();
        let mut py_opts = options(home.path(), cache.clone());
        py_opts.builtins = false;
        py_opts.plugin_dirs = vec![dir.clone()];
        let grants = home.path().join("py-grants.json");
        iapeer::plugins::Grants::add(
            &grants,
            iapeer::plugins::Grant {
                sha256: report.sha256.clone(),
                runtime: "gemini".into(),
                file: dir.join("gemini.wasm").display().to_string(),
                read_dirs: report.read_dirs.clone(),
                cwd_read_paths: Vec::new(),
                granted_at: "bench".into(),
            },
        )
        .unwrap();
        py_opts.grants = Some(grants);
        let host = PluginHost::load(&py_opts).block().unwrap();
        if let Some(g) = host.adapter("gemini") {
            row(
                "Python gemini: is-input-ready (warm instance)",
                &measure(200, || {
                    g.is_input_ready("> Type your message").block().unwrap();
                }),
            );
        }
    } else {
        println!("(the Python adapter is not built: adapters/python-gemini/build.sh)");
    }
    // What an operator types: the whole `iapeer plugins list` process
    // (built-ins plus the example in the plugin dir, granted, warm cache).
    let root = home.path().join("root");
    std::fs::create_dir_all(root.join("plugins")).unwrap();
    std::fs::copy(
        plugins_dist.join("examples/gemini.wasm"),
        root.join("plugins/gemini.wasm"),
    )
    .unwrap();
    let cli = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_iapeer"))
            .args(args)
            .env_clear()
            .env("HOME", home.path())
            .env("IAPEER_ROOT", &root)
            .env("IAPEER_CACHE_DIR", &cache_dir)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
    };
    cli(&["plugins", "grant", "gemini"]);
    cli(&["plugins", "list"]);
    row(
        "`iapeer plugins list` process, 5 adapters, warm cache",
        &measure(20, || cli(&["plugins", "list"])),
    );

    // Calls.
    let host = PluginHost::load(&options(home.path(), cache.clone()))
        .block()
        .unwrap();
    let claude = host.adapter("claude").unwrap();
    let codex = host.adapter("codex").unwrap();
    let spec = LaunchSpec {
        personality: "bob".into(),
        identity: "claude-bob".into(),
        cwd: "/w/proj".into(),
        binary: "/h/.local/bin/claude".into(),
        system_prompt_file: Some("/st/claude-bob.system-prompt.md".into()),
        resume: true,
        extra_args: vec!["--verbose".into()],
        ..Default::default()
    };
    let ready_pane =
        std::fs::read_to_string(repo_root().join("tests/fixtures/panes/claude-ready.txt")).unwrap();
    let dialog_pane = std::fs::read_to_string(
        repo_root().join("tests/fixtures/panes/claude-resume-summary-opt1.txt"),
    )
    .unwrap();

    let n = 20_000;
    row(
        "reused instance: info",
        &measure(n, || {
            claude.fetch_info().block().unwrap();
        }),
    );
    row(
        "reused instance: build-launch",
        &measure(n, || {
            claude.build_launch(&spec).block().unwrap();
        }),
    );
    row(
        "reused instance: boot-dialog-keys (dialog pane)",
        &measure(n, || {
            claude.boot_dialog_keys(&dialog_pane).block().unwrap();
        }),
    );
    row(
        "reused instance: is-input-ready (ready pane)",
        &measure(n, || {
            claude.is_input_ready(&ready_pane).block().unwrap();
        }),
    );
    // What a delivery asks now, before the paste and once it shows: a
    // real Claude Code 2.1.332 screen (200×50, rules around the composer).
    let real_ready = std::fs::read_to_string(
        repo_root().join("tests/fixtures/panes/real/claude-2.1.332/ready-after-one-turn.txt"),
    )
    .unwrap();
    row(
        "reused instance: is-input-ready (real 200x50 Claude pane)",
        &measure(n, || {
            claude.is_input_ready(&real_ready).block().unwrap();
        }),
    );
    row(
        "reused instance: control-keys compact",
        &measure(n, || {
            claude.control_keys("compact").block().unwrap();
        }),
    );

    // The activity scan: 20 transcripts + one other file.
    let project = home.path().join(".claude/projects/-w-proj");
    std::fs::create_dir_all(&project).unwrap();
    for i in 0..20 {
        let f = project.join(format!("session-{i:02}.jsonl"));
        std::fs::write(&f, "{}\n").unwrap();
        let t = SystemTime::now() - Duration::from_secs(100 - i);
        std::fs::File::options()
            .write(true)
            .open(&f)
            .unwrap()
            .set_modified(t)
            .unwrap();
    }
    std::fs::write(project.join("notes.txt"), "x").unwrap();
    let expected = native_newest_jsonl(&project);
    assert_eq!(
        claude.newest_activity_mtime("/w/proj").block().unwrap(),
        expected
    );
    let n = 5_000;
    let native = measure(n, || {
        native_newest_jsonl(&project).unwrap();
    });
    row("native Rust scan, 20 transcripts (std::fs)", &native);
    let reused = measure(n, || {
        claude.newest_activity_mtime("/w/proj").block().unwrap();
    });
    row(
        "reused instance: newest-activity-mtime, 20 transcripts",
        &reused,
    );
    row(
        "reused instance: resolve-resume, 20 transcripts",
        &measure(n, || {
            claude.resolve_resume("/w/proj").block().unwrap();
        }),
    );
    println!(
        "{:<58} {:.2}x native (median)",
        "  scan ratio",
        reused.median.as_secs_f64() / native.median.as_secs_f64()
    );

    // Fresh instance per call.
    let n = 2_000;
    row(
        "fresh instance + info",
        &measure(n, || {
            claude.drop_cached_instance();
            claude.fetch_info().block().unwrap();
        }),
    );
    row(
        "fresh instance + build-launch",
        &measure(n, || {
            claude.drop_cached_instance();
            claude.build_launch(&spec).block().unwrap();
        }),
    );
    row(
        "fresh instance + newest-activity-mtime, 20 transcripts",
        &measure(n, || {
            claude.drop_cached_instance();
            claude.newest_activity_mtime("/w/proj").block().unwrap();
        }),
    );

    // codex: a date-nested sessions tree, 20 sessions of which 10 match.
    let sessions = home.path().join(".codex/sessions/2026/11");
    for i in 0..20 {
        let day = sessions.join(format!("{:02}", 1 + i % 5));
        std::fs::create_dir_all(&day).unwrap();
        let cwd = if i % 2 == 0 { "/w/proj" } else { "/w/other" };
        std::fs::write(
            day.join(format!("rollout-{i}.jsonl")),
            format!("{{\"type\":\"session_meta\",\"payload\":{{\"cwd\":\"{cwd}\",\"instructions\":\"{}\"}}}}\n{{}}\n", "x".repeat(2000)),
        )
        .unwrap();
    }
    row(
        "reused instance: codex newest-activity-mtime, 20 sessions",
        &measure(2_000, || {
            codex
                .newest_activity_mtime("/w/proj")
                .block()
                .unwrap()
                .unwrap();
        }),
    );
    bench_codex_10k(codex);
}

/// codex at scale: 10 000 session files over 300 day directories (2 KB
/// first lines), 10 of them recorded for the peer's cwd.
fn bench_codex_10k(codex: &iapeer::plugins::Adapter) {
    let home = tempfile::tempdir().unwrap();
    let root = home.path().join(".codex/sessions");
    let mut n = 0;
    for d in 0..300 {
        let day = root.join(format!("2026/{:02}/{:02}", 1 + d / 28 % 12, 1 + d % 28));
        std::fs::create_dir_all(&day).unwrap();
        for _ in 0..34 {
            if n == 10_000 {
                break;
            }
            let cwd = if n % 1000 == 7 {
                "/w/big".to_string()
            } else {
                format!("/w/o{}", n % 50)
            };
            let file = day.join(format!("rollout-{n:05}.jsonl"));
            std::fs::write(
                &file,
                format!(
                    "{{\"type\":\"session_meta\",\"payload\":{{\"cwd\":\"{cwd}\",\"instructions\":\"{}\"}}}}\n",
                    "x".repeat(2000)
                ),
            )
            .unwrap();
            let when = UNIX_EPOCH + Duration::from_secs(1_700_000_000 + n);
            std::fs::File::options()
                .write(true)
                .open(&file)
                .unwrap()
                .set_modified(when)
                .unwrap();
            n += 1;
        }
    }
    let big = iapeer::plugins::PluginHost::load(&options(home.path(), CompileCache::disabled()))
        .block()
        .unwrap();
    let adapter = big.adapter("codex").unwrap();
    let _ = codex;
    let expected = Some(1_700_000_000_000 + 9_007 * 1000);
    assert_eq!(
        adapter.newest_activity_mtime("/w/big").block().unwrap(),
        expected
    );
    row(
        "codex newest-activity-mtime, 10 000 sessions (warm)",
        &measure(20, || {
            assert_eq!(
                adapter.newest_activity_mtime("/w/big").block().unwrap(),
                expected
            );
        }),
    );
    row(
        "codex newest-activity-mtime, 10 000 sessions (cold: a fresh instance reads first lines)",
        &measure(5, || {
            adapter.drop_cached_instance();
            assert_eq!(
                adapter.newest_activity_mtime("/w/big").block().unwrap(),
                expected
            );
        }),
    );
    row(
        "codex resolve-resume, 10 000 sessions, no match (warm)",
        &measure(10, || {
            adapter.resolve_resume("/w/none").block().unwrap();
        }),
    );
}

/// A throwaway iapeer world: HOME, root, sockets, the fake claude.
struct World {
    dir: tempfile::TempDir,
    lc: Lifecycle,
}

impl World {
    fn new() -> World {
        let dir = tempfile::Builder::new()
            .prefix("iapb")
            .tempdir_in("/tmp")
            .unwrap();
        let home = dir.path().join("home");
        std::fs::create_dir_all(&home).unwrap();
        let fake = repo_root().join("tests/fakes/fake-claude");
        let env: BTreeMap<String, String> = [
            ("HOME", home.to_str().unwrap()),
            ("PATH", &std::env::var("PATH").unwrap_or_default()),
            ("USER", "bench"),
            ("IAPEER_ROOT", dir.path().join("root").to_str().unwrap()),
            ("IAPEER_SOCK_DIR", dir.path().join("s").to_str().unwrap()),
            (
                "IAPEER_LAUNCHAGENTS_DIR",
                dir.path().join("la").to_str().unwrap(),
            ),
            ("IAPEER_CLAUDE_BIN", fake.to_str().unwrap()),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let cfg = Config::new(env, &Overrides::default()).unwrap();
        let plugins = PluginHost::load(&cfg.plugin_options()).block().unwrap();
        // Sessions run under the session shim, as the binaries run them.
        let lc = Lifecycle::new(cfg, Arc::new(plugins), Arc::new(SystemClock))
            .with_shim(Some(PathBuf::from(env!("CARGO_BIN_EXE_iapeer"))));
        World { dir, lc }
    }

    fn register(&self, peer: &str) -> PathBuf {
        let cwd = self.dir.path().join("w").join(peer);
        std::fs::create_dir_all(&cwd).unwrap();
        let cwd = cwd.canonicalize().unwrap();
        iapeer::registry::upsert_peer(
            &self.lc.cfg.root,
            &self.lc.cfg.registry_path(),
            &iapeer::registry::Registration {
                personality: iapeer::names::Personality::new(peer).unwrap(),
                runtime: iapeer::names::Runtime::new("claude").unwrap(),
                runtimes: vec![],
                cwd: cwd.clone(),
                intelligence: None,
                description: None,
            },
        )
        .unwrap();
        cwd
    }

    fn spawns(&self) -> usize {
        let log = self.dir.path().join("home/fake-runs.log");
        std::fs::read_to_string(log)
            .unwrap_or_default()
            .lines()
            .count()
    }
}

impl Drop for World {
    fn drop(&mut self) {
        for e in std::fs::read_dir(&self.lc.cfg.sock_dir)
            .into_iter()
            .flatten()
            .flatten()
        {
            let _ = std::process::Command::new("tmux")
                .arg("-S")
                .arg(e.path())
                .arg("kill-server")
                .output();
        }
    }
}

/// `iapeer wake bob --message <message>` as a process; panics on failure.
fn cli_wake(env: &BTreeMap<String, String>, message: &str) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_iapeer"))
        .args(["wake", "bob", "--message", message])
        .env_clear()
        .envs(env)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn wake_args(peer: &str, task: &str) -> WakeArgs {
    WakeArgs {
        topic: None,
        personality: peer.into(),
        runtime: None,
        task: task.into(),
        resume: None,
        hand_over: false,
        skip_seed: false,
    }
}

fn bench_wake() {
    println!("## wake");
    let rt = iapeer::app::runtime().unwrap();
    let world = World::new();
    world.register("bob");
    let id = Identity::parse("claude-bob").unwrap();
    let sock = world.lc.cfg.socket_path(&id);

    // Baseline: tmux itself.
    let tmux_sock = world.dir.path().join("s/bare.sock");
    std::fs::create_dir_all(tmux_sock.parent().unwrap()).unwrap();
    row(
        "bare `tmux new-session -d` (+ kill-server, untimed)",
        &measure(30, || {
            let ok = std::process::Command::new("tmux")
                .args(["-f", "/dev/null", "-S"])
                .arg(&tmux_sock)
                .args(["new-session", "-d", "-s", "x", "sleep", "60"])
                .status()
                .unwrap()
                .success();
            assert!(ok);
            let _ = std::process::Command::new("tmux")
                .arg("-S")
                .arg(&tmux_sock)
                .arg("kill-server")
                .status();
            // The dying server may still hold the path: start the next on a fresh one.
            let _ = std::fs::remove_file(&tmux_sock);
        }),
    );
    std::process::Command::new("tmux")
        .args(["-f", "/dev/null", "-S"])
        .arg(&tmux_sock)
        .args(["new-session", "-d", "-s", "x", "sleep", "600"])
        .status()
        .unwrap();
    row(
        "`tmux has-session` (one liveness check by process)",
        &measure(100, || {
            let out = std::process::Command::new("tmux")
                .arg("-S")
                .arg(&tmux_sock)
                .args(["has-session", "-t", "x"])
                .output()
                .unwrap();
            assert!(out.status.success());
        }),
    );
    row(
        "liveness by connect() to the socket (what iapeerd uses)",
        &measure(10_000, || {
            std::os::unix::net::UnixStream::connect(&tmux_sock).unwrap();
        }),
    );
    let _ = std::process::Command::new("tmux")
        .arg("-S")
        .arg(&tmux_sock)
        .arg("kill-server")
        .status();

    let kill = |world: &World| {
        rt.block_on(world.lc.kill_session(&id)).unwrap();
        let _ = store::remove_session(&world.lc.cfg, &id);
    };
    let bare = measure(30, || {
        kill(&world);
        let r = rt.block_on(world.lc.wake_or_spawn(&wake_args("bob", "")));
        assert!(r.as_ref().is_ok_and(|w| w.woke()), "{r:?}");
    });
    row("wake a dead peer, no message (READY = input ready)", &bare);
    let with_message = measure(30, || {
        kill(&world);
        let r = rt.block_on(world.lc.wake_or_spawn(&wake_args("bob", "hello")));
        assert!(
            r.as_ref()
                .is_ok_and(|w| w.woke() && w.task_delivered == Some(true)),
            "{r:?}"
        );
    });
    row(
        "wake a dead peer with a message (READY = ready gate passed)",
        &with_message,
    );
    row(
        "wake a live peer, no message (fast path)",
        &measure(200, || {
            let r = rt.block_on(world.lc.wake_or_spawn(&wake_args("bob", "")));
            assert!(r.is_ok_and(|w| !w.woke()));
        }),
    );
    assert!(sock.exists());

    // The CLI end to end: process start, plugin load from cache, wake.
    let env = world.lc.cfg.env.clone();
    row(
        "`iapeer wake` CLI process, dead peer, with a message",
        &measure(20, || {
            kill(&world);
            cli_wake(&env, "hi");
        }),
    );

    // 50 concurrent wakes of one dead peer.
    let n = 50;
    let rounds = 10;
    let mut all = Vec::new();
    let spawns_before = world.spawns();
    for _ in 0..rounds {
        kill(&world);
        let lc = &world.lc;
        let latencies: Vec<Duration> = rt.block_on(async {
            let futures = (0..n).map(|_| async {
                let t = Instant::now();
                let r = lc.wake_or_spawn(&wake_args("bob", "")).await;
                assert!(r.is_ok(), "{r:?}");
                t.elapsed()
            });
            futures_join_all(futures).await
        });
        all.extend(latencies);
    }
    assert_eq!(
        world.spawns() - spawns_before,
        rounds,
        "exactly one spawn per round"
    );
    all.sort();
    let s = Stats {
        n: all.len(),
        min: all[0],
        median: all[all.len() / 2],
        p99: all[all.len() * 99 / 100],
    };
    row(
        &format!("{n} concurrent wakes of one dead peer ({rounds} rounds, 1 spawn each)"),
        &s,
    );
    println!(
        "{:<58} p99 / single median = {:.2}x",
        "",
        s.p99.as_secs_f64() / bare.median.as_secs_f64()
    );
}

/// Runs futures concurrently on the current task (no extra dependency).
async fn futures_join_all<F: std::future::Future>(
    futures: impl Iterator<Item = F>,
) -> Vec<F::Output>
where
    F::Output: Send,
{
    let mut set = Vec::new();
    for f in futures {
        set.push(Box::pin(f));
    }
    let mut out: Vec<Option<F::Output>> = (0..set.len()).map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (i, f) in set.iter_mut().enumerate() {
            if out[i].is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => out[i] = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    out.into_iter().map(Option::unwrap).collect()
}

fn bench_supervise() {
    println!("## supervise");
    let rt = iapeer::app::runtime().unwrap();
    let world = World::new();
    let cfg = &world.lc.cfg;
    let n = 1000;
    // 1000 recorded sessions whose servers are up (a listening socket is what
    // the liveness check sees) and whose transcripts are fresh.
    std::fs::create_dir_all(&cfg.sock_dir).unwrap();
    let now = iapeer::clock::Clock::now_ms(&SystemClock);
    let mut listeners = Vec::new();
    for i in 0..n {
        let p = format!("p{i:04}");
        let id = Identity::parse(&format!("claude-{p}")).unwrap();
        let cwd = world.dir.path().join("w").join(&p);
        let slug: String = cwd
            .to_str()
            .unwrap()
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .collect();
        let tdir = cfg.home.join(".claude/projects").join(slug);
        std::fs::create_dir_all(&tdir).unwrap();
        for t in 0..3 {
            std::fs::write(tdir.join(format!("t{t}.jsonl")), "{}\n").unwrap();
        }
        store::write_session(
            cfg,
            &SessionState {
                identity: id.to_string(),
                runtime: "claude".into(),
                personality: p.clone(),
                cwd: cwd.to_string_lossy().into_owned(),
                woke_at: now,
                booting: false,
                handed_over: false,
            },
        )
        .unwrap();
        listeners.push(std::os::unix::net::UnixListener::bind(cfg.socket_path(&id)).unwrap());
    }
    let s = measure(20, || {
        let outcomes = rt.block_on(world.lc.supervise_tick());
        assert_eq!(outcomes.len(), n);
        assert!(outcomes.iter().all(|o| o.action == SuperviseAction::Alive));
    });
    row(
        &format!("supervise tick, {n} live sessions (3 transcripts each)"),
        &s,
    );
    drop(listeners);
    let mut ticks = Vec::new();
    for _ in 0..5 {
        // Dead sessions are forgotten on the first pass; re-record them,
        // each with the exit record its shim would have left.
        for i in 0..n {
            let p = format!("p{i:04}");
            let id = Identity::parse(&format!("claude-{p}")).unwrap();
            let exit = serde_json::json!({
                "at": now + 1,
                "program": "claude",
                "status": 1,
                "tail": "Error: something went wrong ".repeat(20),
            });
            std::fs::write(cfg.state_file(&id, "exit"), exit.to_string()).unwrap();
            store::write_session(
                cfg,
                &SessionState {
                    identity: format!("claude-{p}"),
                    runtime: "claude".into(),
                    personality: p,
                    cwd: "/nonexistent".into(),
                    woke_at: now,
                    booting: false,
                    handed_over: false,
                },
            )
            .unwrap();
        }
        let t = Instant::now();
        let outcomes = rt.block_on(world.lc.supervise_tick());
        ticks.push(t.elapsed());
        assert!(
            outcomes
                .iter()
                .all(|o| o.action == SuperviseAction::ReapedGone)
        );
    }
    ticks.sort();
    row(
        &format!("supervise tick, {n} dead sessions (all reaped)"),
        &Stats {
            n: ticks.len(),
            min: ticks[0],
            median: ticks[2],
            p99: ticks[4],
        },
    );
}

fn main() {
    let groups: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let wants = |g: &str| groups.is_empty() || groups.iter().any(|x| x == g);
    if std::env::var_os("RUST_BACKTRACE").is_some() {
        eprintln!(
            "note: RUST_BACKTRACE is set; error paths capture backtraces (unset it for figures)"
        );
    }
    if wants("plugins") {
        bench_plugins();
    }
    if wants("wake") {
        bench_wake();
    }
    if wants("supervise") {
        bench_supervise();
    }
    if wants("daemon") {
        bench_daemon();
    }
    if wants("panel") {
        bench_panel();
    }
    if wants("fleet") {
        bench_fleet();
    }
    if wants("dashboard") {
        bench_dashboard();
    }
    if wants("real") {
        real_runtimes::bench();
    }
}

// ---- the operator's terminal panel -------------------------------------------

/// `iapeer list` on a terminal with 200 registered peers (400 runtimes):
/// from spawning the process in a tmux pane to the first frame that shows
/// the fleet (capture-pane polled every 2 ms, which the time includes).
fn bench_panel() {
    println!("## panel");
    let home = tempfile::Builder::new()
        .prefix("ibp")
        .tempdir_in("/tmp")
        .unwrap();
    let root = home.path().join("root");
    let socks = home.path().join("s");
    let cwd = home.path().join("w");
    std::fs::create_dir_all(&cwd).unwrap();
    write_fleet_registry(&root, &cwd, 200);
    let outer = home.path().join("outer");
    let tmux = |args: &[&str]| {
        std::process::Command::new("tmux")
            .args(["-f", "/dev/null", "-S"])
            .arg(&outer)
            .args(args)
            .output()
            .unwrap()
    };
    let env = [
        format!("HOME={}", home.path().display()),
        format!("IAPEER_ROOT={}", root.display()),
        format!("IAPEER_SOCK_DIR={}", socks.display()),
        format!("IAPEER_CACHE_DIR={}", home.path().join("cache").display()),
        "TERM=xterm-256color".to_string(),
    ];
    let exe = env!("CARGO_BIN_EXE_iapeer");
    // `iapeer list` in a new 120×40 session `name`, with the fleet's env.
    let panel_argv = |name: &str| -> Vec<String> {
        let mut argv: Vec<String> = ["new-session", "-d", "-s", name, "-x", "120", "-y", "40"]
            .iter()
            .chain(&["--", "env", "-i"])
            .map(|s| s.to_string())
            .collect();
        argv.extend(env.iter().cloned());
        argv.extend([exe.to_string(), "list".to_string()]);
        argv
    };
    let first_frame = |name: &str| {
        let argv = panel_argv(name);
        let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
        let started = Instant::now();
        let out = tmux(&argv);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        loop {
            let out = tmux(&["capture-pane", "-p", "-t", name]);
            if String::from_utf8_lossy(&out.stdout).contains("400 runtimes") {
                break;
            }
            assert!(started.elapsed() < Duration::from_secs(30), "no frame");
            std::thread::sleep(Duration::from_millis(2));
        }
        let took = started.elapsed();
        tmux(&["kill-session", "-t", name]);
        took
    };
    // One server for every run (a session that stays keeps it up), and a
    // warm compile cache.
    assert!(
        tmux(&["new-session", "-d", "-s", "keep", "sleep", "600"])
            .status
            .success()
    );
    first_frame("warm");
    // What tmux itself costs: spawning a session and seeing its output.
    let mut j = 0;
    row(
        "tmux alone: spawn a session that prints, see it on capture",
        &measure(10, || {
            j += 1;
            let name = format!("t{j}");
            let started = Instant::now();
            tmux(&[
                "new-session",
                "-d",
                "-s",
                &name,
                "--",
                "sh",
                "-c",
                "echo 400 runtimes; sleep 5",
            ]);
            while !String::from_utf8_lossy(&tmux(&["capture-pane", "-p", "-t", &name]).stdout)
                .contains("400 runtimes")
            {
                assert!(started.elapsed() < Duration::from_secs(10));
                std::thread::sleep(Duration::from_millis(2));
            }
            tmux(&["kill-session", "-t", &name]);
        }),
    );
    let mut i = 0;
    row(
        "`iapeer list` panel: spawn to first frame, 200 peers (400 runtimes)",
        &measure(10, || {
            i += 1;
            first_frame(&format!("p{i}"));
        }),
    );

    // With a daemon up, the panel follows its event stream: a peer stopped
    // from outside (curl on the socket), from the call's return to its row
    // showing it.
    let mut daemon_env: BTreeMap<String, String> = env
        .iter()
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    daemon_env.insert("PATH".into(), std::env::var("PATH").unwrap_or_default());
    let (_daemon, sock, _) = start_daemon(&daemon_env, &root);
    let argv = panel_argv("live");
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    assert!(tmux(&argv).status.success());
    let screen = || {
        String::from_utf8_lossy(&tmux(&["capture-pane", "-p", "-t", "live"]).stdout).into_owned()
    };
    let started = Instant::now();
    while !screen().contains("400 runtimes") {
        assert!(started.elapsed() < Duration::from_secs(30), "no frame");
        std::thread::sleep(Duration::from_millis(5));
    }
    std::thread::sleep(Duration::from_millis(500)); // the stream connects
    let mut to_screen = Vec::new();
    for i in 0..11 {
        stop_claude_of(&sock, &format!("p{i}"));
        let t = Instant::now();
        let peer = format!("p{i}");
        while !screen().lines().any(|l| {
            let words: Vec<&str> = l.split_whitespace().collect();
            words.contains(&peer.as_str())
                && words.contains(&"claude")
                && words.contains(&"stopped")
        }) {
            assert!(
                t.elapsed() < Duration::from_secs(10),
                "{peer} never showed stopped"
            );
            std::thread::sleep(Duration::from_millis(2));
        }
        if i > 0 {
            to_screen.push(t.elapsed());
        }
    }
    row(
        "panel: stop from outside returns -> row shows stopped (daemon up)",
        &stats_of(to_screen),
    );
    tmux(&["kill-server"]);
}

// ---- the daemon's front door ------------------------------------------------

/// A keep-alive HTTP/1.1 connection to the daemon, as an MCP client holds one.
struct McpConn {
    sender: hyper::client::conn::http1::SendRequest<http_body_util::Full<hyper::body::Bytes>>,
}

impl McpConn {
    async fn unix(path: &Path) -> McpConn {
        let s = tokio::net::UnixStream::connect(path).await.unwrap();
        McpConn::over(s).await
    }

    async fn tcp(addr: &str) -> McpConn {
        let s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.set_nodelay(true).unwrap();
        McpConn::over(s).await
    }

    async fn over<S>(stream: S) -> McpConn
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let (sender, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                .await
                .unwrap();
        tokio::spawn(conn);
        McpConn { sender }
    }

    /// `tools/call send_to_peer`; panics unless it was delivered.
    async fn send(&mut self, from: &str, to: &str, message: &str) -> serde_json::Value {
        self.send_waiting(from, to, message, None).await
    }

    /// A send whose answer waits at most `wait_secs` for the delivery.
    async fn send_waiting(
        &mut self,
        from: &str,
        to: &str,
        message: &str,
        wait_secs: Option<u32>,
    ) -> serde_json::Value {
        use http_body_util::BodyExt;
        let mut arguments = serde_json::json!({"personality": to, "message": message});
        if let Some(w) = wait_secs {
            arguments["wait_secs"] = w.into();
        }
        let body = serde_json::json!({
            "jsonrpc": "2.0", "id": 1, "method": "tools/call",
            "params": {"name": "send_to_peer", "arguments": arguments}
        });
        let req = hyper::Request::post("/mcp")
            .header("host", "localhost")
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .header("x-iapeer-identity", from)
            .body(http_body_util::Full::new(hyper::body::Bytes::from(
                body.to_string(),
            )))
            .unwrap();
        self.sender.ready().await.unwrap();
        let res = self.sender.send_request(req).await.unwrap();
        let bytes = res.into_body().collect().await.unwrap().to_bytes();
        let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(v["result"]["isError"], false, "{v}");
        v["result"]["structuredContent"].clone()
    }
}

/// One round of the throughput load: 20 senders, each on its own
/// connection, each sending to every peer in turn (`wait_secs` as given).
fn every_sender_to_every_peer(
    rt: &tokio::runtime::Runtime,
    sock: &Path,
    peers: &[String],
    wait_secs: Option<u32>,
) {
    rt.block_on(async {
        let mut tasks = Vec::new();
        for s in 0..20 {
            let sock = sock.to_path_buf();
            let peers = peers.to_vec();
            tasks.push(tokio::spawn(async move {
                let mut conn = McpConn::unix(&sock).await;
                for k in 0..peers.len() {
                    let to = &peers[(s + k) % peers.len()];
                    conn.send_waiting("claude-alice", to, &format!("from sender {s}"), wait_secs)
                        .await;
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
    });
}

fn rss_and_private_dirty_kb(pid: u32) -> (u64, u64) {
    let field = |text: &str, key: &str| -> u64 {
        text.lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let rollup = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).unwrap_or_default();
    (field(&status, "VmRSS:"), field(&rollup, "Private_Dirty:"))
}

/// Kills the daemon however the bench ends (a failed assertion too).
struct DaemonProcess(std::process::Child);

impl Drop for DaemonProcess {
    fn drop(&mut self) {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        let _ = self.0.wait();
    }
}

/// `iapeerd --port 0` on this environment; its socket and `host:port`.
fn start_daemon(env: &BTreeMap<String, String>, root: &Path) -> (DaemonProcess, PathBuf, String) {
    let daemon = std::process::Command::new(env!("CARGO_BIN_EXE_iapeerd"))
        .args(["--port", "0", "--tick-secs", "3600"])
        .env_clear()
        .envs(env)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let daemon = DaemonProcess(daemon);
    let router_json = root.join("state/iapeer/router.json");
    let started = Instant::now();
    while !router_json.exists() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "iapeerd did not start"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let d: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&router_json).unwrap()).unwrap();
    let sock = PathBuf::from(d["sock"].as_str().unwrap());
    let tcp = d["tcp"]
        .as_str()
        .unwrap()
        .trim_start_matches("http://")
        .trim_end_matches("/mcp")
        .to_string();
    (daemon, sock, tcp)
}

/// A registry of `n` peers (`p0`…), each declaring claude and codex.
fn write_fleet_registry(root: &Path, cwd: &Path, n: usize) {
    let peers: Vec<String> = (0..n)
        .map(|i| {
            format!(
                r#"{{"personality":"p{i}","default_runtime":"claude","runtimes":["claude","codex"],"cwd":"{}"}}"#,
                cwd.display()
            )
        })
        .collect();
    std::fs::create_dir_all(root).unwrap();
    std::fs::write(
        root.join("peers-profiles.json"),
        format!(r#"{{"version":2,"peers":[{}]}}"#, peers.join(",")),
    )
    .unwrap();
}

fn bench_daemon() {
    println!("## daemon (front door)");
    {
        // What accepting a message costs: one SQLite transaction, on disk
        // (WAL, synchronous=FULL) before the answer.
        let dir = tempfile::tempdir_in("/tmp").unwrap();
        let mb = iapeer::mail::Mailbox::open(&dir.path().join("mail.db")).unwrap();
        let envelope = "x".repeat(400);
        let mut n = 0u64;
        row(
            "mailbox commit of one message (400-byte envelope)",
            &measure(1000, || {
                n += 1;
                mb.commit(
                    &iapeer::mail::NewMessage {
                        personality: "bob",
                        runtime: None,
                        sender: "claude-alice",
                        door: "mcp",
                        topic: None,
                        envelope: &|_| envelope.clone(),
                        ttl: Duration::from_secs(60),
                    },
                    n,
                )
                .unwrap();
            }),
        );
    }
    let rt = iapeer::app::runtime().unwrap();
    let world = World::new();
    world.register("alice");
    world.register("bob");
    let peers: Vec<String> = (0..20).map(|i| format!("p{i:02}")).collect();
    for p in &peers {
        world.register(p);
    }
    let env = world.lc.cfg.env.clone();
    let root = world.lc.cfg.root.clone();
    let (daemon, sock, tcp) = start_daemon(&env, &root);
    std::thread::sleep(Duration::from_secs(1));
    let (rss, dirty) = rss_and_private_dirty_kb(daemon.0.id());
    println!(
        "{:<58} RSS {:.1} MB, private dirty {:.1} MB",
        "daemon idle (listeners up, 4 adapters loaded)",
        rss as f64 / 1024.0,
        dirty as f64 / 1024.0
    );

    // Live round trip: bob is up; each call pastes into his session and
    // waits until his transcript moves.
    let id = Identity::parse("claude-bob").unwrap();
    rt.block_on(world.lc.wake_or_spawn(&wake_args("bob", "")))
        .unwrap();
    let mut unix_conn = rt.block_on(McpConn::unix(&sock));
    row(
        "send_to_peer round trip, live peer, Unix socket",
        &measure(200, || {
            let r = rt.block_on(unix_conn.send("claude-alice", "bob", "ping"));
            assert_eq!(r["woke"], false);
        }),
    );
    let mut tcp_conn = rt.block_on(McpConn::tcp(&tcp));
    row(
        "send_to_peer round trip, live peer, loopback TCP",
        &measure(200, || {
            let r = rt.block_on(tcp_conn.send("claude-alice", "bob", "ping"));
            assert_eq!(r["woke"], false);
        }),
    );

    // Wake on a miss through MCP against the CLI's wake, both with a message
    // and both from a dead session.
    let kill = || {
        rt.block_on(world.lc.kill_session(&id)).unwrap();
        let _ = store::remove_session(&world.lc.cfg, &id);
    };
    // The server closes a keep-alive connection idle for 10 s: reconnect.
    let mut unix = rt.block_on(McpConn::unix(&sock));
    let mcp_wake = measure(20, || {
        kill();
        let r = rt.block_on(unix.send("claude-alice", "bob", "wake up"));
        assert_eq!(r["woke"], true);
    });
    row(
        "send_to_peer to a sleeping peer (wake on miss, MCP)",
        &mcp_wake,
    );
    let cli = measure(20, || {
        kill();
        cli_wake(&env, "wake up");
    });
    row("`iapeer wake --message` CLI, sleeping peer", &cli);
    println!(
        "{:<58} MCP wake-on-miss / CLI wake (medians) = {:.2}x",
        "",
        mcp_wake.median.as_secs_f64() / cli.median.as_secs_f64()
    );

    // Mid-turn: a message sent while the peer works goes in when its turn
    // ends. The stand-in works 1 s after each message (FAKE_TURN_SECS) and
    // logs when its turn ends (its pane shows the idle composer again);
    // from then to the mailbox saying delivered.
    {
        let held = world.register("held");
        let env_dir = held.join(".iapeer/runtimes/claude");
        std::fs::create_dir_all(&env_dir).unwrap();
        std::fs::write(env_dir.join("launch.env"), "FAKE_TURN_SECS=1\n").unwrap();
        rt.block_on(world.lc.wake_or_spawn(&wake_args("held", "")))
            .unwrap();
        let turns = world.dir.path().join("home/fake-turns.log");
        let ends = || -> Vec<u64> {
            std::fs::read_to_string(&turns)
                .unwrap_or_default()
                .lines()
                .filter_map(|l| l.strip_prefix("end ")?.trim().parse().ok())
                .collect()
        };
        let mailbox = iapeer::mail::Mailbox::open(&world.lc.cfg.mail_path()).unwrap();
        let mut conn = rt.block_on(McpConn::unix(&sock));
        let mut after_end = Vec::new();
        for i in 0..10 {
            let ended = ends().len();
            let r = rt.block_on(conn.send_waiting(
                "claude-alice",
                "held",
                &format!("work {i}"),
                Some(5),
            ));
            assert!(r["delivered_to"].is_object(), "{r}");
            std::thread::sleep(Duration::from_millis(200));
            let r = rt.block_on(conn.send_waiting(
                "claude-alice",
                "held",
                &format!("mid {i}"),
                Some(0),
            ));
            assert_eq!(r["queued"], true, "sent mid-turn: {r}");
            let id = iapeer::mail::MessageId::parse(r["id"].as_str().unwrap()).unwrap();
            let done = loop {
                let m = mailbox.get(&id).unwrap().unwrap();
                if let Some(done) = m.done_ms.filter(|_| !m.state.is_waiting()) {
                    break done;
                }
                std::thread::sleep(Duration::from_millis(5));
            };
            let end = ends()[ended];
            after_end.push(Duration::from_millis(done.saturating_sub(end)));
            // Its own turn ends before the next round.
            while ends().len() < ended + 2 {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        row(
            "mid-turn message: turn end -> delivered (daemon, 10 turns)",
            &stats_of(after_end),
        );
    }

    // Throughput: 20 senders, 20 live peers; every sender messages every
    // peer (400 deliveries), on its own connection.
    for p in &peers {
        rt.block_on(world.lc.wake_or_spawn(&wake_args(p, "")))
            .unwrap();
    }
    let rounds = 3;
    let mut rates = Vec::new();
    for _ in 0..rounds {
        let t = Instant::now();
        every_sender_to_every_peer(rt, &sock, &peers, None);
        let n = 20 * peers.len();
        rates.push(n as f64 / t.elapsed().as_secs_f64());
    }
    rates.sort_by(f64::total_cmp);
    println!(
        "{:<58} {} deliveries per round: median {:.0}/s (min {:.0}/s, max {:.0}/s)",
        "20 senders x 20 live peers, every sender to every peer",
        20 * peers.len(),
        rates[rounds / 2],
        rates[0],
        rates[rounds - 1]
    );
    // The same load, each send answered as soon as its message is in the
    // mailbox (wait_secs 0); the daemon delivers in batches. Accepted/s,
    // and all delivered/s (until no mail waits).
    let mailbox = iapeer::mail::Mailbox::open(&world.lc.cfg.mail_path()).unwrap();
    let mut accepted = Vec::new();
    let mut delivered = Vec::new();
    for _ in 0..rounds {
        let t = Instant::now();
        every_sender_to_every_peer(rt, &sock, &peers, Some(0));
        accepted.push(400.0 / t.elapsed().as_secs_f64());
        while !mailbox.depths().unwrap().is_empty() {
            std::thread::sleep(Duration::from_millis(5));
        }
        delivered.push(400.0 / t.elapsed().as_secs_f64());
    }
    accepted.sort_by(f64::total_cmp);
    delivered.sort_by(f64::total_cmp);
    println!(
        "{:<58} accepted: median {:.0}/s; all delivered: median {:.0}/s (min {:.0}/s)",
        "20 x 20 again, answered on commit (wait_secs 0)",
        accepted[rounds / 2],
        delivered[rounds / 2],
        delivered[0]
    );
    let (rss, dirty) = rss_and_private_dirty_kb(daemon.0.id());
    println!(
        "{:<58} RSS {:.1} MB, private dirty {:.1} MB",
        "daemon after the load",
        rss as f64 / 1024.0,
        dirty as f64 / 1024.0
    );
    drop(daemon);
}

// ---- the browser dashboard ---------------------------------------------------

/// The dashboard in headless Chromium against a daemon with 200 peers (400
/// runtimes): navigation to the first painted fleet table, and a state
/// change from its event in the log to the screen.
fn bench_dashboard() {
    println!("## dashboard");
    let repo = repo_root();
    let python = match browser::driver_python(&repo) {
        Ok(p) => p,
        Err(why) => {
            println!("skipped: {why} (.ci/run installs chromium, chromium-driver and Selenium)");
            return;
        }
    };
    let world = World::new();
    let cwd = world.dir.path().join("w");
    std::fs::create_dir_all(&cwd).unwrap();
    let root = world.lc.cfg.root.clone();
    write_fleet_registry(&root, &cwd, 200);
    let (_daemon, sock, tcp) = start_daemon(&world.lc.cfg.env, &root);
    let shots = repo.join("target/test-artifacts/dashboard/bench");
    let mut b = browser::Browser::open(&python, &repo, &format!("http://{tcp}/"), &shots);
    let ms = |v: &serde_json::Value| Duration::from_secs_f64(v.as_f64().unwrap() / 1000.0);
    let mut paints = Vec::new();
    for i in 0..11 {
        let loaded = b.cmd(serde_json::json!({"op": "load"}));
        assert_eq!(loaded["rows"], 400, "{loaded}");
        if i > 0 {
            paints.push(ms(&loaded["first_fleet_ms"]));
        }
    }
    b.cmd(serde_json::json!({"op": "screenshot", "name": "200-peers"}));
    row(
        "dashboard: navigation to first painted fleet, 200 peers",
        &stats_of(paints),
    );

    // Each run stops an asleep peer from outside (curl on the socket) and
    // waits for its row; the page records the event's arrival and the
    // change on screen.
    let mut to_screen = Vec::new();
    let mut to_page = Vec::new();
    for i in 0..11 {
        let identity = format!("claude-p{i}");
        stop_claude_of(&sock, &format!("p{i}"));
        let seen = b.cmd(serde_json::json!({
            "op": "wait_state", "identity": identity, "state": "stopped"
        }));
        let event = &seen["event"];
        assert_eq!(event["ev"], "operator", "{seen}");
        let logged = event["ts"].as_f64().unwrap();
        if i > 0 {
            to_page.push(ms(&serde_json::json!(
                event["receivedAt"].as_f64().unwrap() - logged
            )));
            to_screen.push(ms(&serde_json::json!(
                seen["at"].as_f64().unwrap() - logged
            )));
        }
    }
    row(
        "dashboard: event logged -> received by the page",
        &stats_of(to_page),
    );
    row(
        "dashboard: event logged -> state change on screen",
        &stats_of(to_screen),
    );
}

/// `POST /fleet/v1/peers/<peer>/stop` for its claude runtime, from curl.
fn stop_claude_of(sock: &Path, peer: &str) {
    let status = std::process::Command::new("curl")
        .args(["-s", "-f", "-o", "/dev/null", "-X", "POST", "--unix-socket"])
        .arg(sock)
        .arg(format!("http://x/fleet/v1/peers/{peer}/stop"))
        .args(["--data", r#"{"runtime":"claude"}"#])
        .status()
        .unwrap();
    assert!(status.success(), "stop {peer}");
}

/// Min, median and p99 of samples taken elsewhere.
fn stats_of(mut samples: Vec<Duration>) -> Stats {
    samples.sort();
    let n = samples.len();
    Stats {
        n,
        min: samples[0],
        median: samples[n / 2],
        p99: samples[(n * 99 / 100).min(n - 1)],
    }
}

// ---- a fleet across hosts ------------------------------------------------------

/// CPU time (user + system) a process has used so far.
fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or("");
    let fields: Vec<u64> = after
        .split_whitespace()
        .map(|f| f.parse().unwrap_or(0))
        .collect();
    // utime and stime are fields 14 and 15 (11 and 12 after the name).
    let ticks = fields.get(11).copied().unwrap_or(0) + fields.get(12).copied().unwrap_or(0);
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Duration::from_micros(ticks * 1_000_000 / hz)
}

/// Three hosts × 50 peers on one `nats-server` (each host signed in with its
/// own nkey under the printed permissions): a send to a live peer on this
/// host and on another, a wake on a miss both ways, 20 senders × 20 live
/// peers of another host, the daemon's memory, and what the server spends
/// per message.
fn bench_fleet() {
    println!("## fleet (three hosts x 50 peers, one nats-server, loopback)");
    if let Err(why) = nats::nats_server() {
        println!("skipped: {why}");
        return;
    }
    let dir = tempfile::Builder::new()
        .prefix("iapbf")
        .tempdir_in("/tmp")
        .unwrap();
    let keys: Vec<nats::HostKey> = ["a", "b", "c"]
        .iter()
        .map(|n| nats::host_key(dir.path(), n))
        .collect();
    let server = nats::Nats::start(dir.path(), &keys.iter().collect::<Vec<_>>());
    let server_pid = server.pid();
    let mut hosts: Vec<nats::Host> = keys
        .into_iter()
        .map(|k| {
            let name = k.name.clone();
            nats::Host::new(&name, k, server.url())
        })
        .collect();
    let local = ["alice", "bob"];
    let remote = ["carol"];
    for (h, prefix) in hosts.iter_mut().zip(["a", "b", "c"]) {
        let named: &[&str] = match prefix {
            "a" => &local,
            "b" => &remote,
            _ => &[],
        };
        for p in named {
            h.world.register(p, "claude", &[]);
        }
        for i in named.len()..50 {
            h.world.register(&format!("{prefix}{i:02}"), "claude", &[]);
        }
        h.start();
    }
    let (a, b) = (&hosts[0], &hosts[1]);
    a.wait_owner("carol", "b");
    a.wait_owner("b49", "b");
    a.wait_owner("c49", "c");
    let a_pid = a.daemon().pid();
    let (rss, _) = rss_and_private_dirty_kb(a_pid);
    println!(
        "{:<58} RSS {:.1} MB",
        "daemon in a fleet of 3 x 50 peers, idle",
        rss as f64 / 1024.0
    );
    let rt = iapeer::app::runtime().unwrap();
    assert!(a.world.run(&["wake", "bob"]).status.success());
    assert!(b.world.run(&["wake", "carol"]).status.success());
    let mut conn = rt.block_on(McpConn::unix(&a.daemon().sock));
    let here = measure(200, || {
        let r = rt.block_on(conn.send("claude-alice", "bob", "ping"));
        assert_eq!(r["woke"], false);
    });
    row("send_to_peer round trip, live peer, same host", &here);
    let there = measure(200, || {
        let r = rt.block_on(conn.send("claude-alice", "carol", "ping"));
        assert_eq!(r["woke"], false);
    });
    row("send_to_peer round trip, live peer, other host", &there);
    println!(
        "{:<58} other host / same host (medians) = {:.2}x",
        "",
        there.median.as_secs_f64() / here.median.as_secs_f64()
    );
    // Put to sleep cleanly (stop, start): a crash would count as a death,
    // and the crash-loop guard would keep it asleep.
    let sleep = |h: &nats::Host, p: &str| {
        assert!(h.world.run(&["stop", p]).status.success());
        assert!(h.world.run(&["start", p]).status.success());
    };
    let wake_here = measure_after(
        20,
        || sleep(a, "bob"),
        || {
            let r = rt.block_on(conn.send("claude-alice", "bob", "wake up"));
            assert_eq!(r["woke"], true);
        },
    );
    row("send_to_peer wake on a miss, same host", &wake_here);
    let wake_there = measure_after(
        20,
        || sleep(b, "carol"),
        || {
            let r = rt.block_on(conn.send("claude-alice", "carol", "wake up"));
            assert_eq!(r["woke"], true);
        },
    );
    row("send_to_peer wake on a miss, other host", &wake_there);
    println!(
        "{:<58} other host / same host (medians) = {:.2}x",
        "",
        wake_there.median.as_secs_f64() / wake_here.median.as_secs_f64()
    );

    // 20 senders on a, each sending once to each of 20 live peers of b,
    // without waiting: accepted, then all told delivered back on a.
    let peers: Vec<String> = (1..21).map(|i| format!("b{i:02}")).collect();
    for p in &peers {
        assert!(b.world.run(&["wake", p]).status.success());
    }
    let mailbox = iapeer::mail::Mailbox::open(&a.world.root.join("state/mail.db")).unwrap();
    let delivered_to_b = || {
        mailbox
            .history(None, 5000)
            .unwrap()
            .iter()
            .filter(|m| {
                m.to_host.as_deref() == Some("b")
                    && m.personality.starts_with('b')
                    && m.state == iapeer::mail::MessageState::Delivered
            })
            .count()
    };
    let before = delivered_to_b();
    let (server_cpu, a_cpu, b_cpu) = (
        cpu_time(server_pid),
        cpu_time(a_pid),
        cpu_time(b.daemon().pid()),
    );
    let started = Instant::now();
    every_sender_to_every_peer(rt, &a.daemon().sock, &peers, Some(0));
    let accepted = started.elapsed();
    while delivered_to_b() < before + 400 {
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "not all delivered"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let all = started.elapsed();
    println!(
        "{:<58} {:.0}/s accepted, {:.0}/s all delivered and told back",
        "20 senders x 20 live peers of another host (400 sends)",
        400.0 / accepted.as_secs_f64(),
        400.0 / all.as_secs_f64()
    );
    let per = |d: Duration| d.as_secs_f64() * 1e6 / 400.0;
    println!(
        "{:<58} nats-server {:.0} us, sending daemon {:.0} us, owning daemon {:.0} us",
        "CPU per message across hosts",
        per(cpu_time(server_pid).saturating_sub(server_cpu)),
        per(cpu_time(a_pid).saturating_sub(a_cpu)),
        per(cpu_time(b.daemon().pid()).saturating_sub(b_cpu)),
    );
    let (rss, _) = rss_and_private_dirty_kb(a_pid);
    println!(
        "{:<58} RSS {:.1} MB",
        "daemon in a fleet of 3 x 50 peers, after the load",
        rss as f64 / 1024.0
    );
    drop(hosts);
}
