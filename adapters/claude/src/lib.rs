//! The Claude Code runtime adapter.

use iapeer_adapter_sdk::screen::{self, KnownDialog, Screen};
use iapeer_adapter_sdk::{
    AdapterInfo, ControlSequence, Guest, Kind, LaunchCommand, LaunchSpec, PaneTurn, TranscriptTurn,
    TurnState, argv_with_extras, claude_like_delivery, export_adapter, host_fs, is_js_whitespace,
    judge_tail, judge_tui_turn, keys, newest_with_suffix, tail_holds, tui_control_keys,
};
use serde_json::Value;

struct Claude;

const PROJECTS_DIR: &str = ".claude/projects";

/// The startup dialogs this adapter answers, by a phrase of their own text
/// and the words of the option that answers them. Anything else (a login
/// picker, an API-key question, a permission prompt) is never answered.
const DIALOGS: &[KnownDialog] = &[
    // Folder trust: "Quick safety check: Is this a project you created or
    // one you trust?" (2.1.x); "Do you trust the files in this folder?".
    KnownDialog {
        phrase: "Quick safety check",
        answers: &["Yes, I trust this folder"],
    },
    KnownDialog {
        phrase: "trust the files in this folder",
        answers: &["Yes, I trust this folder"],
    },
    // An `--add-dir` the operator passes (`PEER_START_ARGS`), every
    // session of 2.1.x.
    KnownDialog {
        phrase: "Adding a new directory",
        answers: &["Yes, add it"],
    },
    // Its default, "No, exit", would end the peer.
    KnownDialog {
        phrase: "Bypass Permissions mode",
        answers: &["Yes, I accept", "Yes, I am using this for local development"],
    },
    // The project's MCP server (the iapeer front door `mcp-config` wrote).
    KnownDialog {
        phrase: "MCP server",
        answers: &["Use this and all future MCP servers in this project"],
    },
    KnownDialog {
        phrase: "Allow external CLAUDE.md file imports?",
        answers: &["Yes, allow external imports"],
    },
    KnownDialog {
        phrase: "Choose the text style",
        answers: &["Dark mode"],
    },
    // Its default compacts the conversation.
    KnownDialog {
        phrase: "Resume from summary",
        answers: &["Resume full session as-is"],
    },
];

/// Screens that pass by themselves (neither a dialog nor the composer):
/// the host waits, pressing nothing, however long their words stay still.
const WAITING: &[&str] = &["Resuming the full session"];

/// How many rows at the bottom a TUI without rules keeps live.
const UNRULED_LIVE_ROWS: usize = 12;

/// The live region: what Claude Code draws below its last rule (a dialog,
/// or the status line under the composer). Older versions draw no rules:
/// the bottom rows then.
fn live_region<'a>(screen: &Screen<'a>) -> Vec<&'a str> {
    screen
        .below_last_rule()
        .unwrap_or_else(|| screen.last_rows(UNRULED_LIVE_ROWS))
}

/// The dim hints Claude Code shows in an empty composer (plain text cannot
/// tell them from typed text).
const EMPTY_COMPOSER_HINTS: &[&str] = &[
    "Press up to edit queued messages",
    "Resend your message to try again",
];

/// Is a composer (its rows, the first one starting with `❯`) empty? Text
/// in it is someone's unsent draft: a message pasted there would go out
/// with it.
fn composer_empty(rows: &[&str]) -> bool {
    let text: Vec<&str> = rows
        .iter()
        .map(|r| {
            r.trim_matches(is_js_whitespace)
                .trim_start_matches('❯')
                .trim_matches(is_js_whitespace)
        })
        .filter(|t| !t.is_empty())
        .collect();
    match text[..] {
        [] => true,
        [hint] => EMPTY_COMPOSER_HINTS.contains(&hint),
        _ => false,
    }
}

/// A composer ready for a message: the rows between the last two rules
/// start with the `❯` prompt and hold nothing, and nothing below them is a
/// menu. Without rules (older versions): the prompt and the bypass status
/// line in the bottom rows.
fn composer_ready(pane: &str) -> bool {
    let screen = Screen::new(pane);
    let mut live = live_region(&screen);
    if slash_menu(&live) {
        // The composer's own completion of a typed `/command`: whether the
        // composer holds only what the host typed is judged above it.
        live.clear();
    }
    if !screen::choices(&live, '❯', false).is_empty()
        || WAITING.iter().any(|w| screen::any_row_has(&live, w))
    {
        return false;
    }
    match screen.between_last_two_rules() {
        Some(composer) => {
            composer
                .iter()
                .find(|r| !r.trim_matches(is_js_whitespace).is_empty())
                .is_some_and(|r| r.trim_start_matches(is_js_whitespace).starts_with('❯'))
                && composer_empty(&composer)
        }
        None => {
            screen::any_row_has(&live, "❯")
                && screen::any_row_has(&live, "bypass permissions on")
                && !DIALOGS.iter().any(|d| screen::any_row_has(&live, d.phrase))
        }
    }
}

/// Is the live region the menu Claude Code opens under a composer holding
/// `/…`: every row a command (`/compact`, `/plugin:cmd`), two spaces, and
/// what it does, the highlighted one behind `❯`?
fn slash_menu(live: &[&str]) -> bool {
    let rows: Vec<&str> = live
        .iter()
        .map(|r| r.trim_matches(is_js_whitespace))
        .filter(|r| !r.is_empty())
        .collect();
    !rows.is_empty()
        && rows.iter().all(|r| {
            let r = r.trim_start_matches('❯').trim_start_matches(is_js_whitespace);
            let Some(rest) = r.strip_prefix('/') else {
                return false;
            };
            let name_end = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || "-_:".contains(c)))
                .unwrap_or(rest.len());
            name_end > 0 && rest[name_end..].starts_with("  ")
        })
}

/// Claude's per-project transcript directory name: every character of the
/// canonical cwd that is not ASCII alphanumeric becomes `-`. Claude computes
/// this with a JavaScript regex over UTF-16 code units, so a character outside
/// the BMP becomes two dashes.
fn project_slug(cwd: &str) -> String {
    let mut slug = String::with_capacity(cwd.len());
    for c in cwd.chars() {
        if c.is_ascii_alphanumeric() {
            slug.push(c);
        } else {
            (0..c.len_utf16()).for_each(|_| slug.push('-'));
        }
    }
    slug
}

/// The newest `.jsonl` transcript of `cwd`: (session id, mtime).
fn newest_transcript(cwd: &str) -> Option<(String, u64)> {
    let dir = format!("{PROJECTS_DIR}/{}", project_slug(cwd));
    let entries = host_fs::list_dir(&dir).ok()?;
    let newest = newest_with_suffix(&entries, ".jsonl")?;
    let id = newest.name.strip_suffix(".jsonl").unwrap_or(&newest.name);
    Some((id.to_string(), newest.mtime_ms))
}

/// The transcript the session in `cwd` writes: the newest `.jsonl` of the
/// project that is not a subagent's (`agent-*.jsonl`, which 2.0.x kept
/// beside the sessions; a subagent runs inside a turn of the session, whose
/// own last entry then is the tool call that started it). One `list-dir`.
fn session_transcript(cwd: &str) -> Option<String> {
    let dir = format!("{PROJECTS_DIR}/{}", project_slug(cwd));
    let mut entries = host_fs::list_dir(&dir).ok()?;
    entries.retain(|e| !e.name.starts_with("agent-"));
    let newest = newest_with_suffix(&entries, ".jsonl")?;
    Some(format!("{dir}/{}", newest.name))
}

// ---- judge-turn ----------------------------------------------------------

/// How much of a transcript's end is read: its last entries, one of which
/// may be a tool result holding a whole file (twice: for the model and for
/// the UI). One `read-tail`.
const TAIL_BYTES: u32 = 256 << 10;

/// Key hints and questions of a dialog (a permission prompt, the trust,
/// rewind or auto-mode screens): in the live region, a key typed now would
/// answer it.
const DIALOG_HINTS: &[&str] = &[
    "Esc to cancel",
    "Enter to confirm",
    "Do you want to proceed?",
];

/// What the status row under the composer says while a turn runs (2.1.x:
/// `⏵⏵ bypass permissions on (shift+tab to cycle) · esc to interrupt`; it
/// goes while the composer holds a draft, the spinner stays).
const STATUS_WORKING: &str = "esc to interrupt";

/// How many rows above the composer the spinner is looked for (below it:
/// the tool's `⎿` output, a tip, the effort gauge, all indented).
const SPINNER_SEARCH_ROWS: usize = 8;

/// Glyphs that open a row that is no spinner: the prompt, a reply, a tool's
/// output, a frame.
const NOT_SPINNER_GLYPHS: &str = "❯>●⎿│─╭╰▎";

/// Claude Code's spinner row while a turn runs: a glyph (`✢ ✳ ✶ ✻ ✽ ·`),
/// a word with an ellipsis and the elapsed time in parentheses
/// (`✽ Doing… (1s · ↓ 6 tokens)`, `✻ Compacting conversation… (12s)`;
/// 1.x put `esc to interrupt` inside them), or an API retry
/// (`✻ API error · retrying in 1s · attempt 2/10`). The row a turn leaves
/// behind, `✻ Cooked for 20s · done 4:35 AM`, has no ellipsis.
fn is_spinner_row(row: &str) -> bool {
    let row = row.trim_matches(is_js_whitespace);
    let mut chars = row.chars();
    let Some(glyph) = chars.next() else {
        return false;
    };
    let rest = chars.as_str();
    if glyph.is_alphanumeric() || NOT_SPINNER_GLYPHS.contains(glyph) || !rest.starts_with(' ') {
        return false;
    }
    (rest.contains("… (") && rest.ends_with(')'))
        || rest.contains(STATUS_WORKING)
        || (rest.contains("retrying in ") && rest.contains("attempt "))
}

/// A row that opens a prompt (`❯`; 1.x: `>` in a box): without rules,
/// what is live on screen starts at the last one.
fn is_prompt_row(row: &&str) -> bool {
    let t = row.trim_start_matches(is_js_whitespace);
    t.starts_with('❯') || t.starts_with('>') || t.starts_with("│ >")
}

/// Where the turn shows: below the last rule (a dialog, or the status row
/// under the composer). Without rules (older versions, or rules narrower
/// than a long row of the history) the bottom rows, from the last prompt
/// row on: history above it may quote a dialog or hold a spinner row of a
/// turn long over.
fn turn_region<'a>(screen: &Screen<'a>) -> Vec<&'a str> {
    screen.below_last_rule().unwrap_or_else(|| {
        let rows = screen.last_rows(UNRULED_LIVE_ROWS);
        let from = rows.iter().rposition(is_prompt_row).unwrap_or(0);
        rows[from..].to_vec()
    })
}

/// Does the screen show a turn at work? The status row under the composer
/// says `esc to interrupt`, or the nearest row above the composer that
/// starts at the left edge is the spinner. Without a composer framed by
/// two rules: a spinner row in the turn region (1.x drew its spinner above
/// the prompt, out of it: there the transcript tells).
fn pane_working(screen: &Screen, region: &[&str]) -> bool {
    let Some(above) = screen.above_last_two_rules() else {
        return region.iter().any(|r| is_spinner_row(r));
    };
    if screen::any_row_has(region, STATUS_WORKING) {
        return true;
    }
    above
        .iter()
        .rev()
        .filter(|r| !r.trim_matches(is_js_whitespace).is_empty())
        .take(SPINNER_SEARCH_ROWS)
        .find(|r| !r.starts_with(is_js_whitespace))
        .is_some_and(|r| is_spinner_row(r))
}

/// What the pane says of the turn: a menu (other than the composer's own
/// `/command` completion), a dialog's key hint or a known dialog's phrase
/// in the turn region is a dialog; else a status line at work.
fn pane_turn(pane: &str) -> PaneTurn {
    let screen = Screen::new(pane);
    let region = turn_region(&screen);
    let dialog = !slash_menu(&region)
        && (!screen::choices(&region, '❯', false).is_empty()
            || DIALOG_HINTS.iter().any(|h| screen::any_row_has(&region, h))
            || DIALOGS
                .iter()
                .any(|d| screen::any_row_has(&region, d.phrase)));
    if dialog {
        PaneTurn::Dialog
    } else if pane_working(&screen, &region) {
        PaneTurn::Working
    } else {
        PaneTurn::Other
    }
}

/// The texts of a message's `content`: the string itself, or its `text`
/// blocks.
fn content_texts(content: &Value) -> Vec<&str> {
    match content {
        Value::String(s) => vec![s.as_str()],
        Value::Array(blocks) => blocks
            .iter()
            .filter(|b| b.get("type").and_then(Value::as_str) == Some("text"))
            .filter_map(|b| b.get("text").and_then(Value::as_str))
            .collect(),
        _ => Vec::new(),
    }
}

/// The marker Claude Code writes as a user entry when a turn is interrupted
/// (`[Request interrupted by user]`, `… for tool use]`).
const INTERRUPTED: &str = "[Request interrupted by user";

/// What a rejected tool call's result says (the permission prompt's "No");
/// with feedback the turn goes on, without it the turn stopped.
const REJECTED: &str = "The user doesn't want to";

/// User entries that are no prompt to the model: a local command's output,
/// a `!` shell command and its output.
const LOCAL_ONLY: &[&str] = &[
    "<local-command-stdout>",
    "<local-command-stderr>",
    "<local-command-caveat>",
    "<bash-input>",
    "<bash-stdout>",
    "<bash-stderr>",
];

/// A slash command: a prompt command (`/review`) opens a turn, a local one
/// (`/model`) does not; which one it was is not in the entry.
const COMMAND: &[&str] = &["<command-name>", "<command-message>"];

/// A `user` entry: a prompt opens a turn; a tool result opens the model's
/// next step; an interruption marker or a local command's output ends it.
fn user_turn(entry: &Value) -> Option<TranscriptTurn> {
    if entry.get("isMeta").and_then(Value::as_bool) == Some(true) {
        // A command's caveat, a skill's expansion, a stop hook's feedback:
        // what came before says more.
        return None;
    }
    if entry.get("isCompactSummary").and_then(Value::as_bool) == Some(true) {
        return Some(TranscriptTurn::Unknown);
    }
    let content = entry.get("message").and_then(|m| m.get("content"));
    let blocks = content
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    let results: Vec<&Value> = blocks
        .iter()
        .filter(|b| b.get("type").and_then(Value::as_str) == Some("tool_result"))
        .collect();
    if !results.is_empty() {
        let stopped = results.iter().any(|r| {
            let said = r.get("content").map(content_texts).unwrap_or_default();
            said.iter()
                .any(|t| t.contains(REJECTED) || t.contains(INTERRUPTED))
        });
        return Some(if stopped {
            TranscriptTurn::Unknown
        } else {
            TranscriptTurn::Open
        });
    }
    let texts: Vec<&str> = content
        .map(content_texts)
        .unwrap_or_default()
        .into_iter()
        .map(|t| t.trim_start())
        .filter(|t| !t.is_empty())
        .collect();
    let other_blocks = blocks
        .iter()
        .any(|b| b.get("type").and_then(Value::as_str) != Some("text"));
    let Some(first) = texts.first() else {
        // Only an image, say: a prompt; nothing at all: not one.
        return Some(if other_blocks {
            TranscriptTurn::Open
        } else {
            TranscriptTurn::Unknown
        });
    };
    if !other_blocks && texts.iter().all(|t| t.starts_with(INTERRUPTED)) {
        return Some(TranscriptTurn::Ended);
    }
    if LOCAL_ONLY.iter().any(|m| first.starts_with(m)) {
        return Some(TranscriptTurn::Ended);
    }
    if COMMAND.iter().any(|m| first.starts_with(m)) {
        return Some(TranscriptTurn::Unknown);
    }
    Some(TranscriptTurn::Open)
}

/// An `assistant` entry (one per content block, `stop_reason` often still
/// null): a tool call opens the next step; `end_turn` and the like end the
/// turn; text with no stop reason is taken as an end (what follows it, if
/// anything, is soon written); thinking alone cannot tell.
fn assistant_turn(entry: &Value) -> Option<TranscriptTurn> {
    let message = entry.get("message");
    let stop = message
        .and_then(|m| m.get("stop_reason"))
        .and_then(Value::as_str);
    let blocks = message
        .and_then(|m| m.get("content"))
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    let has = |kind: &str| {
        blocks
            .iter()
            .any(|b| b.get("type").and_then(Value::as_str) == Some(kind))
    };
    Some(match stop {
        Some("tool_use") => TranscriptTurn::Open,
        Some("end_turn" | "stop_sequence" | "max_tokens" | "refusal") => TranscriptTurn::Ended,
        Some(_) => TranscriptTurn::Unknown,
        None if has("tool_use") => TranscriptTurn::Open,
        None if has("text") => TranscriptTurn::Ended,
        None => TranscriptTurn::Unknown,
    })
}

/// One transcript line's verdict, or `None` to read the line before it.
/// Claude Code writes one JSON object per line: `user` and `assistant`
/// entries, `system` ones (`turn_duration` closes a turn: the `✻ Cooked
/// for 20s` row), and bookkeeping (`summary`, `file-history-snapshot`,
/// `queue-operation`, `attachment`, titles…) that says nothing of the
/// turn. A line that is no JSON object with a `type` is no transcript this
/// adapter knows: it cannot tell.
fn entry_turn(line: &str) -> Option<TranscriptTurn> {
    let Ok(entry) = serde_json::from_str::<Value>(line) else {
        return Some(TranscriptTurn::Unknown);
    };
    let Some(kind) = entry.get("type").and_then(Value::as_str) else {
        return Some(TranscriptTurn::Unknown);
    };
    if entry.get("isSidechain").and_then(Value::as_bool) == Some(true) {
        return None;
    }
    match kind {
        "user" => user_turn(&entry),
        "assistant" => assistant_turn(&entry),
        "system" => (entry.get("subtype").and_then(Value::as_str) == Some("turn_duration"))
            .then_some(TranscriptTurn::Ended),
        _ => None,
    }
}

/// What the end of the session's transcript says of the turn.
fn transcript_turn(cwd: &str) -> TranscriptTurn {
    let Some(path) = session_transcript(cwd) else {
        return TranscriptTurn::Unknown;
    };
    match host_fs::read_tail(&path, TAIL_BYTES) {
        Ok(tail) => judge_tail(&tail, entry_turn),
        Err(_) => TranscriptTurn::Unknown,
    }
}

impl Guest for Claude {
    fn info() -> AdapterInfo {
        AdapterInfo {
            runtime: "claude".into(),
            // Build metadata: the runtime version its screens were verified
            // against (`iapeer doctor` shows it next to the installed one).
            version: concat!(env!("CARGO_PKG_VERSION"), "+verified.2.1.332").into(),
            kind: Kind::Tui,
            uses_doctrine: true,
            requires_intelligence: None,
            default_binary: "~/.local/bin/claude".into(),
            binary_env: Some("IAPEER_CLAUDE_BIN".into()),
            read_dirs: vec![PROJECTS_DIR.into()],
            cwd_read_paths: Vec::new(),
            default_intelligence: None,
            // Where the native installer and npm/bun put it.
            binary_dirs: vec!["~/.local/bin".into(), "~/.bun/bin".into(), "/opt/homebrew/bin".into()],
            // A session started from inside Claude Code would take itself
            // for a nested one.
            env_remove: vec!["CLAUDE_CODE_*".into(), "CLAUDECODE".into()],
            delivery: claude_like_delivery(),
            limits: None,
        }
    }

    fn build_launch(spec: LaunchSpec) -> Result<LaunchCommand, String> {
        let mut head = vec![spec.binary.clone()];
        // No `--add-dir /`: in bypass mode a session already reads and
        // writes outside its folder, and 2.1.x asks about an added dir at
        // the start of every session.
        head.extend(keys(&[
            "--dangerously-skip-permissions",
            "--disallowedTools",
            "AskUserQuestion",
        ]));
        if let Some(prompt) = &spec.system_prompt_file {
            head.extend(["--system-prompt-file".to_string(), prompt.clone()]);
        }
        // Resume continues the newest session of the cwd. `--resume <id>` is
        // deliberately not used: claude treats its argument as a search query
        // and opens a picker.
        if spec.resume {
            head.push("--continue".into());
        }
        Ok(LaunchCommand {
            argv: argv_with_extras(head, &spec),
            env: Vec::new(),
        })
    }

    fn resolve_resume(cwd: String) -> Result<Option<String>, String> {
        match newest_transcript(&cwd) {
            Some((id, _)) => Ok(Some(id)),
            None => Err("no transcript to resume".into()),
        }
    }

    fn newest_activity_mtime(cwd: String) -> Option<u64> {
        newest_transcript(&cwd)
            .map(|(_, mtime)| mtime)
            .filter(|&m| m > 0)
    }

    fn boot_dialog_keys(pane: String) -> Option<Vec<String>> {
        let live = live_region(&Screen::new(&pane));
        let menu = screen::choices(&live, '❯', false);
        screen::answer_known(&live, &menu, DIALOGS).or_else(|| {
            // A progress screen: nothing to press, and not stuck.
            WAITING
                .iter()
                .any(|w| screen::any_row_has(&live, w))
                .then(Vec::new)
        })
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
        tail_holds(session_transcript(&cwd).as_deref(), &needle)
    }
}

export_adapter!(Claude);

#[cfg(test)]
mod tests {
    //! `judge-turn`'s pure parts, against the golden panes of the real CLI
    //! (tests/fixtures/panes/real) and transcript lines in Claude Code's
    //! format. No host: nothing here calls `host_fs`.

    use super::*;

    const GOLDENS: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/fixtures/panes/real/claude-2.1.332/"
    );

    fn golden(name: &str) -> String {
        std::fs::read_to_string(format!("{GOLDENS}{name}.txt")).expect(name)
    }

    /// `judge-turn` with the transcript's verdict given.
    fn judged(pane: &str, transcript: TranscriptTurn) -> TurnState {
        judge_tui_turn(pane_turn(pane), || transcript, || composer_ready(pane))
    }

    fn tail(lines: &[&str]) -> TranscriptTurn {
        judge_tail(&(lines.join("\n") + "\n"), entry_turn)
    }

    #[test]
    fn a_turn_at_work_is_working() {
        for name in [
            "working-2s",
            "working-8s",
            "working-tool-running",
            "working-with-queued-message",
            "working-text-ctrl-u",
            "80col-working",
            "noaltscreen-working",
            // The spinner row is replaced by the retry, the status row says it.
            "overloaded-retrying",
            // A draft in the composer hides `esc to interrupt`; the spinner stays.
            "working-with-typed-text",
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
            "perm-bash-opt1",
            "perm-bash-opt4",
            "trust-opt1-no",
            "trust-with-mcpjson-opt2-yes",
            "adddir-opt1-no",
            "continue-adddir-opt1-no",
            "apikey-opt2-no",
            "bypass-opt1-no",
            "mcp-opt3-continue-without",
            "mcp-dialog-default-mode-pretrusted",
            "80col-bypass-opt1-no",
            // The rewind menu (Esc Esc), and a screen with key hints only.
            "empty-esc-esc",
            "auto-mode-check-unavailable",
        ] {
            assert_eq!(pane_turn(&golden(name)), PaneTurn::Dialog, "{name}");
            // Even while the transcript says the turn is open.
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
            "ready-after-dialogs",
            "ready-after-one-turn",
            "ready-with-mcp",
            "ready-default-permissions",
            "after-queued-message",
            "interrupted-by-esc",
            "perm-bash-after-esc",
            "overloaded-no-retry",
            "noaltscreen-ready",
            "noaltscreen-after-turn",
            "80col-ready",
            "paste-long-submitted",
            // Dialog phrases and `❯ 1. Yes` rows in the history above.
            "history-phrases-live",
            "continue-ready-history-phrases",
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
            // The screen shows no work, the transcript an open turn (the
            // model streams between spinner frames): working.
            assert_eq!(
                judged(&golden(name), TranscriptTurn::Open),
                TurnState::Working,
                "{name}"
            );
        }
    }

    /// A conversation that quotes a dialog's words is still a conversation.
    #[test]
    fn dialog_words_in_the_history_are_not_a_dialog() {
        let ready = golden("ready-after-one-turn");
        for phrase in [
            "Quick safety check: Is this a project you created or one you trust?",
            "Do you want to proceed?",
            "❯ 1. Yes",
            "Enter to confirm · Esc to cancel",
            "✻ Doing… (1s · ↓ 6 tokens)",
            "bypass permissions on (shift+tab to cycle) · esc to interrupt",
        ] {
            let pane = ready.replacen("● Hello", &format!("● {phrase}\n● Hello"), 1);
            assert_ne!(pane, ready);
            assert_eq!(
                judged(&pane, TranscriptTurn::Unknown),
                TurnState::Idle,
                "{phrase}"
            );
        }
    }

    #[test]
    fn a_draft_or_a_menu_of_the_composer_is_unknown() {
        for name in [
            "composer-typed-after-turn",
            "working-text-esc-once",
            "paste-two-lines",
            "slash-menu-compact-typed",
            "left-arrow-empty-composer",
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
    fn spinner_rows() {
        for row in [
            "✽ Doing… (1s · ↓ 6 tokens)",
            "· Herding… (2s · ↓ 3 tokens)",
            "✻ Compacting conversation… (12s)",
            "✻ Thinking… (5s · ↑ 120 tokens · esc to interrupt)",
            "✻ API error · retrying in 1s · attempt 2/10",
            "  ✢ Working… (esc to interrupt)",
        ] {
            assert!(is_spinner_row(row), "{row}");
        }
        for row in [
            "✻ Cooked for 20s · done 4:35 AM",
            "● Hello… (from the model)",
            "❯ wait… (please)",
            "Doing… (1s)",
            "✽",
            "",
        ] {
            assert!(!is_spinner_row(row), "{row}");
        }
    }

    /// Without rules (the fake's are narrower than a pasted envelope's long
    /// first row): a status row under the last prompt is live, one above it
    /// is a turn long over.
    #[test]
    fn without_rules_only_rows_under_the_last_prompt_are_live() {
        let rule = "─".repeat(60);
        let status = "  ⏵⏵ bypass permissions on (shift+tab to cycle)";
        let long = format!("<iap from-personality=\"op\" {}>", "x".repeat(80));
        let working = format!("{long}\n{rule}\n❯ \n{rule}\n  ✢ Working… (esc to interrupt)\n");
        assert_eq!(Screen::new(&working).above_last_two_rules(), None);
        assert_eq!(pane_turn(&working), PaneTurn::Working);
        let after = format!("{working}{rule}\n❯ \n{rule}\n{status}\n");
        assert_eq!(pane_turn(&after), PaneTurn::Other);
        assert_eq!(judged(&after, TranscriptTurn::Unknown), TurnState::Idle);
    }

    /// The fake TUI of the tests (tests/fakes/fake-claude): no spinner, a
    /// transcript of raw input lines.
    #[test]
    fn the_fake_at_its_composer_is_idle_and_at_work_working() {
        let rule = "─".repeat(60);
        let status = "  ⏵⏵ bypass permissions on (shift+tab to cycle)";
        let ready = format!(
            "✻ Welcome to Claude Code!\n\n  cwd: /tmp/w\n\n{rule}\n❯ \n{rule}\n{status}\nhello bob\n{rule}\n❯ \n{rule}\n{status}\n"
        );
        let raw = judge_tail("hello bob\n<iap from-personality=\"alice\">\n", entry_turn);
        assert_eq!(raw, TranscriptTurn::Unknown);
        assert_eq!(judged(&ready, raw), TurnState::Idle);
        let working = format!("{ready}{rule}\n❯ \n{rule}\n  ✢ Working… (esc to interrupt)\n");
        assert_eq!(judged(&working, raw), TurnState::Working);
        let permission = format!(
            "{ready}\n{rule}\n Bash command\n\n   rm -rf build/ (1)\n\n Do you want to proceed?\n ❯ 1. Yes\n   2. No\n\n Esc to cancel · Tab to amend\n"
        );
        assert_eq!(judged(&permission, raw), TurnState::Dialog);
    }

    // Transcript entries as Claude Code writes them (fields it adds to every
    // entry — uuid, parentUuid, sessionId, cwd, version… — mostly left out).
    const PROMPT: &str = r#"{"parentUuid":null,"isSidechain":false,"userType":"external","cwd":"/w","sessionId":"s1","version":"2.1.332","type":"user","message":{"role":"user","content":"do the long task"},"uuid":"u1","timestamp":"2026-12-07T04:35:00.000Z"}"#;
    const PROMPT_BLOCKS: &str = r#"{"type":"user","isSidechain":false,"message":{"role":"user","content":[{"type":"text","text":"<iap from-personality=\"bob\">hello</iap>"}]},"uuid":"u2"}"#;
    const PROMPT_IMAGE: &str = r#"{"type":"user","message":{"role":"user","content":[{"type":"image","source":{"type":"base64","media_type":"image/png","data":"iVBOR"}}]}}"#;
    const THINKING: &str = r#"{"type":"assistant","isSidechain":false,"message":{"id":"msg_1","type":"message","role":"assistant","model":"claude-opus-5-5","content":[{"type":"thinking","thinking":"The user wants…","signature":"sig"}],"stop_reason":null,"stop_sequence":null}}"#;
    const TOOL_CALL: &str = r#"{"type":"assistant","message":{"id":"msg_1","role":"assistant","content":[{"type":"tool_use","id":"toolu_1","name":"Bash","input":{"command":"sleep 8; echo slept"}}],"stop_reason":"tool_use"}}"#;
    const TOOL_CALL_STREAMED: &str = r#"{"type":"assistant","message":{"id":"msg_1","role":"assistant","content":[{"type":"tool_use","id":"toolu_1","name":"Read","input":{"file_path":"/w/a.rs"}}],"stop_reason":null}}"#;
    const TOOL_RESULT: &str = r#"{"type":"user","message":{"role":"user","content":[{"tool_use_id":"toolu_1","type":"tool_result","content":"slept","is_error":false}]},"toolUseResult":{"stdout":"slept","stderr":"","interrupted":false,"isImage":false}}"#;
    const TOOL_REJECTED: &str = r#"{"type":"user","message":{"role":"user","content":[{"type":"tool_result","tool_use_id":"toolu_1","content":"The user doesn't want to proceed with this tool use. The tool use was rejected (eg. if it was a file edit, the new_string was NOT written to the file). STOP what you are doing and wait for the user to tell you how to proceed.","is_error":true}]}}"#;
    const TEXT_STREAMED: &str = r#"{"type":"assistant","message":{"id":"msg_2","role":"assistant","content":[{"type":"text","text":"Let me look at the file."}],"stop_reason":null}}"#;
    const REPLY: &str = r#"{"type":"assistant","message":{"id":"msg_2","role":"assistant","content":[{"type":"text","text":"Finished the long task."}],"stop_reason":"end_turn","stop_sequence":null}}"#;
    const TURN_DURATION: &str = r#"{"parentUuid":"a2","isSidechain":false,"type":"system","subtype":"turn_duration","durationMs":20311,"messageCount":4,"timestamp":"2026-12-07T04:35:20.000Z","uuid":"y1","isMeta":false}"#;
    const API_ERROR: &str = r#"{"type":"system","subtype":"api_error","level":"error","retryInMs":1000,"retryAttempt":2,"maxRetries":10}"#;
    const INTERRUPTED_ENTRY: &str = r#"{"type":"user","message":{"role":"user","content":[{"type":"text","text":"[Request interrupted by user]"}]}}"#;
    const INTERRUPTED_FOR_TOOL: &str = r#"{"type":"user","message":{"role":"user","content":[{"type":"text","text":"[Request interrupted by user for tool use]"}]}}"#;
    const INTERRUPTED_THEN_PROMPT: &str = r#"{"type":"user","message":{"role":"user","content":[{"type":"text","text":"[Request interrupted by user]"},{"type":"text","text":"stop, keep the old name"}]}}"#;
    const CAVEAT: &str = r#"{"type":"user","isMeta":true,"message":{"role":"user","content":"<local-command-caveat>Caveat: the messages below were generated by the user while running local commands. DO NOT respond to these messages or otherwise consider them in your response unless the user explicitly asks you to.</local-command-caveat>"}}"#;
    const COMMAND_ENTRY: &str = r#"{"type":"user","message":{"role":"user","content":"<command-name>/model</command-name>\n<command-message>model</command-message>\n<command-args>sonnet</command-args>"}}"#;
    const COMMAND_OUTPUT: &str = r#"{"type":"user","message":{"role":"user","content":"<local-command-stdout>Set model to sonnet</local-command-stdout>"}}"#;
    const BASH_OUTPUT: &str = r#"{"type":"user","message":{"role":"user","content":"<bash-stdout>a.rs</bash-stdout><bash-stderr></bash-stderr>"}}"#;
    const COMPACT_SUMMARY: &str = r#"{"type":"user","isCompactSummary":true,"isVisibleInTranscriptOnly":true,"message":{"role":"user","content":"This session is being continued from a previous conversation…"}}"#;
    const SIDECHAIN_REPLY: &str = r#"{"type":"assistant","isSidechain":true,"agentId":"a1","message":{"role":"assistant","content":[{"type":"text","text":"subagent done"}],"stop_reason":"end_turn"}}"#;
    const SNAPSHOT: &str = r#"{"type":"file-history-snapshot","messageId":"u1","snapshot":{"messageId":"u1","trackedFileBackups":{},"timestamp":"2026-12-07T04:35:00.000Z"},"isSnapshotUpdate":false}"#;
    const QUEUE: &str = r#"{"type":"queue-operation","operation":"enqueue","timestamp":"2026-12-07T04:35:02.000Z","sessionId":"s1","content":"queued line one"}"#;
    const SUMMARY: &str = r#"{"type":"summary","summary":"Long task","leafUuid":"a2"}"#;
    const TITLE: &str =
        r#"{"type":"last-prompt","lastPrompt":"do the long task","sessionId":"s1"}"#;

    #[test]
    fn a_prompt_or_a_tool_step_opens_a_turn() {
        use TranscriptTurn::*;
        assert_eq!(tail(&[REPLY, TURN_DURATION, PROMPT]), Open);
        assert_eq!(tail(&[PROMPT_BLOCKS]), Open);
        assert_eq!(tail(&[PROMPT_IMAGE]), Open);
        assert_eq!(tail(&[PROMPT, TOOL_CALL]), Open);
        assert_eq!(tail(&[PROMPT, TEXT_STREAMED, TOOL_CALL_STREAMED]), Open);
        assert_eq!(tail(&[PROMPT, TOOL_CALL, TOOL_RESULT]), Open);
        assert_eq!(tail(&[INTERRUPTED_THEN_PROMPT]), Open);
        // Retries and bookkeeping say nothing: the prompt before them does.
        assert_eq!(tail(&[PROMPT, API_ERROR, API_ERROR]), Open);
        assert_eq!(tail(&[PROMPT, SNAPSHOT, QUEUE, TITLE]), Open);
        // A subagent's entries in the session's file: its tool call is open.
        assert_eq!(tail(&[PROMPT, TOOL_CALL, SIDECHAIN_REPLY]), Open);
    }

    #[test]
    fn a_reply_an_interruption_or_a_local_command_ends_it() {
        use TranscriptTurn::*;
        assert_eq!(tail(&[PROMPT, REPLY]), Ended);
        assert_eq!(tail(&[PROMPT, REPLY, TURN_DURATION]), Ended);
        assert_eq!(
            tail(&[PROMPT, REPLY, TURN_DURATION, SNAPSHOT, SUMMARY, TITLE]),
            Ended
        );
        // stop_reason is often still null on the last block: text ends it.
        assert_eq!(
            tail(&[PROMPT, TOOL_CALL, TOOL_RESULT, TEXT_STREAMED]),
            Ended
        );
        assert_eq!(tail(&[PROMPT, TEXT_STREAMED, INTERRUPTED_ENTRY]), Ended);
        assert_eq!(
            tail(&[PROMPT, TOOL_CALL, TOOL_REJECTED, INTERRUPTED_FOR_TOOL]),
            Ended
        );
        // turn_duration closes a turn whatever came before it.
        assert_eq!(tail(&[PROMPT, TOOL_CALL, TURN_DURATION]), Ended);
        assert_eq!(tail(&[REPLY, CAVEAT, COMMAND_ENTRY, COMMAND_OUTPUT]), Ended);
        assert_eq!(tail(&[REPLY, BASH_OUTPUT]), Ended);
        // A meta entry (caveat, hook feedback) defers to what came before.
        assert_eq!(tail(&[PROMPT, REPLY, CAVEAT]), Ended);
    }

    #[test]
    fn what_cannot_be_told_is_unknown() {
        use TranscriptTurn::*;
        // A prompt command opens a turn, a local one does not.
        assert_eq!(tail(&[REPLY, CAVEAT, COMMAND_ENTRY]), Unknown);
        assert_eq!(tail(&[PROMPT, THINKING]), Unknown);
        assert_eq!(tail(&[PROMPT, TOOL_CALL, TOOL_REJECTED]), Unknown);
        assert_eq!(tail(&[REPLY, COMPACT_SUMMARY]), Unknown);
        assert_eq!(tail(&[SNAPSHOT, SUMMARY]), Unknown);
        assert_eq!(tail(&[]), Unknown);
        // Raw lines (the fake TUI's transcript): no turn, whatever precedes.
        assert_eq!(tail(&[PROMPT, "hello bob"]), Unknown);
        assert_eq!(tail(&[PROMPT, "{\"not\":\"an entry\"}"]), Unknown);
    }

    #[test]
    fn a_line_still_being_written_is_not_read() {
        let partial = format!("{PROMPT}\n{REPLY}\n{}", &PROMPT[..40]);
        assert_eq!(judge_tail(&partial, entry_turn), TranscriptTurn::Ended);
        assert_eq!(
            judge_tail(&PROMPT[..40], entry_turn),
            TranscriptTurn::Unknown
        );
    }
}
