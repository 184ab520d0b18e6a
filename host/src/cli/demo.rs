//! `iapeer demo`: the main job in one command, with no account needed.
//! Two peers, alice and bob, run on a stand-in runtime (a small bash TUI
//! shaped like Claude Code, shipped for this and for the tests; it does
//! not think, it appends what it is told to its transcript). Everything
//! lives in a throwaway root that goes when the demo ends. Alice messages
//! bob while he sleeps: iapeer wakes him in tmux, waits for his composer
//! and delivers the message. A second message reaches him live. Then the
//! panel opens (on a terminal).

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;

use super::trial::{Ending, Trial, one_line};
use super::verbs::{self, SendArgs, block_on};
use crate::config::Config;
use crate::names::{Identity, Personality, Runtime};
use crate::registry::{self, Registration};
use crate::route::SendRequest;

/// The stand-in runtime, the same script the tests drive.
const STAND_IN: &str = include_str!("../../../tests/fakes/fake-claude");

pub fn run(cfg: &Config, keep: bool) -> anyhow::Result<i32> {
    let mut trial = Trial::new(cfg, "demo", Duration::from_secs(30))?;
    let result = show(&mut trial, keep);
    if trial.interrupted() {
        crate::outln!("\ninterrupted: the sessions are stopped and the throwaway root is gone");
        return Ok(Ending::Interrupted.exit_code());
    }
    result
}

fn show(trial: &mut Trial, keep: bool) -> anyhow::Result<i32> {
    let home = trial.dir("home")?;
    let stand_in = trial.dir("stand-in")?.join("claude");
    write_executable(&stand_in, STAND_IN)?;
    let c = &mut trial.cfg;
    c.home = home.clone();
    c.env
        .insert("HOME".into(), home.to_string_lossy().into_owned());
    c.cache_dir = c.root.join("cache");
    c.plugin_dirs = vec![c.root.join("plugins")];
    c.bin_overrides
        .insert("claude".into(), stand_in.to_string_lossy().into_owned());
    let cfg = trial.cfg.clone();
    let runtime = Runtime::new("claude").expect("a valid name");
    for peer in ["alice", "bob"] {
        let cwd = trial.dir(&format!("peers/{peer}"))?;
        registry::upsert_peer(
            &cfg.root,
            &cfg.registry_path(),
            &Registration {
                personality: Personality::new(peer).expect("a valid name"),
                runtime: runtime.clone(),
                runtimes: Vec::new(),
                cwd,
                intelligence: None,
                description: None,
            },
        )?;
    }
    let bob = Identity::new(&runtime, &Personality::new("bob").expect("a valid name"));
    let on_interrupt = cfg.clone();
    trial.exit_on_interrupt(move || {
        end_sessions(&on_interrupt, true);
    });

    say(&format!(
        "A throwaway fleet in {}: alice and bob, two peers on a stand-in \
         runtime (a small TUI shaped like Claude Code that appends what it is \
         told to its transcript; no model, no account). Both are asleep:",
        one_line(&cfg.root.display().to_string())
    ));
    verbs::list(&cfg, false)?;

    say(
        "alice sends bob a message. He is asleep, so iapeer starts his runtime in its own tmux session, answers nothing it does not recognise, waits for his input composer, pastes the message and presses Enter:",
    );
    step(
        "iapeer send bob --from claude-alice --message \"…\"",
        || send(&cfg, "Hello bob, can you review the open PRs?"),
    )?;
    show_pane(&cfg, &bob)?;

    say("A second message finds bob awake: it goes straight into his composer.");
    step(
        "iapeer send bob --from claude-alice --message \"…\"",
        || send(&cfg, "And the issues, when you have a minute."),
    )?;
    show_pane(&cfg, &bob)?;

    use std::io::IsTerminal;
    if std::io::stdout().is_terminal() && std::io::stdin().is_terminal() {
        say(
            "Now the panel, as `iapeer list` shows it on a terminal: Enter attaches to a peer (detach with Ctrl-b d), w/s wake and stop, l its log, q quits and ends the demo. Press Enter to open it.",
        );
        let mut line = String::new();
        std::io::stdin().read_line(&mut line)?;
        crate::panel::run(&cfg)?;
    } else {
        say("The fleet now (on a terminal, `iapeer list` is a live panel):");
        verbs::list(&cfg, false)?;
    }

    if keep {
        say(&format!(
            "Kept. To look around: export IAPEER_ROOT={} IAPEER_SOCK_DIR={} HOME={} IAPEER_CLAUDE_BIN={}",
            cfg.root.display(),
            cfg.sock_dir.display(),
            home.display(),
            stand_in.display()
        ));
        trial.keep();
        return Ok(0);
    }
    end_sessions(&cfg, false);
    say(
        "Done: the sessions are stopped and the throwaway root is gone. Next: README, \"Two peers talking\".",
    );
    Ok(0)
}

/// A paragraph, wrapped at 78 columns.
fn say(text: &str) {
    let mut line = String::new();
    crate::outln!();
    for word in text.split_whitespace() {
        if !line.is_empty() && line.chars().count() + 1 + word.chars().count() > 78 {
            crate::outln!("{line}");
            line.clear();
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    crate::outln!("{line}");
}

/// Runs one verb, showing it as the command it stands for and its time.
fn step(shown: &str, f: impl FnOnce() -> anyhow::Result<i32>) -> anyhow::Result<()> {
    crate::outln!("  $ {shown}");
    let started = Instant::now();
    let code = f()?;
    crate::outln!("  ({:.0} ms)", started.elapsed().as_secs_f64() * 1000.0);
    if code != 0 {
        anyhow::bail!("the demo stopped: the send failed (exit {code})");
    }
    Ok(())
}

fn send(cfg: &Config, message: &str) -> anyhow::Result<i32> {
    verbs::send(
        cfg,
        SendArgs {
            from: Some("claude-alice".into()),
            request: SendRequest::new(Personality::new("bob")?, message),
        },
        false,
    )
}

/// The bottom of bob's screen, as tmux has it.
fn show_pane(cfg: &Config, id: &Identity) -> anyhow::Result<()> {
    let pane = block_on(
        crate::tmux::Tmux::for_config(cfg).capture_pane(&cfg.socket_path(id), id.as_str()),
    )?
    .context("cannot read bob's screen")?;
    crate::outln!("  bob's screen:");
    let rows: Vec<&str> = pane.lines().filter(|l| !l.trim().is_empty()).collect();
    for row in &rows[rows.len().saturating_sub(8)..] {
        crate::outln!("  │ {}", one_line(row));
    }
    Ok(())
}

/// Ends both peers' sessions: at the end of the demo or once it is
/// interrupted (either may be coming up). Only a session seen up is
/// waited for (alice never has one).
fn end_sessions(cfg: &Config, interrupted: bool) {
    let ids = ["alice", "bob"]
        .map(|peer| Identity::parse(&format!("claude-{peer}")).expect("a valid identity"));
    super::trial::end_sessions(
        cfg,
        &crate::tmux::Tmux::for_config(cfg),
        &[&ids[0], &ids[1]],
        false,
        interrupted,
    );
}

fn write_executable(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))
        .with_context(|| format!("cannot make {} executable", path.display()))
}
