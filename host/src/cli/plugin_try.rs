//! `iapeer plugins try FILE --bin PATH [--message TEXT] [--cwd DIR]`: an
//! adapter against a real binary before anything is installed. It runs the
//! wake the host would run — build the command, start the session, judge
//! the pane until it is ready (answering dialogs), paste the message, wait
//! for the activity proxy to move — in a throwaway root, and prints each
//! step with its time and the pane text the adapter judged. It fails fast
//! (`--timeout-secs`, 30 by default, for the boot and the ready gate) and
//! says why.

use std::path::Path;
use std::time::Duration;

use anyhow::Context;

use super::trial::{Trial, one_line};
use super::verbs::block_on;
use crate::config::Config;
use crate::names::Runtime;
use crate::plugins::{Grant, Grants, PluginHost};

pub struct TryArgs<'a> {
    pub file: &'a Path,
    pub bin: &'a str,
    pub message: Option<String>,
    pub cwd: Option<&'a Path>,
    pub timeout: Duration,
}

pub fn run(cfg: &Config, a: TryArgs<'_>) -> anyhow::Result<i32> {
    let report = super::plugins::checked(cfg, a.file)?;
    let runtime = Runtime::new(report.runtime.clone().unwrap_or_default())
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let cwd = match a.cwd {
        Some(d) => d.to_path_buf(),
        None => std::env::current_dir()?,
    };
    let cwd = cwd
        .canonicalize()
        .with_context(|| format!("the peer's cwd {}", cwd.display()))?;
    if !cwd.is_dir() {
        anyhow::bail!("--cwd {}: not a directory", cwd.display());
    }
    let mut trial = Trial::new(cfg, "try", a.timeout)?;
    // Only the file tried serves, run from the binary named.
    trial.cfg.plugin_dirs = vec![trial.dir("plugins")?];
    trial
        .cfg
        .bin_overrides
        .insert(runtime.to_string(), absolute(a.bin));
    let cfg = &trial.cfg;
    let installed = cfg.plugin_dirs[0].join(format!("{runtime}.wasm"));
    let bytes = crate::fsutil::read_regular_file(a.file, crate::plugins::MAX_PLUGIN_BYTES)?;
    crate::fsutil::write_atomic(&installed, &bytes)?;
    crate::outln!(
        "trying {} ({runtime} {}, contract {}) with {} in {}",
        one_line(&a.file.display().to_string()),
        report.version.as_deref().unwrap_or("-"),
        report.wit.as_deref().unwrap_or("-"),
        one_line(a.bin),
        one_line(&cwd.display().to_string())
    );
    if let Some(reads) = report.reads() {
        Grants::add(
            &crate::plugins::grants_path(&cfg.root),
            Grant {
                sha256: report.sha256.clone(),
                runtime: runtime.to_string(),
                file: installed.display().to_string(),
                read_dirs: report.read_dirs.clone(),
                cwd_read_paths: report.cwd_read_paths.clone(),
                granted_at: "for this try".into(),
            },
        )
        .map_err(anyhow::Error::msg)?;
        crate::outln!("granted for this try only: it reads {reads}");
    }
    let plugins = block_on(PluginHost::load(&cfg.plugin_options()))?.map_err(anyhow::Error::msg)?;
    if let Some(why) = plugins.why_not_serving(runtime.as_str()) {
        anyhow::bail!("{}: {why}", a.file.display());
    }
    Ok(trial.wake(plugins, &runtime, &cwd, a.message)?.exit_code())
}

/// A relative `--bin` names a file here, not one on PATH.
fn absolute(bin: &str) -> String {
    if bin.contains('/') {
        std::path::absolute(bin)
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_else(|_| bin.to_string())
    } else {
        bin.to_string()
    }
}
