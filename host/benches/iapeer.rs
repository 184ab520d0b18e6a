//! The benchmark command: `cargo bench` (all groups) or
//! `cargo bench -- plugins`. Figures go to stdout as a table; the recorded
//! numbers and how they were taken are in BENCHMARKS.md.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use iapeer::plugins::{
    CallBudgets, CompileCache, LaunchSpec, PluginHost, PluginOptions,
};

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
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn options(home: &Path, cache: CompileCache) -> PluginOptions {
    PluginOptions {
        home: home.to_path_buf(),
        plugin_dirs: vec![],
        builtins: true,
        cache,
        budgets: CallBudgets::default(),
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
            PluginHost::inspect(&file, &opts).unwrap();
        });
        row(&format!("load {name}.wasm cold (compile + instantiate + info)"), &s);
    }
    // Warm load from the compile cache.
    let cache_dir = home.path().join("cache");
    let cache = CompileCache::new(Some(&cache_dir));
    PluginHost::load(&options(home.path(), cache.clone())).unwrap();
    for name in ["claude", "codex"] {
        let file = plugins_dist.join(format!("{name}.wasm"));
        let opts = options(home.path(), cache.clone());
        let s = measure(200, || {
            PluginHost::inspect(&file, &opts).unwrap();
        });
        row(&format!("load {name}.wasm from cache (mmap + instantiate + info)"), &s);
    }
    let s = measure(50, || {
        PluginHost::load(&options(home.path(), cache.clone())).unwrap();
    });
    row("PluginHost::load, 4 built-ins, warm cache", &s);

    // Calls.
    let host = PluginHost::load(&options(home.path(), cache.clone())).unwrap();
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
    let ready_pane = std::fs::read_to_string(repo_root().join("tests/fixtures/panes/claude-ready.txt")).unwrap();
    let dialog_pane =
        std::fs::read_to_string(repo_root().join("tests/fixtures/panes/claude-resume-summary-opt1.txt")).unwrap();

    let n = 20_000;
    row("reused instance: info", &measure(n, || {
        claude.fetch_info().unwrap();
    }));
    row("reused instance: build-launch", &measure(n, || {
        claude.build_launch(&spec).unwrap();
    }));
    row("reused instance: boot-dialog-keys (dialog pane)", &measure(n, || {
        claude.boot_dialog_keys(&dialog_pane).unwrap();
    }));
    row("reused instance: is-input-ready (ready pane)", &measure(n, || {
        claude.is_input_ready(&ready_pane).unwrap();
    }));
    row("reused instance: control-keys compact", &measure(n, || {
        claude.control_keys("compact").unwrap();
    }));

    // The activity scan: 20 transcripts + one other file.
    let project = home.path().join(".claude/projects/-w-proj");
    std::fs::create_dir_all(&project).unwrap();
    for i in 0..20 {
        let f = project.join(format!("session-{i:02}.jsonl"));
        std::fs::write(&f, "{}\n").unwrap();
        let t = SystemTime::now() - Duration::from_secs(100 - i);
        std::fs::File::options().write(true).open(&f).unwrap().set_modified(t).unwrap();
    }
    std::fs::write(project.join("notes.txt"), "x").unwrap();
    let expected = native_newest_jsonl(&project);
    assert_eq!(claude.newest_activity_mtime("/w/proj").unwrap(), expected);
    let n = 5_000;
    let native = measure(n, || {
        native_newest_jsonl(&project).unwrap();
    });
    row("native Rust scan, 20 transcripts (std::fs)", &native);
    let reused = measure(n, || {
        claude.newest_activity_mtime("/w/proj").unwrap();
    });
    row("reused instance: newest-activity-mtime, 20 transcripts", &reused);
    row("reused instance: resolve-resume, 20 transcripts", &measure(n, || {
        claude.resolve_resume("/w/proj").unwrap();
    }));
    println!(
        "{:<58} {:.2}x native (median)",
        "  scan ratio",
        reused.median.as_secs_f64() / native.median.as_secs_f64()
    );

    // Fresh instance per call.
    let n = 2_000;
    row("fresh instance + info", &measure(n, || {
        claude.drop_cached_instance();
        claude.fetch_info().unwrap();
    }));
    row("fresh instance + build-launch", &measure(n, || {
        claude.drop_cached_instance();
        claude.build_launch(&spec).unwrap();
    }));
    row("fresh instance + newest-activity-mtime, 20 transcripts", &measure(n, || {
        claude.drop_cached_instance();
        claude.newest_activity_mtime("/w/proj").unwrap();
    }));

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
    row("reused instance: codex newest-activity-mtime, 20 sessions", &measure(2_000, || {
        codex.newest_activity_mtime("/w/proj").unwrap().unwrap();
    }));
}

fn main() {
    let groups: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with("--")).collect();
    let wants = |g: &str| groups.is_empty() || groups.iter().any(|x| x == g);
    if std::env::var_os("RUST_BACKTRACE").is_some() {
        eprintln!("note: RUST_BACKTRACE is set; error paths capture backtraces (unset it for figures)");
    }
    if wants("plugins") {
        bench_plugins();
    }
}
