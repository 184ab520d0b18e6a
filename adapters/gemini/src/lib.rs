//! Example third-party adapter: the Gemini CLI.
//!
//! It is not built into iapeerd. Build it with `adapters/build.sh` and drop
//! `plugins-dist/examples/gemini.wasm` into a plugin dir (`<root>/plugins`):
//! `iapeer plugins list` then shows a `gemini` runtime, with no host change.
//! It shows the parts of the contract the first-party adapters do not use:
//! extra child env (the system prompt goes through `GEMINI_SYSTEM_MD`) and a
//! transcript directory derived from a hash of the cwd. It targets contract
//! 0.1, so it carries its own bindings and the few typed helpers it needs.

// Built for the frozen contract 0.1 from its WIT, on purpose: it is the
// proof (and the test) that an adapter written for 0.1 keeps loading and
// waking peers on a host that serves 0.2.
wit_bindgen::generate!({ world: "runtime-adapter", path: "../sdk/wit/since_v0.1" });

use exports::iapeer::adapter::adapter::Guest;
use iapeer::adapter::host_fs;
use iapeer::adapter::types::{
    AdapterInfo, ControlSequence, DirEntry, EntryKind, EnvVar, Kind, LaunchCommand, LaunchSpec,
};
use iapeer_adapter_sdk::{contains_any, keys};
use sha2::{Digest, Sha256};

struct Gemini;

const TMP_DIR: &str = ".gemini/tmp";
const TRUST_DIALOG: &str = "Do you trust this folder?";
const BOOT_MARKERS: &[&str] = &[TRUST_DIALOG, "Waiting for auth"];
const COMPOSER_PLACEHOLDER: &str = "Type your message";

/// Gemini keeps a project's chats under `~/.gemini/tmp/<sha256(cwd)>/chats`.
fn chats_dir(cwd: &str) -> String {
    let hash: String = Sha256::digest(cwd.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("{TMP_DIR}/{hash}/chats")
}

/// The newest non-directory entry ending in `suffix`.
fn newest_with_suffix<'a>(entries: &'a [DirEntry], suffix: &str) -> Option<&'a DirEntry> {
    entries
        .iter()
        .filter(|e| e.kind != EntryKind::Directory && e.name.ends_with(suffix))
        .max_by_key(|e| e.mtime_ms)
}

fn newest_chat(cwd: &str) -> Option<u64> {
    let entries = host_fs::list_dir(&chats_dir(cwd)).ok()?;
    newest_with_suffix(&entries, ".json").map(|e| e.mtime_ms)
}

impl Guest for Gemini {
    fn info() -> AdapterInfo {
        AdapterInfo {
            runtime: "gemini".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            kind: Kind::Tui,
            uses_doctrine: true,
            requires_intelligence: None,
            default_binary: "gemini".into(),
            binary_env: Some("IAPEER_GEMINI_BIN".into()),
            read_dirs: vec![TMP_DIR.into()],
        }
    }

    fn build_launch(spec: LaunchSpec) -> Result<LaunchCommand, String> {
        let mut head = vec![spec.binary.clone(), "--yolo".into()];
        if spec.resume {
            head.extend(keys(&["--resume", "latest"]));
        }
        let env = spec
            .system_prompt_file
            .iter()
            .map(|path| EnvVar {
                name: "GEMINI_SYSTEM_MD".into(),
                value: path.clone(),
            })
            .collect();
        Ok(LaunchCommand {
            argv: head.into_iter().chain(spec.extra_args).collect(),
            env,
        })
    }

    fn resolve_resume(cwd: String) -> Result<Option<String>, String> {
        newest_chat(&cwd)
            .map(|_| None)
            .ok_or_else(|| "no gemini chat to resume".into())
    }

    fn newest_activity_mtime(cwd: String) -> Option<u64> {
        newest_chat(&cwd)
    }

    fn boot_dialog_keys(pane: String) -> Option<Vec<String>> {
        // "1. Trust folder" is the default option.
        pane.contains(TRUST_DIALOG).then(|| keys(&["Enter"]))
    }

    fn is_input_ready(pane: String) -> bool {
        !contains_any(&pane, BOOT_MARKERS) && pane.contains(COMPOSER_PLACEHOLDER)
    }

    fn control_keys(command: String) -> Option<ControlSequence> {
        match command.as_str() {
            "interrupt" => Some(ControlSequence {
                steps: vec![keys(&["Escape"])],
                step_delay_ms: 0,
            }),
            "compact" => Some(ControlSequence {
                steps: vec![keys(&["-l", "/compact"]), keys(&["Enter"])],
                step_delay_ms: 300,
            }),
            _ => None,
        }
    }
}

export!(Gemini);
