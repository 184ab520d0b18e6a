//! The Claude Code runtime adapter.

use iapeer_adapter_sdk::{
    AdapterInfo, ControlSequence, Guest, Kind, LaunchCommand, LaunchSpec, argv_with_extras,
    claude_like_delivery, contains_any, export_adapter, host_fs, is_js_whitespace, keys, newest_with_suffix,
    tui_control_keys,
};

struct Claude;

const PROJECTS_DIR: &str = ".claude/projects";

/// Any of these on screen means a startup dialog is up (not ready for input).
const BOOT_MARKERS: &[&str] = &[
    "trust this folder",
    "Allow external CLAUDE.md file imports?",
    "I am using this for local development",
    "Resume from summary",
    "Resuming the full session",
    "Choose the text style",
    "Bypass Permissions mode",
    "new MCP server",
    "New MCP server",
];

/// Dialogs whose default option is the right answer: confirm with Enter.
const ENTER_DIALOGS: &[&str] = &[
    "trust this folder",
    "Allow external CLAUDE.md file imports?",
    "I am using this for local development",
    "Choose the text style",
    // "Use this and all future MCP servers in this project" is the default.
    "new MCP server",
    "New MCP server",
];

/// Dialogs whose default option 1 is wrong (it compacts, or exits): move to
/// option 2 first, confirm only once the cursor is proven there.
const OPTION_TWO_DIALOGS: &[&str] = &[
    "Resume from summary",
    // "1. No, exit" would kill the peer; "2. Yes, I accept" goes on.
    "Bypass Permissions mode",
];

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

/// The "Resume from summary" picker has option 2 ("Resume full session as-is")
/// under the cursor: `❯`, optional whitespace, `2.`.
fn cursor_on_option_two(pane: &str) -> bool {
    pane.match_indices('❯').any(|(i, glyph)| {
        pane[i + glyph.len()..]
            .trim_start_matches(is_js_whitespace)
            .starts_with("2.")
    })
}

impl Guest for Claude {
    fn info() -> AdapterInfo {
        AdapterInfo {
            runtime: "claude".into(),
            version: env!("CARGO_PKG_VERSION").into(),
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
        head.extend(keys(&[
            "--dangerously-skip-permissions",
            "--disallowedTools",
            "AskUserQuestion",
            "--add-dir",
            "/",
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
        if contains_any(&pane, OPTION_TWO_DIALOGS) {
            // One key per boot iteration: move to option 2 first, confirm only
            // once the cursor is proven there (option 1 compacts or exits).
            return Some(keys(if cursor_on_option_two(&pane) {
                &["Enter"]
            } else {
                &["Down"]
            }));
        }
        if contains_any(&pane, ENTER_DIALOGS) {
            return Some(keys(&["Enter"]));
        }
        // Anything else (including "Resuming the full session"): wait. The
        // login-method picker is deliberately not answered.
        None
    }

    fn is_input_ready(pane: String) -> bool {
        !contains_any(&pane, BOOT_MARKERS)
            && pane.contains('❯')
            && pane.contains("bypass permissions on")
    }

    fn control_keys(command: String) -> Option<ControlSequence> {
        tui_control_keys(&command)
    }
}

export_adapter!(Claude);
