//! The Codex CLI runtime adapter.

use iapeer_adapter_sdk::{
    AdapterInfo, ControlSequence, EntryKind, EnvVar, Guest, Kind, LaunchCommand, LaunchSpec,
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

/// The cwd a session file was recorded for: its first line is a JSON object
/// with `type == "session_meta"` and a string `payload.cwd`.
fn session_cwd(path: &str) -> Option<String> {
    let line = host_fs::read_first_line(path, MAX_FIRST_LINE).ok()?;
    let meta: serde_json::Value = serde_json::from_str(&line).ok()?;
    if meta.get("type")?.as_str()? != "session_meta" {
        return None;
    }
    Some(meta.get("payload")?.get("cwd")?.as_str()?.to_string())
}

/// Every session file under `dir`, as (mtime, index of its directory in
/// `dirs`, file name): paths are built only for the few files read.
fn collect_sessions(
    dir: String,
    depth: usize,
    dirs: &mut Vec<String>,
    out: &mut Vec<(u64, usize, String)>,
) {
    let Ok(entries) = host_fs::list_dir(&dir) else {
        return;
    };
    let index = dirs.len();
    dirs.push(dir);
    for entry in entries {
        match entry.kind {
            EntryKind::Directory if depth < MAX_DEPTH => {
                let sub = format!("{}/{}", dirs[index], entry.name);
                collect_sessions(sub, depth + 1, dirs, out);
            }
            EntryKind::File | EntryKind::Symlink if entry.name.ends_with(".jsonl") => {
                out.push((entry.mtime_ms, index, entry.name));
            }
            _ => {}
        }
    }
}

/// The newest mtime among the session files recorded for `cwd`. Files are
/// judged newest first and the first one recorded for `cwd` answers: a
/// peer with recent sessions costs a directory walk and a read or two, not
/// a read of every session's first line.
fn newest_session_mtime(cwd: &str) -> Option<u64> {
    let (mut dirs, mut sessions) = (Vec::new(), Vec::new());
    collect_sessions(SESSIONS_DIR.to_string(), 0, &mut dirs, &mut sessions);
    sessions.sort_unstable_by(|a, b| b.0.cmp(&a.0));
    sessions.into_iter().find_map(|(mtime, dir, name)| {
        session_cwd(&format!("{}/{name}", dirs[dir]))
            .is_some_and(|recorded| recorded == cwd || host_fs::same_path(&recorded, cwd))
            .then_some(mtime)
    })
}

impl Guest for Codex {
    fn info() -> AdapterInfo {
        AdapterInfo {
            runtime: "codex".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            kind: Kind::Tui,
            uses_doctrine: true,
            requires_intelligence: None,
            default_binary: "codex".into(),
            binary_env: Some("IAPEER_CODEX_BIN".into()),
            read_dirs: vec![SESSIONS_DIR.into()],
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
        if pane.contains("Update available!") && pane.contains("Press enter to continue") {
            // Option 2 declines the update.
            return Some(keys(&["2", "Enter"]));
        }
        if pane.contains("Do you trust the contents of this directory") {
            return Some(keys(&["Enter"]));
        }
        if pane.contains("Hooks need review") {
            // Option 2: "Trust all and continue".
            return Some(keys(&["Down", "Enter"]));
        }
        None
    }

    fn is_input_ready(pane: String) -> bool {
        // No check for the "OpenAI Codex" splash: a long resumed history
        // scrolls it away.
        !pane.contains("Press enter to continue")
            && pane
                .lines()
                .any(|line| line.trim_start_matches(is_js_whitespace).starts_with("› "))
    }

    fn control_keys(command: String) -> Option<ControlSequence> {
        tui_control_keys(&command)
    }
}

export_adapter!(Codex);
