//! Helpers shared by the black-box tests.
#![allow(dead_code)]

pub mod panel;

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use iapeer::plugins::{CallBudgets, CompileCache, PluginHost, PluginOptions};

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// One compile cache for every test process: each component is compiled
/// once per test run instead of once per test.
pub fn cache_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("compile-cache")
}

/// Sets a file's or dir's permission bits.
pub fn chmod(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {mode:o} {}: {e}", path.display()));
}

pub fn fixture_plugin(name: &str) -> PathBuf {
    repo_root().join("tests/fixtures/plugins").join(name)
}

pub fn example_plugin(name: &str) -> PathBuf {
    repo_root().join("plugins-dist/examples").join(name)
}

/// Runs a future to completion from synchronous test code, on the
/// runtime the `iapeer` binary uses.
pub trait Block: std::future::Future + Sized {
    fn block(self) -> Self::Output {
        iapeer::app::block_on(self).expect("the async runtime")
    }
}

impl<F: std::future::Future> Block for F {}

pub fn plugin_options(home: &Path, plugin_dirs: Vec<PathBuf>) -> PluginOptions {
    PluginOptions {
        home: home.to_path_buf(),
        plugin_dirs,
        builtins: true,
        cache: CompileCache::new(Some(&cache_dir())),
        // Short enough that the runaway-guest tests finish quickly.
        budgets: CallBudgets {
            quick: Duration::from_millis(500),
            scan: Duration::from_secs(2),
            ..CallBudgets::default()
        },
        caps: iapeer::plugins::LimitCaps::default(),
        grants: Some(home.join("test-grants.json")),
    }
}

/// Grants every adapter in `plugin_dirs` what it declares (the grant tests
/// themselves go through `iapeer plugins grant`).
pub fn grant_everything(home: &Path, plugin_dirs: &[PathBuf]) {
    let opts = plugin_options(home, vec![]);
    for dir in plugin_dirs {
        for file in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let path = file.path();
            let Ok(report) = PluginHost::inspect(&path, &opts).block() else {
                continue;
            };
            if let Some(runtime) = report.runtime.clone() {
                iapeer::plugins::Grants::add(
                    opts.grants.as_ref().unwrap(),
                    iapeer::plugins::Grant {
                        sha256: report.sha256,
                        runtime,
                        file: path.display().to_string(),
                        read_dirs: report.read_dirs,
                        cwd_read_paths: report.cwd_read_paths,
                        granted_at: "test".into(),
                    },
                )
                .unwrap();
            }
        }
    }
}

pub fn plugin_host(home: &Path, plugin_dirs: Vec<PathBuf>) -> PluginHost {
    grant_everything(home, &plugin_dirs);
    PluginHost::load(&plugin_options(home, plugin_dirs))
        .block()
        .expect("wasm engine starts")
}

/// Creates `path` (and parents) with `content` and the given mtime.
pub fn write_with_mtime(path: &Path, content: &str, mtime_ms: u64) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, content).unwrap();
    let f = std::fs::File::options().write(true).open(path).unwrap();
    f.set_modified(SystemTime::UNIX_EPOCH + Duration::from_millis(mtime_ms))
        .unwrap();
}

// ---- a throwaway fleet: own HOME, root, sockets, fake runtimes ---------------

use std::process::{Command, Output};

/// Polls `cond` until it holds; fails the test after `timeout`.
pub fn wait_until(what: &str, timeout: std::time::Duration, mut cond: impl FnMut() -> bool) {
    let started = std::time::Instant::now();
    while !cond() {
        assert!(started.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// Claude's project directory name for an ASCII cwd.
pub fn claude_slug(cwd: &Path) -> String {
    cwd.to_str()
        .unwrap()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect()
}

pub fn fake(name: &str) -> PathBuf {
    repo_root().join("tests/fakes").join(name)
}

/// An isolated iapeer world in a temp dir, driven through the real `iapeer`
/// binary. Its tmux servers are killed when it is dropped.
pub struct Fleet {
    pub dir: tempfile::TempDir,
    pub home: PathBuf,
    pub root: PathBuf,
    pub socks: PathBuf,
    pub launch_agents: PathBuf,
    pub systemd_units: PathBuf,
    env: Vec<(String, String)>,
}

impl Fleet {
    pub fn new() -> Fleet {
        // Short paths: a unix socket path must fit in 108 bytes.
        let dir = tempfile::Builder::new()
            .prefix("iap")
            .tempdir_in("/tmp")
            .unwrap();
        let home = dir.path().join("home");
        std::fs::create_dir_all(&home).unwrap();
        let f = Fleet {
            home,
            root: dir.path().join("root"),
            socks: dir.path().join("s"),
            launch_agents: dir.path().join("la"),
            systemd_units: dir.path().join("sd"),
            dir,
            env: Vec::new(),
        };
        std::fs::create_dir_all(&f.launch_agents).unwrap();
        f
    }

    /// Adds an environment variable for every command (e.g. FAKE_DIALOG).
    pub fn with_env(mut self, k: &str, v: &str) -> Fleet {
        self.env.push((k.into(), v.into()));
        self
    }

    pub fn set_env(&mut self, k: &str, v: &str) {
        self.env.retain(|(key, _)| key != k);
        self.env.push((k.into(), v.into()));
    }

    pub fn unset_env(&mut self, k: &str) {
        self.env.retain(|(key, _)| key != k);
    }

    pub fn env_map(&self) -> std::collections::BTreeMap<String, String> {
        let mut env: std::collections::BTreeMap<String, String> = [
            ("HOME", self.home.to_str().unwrap()),
            ("PATH", &std::env::var("PATH").unwrap_or_default()),
            ("USER", "tester"),
            ("IAPEER_ROOT", self.root.to_str().unwrap()),
            ("IAPEER_SOCK_DIR", self.socks.to_str().unwrap()),
            (
                "IAPEER_LAUNCHAGENTS_DIR",
                self.launch_agents.to_str().unwrap(),
            ),
            (
                "IAPEER_SYSTEMD_USER_DIR",
                self.systemd_units.to_str().unwrap(),
            ),
            ("IAPEER_CACHE_DIR", cache_dir().to_str().unwrap()),
            ("IAPEER_CLAUDE_BIN", fake("fake-claude").to_str().unwrap()),
            ("IAPEER_CODEX_BIN", fake("fake-codex").to_str().unwrap()),
            (
                "TELEGRAM_RUNTIME_BIN",
                fake("fake-router").to_str().unwrap(),
            ),
            (
                "NOTIFIER_RUNTIME_BIN",
                fake("fake-router").to_str().unwrap(),
            ),
            ("IAPEER_BOOT_DEADLINE_SECS", "20"),
            ("IAPEER_READY_GATE_SECS", "20"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        env.extend(self.env.iter().cloned());
        env
    }

    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_iapeer"));
        c.args(args)
            .env_clear()
            .envs(self.env_map())
            .current_dir(self.dir.path());
        c
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().unwrap()
    }

    /// Runs a command that must succeed; its stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "iapeer {args:?} failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Runs a command that must be refused (exit 1); its stderr.
    pub fn refused(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert_eq!(
            out.status.code(),
            Some(1),
            "iapeer {args:?} should be refused:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stderr).unwrap()
    }

    /// A peer directory (created) registered with `iapeer register`.
    pub fn register(&self, peer: &str, runtime: &str, extra: &[&str]) -> PathBuf {
        let cwd = self.dir.path().join("w").join(peer);
        std::fs::create_dir_all(&cwd).unwrap();
        self.register_at(peer, runtime, &cwd, extra);
        cwd.canonicalize().unwrap()
    }

    pub fn register_at(&self, peer: &str, runtime: &str, cwd: &Path, extra: &[&str]) {
        let mut args = vec![
            "register",
            peer,
            "--cwd",
            cwd.to_str().unwrap(),
            "--runtime",
            runtime,
        ];
        args.extend_from_slice(extra);
        self.ok(&args);
    }

    /// Registers `op` (claude), a peer that only ever sends, and returns its
    /// identity for `--from`. It may message telegram channels.
    pub fn sender(&self) -> &'static str {
        let cwd = self.dir.path().join("w").join("op");
        if !cwd.exists() {
            std::fs::create_dir_all(&cwd).unwrap();
            self.register_at("op", "claude", &cwd, &[]);
            self.set_peer_field(
                "op",
                "interfaces",
                serde_json::json!({"telegram": {"bot": "op_bot"}}),
            );
        }
        "claude-op"
    }

    /// Copies a built example adapter (`gemini.wasm`) into the root's
    /// plugin dir; its path there.
    pub fn install_example_plugin(&self, file: &str) -> PathBuf {
        let plugins = self.root.join("plugins");
        std::fs::create_dir_all(&plugins).unwrap();
        let to = plugins.join(file);
        std::fs::copy(example_plugin(file), &to).unwrap();
        to
    }

    /// Sets a field of a peer's registry record (what `register` cannot).
    pub fn set_peer_field(&self, personality: &str, key: &str, value: serde_json::Value) {
        let path = self.root.join("peers-profiles.json");
        let mut doc: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let peer = doc["peers"]
            .as_array_mut()
            .unwrap()
            .iter_mut()
            .find(|p| p["personality"] == personality)
            .unwrap();
        peer[key] = value;
        std::fs::write(&path, serde_json::to_vec_pretty(&doc).unwrap()).unwrap();
    }

    /// Lines of `$HOME/fake-runs.log`: one per runtime start.
    pub fn runs(&self) -> Vec<String> {
        std::fs::read_to_string(self.home.join("fake-runs.log"))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// The claude transcript files of `cwd`, oldest first.
    pub fn claude_transcripts(&self, cwd: &Path) -> Vec<PathBuf> {
        let dir = self.home.join(".claude/projects").join(claude_slug(cwd));
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .map(|d| d.filter_map(Result::ok).map(|e| e.path()).collect())
            .unwrap_or_default();
        files.sort();
        files
    }

    /// Every claude transcript line recorded for `cwd`, oldest file first.
    pub fn claude_transcript(&self, cwd: &Path) -> String {
        self.claude_transcripts(cwd)
            .iter()
            .map(|f| std::fs::read_to_string(f).unwrap())
            .collect()
    }

    pub fn claude_transcript_count(&self, cwd: &Path) -> usize {
        self.claude_transcripts(cwd).len()
    }

    /// Sets the mtime of every claude transcript of every project.
    pub fn touch_all_transcripts(&self, when: std::time::SystemTime) {
        for dir in std::fs::read_dir(self.home.join(".claude/projects")).unwrap() {
            for file in std::fs::read_dir(dir.unwrap().path()).unwrap() {
                let file = std::fs::File::options()
                    .write(true)
                    .open(file.unwrap().path())
                    .unwrap();
                file.set_modified(when).unwrap();
            }
        }
    }

    pub fn socket(&self, identity: &str) -> PathBuf {
        self.socks.join(format!("tmux-iap-{identity}.sock"))
    }

    pub fn state(&self, identity: &str, suffix: &str) -> PathBuf {
        self.root
            .join("state/lifecycle")
            .join(format!("{identity}.{suffix}"))
    }

    pub fn is_live(&self, identity: &str) -> bool {
        std::os::unix::net::UnixStream::connect(self.socket(identity)).is_ok()
    }

    /// Kills a session behind iapeer's back (a crash).
    pub fn crash(&self, identity: &str) {
        let _ = Command::new("tmux")
            .arg("-S")
            .arg(self.socket(identity))
            .arg("kill-server")
            .output();
    }

    /// Waits until the router of `identity` has logged a line containing `text`.
    pub fn wait_for_router_line(&self, identity: &str, text: &str) {
        let log = self.home.join(format!("router-{identity}.log"));
        wait_until(
            "the router to log the message",
            std::time::Duration::from_secs(10),
            || {
                std::fs::read_to_string(&log)
                    .unwrap_or_default()
                    .contains(text)
            },
        );
    }

    /// The visible pane of a session.
    pub fn pane(&self, identity: &str) -> String {
        let out = Command::new("tmux")
            .arg("-S")
            .arg(self.socket(identity))
            .args(["capture-pane", "-p", "-t", identity])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        if let Ok(entries) = std::fs::read_dir(&self.socks) {
            for e in entries.filter_map(Result::ok) {
                let _ = Command::new("tmux")
                    .arg("-S")
                    .arg(e.path())
                    .arg("kill-server")
                    .output();
            }
        }
    }
}

// ---- a running iapeerd and HTTP through curl ---------------------------------

/// An answer as curl saw it.
#[derive(Debug)]
pub struct Http {
    pub status: u16,
    pub headers: String,
    pub body: String,
}

impl Http {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {} {}", self.status, self.body))
    }
}

/// Runs curl (a client this project did not write) and splits its answer.
pub fn curl(args: &[&str]) -> Http {
    let out = Command::new("curl")
        .args(["-s", "-S", "-i", "-H", "Expect:", "--max-time", "60"])
        .args(args)
        .output()
        .expect("curl is installed (.ci/run installs it)");
    assert!(
        out.status.success(),
        "curl {args:?} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {text:?}"));
    Http {
        status,
        headers: head.to_ascii_lowercase(),
        body: body.to_string(),
    }
}

/// curl arguments of an MCP JSON-RPC POST.
pub const MCP_POST: [&str; 6] = [
    "-X",
    "POST",
    "-H",
    "content-type: application/json",
    "-H",
    "accept: application/json, text/event-stream",
];

/// An `iapeerd` started for a test; killed when dropped.
pub struct Daemon {
    child: Option<std::process::Child>,
    pub sock: PathBuf,
    /// `http://127.0.0.1:<port>` (no TCP: empty).
    pub tcp: String,
    pub stderr_path: PathBuf,
}

impl Fleet {
    pub fn daemon_cmd(&self, extra: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_iapeerd"));
        c.args(extra)
            .env_clear()
            .envs(self.env_map())
            .current_dir(self.dir.path());
        c
    }

    /// Starts `iapeerd --port 0 <extra>` and waits until it is listening.
    pub fn start_daemon(&self, extra: &[&str]) -> Daemon {
        self.start_daemon_under(&[], extra)
    }

    /// … run under `wrapper` (`ip netns exec NS`), when there is one.
    pub fn start_daemon_under(&self, wrapper: &[&str], extra: &[&str]) -> Daemon {
        let router_json = self.root.join("state/iapeer/router.json");
        let _ = std::fs::remove_file(&router_json);
        let stderr_path = self.dir.path().join(format!(
            "iapeerd-{}.stderr",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        let mut args = vec!["--port", "0"];
        args.extend_from_slice(extra);
        let mut cmd = self.daemon_cmd(&args);
        if let Some((first, rest)) = wrapper.split_first() {
            let mut wrapped = Command::new(first);
            wrapped
                .args(rest)
                .arg(env!("CARGO_BIN_EXE_iapeerd"))
                .args(&args)
                .env_clear()
                .envs(self.env_map())
                .current_dir(self.dir.path());
            cmd = wrapped;
        }
        let child = cmd
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(&stderr_path).unwrap())
            .spawn()
            .unwrap();
        // router.json is written first, then the READY line.
        wait_until("iapeerd to listen", Duration::from_secs(30), || {
            router_json.exists()
                && std::fs::read_to_string(&stderr_path).is_ok_and(|e| e.contains("READY"))
        });
        let d: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&router_json).unwrap()).unwrap();
        Daemon {
            child: Some(child),
            sock: PathBuf::from(d["sock"].as_str().unwrap()),
            tcp: d["tcp"]
                .as_str()
                .map(|u| u.trim_end_matches("/mcp").to_string())
                .unwrap_or_default(),
            stderr_path,
        }
    }
}

impl Daemon {
    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    /// `curl --unix-socket <sock> http://x<path> <args…>`
    pub fn unix(&self, path: &str, args: &[&str]) -> Http {
        let url = format!("http://x{path}");
        let mut all = vec!["--unix-socket", self.sock.to_str().unwrap(), url.as_str()];
        all.extend_from_slice(args);
        curl(&all)
    }

    pub fn get(&self, path: &str) -> Http {
        self.unix(path, &[])
    }

    pub fn post(&self, path: &str, body: &str) -> Http {
        self.unix(path, &["-X", "POST", "--data-binary", body])
    }

    /// One JSON-RPC request to `/mcp` over the socket, as `identity`.
    pub fn mcp(&self, identity: Option<&str>, method: &str, params: serde_json::Value) -> Http {
        let body =
            serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params})
                .to_string();
        let header = identity.map(|i| format!("X-IAPeer-Identity: {i}"));
        let mut args = MCP_POST.to_vec();
        args.extend(["--data-binary", body.as_str()]);
        if let Some(h) = &header {
            args.extend(["-H", h.as_str()]);
        }
        self.unix("/mcp", &args)
    }

    /// `tools/call send_to_peer`: the tool result (`isError`, `structuredContent`, `content`).
    pub fn send_to_peer(
        &self,
        identity: Option<&str>,
        args: serde_json::Value,
    ) -> serde_json::Value {
        let res = self.mcp(
            identity,
            "tools/call",
            serde_json::json!({"name": "send_to_peer", "arguments": args}),
        );
        assert_eq!(res.status, 200, "{res:?}");
        let v = res.json();
        v["result"].clone()
    }

    /// The MCP tool `message_status` for `id`.
    pub fn message_status(&self, identity: Option<&str>, id: &str) -> serde_json::Value {
        let res = self.mcp(
            identity,
            "tools/call",
            serde_json::json!({"name": "message_status", "arguments": {"id": id}}),
        );
        assert_eq!(res.status, 200, "{res:?}");
        res.json()["result"].clone()
    }

    /// SIGTERM, then waits for the exit (the exit status).
    pub fn terminate(mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().unwrap();
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let started = std::time::Instant::now();
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status;
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "iapeerd did not stop"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The text of a tool result.
pub fn tool_text(result: &serde_json::Value) -> String {
    result["content"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["text"].as_str())
        .collect::<Vec<_>>()
        .join("\n")
}

/// A command's exit status and both streams, for an assertion message.
pub fn output_text(o: &std::process::Output) -> String {
    format!(
        "status {:?}\nstdout: {}\nstderr: {}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}
