//! The black-box tests that need only tmux and curl, in one binary: the
//! real wasm components, real tmux servers, the real daemon, driven from
//! outside. One binary links wasmtime, axum and rmcp once instead of once
//! per file. Run one area with its module name:
//!
//! ```sh
//! cargo test --test integration -- lifecycle::
//! ```
//!
//! Two stay apart: `soak.rs` (it loads the machine for half a minute, so it
//! runs alone) and `toolchains.rs` (its own harness reports a missing
//! toolchain as ignored).

mod common;
#[path = "common/gemini.rs"]
mod gemini;

mod adapters;
mod daemon;
mod front_door;
mod hostile;
mod lifecycle;
mod panel;
mod plugin_host;
mod prompt;
mod supervise;
