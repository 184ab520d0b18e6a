//! A probe of our own (issue 10): hostile conditions an outside probe of the
//! release binaries found — FIFOs, symlinks and directories at state paths,
//! closed or full outputs, endless input, terminal escapes in data, plugin
//! files and dirs other users can touch, shared root and socket dirs — and
//! what must happen instead: a one-line error naming the cause, promptly,
//! never a hang and never a panic (exit 101).
//!
//! "Promptly" is checked by a hang detector ([`HANG`]), generous so a loaded
//! CI machine cannot trip it; each probe prints how long it really took.

use crate::common;

use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{Block, Fleet, output_text, wait_until};

/// A command that has not finished after this long is hung.
const HANG: Duration = Duration::from_secs(10);

/// Runs `cmd` to its end or kills it at [`HANG`] and fails the test.
fn bounded(what: &str, mut cmd: Command) -> Output {
    let started = Instant::now();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if started.elapsed() > HANG {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "{what}: hung for {HANG:?}; stderr so far: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let out = child.wait_with_output().unwrap();
    eprintln!("{what}: {:?} in {:?}", out.status, started.elapsed());
    out
}

/// The command failed (exit 1, never a panic's 101) with exactly one line
/// on stderr; that line.
fn one_line_error(what: &str, out: &Output) -> String {
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{what}: {:?}: {err}",
        out.status
    );
    assert_eq!(err.lines().count(), 1, "{what}: one line, got: {err}");
    err
}

fn mkfifo(path: &Path) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let _ = std::fs::remove_file(path);
    let c = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
    assert_eq!(
        unsafe { libc::mkfifo(c.as_ptr(), 0o600) },
        0,
        "mkfifo {path:?}"
    );
}

// ---- 1. special files at the paths the program writes or locks -------------

#[test]
fn a_fifo_at_the_wake_lock_fails_wake_stop_and_new_at_once() {
    let f = Fleet::new();
    f.register("bob", "claude", &[]);
    let lock = f.state("claude-bob", "wake.lock");
    mkfifo(&lock);
    for verb in [&["wake", "bob"][..], &["new", "bob"]] {
        let out = bounded(&format!("{verb:?}"), f.cmd(verb));
        let err = one_line_error(&format!("{verb:?}"), &out);
        assert!(err.contains("wake.lock") && err.contains("FIFO"), "{err}");
    }
    // stop is the operator's halt: it goes through without the lock.
    let out = bounded("stop", f.cmd(&["stop", "bob"]));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(f.state("claude-bob", "stopped").exists());
}

#[test]
fn a_symlink_at_a_lock_or_log_is_never_followed() {
    let f = Fleet::new();
    f.register("bob", "claude", &[]);
    let target = f.dir.path().join("victim");
    let lock = f.state("claude-bob", "wake.lock");
    std::fs::create_dir_all(lock.parent().unwrap()).unwrap();
    symlink(&target, &lock).unwrap();
    let out = bounded("wake", f.cmd(&["wake", "bob"]));
    let err = one_line_error("wake", &out);
    assert!(err.contains("symbolic link"), "{err}");
    assert!(!target.exists(), "the link's target was created");

    // A linked lifecycle.log: the verb still works, the target stays as is.
    std::fs::remove_file(&lock).unwrap();
    std::fs::write(&target, "precious\n").unwrap();
    let log = f.root.join("logs/iapeer/lifecycle.log");
    std::fs::create_dir_all(log.parent().unwrap()).unwrap();
    symlink(&target, &log).unwrap();
    let out = bounded("wake", f.cmd(&["wake", "bob", "--message", "hi"]));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "precious\n");
}

#[test]
fn a_directory_at_a_mark_is_an_error_not_a_mark() {
    let f = Fleet::new();
    f.register("bob", "claude", &[]);
    let mark = f.state("claude-bob", "new");
    std::fs::create_dir_all(&mark).unwrap();
    let out = bounded("wake", f.cmd(&["wake", "bob", "--message", "hi"]));
    let err = one_line_error("wake", &out);
    assert!(
        err.contains("claude-bob.new") && err.contains("directory"),
        "{err}"
    );
    assert!(f.runs().is_empty(), "nothing was started");
    // The tick does not take it for a /new mark either.
    let out = bounded("supervise", f.cmd(&["supervise", "--once", "--json"]));
    assert!(out.status.success());
    assert!(f.runs().is_empty(), "the tick relaunched nothing");
}

/// A wake whose session record cannot be written starts nothing: a session
/// nobody recorded would never be supervised (regression: it started with
/// a WARN and ran unsupervised). Two ways the write fails: a directory in
/// the way of `<id>.session`, and a file size limit of 1 byte (SIGXFSZ
/// ignored, so the write gets EFBIG as on a full disk; nothing else a
/// doctrine-less wake writes before the record is refused by it).
#[test]
fn a_session_record_that_cannot_be_written_starts_nothing() {
    let f = Fleet::new();
    f.register("bob", "claude", &[]);
    let record = f.state("claude-bob", "session");
    let refused = |what: &str, out: &Output, cause: &str| {
        let err = one_line_error(what, out);
        eprintln!("{what}: {err}");
        assert!(
            err.contains("cannot write the session record of claude-bob")
                && err.contains("nothing was started"),
            "{what}: {err}"
        );
        assert!(
            err.contains("claude-bob.session") && err.contains(cause),
            "{what}: {err}"
        );
        assert!(
            f.runs().is_empty(),
            "{what}: the runtime was started: {:?}",
            f.runs()
        );
        assert!(
            !f.is_live("claude-bob"),
            "{what}: a tmux session was left running"
        );
        assert!(!record.is_file(), "{what}: a session record appeared");
        let leftovers: Vec<String> = std::fs::read_dir(record.parent().unwrap())
            .unwrap()
            .filter_map(Result::ok)
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".tmp"))
            .collect();
        assert!(
            leftovers.is_empty(),
            "{what}: temp files left: {leftovers:?}"
        );
    };

    std::fs::create_dir_all(record.join("in-the-way")).unwrap();
    let out = bounded(
        "wake, a directory in the way",
        f.cmd(&["wake", "bob", "--message", "hi"]),
    );
    refused("a directory in the way", &out, "is a directory");
    std::fs::remove_dir_all(&record).unwrap();

    let prlimit = Command::new("prlimit").arg("--version").output().is_ok();
    if prlimit {
        let mut full = Command::new("bash");
        full.arg("-c")
            .arg(format!(
                "trap '' XFSZ; exec prlimit --fsize=1 {} wake bob --message hi",
                env!("CARGO_BIN_EXE_iapeer")
            ))
            .env_clear()
            .envs(f.env_map())
            .current_dir(f.dir.path());
        let out = bounded("wake, files capped at 1 byte", full);
        refused("files capped at 1 byte", &out, "File too large");
    } else {
        eprintln!("skipping the file size limit case (needs prlimit)");
    }

    // The obstacle gone, the same wake starts it, recorded.
    let out = bounded("wake again", f.cmd(&["wake", "bob", "--message", "hi"]));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(f.is_live("claude-bob"));
    assert_eq!(f.runs().len(), 1, "{:?}", f.runs());
    assert!(record.is_file(), "the session record was written");
    let rec: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&record).unwrap()).unwrap();
    assert_eq!(rec["identity"], "claude-bob", "{rec}");
}

#[test]
fn fifos_at_the_registry_lock_and_logs_hang_nothing() {
    let f = Fleet::new();
    f.register("bob", "claude", &[]);
    // The lifecycle log: the tick runs and reaps as usual.
    mkfifo(&f.root.join("logs/iapeer/lifecycle.log"));
    let out = bounded("supervise", f.cmd(&["supervise", "--once"]));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = bounded("wake", f.cmd(&["wake", "bob", "--message", "hi"]));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    mkfifo(&f.root.join("peers-profiles.lock"));
    let cwd = f.dir.path().join("w/bob");
    let out = bounded(
        "register",
        f.cmd(&[
            "register",
            "amy",
            "--cwd",
            cwd.to_str().unwrap(),
            "--runtime",
            "claude",
        ]),
    );
    let err = one_line_error("register", &out);
    assert!(err.contains("peers-profiles.lock"), "{err}");
}

#[test]
fn the_daemon_refuses_a_fifo_lock_and_survives_a_fifo_log() {
    let f = Fleet::new();
    let lock = f.root.join("state/iapeer/iapeerd.lock");
    mkfifo(&lock);
    let out = bounded("iapeerd", f.daemon_cmd(&["--port", "0"]));
    let err = one_line_error("iapeerd", &out);
    assert!(err.contains("iapeerd.lock"), "{err}");
    std::fs::remove_file(&lock).unwrap();

    // A FIFO at its own log: it starts and answers.
    mkfifo(&f.root.join("logs/iapeer/iapeerd.log"));
    let d = f.start_daemon(&[]);
    assert_eq!(d.get("/fleet/v1/status").status, 200);
}

// ---- 2. output errors ---------------------------------------------------------

#[test]
fn a_closed_or_full_stdout_is_no_panic() {
    let f = Fleet::new();
    for i in 0..40 {
        f.register(&format!("p{i}"), "claude", &[]);
    }
    // `iapeer list --json | head -c1`: the reader goes away.
    let mut child = f
        .cmd(&["list", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Into /dev/full: one line, and it says the command itself ran.
    let full = || {
        std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .unwrap()
    };
    for args in [&["list", "--json"][..], &["list"], &["stop", "p1"]] {
        let out = f.cmd(args).stdout(full()).output().unwrap();
        let err = one_line_error(&format!("{args:?} > /dev/full"), &out);
        assert!(
            err.contains("the command ran") && err.contains("No space left"),
            "{err}"
        );
    }
    assert!(
        f.state("claude-p1", "stopped").exists(),
        "the stop was done"
    );
}

#[test]
fn the_daemon_keeps_logging_to_its_file_when_stderr_is_full() {
    let f = Fleet::new();
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .unwrap();
    let router_json = f.root.join("state/iapeer/router.json");
    let mut child = f
        .daemon_cmd(&["--port", "0", "--log", "debug"])
        .stdout(Stdio::null())
        .stderr(full)
        .spawn()
        .unwrap();
    wait_until("iapeerd to listen", Duration::from_secs(30), || {
        router_json.exists()
    });
    let status = bounded("status", f.cmd(&["status"]));
    assert!(status.status.success());
    assert!(child.try_wait().unwrap().is_none(), "iapeerd died");
    let log = std::fs::read_to_string(f.root.join("logs/iapeer/iapeerd.log")).unwrap();
    assert!(log.contains("adapter loaded"), "{log}");
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let code = child.wait().unwrap().code();
    assert_eq!(code, Some(0), "a clean stop, no panic");
}

// ---- 3. bounded input -----------------------------------------------------------

#[test]
fn endless_or_empty_messages_are_refused_at_once() {
    let f = Fleet::new();
    f.register("bob", "claude", &[]);
    let out = bounded(
        "--message-file /dev/zero",
        f.cmd(&["wake", "bob", "--message-file", "/dev/zero"]),
    );
    let err = one_line_error("/dev/zero", &out);
    assert!(err.contains("longer than 16000 characters"), "{err}");

    let mut endless = f.cmd(&["send", "bob", "--message-file", "-"]);
    endless.stdin(std::fs::File::open("/dev/zero").unwrap());
    let started = Instant::now();
    let out = endless.stderr(Stdio::piped()).output().unwrap();
    assert!(started.elapsed() < HANG);
    one_line_error("endless stdin", &out);

    // Only control characters: nothing to paste, refused before any spawn.
    let out = bounded(
        "control-only message",
        f.cmd(&["wake", "bob", "--message", "\u{1b}\u{1b}\u{7}"]),
    );
    let err = one_line_error("control-only", &out);
    assert!(
        err.contains("empty once its control characters are removed"),
        "{err}"
    );
    assert!(f.runs().is_empty(), "nothing was started");
}

// ---- 4. the registry stays readable ------------------------------------------

#[test]
fn register_keeps_a_large_registry_readable() {
    let f = Fleet::new();
    let path = f.root.join("peers-profiles.json");
    std::fs::create_dir_all(&f.root).unwrap();
    let peers: Vec<String> = (0..20_000)
        .map(|i| format!(r#"{{"personality":"p{i}","runtime":"claude","cwd":"/w"}}"#))
        .collect();
    std::fs::write(&path, format!(r#"{{"peers":[{}]}}"#, peers.join(","))).unwrap();
    let before = std::fs::metadata(&path).unwrap().len();
    f.register("bob", "claude", &[]);
    let after = std::fs::metadata(&path).unwrap().len();
    assert!(after < before + 300, "{before} -> {after} bytes");
    // It reads back: a second registration goes through.
    f.register("amy", "claude", &[]);
}

// ---- 5. plugin files and dirs, root and socket dirs -----------------------------

fn plugin_row(f: &Fleet, dir: &Path) -> serde_json::Value {
    let out = bounded(
        "plugins list",
        f.cmd(&[
            "plugins",
            "list",
            "--json",
            "--plugin-dir",
            dir.to_str().unwrap(),
        ]),
    );
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    doc["plugins"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| {
            p["runtime"] == "gemini" || p["source"].as_str().is_some_and(|s| s.contains("pd"))
        })
        .cloned()
        .unwrap_or_else(|| panic!("no plugin-dir row: {doc}"))
}

/// The file passed the trust checks (gemini reads dirs: it then waits for
/// its grant).
fn assert_trusted(row: &serde_json::Value) {
    assert!(
        matches!(row["state"].as_str(), Some("loaded" | "needs-grant")),
        "{row}"
    );
}

#[test]
fn plugin_files_others_can_touch_never_load() {
    let f = Fleet::new();
    let dir = f.dir.path().join("pd");
    std::fs::create_dir(&dir).unwrap();
    common::chmod(&dir, 0o700);
    let file = dir.join("gemini.wasm");
    std::fs::copy(common::example_plugin("gemini.wasm"), &file).unwrap();
    common::chmod(&file, 0o644);
    assert_trusted(&plugin_row(&f, &dir));

    for (mode, why) in [
        (0o666, "writable by other users"),
        (0o664, "writable by other users"),
    ] {
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(mode)).unwrap();
        let row = plugin_row(&f, &dir);
        assert_eq!(row["state"], "failed", "{row}");
        assert!(row["reason"].as_str().unwrap().contains(why), "{row}");
    }
    common::chmod(&file, 0o644);

    // Another user's file (as root, hand it to nobody).
    if unsafe { libc::geteuid() } == 0 {
        std::os::unix::fs::chown(&file, Some(65534), None).unwrap();
        let row = plugin_row(&f, &dir);
        assert!(
            row["reason"].as_str().unwrap().contains("not owned"),
            "{row}"
        );
        std::os::unix::fs::chown(&file, Some(0), None).unwrap();
    }

    // A link to a file elsewhere.
    let elsewhere = f.dir.path().join("elsewhere.wasm");
    std::fs::rename(&file, &elsewhere).unwrap();
    symlink(&elsewhere, &file).unwrap();
    let row = plugin_row(&f, &dir);
    assert!(
        row["reason"].as_str().unwrap().contains("symbolic link"),
        "{row}"
    );
}

#[test]
fn a_plugin_dir_others_can_write_or_swap_is_refused() {
    let f = Fleet::new();
    let real = f.dir.path().join("real");
    std::fs::create_dir(&real).unwrap();
    std::fs::copy(
        common::example_plugin("gemini.wasm"),
        real.join("gemini.wasm"),
    )
    .unwrap();
    // A link to a private dir of ours is fine: the dir is judged, not the name.
    let link = f.dir.path().join("pd");
    symlink(&real, &link).unwrap();
    common::chmod(&real, 0o700);
    assert_trusted(&plugin_row(&f, &link));
    // Group-writable: refused.
    common::chmod(&real, 0o770);
    let row = plugin_row(&f, &link);
    assert_eq!(row["state"], "failed", "{row}");
    assert!(
        row["reason"].as_str().unwrap().contains("others can write"),
        "{row}"
    );
    // Inside a dir anyone may write to (no sticky bit): refused too.
    common::chmod(&real, 0o700);
    let open = f.dir.path().join("open");
    std::fs::create_dir(&open).unwrap();
    std::fs::rename(&real, open.join("real")).unwrap();
    common::chmod(&open, 0o777);
    let _ = std::fs::remove_file(&link);
    symlink(open.join("real"), &link).unwrap();
    let row = plugin_row(&f, &link);
    assert!(
        row["reason"]
            .as_str()
            .unwrap()
            .contains("lets other users replace it"),
        "{row}"
    );
}

#[test]
fn a_root_or_socket_dir_others_can_write_is_refused() {
    let f = Fleet::new();
    f.register("bob", "claude", &[]);
    for dir in [&f.root, &f.socks] {
        std::fs::create_dir_all(dir).unwrap();
        common::chmod(dir, 0o777);
        let out = bounded("wake", f.cmd(&["wake", "bob"]));
        let err = one_line_error("wake", &out);
        assert!(
            err.contains(dir.to_str().unwrap()) && err.contains("others can write"),
            "{err}"
        );
        let out = bounded("iapeerd", f.daemon_cmd(&["--port", "0"]));
        one_line_error("iapeerd", &out);
        common::chmod(dir, 0o700);
    }
    assert!(f.runs().is_empty());
}

// ---- 6. terminal-safe output -----------------------------------------------------

#[test]
fn data_never_reaches_the_terminal_raw() {
    let f = Fleet::new();
    let evil = f.dir.path().join("w/\u{1b}]0;pwned\u{7}");
    std::fs::create_dir_all(&evil).unwrap();
    f.register_at("bob", "claude", &evil, &[]);
    std::fs::remove_dir(&evil).unwrap();
    let out = bounded("wake", f.cmd(&["wake", "bob"]));
    let err = one_line_error("wake", &out);
    assert!(!err.contains('\u{1b}') && !err.contains('\u{7}'), "{err:?}");
    assert!(err.contains("\\x1b]0;pwned\\x07"), "{err}");
    let out = bounded("list", f.cmd(&["list"]));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!text.contains('\u{1b}'), "{text:?}");

    // A huge name gives a usage error whose lines are clipped, not huge.
    let huge = "x".repeat(100_000);
    let out = bounded("wake huge", f.cmd(&["wake", &huge]));
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.len() < 4_000, "{} bytes", err.len());
    assert!(err.contains("more bytes"), "{err}");
}

// ---- 7. a responsive stop -----------------------------------------------------------

#[test]
fn stop_wins_over_a_wake_in_its_ready_gate() {
    let f = Fleet::new()
        .with_env("FAKE_SILENT", "1")
        .with_env("IAPEER_READY_GATE_SECS", "120");
    f.register("sil", "claude", &[]);
    let wake = f
        .cmd(&["wake", "sil", "--message", "zebra-crossing"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // A word no boot screen shows: "hi" matched the trust dialog's "this folder".
    wait_until("the message to be pasted", Duration::from_secs(15), || {
        f.is_live("claude-sil") && f.pane("claude-sil").contains("zebra-crossing")
    });
    let out = bounded("stop", f.cmd(&["stop", "sil"]));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = wake.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("stopped by its operator"), "{err}");
    assert!(!f.is_live("claude-sil"));
}

// ---- 8. smaller ones ------------------------------------------------------------------

#[test]
fn output_flags_work_anywhere_on_the_line() {
    let f = Fleet::new();
    f.register("bob", "claude", &[]);
    for args in [&["--json", "list"][..], &["list", "--json"]] {
        let out = bounded("list", f.cmd(args));
        assert!(out.status.success(), "{args:?}");
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap();
    }
}

#[test]
fn a_stray_profile_does_not_launch_someone_elses_peer() {
    let f = Fleet::new();
    f.register("bob", "claude", &[]);
    let stray = f.dir.path().join("copy");
    std::fs::create_dir_all(stray.join(".iapeer")).unwrap();
    std::fs::write(
        stray.join(".iapeer/peer-profile.json"),
        r#"{"personality":"bob","default_runtime":"claude"}"#,
    )
    .unwrap();
    let mut launch = f.cmd(&["launch"]);
    launch.current_dir(&stray);
    let out = bounded("launch", launch);
    let err = one_line_error("launch", &out);
    assert!(
        err.contains("registered at") && err.contains("not here"),
        "{err}"
    );
    assert!(f.runs().is_empty());
}

#[test]
fn a_socket_dir_tmux_cannot_write_reports_tmuxs_words() {
    let f = Fleet::new();
    f.register("bob", "claude", &[]);
    std::fs::create_dir_all(&f.socks).unwrap();
    // root ignores modes: make the dir immutable instead (skip where not allowed).
    let ok = Command::new("chattr").arg("+i").arg(&f.socks).status();
    if !ok.is_ok_and(|s| s.success()) {
        eprintln!("skipped: chattr +i is not allowed here");
        return;
    }
    let out = bounded("wake", f.cmd(&["wake", "bob"]));
    let _ = Command::new("chattr").arg("-i").arg(&f.socks).status();
    let err = one_line_error("wake", &out);
    assert!(
        err.contains("error creating") && !err.contains("vanished"),
        "{err}"
    );
}

// ---- found by review: the edges of the fixes above ----------------------------------

#[test]
fn json_output_stays_valid_and_terminal_safe() {
    let f = Fleet::new();
    let cwd = f.dir.path().join("w/bob");
    std::fs::create_dir_all(&cwd).unwrap();
    let description = "shalom \u{200f} x \u{7f} y \u{9b}31m \u{202e}evil";
    f.ok(&[
        "register",
        "bob",
        "--cwd",
        cwd.to_str().unwrap(),
        "--runtime",
        "claude",
        "--description",
        description,
    ]);
    let out = bounded("list --json", f.cmd(&["list", "--json"]));
    let text = String::from_utf8(out.stdout).unwrap();
    for raw in ['\u{7f}', '\u{9b}', '\u{202e}'] {
        assert!(!text.contains(raw), "{raw:?} reached the terminal: {text}");
    }
    let doc: serde_json::Value = serde_json::from_str(&text).expect("valid JSON");
    assert_eq!(
        doc["peers"][0]["description"], description,
        "and the same text"
    );
    // Right-to-left marks are text, not an attack: kept as they are.
    let plain = String::from_utf8(bounded("list", f.cmd(&["list"])).stdout).unwrap();
    assert!(!plain.contains('\u{202e}'));
}

#[test]
fn junk_at_another_mark_does_not_keep_a_peer_running() {
    let f = Fleet::new();
    f.register("bob", "claude", &[]);
    f.ok(&["wake", "bob"]);
    std::fs::create_dir_all(f.state("claude-bob", "new")).unwrap();
    let out = bounded("stop", f.cmd(&["stop", "bob"]));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!f.is_live("claude-bob"));
}

#[test]
fn a_symlink_at_a_state_file_is_an_error_not_replaced() {
    let f = Fleet::new();
    let dotfile = f.dir.path().join("dotfiles-registry.json");
    std::fs::write(&dotfile, r#"{"peers":[]}"#).unwrap();
    std::fs::create_dir_all(&f.root).unwrap();
    let path = f.root.join("peers-profiles.json");
    symlink(&dotfile, &path).unwrap();
    let cwd = f.dir.path().join("w/bob");
    std::fs::create_dir_all(&cwd).unwrap();
    let out = bounded(
        "register",
        f.cmd(&[
            "register",
            "bob",
            "--cwd",
            cwd.to_str().unwrap(),
            "--runtime",
            "claude",
        ]),
    );
    let err = one_line_error("register", &out);
    assert!(
        err.contains("peers-profiles.json is a symbolic link"),
        "{err}"
    );
    assert!(
        std::fs::symlink_metadata(&path)
            .unwrap()
            .file_type()
            .is_symlink(),
        "the link stays"
    );
}

#[test]
fn a_root_reached_through_a_link_others_can_swap_is_refused() {
    let f = Fleet::new();
    let open = f.dir.path().join("open");
    std::fs::create_dir(&open).unwrap();
    common::chmod(&open, 0o777);
    let private = f.dir.path().join("private");
    std::fs::create_dir(&private).unwrap();
    symlink(&private, open.join("root")).unwrap();
    for root in [open.join("root"), open.join("not-yet")] {
        let mut cmd = f.cmd(&["list"]);
        cmd.env("IAPEER_ROOT", &root);
        let out = bounded("list", cmd);
        let err = one_line_error("list", &out);
        assert!(err.contains("lets other users replace it"), "{err}");
    }
}

#[test]
fn usage_errors_and_help_are_safe_too() {
    let f = Fleet::new();
    let out = bounded(
        "bad usage",
        f.cmd(&["wake", "bob", "\u{1b}]0;pwned\u{7}", "--bogus"]),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(!err.contains('\u{1b}') && !err.contains('\u{7}'), "{err:?}");
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .unwrap();
    let out = f.cmd(&["--help"]).stdout(full).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "help into a full disk is said");
    // A multi-line hint stays lines, not `\x0a`.
    let out = bounded("mcp-config", f.cmd(&["mcp-config", "claude"]));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.lines().count() >= 3 && !err.contains("\\x0a"), "{err}");
    assert!(err.lines().all(|l| l.starts_with('#')), "{err}");
}

#[test]
fn blank_or_invisible_messages_are_refused() {
    let f = Fleet::new();
    f.register("bob", "claude", &[]);
    for message in ["   ", "\u{200b}\u{feff}"] {
        let out = bounded("wake", f.cmd(&["wake", "bob", "--message", message]));
        let err = one_line_error("wake", &out);
        assert!(err.contains("message is empty"), "{err}");
    }
    assert!(f.runs().is_empty());
}

/// The plugin dir is flipped between a private dir and another user's dir
/// while the host loads: the other user's adapter is never read (the old
/// code checked the dir, then listed and read by path, three lookups).
#[test]
fn a_plugin_dir_flipped_under_the_host_never_loads_the_other_users_adapter() {
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: needs root to hand a dir to another user");
        return;
    }
    let f = Fleet::new();
    let mine = f.dir.path().join("mine");
    let theirs = f.dir.path().join("theirs");
    for d in [&mine, &theirs] {
        std::fs::create_dir(d).unwrap();
        common::chmod(d, 0o755);
    }
    std::fs::copy(common::fixture_plugin("homebody.wasm"), mine.join("a.wasm")).unwrap();
    std::fs::copy(
        common::fixture_plugin("cwdreader.wasm"),
        theirs.join("a.wasm"),
    )
    .unwrap();
    for p in [&theirs, &theirs.join("a.wasm")] {
        std::os::unix::fs::chown(p, Some(65534), Some(65534)).unwrap();
    }
    let link = f.dir.path().join("pd");
    symlink(&mine, &link).unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flipper = {
        let (stop, link, mine, theirs) = (stop.clone(), link.clone(), mine.clone(), theirs.clone());
        std::thread::spawn(move || {
            let tmp = link.with_extension("tmp");
            let mut flip = false;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let _ = std::fs::remove_file(&tmp);
                symlink(if flip { &mine } else { &theirs }, &tmp).unwrap();
                std::fs::rename(&tmp, &link).unwrap();
                flip = !flip;
            }
        })
    };
    let opts = common::plugin_options(&f.home, vec![link.clone()]);
    for _ in 0..200 {
        let host = iapeer::plugins::PluginHost::load(&opts).block().unwrap();
        for r in host.reports() {
            assert_ne!(
                r.runtime.as_deref(),
                Some("aider"),
                "read the other user's file: {r:?}"
            );
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    flipper.join().unwrap();
}

/// An argument that is not UTF-8 is a usage error or a one-line refusal,
/// never a panic (`env::args` panics on one; the dispatch uses `args_os`).
#[test]
fn non_utf8_arguments_are_no_panic() {
    use std::os::unix::ffi::OsStrExt;
    let f = Fleet::new();
    let bad = std::ffi::OsStr::from_bytes(b"/tmp/\xff");
    for args in [
        vec!["wake".as_ref(), bad],
        vec!["plugins".as_ref(), "inspect".as_ref(), bad],
    ] {
        let mut cmd = f.cmd(&[]);
        cmd.args(&args);
        let out = bounded("non-UTF-8 argument", cmd);
        assert!(
            matches!(out.status.code(), Some(1 | 2)),
            "{:?}: {:?}",
            args,
            out.status
        );
    }
}

// ---- 6. another user flooding the loopback TCP port ---------------------------

/// Run as `nobody` by [`another_users_flood_over_a_huge_socket_table_costs_nothing`]:
/// fills the kernel's TCP table with loopback connections to listeners of
/// its own (spread over a few processes: an unprivileged process may hold
/// only so many descriptors, and root here may lack CAP_SYS_RESOURCE to
/// raise that), then floods the daemon's port from threads whose
/// connections send half a request and close (half of them at once, half
/// once the daemon has hung up). Every loop is bounded in
/// count and time; the children leave when the parent does (their pipe
/// closes), and everyone leaves at a watchdog deadline whatever happens.
const FLOODER: &str = r#"
import os, resource, select, socket, sys, threading, time
port, inflate, flood_secs, nthreads = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
deadline = time.monotonic() + flood_secs + 240
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
per_child = max(1, min(7000, (hard - 64) // 2))
children = (inflate + per_child - 1) // per_child
pipes = []
for n in range(children):
    mine = min(per_child, inflate - n * per_child)
    up_r, up_w = os.pipe()
    down_r, down_w = os.pipe()
    if os.fork() == 0:
        os.close(up_r)
        os.close(down_w)
        held = []
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen(4096)
        for _ in range(mine):
            c = socket.socket()
            c.connect(listener.getsockname())
            s, _ = listener.accept()
            held.append((c, s))
        os.write(up_w, b"%d\n" % len(held))
        # Hold them until the parent goes (EOF) or the deadline.
        select.select([down_r], [], [], max(0.0, deadline - time.monotonic()))
        os._exit(0)
    os.close(up_w)
    os.close(down_r)
    pipes.append((up_r, down_w))
def watchdog():
    time.sleep(max(0.0, deadline - time.monotonic()))
    os._exit(3)
threading.Thread(target=watchdog, daemon=True).start()
total = 0
for up_r, _ in pipes:
    line = os.read(up_r, 64)
    if not line:
        print("an inflater died", flush=True)
        os._exit(4)
    total += int(line)
print("inflated", total, flush=True)
stop = time.monotonic() + flood_secs
counts = [[0, 0] for _ in range(nthreads)]
partial = b"GET /fleet/v1/status HTTP/1.1\r\nHost: 127.0.0.1\r\n"
def flood(i):
    for _ in range(1000000):
        if time.monotonic() >= stop:
            break
        s = socket.socket()
        s.settimeout(2)
        try:
            s.connect(("127.0.0.1", port))
        except OSError:
            counts[i][1] += 1
            s.close()
            continue
        counts[i][0] += 1
        try:
            s.sendall(partial)
            if i % 2:
                # Half the threads stay until the daemon hangs up: their
                # sockets are live when it asks whose they are.
                s.recv(1)
        except OSError:
            pass
        finally:
            s.close()
threads = [threading.Thread(target=flood, args=(i,)) for i in range(nthreads)]
for t in threads:
    t.start()
for t in threads:
    t.join()
print("flooded", sum(c[0] for c in counts), "connections,", sum(c[1] for c in counts), "failed connects", flush=True)
"#;

/// A child process killed (and reaped) when dropped, even on a failure.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The peak resident set of a process (`VmHWM`), in kB.
fn peak_rss_kb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no VmHWM in {status}"))
}

/// Another local user who inflates the kernel's socket table (~40 000
/// entries) and floods the daemon's loopback TCP port costs the daemon
/// neither memory nor its answers to its own user: each connection's owner
/// is asked of the kernel for that one socket, in the accept loop, before
/// it takes a connection slot (regression: the whole /proc/net/tcp was read
/// per connection, holding a slot; 1.8–3 GB resident, 18–29 s answers).
/// As root only (the flood runs as uid 65534); skipped otherwise.
#[test]
fn another_users_flood_over_a_huge_socket_table_costs_nothing() {
    const INFLATE: usize = 20_000;
    const FLOOD_SECS: u64 = 8;
    const THREADS: usize = 16;
    let root = unsafe { libc::geteuid() } == 0;
    let have = |tool: &str| Command::new(tool).arg("--version").output().is_ok();
    if !root || !have("setpriv") {
        eprintln!("skipping the foreign-uid TCP flood (needs root and setpriv)");
        return;
    }
    let as_nobody = |python: &str| {
        let mut c = Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .args([python, "-I"])
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .current_dir("/")
            .stdin(Stdio::null());
        c
    };
    // A python3 that nobody may run (not one under /root).
    let Some(python) = ["/usr/bin/python3", "/usr/local/bin/python3", "/bin/python3"]
        .into_iter()
        .find(|p| {
            as_nobody(p)
                .args(["-c", "import socket, threading"])
                .output()
                .is_ok_and(|o| o.status.success())
        })
    else {
        eprintln!("skipping the foreign-uid TCP flood (no python3 that uid 65534 can run)");
        return;
    };

    let f = Fleet::new();
    let d = f.start_daemon(&["--tick-secs", "3600"]);
    let port = d
        .tcp
        .strip_prefix("http://127.0.0.1:")
        .expect("TCP on loopback")
        .to_string();
    let url = format!("{}/fleet/v1/status", d.tcp);
    // One request as this user, over TCP: its status and how long it took.
    let request = || {
        let started = Instant::now();
        let out = Command::new("curl")
            .args(["-s", "-S", "-o", "/dev/null", "-w", "%{http_code}"])
            .args(["--max-time", "60", &url])
            .output()
            .expect("curl is installed");
        let code = String::from_utf8_lossy(&out.stdout).into_owned();
        let ok = out.status.success() && code == "200";
        let why = format!("{code} {}", String::from_utf8_lossy(&out.stderr).trim());
        (ok, started.elapsed(), why)
    };
    assert!(request().0, "the daemon answers its own user over TCP");
    let rss_before = peak_rss_kb(d.pid());

    let mut helper = KillOnDrop(
        as_nobody(python)
            .args(["-c", FLOODER, &port])
            .args([
                INFLATE.to_string(),
                FLOOD_SECS.to_string(),
                THREADS.to_string(),
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let (said, lines) = std::sync::mpsc::channel::<String>();
    let stdout = helper.0.stdout.take().unwrap();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout).lines().take(10) {
            let Ok(line) = line else { break };
            if said.send(line).is_err() {
                break;
            }
        }
    });
    let helper_failed = |helper: &mut KillOnDrop| -> String {
        let _ = helper.0.kill();
        let mut err = String::new();
        use std::io::Read;
        if let Some(mut e) = helper.0.stderr.take() {
            let _ = e.read_to_string(&mut err);
        }
        err
    };
    let inflated = lines
        .recv_timeout(Duration::from_secs(180))
        .unwrap_or_else(|_| panic!("the table was not inflated: {}", helper_failed(&mut helper)));
    assert_eq!(inflated, format!("inflated {INFLATE}"));
    let table = std::io::BufRead::lines(std::io::BufReader::new(
        std::fs::File::open("/proc/net/tcp").unwrap(),
    ))
    .take(1_000_000)
    .count();
    eprintln!("/proc/net/tcp: {table} lines; the flood is on");

    // The daemon's own user, every 200 ms through the flood and a little after.
    let mut answers = Vec::new();
    let flood_started = Instant::now();
    let mut flooded = None;
    let mut after = 0;
    while after < 5 && answers.len() < 1000 {
        assert!(
            flood_started.elapsed() < Duration::from_secs(FLOOD_SECS + 180),
            "the flood did not end; answers so far: {answers:?}"
        );
        answers.push(request());
        if flooded.is_none() {
            match lines.try_recv() {
                Ok(line) => flooded = Some(line),
                Err(std::sync::mpsc::TryRecvError::Empty) => {}
                Err(std::sync::mpsc::TryRecvError::Disconnected) => {
                    panic!("the flood died: {}", helper_failed(&mut helper))
                }
            }
        } else {
            after += 1;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let rss_after = peak_rss_kb(d.pid());
    drop(helper);

    let flooded = flooded.unwrap();
    let worst = answers.iter().map(|a| a.1).max().unwrap();
    let mut sorted: Vec<Duration> = answers.iter().map(|a| a.1).collect();
    sorted.sort();
    let log = d.stderr();
    let refused: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("refused a TCP connection from another user"))
        .collect();
    let refusals = format!(
        "{} lines, {} of them naming uid 65534; the last: {}",
        refused.len(),
        refused.iter().filter(|l| l.contains("uid 65534")).count(),
        refused.last().copied().unwrap_or_default()
    );
    eprintln!(
        "{flooded} ({THREADS} threads, {FLOOD_SECS} s); {} requests of its own user: median {:?}, worst {worst:?}; \
         iapeerd peak RSS {} MB before the flood, {} MB after; refusals logged: {refusals}",
        answers.len(),
        sorted[sorted.len() / 2],
        rss_before / 1024,
        rss_after / 1024,
    );
    let failed: Vec<_> = answers.iter().filter(|a| !a.0).collect();
    assert!(
        failed.is_empty(),
        "requests of the daemon's own user failed: {failed:?}"
    );
    assert!(
        !refused.is_empty(),
        "the flood was never refused (did it reach the daemon?)"
    );
    assert!(
        rss_after < 100 * 1024,
        "the flood drove iapeerd's peak RSS to {} MB (from {} MB)",
        rss_after / 1024,
        rss_before / 1024
    );
    // A hang detector only; the real figure is printed above.
    assert!(
        worst < HANG,
        "a request of the daemon's own user took {worst:?}"
    );
}

/// Garbage planted at `<id>.pasting`: the peer stays deliverable, nothing
/// crashes, nothing outside the state dir is written.
#[test]
fn planted_pasting_records_do_not_wedge_or_escape() {
    let f = Fleet::new();
    let from = f.sender();
    let cwd = f.register("bob", "claude", &[]);
    f.ok(&["wake", "bob"]);
    let rec = f.state("claude-bob", "pasting");
    let outside = f.dir.path().join("outside.txt");
    std::fs::write(&outside, "precious").unwrap();
    type Case<'a> = (&'a str, Box<dyn Fn() + 'a>);
    let cases: Vec<Case> = vec![
        (
            "garbage",
            Box::new(|| std::fs::write(&rec, b"\x00\xff{{{not json").unwrap()),
        ),
        (
            "huge",
            Box::new(|| std::fs::write(&rec, vec![b'{'; 8 << 20]).unwrap()),
        ),
        (
            "empty-probe",
            Box::new(|| std::fs::write(&rec, r#"{"probe":"","shown":[]}"#).unwrap()),
        ),
        // A probe that is always in the composer rows (the status line).
        (
            "status-probe",
            Box::new(|| {
                std::fs::write(&rec, r#"{"probe":"bypass permissions","shown":[]}"#).unwrap()
            }),
        ),
        (
            "rule-shown",
            Box::new(|| {
                std::fs::write(
                    &rec,
                    format!(r#"{{"probe":"x","shown":["{}","❯"]}}"#, "─".repeat(60)),
                )
                .unwrap()
            }),
        ),
        ("symlink", Box::new(|| symlink(&outside, &rec).unwrap())),
        (
            "dangling",
            Box::new(|| symlink("/nonexistent/zz", &rec).unwrap()),
        ),
    ];
    for (i, (what, plant)) in cases.iter().enumerate() {
        let _ = std::fs::remove_file(&rec);
        plant();
        let msg = format!("after planted {what} {i}");
        let started = Instant::now();
        let o = f.run(&["send", "bob", "--from", from, "--message", &msg]);
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{what}: took {:?}",
            started.elapsed()
        );
        let t = f.claude_transcript(&cwd);
        eprintln!("{what}: {}", output_text(&o));
        if what.contains("symlink") || *what == "dangling" {
            // A link at a state file may be refused (never followed): the
            // message is kept, queued, and nothing is typed.
            if String::from_utf8_lossy(&o.stdout).contains("queued for bob") {
                assert_eq!(t.matches(&msg).count(), 0, "{what}:\n{t}");
                continue;
            }
        }
        assert!(o.status.success(), "{what}: {}", output_text(&o));
        assert_eq!(t.matches(&msg).count(), 1, "{what}:\n{t}");
        assert!(f.is_live("claude-bob"));
        assert_eq!(
            std::fs::read_to_string(&outside).unwrap(),
            "precious",
            "{what}"
        );
        assert!(!std::path::Path::new("/nonexistent/zz").exists());
    }
    assert_eq!(std::fs::read_to_string(&outside).unwrap(), "precious");
}

/// A directory or FIFO at `<id>.pasting`: said, not hung or crashed.
#[test]
fn a_directory_or_fifo_at_the_pasting_record() {
    let f = Fleet::new();
    let from = f.sender();
    let cwd = f.register("bob", "claude", &[]);
    f.ok(&["wake", "bob"]);
    let rec = f.state("claude-bob", "pasting");
    for what in ["dir", "fifo"] {
        let _ = std::fs::remove_file(&rec);
        let _ = std::fs::remove_dir_all(&rec);
        if what == "dir" {
            std::fs::create_dir(&rec).unwrap();
            std::fs::write(rec.join("x"), "y").unwrap();
        } else {
            assert!(Command::new("mkfifo").arg(&rec).status().unwrap().success());
        }
        let msg = format!("after a {what}");
        let mut child = f
            .cmd(&["send", "bob", "--from", from, "--message", &msg])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let started = Instant::now();
        while child.try_wait().unwrap().is_none() {
            if started.elapsed() > Duration::from_secs(30) {
                let _ = child.kill();
                panic!("{what}: send hung");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let o = child.wait_with_output().unwrap();
        let t = f.claude_transcript(&cwd);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!err.contains("panicked"), "{what}: {err}");
        if String::from_utf8_lossy(&o.stdout).contains("queued for bob") {
            // Kept in the mailbox; nothing typed.
            assert_eq!(t.matches(&msg).count(), 0, "{what}: queued but typed:\n{t}");
        } else if o.status.success() {
            assert_eq!(t.matches(&msg).count(), 1, "{what}:\n{t}");
        } else {
            assert!(err.contains("NOT delivered"), "{what}: {err}");
            assert_eq!(
                t.matches(&msg).count(),
                0,
                "{what}: refused but typed:\n{t}"
            );
        }
        eprintln!("{what}: {}", output_text(&o));
    }
}
