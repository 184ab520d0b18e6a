//! iapeerd: keeps a fleet of AI agent sessions alive on demand. This library
//! holds everything; the `iapeerd` and `iapeer` binaries are thin front ends.
//!
//! The path of one wake, module by module: `config` → `registry` → `guard`
//! (H4) → `plugins` (the adapter) → `store` (marks) → `wakelock` →
//! `lifecycle` (decisions) → `prompt` → `launch` (boot loop, first message,
//! ready gate) → `tmux`.

pub mod cli;
pub mod clock;
pub mod config;
pub mod daemon;
pub mod events;
pub mod fsutil;
pub mod guard;
pub mod launch;
pub mod lifecycle;
pub mod names;
pub mod plugins;
pub mod prompt;
pub mod registry;
pub mod store;
pub mod tmux;
pub mod wakelock;
