//! iapeerd: keeps a fleet of AI agent sessions alive on demand. This library
//! holds everything; the `iapeerd` and `iapeer` binaries are thin front ends.
//!
//! The path of one wake, module by module: `config` → `registry` → `guard`
//! (hands off what launchd or systemd owns) → `plugins` (the adapter) → `store` (marks) → `wakelock` →
//! `lifecycle` (decisions) → `prompt` → `launch` (boot loop, first message,
//! ready gate) → `tmux`. A message between peers enters through `api` (MCP
//! and the fleet API, served by `daemon`) or `cli`, and is routed by
//! `route` (with the `envelope`) onto the same lifecycle.
//!
//! The public surface is what the binaries, the black-box tests and the
//! benchmarks need; everything else is crate-private.

#[cfg(test)]
mod acyclic;
mod api;
pub mod app;
pub mod cli;
mod client;
pub mod clock;
pub mod config;
pub mod daemon;
mod deaths;
mod delivery;
mod discovery;
#[cfg(test)]
mod documents;
mod envelope;
mod events;
mod fleet;
mod fleetlink;
mod fsutil;
mod guard;
mod launch;
pub mod lifecycle;
mod logfile;
pub mod mail;
pub mod names;
mod panel;
mod panelog;
mod paste;
pub mod plugins;
mod poll;
pub mod prompt;
pub mod registry;
mod route;
mod runtime_version;
mod shim;
pub mod store;
mod term;
mod tmux;
mod turn_end;
mod wakelock;
