//! The operator's terminal panel (`iapeer list` on a TTY), driven as an
//! operator drives it: in a real tmux pane, with keys sent and the screen
//! read back (capture-pane), against a fleet of fake runtimes.

use crate::common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::panel::Panel;
use common::{Fleet, wait_until};

fn row_line<'a>(screen: &'a str, peer: &str, runtime: &str) -> &'a str {
    screen
        .lines()
        .find(|l| l.contains(peer) && l.contains(runtime))
        .unwrap_or("")
}

#[test]
fn the_panel_follows_the_fleet_and_acts_on_it() {
    let f = Fleet::new();
    f.register("bob", "claude", &["--runtimes", "codex"]);
    let panel = Panel::start(&f, 100);
    let screen = panel.screen();
    assert!(row_line(&screen, "bob", "claude").contains("○"), "{screen}");
    assert!(
        row_line(&screen, "bob", "claude").contains("asleep"),
        "{screen}"
    );

    // A wake from elsewhere shows up by itself.
    let woke_at = Instant::now();
    f.ok(&["wake", "bob", "--message", "hello panel"]);
    let turned = panel.wait_for("turns live", "● bob");
    eprintln!(
        "wake → live on screen: {:?} after the wake returned",
        turned
    );
    assert!(row_line(&panel.screen(), "bob", "claude").contains("live"));
    let _ = woke_at;

    // `s` stops the selected runtime (the first row: claude).
    panel.keys(&["s"]);
    panel.wait_for("stopped", "✕ bob");
    assert!(!f.is_live("claude-bob"));
    assert!(panel.screen().contains("claude-bob: stopped"));

    // `S` starts it again (asleep, resumable), Enter attaches; after the
    // detach the panel is back.
    panel.keys(&["S"]);
    panel.wait_for("started", "claude-bob: started");
    panel.keys(&["Enter"]);
    panel.wait_for("attached", "Welcome to Claude Code");
    panel.keys(&["C-b", "d"]);
    panel.wait_for("back", "back from claude-bob");
    assert!(
        f.is_live("claude-bob"),
        "detaching leaves the session running"
    );

    // `n` asks first; anything but `y` cancels.
    panel.keys(&["n"]);
    panel.wait_for("confirm", "y to confirm");
    panel.keys(&["x"]);
    panel.wait_for("cancelled", "new: cancelled");

    // `/` filters.
    panel.keys(&["/", "c", "o", "d", "Enter"]);
    panel.wait_for("filtered", "1 runtimes");
    // Esc clears a filter in force; it does not quit.
    panel.keys(&["Escape"]);
    panel.wait_for("the filter cleared", "2 runtimes");
    assert!(panel.alive());

    panel.keys(&["q"]);
    wait_until("the panel to quit", Duration::from_secs(10), || {
        !panel.alive()
    });
}

#[test]
fn the_panel_fits_a_narrow_pane() {
    let f = Fleet::new();
    f.register("amy", "claude", &[]);
    let panel = Panel::start(&f, 60);
    let screen = panel.screen();
    assert!(
        screen.contains("STATE") && screen.contains("ACTIVE"),
        "{screen}"
    );
    assert!(
        !screen.contains("LAST EXIT"),
        "dropped when narrow:\n{screen}"
    );
    assert!(
        row_line(&screen, "amy", "claude").contains("asleep"),
        "{screen}"
    );
    assert!(screen.lines().all(|l| l.chars().count() <= 60));
    panel.keys(&["q"]);
    wait_until("the panel to quit", Duration::from_secs(10), || {
        !panel.alive()
    });
    let _ = Path::new("");
}

/// With a daemon up, the panel follows its event stream: a wake made
/// elsewhere shows at once (not at the next slow safety read).
#[test]
fn with_a_daemon_the_panel_follows_its_event_stream() {
    let f = Fleet::new();
    f.register("cat", "claude", &[]);
    let _daemon = f.start_daemon(&[]);
    let panel = Panel::start(&f, 100);
    // Let the watcher connect (it then reads every 2 s only).
    std::thread::sleep(Duration::from_millis(500));
    f.ok(&["wake", "cat", "--message", "hi"]);
    let took = panel.wait_for("turns live through an event", "● cat");
    eprintln!("event → screen: {took:?} (the safety read is every 2 s)");
    panel.keys(&["q"]);
    wait_until("the panel to quit", Duration::from_secs(10), || {
        !panel.alive()
    });
}
