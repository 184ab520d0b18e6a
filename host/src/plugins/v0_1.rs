//! Contract version 0.1 (`iapeer:adapter@0.1.x`): the generated bindings and
//! their conversion to the host's own types (`v0_2` is its sibling; nothing
//! outside `plugins` sees versioned types). What 0.2 adapters declare, a
//! 0.1 adapter gets as the 0.1 host hard-coded it ([`legacy_defaults`]).

use wasmtime::Store;

use super::guest::GuestState;
use super::hostfs;
use super::types::{AdapterKind, LaunchCommand, LaunchSpec, RawInfo};

// Async bindings: a guest call is a future the host can time out, so a guest
// blocked in a host call (a WASI sleep, a slow read) cannot hold a caller
// past its budget, and no WASI call ever needs a nested runtime.
wasmtime::component::bindgen!({
    path: "../wit/since_v0.1",
    world: "runtime-adapter",
    imports: { default: async },
    exports: { default: async },
});

use self::exports::iapeer::adapter::adapter as guest;
use self::iapeer::adapter::types as wit;

/// The contract's semver major.minor this module serves.
pub const CONTRACT: (u64, u64) = (0, 1);

version_glue!();

pub async fn info(b: &RuntimeAdapter, store: &mut Store<GuestState>) -> wasmtime::Result<RawInfo> {
    let i = api(b).call_info(store).await?;
    Ok(RawInfo {
        runtime: i.runtime,
        version: i.version,
        kind: match i.kind {
            wit::Kind::Tui => AdapterKind::Tui,
            wit::Kind::Router => AdapterKind::Router,
        },
        uses_doctrine: i.uses_doctrine,
        requires_intelligence: i.requires_intelligence,
        default_binary: i.default_binary,
        binary_env: i.binary_env,
        read_dirs: i.read_dirs,
        ..legacy_defaults(CONTRACT)
    })
}

/// What the 0.1 host assumed of every runtime: Claude Code's environment
/// markers removed, its paste placeholders and composer height, the
/// installers' bin dirs on the fallback PATH, and the TypeScript iapeer's table of
/// natures (telegram-like bridges `natural`, notifiers `absent`).
pub fn legacy_defaults(contract: (u64, u64)) -> RawInfo {
    RawInfo {
        runtime: String::new(),
        version: String::new(),
        kind: AdapterKind::Tui,
        uses_doctrine: false,
        requires_intelligence: None,
        default_binary: String::new(),
        binary_env: None,
        read_dirs: Vec::new(),
        cwd_read_paths: Vec::new(),
        default_intelligence: None,
        binary_dirs: [
            "~/.bun/bin",
            "~/.local/bin",
            "/opt/homebrew/bin",
            "/opt/homebrew/sbin",
        ]
        .map(String::from)
        .to_vec(),
        env_remove: ["CLAUDE_CODE_*", "CLAUDECODE"].map(String::from).to_vec(),
        paste_placeholders: ["[Pasted text", "[Image #"].map(String::from).to_vec(),
        composer_rows: 6,
        limits: None,
        contract,
    }
}

pub async fn build_launch(
    b: &RuntimeAdapter,
    store: &mut Store<GuestState>,
    spec: &LaunchSpec,
) -> wasmtime::Result<Result<LaunchCommand, String>> {
    let spec = wit::LaunchSpec {
        personality: spec.personality.clone(),
        identity: spec.identity.clone(),
        cwd: spec.cwd.clone(),
        binary: spec.binary.clone(),
        system_prompt_file: spec.system_prompt_file.clone(),
        resume: spec.resume,
        resume_ref: spec.resume_ref.clone(),
        extra_args: spec.extra_args.clone(),
        intelligence: spec.intelligence.clone(),
    };
    Ok(api(b)
        .call_build_launch(store, &spec)
        .await?
        .map(|c| LaunchCommand {
            argv: c.argv,
            env: c.env.into_iter().map(|v| (v.name, v.value)).collect(),
        }))
}

// ---- imports -------------------------------------------------------------

impl wit::Host for GuestState {}

impl self::iapeer::adapter::host_fs::Host for GuestState {
    async fn list_dir(&mut self, path: String) -> Result<Vec<wit::DirEntry>, wit::FsError> {
        // 0.1 has no cwd paths: only home-relative paths resolve.
        let entries = self.grants.list_dir(&path, None).map_err(fs_error)?;
        Ok(entries.iter().map(dir_entry).collect())
    }

    async fn read_first_line(
        &mut self,
        path: String,
        max_bytes: u32,
    ) -> Result<String, wit::FsError> {
        self.grants
            .read_first_line(&path, max_bytes, None)
            .map_err(fs_error)
    }

    async fn same_path(&mut self, a: String, b: String) -> bool {
        hostfs::same_path(&a, &b, self.call_cwd.as_deref())
    }
}
