//! `iapeer plugins new NAME [--dir DIR]`: a ready-to-build adapter project.
//! It carries its own copy of the SDK (with the WIT inside), so it builds
//! anywhere with one command and no registry: `cargo build --release
//! --target wasm32-wasip2`.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

use crate::config::Config;
use crate::names::Runtime;

const SDK_LIB: &str = include_str!("../../../adapters/sdk/src/lib.rs");
const SDK_SCREEN: &str = include_str!("../../../adapters/sdk/src/screen.rs");
const WIT_0_1: &str = include_str!("../../../adapters/sdk/wit/since_v0.1/adapter.wit");
const WIT_0_2: &str = include_str!("../../../adapters/sdk/wit/since_v0.2/adapter.wit");
const WIT_0_3: &str = include_str!("../../../adapters/sdk/wit/since_v0.3/adapter.wit");

const SDK_MANIFEST: &str = r#"[package]
name = "iapeer-adapter-sdk"
description = "Bindings and helpers for writing iapeer runtime adapters"
version = "0.3.0"
edition = "2024"
license = "MIT"
publish = false

[dependencies]
wit-bindgen = "0.63"
"#;

const MANIFEST: &str = r#"[package]
name = "adapter-@NAME@"
version = "0.1.0"
edition = "2024"
publish = false

[lib]
crate-type = ["cdylib"]

[dependencies]
iapeer-adapter-sdk = { path = "sdk" }

[profile.release]
opt-level = "s"
lto = true
codegen-units = 1
panic = "abort"
# Keep the name section: a trap then has a readable wasm backtrace.
strip = "debuginfo"

# A project of its own, not a member of an enclosing workspace.
[workspace]
"#;

const LIB: &str = r#"//! The iapeer adapter for the `@NAME@` runtime (contract iapeer:adapter@0.3).
//! The contract, every function documented: sdk/wit/since_v0.3/adapter.wit.
//! How a wake uses these answers: `iapeer plugins try` shows it step by step.

use iapeer_adapter_sdk::{
    AdapterInfo, ControlSequence, DeliveryMarkers, Guest, Kind, LaunchCommand, LaunchSpec,
    TurnState, argv_with_extras, export_adapter, host_fs, keys,
};

struct Adapter;

/// TODO: the file the runtime appends to as it works, relative to the
/// peer's folder (aider: `.aider.chat.history.md`). Its mtime is the
/// activity proxy: the host knows a message was processed when it moves,
/// and reaps a session idle by it. The host refuses this placeholder.
const ACTIVITY_FILE: &str = "TODO-the-file-the-runtime-writes";

impl Guest for Adapter {
    fn info() -> AdapterInfo {
        AdapterInfo {
            runtime: "@NAME@".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            kind: Kind::Tui,
            uses_doctrine: false,
            requires_intelligence: None,
            // A bare name is looked up on PATH; `--bin @NAME@=PATH` or
            // $@ENV@ override it.
            default_binary: "@NAME@".into(),
            binary_env: Some("@ENV@".into()),
            // Directories under $HOME it reads (granted by the operator).
            read_dirs: Vec::new(),
            // Files or directories under the peer's folder it reads.
            cwd_read_paths: vec![ACTIVITY_FILE.into()],
            default_intelligence: None,
            binary_dirs: vec!["~/.local/bin".into()],
            env_remove: Vec::new(),
            // TODO: what the TUI shows in place of a long paste, if anything.
            delivery: DeliveryMarkers {
                paste_placeholders: Vec::new(),
                composer_rows: 4,
            },
            // The host's defaults (64 MiB, 1 s a call, 10 s a scan) unless
            // it needs more: `Some(Limits { memory_mib, call_ms, scan_ms })`.
            limits: None,
        }
    }

    fn build_launch(spec: LaunchSpec) -> Result<LaunchCommand, String> {
        // TODO: the runtime's flags (resume when `spec.resume`).
        let head = vec![spec.binary.clone()];
        Ok(LaunchCommand {
            argv: argv_with_extras(head, &spec),
            env: Vec::new(),
        })
    }

    fn resolve_resume(cwd: String) -> Result<Option<String>, String> {
        host_fs::stat(&format!("{cwd}/{ACTIVITY_FILE}"))
            .map(|_| None)
            .map_err(|_| "nothing to resume yet".into())
    }

    fn newest_activity_mtime(cwd: String) -> Option<u64> {
        host_fs::stat(&format!("{cwd}/{ACTIVITY_FILE}"))
            .ok()
            .map(|e| e.mtime_ms)
    }

    fn boot_dialog_keys(pane: String) -> Option<Vec<String>> {
        // TODO: answer the runtime's startup dialogs (a trust prompt, …).
        pane.contains("Do you trust this folder?")
            .then(|| keys(&["Enter"]))
    }

    fn is_input_ready(pane: String) -> bool {
        // TODO: what the input composer looks like (the pane is plain text,
        // trailing spaces trimmed).
        pane.lines().any(|l| l.starts_with("> ") || l == ">")
    }

    fn control_keys(command: String) -> Option<ControlSequence> {
        match command.as_str() {
            "interrupt" => Some(ControlSequence {
                steps: vec![keys(&["Escape"])],
                step_delay_ms: 0,
            }),
            _ => None,
        }
    }

    fn judge_turn(pane: String, _cwd: String) -> TurnState {
        // TODO: what the runtime shows while the model works (and, better,
        // what its own record says: read its tail with host_fs::read_tail).
        // Mail waits while it works and goes in when the turn ends.
        if pane.contains("esc to interrupt") {
            TurnState::Working
        } else if Self::is_input_ready(pane) {
            TurnState::Idle
        } else {
            TurnState::Unknown
        }
    }

    fn record_holds(_cwd: String, _needle: String) -> Option<bool> {
        // TODO: whether the runtime's record (its newest transcript) holds
        // the message id `needle`: iapeer_adapter_sdk::tail_holds(path,
        // &needle). None: no record (the host judges by its activity).
        None
    }
}

export_adapter!(Adapter);
"#;

const README: &str = r#"# The `@NAME@` adapter for iapeer

```sh
rustup target add wasm32-wasip2          # once
cargo build --release --target wasm32-wasip2
iapeer plugins try target/wasm32-wasip2/release/adapter_@NAME@.wasm --bin "$(command -v @NAME@)" --message "hello"
iapeer plugins install target/wasm32-wasip2/release/adapter_@NAME@.wasm
iapeer plugins grant @NAME@              # it reads files: the operator grants them
```

`src/lib.rs` is the adapter; `sdk/` is the iapeer adapter SDK with the
contract (`sdk/wit/since_v0.3/adapter.wit`). The guide is
`docs/writing-an-adapter.md` in the iapeerd repository.
"#;

/// The files of a new project for `name`, relative to its directory.
pub fn files(name: &str) -> Vec<(PathBuf, String)> {
    let env = format!("IAPEER_{}_BIN", name.to_ascii_uppercase());
    let fill = |t: &str| t.replace("@NAME@", name).replace("@ENV@", &env);
    vec![
        ("Cargo.toml".into(), fill(MANIFEST)),
        ("src/lib.rs".into(), fill(LIB)),
        ("README.md".into(), fill(README)),
        (".gitignore".into(), "/target\n".into()),
        ("sdk/Cargo.toml".into(), SDK_MANIFEST.into()),
        ("sdk/src/lib.rs".into(), SDK_LIB.into()),
        ("sdk/src/screen.rs".into(), SDK_SCREEN.into()),
        ("sdk/wit/since_v0.1/adapter.wit".into(), WIT_0_1.into()),
        ("sdk/wit/since_v0.2/adapter.wit".into(), WIT_0_2.into()),
        ("sdk/wit/since_v0.3/adapter.wit".into(), WIT_0_3.into()),
    ]
}

pub fn run(_cfg: &Config, name: &Runtime, dir: Option<&Path>) -> anyhow::Result<i32> {
    let name = name.as_str();
    let dir = dir
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from(format!("iapeer-adapter-{name}")));
    let created = match std::fs::read_dir(&dir).map(|mut entries| entries.next().is_some()) {
        Ok(true) => bail!(
            "{} exists and is not empty; not writing into it",
            dir.display()
        ),
        Ok(false) => false,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => true,
        Err(e) => bail!("{}: {e}", dir.display()),
    };
    if let Err(e) = write_project(&dir, name) {
        // Nothing half-made stays: what this run wrote goes (a dir that
        // was there, empty, is left empty again).
        if created {
            let _ = std::fs::remove_dir_all(&dir);
        } else if let Ok(entries) = std::fs::read_dir(&dir) {
            for path in entries.flatten().map(|e| e.path()) {
                let _ = if path.is_dir() {
                    std::fs::remove_dir_all(&path)
                } else {
                    std::fs::remove_file(&path)
                };
            }
        }
        return Err(e);
    }
    let shown = dir.display().to_string();
    let quoted = if shown
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "/._-".contains(c))
    {
        shown.clone()
    } else {
        format!("'{}'", shown.replace('\'', r"'\''"))
    };
    crate::outln!("created {shown} (adapter for the {name} runtime)");
    crate::outln!("build it: cd {quoted} && cargo build --release --target wasm32-wasip2");
    crate::outln!(
        "try it:   iapeer plugins try target/wasm32-wasip2/release/adapter_{name}.wasm --bin PATH --message hello"
    );
    Ok(0)
}

/// Writes every file of the project under `dir`, never over an existing one.
fn write_project(dir: &Path, name: &str) -> anyhow::Result<()> {
    for (rel, text) in files(name) {
        let path = dir.join(&rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .and_then(|mut f| std::io::Write::write_all(&mut f, text.as_bytes()))
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}
