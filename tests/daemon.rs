//! `iapeerd` as an operator runs it: one per root, a supervise tick that
//! reaps and relaunches, a clean stop on SIGTERM.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Fleet, wait_until};

fn iapeerd(f: &Fleet, extra: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_iapeerd"));
    c.args(extra)
        .env_clear()
        .envs(f.env_map())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c
}

fn terminate(mut child: Child) -> std::process::Output {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "iapeerd did not stop"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

#[test]
fn the_daemon_supervises_and_relaunches() {
    let f = Fleet::new();
    let cwd = f.register("dan", "claude", &[]);
    f.ok(&["wake", "dan", "--message", "start"]);

    let daemon = iapeerd(&f, &["--tick-secs", "1"]).spawn().unwrap();
    // A second daemon on the same root refuses (once the first holds the
    // lock: it loads the adapters only after taking it).
    let log = f.root.join("logs/iapeer/iapeerd.log");
    wait_until("the daemon to start", Duration::from_secs(20), || {
        std::fs::read_to_string(&log).is_ok_and(|l| l.contains("adapter loaded"))
    });
    let second = iapeerd(&f, &["--tick-secs", "1"]).output().unwrap();
    assert_eq!(second.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&second.stderr).contains("already running"));

    // The agent asks for /new and exits: the daemon relaunches it fresh.
    f.ok(&["mark-new", "dan"]);
    f.crash("claude-dan");
    wait_until("the eager relaunch", Duration::from_secs(20), || {
        !f.state("claude-dan", "new").exists() && f.is_live("claude-dan")
    });
    assert_eq!(
        f.claude_transcript_count(&cwd),
        1,
        "a bare relaunch writes nothing yet"
    );
    assert_eq!(f.runs().len(), 2);

    // A crash without a mark is only forgotten.
    f.crash("claude-dan");
    wait_until("the gone reap", Duration::from_secs(10), || {
        !f.state("claude-dan", "session").exists()
    });
    assert_eq!(f.runs().len(), 2);

    let out = terminate(daemon);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("[iapeerd] READY"), "{stderr}");
    assert!(
        stderr.contains("adapters=claude,codex,notifier,telegram"),
        "{stderr}"
    );
    let log = std::fs::read_to_string(f.root.join("logs/iapeer/iapeerd.log")).unwrap();
    assert!(log.contains("needs-eager-fresh"), "{log}");
    let lifecycle_log = std::fs::read_to_string(f.root.join("logs/iapeer/lifecycle.log")).unwrap();
    assert!(
        lifecycle_log.contains(
            "ev=wake personality=dan identity=claude-dan runtime=claude mode=fresh cause=new-mark"
        ),
        "{lifecycle_log}"
    );
}
