//! Contract version 0.3 (`iapeer:adapter@0.3.x`): the generated bindings and
//! their conversion to the host's own types (a sibling of `v0_2`). New in
//! 0.3: `turn-state` (where a session is in its turn) and `host-fs`
//! `read-tail`.

use wasmtime::Store;

use super::guest::GuestState;
use super::hostfs;
use super::types::{AdapterKind, DeclaredLimits, LaunchCommand, LaunchSpec, RawInfo, TurnState};

// Async bindings: a guest call is a future the host can time out, so a guest
// blocked in a host call (a WASI sleep, a slow read) cannot hold a caller
// past its budget, and no WASI call ever needs a nested runtime.
wasmtime::component::bindgen!({
    path: "../wit/since_v0.3",
    world: "runtime-adapter",
    imports: { default: async },
    exports: { default: async },
});

use self::exports::iapeer::adapter::adapter as guest;
use self::iapeer::adapter::types as wit;

/// The contract's semver major.minor this module serves.
pub const CONTRACT: (u64, u64) = (0, 3);

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
        cwd_read_paths: i.cwd_read_paths,
        default_intelligence: i.default_intelligence,
        binary_dirs: i.binary_dirs,
        env_remove: i.env_remove,
        paste_placeholders: i.delivery.paste_placeholders,
        composer_rows: i.delivery.composer_rows,
        limits: i.limits.map(|l| DeclaredLimits {
            memory_mib: l.memory_mib,
            call_ms: l.call_ms,
            scan_ms: l.scan_ms,
        }),
        contract: CONTRACT,
    })
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
        home: spec.home.clone(),
    };
    Ok(api(b)
        .call_build_launch(store, &spec)
        .await?
        .map(|c| LaunchCommand {
            argv: c.argv,
            env: c.env.into_iter().map(|v| (v.name, v.value)).collect(),
        }))
}

pub async fn turn_state(
    b: &RuntimeAdapter,
    store: &mut Store<GuestState>,
    pane: &str,
    cwd: &str,
) -> wasmtime::Result<TurnState> {
    Ok(match api(b).call_judge_turn(store, pane, cwd).await? {
        wit::TurnState::Idle => TurnState::Idle,
        wit::TurnState::Working => TurnState::Working,
        wit::TurnState::Dialog => TurnState::Dialog,
        wit::TurnState::Unknown => TurnState::Unknown,
    })
}

pub async fn record_holds(
    b: &RuntimeAdapter,
    store: &mut Store<GuestState>,
    cwd: &str,
    needle: &str,
) -> wasmtime::Result<Option<bool>> {
    api(b).call_record_holds(store, cwd, needle).await
}

// ---- imports -------------------------------------------------------------

impl wit::Host for GuestState {}

impl self::iapeer::adapter::host_fs::Host for GuestState {
    async fn list_dir(&mut self, path: String) -> Result<Vec<wit::DirEntry>, wit::FsError> {
        let entries = self
            .grants
            .list_dir(&path, self.call_cwd.as_deref())
            .map_err(fs_error)?;
        Ok(entries.iter().map(dir_entry).collect())
    }

    async fn read_first_line(
        &mut self,
        path: String,
        max_bytes: u32,
    ) -> Result<String, wit::FsError> {
        self.grants
            .read_first_line(&path, max_bytes, self.call_cwd.as_deref())
            .map_err(fs_error)
    }

    async fn read_tail(&mut self, path: String, max_bytes: u32) -> Result<String, wit::FsError> {
        self.grants
            .read_tail(&path, max_bytes, self.call_cwd.as_deref())
            .map_err(fs_error)
    }

    async fn stat(&mut self, path: String) -> Result<wit::DirEntry, wit::FsError> {
        self.grants
            .stat(&path, self.call_cwd.as_deref())
            .map(|e| dir_entry(&e))
            .map_err(fs_error)
    }

    async fn same_path(&mut self, a: String, b: String) -> bool {
        hostfs::same_path(&a, &b, self.call_cwd.as_deref())
    }
}
