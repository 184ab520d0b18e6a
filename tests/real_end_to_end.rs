//! End to end with the real Claude Code and Codex CLIs (see
//! `common/real.rs`): peers message each other through the daemon's MCP
//! `send_to_peer`, are reaped and resume, start fresh when told, are
//! interrupted and compacted, die and are explained, and meet dialogs
//! nobody told the adapter about. Nothing is answered by hand.
//!
//! Without the CLIs the harness reports these tests ignored; CI sets
//! `IAPEER_REQUIRE_REAL_CLIS=1`, so there they must run.

use std::time::Duration;

use serde_json::{Value, json};

use crate::common::{self, Fleet, output_text};
use crate::real::*;
use crate::toolchain::Case;

/// `iapeer <args>` must succeed; its output.
fn ok(f: &Fleet, args: &[&str]) -> String {
    let o = f.run(args);
    assert!(o.status.success(), "iapeer {args:?}: {}", output_text(&o));
    output_text(&o)
}

/// The model's turns that carry `within` (one conversation's), and how
/// often `marker` is in the fullest of them.
fn count_in(model: &Model, within: &str, marker: &str) -> usize {
    model
        .turns()
        .iter()
        .filter(|t| t.contains(within))
        .map(|t| t.matches(marker).count())
        .max()
        .unwrap_or(0)
}

/// The turn request that first carried `marker`, serialized.
fn turn_with(model: &Model, marker: &str) -> Option<String> {
    model.turns().into_iter().find(|t| t.contains(marker))
}

/// An envelope from `who`, as the receiving model sees it (JSON-escaped).
fn from(who: &str) -> String {
    format!("from-personality=\\\"{who}\\\"")
}

/// A real claude (bob) asks iapeerd's MCP server to message a real claude
/// (alice) twice: the first wakes her, the second reaches her live. Each
/// arrives exactly once and bob's tool gets `ok`. `mcp-config --write`
/// left the real CLI seeing the server connected before any boot.
fn real_claude_to_real_claude_through_mcp() {
    let model = Model::start(false);
    let Some(f) = claude_fleet(&model) else {
        return;
    };
    let _daemon = f.start_daemon(&[]);
    f.sender();
    let bob = f.register("bob", "claude", &[]);
    f.register("alice", "claude", &[]);
    for peer in ["bob", "alice"] {
        ok(&f, &["mcp-config", "claude", peer, "--write"]);
    }
    let listed = run_real(&f, &real_claude().unwrap(), &["mcp", "list"], &bob);
    assert!(
        listed.contains("iapeer:") && listed.contains("✔ Connected"),
        "claude mcp list in a fresh peer folder:\n{listed}"
    );
    let call = |ask: &str, message: &str| {
        json!({"when": ask, "tool_use": {"name": "mcp__iapeer__send_to_peer",
            "input": {"personality": "alice", "message": message}}})
    };
    model.script(json!([
        call("mk-ask-1", "mkA1 hello alice"),
        {"when": "delivered_to", "reply": "sent the first"},
        call("mk-ask-2", "mkB2 again, alice"),
        {"when": "delivered_to", "reply": "sent the second"},
    ]));
    ok(&f, &["wake", "bob", "--message", "mk-ask-1 message alice"]);
    assert!(
        wait("alice hears bob", 60, || count_in(
            &model,
            &from("bob"),
            "mkA1"
        ) >= 1),
        "bob:\n{}\nalice:\n{}\nturns: {:#?}",
        f.pane("claude-bob"),
        f.pane("claude-alice"),
        model.turns()
    );
    assert!(wait("bob's second turn", 30, || model
        .ever("sent the first")
        || !tool_results(&model).is_empty()));
    settle(&f, "claude-bob");
    assert!(f.is_live("claude-alice"), "the message woke alice");
    settle(&f, "claude-alice");
    let (sent, out) = send(&f, "mk-ask-2 and once more");
    assert!(sent, "{out}");
    assert!(wait("alice hears bob again", 60, || count_in(
        &model,
        &from("bob"),
        "mkB2"
    ) >= 1));
    assert!(wait("both tool results", 30, || tool_results(&model).len() >= 2));
    settle(&f, "claude-alice");
    settle(&f, "claude-bob");
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(count_in(&model, &from("bob"), "mkA1"), 1, "exactly once");
    assert_eq!(count_in(&model, &from("bob"), "mkB2"), 1, "exactly once");
    let results = tool_results(&model);
    assert_eq!(results.len(), 2, "{results:#?}");
    for (result, woke) in results.iter().zip([true, false]) {
        assert_eq!(result["ok"], true, "{result}");
        assert_eq!(result["woke"], woke, "{result}");
        assert_eq!(result["delivered_to"]["personality"], "alice", "{result}");
    }
}

/// A real codex (bob) messages a real claude (alice) through the MCP
/// server `mcp-config codex --write` configured: alice is woken, hears it
/// once, and codex's tool gets `ok`.
fn real_codex_to_real_claude_through_mcp() {
    let codex_model = Model::start(true);
    let claude_model = Model::start(false);
    let Some(f) = with_real_claude(Fleet::new(), &claude_model) else {
        return;
    };
    let Some(f) = with_real_codex(f, &codex_model) else {
        return;
    };
    let _daemon = f.start_daemon(&[]);
    f.sender();
    f.register("bob", "codex", &[]);
    f.register("alice", "claude", &[]);
    ok(&f, &["mcp-config", "codex", "--write"]);
    ok(&f, &["mcp-config", "claude", "alice", "--write"]);
    codex_model.script(json!([
        {"tool_call": {"name": "send_to_peer", "namespace": "mcp__iapeer",
            "arguments": {"personality": "alice", "message": "mkC3 from codex"}}},
        {"reply": "sent it"},
    ]));
    ok(&f, &["wake", "bob", "--message", "mk-ask-3 message alice"]);
    assert!(
        wait("alice hears codex", 90, || count_in(
            &claude_model,
            &from("bob"),
            "mkC3"
        ) >= 1),
        "codex pane:\n{}",
        f.pane("codex-bob")
    );
    assert!(wait("codex's tool result", 30, || !tool_results(
        &codex_model
    )
    .is_empty()));
    settle(&f, "claude-alice");
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        count_in(&claude_model, &from("bob"), "mkC3"),
        1,
        "exactly once"
    );
    let results = tool_results(&codex_model);
    assert_eq!(results.len(), 1, "{results:#?}");
    assert_eq!(results[0]["ok"], true, "{results:#?}");
    assert_eq!(results[0]["woke"], true, "{results:#?}");
    assert_eq!(
        results[0]["delivered_to"]["runtime"], "claude",
        "{results:#?}"
    );
}

/// Reaped when idle, then a message resumes the conversation (the model
/// sees the first turn again); `mark-new` and `new` start fresh ones.
fn reap_resume_and_fresh(runtime: &str) {
    let Some((model, f)) = real_fleet(runtime) else {
        return;
    };
    let id = format!("{runtime}-bob");
    boot(&f, &model, runtime);
    let reap = |f: &Fleet| {
        std::thread::sleep(Duration::from_secs(3));
        let out = ok(f, &["supervise", "--once", "--idle-secs", "2", "--json"]);
        assert!(!f.is_live(&id), "reaped when idle: {out}");
    };
    reap(&f);
    let (sent, out) = send(&f, "rs1mark second turn");
    assert!(sent, "{out}");
    assert!(wait("the resumed turn", 60, || model.ever("rs1mark")));
    let resumed = turn_with(&model, "rs1mark").unwrap();
    assert!(
        resumed.contains("boot0"),
        "the second turn carries the first: {resumed}"
    );
    settle(&f, &id);

    // Marked new, then gone: the next start is fresh.
    ok(&f, &["mark-new", "bob"]);
    reap(&f);
    let (sent, out) = send(&f, "fr2mark after mark-new");
    assert!(sent, "{out}");
    assert!(wait("the fresh turn", 60, || model.ever("fr2mark")));
    let fresh = turn_with(&model, "fr2mark").unwrap();
    assert!(
        !fresh.contains("boot0") && !fresh.contains("rs1mark"),
        "fresh: {fresh}"
    );
    settle(&f, &id);

    // `new`: an unconditional fresh restart of the live peer.
    ok(&f, &["new", "bob"]);
    assert!(wait("up again", 60, || f.is_live(&id) && idle(&f, &id)));
    settle(&f, &id);
    let (sent, out) = send(&f, "fr3mark after new");
    assert!(sent, "{out}");
    assert!(wait("the turn after new", 60, || model.ever("fr3mark")));
    let fresh = turn_with(&model, "fr3mark").unwrap();
    assert!(!fresh.contains("fr2mark"), "fresh after new: {fresh}");
}

fn real_claude_reaped_resumes_and_starts_fresh_when_told() {
    reap_resume_and_fresh("claude");
}

fn real_codex_reaped_resumes_and_starts_fresh_when_told() {
    reap_resume_and_fresh("codex");
}

/// `interrupt` ends a turn the model holds open; `compact` then runs the
/// runtime's compaction (a request at the model); both answer at once.
fn interrupt_and_compact(runtime: &str) {
    let Some((model, f)) = real_fleet(runtime) else {
        return;
    };
    let id = format!("{runtime}-bob");
    boot(&f, &model, runtime);
    model.script(json!([{"hold_secs": 120, "reply": "never finished"}]));
    let (sent, out) = send(&f, "ht1mark hold this turn");
    assert!(sent, "{out}");
    let busy = |f: &Fleet| f.pane(&id).contains("esc to interrupt");
    assert!(wait("the held turn", 30, || model.ever("ht1mark") && busy(&f)));
    let out = ok(&f, &["interrupt", "bob"]);
    assert!(out.contains("interrupt sent"), "{out}");
    // The model holds the turn for 120 s: idle now means interrupted.
    assert!(
        wait("the turn ends", 20, || !busy(&f) && idle(&f, &id)),
        "still busy after interrupt:\n{}",
        f.pane(&id)
    );
    settle(&f, &id);
    let before = requests(&model).len();
    let out = f.run(&["compact", "bob"]);
    assert!(
        out.status.success(),
        "{}\n{}",
        output_text(&out),
        f.pane(&id)
    );
    // Each runtime's own compaction prompt, in the request's last user
    // input (every request mentions summaries somewhere: tool texts,
    // `reasoning.summary`).
    let compaction = |r: &Value| {
        let last_input = if runtime == "codex" {
            r["body"]["input"]
                .as_array()
                .and_then(|i| i.last())
                .cloned()
        } else {
            r["body"]["messages"]
                .as_array()
                .and_then(|m| m.iter().rev().find(|m| m["role"] == "user"))
                .cloned()
        };
        let text = last_input.unwrap_or_default().to_string();
        text.contains("CONTEXT CHECKPOINT COMPACTION")
            || text.contains("create a detailed summary of the conversation so far")
    };
    assert!(
        wait("a compaction at the model", 30, || requests(&model)
            [before..]
            .iter()
            .any(compaction)),
        "pane:\n{}",
        f.pane(&id)
    );
    settle(&f, &id);
    let (sent, out) = send(&f, "af4mark after compact");
    assert!(sent, "{out}\n{}", f.pane(&id));
    assert!(wait("a turn after compact", 30, || model.ever("af4mark")));
}

fn real_claude_interrupted_and_compacted() {
    interrupt_and_compact("claude");
}

fn real_codex_interrupted_and_compacted() {
    interrupt_and_compact("codex");
}

/// A runtime killed from outside: the next look names how it ended; a
/// runtime refusing to start says why in the wake's error.
fn death_is_explained(runtime: &str) {
    let codex = runtime == "codex";
    let Some((model, mut f)) = real_fleet(runtime) else {
        return;
    };
    let id = format!("{runtime}-bob");
    boot(&f, &model, runtime);
    let pid = runtime_pid(&f, &id).expect("the runtime's process");
    assert!(
        std::process::Command::new("kill")
            .args(["-9", &pid.to_string()])
            .status()
            .unwrap()
            .success()
    );
    assert!(wait("the session ends", 20, || !f.is_live(&id)));
    let listed = ok(&f, &["list", "--plain"]);
    assert!(listed.contains("killed by signal 9"), "{listed}");
    let exit: Value =
        serde_json::from_str(&std::fs::read_to_string(f.state(&id, "exit")).unwrap()).unwrap();
    assert_eq!(exit["signal"], 9, "{exit}");
    if !codex && running_as_root() {
        // As root without the sandbox marker, Claude Code refuses bypass
        // mode and exits: the wake says so in its own words.
        f.unset_env("IS_SANDBOX");
        let out = f.run(&["wake", "bob", "--message", "dd5mark refused"]);
        assert!(!out.status.success());
        let text = output_text(&out);
        assert!(
            text.contains("claude exited (status 1) during boot")
                && text.contains("cannot be used with root/sudo privileges"),
            "{text}"
        );
    }
}

fn running_as_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
}

fn real_claude_death_is_explained() {
    death_is_explained("claude");
}

fn real_codex_death_is_explained() {
    death_is_explained("codex");
}

/// A message while the real claude asks permission for `Bash` (a project
/// `ask` rule, which bypass mode honours): kept in the mailbox, no key
/// reaches the prompt (a stray Enter would approve it), the command never
/// runs; `interrupt` and `compact` are refused. Once the operator answers
/// (No), the daemon delivers the kept message, once.
fn real_claude_message_during_a_permission_prompt() {
    let model = Model::start(false);
    let Some(f) = claude_fleet(&model) else {
        return;
    };
    f.sender();
    let cwd = f.register("bob", "claude", &[]);
    std::fs::create_dir_all(cwd.join(".claude")).unwrap();
    std::fs::write(
        cwd.join(".claude/settings.local.json"),
        r#"{"permissions":{"ask":["Bash"]}}"#,
    )
    .unwrap();
    model.script(json!([{"when": "pm0mark", "tool_use": {"name": "Bash",
        "input": {"command": "touch ran-it", "description": "touch a file"}}}]));
    ok(&f, &["wake", "bob", "--message", "pm0mark run it"]);
    assert!(wait("the permission prompt", 30, || f
        .pane("claude-bob")
        .contains("Do you want to proceed?")));
    let (sent, out) = send(&f, "pm1mark while it asks");
    assert!(!sent && queued(&out), "{out}");
    assert!(out.contains("shows a dialog or prompt"), "{out}");
    for verb in ["interrupt", "compact"] {
        let o = f.run(&[verb, "bob"]);
        assert!(!o.status.success(), "{verb}: {}", output_text(&o));
    }
    std::thread::sleep(Duration::from_secs(3));
    let pane = f.pane("claude-bob");
    assert!(pane.contains("Do you want to proceed?"), "{pane}");
    assert!(!pane.contains("pm1mark"), "{pane}");
    assert!(!model.ever("pm1mark"));
    assert!(!cwd.join("ran-it").exists(), "the command was approved");
    assert!(tool_results(&model).is_empty());

    // The operator says no; the daemon's next look delivers the kept
    // message, once, and nothing was approved.
    let d = f.start_daemon(&[]);
    keys(&f, "claude-bob", &["Escape"]);
    assert!(
        wait("the kept message at the model", 60, || model
            .ever("pm1mark")),
        "pane:\n{}",
        f.pane("claude-bob")
    );
    settle(&f, "claude-bob");
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(model.count("pm1mark"), 1);
    assert!(!cwd.join("ran-it").exists(), "the command was approved");
    drop(d);
}

/// A screen the adapter does not know and that does not change (claude:
/// which API key to bill; codex: its sign-in picker) fails the boot in
/// seconds, not at the boot deadline, with its words and the version.
fn unknown_screen_fails_fast(runtime: &str) {
    let codex = runtime == "codex";
    let Some((model, f)) = real_fleet(runtime) else {
        return;
    };
    if codex {
        // No model provider: Codex asks how to sign in.
        std::fs::remove_file(f.home.join(".codex/config.toml")).unwrap();
    } else {
        // The stand-in's key never approved: Claude Code asks about it.
        std::fs::write(
            f.home.join(".claude.json"),
            r#"{"hasCompletedOnboarding":true}"#,
        )
        .unwrap();
    }
    f.register("bob", runtime, &[]);
    let out = f.run(&["wake", "bob", "--message", "uk0mark never typed"]);
    let text = output_text(&out);
    assert!(!out.status.success(), "{text}");
    // "stuck at a screen" is the stillness rule's verdict, never the deadline's.
    let (words, bin) = if codex {
        ("Sign in with ChatGPT", real_codex().unwrap())
    } else {
        ("Do you want to use this API key?", real_claude().unwrap())
    };
    let version = format!("runtime {}", cli_version(&bin));
    assert!(
        text.contains("stuck at a screen") && text.contains(words) && text.contains(&version),
        "{text}"
    );
    assert!(!model.ever("uk0mark"));
    assert!(!f.is_live(&format!("{runtime}-bob")));
}

fn real_claude_unknown_screen_fails_fast() {
    unknown_screen_fails_fast("claude");
}

fn real_codex_unknown_screen_fails_fast() {
    unknown_screen_fails_fast("codex");
}

/// `doctor` on the real CLI: a runtime boots in a new empty folder, a peer
/// in its own (while the peer is live), each to input-ready; the version
/// matches the one the adapter was verified with, and the model never
/// hears a turn (not even the peer's profile prompt).
fn doctor(runtime: &str) {
    let codex = runtime == "codex";
    let Some((model, f)) = real_fleet(runtime) else {
        return;
    };
    let cwd = f.register("bob", runtime, &[]);
    let bin = if codex { real_codex() } else { real_claude() }.unwrap();
    let version = cli_version(&bin);
    // Under drift watch the runtime is newer than the adapter's verified one.
    let judged = if is_pinned(&bin) {
        "— the version the adapter was verified with"
    } else {
        "— NOT the version the adapter was verified with"
    };
    for (name, folder) in [
        (runtime, "(new and empty)".to_string()),
        ("bob", cwd.display().to_string()),
    ] {
        if name == "bob" {
            // bob is live while the doctor boots in his folder, and his
            // profile has a first prompt for fresh starts: neither matters.
            f.sender();
            ok(&f, &["wake", "bob"]);
            std::fs::create_dir_all(cwd.join(".iapeer")).unwrap();
            std::fs::write(
                cwd.join(".iapeer/peer-profile.json"),
                json!({"personality": "bob", "default_runtime": runtime,
                    "initial_prompt": "sd9mark never typed by the doctor"})
                .to_string(),
            )
            .unwrap();
        }
        let panes = f.dir.path().join(format!("panes-{name}"));
        let out = ok(
            &f,
            &["doctor", name, "--save-panes", panes.to_str().unwrap()],
        );
        let mut saved: Vec<String> = std::fs::read_dir(&panes)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        saved.sort();
        assert!(
            saved.last().is_some_and(|l| l.ends_with("-ready.txt")),
            "{saved:?}"
        );
        if name == runtime {
            write_goldens(runtime, &version, &panes);
        }
        for step in [
            format!("doctor: {runtime}"),
            format!("version  {version} {judged}"),
            folder,
            "pane judged ready".into(),
            format!("ok: {runtime}-doctor woke"),
        ] {
            assert!(out.contains(&step), "{step:?} missing:\n{out}");
        }
        assert!(!out.contains("pasted"), "{out}");
    }
    assert!(
        model.turns().is_empty(),
        "nothing typed: {:#?}",
        model.turns()
    );
    assert!(
        f.is_live(&format!("{runtime}-bob")),
        "the doctor left bob's session alone"
    );
    assert!(!f.is_live(&format!("{runtime}-doctor")));
}

/// With `IAPEER_WRITE_GOLDENS=1`, a fresh-folder boot's screens become
/// the goldens of this version (`fixtures/panes/real/<rt>-<version>/doctor/`),
/// which `adapters.rs` judges again on every run.
fn write_goldens(runtime: &str, version: &str, panes: &std::path::Path) {
    if std::env::var_os("IAPEER_WRITE_GOLDENS").is_none() {
        return;
    }
    let number = version
        .split_whitespace()
        .find(|w| w.starts_with(|c: char| c.is_ascii_digit()))
        .unwrap();
    let dir = common::repo_root()
        .join("tests/fixtures/panes/real")
        .join(format!("{runtime}-{number}/doctor"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    for e in std::fs::read_dir(panes).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), dir.join(e.file_name())).unwrap();
    }
    eprintln!("goldens written to {}", dir.display());
}

fn real_claude_doctor() {
    doctor("claude");
}

fn real_codex_doctor() {
    doctor("codex");
}

pub const CASES: &[Case] = crate::cases![
    real_claude_to_real_claude_through_mcp,
    real_codex_to_real_claude_through_mcp,
    real_claude_reaped_resumes_and_starts_fresh_when_told,
    real_codex_reaped_resumes_and_starts_fresh_when_told,
    real_claude_interrupted_and_compacted,
    real_codex_interrupted_and_compacted,
    real_claude_death_is_explained,
    real_codex_death_is_explained,
    real_claude_message_during_a_permission_prompt,
    real_claude_unknown_screen_fails_fast,
    real_codex_unknown_screen_fails_fast,
    real_claude_doctor,
    real_codex_doctor,
];
