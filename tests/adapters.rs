//! Goldens for every adapter function, called through the real wasm
//! components (plugins-dist/*.wasm) in the real sandbox, against temporary
//! HOME trees.

use crate::common;
use crate::gemini;

use std::path::Path;
use std::sync::Arc;

use common::{Block, plugin_host, repo_root, write_with_mtime};
use gemini::{argv, gemini_goldens, spec, strs};
use iapeer::plugins::{Adapter, AdapterError, AdapterKind, ResumeCheck};

fn adapter(home: &Path, runtime: &str) -> Arc<Adapter> {
    let host = plugin_host(home, vec![]);
    host.adapter(runtime)
        .unwrap_or_else(|| panic!("built-in {runtime} adapter loaded"))
        .clone()
}

fn gemini(home: &Path) -> Arc<Adapter> {
    let host = plugin_host(home, vec![repo_root().join("plugins-dist/examples")]);
    host.adapter("gemini")
        .expect("example adapter loads")
        .clone()
}

fn pane(name: &str) -> String {
    std::fs::read_to_string(repo_root().join("tests/fixtures/panes").join(name)).unwrap()
}

// ---- info ------------------------------------------------------------------

#[test]
fn infos_of_the_builtins() {
    let home = tempfile::tempdir().unwrap();
    let host = plugin_host(home.path(), vec![]);
    let runtimes: Vec<&str> = host.runtimes().collect();
    assert_eq!(runtimes, ["claude", "codex", "notifier", "telegram"]);

    let claude = host.adapter("claude").unwrap().info().clone();
    assert_eq!(claude.kind, AdapterKind::Tui);
    assert!(claude.uses_doctrine);
    assert_eq!(claude.default_binary, "~/.local/bin/claude");
    assert_eq!(claude.binary_env.as_deref(), Some("IAPEER_CLAUDE_BIN"));
    assert_eq!(claude.read_dirs, [".claude/projects"]);
    assert_eq!(claude.requires_intelligence, None);

    let codex = host.adapter("codex").unwrap().info().clone();
    assert_eq!(codex.kind, AdapterKind::Tui);
    assert_eq!(codex.default_binary, "codex");
    assert_eq!(codex.binary_env.as_deref(), Some("IAPEER_CODEX_BIN"));
    assert_eq!(codex.read_dirs, [".codex/sessions"]);

    let telegram = host.adapter("telegram").unwrap().info().clone();
    assert_eq!(telegram.kind, AdapterKind::Router);
    assert!(!telegram.uses_doctrine);
    assert_eq!(telegram.requires_intelligence.as_deref(), Some("natural"));
    assert_eq!(telegram.default_binary, "telegram-runtime");
    assert_eq!(telegram.binary_env.as_deref(), Some("TELEGRAM_RUNTIME_BIN"));
    assert!(telegram.read_dirs.is_empty());

    let notifier = host.adapter("notifier").unwrap().info().clone();
    assert_eq!(notifier.kind, AdapterKind::Router);
    assert_eq!(notifier.requires_intelligence, None);
    assert_eq!(notifier.default_binary, "notifier-runtime");
    assert_eq!(notifier.binary_env.as_deref(), Some("NOTIFIER_RUNTIME_BIN"));
}

// ---- build-launch ----------------------------------------------------------

#[test]
fn claude_argv_goldens() {
    let home = tempfile::tempdir().unwrap();
    let a = adapter(home.path(), "claude");
    let base =
        "/h/.local/bin/claude --dangerously-skip-permissions --disallowedTools AskUserQuestion";

    let mut s = spec("/h/.local/bin/claude", "/w");
    assert_eq!(argv(&a, &s), base);

    s.system_prompt_file = Some("/st/claude-bob.system-prompt.md".into());
    assert_eq!(
        argv(&a, &s),
        format!("{base} --system-prompt-file /st/claude-bob.system-prompt.md")
    );

    s.resume = true;
    s.resume_ref = Some("0b5e1c1e-2f6a-4c1e-9a7e-1d2c3b4a5f60".into());
    s.extra_args = strs(&["--model", "opus", "--verbose"]);
    let resumed = argv(&a, &s);
    assert_eq!(
        resumed,
        format!(
            "{base} --system-prompt-file /st/claude-bob.system-prompt.md --continue --model opus --verbose"
        )
    );
    // Resume continues; it never names the session (claude would open a picker).
    assert!(!resumed.contains("--resume"));
    assert!(!resumed.contains("0b5e1c1e"));

    let mut s = spec("/c", "/w");
    s.resume = true;
    assert_eq!(
        argv(&a, &s),
        "/c --dangerously-skip-permissions --disallowedTools AskUserQuestion --continue"
    );
    assert!(a.build_launch(&s).block().unwrap().env.is_empty());
}

#[test]
fn codex_argv_goldens() {
    let home = tempfile::tempdir().unwrap();
    let a = adapter(home.path(), "codex");
    let mut s = spec("codex", "/w");
    assert_eq!(
        argv(&a, &s),
        "codex --no-alt-screen -C /w --dangerously-bypass-approvals-and-sandbox"
    );
    s.resume = true;
    s.system_prompt_file = Some("/sp.md".into());
    assert_eq!(
        argv(&a, &s),
        "codex resume --last --no-alt-screen -C /w -c model_instructions_file=/sp.md --dangerously-bypass-approvals-and-sandbox"
    );
    s.extra_args = strs(&["--search"]);
    let cmd = a.build_launch(&s).block().unwrap();
    assert_eq!(cmd.argv.last().unwrap(), "--search");
    // The prompt path is one argv element, unquoted.
    let mut s = spec("codex", "/w w");
    s.system_prompt_file = Some("/a b/sp.md".into());
    let cmd = a.build_launch(&s).block().unwrap();
    assert!(
        cmd.argv
            .contains(&"model_instructions_file=/a b/sp.md".to_string())
    );
    assert!(cmd.argv.contains(&"/w w".to_string()));
    assert_eq!(
        cmd.env,
        [(
            "IAPEER_BEARER".to_string(),
            "iapeer-localhost-open-no-secret".to_string()
        )]
    );
}

#[test]
fn router_argv_goldens_and_the_telegram_gate() {
    let home = tempfile::tempdir().unwrap();
    let n = adapter(home.path(), "notifier");
    assert_eq!(
        argv(&n, &spec("notifier-runtime", "/w")),
        "notifier-runtime run"
    );
    let mut s = spec("/n/bin", "/w");
    s.extra_args = strs(&["--foo"]);
    assert_eq!(
        n.build_launch(&s).block().unwrap().argv,
        strs(&["/n/bin", "run", "--foo"])
    );
    // Routers ignore resume and prompt.
    s.resume = true;
    s.system_prompt_file = Some("/sp".into());
    assert_eq!(
        n.build_launch(&s).block().unwrap().argv,
        strs(&["/n/bin", "run", "--foo"])
    );

    let t = adapter(home.path(), "telegram");
    let mut s = spec("telegram-runtime", "/w");
    match t.build_launch(&s).block() {
        Err(AdapterError::Refused(m)) => {
            assert!(m.contains("requires intelligence=natural"), "{m}");
            assert!(m.contains("unknown"), "{m}");
        }
        other => panic!("absent intelligence must be refused: {other:?}"),
    }
    s.intelligence = Some("artificial".into());
    match t.build_launch(&s).block() {
        Err(AdapterError::Refused(m)) => assert!(m.contains("artificial"), "{m}"),
        other => panic!("artificial must be refused: {other:?}"),
    }
    s.intelligence = Some("natural".into());
    s.extra_args = strs(&["--x"]);
    assert_eq!(
        t.build_launch(&s).block().unwrap().argv,
        strs(&["telegram-runtime", "run", "--x"])
    );
}

// ---- transcripts: claude slug rule -----------------------------------------

fn claude_transcript(home: &Path, slug: &str, id: &str, mtime: u64) {
    write_with_mtime(
        &home
            .join(".claude/projects")
            .join(slug)
            .join(format!("{id}.jsonl")),
        "{}\n",
        mtime,
    );
}

#[test]
fn claude_slug_rule() {
    let home = tempfile::tempdir().unwrap();
    let a = adapter(home.path(), "claude");
    let cases = [
        ("/Users/x/.iapeer/peers/bob", "-Users-x--iapeer-peers-bob"),
        ("/Users/x/my_proj.v2", "-Users-x-my-proj-v2"),
        ("/w/café", "-w-caf-"),
        ("/w/项目", "-w---"),
        // Outside the BMP: two UTF-16 code units, two dashes (as claude's JS does).
        ("/w/a😀b", "-w-a--b"),
        ("/w/a b;c$(d)", "-w-a-b-c--d-"),
    ];
    for (i, (cwd, slug)) in cases.iter().enumerate() {
        let mtime = 1_700_000_000_000 + i as u64;
        claude_transcript(home.path(), slug, "abc", mtime);
        assert_eq!(
            a.newest_activity_mtime(cwd).block().unwrap(),
            Some(mtime),
            "{cwd} -> {slug}"
        );
    }
}

#[test]
fn claude_transcript_scan() {
    let home = tempfile::tempdir().unwrap();
    let a = adapter(home.path(), "claude");
    let cwd = "/w/proj";
    assert_eq!(a.newest_activity_mtime(cwd).block().unwrap(), None);
    assert_eq!(
        a.resolve_resume(cwd).block().unwrap(),
        ResumeCheck::Nothing("no transcript to resume".into())
    );
    claude_transcript(home.path(), "-w-proj", "older", 1_000_000);
    claude_transcript(home.path(), "-w-proj", "newest", 3_000_000);
    claude_transcript(home.path(), "-w-proj", "middle", 2_000_000);
    // Not transcripts: other suffixes and directories.
    write_with_mtime(
        &home.path().join(".claude/projects/-w-proj/notes.txt"),
        "x",
        9_000_000,
    );
    std::fs::create_dir_all(home.path().join(".claude/projects/-w-proj/dir.jsonl")).unwrap();
    // Another project's transcript does not count.
    claude_transcript(home.path(), "-w-other", "foreign", 8_000_000);

    assert_eq!(
        a.newest_activity_mtime(cwd).block().unwrap(),
        Some(3_000_000)
    );
    assert_eq!(
        a.resolve_resume(cwd).block().unwrap(),
        ResumeCheck::Resumable(Some("newest".into()))
    );
}

// ---- transcripts: codex session matching ------------------------------------

fn session_meta(cwd: &str) -> String {
    format!(
        "{}\n{{\"type\":\"response_item\"}}\n",
        serde_json::json!({"type": "session_meta", "payload": {"id": "s", "cwd": cwd, "instructions": "long text"}})
    )
}

#[test]
fn codex_session_matching() {
    let home = tempfile::tempdir().unwrap();
    let a = adapter(home.path(), "codex");
    let work = tempfile::tempdir().unwrap();
    let cwd = work.path().canonicalize().unwrap();
    let cwd = cwd.to_str().unwrap();
    let sessions = home.path().join(".codex/sessions");

    assert_eq!(a.newest_activity_mtime(cwd).block().unwrap(), None);
    assert_eq!(
        a.resolve_resume(cwd).block().unwrap(),
        ResumeCheck::Nothing("no codex session to resume".into())
    );

    write_with_mtime(
        &sessions.join("2026/11/20/rollout-a.jsonl"),
        &session_meta(cwd),
        1_000,
    );
    write_with_mtime(
        &sessions.join("2026/11/24/rollout-b.jsonl"),
        &session_meta(cwd),
        5_000,
    );
    // Newer, but for another cwd.
    write_with_mtime(
        &sessions.join("2026/11/25/rollout-c.jsonl"),
        &session_meta("/elsewhere"),
        9_000,
    );
    // Newer, but malformed first line / not session_meta / cwd not a string / not .jsonl.
    write_with_mtime(
        &sessions.join("2026/11/25/rollout-d.jsonl"),
        "{not json\n",
        9_100,
    );
    write_with_mtime(
        &sessions.join("2026/11/25/rollout-e.jsonl"),
        &format!(
            "{}\n",
            serde_json::json!({"type": "turn", "payload": {"cwd": cwd}})
        ),
        9_200,
    );
    write_with_mtime(
        &sessions.join("2026/11/25/rollout-f.jsonl"),
        &format!(
            "{}\n",
            serde_json::json!({"type": "session_meta", "payload": {"cwd": 7}})
        ),
        9_300,
    );
    write_with_mtime(
        &sessions.join("2026/11/25/rollout-g.json"),
        &session_meta(cwd),
        9_400,
    );
    write_with_mtime(&sessions.join("2026/11/25/empty.jsonl"), "", 9_500);

    assert_eq!(a.newest_activity_mtime(cwd).block().unwrap(), Some(5_000));
    assert_eq!(
        a.resolve_resume(cwd).block().unwrap(),
        ResumeCheck::Resumable(None)
    );

    // A session recorded under a symlinked alias of the cwd matches too.
    let alias_dir = tempfile::tempdir().unwrap();
    let alias = alias_dir.path().join("alias");
    std::os::unix::fs::symlink(cwd, &alias).unwrap();
    write_with_mtime(
        &sessions.join("2026/11/26/rollout-h.jsonl"),
        &session_meta(alias.to_str().unwrap()),
        7_000,
    );
    assert_eq!(a.newest_activity_mtime(cwd).block().unwrap(), Some(7_000));
}

#[test]
fn gemini_example_adapter() {
    let home = tempfile::tempdir().unwrap();
    gemini_goldens(&gemini(home.path()), home.path());
}

// ---- panes: dialogs, readiness, control keys -------------------------------

fn real(name: &str) -> String {
    pane(&format!("real/{name}"))
}

/// A ready pane whose conversation (above the composer) quotes `phrase`,
/// as a resumed session shows it.
fn with_history(ready: &str, marker_line: &str, phrase: &str) -> String {
    let quoted = format!("{marker_line}{phrase} (quoted from an earlier message)");
    let mut rows: Vec<String> = ready.lines().map(str::to_string).collect();
    let at = rows
        .iter()
        .rposition(|r| r.starts_with(marker_line.trim_end()))
        .expect("the ready pane has a message row");
    rows.insert(at + 1, quoted.clone());
    rows.insert(at + 1, quoted);
    rows.join("\n")
}

const CLAUDE: &str = "claude-2.1.332";
const CODEX: &str = "codex-0.171.0";

/// One runtime's real panes: each pane that is not an empty composer gets
/// the expected key (or none) and is not ready for a message; each empty
/// composer is ready and gets no key.
fn judge_real_panes(
    runtime: &str,
    dir: &str,
    not_ready: &[(&str, Option<&str>)],
    composers: &[&str],
) {
    let home = tempfile::tempdir().unwrap();
    let a = adapter(home.path(), runtime);
    let keys = |p: &str| {
        a.boot_dialog_keys(&real(&format!("{dir}/{p}")))
            .block()
            .unwrap()
    };
    let ready = |p: &str| {
        a.is_input_ready(&real(&format!("{dir}/{p}")))
            .block()
            .unwrap()
    };
    for &(pane, expected) in not_ready {
        assert_eq!(keys(pane), expected.map(|k| strs(&[k])), "{dir}/{pane}");
        assert!(!ready(pane), "{dir}/{pane}: not ready for a message");
    }
    for &pane in composers {
        assert!(ready(pane), "{dir}/{pane}");
        assert_eq!(keys(pane), None, "{dir}/{pane}");
    }
}

/// Each dialog of the pinned versions, cursor on each option: move to the
/// intended answer, confirm only once the cursor is on it.
#[test]
fn claude_answers_real_dialogs_by_meaning() {
    judge_real_panes(
        "claude",
        CLAUDE,
        &[
            ("trust-opt1-no.txt", Some("Down")),
            ("trust-opt2-yes.txt", Some("Enter")),
            ("trust-with-mcpjson-opt1-no.txt", Some("Down")),
            ("trust-with-mcpjson-opt2-yes.txt", Some("Enter")),
            ("adddir-opt1-no.txt", Some("Down")),
            ("adddir-opt2-yes.txt", Some("Enter")),
            ("bypass-opt1-no.txt", Some("Down")),
            ("bypass-opt2-yes.txt", Some("Enter")),
            ("mcp-opt1-use-this.txt", Some("Down")),
            ("mcp-opt2-use-all-future.txt", Some("Enter")),
            ("mcp-opt3-continue-without.txt", Some("Up")),
            // Which API key to bill is the operator's decision: never answered.
            ("apikey-opt1-yes.txt", None),
            ("apikey-opt2-no.txt", None),
            // A permission prompt (no bypass): never a key, whatever the cursor.
            ("perm-bash-opt1.txt", None),
            ("perm-bash-opt2.txt", None),
            ("perm-bash-opt3.txt", None),
            ("perm-bash-opt4.txt", None),
            // The rewind menu a double Escape opens.
            ("empty-esc-esc.txt", None),
            // A composer holding text: a draft, or a paste not yet sent (a
            // message pasted there would go out with it).
            ("working-with-typed-text.txt", None),
            ("composer-typed-after-turn.txt", None),
            ("paste-short-oneline.txt", None),
            ("paste-two-lines.txt", None),
            ("paste-long-30-lines.txt", None),
        ],
        &[
            "ready-after-dialogs.txt",
            "ready-after-one-turn.txt",
            "ready-with-mcp.txt",
            "working-2s.txt",
            "working-8s.txt",
            "ready-default-permissions.txt",
            // A resumed conversation quoting dialogs, option rows and all.
            "continue-ready-history-phrases.txt",
        ],
    );
}

/// A resumed conversation that quotes a dialog's words is still just a
/// conversation: the composer below it is ready and no key is sent.
#[test]
fn dialog_words_in_the_history_are_not_a_dialog() {
    let home = tempfile::tempdir().unwrap();
    let claude = adapter(home.path(), "claude");
    let ready = real(&format!("{CLAUDE}/ready-after-one-turn.txt"));
    for phrase in [
        "trust this folder",
        "Quick safety check: Is this a project you created or one you trust?",
        "new MCP server",
        "New MCP server found in this project: iapeer",
        "Bypass Permissions mode",
        "Adding a new directory:",
        "Resume from summary",
        "Resuming the full session",
        "Allow external CLAUDE.md file imports?",
        "Do you want to proceed?",
        "❯ 1. Yes",
        "Enter to confirm · Esc to cancel",
    ] {
        let pane = with_history(&ready, "● ", phrase);
        assert!(
            claude.is_input_ready(&pane).block().unwrap(),
            "claude: {phrase}\n{pane}"
        );
        assert_eq!(
            claude.boot_dialog_keys(&pane).block().unwrap(),
            None,
            "claude: {phrase}"
        );
    }
    let codex = adapter(home.path(), "codex");
    let ready = real(&format!("{CODEX}/ready-after-turns.txt"));
    for phrase in [
        "Do you trust the contents of this directory?",
        "Trust this folder? Codex can read, edit, and run files here",
        "Update available! 0.171.0 -> 0.172.0",
        "Press enter to continue",
        "Hooks need review",
        "› 1. Trust and continue",
        "Use existing model",
    ] {
        let pane = with_history(&ready, "• ", phrase);
        assert!(
            codex.is_input_ready(&pane).block().unwrap(),
            "codex: {phrase}\n{pane}"
        );
        assert_eq!(
            codex.boot_dialog_keys(&pane).block().unwrap(),
            None,
            "codex: {phrase}"
        );
    }
}

#[test]
fn codex_answers_real_dialogs_by_meaning() {
    judge_real_panes(
        "codex",
        CODEX,
        &[
            ("trust-git-opt1.txt", Some("Enter")),
            ("trust-git-opt2.txt", Some("Up")),
            ("model-migration-opt1.txt", Some("Down")),
            ("model-migration-opt2.txt", Some("Enter")),
            ("update-opt1.txt", Some("Down")),
            ("update-opt2.txt", Some("Enter")),
            ("update-opt3.txt", Some("Up")),
            ("hooks-opt1.txt", Some("Down")),
            ("hooks-opt2.txt", Some("Enter")),
            ("hooks-opt3.txt", Some("Up")),
            // Approvals are never answered.
            ("approval-exec-opt1.txt", None),
            ("approval-exec-opt2.txt", None),
            ("approval-exec-opt3.txt", None),
            ("approval-patch-opt1.txt", None),
            // Screens that are no composer: the hooks review (its `t`
            // trusts all), the transcript browser (Enter rewinds), the
            // composer shown for a moment before the startup dialogs.
            ("hooks-review-screen.txt", None),
            ("esc-esc-empty-with-history.txt", None),
            ("startup-transient-before-dialogs.txt", None),
            // A composer holding text.
            ("working-with-draft.txt", None),
            ("paste-short.txt", None),
            ("paste-long.txt", None),
        ],
        &[
            "ready-first-launch.txt",
            "ready-after-turns.txt",
            "ready-quiet-config.txt",
            "ready-nongit-no-bypass.txt",
            "ready-with-update-banner.txt",
            "working-1.txt",
            "working-2.txt",
            "working-tool-running.txt",
            "working-message-queued.txt",
            "mcp-tool-call-done.txt",
        ],
    );
}

/// A message whose lines look like the TUI's own rows (a model's bullets,
/// a rule of dashes), shown in the composer: text there is no empty
/// composer; once the host takes its own paste out of the rows (blank
/// rows under the prompt), the composer is ready, the lookalike rows gone.
#[test]
fn a_composer_is_ready_only_when_empty_of_others_text() {
    let home = tempfile::tempdir().unwrap();
    let codex = adapter(home.path(), "codex");
    let ready = real(&format!("{CODEX}/ready-after-turns.txt"));
    let ready_now = |a: &Adapter, p: &str| a.is_input_ready(p).block().unwrap();
    // Codex hides its `? for shortcuts` hint while the composer holds text.
    let with = |text: &str| {
        ready
            .replace("› Ask Codex to do anything", text)
            .replace("← for agents · ? for shortcuts", "")
    };
    assert!(!ready_now(
        &codex,
        &with("› the plan:\n  • first\n  ◦ second")
    ));
    assert!(
        ready_now(&codex, &with("› \n  \n  ")),
        "our paste taken out"
    );
    assert!(!ready_now(&codex, &with("› my draft\n  ")), "a draft");
    assert!(!ready_now(
        &codex,
        &with("› \n  a draft on its second line")
    ));
    assert!(
        !ready_now(&codex, &with("› see ← for agents · ? for shortcuts")),
        "a draft quoting the hint"
    );
    let claude = adapter(home.path(), "claude");
    let ready = real(&format!("{CLAUDE}/ready-after-one-turn.txt"));
    let with = |text: &str| ready.replace("\n❯\u{a0}\n", &format!("\n{text}\n"));
    assert!(!ready_now(
        &claude,
        &with("❯\u{a0}dashes:\n  ────────────────────")
    ));
    assert!(
        ready_now(&claude, &with("❯\u{a0}\n  \n  ")),
        "our paste taken out"
    );
    assert!(
        ready_now(&claude, &with("❯\u{a0}Press up to edit queued messages")),
        "a dim hint"
    );
    assert!(
        !ready_now(&claude, &with("❯\u{a0}rm -rf my draft")),
        "a draft"
    );
    // The real collapsed paste, taken out.
    let paste = real(&format!("{CLAUDE}/paste-long-30-lines.txt"));
    assert!(ready_now(
        &claude,
        &paste.replace("[Pasted text #1 +29 lines]", "")
    ));
}

/// Panes of earlier versions (numbered options, no rules) still read.
#[test]
fn claude_boot_dialogs_and_readiness() {
    let home = tempfile::tempdir().unwrap();
    let a = adapter(home.path(), "claude");
    let keys = |p: &str| a.boot_dialog_keys(&pane(p)).block().unwrap();
    let ready = |p: &str| a.is_input_ready(&pane(p)).block().unwrap();

    assert_eq!(keys("claude-ready.txt"), None);
    assert!(ready("claude-ready.txt"));

    for dialog in [
        "claude-trust.txt",
        "claude-text-style.txt",
        "claude-imports.txt",
        "claude-dev-warning.txt",
        "claude-new-mcp.txt",
    ] {
        assert_eq!(keys(dialog), Some(strs(&["Enter"])), "{dialog}");
        assert!(!ready(dialog), "{dialog}");
    }
    // Resume-from-summary: move to option 2 first, confirm only once there.
    assert_eq!(
        keys("claude-resume-summary-opt1.txt"),
        Some(strs(&["Down"]))
    );
    assert_eq!(
        keys("claude-resume-summary-opt2.txt"),
        Some(strs(&["Enter"]))
    );
    assert!(!ready("claude-resume-summary-opt2.txt"));
    // Bypass Permissions mode: its default "1. No, exit" would kill the
    // peer, so the same two steps.
    assert_eq!(keys("claude-bypass-opt1.txt"), Some(strs(&["Down"])));
    assert_eq!(keys("claude-bypass-opt2.txt"), Some(strs(&["Enter"])));
    assert!(!ready("claude-bypass-opt2.txt"));
    assert_eq!(a.info().version, "0.2.2+verified.2.1.332");
    // A progress screen: known, nothing to press (an empty answer: not
    // stuck however long it stays), not ready.
    assert_eq!(keys("claude-resuming.txt"), Some(vec![]));
    assert!(!ready("claude-resuming.txt"));
    // A login picker is the operator's: no answer at all.
    assert_eq!(keys("claude-login.txt"), None);
    assert!(!ready("claude-login.txt"));
    // Without rules, the composer glyph alone is not enough: the bypass
    // banner must be up too.
    assert!(!a.is_input_ready("│ ❯  │").block().unwrap());
    assert!(!a.is_input_ready("").block().unwrap());
    // A waiting screen at the bottom wins over a composer above it.
    let both = format!(
        "{}\n{}",
        pane("claude-ready.txt"),
        "Resuming the full session"
    );
    assert!(!a.is_input_ready(&both).block().unwrap());
}

#[test]
fn codex_boot_dialogs_and_readiness() {
    let home = tempfile::tempdir().unwrap();
    let a = adapter(home.path(), "codex");
    let keys = |p: &str| a.boot_dialog_keys(&pane(p)).block().unwrap();
    let ready = |p: &str| a.is_input_ready(&pane(p)).block().unwrap();

    assert_eq!(keys("codex-ready.txt"), None);
    assert!(ready("codex-ready.txt"));
    // "2. Skip", one step at a time.
    assert_eq!(keys("codex-update.txt"), Some(strs(&["Down"])));
    assert!(!ready("codex-update.txt"));
    assert_eq!(keys("codex-trust.txt"), Some(strs(&["Enter"])));
    assert!(
        !ready("codex-trust.txt"),
        "a '› 1.' option row is not the composer"
    );
    assert_eq!(keys("codex-hooks.txt"), Some(strs(&["Down"])));
    assert!(
        !ready("codex-bare-glyph.txt"),
        "a bare › without a space is not ready"
    );
    // "Update available!" without its menu is no dialog.
    assert_eq!(
        a.boot_dialog_keys("Update available! 1.2").block().unwrap(),
        None
    );
    assert!(
        a.is_input_ready("   \u{a0}› Ask Codex to do anything")
            .block()
            .unwrap()
    );
    assert!(!a.is_input_ready("› type here").block().unwrap(), "a draft");
}

#[test]
fn control_keys() {
    let home = tempfile::tempdir().unwrap();
    for rt in ["claude", "codex"] {
        let a = adapter(home.path(), rt);
        let i = a.control_keys("interrupt").block().unwrap().unwrap();
        assert_eq!(i.steps, vec![strs(&["Escape"])]);
        let c = a.control_keys("compact").block().unwrap().unwrap();
        assert_eq!(c.steps, vec![strs(&["-l", "/compact"]), strs(&["Enter"])]);
        assert_eq!(c.step_delay_ms, 300);
        // Clearing a leftover paste: Ctrl-U only (safe on an empty composer).
        let clear = a.control_keys("clear-input").block().unwrap().unwrap();
        assert!(clear.steps.iter().all(|s| s == &strs(&["C-u"])), "{rt}");
        assert_eq!(a.control_keys("reboot").block().unwrap(), None);
    }
    for rt in ["telegram", "notifier"] {
        let a = adapter(home.path(), rt);
        assert_eq!(a.control_keys("interrupt").block().unwrap(), None);
        assert_eq!(a.control_keys("compact").block().unwrap(), None);
        assert_eq!(
            a.boot_dialog_keys("trust this folder").block().unwrap(),
            None
        );
        assert!(a.is_input_ready("").block().unwrap());
        assert_eq!(a.newest_activity_mtime("/w").block().unwrap(), None);
        assert_eq!(
            a.resolve_resume("/w").block().unwrap(),
            ResumeCheck::Resumable(None)
        );
    }
}

// ---- contract 0.2: cwd paths, home, info ------------------------------------------

fn cwdreader(home: &Path) -> Arc<Adapter> {
    let dir = home.join("plugins");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(
        common::fixture_plugin("cwdreader.wasm"),
        dir.join("cwdreader.wasm"),
    )
    .unwrap();
    // Ungranted, it waits for the operator, naming the cwd path.
    let ungranted =
        iapeer::plugins::PluginHost::load(&common::plugin_options(home, vec![dir.clone()]))
            .block()
            .unwrap();
    assert!(ungranted.adapter("aider").is_none());
    let row = ungranted
        .reports()
        .into_iter()
        .find(|r| r.runtime.as_deref() == Some("aider"))
        .unwrap();
    assert_eq!(row.state, iapeer::plugins::PluginState::NeedsGrant);
    assert!(
        row.reason
            .as_deref()
            .unwrap()
            .contains("<cwd>/.aider.chat.history.md"),
        "{row:?}"
    );
    let host = plugin_host(home, vec![dir]);
    host.adapter("aider").expect("granted, it serves").clone()
}

/// A 0.2 adapter reads the one file it declared below the peer's cwd — as
/// an absolute path under the cwd of the call — and nothing else: not a
/// sibling, not the name without the cwd, not through a link to a secret
/// of the home or out of the cwd.
#[test]
fn a_declared_cwd_path_is_readable_and_nothing_beside_it() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().canonicalize().unwrap();
    let a = cwdreader(&home);
    assert_eq!(
        a.info().cwd_read_paths,
        [".aider.chat.history.md", ".aider"]
    );
    // No declared limits: the host's defaults.
    assert_eq!(a.info().limits, None);
    assert_eq!(a.budgets().memory, 64 << 20);
    let cwd = |name: &str| {
        let d = home.join("w").join(name);
        std::fs::create_dir_all(&d).unwrap();
        d.to_str().unwrap().to_string()
    };
    let resume = |cwd: &str| a.resolve_resume(cwd).block().unwrap();

    let proj = cwd("proj");
    assert_eq!(
        resume(&proj),
        ResumeCheck::Nothing("FsError::NotFound".into())
    );
    assert_eq!(a.newest_activity_mtime(&proj).block().unwrap(), None);
    let history = Path::new(&proj).join(".aider.chat.history.md");
    write_with_mtime(
        &history,
        "# aider chat started at 2026-11-26\n> hi\n",
        1_700_000_000_000,
    );
    assert_eq!(
        resume(&proj),
        ResumeCheck::Resumable(Some("# aider chat started at 2026-11-26".into()))
    );
    assert_eq!(
        a.newest_activity_mtime(&proj).block().unwrap(),
        Some(1_700_000_000_000)
    );

    let outside = cwd("probe-outside");
    std::fs::write(Path::new(&outside).join("other.md"), "x").unwrap();
    assert_eq!(
        resume(&outside),
        ResumeCheck::Nothing("FsError::NotPermitted".into())
    );
    let relative = cwd("probe-relative");
    assert_eq!(
        resume(&relative),
        ResumeCheck::Nothing("FsError::NotPermitted".into())
    );

    // A link to a home secret, and a link out of the cwd: refused.
    std::fs::create_dir_all(home.join(".ssh")).unwrap();
    std::fs::write(home.join(".ssh/id_rsa"), "PRIVATE KEY\n").unwrap();
    let sneaky = cwd("sneaky");
    std::os::unix::fs::symlink(
        home.join(".ssh/id_rsa"),
        Path::new(&sneaky).join(".aider.chat.history.md"),
    )
    .unwrap();
    assert_eq!(
        resume(&sneaky),
        ResumeCheck::Nothing("FsError::NotPermitted".into())
    );
    let escape = cwd("escape");
    std::os::unix::fs::symlink(
        "/etc/hostname",
        Path::new(&escape).join(".aider.chat.history.md"),
    )
    .unwrap();
    assert_eq!(
        resume(&escape),
        ResumeCheck::Nothing("FsError::NotPermitted".into())
    );

    // A cwd that is the home itself: the declared file is fine, a link
    // from it into a secret store is not.
    std::fs::write(home.join(".aider.chat.history.md"), "home chat\n").unwrap();
    assert_eq!(
        resume(home.to_str().unwrap()),
        ResumeCheck::Resumable(Some("home chat".into()))
    );

    // A link inside a declared directory leads nowhere else in the cwd:
    // not to the project's `.env`, not to `.git/config`.
    let dir = cwd("probe-dir");
    std::fs::write(Path::new(&dir).join(".env.local"), "SECRET=1\n").unwrap();
    std::fs::create_dir_all(Path::new(&dir).join(".aider")).unwrap();
    std::os::unix::fs::symlink("../.env.local", Path::new(&dir).join(".aider/notes")).unwrap();
    assert_eq!(
        resume(&dir),
        ResumeCheck::Nothing("FsError::NotPermitted".into())
    );
    std::fs::remove_file(Path::new(&dir).join(".aider/notes")).unwrap();
    std::fs::write(Path::new(&dir).join(".aider/notes"), "ok notes\n").unwrap();
    assert_eq!(
        resume(&dir),
        ResumeCheck::Resumable(Some("ok notes".into()))
    );
    // Nor to a secret below a declared directory (`apps/web/.env`).
    let nested = cwd("probe-nested");
    std::fs::create_dir_all(Path::new(&nested).join(".aider")).unwrap();
    std::fs::write(Path::new(&nested).join(".aider/.env"), "SECRET=2\n").unwrap();
    assert_eq!(
        resume(&nested),
        ResumeCheck::Nothing("FsError::NotPermitted".into())
    );
    // A cwd reached through a link (as when a folder above it is swapped
    // for one mid-call) is not walked: the cwd is opened from `/` without
    // following links.
    let alias = home.join("w/alias");
    std::os::unix::fs::symlink(&proj, &alias).unwrap();
    assert_eq!(
        resume(alias.to_str().unwrap()),
        ResumeCheck::Nothing("FsError::NotPermitted".into())
    );
    // Never from `/` (a declared `proc/self/environ` would be the host's).
    assert_eq!(
        resume("/"),
        ResumeCheck::Nothing("FsError::NotPermitted".into())
    );
    // A declared path that is itself a link (even to a harmless file
    // inside the cwd) is not the declared path.
    let linked = cwd("linked");
    std::fs::write(Path::new(&linked).join("real.md"), "x\n").unwrap();
    std::os::unix::fs::symlink("real.md", Path::new(&linked).join(".aider.chat.history.md"))
        .unwrap();
    assert_eq!(
        resume(&linked),
        ResumeCheck::Nothing("FsError::NotPermitted".into())
    );

    // 0.2 passes the home in the launch spec, and build-launch may read
    // its cwd paths too.
    let mut s = spec("/bin/aider", &proj);
    s.home = home.to_str().unwrap().into();
    assert_eq!(
        argv(&a, &s),
        format!(
            "/bin/aider --config={}/.aider.conf.yml --history-seen=true",
            home.display()
        )
    );
}

/// A declared cwd path that contains the home (the cwd is above it) never
/// opens the home to the adapter.
#[test]
fn a_cwd_path_containing_the_home_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let probe = tmp.path().canonicalize().unwrap().join("probe-dir");
    // HOME is <cwd>/.aider: the declared `.aider` is the home itself.
    let home = probe.join(".aider");
    std::fs::create_dir_all(home.join(".ssh")).unwrap();
    std::fs::write(home.join("notes"), "in the home\n").unwrap();
    let a = cwdreader(&home);
    assert_eq!(
        a.resolve_resume(probe.to_str().unwrap()).block().unwrap(),
        ResumeCheck::Nothing("FsError::NotPermitted".into())
    );
}

/// A typed `/compact` opens the runtime's command completion: with the
/// host's own text taken out of the composer row, the composer is ready
/// (the menu is not a dialog); with it in, it holds text.
#[test]
fn a_typed_slash_command_and_its_menu_are_a_composer() {
    let home = tempfile::tempdir().unwrap();
    for (runtime, dir, file, glyph) in [
        ("claude", CLAUDE, "slash-menu-compact-typed.txt", '❯'),
        ("codex", CODEX, "slash-popup-compact-typed.txt", '›'),
    ] {
        let a = adapter(home.path(), runtime);
        let typed = real(&format!("{dir}/{file}"));
        let ours_out: String = typed
            .lines()
            .map(|l| {
                // The composer row: the glyph, a (no-break) space, our text.
                let t = l.trim_end();
                if t.starts_with(glyph) && t.chars().count() == 10 && t.ends_with("/compact") {
                    &t[..t.len() - "/compact".len()]
                } else {
                    l
                }
            })
            .collect::<Vec<_>>()
            .join("\n");
        assert_ne!(ours_out.trim_end(), typed.trim_end(), "{file}");
        assert!(!a.is_input_ready(&typed).block().unwrap(), "{file}");
        assert!(a.is_input_ready(&ours_out).block().unwrap(), "{file}");
        assert_eq!(a.boot_dialog_keys(&typed).block().unwrap(), None, "{file}");
    }
}

/// The screens `iapeer doctor --save-panes` wrote from real boots (under
/// `fixtures/panes/real/<runtime>-<version>/doctor/`, by the real-CLI
/// tests with `IAPEER_WRITE_GOLDENS=1`) get today the verdict they got
/// then: the file name says it (`NN-ready`, `NN-not-ready`,
/// `NN-dialog-<keys>`).
#[test]
fn doctor_goldens_are_judged_as_they_were() {
    let home = tempfile::tempdir().unwrap();
    let root = common::repo_root().join("tests/fixtures/panes/real");
    let mut runtimes = std::collections::BTreeSet::new();
    for version_dir in std::fs::read_dir(&root).unwrap() {
        let version_dir = version_dir.unwrap().path();
        let name = version_dir
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let runtime = name.split('-').next().unwrap().to_string();
        let Ok(files) = std::fs::read_dir(version_dir.join("doctor")) else {
            continue;
        };
        let a = adapter(home.path(), &runtime);
        for file in files {
            let file = file.unwrap().path();
            let stem = file.file_stem().unwrap().to_string_lossy().into_owned();
            let verdict = stem.split_once('-').unwrap().1;
            let pane = std::fs::read_to_string(&file).unwrap();
            let keys = a.boot_dialog_keys(&pane).block().unwrap();
            let ready = a.is_input_ready(&pane).block().unwrap();
            let what = format!("{name}/doctor/{stem}");
            match verdict.strip_prefix("dialog-") {
                Some(k) => {
                    assert_eq!(
                        keys,
                        Some(strs(&k.split('+').collect::<Vec<_>>())),
                        "{what}"
                    );
                    assert!(!ready, "{what}: a dialog is not a composer");
                }
                None => {
                    assert_eq!(keys, None, "{what}");
                    assert_eq!(ready, verdict == "ready", "{what}");
                }
            }
            runtimes.insert(runtime.clone());
        }
    }
    assert!(
        runtimes.contains("claude") && runtimes.contains("codex"),
        "the doctor goldens of claude and codex are there: {runtimes:?}"
    );
}
