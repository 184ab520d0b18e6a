//! The real Claude Code and Codex CLIs in a throwaway fleet, each talking
//! to a scripted model stand-in on loopback (`tests/interop/model_*.py`):
//! shared by the real-runtime tests and the real-runtime benchmark.
#![allow(dead_code)] // each user takes a part

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{Fleet, curl, output_text, repo_root};
use serde_json::{Value, json};

pub const CLAUDE_VERSION: &str = "2.1.332";
pub const CODEX_VERSION: &str = "0.171.0";
/// The stand-in's API key: Claude Code asks about a key from the
/// environment unless its last 20 characters were approved.
pub const API_KEY: &str = "sk-ant-api03-standin-0123456789abcdefghij";

fn cli_path(var: &str, rel: String) -> PathBuf {
    std::env::var_os(var)
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join(rel))
}

/// `bin` if it is installed, else `None`, said (an error where the CLIs
/// are required). The harness (`toolchain.rs`) ignores these tests where
/// the CLIs are missing, so this is the fallback for a direct call.
pub fn real_cli(bin: PathBuf) -> Option<PathBuf> {
    if bin.exists() {
        return Some(bin);
    }
    assert!(
        std::env::var_os("IAPEER_REQUIRE_REAL_CLIS").is_none(),
        "a real CLI is required here and missing at {} (tests/interop/install-clis.sh)",
        bin.display()
    );
    eprintln!(
        "SKIPPED: {} is not installed; run tests/interop/install-clis.sh",
        bin.display()
    );
    None
}

/// A scripted model stand-in on a loopback port; killed on drop.
pub struct Model {
    child: Child,
    pub url: String,
    pub openai: bool,
}

impl Model {
    pub fn start(openai: bool) -> Model {
        // Codex reads the OpenAI Responses API, Claude the Anthropic one.
        let script = if openai {
            "tests/interop/model_openai.py"
        } else {
            "tests/interop/model_anthropic.py"
        };
        let mut child = Command::new("python3")
            .arg(repo_root().join(script))
            .args(["--port", "0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port: u16 = line
            .trim()
            .strip_prefix("LISTENING ")
            .unwrap()
            .parse()
            .unwrap();
        Model {
            child,
            url: format!("http://127.0.0.1:{port}"),
            openai,
        }
    }

    pub fn script(&self, steps: Value) {
        curl(&[
            "-X",
            "POST",
            "-H",
            "content-type: application/json",
            "-d",
            &steps.to_string(),
            &format!("{}/_script", self.url),
        ]);
    }

    /// Every turn request's conversation (user-visible input), serialized.
    pub fn turns(&self) -> Vec<String> {
        let all = curl(&[&format!("{}/_requests", self.url)]).json();
        all.as_array()
            .unwrap()
            .iter()
            .filter(|r| r["kind"] == "turn")
            .map(|r| {
                if self.openai {
                    r["body"]["input"].to_string()
                } else {
                    r["body"]["messages"].to_string()
                }
            })
            .collect()
    }

    /// How many times `marker` was in the conversation at its fullest (the
    /// history grows; a duplicate shows as 2).
    pub fn count(&self, marker: &str) -> usize {
        self.turns()
            .iter()
            .map(|t| t.matches(marker).count())
            .max()
            .unwrap_or(0)
    }

    pub fn ever(&self, marker: &str) -> bool {
        self.turns().iter().any(|t| t.contains(marker))
    }
}

impl Drop for Model {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A model stand-in for `runtime` (`claude` or `codex`) and a fleet whose
/// runtime is the real CLI talking to it; `None`, said, without the CLI.
pub fn real_fleet(runtime: &str) -> Option<(Model, Fleet)> {
    let model = Model::start(runtime == "codex");
    let fleet = match runtime {
        "codex" => codex_fleet(&model),
        _ => claude_fleet(&model),
    }?;
    Some((model, fleet))
}

/// A fleet whose claude is the real one, talking to `model` only: any
/// other traffic goes to a loopback port nothing listens on.
pub fn claude_fleet(model: &Model) -> Option<Fleet> {
    with_real_claude(
        Fleet::new()
            .with_env("HTTPS_PROXY", "http://127.0.0.1:9")
            .with_env("HTTP_PROXY", "http://127.0.0.1:9"),
        model,
    )
}

/// `f` with the real claude, pointed at `model`; the user has finished
/// onboarding and approved the stand-in's key, nothing more.
pub fn with_real_claude(f: Fleet, model: &Model) -> Option<Fleet> {
    let claude = real_claude()?;
    let f = common_env(f)
        .with_env("IAPEER_CLAUDE_BIN", claude.to_str().unwrap())
        .with_env("ANTHROPIC_BASE_URL", &model.url)
        .with_env("ANTHROPIC_API_KEY", API_KEY)
        // Claude Code refuses bypass mode as root outside a sandbox.
        .with_env("IS_SANDBOX", "1")
        .with_env("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1")
        .with_env("CLAUDE_CODE_DISABLE_OFFICIAL_MARKETPLACE_AUTOINSTALL", "1")
        .with_env("DISABLE_AUTOUPDATER", "1");
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
    Some(f)
}

/// Where the real claude is (`IAPEER_REAL_CLAUDE`, else the pinned one).
pub fn claude_path() -> PathBuf {
    cli_path(
        "IAPEER_REAL_CLAUDE",
        format!("target/real-clis/claude-{CLAUDE_VERSION}/node_modules/.bin/claude"),
    )
}

/// Where the real codex is (`IAPEER_REAL_CODEX`, else the pinned one).
pub fn codex_path() -> PathBuf {
    cli_path(
        "IAPEER_REAL_CODEX",
        format!("target/real-clis/codex-{CODEX_VERSION}/node_modules/.bin/codex"),
    )
}

pub fn real_claude() -> Option<PathBuf> {
    real_cli(claude_path())
}

pub fn real_codex() -> Option<PathBuf> {
    real_cli(codex_path())
}

/// The first line `bin --version` prints: what the tests expect to read
/// back (the pinned version, or the newest under drift watch).
pub fn cli_version(bin: &std::path::Path) -> String {
    let out = Command::new(bin).arg("--version").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or_default()
        .to_string()
}

/// Whether `bin` is the pinned version its adapter was verified with.
pub fn is_pinned(bin: &std::path::Path) -> bool {
    let said = cli_version(bin);
    said.split_whitespace()
        .any(|w| w == CLAUDE_VERSION || w == CODEX_VERSION)
}

fn common_env(f: Fleet) -> Fleet {
    f.with_env("NO_PROXY", "127.0.0.1,localhost")
        .with_env("TERM", "xterm-256color")
        .with_env("LANG", "C.UTF-8")
        .with_env("IAPEER_BOOT_DEADLINE_SECS", "60")
        .with_env("IAPEER_READY_GATE_SECS", "60")
}

/// A fleet whose codex is the real one, with only a model provider
/// configured (the stand-in; also the proxy that refuses everything else).
/// A folder without git gets no trust dialog; `gpt-5.5` gets the offer of
/// a newer model, which the adapter declines by its words.
pub fn codex_fleet(model: &Model) -> Option<Fleet> {
    with_real_codex(Fleet::new(), model)
}

/// `f` with the real codex, pointed at `model`, which is also every
/// session's proxy (it refuses all CONNECTs).
pub fn with_real_codex(f: Fleet, model: &Model) -> Option<Fleet> {
    let codex = real_codex()?;
    let url = &model.url;
    let mut f = common_env(f).with_env("IAPEER_CODEX_BIN", codex.to_str().unwrap());
    for var in ["HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY"] {
        f.set_env(var, url);
    }
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
    Some(f)
}

pub fn wait(what: &str, secs: u64, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < end {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    eprintln!("TIMEOUT waiting for {what}");
    false
}

pub fn keys(f: &Fleet, id: &str, k: &[&str]) {
    let st = Command::new("tmux")
        .arg("-S")
        .arg(f.socket(id))
        .args(["send-keys", "-t", id])
        .args(k)
        .status()
        .unwrap();
    assert!(st.success());
}

pub fn idle(f: &Fleet, id: &str) -> bool {
    let p = f.pane(id);
    let tail: Vec<&str> = p.lines().filter(|l| !l.trim().is_empty()).collect();
    let tail = tail[tail.len().saturating_sub(3)..].join("\n");
    if id.starts_with("claude") {
        !tail.contains("esc to interrupt") && tail.contains("❯")
    } else {
        tail.contains("? for shortcuts")
    }
}

pub fn settle(f: &Fleet, id: &str) {
    wait("idle", 60, || idle(f, id));
    std::thread::sleep(Duration::from_millis(800));
    wait("idle", 60, || idle(f, id));
}

/// Boots `bob` on the given runtime with a first message; the fleet, sender.
pub fn boot(f: &Fleet, model: &Model, runtime: &str) {
    f.sender();
    f.register("bob", runtime, &[]);
    let woke = f.run(&["wake", "bob", "--message", "boot0 first"]);
    assert!(woke.status.success(), "{}", output_text(&woke));
    assert!(wait("first turn", 40, || model.ever("boot0")));
    settle(f, &format!("{runtime}-bob"));
}

/// `iapeer send` to bob: whether it was delivered (a message kept in the
/// mailbox, `queued for …`, was not, yet), and what it said.
pub fn send(f: &Fleet, msg: &str) -> (bool, String) {
    let o = f.run(&["send", "bob", "--from", "claude-op", "--message", msg]);
    let out = output_text(&o);
    (o.status.success() && !queued(&out), out)
}

/// The send kept its message in the mailbox (accepted, not yet typed).
pub fn queued(out: &str) -> bool {
    out.contains("queued for bob")
}

/// Every request the stand-in recorded.
pub fn requests(model: &Model) -> Vec<Value> {
    let all = curl(&[&format!("{}/_requests", model.url)]).json();
    all.as_array().cloned().unwrap_or_default()
}

/// The results of tool calls the runtime sent back to `model`, parsed
/// (each once, oldest first).
pub fn tool_results(model: &Model) -> Vec<Value> {
    let mut seen = std::collections::BTreeSet::new();
    let mut out = Vec::new();
    let text_of = |c: &Value| match c {
        Value::String(s) => s.clone(),
        Value::Array(blocks) => blocks
            .iter()
            .filter_map(|b| b["text"].as_str())
            .collect::<Vec<_>>()
            .join(""),
        _ => String::new(),
    };
    for r in requests(model).iter().filter(|r| r["kind"] == "turn") {
        let items: Vec<(String, String)> = if model.openai {
            r["body"]["input"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|i| i["type"] == "function_call_output")
                .map(|i| (i["call_id"].to_string(), text_of(&i["output"])))
                .collect()
        } else {
            r["body"]["messages"]
                .as_array()
                .into_iter()
                .flatten()
                .flat_map(|m| m["content"].as_array().cloned().unwrap_or_default())
                .filter(|b| b["type"] == "tool_result")
                .map(|b| (b["tool_use_id"].to_string(), text_of(&b["content"])))
                .collect()
        };
        for (id, text) in items {
            if seen.insert(id) {
                // Codex prefixes a tool's output with "Wall time: …\nOutput:\n".
                let body = text
                    .split_once("Output:\n")
                    .map_or(text.as_str(), |(_, o)| o);
                out.push(serde_json::from_str(body).unwrap_or(Value::String(text.clone())));
            }
        }
    }
    out
}

/// The real CLI at `bin` run with the fleet's environment in `cwd`.
pub fn run_real(f: &Fleet, bin: &std::path::Path, args: &[&str], cwd: &std::path::Path) -> String {
    let o = Command::new(bin)
        .args(args)
        .env_clear()
        .envs(f.env_map())
        .current_dir(cwd)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    output_text(&o)
}

/// The runtime's process in `id`'s session (the shim's child).
pub fn runtime_pid(f: &Fleet, id: &str) -> Option<u32> {
    let out = Command::new("tmux")
        .arg("-S")
        .arg(f.socket(id))
        .args(["list-panes", "-t", id, "-F", "#{pane_pid}"])
        .output()
        .ok()?;
    let shim: u32 = String::from_utf8_lossy(&out.stdout).trim().parse().ok()?;
    let children = std::fs::read_to_string(format!("/proc/{shim}/task/{shim}/children")).ok()?;
    children.split_whitespace().next()?.parse().ok()
}
