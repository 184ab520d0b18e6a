//! The Codex CLI runtime adapter.

use std::cell::RefCell;
use std::collections::HashMap;

use iapeer_adapter_sdk::screen::{self, KnownDialog};
use iapeer_adapter_sdk::{
    AdapterInfo, ControlSequence, DeliveryMarkers, DirEntry, EntryKind, EnvVar, Guest, Kind,
    LaunchCommand, LaunchSpec, PaneTurn, TranscriptTurn, TurnState, argv_with_extras,
    export_adapter, host_fs, is_js_whitespace, judge_tail, judge_tui_turn, keys, tail_holds,
    tui_control_keys,
};
use serde_json::Value;

struct Codex;

const SESSIONS_DIR: &str = ".codex/sessions";
/// The sessions tree is date-nested (`YYYY/MM/DD/rollout-….jsonl`); a bound
/// keeps a pathological tree from eating the call's time budget.
const MAX_DEPTH: usize = 8;
/// `session_meta` carries the base instructions, so its line can be long.
const MAX_FIRST_LINE: u32 = 4 << 20;

/// A public, non-secret stub that makes codex accept the open local MCP
/// server; the daemon ignores it.
const BEARER: (&str, &str) = ("IAPEER_BEARER", "iapeer-localhost-open-no-secret");

/// The dialogs this adapter answers, by a phrase of their own text and the
/// words of the option that answers them; nothing else is ever answered.
const DIALOGS: &[KnownDialog] = &[
    // Folder trust, 0.171 ("Trust this folder? …") and earlier.
    KnownDialog {
        phrase: "Trust this folder?",
        answers: &["Trust and continue"],
    },
    KnownDialog {
        phrase: "Do you trust the contents of this directory",
        answers: &["Yes, allow Codex to work in this folder without asking for approval"],
    },
    // An update offer: not now (the operator pins the version).
    // "Update available · 0.171.0 → 0.172.0" (0.171); "Update available!".
    KnownDialog {
        phrase: "Update available",
        answers: &["Skip"],
    },
    KnownDialog {
        phrase: "Hooks need review",
        answers: &["Trust all and continue"],
    },
    // A new model offered at start: keep the configured one.
    KnownDialog {
        phrase: "Use existing model",
        answers: &["Use existing model"],
    },
];

/// Key hints of screens that are neither a dialog to answer nor the
/// composer: a notice, an approval, the hooks review, the transcript
/// browser (where Enter rewinds the conversation).
const WAITING: &[&str] = &[
    "Press enter to continue",
    "Press enter to confirm",
    "enter continue",
    "enter review",
    "esc close",
    "esc back",
    "↵ rewind",
];

/// The dim text of an empty composer (plain text cannot tell it from a
/// draft); an empty composer also shows the `? for shortcuts` hint, which a
/// draft hides.
const EMPTY_COMPOSER_HINTS: &[&str] = &["Ask Codex to do anything", "Explain this codebase"];
const EMPTY_HINT: &str = "? for shortcuts";
/// What the first row under the composer holds: the status row (0.171) or
/// the key footer (earlier versions).
const FOOTERS: &[&str] = &[" · ", "⏎ send"];

/// Does the composer hold nothing but its placeholder? Codex shows its
/// `? for shortcuts` hint as the last row only while the composer is empty
/// (a draft hides it). Else (the host asks this with its own paste taken
/// out) the prompt row and every row under it down to the status row
/// (`model · cwd`; earlier versions: the key footer) must be blank. Text
/// there is someone's unsent draft.
fn composer_empty(live: &[&str]) -> bool {
    if live.last().is_some_and(|r| r.trim_end().ends_with(EMPTY_HINT)) {
        return true;
    }
    let Some((prompt, rest)) = live.split_first() else {
        return false;
    };
    let text = prompt
        .trim_matches(is_js_whitespace)
        .trim_start_matches('›')
        .trim_matches(is_js_whitespace);
    (text.is_empty() || EMPTY_COMPOSER_HINTS.contains(&text))
        && rest
            .iter()
            .take_while(|r| !FOOTERS.iter().any(|f| r.contains(f)))
            .all(|r| r.trim_matches(is_js_whitespace).is_empty())
}

/// The hint row of the composer Codex shows for a moment at start, before
/// its startup dialogs (the ready one reads `← for agents · ? for
/// shortcuts`, under a status row).
const TRANSIENT_HINT: &str = "? for shortcuts";

/// A row that opens the composer (`› ` and text or a placeholder), as
/// opposed to a bare glyph.
fn is_composer_row(row: &str) -> bool {
    row.trim_start_matches(is_js_whitespace).starts_with("› ")
}

/// A menu option row (`› 1. …`, `  2. …`), as opposed to a message.
fn is_option_row(row: &str) -> bool {
    !screen::choices(&[row, "  2. x"], '›', true).is_empty()
}

/// A row the model wrote (`• …`, `◦ …`), at the left edge: the same
/// bullets inside a pasted message are indented under the prompt.
fn is_reply_row(row: &str) -> bool {
    row.starts_with("• ") || row.starts_with("◦ ")
}

/// Where the composer is among the non-blank rows `filled`: the last `› `
/// row that is not a menu option and that no reply follows.
fn composer_at(filled: &[&str]) -> Option<usize> {
    let p = filled
        .iter()
        .rposition(|r| is_composer_row(r) && !is_option_row(r))?;
    (!filled[p + 1..].iter().any(|r| is_reply_row(r))).then_some(p)
}

/// The live region: from the composer (the last `› ` row that is not a
/// menu option and that no reply follows) down. Without one (a dialog
/// took its place), the rows after the last message; at a fresh start's
/// dialog, the whole pane.
fn live_region<'a>(rows: &[&'a str]) -> Vec<&'a str> {
    let filled: Vec<&str> = rows
        .iter()
        .copied()
        .filter(|r| !r.trim_matches(is_js_whitespace).is_empty())
        .collect();
    if let Some(p) = composer_at(&filled) {
        return filled[p..].to_vec();
    }
    let last_message = filled
        .iter()
        .rposition(|r| is_reply_row(r) || (is_composer_row(r) && !is_option_row(r)));
    match last_message {
        Some(i) => filled[i + 1..].to_vec(),
        None => filled,
    }
}

/// The cwd a session file was recorded for: its first line is a JSON object
/// with `type == "session_meta"` and a string `payload.cwd`. `Ok(None)`: not
/// a session file; `Err`: it could not be read this time.
fn session_cwd(path: &str) -> Result<Option<String>, ()> {
    let line = host_fs::read_first_line(path, MAX_FIRST_LINE).map_err(|_| ())?;
    let meta: Option<serde_json::Value> = serde_json::from_str(&line).ok();
    Ok(meta.as_ref().and_then(|meta| {
        if meta.get("type")?.as_str()? != "session_meta" {
            return None;
        }
        Some(meta.get("payload")?.get("cwd")?.as_str()?.to_string())
    }))
}

/// The session files of one directory: (file name, (mtime, size)).
type DirSessions = (String, Vec<(String, Stamp)>);

/// A file's (mtime, size): when either moved, what was read may be stale.
type Stamp = (u64, u64);

/// Every directory under `dir` that holds session files, with them.
fn collect_sessions(dir: String, depth: usize, out: &mut Vec<DirSessions>) {
    let Ok(entries) = host_fs::list_dir(&dir) else {
        return;
    };
    let mut files = Vec::new();
    for entry in entries {
        match entry.kind {
            EntryKind::Directory if depth < MAX_DEPTH => {
                collect_sessions(format!("{dir}/{}", entry.name), depth + 1, out);
            }
            EntryKind::File | EntryKind::Symlink if entry.name.ends_with(".jsonl") => {
                files.push((entry.name, (entry.mtime_ms, entry.size)));
            }
            _ => {}
        }
    }
    if !files.is_empty() {
        out.push((dir, files));
    }
}

/// What this instance learned of a session file: its stamp when its first
/// line was read, and the cwd recorded there (an index into `Memo::cwds`;
/// `None`: not a session). The host reuses an instance across calls, so a
/// warm scan reads no file: a session's first line never changes once
/// written, and a file whose stamp moved is read again anyway. A file that
/// could not be read is not remembered.
struct Known {
    stamp: Stamp,
    cwd: Option<usize>,
}

#[derive(Default)]
struct Memo {
    /// Directory → file name → what is known of it.
    files: HashMap<String, HashMap<String, Known>>,
    /// Every recorded cwd seen, once (a fleet has a few dozen).
    cwds: Vec<String>,
    cwd_index: HashMap<String, usize>,
    /// Peer cwd → the session file the last full scan found for it.
    sessions: HashMap<String, Found>,
}

/// The session file a full scan found for a cwd, and how many times
/// `judge-turn` has used it since without a full scan.
struct Found {
    dir: String,
    name: String,
    judged: u32,
}

impl Memo {
    fn intern(&mut self, cwd: String) -> usize {
        if let Some(&i) = self.cwd_index.get(&cwd) {
            return i;
        }
        self.cwds.push(cwd.clone());
        self.cwd_index.insert(cwd, self.cwds.len() - 1);
        self.cwds.len() - 1
    }
}

/// Beyond this many directories the memo starts over rather than grow
/// without bound (codex makes one a day).
const MAX_KNOWN_DIRS: usize = 20_000;

thread_local! {
    static MEMO: RefCell<Memo> = RefCell::new(Memo::default());
}

/// The newest session file recorded for `cwd`: its path and mtime.
///
/// Files already known answer from the memo; the others are read newest
/// first, and only while they are newer than the best match so far, so a
/// cold scan of a peer with recent sessions reads a file or two, and a
/// warm one reads none.
fn newest_session(cwd: &str) -> Option<(String, u64)> {
    let mut dirs = Vec::new();
    collect_sessions(SESSIONS_DIR.to_string(), 0, &mut dirs);
    MEMO.with(|memo| {
        let mut memo = memo.borrow_mut();
        if memo.files.len() > MAX_KNOWN_DIRS {
            *memo = Memo::default();
        }
        // Does recorded cwd `i` name `cwd`? `same-path` costs the host two
        // path resolutions: asked once per distinct recorded cwd per call.
        let mut verdicts: Vec<Option<bool>> = Vec::new();
        let mut matches = |memo: &Memo, i: usize| -> bool {
            if verdicts.len() <= i {
                verdicts.resize(memo.cwds.len().max(i + 1), None);
            }
            *verdicts[i].get_or_insert_with(|| {
                let recorded = &memo.cwds[i];
                recorded == cwd || host_fs::same_path(recorded, cwd)
            })
        };
        let mut best: Option<u64> = None;
        let mut best_at = (0, 0);
        let mut unknown = Vec::new();
        for (d, (dir, files)) in dirs.iter().enumerate() {
            let known = memo.files.get(dir);
            for (f, (name, stamp)) in files.iter().enumerate() {
                let mtime = stamp.0;
                match known.and_then(|k| k.get(name)) {
                    Some(k) if k.stamp == *stamp => {
                        if best < Some(mtime) && k.cwd.is_some_and(|i| matches(&memo, i)) {
                            best = Some(mtime);
                            best_at = (d, f);
                        }
                    }
                    _ => unknown.push((mtime, d, f)),
                }
            }
        }
        unknown.sort_unstable_by(|a, b| b.0.cmp(&a.0));
        for (mtime, d, f) in unknown {
            if best >= Some(mtime) {
                break;
            }
            let (dir, files) = &dirs[d];
            let (name, stamp) = &files[f];
            let Ok(recorded) = session_cwd(&format!("{dir}/{name}")) else {
                continue;
            };
            let recorded = recorded.map(|c| memo.intern(c));
            let hit = recorded.is_some_and(|i| matches(&memo, i));
            memo.files.entry(dir.clone()).or_default().insert(
                name.clone(),
                Known {
                    stamp: *stamp,
                    cwd: recorded,
                },
            );
            if hit {
                best = Some(mtime);
                best_at = (d, f);
            }
        }
        let Some(mtime) = best else {
            memo.sessions.remove(cwd);
            return None;
        };
        let (dir, files) = &dirs[best_at.0];
        let name = &files[best_at.1].0;
        memo.sessions.insert(
            cwd.to_string(),
            Found {
                dir: dir.clone(),
                name: name.clone(),
                judged: 0,
            },
        );
        Some((format!("{dir}/{name}"), mtime))
    })
}

/// The newest mtime among the session files recorded for `cwd`.
fn newest_session_mtime(cwd: &str) -> Option<u64> {
    newest_session(cwd).map(|(_, mtime)| mtime)
}

// ---- judge-turn ----------------------------------------------------------

/// How much of a session file's end is read: its last records (a tool's
/// output is kept truncated, so a few dozen fit). One `read-tail`.
const TAIL_BYTES: u32 = 256 << 10;

/// The `payload.type` of the `event_msg` records that open and close a
/// turn. Codex serialises its `TurnStarted`/`TurnComplete` events as
/// `task_started`/`task_complete` and reads `turn_started`/`turn_complete`
/// as aliases; an interrupted turn ends with `turn_aborted`.
const TURN_OPENS: &[&str] = &["task_started", "turn_started"];
const TURN_ENDS: &[&str] = &["task_complete", "turn_complete", "turn_aborted"];

/// One session-file line's verdict, or `None` to read the line before it.
/// Codex writes one JSON object per line (`session_meta`, `response_item`,
/// `turn_context`, `event_msg`, …); only the turn markers among the
/// `event_msg` records say where the turn is. A line that is no JSON is no
/// session file this adapter knows: it cannot tell. The markers are looked
/// for as text first, so most lines are passed over without parsing.
fn record_turn(line: &str) -> Option<TranscriptTurn> {
    if !line.trim_start().starts_with('{') {
        return Some(TranscriptTurn::Unknown);
    }
    if !TURN_OPENS.iter().chain(TURN_ENDS).any(|m| line.contains(m)) {
        return None;
    }
    let Ok(record) = serde_json::from_str::<Value>(line) else {
        return Some(TranscriptTurn::Unknown);
    };
    if record.get("type").and_then(Value::as_str) != Some("event_msg") {
        return None;
    }
    let event = record.get("payload")?.get("type")?.as_str()?;
    if TURN_OPENS.contains(&event) {
        Some(TranscriptTurn::Open)
    } else if TURN_ENDS.contains(&event) {
        Some(TranscriptTurn::Ended)
    } else {
        None
    }
}

/// How many `judge-turn` calls for one cwd may use the session file found
/// last before a full scan looks again (at the host's 100 ms polling of a
/// peer mid-turn, about five seconds). Every `newest-activity-mtime` and
/// `resolve-resume` scans in full too.
const RESCAN_EVERY: u32 = 50;

/// The session file found last for `cwd`, checked with one `list-dir` of
/// its directory: still there, and no newer session file beside it that is
/// this cwd's or not yet known (codex starts a new session in the day's
/// directory). `None`: a full scan must decide.
fn found_session(cwd: &str) -> Option<String> {
    MEMO.with(|memo| {
        let mut memo = memo.borrow_mut();
        let found = memo.sessions.get_mut(cwd)?;
        if found.judged >= RESCAN_EVERY {
            return None;
        }
        found.judged += 1;
        let (dir, name) = (found.dir.clone(), found.name.clone());
        let entries = host_fs::list_dir(&dir).ok()?;
        let recorded_cwd = |file: &str| {
            let known = memo.files.get(&dir)?.get(file)?;
            Some(known.cwd.map(|i| memo.cwds[i].as_str()))
        };
        still_newest(&entries, &name, cwd, recorded_cwd).then(|| format!("{dir}/{name}"))
    })
}

/// Is `name` still among `entries` with no newer session file beside it
/// that may be `cwd`'s? `recorded_cwd` says what is known of a file: not
/// read yet (`None`), not a session (`Some(None)`), or the cwd its first
/// line records, which never changes however the file grows (compared as
/// written: a cwd spelt another way waits for the next full scan).
fn still_newest<'a>(
    entries: &[DirEntry],
    name: &str,
    cwd: &str,
    recorded_cwd: impl Fn(&str) -> Option<Option<&'a str>>,
) -> bool {
    let Some(mtime) = entries.iter().find(|e| e.name == name).map(|e| e.mtime_ms) else {
        return false;
    };
    !entries.iter().any(|e| {
        e.mtime_ms > mtime
            && e.name != name
            && e.name.ends_with(".jsonl")
            && e.kind != EntryKind::Directory
            && match recorded_cwd(&e.name) {
                None => true,
                Some(recorded) => recorded == Some(cwd),
            }
    })
}

/// What the end of the newest session file of `cwd` says of the turn.
/// Usually one `list-dir` and one `read-tail`; a full scan of the sessions
/// tree (the one `newest-activity-mtime` makes) now and then.
fn transcript_turn(cwd: &str) -> TranscriptTurn {
    let Some(path) = found_session(cwd).or_else(|| newest_session(cwd).map(|(path, _)| path))
    else {
        return TranscriptTurn::Unknown;
    };
    match host_fs::read_tail(&path, TAIL_BYTES) {
        Ok(tail) => judge_tail(&tail, record_turn),
        Err(_) => TranscriptTurn::Unknown,
    }
}

/// The status row above the composer while a turn runs:
/// `• Working (2s • esc to interrupt)` (the bullet alternates with `◦`),
/// `• Reconnecting... 1/5 (5s • esc to interrupt)`, possibly followed by
/// `· 1 background terminal running · …`.
fn is_status_row(row: &str) -> bool {
    let Some(rest) = row.strip_prefix("• ").or_else(|| row.strip_prefix("◦ ")) else {
        return false;
    };
    let rest = rest.to_lowercase();
    rest.find('(')
        .is_some_and(|open| rest[open..].contains("esc to interrupt)"))
}

/// How many rows above the composer the status row is looked for (between
/// them: a reconnect's `└` notice, queued messages, all indented).
const STATUS_SEARCH_ROWS: usize = 6;

/// Does the screen show a turn at work? The nearest row above the composer
/// that starts at the left edge is the status row. (While the answer
/// streams there is none: the session file tells.)
fn pane_working(rows: &[&str]) -> bool {
    let filled: Vec<&str> = rows
        .iter()
        .copied()
        .filter(|r| !r.trim_matches(is_js_whitespace).is_empty())
        .collect();
    let Some(prompt) = composer_at(&filled) else {
        return false;
    };
    filled[..prompt]
        .iter()
        .rev()
        .take(STATUS_SEARCH_ROWS)
        .find(|r| !r.starts_with(is_js_whitespace))
        .is_some_and(|r| is_status_row(r))
}

/// What the pane says of the turn: a menu (an approval, a question, a
/// startup dialog) or the key hint of a screen that takes keys (a notice,
/// the hooks review, the transcript browser) in the live region is a
/// dialog; else the status row at work.
fn pane_turn(pane: &str) -> PaneTurn {
    let rows: Vec<&str> = pane.lines().collect();
    let live = live_region(&rows);
    if !screen::choices(&live, '›', true).is_empty()
        || WAITING.iter().any(|w| screen::any_row_has(&live, w))
    {
        PaneTurn::Dialog
    } else if pane_working(&rows) {
        PaneTurn::Working
    } else {
        PaneTurn::Other
    }
}

/// A composer ready for a message: no menu and no other screen in the live
/// region, the composer at its top, empty.
fn composer_ready(pane: &str) -> bool {
    let rows: Vec<&str> = pane.lines().collect();
    let live = live_region(&rows);
    // No check for the "OpenAI Codex" splash: a long resumed history
    // scrolls it away.
    screen::choices(&live, '›', true).is_empty()
        && !WAITING.iter().any(|w| screen::any_row_has(&live, w))
        && !live
            .iter()
            .any(|r| r.trim_matches(is_js_whitespace) == TRANSIENT_HINT)
        && live.first().is_some_and(|r| is_composer_row(r))
        && composer_empty(&live)
}

impl Guest for Codex {
    fn info() -> AdapterInfo {
        AdapterInfo {
            runtime: "codex".into(),
            // Build metadata: the runtime version its screens were verified
            // against (`iapeer doctor` shows it next to the installed one).
            version: concat!(env!("CARGO_PKG_VERSION"), "+verified.0.171.0").into(),
            kind: Kind::Tui,
            uses_doctrine: true,
            requires_intelligence: None,
            default_binary: "codex".into(),
            binary_env: Some("IAPEER_CODEX_BIN".into()),
            read_dirs: vec![SESSIONS_DIR.into()],
            cwd_read_paths: Vec::new(),
            default_intelligence: None,
            binary_dirs: vec!["~/.bun/bin".into(), "~/.local/bin".into(), "/opt/homebrew/bin".into()],
            // Started from a Claude Code session, it must not inherit its markers.
            env_remove: vec!["CLAUDE_CODE_*".into(), "CLAUDECODE".into()],
            // The Codex TUI shows a large paste as `[Pasted Content N chars]`.
            delivery: DeliveryMarkers {
                paste_placeholders: vec!["[Pasted Content".into()],
                composer_rows: 6,
            },
            limits: None,
        }
    }

    fn build_launch(spec: LaunchSpec) -> Result<LaunchCommand, String> {
        let mut head = vec![spec.binary.clone()];
        // codex itself picks the newest session of the cwd.
        if spec.resume {
            head.extend(keys(&["resume", "--last"]));
        }
        head.extend(keys(&["--no-alt-screen", "-C"]));
        head.push(spec.cwd.clone());
        if let Some(prompt) = &spec.system_prompt_file {
            head.push("-c".into());
            head.push(format!("model_instructions_file={prompt}"));
        }
        head.push("--dangerously-bypass-approvals-and-sandbox".into());
        Ok(LaunchCommand {
            argv: argv_with_extras(head, &spec),
            env: vec![EnvVar {
                name: BEARER.0.into(),
                value: BEARER.1.into(),
            }],
        })
    }

    fn resolve_resume(cwd: String) -> Result<Option<String>, String> {
        match newest_session_mtime(&cwd) {
            Some(_) => Ok(None),
            None => Err("no codex session to resume".into()),
        }
    }

    fn newest_activity_mtime(cwd: String) -> Option<u64> {
        newest_session_mtime(&cwd)
    }

    fn boot_dialog_keys(pane: String) -> Option<Vec<String>> {
        let rows: Vec<&str> = pane.lines().collect();
        let live = live_region(&rows);
        let menu = screen::choices(&live, '›', true);
        screen::answer_known(&live, &menu, DIALOGS)
    }

    fn is_input_ready(pane: String) -> bool {
        composer_ready(&pane)
    }

    fn control_keys(command: String) -> Option<ControlSequence> {
        tui_control_keys(&command)
    }

    fn judge_turn(pane: String, cwd: String) -> TurnState {
        judge_tui_turn(
            pane_turn(&pane),
            || transcript_turn(&cwd),
            || composer_ready(&pane),
        )
    }

    fn record_holds(cwd: String, needle: String) -> Option<bool> {
        let path = found_session(&cwd).or_else(|| newest_session(&cwd).map(|(path, _)| path));
        tail_holds(path.as_deref(), &needle)
    }
}

export_adapter!(Codex);

#[cfg(test)]
mod tests {
    //! `judge-turn`'s pure parts, against the golden panes of the real CLI
    //! (tests/fixtures/panes/real) and session-file records in Codex's
    //! format. No host: nothing here calls `host_fs`.

    use super::*;

    const GOLDENS: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/fixtures/panes/real/codex-0.171.0/"
    );

    fn golden(name: &str) -> String {
        std::fs::read_to_string(format!("{GOLDENS}{name}.txt")).expect(name)
    }

    /// `judge-turn` with the session file's verdict given.
    fn judged(pane: &str, transcript: TranscriptTurn) -> TurnState {
        judge_tui_turn(pane_turn(pane), || transcript, || composer_ready(pane))
    }

    fn tail(lines: &[&str]) -> TranscriptTurn {
        judge_tail(&(lines.join("\n") + "\n"), record_turn)
    }

    #[test]
    fn a_turn_at_work_is_working() {
        for name in [
            "working-1",
            "working-2",
            "working-tool-running",
            "working-with-draft",
            "overloaded-reconnecting",
        ] {
            assert_eq!(pane_turn(&golden(name)), PaneTurn::Working, "{name}");
            assert_eq!(
                judged(&golden(name), TranscriptTurn::Ended),
                TurnState::Working,
                "{name}"
            );
        }
    }

    #[test]
    fn a_dialog_wins() {
        for name in [
            "approval-exec-opt1",
            "approval-exec-opt3",
            "approval-patch-opt1",
            "trust-git-opt1",
            "update-opt2",
            "hooks-opt1",
            "hooks-review-screen",
            "model-migration-opt1",
            // The transcript browser: Enter would rewind.
            "esc-esc-empty-with-history",
        ] {
            assert_eq!(pane_turn(&golden(name)), PaneTurn::Dialog, "{name}");
            assert_eq!(
                judged(&golden(name), TranscriptTurn::Open),
                TurnState::Dialog,
                "{name}"
            );
        }
    }

    #[test]
    fn an_ended_turn_at_an_empty_composer_is_idle() {
        for name in [
            "ready-first-launch",
            "ready-after-turns",
            "ready-quiet-config",
            "ready-with-update-banner",
            "resumed-history-phrases",
            "working-message-queued",
            "esc-while-working",
            "ctrl-c-while-working",
            "overloaded-final",
            "approval-exec-after-enter",
            "mcp-tool-call-done",
        ] {
            assert_eq!(pane_turn(&golden(name)), PaneTurn::Other, "{name}");
            assert_eq!(
                judged(&golden(name), TranscriptTurn::Ended),
                TurnState::Idle,
                "{name}"
            );
            assert_eq!(
                judged(&golden(name), TranscriptTurn::Unknown),
                TurnState::Idle,
                "{name}"
            );
        }
    }

    /// A conversation that quotes a dialog's or a status row's words is
    /// still a conversation.
    #[test]
    fn dialog_and_status_words_in_the_history_are_not_a_turn() {
        let ready = golden("ready-after-turns");
        for phrase in [
            "Press enter to confirm or esc to cancel",
            "› 1. Yes, proceed (y)",
            "Working (2s • esc to interrupt)",
            "Browsing transcript · ↵ rewind · esc back",
        ] {
            let pane = ready.replacen("• ok", &format!("• {phrase}\n• ok"), 1);
            assert_ne!(pane, ready);
            assert_eq!(
                judged(&pane, TranscriptTurn::Unknown),
                TurnState::Idle,
                "{phrase}"
            );
        }
    }

    /// While the answer streams Codex shows no Working row: the screen looks
    /// idle, the session file's open turn says otherwise.
    #[test]
    fn a_streaming_answer_is_working_by_the_session_file() {
        let pane = golden("working-streaming-no-indicator");
        assert_eq!(pane_turn(&pane), PaneTurn::Other);
        assert_eq!(judged(&pane, TranscriptTurn::Open), TurnState::Working);
        assert_eq!(judged(&pane, TranscriptTurn::Ended), TurnState::Idle);
    }

    #[test]
    fn a_draft_or_a_transient_screen_is_unknown() {
        for name in [
            "paste-short",
            "paste-long",
            "slash-popup-compact-typed",
            "startup-transient-before-dialogs",
        ] {
            assert_eq!(pane_turn(&golden(name)), PaneTurn::Other, "{name}");
            assert_eq!(
                judged(&golden(name), TranscriptTurn::Ended),
                TurnState::Unknown,
                "{name}"
            );
        }
    }

    #[test]
    fn status_rows() {
        for row in [
            "• Working (2s • esc to interrupt)",
            "◦ Working (8s • esc to interrupt)",
            "• Reconnecting... 1/5 (5s • esc to interrupt)",
            "• Working (2s • esc to interrupt) · 1 background terminal running · /ps to view · /stop to close",
            "• Working (1m 03s • Esc to interrupt)",
        ] {
            assert!(is_status_row(row), "{row}");
        }
        for row in [
            "• ok",
            "• Press esc to interrupt it",
            "  Worked for 20s • 04:34",
            "› esc to interrupt (quoted)",
            "  • Working (2s • esc to interrupt)",
        ] {
            assert!(!is_status_row(row), "{row}");
        }
    }

    /// The fake TUI of the tests (tests/fakes/fake-codex): no status row, a
    /// session file whose first line is a `session_meta` record and the rest
    /// raw input lines.
    #[test]
    fn the_fake_at_its_composer_is_idle() {
        let pane =
            ">_ OpenAI Codex (v0.46.0)\n\n directory: /tmp/w\n\n› Ask Codex to do anything\n";
        let meta = r#"{"type":"session_meta","payload":{"id":"42","cwd":"/tmp/w"}}"#;
        assert_eq!(tail(&[meta]), TranscriptTurn::Unknown);
        assert_eq!(tail(&[meta, "hello bob"]), TranscriptTurn::Unknown);
        assert_eq!(judged(pane, tail(&[meta, "hello bob"])), TurnState::Idle);
    }

    // Records as Codex writes them (`RolloutLine`: a timestamp, then the
    // item tagged by `type` with its `payload`).
    const META: &str = r#"{"timestamp":"2026-12-07T04:33:00.640Z","type":"session_meta","payload":{"id":"01a2","timestamp":"2026-12-07T04:33:00.469Z","cwd":"/var/tmp/cxw/a","originator":"codex_cli_rs","cli_version":"0.171.0","source":"cli","model_provider":"openai"}}"#;
    const STARTED: &str = r#"{"timestamp":"2026-12-07T04:34:00.641Z","type":"event_msg","payload":{"type":"task_started","turn_id":"t1","started_at":1796618040,"model_context_window":258400,"collaboration_mode_kind":"default"}}"#;
    const STARTED_V2: &str = r#"{"timestamp":"2026-12-07T04:34:00.641Z","type":"event_msg","payload":{"type":"turn_started","turn_id":"t1"}}"#;
    const TURN_CONTEXT: &str = r#"{"timestamp":"2026-12-07T04:34:00.700Z","type":"turn_context","payload":{"turn_id":"t1","cwd":"/var/tmp/cxw/a","approval_policy":"never","model":"gpt-5.5"}}"#;
    const USER: &str = r#"{"timestamp":"2026-12-07T04:34:00.710Z","type":"response_item","payload":{"type":"message","role":"user","content":[{"type":"input_text","text":"please hold"}]}}"#;
    const USER_EVENT_QUOTING: &str = r#"{"timestamp":"2026-12-07T04:34:00.711Z","type":"event_msg","payload":{"type":"user_message","message":"what does task_complete mean?"}}"#;
    const CALL: &str = r#"{"timestamp":"2026-12-07T04:34:01.000Z","type":"response_item","payload":{"type":"function_call","name":"exec_command","arguments":"{\"cmd\":\"sleep 8; echo slept\"}","call_id":"c1"}}"#;
    const CALL_OUTPUT: &str = r#"{"timestamp":"2026-12-07T04:34:09.000Z","type":"response_item","payload":{"type":"function_call_output","call_id":"c1","output":"slept"}}"#;
    const REPLY_QUOTING: &str = r#"{"timestamp":"2026-12-07T04:34:10.000Z","type":"response_item","payload":{"type":"message","role":"assistant","content":[{"type":"output_text","text":"It logs task_started, then task_complete."}]}}"#;
    const TOKENS: &str = r#"{"timestamp":"2026-12-07T04:34:10.100Z","type":"event_msg","payload":{"type":"token_count","info":null,"rate_limits":null}}"#;
    const COMPLETE: &str = r#"{"timestamp":"2026-12-07T04:34:10.200Z","type":"event_msg","payload":{"type":"task_complete","turn_id":"t1","last_agent_message":"This reply was held for twenty seconds."}}"#;
    const ABORTED: &str = r#"{"timestamp":"2026-12-07T04:34:05.000Z","type":"event_msg","payload":{"type":"turn_aborted","turn_id":"t1","reason":"interrupted"}}"#;

    #[test]
    fn the_last_turn_marker_decides() {
        use TranscriptTurn::*;
        assert_eq!(tail(&[META, STARTED, TURN_CONTEXT, USER]), Open);
        assert_eq!(tail(&[META, STARTED_V2, USER, CALL]), Open);
        assert_eq!(
            tail(&[META, STARTED, USER, CALL, CALL_OUTPUT, TOKENS]),
            Open
        );
        // Marker names quoted in a message are no marker.
        assert_eq!(
            tail(&[META, STARTED, USER_EVENT_QUOTING, REPLY_QUOTING]),
            Open
        );
        assert_eq!(
            tail(&[META, STARTED, USER, REPLY_QUOTING, TOKENS, COMPLETE]),
            Ended
        );
        assert_eq!(tail(&[META, STARTED, USER, COMPLETE, TOKENS]), Ended);
        assert_eq!(tail(&[META, STARTED, USER, CALL, ABORTED]), Ended);
        assert_eq!(tail(&[COMPLETE, STARTED, USER]), Open);
    }

    #[test]
    fn the_session_found_last_holds_until_a_newer_one_may_be_the_peers() {
        let entry = |name: &str, mtime_ms: u64| DirEntry {
            name: name.into(),
            kind: EntryKind::File,
            mtime_ms,
            size: 1,
        };
        let mine = "rollout-a.jsonl";
        let recorded = |file: &str| match file {
            "rollout-other.jsonl" => Some(Some("/w/other")),
            "rollout-mine-too.jsonl" => Some(Some("/w/me")),
            "notes.jsonl" => Some(None),
            _ => None,
        };
        let with = |more: &[DirEntry]| {
            let mut entries = vec![entry(mine, 100), entry("older.jsonl", 50)];
            entries.extend_from_slice(more);
            still_newest(&entries, mine, "/w/me", recorded)
        };
        assert!(with(&[]));
        // Another peer's session, or no session, written since: still ours.
        assert!(with(&[
            entry("rollout-other.jsonl", 200),
            entry("notes.jsonl", 300)
        ]));
        assert!(with(&[entry("new.txt", 200)]));
        // A newer one of ours, or one not read yet: a full scan decides.
        assert!(!with(&[entry("rollout-mine-too.jsonl", 200)]));
        assert!(!with(&[entry("rollout-new.jsonl", 200)]));
        // Gone.
        assert!(!still_newest(
            &[entry("older.jsonl", 50)],
            mine,
            "/w/me",
            recorded
        ));
    }

    #[test]
    fn no_marker_is_unknown() {
        use TranscriptTurn::*;
        assert_eq!(tail(&[META]), Unknown);
        // The start of a long turn out of the tail's reach.
        assert_eq!(tail(&[USER, CALL, CALL_OUTPUT, TOKENS]), Unknown);
        assert_eq!(tail(&[]), Unknown);
        // A raw line after a marker: not a session file this adapter knows.
        assert_eq!(tail(&[STARTED, "hello"]), Unknown);
        // A line still being written is not read.
        let partial = format!("{STARTED}\n{}", &COMPLETE[..60]);
        assert_eq!(judge_tail(&partial, record_turn), Open);
    }
}
