//! The Claude Code runtime adapter.

use iapeer_adapter_sdk::screen::{self, KnownDialog, Screen};
use iapeer_adapter_sdk::{
    AdapterInfo, ControlSequence, Guest, Kind, LaunchCommand, LaunchSpec, argv_with_extras,
    claude_like_delivery, export_adapter, host_fs, is_js_whitespace, keys, newest_with_suffix,
    tui_control_keys,
};

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
}

export_adapter!(Claude);
