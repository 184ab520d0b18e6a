//! The plugin host against real components: plugin-dir loading and its
//! failure modes, the precedence rule, the sandbox holding against hostile
//! adapters, and `iapeer plugins list/inspect` as a user runs them.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{
    Block, cache_dir, example_plugin, fixture_plugin, plugin_host, plugin_options, repo_root,
};
use iapeer::plugins::{
    AdapterError, LaunchSpec, PluginHost, PluginReport, PluginState, ResumeCheck,
};
use serde_json::Value;

fn copy_into(dir: &Path, src: &Path, name: &str) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let dst = dir.join(name);
    std::fs::copy(src, &dst).unwrap();
    dst
}

fn report(host: &PluginHost, file: &str) -> PluginReport {
    host.reports()
        .into_iter()
        .find(|r| r.source.to_string().ends_with(file))
        .unwrap_or_else(|| panic!("a report row for {file}"))
}

#[test]
fn plugin_dir_with_bad_and_duplicate_plugins() {
    let home = tempfile::tempdir().unwrap();
    let dir = home.path().join("plugins");
    copy_into(&dir, &example_plugin("gemini.wasm"), "gemini.wasm");
    std::fs::write(dir.join("garbage.wasm"), b"this is not wasm at all").unwrap();
    // A core module (wasm32-unknown-unknown style), not a component.
    std::fs::write(dir.join("core.wasm"), b"\0asm\x01\0\0\0").unwrap();
    std::fs::write(dir.join("empty.wasm"), b"").unwrap();
    // A component header with a broken body.
    std::fs::write(dir.join("truncated.wasm"), b"\0asm\x0d\0\x01\0\x01\x02").unwrap();
    copy_into(&dir, &fixture_plugin("future.wasm"), "future.wasm");
    copy_into(&dir, &fixture_plugin("badinfo.wasm"), "badinfo.wasm");
    // Two plugin-dir adapters for one runtime: the first by name wins.
    copy_into(&dir, &example_plugin("gemini.wasm"), "gemini2.wasm");
    // A plugin-dir claude overrides the built-in one.
    copy_into(
        &dir,
        &repo_root().join("plugins-dist/claude.wasm"),
        "my-claude.wasm",
    );
    std::fs::write(dir.join("README.txt"), "not a plugin").unwrap();

    let host = plugin_host(home.path(), vec![dir.clone()]);
    let runtimes: Vec<&str> = host.runtimes().collect();
    assert_eq!(
        runtimes,
        ["claude", "codex", "gemini", "notifier", "telegram"]
    );

    let state = |f: &str| report(&host, f).state;
    let reason = |f: &str| report(&host, f).reason.clone().unwrap_or_default();
    assert_eq!(state("gemini.wasm"), PluginState::Loaded);
    assert_eq!(state("garbage.wasm"), PluginState::Failed);
    assert!(
        reason("garbage.wasm").contains("not a WebAssembly file"),
        "{}",
        reason("garbage.wasm")
    );
    assert_eq!(state("core.wasm"), PluginState::Failed);
    assert!(reason("core.wasm").contains("core WebAssembly module, not a component"));
    assert_eq!(state("empty.wasm"), PluginState::Failed);
    assert_eq!(state("truncated.wasm"), PluginState::Failed);
    assert!(
        reason("truncated.wasm").contains("not a valid component"),
        "{}",
        reason("truncated.wasm")
    );
    assert_eq!(state("future.wasm"), PluginState::Incompatible);
    assert_eq!(report(&host, "future.wasm").wit.as_deref(), Some("0.4.0"));
    assert!(
        reason("future.wasm").contains("built for iapeer:adapter 0.4; this host serves 0.1–0.3"),
        "{}",
        reason("future.wasm")
    );
    assert_eq!(state("badinfo.wasm"), PluginState::Failed);
    assert!(reason("badinfo.wasm").contains("not a valid runtime id"));
    assert_eq!(state("gemini2.wasm"), PluginState::Duplicate);
    assert!(reason("gemini2.wasm").contains("already provided by"));
    assert!(reason("gemini2.wasm").contains("gemini.wasm"));
    assert_eq!(state("my-claude.wasm"), PluginState::Loaded);
    assert_eq!(state("built-in:claude"), PluginState::Overridden);
    assert!(reason("built-in:claude").contains("my-claude.wasm"));
    assert!(
        host.reports()
            .iter()
            .all(|r| !r.source.to_string().ends_with(".txt"))
    );
    let claude = host.adapter("claude").unwrap();
    assert_eq!(
        claude.source().to_string(),
        dir.join("my-claude.wasm").display().to_string()
    );
    // Every row carries the digest of the bytes it came from.
    let gem = report(&host, "gemini.wasm");
    assert_eq!(gem.sha256.len(), 64);
    assert_eq!(gem.read_dirs, [".gemini/tmp"]);
}

#[test]
fn devices_fifos_and_unsafe_plugin_dirs_are_refused() {
    let home = tempfile::tempdir().unwrap();
    let dir = home.path().join("plugins");
    std::fs::create_dir_all(&dir).unwrap();
    std::os::unix::fs::symlink("/dev/zero", dir.join("zero.wasm")).unwrap();
    let fifo = std::ffi::CString::new(dir.join("fifo.wasm").to_str().unwrap()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
    let host = plugin_host(home.path(), vec![dir.clone()]);
    for (f, why) in [
        ("zero.wasm", "symbolic link"),
        ("fifo.wasm", "not a regular file"),
    ] {
        assert_eq!(report(&host, f).state, PluginState::Failed);
        assert!(report(&host, f).reason.as_deref().unwrap().contains(why));
    }
    // A plugin dir others can write to is not loaded from.
    copy_into(&dir, &example_plugin("gemini.wasm"), "gemini.wasm");
    common::chmod(&dir, 0o777);
    let host = plugin_host(home.path(), vec![dir.clone()]);
    assert!(host.adapter("gemini").is_none());
    let row = report(&host, "plugins");
    assert!(
        row.reason.as_deref().unwrap().contains("others can write"),
        "{row:?}"
    );
}

#[test]
fn missing_plugin_dir_is_just_empty() {
    let home = tempfile::tempdir().unwrap();
    let host = plugin_host(home.path(), vec![home.path().join("nope")]);
    assert_eq!(host.reports().len(), 4);
    assert!(
        host.reports()
            .iter()
            .all(|r| r.state == PluginState::Loaded)
    );
}

// ---- the sandbox against a hostile adapter ---------------------------------

fn evil(home: &Path) -> std::sync::Arc<iapeer::plugins::Adapter> {
    let dir = home.join("plugins");
    copy_into(&dir, &fixture_plugin("evil.wasm"), "evil.wasm");
    plugin_host(home, vec![dir])
        .adapter("evil")
        .unwrap()
        .clone()
}

fn launch_as(personality: &str) -> LaunchSpec {
    LaunchSpec {
        personality: personality.into(),
        identity: format!("evil-{personality}"),
        cwd: "/w".into(),
        binary: "evil-runtime".into(),
        extra_args: vec!["--extra".into()],
        ..Default::default()
    }
}

fn crash_message(r: Result<impl std::fmt::Debug, AdapterError>) -> String {
    match r {
        Err(AdapterError::Crashed { message, .. }) => message,
        other => panic!("expected a crashed call, got {other:?}"),
    }
}

#[test]
fn traps_timeouts_and_memory_bombs_fail_one_call_only() {
    let home = tempfile::tempdir().unwrap();
    let a = evil(home.path());
    let good = launch_as("fine");
    assert_eq!(
        a.build_launch(&good).block().unwrap().argv,
        ["evil-runtime", "--extra"]
    );

    let m = crash_message(a.build_launch(&launch_as("trap")).block());
    assert!(
        m.contains("adapter bug: boom"),
        "the panic message is reported: {m}"
    );
    // The trapped instance was dropped: the next call works.
    assert!(a.build_launch(&good).block().is_ok());

    let started = std::time::Instant::now();
    let m = crash_message(a.build_launch(&launch_as("spin")).block());
    assert!(m.contains("timed out"), "{m}");
    assert!(started.elapsed() < std::time::Duration::from_secs(30));
    assert!(a.build_launch(&good).block().is_ok());

    let m = crash_message(a.build_launch(&launch_as("hog")).block());
    assert!(m.contains("memory cap"), "{m}");
    assert!(a.build_launch(&good).block().is_ok());

    let m = crash_message(a.resolve_resume("/spin").block());
    assert!(m.contains("timed out"), "{m}");
    assert!(a.build_launch(&good).block().is_ok());

    // Blocked in a host call (a WASI sleep), out of the epoch's reach: the
    // wall-clock limit still ends the call.
    let started = std::time::Instant::now();
    let m = crash_message(a.resolve_resume("/sleep").block());
    assert!(m.contains("timed out") && m.contains("host call"), "{m}");
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    // Four of those five were the guest's own faults; time lost blocked
    // in a host call is not counted: still in service.
    assert!(a.build_launch(&good).block().is_ok());
}

/// A guest spinning in wasm hands its thread back every epoch tick: on a
/// runtime with a single thread, a good adapter's call started after the
/// spinner's still finishes long before the spinner's budget runs out.
#[test]
fn a_spinning_guest_does_not_hold_its_thread() {
    let home = tempfile::tempdir().unwrap();
    let dir = home.path().join("plugins");
    copy_into(&dir, &fixture_plugin("evil.wasm"), "evil.wasm");
    let host = plugin_host(home.path(), vec![dir]);
    let (evil, claude) = (
        host.adapter("evil").unwrap(),
        host.adapter("claude").unwrap(),
    );
    let spec = LaunchSpec {
        personality: "bob".into(),
        identity: "claude-bob".into(),
        cwd: "/w".into(),
        binary: "claude".into(),
        ..Default::default()
    };
    // Warm the good adapter's instance, so its call is only the call.
    claude.build_launch(&spec).block().unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (spun, good) = rt.block_on(async {
        let spin = async {
            let r = evil.build_launch(&launch_as("spin")).await;
            (r, std::time::Instant::now())
        };
        let good = async {
            // Let the spinner start first.
            tokio::task::yield_now().await;
            let r = claude.build_launch(&spec).await;
            (r, std::time::Instant::now())
        };
        tokio::join!(spin, good)
    });
    assert!(crash_message(spun.0).contains("timed out"));
    assert!(good.0.is_ok());
    assert!(
        good.1 < spun.1,
        "the good call finished while the guest spun"
    );
}

/// Five crashed calls within a minute quarantine an adapter: calls fail at
/// once with the reason, `plugins list` shows it, a reload lifts it.
#[test]
fn an_adapter_that_keeps_crashing_is_quarantined_until_a_reload() {
    let home = tempfile::tempdir().unwrap();
    let dir = home.path().join("plugins");
    copy_into(&dir, &fixture_plugin("evil.wasm"), "evil.wasm");
    let host = plugin_host(home.path(), vec![dir.clone()]);
    let a = host.adapter("evil").unwrap().clone();
    for _ in 0..4 {
        crash_message(a.build_launch(&launch_as("trap")).block());
    }
    assert!(a.build_launch(&launch_as("fine")).block().is_ok());
    crash_message(a.build_launch(&launch_as("trap")).block());
    // Refused without calling the guest at all.
    let err = a.build_launch(&launch_as("fine")).block().unwrap_err();
    assert!(matches!(err, AdapterError::Quarantined { .. }), "{err:?}");
    let text = err.to_string();
    assert!(
        text.contains("quarantined (5 crashed calls within 60s, the last:")
            && text.contains("adapter bug: boom"),
        "{text}"
    );
    let row = report(&host, "evil.wasm");
    assert_eq!(row.state, PluginState::Quarantined);
    assert!(row.reason.unwrap().contains("5 crashed calls"));

    // A file event elsewhere in the plugin dir reloads, but does not lift.
    let opts = plugin_options(home.path(), vec![dir]);
    let reloaded = host.reload(&opts, false).block().unwrap();
    assert_eq!(
        report(&reloaded, "evil.wasm").state,
        PluginState::Quarantined
    );
    // The operator's reload does.
    let reloaded = reloaded.reload(&opts, true).block().unwrap();
    assert_eq!(report(&reloaded, "evil.wasm").state, PluginState::Loaded);
    assert!(
        reloaded
            .adapter("evil")
            .unwrap()
            .build_launch(&launch_as("fine"))
            .block()
            .is_ok()
    );
}

#[test]
fn bad_launch_commands_are_rejected() {
    let home = tempfile::tempdir().unwrap();
    let a = evil(home.path());
    for (who, needle) in [
        ("badargv", "argv[0]"),
        ("emptyargv", "empty argv"),
        ("dropextras", "extra arguments last"),
        ("badenv", "env name"),
        ("nulargv", "NUL"),
        ("hugearg", "argument of 1048576 bytes"),
        ("preload", "LD_PRELOAD"),
    ] {
        match a.build_launch(&launch_as(who)).block() {
            Err(AdapterError::Invalid { reason, .. }) => {
                assert!(reason.contains(needle), "{who}: {reason}")
            }
            other => panic!("{who}: expected an invalid result, got {other:?}"),
        }
    }
}

#[test]
fn file_access_is_confined_to_declared_dirs() {
    let home = tempfile::tempdir().unwrap();
    let granted = home.path().join(".evil");
    std::fs::create_dir_all(&granted).unwrap();
    std::fs::write(granted.join("ok.txt"), "granted line\nsecond\n").unwrap();
    std::os::unix::fs::symlink("/etc", granted.join("link")).unwrap();
    std::fs::create_dir_all(home.path().join(".ssh")).unwrap();
    std::fs::write(home.path().join(".ssh/id"), "secret").unwrap();
    let a = evil(home.path());
    let resume = |cwd: &str| a.resolve_resume(cwd).block().unwrap();

    // Declared dirs are readable, through WASI and through host-fs.
    assert_eq!(
        resume("/read/wasi"),
        ResumeCheck::Resumable(Some("\"granted line\\nsecond\\n\"".into()))
    );
    assert_eq!(
        resume("/read/hostfs"),
        ResumeCheck::Resumable(Some("\"granted line\"".into()))
    );

    // Nothing else is.
    for cwd in [
        "/escape/wasi-etc",
        "/escape/wasi-dotdot",
        "/escape/wasi-symlink",
        "/escape/hostfs-dotdot",
        "/escape/hostfs-abs",
        "/escape/hostfs-outside",
        "/escape/hostfs-symlink",
        "/escape/hostfs-symlink-file",
        "/write/wasi",
    ] {
        match resume(cwd) {
            ResumeCheck::Nothing(e) => assert!(!e.contains("root:"), "{cwd}: {e}"),
            ResumeCheck::Resumable(v) => panic!("{cwd} escaped the sandbox: {v:?}"),
        }
    }
    assert!(!granted.join("new.txt").exists());
    // No environment leaks in.
    assert_eq!(resume("/env"), ResumeCheck::Resumable(Some("0".into())));

    // The granted dir replaced by a link to a secret store is no longer
    // what was granted: neither WASI nor host-fs reads through it.
    std::fs::remove_dir_all(&granted).unwrap();
    std::fs::write(home.path().join(".ssh/ok.txt"), "secret line\n").unwrap();
    std::os::unix::fs::symlink(home.path().join(".ssh"), &granted).unwrap();
    for cwd in ["/read/wasi", "/read/hostfs"] {
        match resume(cwd) {
            ResumeCheck::Nothing(e) => assert!(!e.contains("secret"), "{cwd}: {e}"),
            ResumeCheck::Resumable(v) => panic!("{cwd} read through the link: {v:?}"),
        }
    }
}

// ---- the CLI, as a user runs it --------------------------------------------

fn iapeer(home: &Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_iapeer"))
        .args(args)
        .env_clear()
        .env("HOME", home)
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("IAPEER_ROOT", home.join(".iapeer"))
        .env("IAPEER_CACHE_DIR", cache_dir())
        .output()
        .unwrap()
}

fn list_json(home: &Path) -> Vec<Value> {
    let out = iapeer(home, &["plugins", "list", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    doc["plugins"].as_array().unwrap().clone()
}

#[test]
fn plugins_list_as_a_new_user_sees_it() {
    let home = tempfile::tempdir().unwrap();
    let rows = list_json(home.path());
    assert_eq!(rows.len(), 4);
    for (row, rt) in rows.iter().zip(["claude", "codex", "telegram", "notifier"]) {
        assert_eq!(row["runtime"], rt);
        assert_eq!(row["state"], "loaded");
        assert_eq!(row["builtin"], true);
        assert_eq!(
            row["wit"], "0.3.0",
            "the built-ins are on the current contract"
        );
        assert_eq!(row["source"], format!("built-in:{rt}"));
        assert_eq!(row["sha256"].as_str().unwrap().len(), 64);
    }

    // Dropping the example adapter in the plugin dir adds a fifth row; it
    // reads ~/.gemini/tmp, so it serves only once granted.
    let plugins = home.path().join(".iapeer/plugins");
    let gemini = copy_into(&plugins, &example_plugin("gemini.wasm"), "gemini.wasm");
    let waiting = list_json(home.path());
    assert_eq!(waiting.len(), 5);
    assert_eq!(waiting[4]["state"], "needs-grant");
    let why = waiting[4]["reason"].as_str().unwrap();
    assert!(
        why.contains("reads ~/.gemini/tmp") && why.contains("iapeer plugins grant"),
        "{why}"
    );
    let out = iapeer(home.path(), &["plugins", "grant", "gemini"]);
    assert!(out.status.success(), "{out:?}");
    let with_example = list_json(home.path());
    assert_eq!(with_example.len(), 5);
    assert_eq!(with_example[..4], rows[..]);
    assert_eq!(with_example[4]["runtime"], "gemini");
    assert_eq!(with_example[4]["state"], "loaded");
    assert_eq!(with_example[4]["builtin"], false);
    let grants = std::fs::read_to_string(plugins.join("grants.json")).unwrap();
    assert!(grants.contains(with_example[4]["sha256"].as_str().unwrap()));

    // A changed file (here: one more custom section) needs a new grant.
    let mut bytes = std::fs::read(&gemini).unwrap();
    bytes.extend_from_slice(&[0, 4, 3, b'x', b'y', b'z']);
    std::fs::write(&gemini, &bytes).unwrap();
    assert_eq!(list_json(home.path())[4]["state"], "needs-grant");
    assert!(
        iapeer(home.path(), &["plugins", "grant", gemini.to_str().unwrap()])
            .status
            .success()
    );
    assert_eq!(list_json(home.path())[4]["state"], "loaded");
    // Revoked: waiting again.
    let out = iapeer(home.path(), &["plugins", "revoke", "gemini"]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("revoked 1 grant"),
        "{out:?}"
    );
    assert_eq!(list_json(home.path())[4]["state"], "needs-grant");
    assert!(
        iapeer(home.path(), &["plugins", "grant", "gemini"])
            .status
            .success()
    );
    let with_example = list_json(home.path());

    // A garbage file adds a failed row with a reason, and nothing else changes.
    std::fs::write(plugins.join("zz-garbage.wasm"), "garbage").unwrap();
    let with_garbage = list_json(home.path());
    assert_eq!(with_garbage.len(), 6);
    assert_eq!(with_garbage[..5], with_example[..]);
    assert_eq!(with_garbage[5]["state"], "failed");
    assert!(
        with_garbage[5]["reason"]
            .as_str()
            .unwrap()
            .contains("not a WebAssembly file")
    );

    // The human table is aligned and names the reason.
    let out = iapeer(home.path(), &["plugins", "list"]);
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[1].starts_with("RUNTIME"), "{text}");
    let state_col = lines[1].find("STATE").unwrap();
    for line in &lines[2..8] {
        assert!(
            ["loaded", "failed"]
                .iter()
                .any(|s| line[state_col..].starts_with(s)),
            "{line}"
        );
    }
    assert!(
        text.contains("zz-garbage.wasm: not a WebAssembly file"),
        "{text}"
    );
}

#[test]
fn plugins_inspect() {
    let home = tempfile::tempdir().unwrap();
    let ok = iapeer(
        home.path(),
        &[
            "plugins",
            "inspect",
            example_plugin("gemini.wasm").to_str().unwrap(),
            "--json",
        ],
    );
    assert!(ok.status.success());
    let doc: Value = serde_json::from_slice(&ok.stdout).unwrap();
    assert_eq!(doc["runtime"], "gemini");
    assert_eq!(doc["state"], "loaded");
    assert_eq!(doc["read_dirs"], serde_json::json!([".gemini/tmp"]));

    let bad = iapeer(
        home.path(),
        &[
            "plugins",
            "inspect",
            fixture_plugin("future.wasm").to_str().unwrap(),
        ],
    );
    assert_eq!(bad.status.code(), Some(1));
    let text = String::from_utf8(bad.stdout).unwrap();
    assert!(text.contains("incompatible"), "{text}");
    assert!(
        text.contains("built for iapeer:adapter 0.4; this host serves 0.1–0.3"),
        "{text}"
    );

    let missing = iapeer(home.path(), &["plugins", "inspect", "/nonexistent.wasm"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(
        String::from_utf8(missing.stdout)
            .unwrap()
            .contains("cannot read")
    );
}

/// Adapters that ask for a secret store or the whole home directory are
/// refused whatever the grants say, with the reason; the rest of the host
/// keeps serving.
#[test]
fn secret_stores_and_home_itself_are_never_readable() {
    let home = tempfile::tempdir().unwrap();
    let dir = home.path().join("plugins");
    copy_into(&dir, &fixture_plugin("greedy.wasm"), "greedy.wasm");
    copy_into(&dir, &fixture_plugin("homebody.wasm"), "homebody.wasm");
    copy_into(&dir, &example_plugin("gemini.wasm"), "gemini.wasm");
    let host = plugin_host(home.path(), vec![dir]);
    let greedy = report(&host, "greedy.wasm");
    assert_eq!(greedy.state, PluginState::Failed);
    assert!(
        greedy
            .reason
            .unwrap()
            .contains("would expose ~/.ssh (a secret store)"),
    );
    let homebody = report(&host, "homebody.wasm");
    assert_eq!(homebody.state, PluginState::Failed);
    assert!(
        homebody
            .reason
            .unwrap()
            .contains("the whole home directory")
    );
    assert!(host.adapter("greedy").is_none() && host.adapter("homebody").is_none());
    assert_eq!(report(&host, "gemini.wasm").state, PluginState::Loaded);
    assert!(host.adapter("claude").is_some());
}

/// A plugin file must be the operator's own: a symlink to a file elsewhere
/// or a world-writable file is refused, with the reason.
#[test]
fn linked_or_world_writable_plugin_files_are_refused() {
    let home = tempfile::tempdir().unwrap();
    let dir = home.path().join("plugins");
    let elsewhere = copy_into(
        &home.path().join("elsewhere"),
        &example_plugin("gemini.wasm"),
        "g.wasm",
    );
    std::fs::create_dir_all(&dir).unwrap();
    std::os::unix::fs::symlink(&elsewhere, dir.join("linked.wasm")).unwrap();
    let open = copy_into(&dir, &fixture_plugin("evil.wasm"), "open.wasm");
    common::chmod(&open, 0o666);
    let host = plugin_host(home.path(), vec![dir]);
    let linked = report(&host, "linked.wasm");
    assert_eq!(linked.state, PluginState::Failed);
    assert!(linked.reason.unwrap().contains("symbolic link"));
    let open = report(&host, "open.wasm");
    assert_eq!(open.state, PluginState::Failed);
    assert!(open.reason.unwrap().contains("writable by other users"));
    assert!(host.adapter("gemini").is_none() && host.adapter("evil").is_none());
}

/// `plugins check|install|remove|cache` as an operator runs them.
#[test]
fn install_check_remove_and_the_compile_cache() {
    let home = tempfile::tempdir().unwrap();
    let home = home.path();
    let cache = home.join("cache");
    let run = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_iapeer"))
            .args(args)
            .env_clear()
            .env("HOME", home)
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("IAPEER_ROOT", home.join(".iapeer"))
            .env("IAPEER_CACHE_DIR", &cache)
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let gemini = example_plugin("gemini.wasm");
    let gemini = gemini.to_str().unwrap();

    let (ok, out, _) = run(&["plugins", "check", gemini]);
    assert!(ok && out.contains("a valid gemini adapter"), "{out}");
    assert!(out.contains("it reads ~/.gemini/tmp"), "{out}");
    let future = fixture_plugin("future.wasm");
    let (ok, _, err) = run(&["plugins", "check", future.to_str().unwrap()]);
    assert!(!ok && err.contains("incompatible"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    let (ok, _, err) = run(&["plugins", "install", future.to_str().unwrap()]);
    assert!(!ok && err.contains("incompatible"), "{err}");

    let (ok, out, _) = run(&["plugins", "install", gemini]);
    assert!(ok, "{out}");
    assert!(out.contains("installed gemini"), "{out}");
    assert!(
        out.contains("iapeer plugins grant /"),
        "names the installed file: {out}"
    );
    let installed = home.join(".iapeer/plugins/gemini.wasm");
    assert_eq!(
        std::fs::read(&installed).unwrap(),
        std::fs::read(gemini).unwrap()
    );
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&installed).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let (_, out, _) = run(&["plugins", "install", gemini]);
    assert!(out.contains("already installed"), "{out}");
    let (_, out, _) = run(&["plugins", "list"]);
    assert!(out.contains("needs-grant"), "{out}");
    assert!(run(&["plugins", "grant", "gemini"]).0);

    // The cache: what serves is in use; the checked-only future.wasm and
    // an entry of another wasmtime build are stale, and cleaned.
    let stale = cache.join(format!("{}-0000000000000000.cwasm", "0".repeat(64)));
    std::fs::write(&stale, b"old").unwrap();
    let (ok, out, _) = run(&["plugins", "cache", "ls"]);
    assert!(
        ok && out.contains("in use") && out.contains("stale"),
        "{out}"
    );
    let (ok, out, _) = run(&["plugins", "cache", "clean"]);
    assert!(ok && out.contains("2 stale entries removed"), "{out}");
    assert!(!stale.exists());
    let (_, out, _) = run(&["plugins", "cache", "ls"]);
    assert!(!out.contains("stale"), "{out}");
    assert_eq!(
        out.lines().count(),
        5,
        "the four built-ins and gemini: {out}"
    );

    let (ok, out, _) = run(&["plugins", "remove", "gemini"]);
    assert!(ok && out.contains("removed"), "{out}");
    assert!(!installed.exists());
    let grants = std::fs::read_to_string(home.join(".iapeer/plugins/grants.json")).unwrap();
    assert!(!grants.contains("gemini"), "{grants}");
    let (ok, _, err) = run(&["plugins", "remove", "claude"]);
    assert!(!ok && err.contains("built in"), "{err}");
}

/// A plugin file replaced by broken bytes keeps its previous version
/// serving, with a note saying so; once the file holds the serving bytes
/// again, the note goes, on that reload and every later one (regression:
/// the note "the file changed … but does not load …; the previous version
/// keeps serving" stuck to the restored file through every reload).
#[test]
fn a_plugin_restored_byte_for_byte_loses_its_broken_file_note() {
    let home = tempfile::tempdir().unwrap();
    let dir = home.path().join("plugins");
    let file = copy_into(&dir, &example_plugin("gemini.wasm"), "gemini.wasm");
    let good = std::fs::read(&file).unwrap();
    let host = plugin_host(home.path(), vec![dir.clone()]);
    let opts = plugin_options(home.path(), vec![dir]);
    let row = report(&host, "gemini.wasm");
    assert_eq!(row.state, PluginState::Loaded, "{row:?}");
    assert_eq!(row.reason, None, "{row:?}");

    // Broken bytes at the same path: the previous version keeps serving,
    // and its row says why the file on disk is not what serves.
    std::fs::write(&file, b"\0asm garbage").unwrap();
    let broken = host.reload(&opts, false).block().unwrap();
    let row = report(&broken, "gemini.wasm");
    assert_eq!(row.state, PluginState::Loaded, "{row:?}");
    let note = row.reason.clone().unwrap_or_default();
    assert!(
        note.contains("but does not load") && note.contains("the previous version keeps serving"),
        "{row:?}"
    );
    assert!(broken.adapter("gemini").is_some());

    // Restored byte for byte (a fresh file, as an editor or `cp` leaves
    // it): the serving version is the file's again; no note, now or on any
    // later reload.
    std::fs::remove_file(&file).unwrap();
    std::fs::write(&file, &good).unwrap();
    let mut host = broken;
    for round in 1..=3 {
        host = host.reload(&opts, false).block().unwrap();
        let row = report(&host, "gemini.wasm");
        assert_eq!(row.state, PluginState::Loaded, "reload {round}: {row:?}");
        assert_eq!(
            row.reason, None,
            "reload {round}: the restored file still carries the broken file's note"
        );
        assert_eq!(row.sha256, iapeer::plugins::sha256_file(&file).unwrap());
        assert!(host.adapter("gemini").is_some(), "reload {round}");
        // The serving adapter was kept, not recompiled: the builtins and gemini.
        assert_eq!(host.reused(), 5, "reload {round}");
    }
}
