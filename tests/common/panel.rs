//! The operator's terminal panel (`iapeer list` on a TTY) in a tmux pane
//! of its own server, its screen read back: for the panel's tests and the
//! fleet's.

use std::process::Command;
use std::time::{Duration, Instant};

use super::Fleet;

/// The panel, running in a tmux pane of its own server.
pub struct Panel {
    sock: std::path::PathBuf,
}

impl Panel {
    pub fn start(f: &Fleet, width: u16) -> Panel {
        let sock = f.dir.path().join("outer");
        let mut argv: Vec<String> = vec!["env".into(), "-i".into()];
        argv.extend(f.env_map().into_iter().map(|(k, v)| format!("{k}={v}")));
        argv.push("TERM=xterm-256color".into());
        argv.push(env!("CARGO_BIN_EXE_iapeer").into());
        argv.push("list".into());
        let status = Command::new("tmux")
            .args(["-f", "/dev/null", "-S"])
            .arg(&sock)
            .args([
                "new-session",
                "-d",
                "-s",
                "panel",
                "-x",
                &width.to_string(),
                "-y",
                "24",
                "--",
            ])
            .args(&argv)
            .current_dir(f.dir.path())
            .status()
            .unwrap();
        assert!(status.success());
        let p = Panel { sock };
        p.wait_for("the first frame with the fleet", " runtimes ");
        p
    }

    pub fn screen(&self) -> String {
        let out = Command::new("tmux")
            .args(["-S"])
            .arg(&self.sock)
            .args(["capture-pane", "-p", "-t", "panel"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn keys(&self, keys: &[&str]) {
        let status = Command::new("tmux")
            .args(["-S"])
            .arg(&self.sock)
            .args(["send-keys", "-t", "panel"])
            .args(keys)
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits until the screen shows `text`; how long it took.
    pub fn wait_for(&self, what: &str, text: &str) -> Duration {
        let started = Instant::now();
        let mut last = String::new();
        while started.elapsed() < Duration::from_secs(15) {
            last = self.screen();
            if last.contains(text) {
                eprintln!("{what}: {:?}", started.elapsed());
                return started.elapsed();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("{what}: {text:?} never showed; the screen:\n{last}");
    }

    pub fn alive(&self) -> bool {
        Command::new("tmux")
            .args(["-S"])
            .arg(&self.sock)
            .args(["has-session", "-t", "panel"])
            .output()
            .is_ok_and(|o| o.status.success())
    }
}

impl Drop for Panel {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["-S"])
            .arg(&self.sock)
            .arg("kill-server")
            .output();
    }
}
