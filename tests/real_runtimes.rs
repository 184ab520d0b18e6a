//! The real Claude Code CLI, pinned from npm (`tests/interop/install-clis.sh`,
//! which `.ci/run` runs), driven by a scripted model stand-in on loopback
//! (`tests/interop/model_anthropic.py`): what we claim about the runtime is
//! what the runtime does. Each test starts from a fresh `$HOME` where the
//! user has only finished onboarding; every dialog about the peer's folder,
//! the added dir and bypass mode is iapeerd's to get through.
//!
//! Without the CLI these tests say they were skipped; CI sets
//! `IAPEER_REQUIRE_REAL_CLIS=1`, so there they must run.

mod common;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{Fleet, curl, output_text, repo_root, wait_until};
use serde_json::json;

const CLAUDE_VERSION: &str = "2.1.332";
/// The stand-in's API key: Claude Code asks about a key from the
/// environment unless its last 20 characters were approved.
const API_KEY: &str = "sk-ant-api03-standin-0123456789abcdefghij";

/// The pinned claude binary, or `None` (said) when it is not installed.
fn real_claude() -> Option<PathBuf> {
    let bin = std::env::var_os("IAPEER_REAL_CLAUDE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            repo_root().join(format!(
                "target/real-clis/claude-{CLAUDE_VERSION}/node_modules/.bin/claude"
            ))
        });
    if bin.exists() {
        return Some(bin);
    }
    assert!(
        std::env::var_os("IAPEER_REQUIRE_REAL_CLIS").is_none(),
        "the real Claude Code CLI is required here and missing at {} (tests/interop/install-clis.sh)",
        bin.display()
    );
    eprintln!(
        "SKIPPED: the real Claude Code CLI is not installed ({}); run tests/interop/install-clis.sh",
        bin.display()
    );
    None
}

/// The scripted Anthropic Messages API, on a loopback port; killed on drop.
struct ModelStandIn {
    child: Child,
    url: String,
}

impl ModelStandIn {
    fn start() -> ModelStandIn {
        ModelStandIn::start_script("tests/interop/model_anthropic.py")
    }

    /// Starts one of the stand-ins (they print `LISTENING <port>`).
    fn start_script(script: &str) -> ModelStandIn {
        let mut child = Command::new("python3")
            .arg(repo_root().join(script))
            .args(["--port", "0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 runs the model stand-in");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line
            .strip_prefix("LISTENING ")
            .and_then(|p| p.trim().parse::<u16>().ok())
            .unwrap_or_else(|| panic!("the stand-in said {line:?}"));
        ModelStandIn {
            child,
            url: format!("http://127.0.0.1:{port}"),
        }
    }

    /// The user-turn text of every turn request so far, in order.
    fn turns(&self) -> Vec<String> {
        let all = curl(&[&format!("{}/_requests", self.url)]).json();
        all.as_array()
            .unwrap()
            .iter()
            .filter(|r| r["kind"] == "turn")
            .map(|r| r["body"]["messages"].to_string())
            .collect()
    }
}

impl Drop for ModelStandIn {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A fleet whose claude is the real one, talking to `model` only: any
/// other traffic goes to a loopback port nothing listens on.
fn real_claude_fleet(claude: &std::path::Path, model: &ModelStandIn) -> Fleet {
    let f = Fleet::new()
        .with_env("IAPEER_CLAUDE_BIN", claude.to_str().unwrap())
        .with_env("ANTHROPIC_BASE_URL", &model.url)
        .with_env("ANTHROPIC_API_KEY", API_KEY)
        // Claude Code refuses bypass mode as root outside a sandbox.
        .with_env("IS_SANDBOX", "1")
        .with_env("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1")
        .with_env("CLAUDE_CODE_DISABLE_OFFICIAL_MARKETPLACE_AUTOINSTALL", "1")
        .with_env("DISABLE_AUTOUPDATER", "1")
        .with_env("HTTPS_PROXY", "http://127.0.0.1:9")
        .with_env("HTTP_PROXY", "http://127.0.0.1:9")
        .with_env("NO_PROXY", "127.0.0.1,localhost")
        .with_env("TERM", "xterm-256color")
        .with_env("LANG", "C.UTF-8")
        .with_env("IAPEER_BOOT_DEADLINE_SECS", "60")
        .with_env("IAPEER_READY_GATE_SECS", "60");
    // Onboarding finished and the key approved: nothing more.
    let key_tail = &API_KEY[API_KEY.len() - 20..];
    std::fs::write(
        f.home.join(".claude.json"),
        json!({
            "hasCompletedOnboarding": true,
            "customApiKeyResponses": {"approved": [key_tail], "rejected": []},
        })
        .to_string(),
    )
    .unwrap();
    f
}

fn tmux_keys(f: &Fleet, id: &str, keys: &[&str]) {
    let status = Command::new("tmux")
        .arg("-S")
        .arg(f.socket(id))
        .args(["send-keys", "-t", id])
        .args(keys)
        .status()
        .unwrap();
    assert!(status.success());
}

/// A fresh folder, a fresh `$HOME`: the trust, add-dir and bypass dialogs
/// are answered by their words, the message reaches the model once; a peer
/// message then goes in; and text an operator left unsent in the composer
/// is never submitted with a later message (NOT delivered, said so).
#[test]
fn real_claude_boots_in_a_fresh_folder_and_never_sends_a_draft() {
    let Some(claude) = real_claude() else { return };
    let model = ModelStandIn::start();
    let f = real_claude_fleet(&claude, &model);
    let from = f.sender();
    let cwd = f.register("bob", "claude", &[]);

    let woke = f.run(&["wake", "bob", "--message", "first task: say hi"]);
    assert!(
        woke.status.success(),
        "{}\npane:\n{}",
        output_text(&woke),
        f.pane("claude-bob")
    );
    // Its transcript moves as it takes the message, before it asks the model.
    wait_until(
        "the first turn at the model",
        Duration::from_secs(30),
        || !model.turns().is_empty(),
    );
    let turns = model.turns();
    assert!(
        turns.len() == 1 && turns[0].contains("first task: say hi"),
        "the first message reached the model once: {turns:#?}"
    );
    assert!(!f.claude_transcripts(&cwd).is_empty());

    // A peer message, live.
    let sent = f.run(&[
        "send",
        "bob",
        "--from",
        from,
        "--message",
        "second: from a peer",
    ]);
    assert!(sent.status.success(), "{}", output_text(&sent));
    wait_until(
        "the peer message at the model",
        Duration::from_secs(30),
        || {
            model
                .turns()
                .iter()
                .any(|t| t.contains("second: from a peer"))
        },
    );

    // The operator types and leaves it unsent.
    wait_until("an idle composer", Duration::from_secs(30), || {
        !f.pane("claude-bob").contains("esc to interrupt")
    });
    tmux_keys(&f, "claude-bob", &["-l", "my operator draft"]);
    wait_until("the draft on screen", Duration::from_secs(10), || {
        f.pane("claude-bob").contains("my operator draft")
    });
    let refused = f.run(&[
        "send",
        "bob",
        "--from",
        from,
        "--message",
        "third: must wait",
    ]);
    assert!(!refused.status.success(), "{}", output_text(&refused));
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(err.contains("NOT delivered"), "{err}");
    std::thread::sleep(Duration::from_secs(2));
    let turns = model.turns();
    assert!(
        !turns
            .iter()
            .any(|t| t.contains("my operator draft") || t.contains("third: must wait")),
        "the draft or the refused message reached the model: {turns:#?}"
    );
    assert!(
        f.pane("claude-bob").contains("my operator draft"),
        "the draft is the operator's still"
    );
}

const CODEX_VERSION: &str = "0.171.0";

/// The pinned codex binary, or `None` (said) when it is not installed.
fn real_codex() -> Option<PathBuf> {
    let bin = std::env::var_os("IAPEER_REAL_CODEX")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            repo_root().join(format!(
                "target/real-clis/codex-{CODEX_VERSION}/node_modules/.bin/codex"
            ))
        });
    if bin.exists() {
        return Some(bin);
    }
    assert!(
        std::env::var_os("IAPEER_REQUIRE_REAL_CLIS").is_none(),
        "the real Codex CLI is required here and missing at {} (tests/interop/install-clis.sh)",
        bin.display()
    );
    eprintln!(
        "SKIPPED: the real Codex CLI is not installed ({}); run tests/interop/install-clis.sh",
        bin.display()
    );
    None
}

/// The scripted OpenAI Responses API, on a loopback port; also the proxy
/// every other request of Codex is sent to (and refused by). Killed on drop.
struct ResponsesStandIn(ModelStandIn);

impl ResponsesStandIn {
    fn start() -> ResponsesStandIn {
        ResponsesStandIn(ModelStandIn::start_script("tests/interop/model_openai.py"))
    }

    /// The input of every turn request so far, in order.
    fn turns(&self) -> Vec<String> {
        let all = curl(&[&format!("{}/_requests", self.0.url)]).json();
        all.as_array()
            .unwrap()
            .iter()
            .filter(|r| r["kind"] == "turn")
            .map(|r| r["body"]["input"].to_string())
            .collect()
    }
}

/// A fresh folder (no git: no trust dialog), a fresh `$HOME` with only a
/// model provider configured: the model-migration offer is answered by its
/// words (keep the configured model), a first message and a peer message
/// reach the model, and an operator's unsent draft is never sent.
#[test]
fn real_codex_boots_in_a_fresh_folder_and_never_sends_a_draft() {
    let Some(codex) = real_codex() else { return };
    let model = ResponsesStandIn::start();
    let url = &model.0.url;
    let f = Fleet::new()
        .with_env("IAPEER_CODEX_BIN", codex.to_str().unwrap())
        .with_env("HTTPS_PROXY", url)
        .with_env("HTTP_PROXY", url)
        .with_env("ALL_PROXY", url)
        .with_env("NO_PROXY", "127.0.0.1,localhost")
        .with_env("TERM", "xterm-256color")
        .with_env("LANG", "C.UTF-8")
        .with_env("IAPEER_BOOT_DEADLINE_SECS", "60")
        .with_env("IAPEER_READY_GATE_SECS", "60");
    std::fs::create_dir_all(f.home.join(".codex")).unwrap();
    std::fs::write(
        f.home.join(".codex/config.toml"),
        format!(
            "model = \"gpt-5.5\"\n\
             model_provider = \"mock\"\n\
             check_for_update_on_startup = false\n\
             [model_providers.mock]\n\
             name = \"mock\"\n\
             base_url = \"{url}/v1\"\n\
             wire_api = \"responses\"\n\
             [analytics]\n\
             enabled = false\n\
             [features]\n\
             plugins = false\n\
             apps = false\n\
             daemon_auto_start = false\n"
        ),
    )
    .unwrap();
    let from = f.sender();
    f.register("bob", "codex", &[]);

    let woke = f.run(&["wake", "bob", "--message", "first task: say hi"]);
    assert!(
        woke.status.success(),
        "{}\npane:\n{}",
        output_text(&woke),
        f.pane("codex-bob")
    );
    wait_until(
        "the first turn at the model",
        Duration::from_secs(30),
        || {
            model
                .turns()
                .iter()
                .any(|t| t.contains("first task: say hi"))
        },
    );

    let sent = f.run(&[
        "send",
        "bob",
        "--from",
        from,
        "--message",
        "second: from a peer",
    ]);
    assert!(sent.status.success(), "{}", output_text(&sent));
    wait_until(
        "the peer message at the model",
        Duration::from_secs(30),
        || {
            model
                .turns()
                .iter()
                .any(|t| t.contains("second: from a peer"))
        },
    );

    wait_until("an idle composer", Duration::from_secs(30), || {
        f.pane("codex-bob").contains("? for shortcuts")
    });
    tmux_keys(&f, "codex-bob", &["-l", "my operator draft"]);
    wait_until("the draft on screen", Duration::from_secs(10), || {
        f.pane("codex-bob").contains("my operator draft")
    });
    let refused = f.run(&[
        "send",
        "bob",
        "--from",
        from,
        "--message",
        "third: must wait",
    ]);
    assert!(!refused.status.success(), "{}", output_text(&refused));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("NOT delivered"));
    std::thread::sleep(Duration::from_secs(2));
    let turns = model.turns();
    assert!(
        !turns
            .iter()
            .any(|t| t.contains("my operator draft") || t.contains("third: must wait")),
        "the draft or the refused message reached the model: {turns:#?}"
    );
}
