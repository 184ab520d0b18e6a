//! The supervise tick with an injected clock: sessions are real (woken with
//! the real binary on real tmux), time is not, so idle bounds of an hour are
//! tested in milliseconds.

use crate::common;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use common::{Block, Fleet, plugin_host};
use iapeer::clock::ManualClock;
use iapeer::config::{Config, Overrides};
use iapeer::lifecycle::{Lifecycle, SuperviseAction};

const IDLE_SECS: u64 = 3600;

fn lifecycle(f: &Fleet, clock: &ManualClock) -> Lifecycle {
    let cfg = Config::new(f.env_map(), &Overrides::default()).unwrap();
    assert_eq!(cfg.idle_secs, IDLE_SECS);
    let plugins = Arc::new(plugin_host(&f.home, vec![]));
    Lifecycle::new(cfg, plugins, Arc::new(clock.clone()))
}

fn woke_at(f: &Fleet, id: &str) -> u64 {
    let s: serde_json::Value =
        serde_json::from_slice(&std::fs::read(f.state(id, "session")).unwrap()).unwrap();
    s["wokeAt"].as_u64().unwrap()
}

fn tick(lc: &Lifecycle) -> Vec<(String, SuperviseAction)> {
    lc.supervise_tick()
        .block()
        .into_iter()
        .map(|o| (o.identity, o.action))
        .collect()
}

fn newest_transcript_mtime(f: &Fleet) -> u64 {
    let mut newest = 0;
    for dir in std::fs::read_dir(f.home.join(".claude/projects")).unwrap() {
        for file in std::fs::read_dir(dir.unwrap().path()).unwrap() {
            let m = file.unwrap().metadata().unwrap().modified().unwrap();
            let ms = m
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap()
                .as_millis() as u64;
            newest = newest.max(ms);
        }
    }
    newest
}

#[test]
fn idle_reap_by_activity_with_strict_bound() {
    let f = Fleet::new();
    f.register("ada", "claude", &[]);
    f.ok(&["wake", "ada", "--message", "work"]);
    let last = woke_at(&f, "claude-ada").max(newest_transcript_mtime(&f));
    let clock = ManualClock::at(last + IDLE_SECS * 1000);
    let lc = lifecycle(&f, &clock);

    // age == idle bound: not yet (the comparison is strict).
    assert_eq!(
        tick(&lc),
        [("claude-ada".to_string(), SuperviseAction::Alive)]
    );
    clock.advance(Duration::from_millis(1500));
    assert_eq!(
        tick(&lc),
        [("claude-ada".to_string(), SuperviseAction::ReapedIdle)]
    );
    assert!(!f.is_live("claude-ada"));
    assert!(
        !f.socket("claude-ada").exists(),
        "the last session took its server and socket"
    );
    assert!(!f.state("claude-ada", "session").exists());
    assert!(tick(&lc).is_empty());
    // Idle-reaped is not stopped: the next message resumes.
    let out = f.ok(&["wake", "ada", "--message", "again", "--json"]);
    assert!(out.contains("\"mode\": \"resume\""), "{out}");
}

#[test]
fn activity_keeps_a_session_alive_and_woke_at_is_the_fallback() {
    let f = Fleet::new();
    f.register("bo", "claude", &[]);
    f.register("cy", "claude", &[]);
    f.ok(&["wake", "bo", "--message", "busy"]);
    // A bare wake writes no transcript: only wokeAt bounds it.
    f.ok(&["wake", "cy"]);
    let woke_bo = woke_at(&f, "claude-bo");
    let woke_cy = woke_at(&f, "claude-cy");
    // bo's transcript moves on (the agent keeps working).
    let later = SystemTime::now() + Duration::from_secs(2 * IDLE_SECS);
    f.touch_all_transcripts(later);
    let clock = ManualClock::at(woke_bo.max(woke_cy) + IDLE_SECS * 1000 + 5000);
    let lc = lifecycle(&f, &clock);
    let mut outcomes = tick(&lc);
    outcomes.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        outcomes,
        [
            ("claude-bo".to_string(), SuperviseAction::Alive),
            ("claude-cy".to_string(), SuperviseAction::ReapedIdle),
        ]
    );
}

#[test]
fn a_resumed_session_is_not_reaped_for_its_old_transcript() {
    let f = Fleet::new();
    f.register("dot", "claude", &[]);
    f.ok(&["wake", "dot", "--message", "long ago"]);
    // The transcript is two hours old; the peer sleeps, then is resumed.
    let old = SystemTime::now() - Duration::from_secs(2 * IDLE_SECS);
    f.touch_all_transcripts(old);
    f.ok(&["stop", "dot"]);
    f.ok(&["start", "dot"]);
    f.ok(&["attach", "dot", "--print"]);
    let clock = ManualClock::at(woke_at(&f, "claude-dot") + 60_000);
    let lc = lifecycle(&f, &clock);
    assert_eq!(
        tick(&lc),
        [("claude-dot".to_string(), SuperviseAction::Alive)]
    );
}

#[test]
fn a_hung_server_is_unknown_not_dead() {
    let f = Fleet::new();
    f.register("eve", "claude", &[]);
    f.ok(&["wake", "eve"]);
    // Freeze the tmux server: it still holds its socket but answers nothing.
    let pid = std::process::Command::new("tmux")
        .arg("-S")
        .arg(f.socket("claude-eve"))
        .args(["display-message", "-p", "#{pid}"])
        .output()
        .unwrap();
    let pid = String::from_utf8(pid.stdout).unwrap().trim().to_string();
    assert!(!pid.is_empty());
    std::process::Command::new("kill")
        .args(["-STOP", &pid])
        .status()
        .unwrap();
    let clock = ManualClock::at(woke_at(&f, "claude-eve") + 1000);
    let lc = lifecycle(&f, &clock);
    let outcome = tick(&lc);
    std::process::Command::new("kill")
        .args(["-CONT", &pid])
        .status()
        .unwrap();
    assert_eq!(
        outcome,
        [("claude-eve".to_string(), SuperviseAction::Alive)]
    );
    assert!(f.state("claude-eve", "session").exists(), "not reaped");
}

#[test]
fn a_registered_cwd_with_a_symlink_still_finds_its_activity() {
    let f = Fleet::new();
    let cwd = f.register("fay", "claude", &[]);
    f.ok(&["wake", "fay", "--message", "busy"]);
    // A state file written with the cwd as registered (as the TypeScript
    // iapeer does), through a symlink.
    let alias = f.dir.path().join("alias-of-fay");
    std::os::unix::fs::symlink(&cwd, &alias).unwrap();
    let path = f.state("claude-fay", "session");
    let mut state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    state["cwd"] = alias.to_str().unwrap().into();
    std::fs::write(&path, serde_json::to_vec(&state).unwrap()).unwrap();
    // The transcript keeps moving; wokeAt alone would say idle.
    f.touch_all_transcripts(SystemTime::now() + Duration::from_secs(2 * IDLE_SECS));
    let clock = ManualClock::at(woke_at(&f, "claude-fay") + IDLE_SECS * 1000 + 5000);
    let lc = lifecycle(&f, &clock);
    assert_eq!(
        tick(&lc),
        [("claude-fay".to_string(), SuperviseAction::Alive)]
    );
}

/// The reaper never kills a session whose wake lock someone holds (a wake
/// or a delivery at work): a message landing between the idle check and
/// the kill would be reported delivered and lost.
#[test]
fn idle_reap_skips_a_session_whose_lock_is_held() {
    use fs2::FileExt;
    let f = Fleet::new();
    f.register("bea", "claude", &[]);
    f.ok(&["wake", "bea", "--message", "work"]);
    let last = woke_at(&f, "claude-bea").max(newest_transcript_mtime(&f));
    let clock = ManualClock::at(last + (IDLE_SECS + 10) * 1000);
    let lc = lifecycle(&f, &clock);

    // A delivery in another process holds the lock (flock is per open
    // file, so this conflicts exactly as another process would).
    let lock = std::fs::File::options()
        .write(true)
        .open(f.state("claude-bea", "wake.lock"))
        .unwrap();
    lock.lock_exclusive().unwrap();
    assert_eq!(
        tick(&lc),
        [("claude-bea".to_string(), SuperviseAction::SkippedBusy)]
    );
    assert!(f.is_live("claude-bea"));
    assert!(f.state("claude-bea", "session").exists());

    // Released: the next tick reaps it.
    FileExt::unlock(&lock).unwrap();
    assert_eq!(
        tick(&lc),
        [("claude-bea".to_string(), SuperviseAction::ReapedIdle)]
    );
    assert!(!f.is_live("claude-bea"));
}

/// A dead session is only forgotten under its lock, too: a wake that is
/// bringing it back up (lock held) keeps its record.
#[test]
fn a_dead_session_being_woken_keeps_its_record() {
    use fs2::FileExt;
    let f = Fleet::new();
    f.register("cid", "claude", &[]);
    f.ok(&["wake", "cid"]);
    f.crash("claude-cid");
    let clock = ManualClock::at(woke_at(&f, "claude-cid"));
    let lc = lifecycle(&f, &clock);
    let lock = std::fs::File::options()
        .write(true)
        .open(f.state("claude-cid", "wake.lock"))
        .unwrap();
    lock.lock_exclusive().unwrap();
    assert_eq!(
        tick(&lc),
        [("claude-cid".to_string(), SuperviseAction::SkippedBusy)]
    );
    assert!(f.state("claude-cid", "session").exists());
    FileExt::unlock(&lock).unwrap();
    assert_eq!(
        tick(&lc),
        [("claude-cid".to_string(), SuperviseAction::ReapedGone)]
    );
    assert!(!f.state("claude-cid", "session").exists());
}

/// A session whose activity no adapter can read is unknown — never reaped
/// on that alone — until it is older than `IAPEER_MAX_AGE_SECS` since its
/// wake: then it is reaped, so it never runs unsupervised for good.
#[test]
fn unreadable_activity_is_bounded_by_the_max_age() {
    let f = Fleet::new();
    // The evil fixture's activity call traps for this cwd.
    let plugins_dir = f.dir.path().join("plugins");
    std::fs::create_dir_all(&plugins_dir).unwrap();
    std::fs::copy(
        common::fixture_plugin("evil.wasm"),
        plugins_dir.join("evil.wasm"),
    )
    .unwrap();
    let cfg = Config::new(f.env_map(), &Overrides::default()).unwrap();
    assert_eq!(cfg.max_age_secs, 14_400);
    let id = iapeer::names::Identity::parse("evil-eve").unwrap();
    let sock = cfg.socket_path(&id);
    std::fs::create_dir_all(sock.parent().unwrap()).unwrap();
    let started = std::process::Command::new("tmux")
        .args(["-f", "/dev/null", "-S"])
        .arg(&sock)
        .args(["new-session", "-d", "-s", "evil-eve", "sleep", "1000"])
        .status()
        .unwrap();
    assert!(started.success());
    let woke = 1_000_000_000_000;
    iapeer::store::write_session(
        &cfg,
        &iapeer::store::SessionState {
            identity: "evil-eve".into(),
            runtime: "evil".into(),
            personality: "eve".into(),
            cwd: "/w/unreadable-activity".into(),
            woke_at: woke,
            booting: false,
            handed_over: false,
        },
    )
    .unwrap();
    let clock = ManualClock::at(woke + (IDLE_SECS + 60) * 1000);
    let plugins = Arc::new(plugin_host(&f.home, vec![plugins_dir]));
    assert!(plugins.adapter("evil").is_some());
    let lc = Lifecycle::new(cfg, plugins, Arc::new(clock.clone()));

    // Past the idle bound, but its activity is unknown: left alone.
    assert_eq!(
        tick(&lc),
        [("evil-eve".to_string(), SuperviseAction::Unknown)]
    );
    assert!(f.is_live("evil-eve"));
    // Past the max age: reaped.
    clock.set(woke + (14_400 + 1) * 1000);
    assert_eq!(
        tick(&lc),
        [("evil-eve".to_string(), SuperviseAction::ReapedIdle)]
    );
    assert!(!f.is_live("evil-eve"));
    assert!(!f.state("evil-eve", "session").exists());
}

/// A spawner killed right after recording its boot, before its session
/// exists: the tick gives a tmux client it may have left time to bring the
/// session up, and once that time is over with nothing having run, forgets
/// it without counting a death (regression: such a kill was reaped at once,
/// left the session the client then created unsupervised, and three of them
/// tripped the crash-loop guard on a healthy peer).
#[test]
fn a_boot_whose_session_never_appeared_is_given_time_and_is_no_death() {
    let f = Fleet::new();
    let cfg = Config::new(f.env_map(), &Overrides::default()).unwrap();
    let booting = |id: &str, woke: u64| {
        let (rt, p) = id.split_once('-').unwrap();
        iapeer::store::write_session(
            &cfg,
            &iapeer::store::SessionState {
                identity: id.into(),
                runtime: rt.into(),
                personality: p.into(),
                cwd: f.dir.path().to_string_lossy().into_owned(),
                woke_at: woke,
                booting: true,
                handed_over: false,
            },
        )
        .unwrap();
    };
    let woke = 1_000_000_000_000;
    booting("claude-ned", woke);
    booting("claude-ora", woke);
    // ora's runtime did run, and died: its shim said so.
    std::fs::write(
        f.state("claude-ora", "exit"),
        format!(
            r#"{{"at":{},"program":"claude","status":1,"tail":"boom"}}"#,
            woke + 10
        ),
    )
    .unwrap();
    let clock = ManualClock::at(woke + 1000);
    let lc = Lifecycle::new(
        cfg.clone(),
        Arc::new(plugin_host(&f.home, vec![])),
        Arc::new(clock.clone()),
    );
    assert_eq!(
        tick(&lc),
        [
            ("claude-ned".to_string(), SuperviseAction::Booting),
            ("claude-ora".to_string(), SuperviseAction::ReapedGone),
        ]
    );
    assert!(
        f.state("claude-ora", "deaths").exists(),
        "ora's runtime died"
    );
    clock.set(woke + 31_000);
    assert_eq!(
        tick(&lc),
        [("claude-ned".to_string(), SuperviseAction::ReapedGone)]
    );
    assert!(!f.state("claude-ned", "session").exists());
    assert!(
        !f.state("claude-ned", "deaths").exists(),
        "nothing ran: no death"
    );
}
