//! `<root>/state/iapeer/router.json`: how clients find the daemon. Written
//! atomically once every listener is up, removed on shutdown.

use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::fsutil;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Discovery {
    /// The Unix socket (MCP at `/mcp`, the fleet API at `/fleet/v1`).
    pub sock: Option<PathBuf>,
    /// The MCP URL on loopback TCP, when TCP is on.
    pub tcp: Option<String>,
    /// The fleet API version served.
    #[serde(default)]
    pub fleet: u32,
    #[serde(default)]
    pub version: String,
    #[serde(default)]
    pub pid: u32,
}

pub fn path(cfg: &Config) -> PathBuf {
    cfg.root.join("state/iapeer/router.json")
}

pub fn write(cfg: &Config, d: &Discovery) -> io::Result<PathBuf> {
    let path = path(cfg);
    let mut bytes = serde_json::to_vec_pretty(d).map_err(io::Error::other)?;
    bytes.push(b'\n');
    fsutil::write_atomic(&path, &bytes)?;
    Ok(path)
}

/// The running daemon's discovery file, if there is a readable one.
pub fn read(cfg: &Config) -> Option<Discovery> {
    let text = fsutil::read_regular_text(&path(cfg), 64 << 10).ok()?;
    serde_json::from_str(&text).ok()
}

pub fn remove(path: &Path) {
    let _ = fsutil::remove_if_exists(path);
}
