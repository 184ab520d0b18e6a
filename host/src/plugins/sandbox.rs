//! The sandbox every adapter runs in: one wasmtime `Engine` and `Linker` per
//! process, an epoch ticker for per-call time limits, and per-store policy —
//! a memory cap, no environment, no network, no stdio but a captured stderr,
//! and read-only preopens of exactly the adapter's declared directories.

use std::sync::{Arc, OnceLock};
use std::thread;
use std::time::Duration;

use wasmtime::component::{Linker, ResourceTable};
use wasmtime::{Config, Engine, Store, StoreLimitsBuilder, UpdateDeadline};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{FsPerms, WasiCtxBuilder};

use super::guest::GuestState;
use super::hostfs::FileGrants;

/// How often the epoch advances: the granularity of call time limits.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);
/// Linear memory an adapter may use.
pub const MEMORY_CAP: usize = 64 << 20;
/// Linear memories per component (a wasip2 component has one; the
/// component's own shims may add one).
pub const MAX_MEMORIES: usize = 2;
/// Tables per component and elements per table: enough for indirect calls,
/// far from the gigabytes one `table.grow` could otherwise claim.
pub const MAX_TABLES: usize = 8;
pub const MAX_TABLE_ELEMENTS: usize = 10_000;
/// Core instances per component (a component is a handful of them).
pub const MAX_INSTANCES: usize = 32;
/// Live WASI resources (files, streams, pollables) per store.
pub const MAX_RESOURCES: usize = 256;
/// Bytes of guest stderr kept (a panic message, for the error report).
const STDERR_CAP: usize = 16 << 10;

/// The process-wide engine and linker.
pub struct Sandbox {
    pub engine: Engine,
    pub linker: Linker<GuestState>,
}

impl Sandbox {
    /// The shared sandbox (one engine per process, as wasmtime recommends).
    pub fn shared() -> Result<&'static Sandbox, String> {
        static SHARED: OnceLock<Result<Sandbox, String>> = OnceLock::new();
        SHARED
            .get_or_init(|| Sandbox::new().map_err(|e| format!("{e:#}")))
            .as_ref()
            .map_err(Clone::clone)
    }

    fn new() -> wasmtime::Result<Sandbox> {
        let mut config = Config::new();
        config.wasm_component_model(true);
        config.epoch_interruption(true);
        let engine = Engine::new(&config)?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
        super::bindings::add_to_linker(&mut linker)?;
        start_epoch_ticker(&engine);
        Ok(Sandbox { engine, linker })
    }

    /// A fresh store for one adapter instance: `memory` bytes of linear
    /// memory at most.
    pub fn new_store(
        &self,
        grants: &Arc<FileGrants>,
        memory: usize,
    ) -> wasmtime::Result<Store<GuestState>> {
        let stderr = MemoryOutputPipe::new(STDERR_CAP);
        let mut wasi = WasiCtxBuilder::new();
        // Must precede the preopens, which capture it: without it every
        // guest file operation hops to a blocking thread pool (3.6x slower).
        wasi.allow_blocking_current_thread(true);
        wasi.stderr(stderr.clone());
        for (host, guest) in grants.preopens() {
            wasi.preopened_dir(host, guest, FsPerms::ReadOnly)?;
        }
        let mut table = ResourceTable::new();
        // Open files, streams and pollables a guest may hold at once.
        table.set_max_capacity(MAX_RESOURCES);
        let state = GuestState {
            wasi: wasi.build(),
            table,
            // The cap binds every memory and table a component may create:
            // one memory of `memory` bytes, and small tables.
            limits: StoreLimitsBuilder::new()
                .memory_size(memory)
                .memories(MAX_MEMORIES)
                .table_elements(MAX_TABLE_ELEMENTS)
                .tables(MAX_TABLES)
                .instances(MAX_INSTANCES)
                .trap_on_grow_failure(true)
                .build(),
            stderr,
            grants: grants.clone(),
            call_cwd: None,
            ticks_left: 0,
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.limits);
        // Every tick a guest runs, it hands its worker back to the async
        // runtime (so a spinning guest never holds a thread other wakes
        // need), until its budget is spent: then it traps.
        store.epoch_deadline_callback(|mut ctx| {
            let left = &mut ctx.data_mut().ticks_left;
            if *left == 0 {
                return Ok(UpdateDeadline::Interrupt);
            }
            *left -= 1;
            Ok(UpdateDeadline::Yield(1))
        });
        Ok(store)
    }
}

/// Advances the engine's epoch every tick so a store's deadline (in ticks)
/// interrupts a runaway guest. The shared engine lives as long as the
/// process, and so does the ticker.
fn start_epoch_ticker(engine: &Engine) {
    let weak = engine.weak();
    thread::Builder::new()
        .name("iapeer-epoch".into())
        .spawn(move || {
            while let Some(engine) = weak.upgrade() {
                engine.increment_epoch();
                drop(engine);
                thread::sleep(EPOCH_TICK);
            }
        })
        .expect("spawn epoch ticker thread");
}

/// A call's time budget in epoch ticks.
pub fn ticks(budget: Duration) -> u64 {
    (budget.as_millis() / EPOCH_TICK.as_millis()).max(1) as u64
}

/// Gives the next call `budget` of guest time, in one-tick slices.
pub fn arm_deadline(store: &mut Store<GuestState>, budget: Duration) {
    store.data_mut().ticks_left = ticks(budget) - 1;
    store.set_epoch_deadline(1);
}
