//! A real headless Chromium, driven through `tests/interop/dashboard.py`
//! (Selenium and Debian's chromedriver), for the dashboard's tests and
//! benchmark. `.ci/run` installs all three.
#![allow(dead_code)] // shared by a test and the benchmark; each uses a part

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

use serde_json::Value;

/// What drives the browser, or why nothing can here.
pub fn driver_python(repo: &Path) -> Result<PathBuf, String> {
    let python = std::env::var_os("IAPEER_INTEROP_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo.join("target/interop-venv/bin/python"));
    let has = |p: &Path| {
        Command::new(p)
            .args(["-c", "import selenium"])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if !has(&python) {
        return Err(format!("no Selenium in {}", python.display()));
    }
    for (what, names) in [
        (
            "chromium",
            &["chromium", "chromium-browser", "google-chrome"][..],
        ),
        ("chromedriver", &["chromedriver"][..]),
    ] {
        let found = names.iter().any(|n| {
            Command::new("sh")
                .args(["-c", &format!("command -v {n}")])
                .stdout(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        });
        if !found {
            return Err(format!("no {what} on PATH"));
        }
    }
    Ok(python)
}

/// The driver, or `None` (and a note) when this machine cannot run it;
/// with `IAPEER_REQUIRE_DASHBOARD` set (CI) a missing part fails instead.
pub fn driver_or_skip(repo: &Path) -> Option<PathBuf> {
    match driver_python(repo) {
        Ok(p) => Some(p),
        Err(why) => {
            assert!(
                std::env::var_os("IAPEER_REQUIRE_DASHBOARD").is_none(),
                "{why} (.ci/run installs chromium, chromium-driver and Selenium)"
            );
            eprintln!("skipping the browser: {why} (run .ci/run to install it)");
            None
        }
    }
}

pub struct Browser {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Browser {
    /// Starts Chromium on `url`; screenshots go to `artifacts`.
    pub fn open(python: &Path, repo: &Path, url: &str, artifacts: &Path) -> Browser {
        let mut child = Command::new(python)
            .arg(repo.join("tests/interop/dashboard.py"))
            .arg(url)
            .arg(artifacts)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("the browser driver starts");
        let stdin = child.stdin.take().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        Browser {
            child,
            stdin,
            stdout,
        }
    }

    /// One command; the answer, `ok` or not.
    pub fn try_cmd(&mut self, command: Value) -> Value {
        writeln!(self.stdin, "{command}").expect("the browser driver reads");
        let mut line = String::new();
        self.stdout
            .read_line(&mut line)
            .expect("the browser driver answers");
        serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("the driver said {line:?} ({e}) to {command}"))
    }

    /// One command that must succeed.
    pub fn cmd(&mut self, command: Value) -> Value {
        let answer = self.try_cmd(command.clone());
        assert_eq!(answer["ok"], true, "{command} → {answer}");
        answer
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = writeln!(self.stdin, r#"{{"op": "quit"}}"#);
        let started = std::time::Instant::now();
        while started.elapsed() < std::time::Duration::from_secs(10) {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
