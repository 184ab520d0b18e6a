//! `iapeerd` as an operator runs it: one per root, a supervise tick that
//! reaps and relaunches, the front door (MCP and the fleet API on a Unix
//! socket and loopback TCP), a clean stop on SIGTERM.

mod common;
mod front_door;

use std::process::Stdio;
use std::time::Duration;

use common::{Fleet, wait_until};

#[test]
fn the_daemon_supervises_and_relaunches() {
    let f = Fleet::new();
    let cwd = f.register("dan", "claude", &[]);
    f.ok(&["wake", "dan", "--message", "start"]);

    let daemon = f.start_daemon(&["--tick-secs", "1"]);
    // A second daemon on the same root refuses.
    let second = f
        .daemon_cmd(&["--tick-secs", "1", "--port", "0"])
        .stdout(Stdio::null())
        .output()
        .unwrap();
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

    let stderr_path = daemon.stderr_path.clone();
    let status = daemon.terminate();
    let stderr = std::fs::read_to_string(stderr_path).unwrap();
    assert!(status.success(), "{stderr}");
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

#[test]
fn install_service_writes_a_unit_that_spares_the_sessions() {
    let f = Fleet::new();
    let printed = f
        .daemon_cmd(&["install-service", "--print"])
        .output()
        .unwrap();
    assert!(printed.status.success());
    let unit = String::from_utf8_lossy(&printed.stdout).into_owned();
    assert!(unit.contains("ExecStart=\""), "{unit}");
    assert!(unit.contains("KillMode=process"), "{unit}");
    assert!(
        unit.contains(&format!("IAPEER_ROOT={}", f.root.display())),
        "{unit}"
    );
    assert!(
        !f.systemd_units.join("iapeerd.service").exists(),
        "--print writes nothing"
    );

    let first = f.daemon_cmd(&["install-service"]).output().unwrap();
    let out = String::from_utf8_lossy(&first.stdout).into_owned();
    assert!(
        out.contains("wrote") && out.contains("systemctl --user enable --now iapeerd.service"),
        "{out}"
    );
    let written = std::fs::read_to_string(f.systemd_units.join("iapeerd.service")).unwrap();
    assert_eq!(
        written,
        unit.split_once('\n').unwrap().1,
        "the printed unit, minus its path line"
    );
    let again = f.daemon_cmd(&["install-service"]).output().unwrap();
    assert!(String::from_utf8_lossy(&again.stdout).contains("unchanged"));
    // Its name never looks like a peer's unit (H4 reads iapeer-<peer>.service).
    f.register("d", "claude", &[]);
    f.ok(&["wake", "d"]);
}
