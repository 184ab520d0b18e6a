//! iapeerd: keeps a fleet of AI agent sessions alive on demand. This library
//! holds everything; the `iapeerd` and `iapeer` binaries are thin front ends.

pub mod cli;
pub mod config;
pub mod daemon;
pub mod fsutil;
pub mod names;
pub mod plugins;
