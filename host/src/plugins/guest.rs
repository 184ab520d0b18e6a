//! The host state of one adapter instance's store: its WASI context, the
//! files it was granted, its limits and its time budget. The sandbox
//! builds it; each contract version's host imports run on it.

use std::sync::Arc;

use wasmtime::StoreLimits;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::hostfs::FileGrants;

/// Per-store host state.
pub struct GuestState {
    pub(super) wasi: WasiCtx,
    pub(super) table: ResourceTable,
    pub(super) limits: StoreLimits,
    pub(super) stderr: MemoryOutputPipe,
    pub(crate) grants: Arc<FileGrants>,
    /// The canonical cwd of the scan call running now: the only path
    /// `same-path` resolves against (so it cannot probe the filesystem).
    pub(crate) call_cwd: Option<String>,
    /// Epoch ticks the running call may still use (see `arm_deadline`).
    pub(super) ticks_left: u64,
}

impl GuestState {
    /// What the guest wrote to stderr (e.g. a panic message), trimmed.
    pub fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr.contents())
            .trim()
            .to_string()
    }
}

impl WasiView for GuestState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}
