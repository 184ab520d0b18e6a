//! `iapeer list` on a terminal: a live panel of the fleet (ratatui). It
//! reads the lifecycle state a few times a second — the same answers
//! `iapeer list` prints, so it works with the daemon up or down — and acts
//! through the same lifecycle verbs, each in the background so the panel
//! never freezes on a slow boot. Enter attaches: the panel gives the
//! terminal to tmux and comes back when tmux detaches.

mod model;
mod view;

use std::sync::Arc;
use std::sync::mpsc::{self, Receiver, Sender};
use std::time::{Duration, Instant};

use ratatui::crossterm::event::{self, Event, KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

use crate::app::{block_on, lifecycle};
use crate::config::Config;
use crate::lifecycle::{Lifecycle, Peers, WakeArgs};
use model::{Row, Snapshot};

/// How often the fleet is read when no daemon streams its events.
const REFRESH: Duration = Duration::from_millis(250);
/// How often it is read anyway while the daemon's event stream says when
/// something happened (a safety net: the stream covers every change).
const REFRESH_FOLLOWING: Duration = Duration::from_secs(2);

enum Msg {
    Snapshot(Snapshot),
    Status(String),
}

/// What a key asks for that needs the selected row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Wake,
    Stop,
    Start,
    New,
}

struct App {
    snapshot: Snapshot,
    selected: usize,
    status: String,
    /// Typing a filter (`/`), or the filter in force.
    filter: String,
    typing_filter: bool,
    /// `n` pressed: waiting for `y`.
    confirm_new: Option<Row>,
    /// The pane log tail shown over the table (`l`).
    overlay: Option<Vec<String>>,
}

impl App {
    fn visible(&self) -> Vec<&Row> {
        self.snapshot
            .rows
            .iter()
            .filter(|r| {
                self.filter.is_empty()
                    || r.personality.contains(&self.filter)
                    || r.runtime.contains(&self.filter)
            })
            .collect()
    }

    fn selected_row(&self) -> Option<Row> {
        let visible = self.visible();
        visible
            .get(self.selected.min(visible.len().saturating_sub(1)))
            .map(|r| (*r).clone())
    }
}

/// Whether the panel holds the terminal (raw mode, the alternate screen).
static ON_SCREEN: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

pub fn run(cfg: &Config) -> anyhow::Result<i32> {
    use std::sync::atomic::Ordering;
    let lc = Arc::new(lifecycle(cfg)?);
    let (tx, rx) = mpsc::channel();
    spawn_refresher(lc.clone(), tx.clone());
    let mut terminal = ratatui::init();
    ON_SCREEN.store(true, Ordering::SeqCst);
    let result = event_loop(&mut terminal, cfg, &lc, &tx, &rx);
    if ON_SCREEN.swap(false, Ordering::SeqCst) {
        ratatui::restore();
    }
    result
}

/// [`run`] for `iapeer list`: a SIGINT, SIGTERM or SIGHUP also gives the
/// terminal back before the process ends (the demo has its own handling).
pub fn run_alone(cfg: &Config) -> anyhow::Result<i32> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP])?;
    std::thread::spawn(move || {
        if let Some(signal) = signals.forever().next() {
            restore_terminal();
            std::process::exit(128 + signal);
        }
    });
    run(cfg)
}

/// Gives the terminal back (cooked mode, the main screen, the cursor) if
/// the panel holds it: for a process about to exit from another thread.
pub fn restore_terminal() {
    if ON_SCREEN.swap(false, std::sync::atomic::Ordering::SeqCst) {
        ratatui::restore();
        // The panel's terminal is never dropped on this path, and its drop
        // is what shows the cursor again.
        let _ = ratatui::crossterm::execute!(std::io::stdout(), ratatui::crossterm::cursor::Show);
    }
}

/// Reads the fleet again on each event of the daemon's stream when a
/// daemon answers, else every [`REFRESH`].
fn spawn_refresher(lc: Arc<Lifecycle>, tx: Sender<Msg>) {
    let (kick, kicked) = mpsc::channel::<()>();
    let following = Arc::new(std::sync::atomic::AtomicBool::new(false));
    {
        let (sock, bearer) = (lc.cfg.daemon_socket.clone(), lc.cfg.bearer_token.clone());
        let following = following.clone();
        std::thread::spawn(move || {
            loop {
                let _ = block_on(crate::client::watch_events(
                    &sock,
                    bearer.as_deref(),
                    || following.store(true, std::sync::atomic::Ordering::Relaxed),
                    || {
                        let _ = kick.send(());
                    },
                ));
                following.store(false, std::sync::atomic::Ordering::Relaxed);
                // The panel is gone: so is this watcher.
                if kick.send(()).is_err() {
                    return;
                }
                // No daemon (or it went away): look again in a while.
                std::thread::sleep(Duration::from_secs(2));
            }
        });
    }
    std::thread::spawn(move || {
        // An event often precedes the state it announces by a moment (a
        // boot logged as it starts): after one, read quickly for a second.
        let mut last_event = Instant::now();
        loop {
            let Ok(snap) = block_on(model::snapshot(&lc)) else {
                return;
            };
            if tx.send(Msg::Snapshot(snap)).is_err() {
                return;
            }
            let quiet = last_event.elapsed() > Duration::from_secs(1);
            let wait = if following.load(std::sync::atomic::Ordering::Relaxed) && quiet {
                REFRESH_FOLLOWING
            } else {
                REFRESH
            };
            match kicked.recv_timeout(wait) {
                Ok(()) => last_event = Instant::now(),
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => std::thread::sleep(wait),
            }
        }
    });
}

fn event_loop(
    terminal: &mut ratatui::DefaultTerminal,
    cfg: &Config,
    lc: &Arc<Lifecycle>,
    tx: &Sender<Msg>,
    rx: &Receiver<Msg>,
) -> anyhow::Result<i32> {
    let mut app = App {
        snapshot: Snapshot::default(),
        selected: 0,
        status: String::new(), // the title says "reading…" until the first read
        filter: String::new(),
        typing_filter: false,
        confirm_new: None,
        overlay: None,
    };
    let mut dirty = true;
    let mut drawn = Instant::now();
    loop {
        while let Ok(msg) = rx.try_recv() {
            match msg {
                Msg::Snapshot(s) => {
                    // Unchanged rows still age: "12s ago" moves on.
                    dirty |= s.rows != app.snapshot.rows
                        || s.problems != app.snapshot.problems
                        || drawn.elapsed() >= Duration::from_secs(1);
                    app.snapshot = s;
                }
                Msg::Status(s) => {
                    app.status = s;
                    dirty = true;
                }
            }
        }
        if dirty {
            let now_ms = lc.clock.now_ms();
            let visible = app.visible();
            let filter = app.typing_filter.then_some(app.filter.as_str());
            terminal.draw(|f| {
                view::draw(
                    f,
                    &view::ViewState {
                        snapshot: &app.snapshot,
                        visible: &visible,
                        selected: app.selected,
                        now_ms,
                        status: &app.status,
                        filter,
                        overlay: app.overlay.as_deref(),
                    },
                )
            })?;
            dirty = false;
            drawn = Instant::now();
        }
        // Short: a fleet read that lands while we wait is drawn at once.
        if !event::poll(Duration::from_millis(10))? {
            continue;
        }
        let Event::Key(key) = event::read()? else {
            dirty = true; // a resize
            continue;
        };
        if key.kind != KeyEventKind::Press {
            continue;
        }
        dirty = true;
        match on_key(&mut app, key) {
            Step::Quit => return Ok(0),
            Step::Stay => {}
            Step::Act(action) => {
                if let Some(row) = app.selected_row() {
                    app.status = act(lc, tx, action, row);
                }
            }
            Step::Attach => {
                if let Some(row) = app.selected_row() {
                    ratatui::restore();
                    let said = attach(lc, &row);
                    *terminal = ratatui::init();
                    terminal.clear()?;
                    app.status = said;
                }
            }
            Step::Log => {
                if let Some(row) = app.selected_row() {
                    app.overlay = Some(log_tail(cfg, &row));
                }
            }
        }
    }
}

enum Step {
    Quit,
    Stay,
    Act(Action),
    Attach,
    Log,
}

fn on_key(app: &mut App, key: KeyEvent) -> Step {
    if key.modifiers.contains(KeyModifiers::CONTROL) && key.code == KeyCode::Char('c') {
        return Step::Quit;
    }
    if app.overlay.take().is_some() {
        return Step::Stay;
    }
    if app.typing_filter {
        match key.code {
            KeyCode::Enter => app.typing_filter = false,
            KeyCode::Esc => {
                app.typing_filter = false;
                app.filter.clear();
            }
            KeyCode::Backspace => {
                app.filter.pop();
            }
            KeyCode::Char(c) if !c.is_control() => app.filter.push(c),
            _ => {}
        }
        app.selected = 0;
        return Step::Stay;
    }
    if let Some(row) = app.confirm_new.take() {
        if key.code == KeyCode::Char('y') {
            app.status = format!("new: restarting {}-{} fresh…", row.runtime, row.personality);
            return Step::Act(Action::New);
        }
        app.status = "new: cancelled".into();
        return Step::Stay;
    }
    let count = app.visible().len();
    match key.code {
        // With a filter in force, Esc clears it (as while typing it).
        KeyCode::Esc if !app.filter.is_empty() => {
            app.filter.clear();
            app.selected = 0;
        }
        KeyCode::Char('q') | KeyCode::Esc => return Step::Quit,
        KeyCode::Down | KeyCode::Char('j') => {
            app.selected = (app.selected + 1).min(count.saturating_sub(1));
        }
        KeyCode::Up | KeyCode::Char('k') => app.selected = app.selected.saturating_sub(1),
        KeyCode::Enter => return Step::Attach,
        KeyCode::Char('w') => return Step::Act(Action::Wake),
        KeyCode::Char('s') => return Step::Act(Action::Stop),
        KeyCode::Char('S') => return Step::Act(Action::Start),
        KeyCode::Char('n') => {
            if let Some(row) = app.selected_row() {
                app.status = format!(
                    "new: restart {}-{} with a fresh session? (y to confirm)",
                    row.runtime, row.personality
                );
                app.confirm_new = Some(row);
            }
        }
        KeyCode::Char('l') => return Step::Log,
        KeyCode::Char('/') => {
            app.typing_filter = true;
            app.filter.clear();
        }
        _ => {}
    }
    Step::Stay
}

/// A verb on another host's peer, carried by this host's daemon.
fn carried(lc: &Lifecycle, action: Action, row: &Row) -> Result<String, String> {
    let verb = match action {
        Action::Wake => "wake",
        Action::Stop => "stop",
        Action::Start => "start",
        Action::New => "new",
    };
    let body = serde_json::json!({
        "runtime": row.runtime,
        "reset": action == Action::Start && row.state == model::RowState::CrashLooping,
    });
    block_on(crate::client::post_body(
        &lc.cfg.daemon_socket,
        &format!("/fleet/v1/peers/{}/{verb}", row.personality),
        lc.cfg.bearer_token.as_deref(),
        &body,
        Duration::from_secs(300),
    ))
    .map_err(|e| e.to_string())?
    .map(|_| {
        format!(
            "{verb} {}-{}: done by host {}",
            row.runtime,
            row.personality,
            row.host.as_deref().unwrap_or("?")
        )
    })
    .map_err(|e| e.to_string())
}

/// Runs a verb in the background; its outcome arrives as a status line.
fn act(lc: &Arc<Lifecycle>, tx: &Sender<Msg>, action: Action, row: Row) -> String {
    let (lc, tx) = (lc.clone(), tx.clone());
    let id = format!("{}-{}", row.runtime, row.personality);
    let doing = match action {
        Action::Wake => "waking",
        Action::Stop => "stopping",
        Action::Start => "starting",
        Action::New => "restarting fresh",
    };
    let said = format!("{doing} {id}…");
    std::thread::spawn(move || {
        if row.host.is_some() {
            let line = carried(&lc, action, &row).unwrap_or_else(|e| format!("{id}: {e}"));
            let _ = tx.send(Msg::Status(line));
            return;
        }
        let peers = Peers::One {
            personality: &row.personality,
            runtime: Some(&row.runtime),
        };
        let outcome: Result<String, String> = match action {
            Action::Wake => block_on(lc.wake_or_spawn(&WakeArgs {
                skip_seed: false,
                personality: row.personality.clone(),
                runtime: Some(row.runtime.clone()),
                ..WakeArgs::default()
            }))
            .map_err(|e| e.to_string())
            .and_then(|r| {
                r.map(|_| format!("{id} is live"))
                    .map_err(|e| e.to_string())
            }),
            Action::Stop => verb_rows(block_on(lc.stop(peers))),
            // Starting a crash-looping row means "try again": its deaths
            // are forgotten (as `start --reset`).
            Action::Start => verb_rows(Ok(
                lc.start(peers, row.state == model::RowState::CrashLooping)
            )),
            Action::New => block_on(lc.new_session(&row.personality, Some(&row.runtime)))
                .map_err(|e| e.to_string())
                .and_then(|r| r.map_err(|e| e.to_string()))
                .map(|n| format!("{id}: {}", n.outcome.action)),
        };
        let line = match outcome {
            Ok(s) => s,
            Err(e) => format!("{id}: {e}"),
        };
        let _ = tx.send(Msg::Status(line));
    });
    said
}

fn verb_rows(
    r: anyhow::Result<Result<Vec<crate::lifecycle::VerbOutcome>, crate::lifecycle::LifecycleError>>,
) -> Result<String, String> {
    let rows = r.map_err(|e| e.to_string())?.map_err(|e| e.to_string())?;
    Ok(rows
        .iter()
        .map(|o| match &o.reason {
            Some(why) => format!("{}-{}: {} — {why}", o.runtime, o.personality, o.action),
            None => format!("{}-{}: {}", o.runtime, o.personality, o.action),
        })
        .collect::<Vec<_>>()
        .join("; "))
}

/// Gives the terminal to `tmux attach` (waking the peer first if it
/// sleeps) until it detaches.
fn attach(lc: &Arc<Lifecycle>, row: &Row) -> String {
    let target = match block_on(lc.attach_target(&row.personality, Some(&row.runtime))) {
        Ok(Ok(t)) => t,
        Ok(Err(e)) => return format!("attach: {e}"),
        Err(e) => return format!("attach: {e}"),
    };
    let started = Instant::now();
    match lc
        .tmux
        .attach_command(&target.socket, &target.identity)
        .status()
    {
        Ok(_) => format!(
            "back from {} (attached {}s)",
            target.identity,
            started.elapsed().as_secs()
        ),
        Err(e) => format!("attach: cannot run tmux: {e}"),
    }
}

/// The last lines of a runtime's pane log, escape sequences stripped.
fn log_tail(cfg: &Config, row: &Row) -> Vec<String> {
    let Some(id) = row.identity() else {
        return vec!["no such identity".into()];
    };
    match crate::panelog::tail(cfg, &id, 200) {
        Ok(lines) => lines,
        Err(e) => vec![format!("no pane log for {id} ({e})")],
    }
}
