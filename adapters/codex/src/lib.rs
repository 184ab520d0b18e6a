//! The Codex CLI runtime adapter.

use std::cell::RefCell;
use std::collections::HashMap;

use iapeer_adapter_sdk::screen::{self, KnownDialog};
use iapeer_adapter_sdk::{
    AdapterInfo, ControlSequence, DeliveryMarkers, EntryKind, EnvVar, Guest, Kind, LaunchCommand, LaunchSpec,
    argv_with_extras, export_adapter, host_fs, is_js_whitespace, keys, tui_control_keys,
};

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
    let prompt = filled
        .iter()
        .rposition(|r| is_composer_row(r) && !is_option_row(r));
    if let Some(p) = prompt
        && !filled[p + 1..].iter().any(|r| is_reply_row(r))
    {
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

/// The newest mtime among the session files recorded for `cwd`.
///
/// Files already known answer from the memo; the others are read newest
/// first, and only while they are newer than the best match so far, so a
/// cold scan of a peer with recent sessions reads a file or two, and a
/// warm one reads none.
fn newest_session_mtime(cwd: &str) -> Option<u64> {
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
        let mut unknown = Vec::new();
        for (d, (dir, files)) in dirs.iter().enumerate() {
            let known = memo.files.get(dir);
            for (f, (name, stamp)) in files.iter().enumerate() {
                let mtime = stamp.0;
                match known.and_then(|k| k.get(name)) {
                    Some(k) if k.stamp == *stamp => {
                        if best < Some(mtime) && k.cwd.is_some_and(|i| matches(&memo, i)) {
                            best = Some(mtime);
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
            }
        }
        best
    })
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
        let rows: Vec<&str> = pane.lines().collect();
        let live = live_region(&rows);
        // No check for the "OpenAI Codex" splash: a long resumed history
        // scrolls it away.
        screen::choices(&live, '›', true).is_empty()
            && !WAITING.iter().any(|w| screen::any_row_has(&live, w))
            && !live.iter().any(|r| r.trim_matches(is_js_whitespace) == TRANSIENT_HINT)
            && live.first().is_some_and(|r| is_composer_row(r))
            && composer_empty(&live)
    }

    fn control_keys(command: String) -> Option<ControlSequence> {
        tui_control_keys(&command)
    }
}

export_adapter!(Codex);
