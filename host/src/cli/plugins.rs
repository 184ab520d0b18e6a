//! `iapeer plugins list|inspect|check|install|remove|grant|revoke|cache`.

use std::path::Path;

use serde_json::json;

use super::table;
use crate::config::Config;
use crate::plugins::{
    Grant, Grants, PluginHost, PluginReport, PluginState, SUPPORTED_CONTRACTS, Source,
};

fn dash(v: Option<&str>) -> String {
    v.unwrap_or("-").to_string()
}

fn rows(reports: &[PluginReport]) -> String {
    let mut out = vec![
        [
            "RUNTIME", "VERSION", "WIT", "KIND", "STATE", "SOURCE", "SHA256", "READS",
        ]
        .map(String::from)
        .to_vec(),
    ];
    let mut reasons = Vec::new();
    for r in reports {
        out.push(vec![
            dash(r.runtime.as_deref()),
            dash(r.version.as_deref()),
            dash(r.wit.as_deref()),
            dash(r.kind.map(|k| k.as_str())),
            r.state.to_string(),
            r.source.to_string(),
            if r.sha256.is_empty() {
                "-".into()
            } else {
                r.sha256[..12].to_string()
            },
            r.reads().unwrap_or_else(|| "-".into()),
        ]);
        if let Some(reason) = &r.reason {
            // One line each: a reason can quote an adapter.
            let reason = crate::term::escape_controls(reason, false);
            reasons.push(format!("  {}: {reason}", r.source));
        }
    }
    let mut text = table::render(&out);
    if !reasons.is_empty() {
        text.push('\n');
        text.push_str("notes:\n");
        for r in reasons {
            text.push_str(&r);
            text.push('\n');
        }
    }
    text
}

fn dir_line(dir: &Path) -> String {
    let note = if dir.is_dir() { "" } else { " (missing)" };
    format!("{}{note}", dir.display())
}

/// The running daemon's socket and pid, when one is advertised.
fn daemon(cfg: &Config) -> Option<(std::path::PathBuf, u32)> {
    let d = crate::discovery::read(cfg)?;
    Some((d.sock?, d.pid))
}

/// What the running daemon serves, when one answers.
fn served_by_daemon(cfg: &Config) -> Option<(u32, Vec<PluginReport>)> {
    let (sock, pid) = daemon(cfg)?;
    let token = cfg.bearer_token.as_deref();
    let plugins =
        super::verbs::block_on(crate::client::get_json(&sock, "/fleet/v1/plugins", token))
            .ok()?
            .ok()?;
    let reports = serde_json::from_value(plugins["plugins"].clone()).ok()?;
    Some((pid, reports))
}

/// `plugins list`: what the running daemon serves (a changed file that
/// does not validate shows next to the version still serving), else what
/// a load from disk gives now.
pub fn list(cfg: &Config, as_json: bool) -> anyhow::Result<i32> {
    let (reports, served_by) = match served_by_daemon(cfg) {
        Some((pid, reports)) => (reports, Some(pid)),
        None => (load_from_disk(cfg)?.reports(), None),
    };
    if as_json {
        let doc = json!({
            "contracts": SUPPORTED_CONTRACTS,
            "plugin_dirs": cfg.plugin_dirs,
            "builtins": cfg.builtin_plugins,
            "served_by_daemon": served_by,
            "plugins": reports,
        });
        crate::term::out_json(&doc)?;
    } else {
        let dirs: Vec<String> = cfg.plugin_dirs.iter().map(|d| dir_line(d)).collect();
        crate::outln!(
            "plugin dirs: {}",
            if dirs.is_empty() {
                "none".into()
            } else {
                dirs.join(", ")
            }
        );
        if let Some(pid) = served_by {
            crate::outln!("as served by the running iapeerd (pid {pid})");
        }
        crate::out!("{}", rows(&reports));
    }
    Ok(0)
}

pub fn inspect(cfg: &Config, file: &Path, as_json: bool) -> anyhow::Result<i32> {
    let report = super::verbs::block_on(PluginHost::inspect(file, &cfg.plugin_options()))?
        .map_err(anyhow::Error::msg)?;
    if as_json {
        crate::term::out_json(&report)?;
    } else {
        let field = |k: &str, v: String| vec![format!("{k}:"), v];
        let yes_no = |b: Option<bool>| b.map(|b| if b { "yes" } else { "no" }.to_string());
        let lines = vec![
            field("file", report.source.to_string()),
            field("state", report.state.to_string()),
            field("reason", dash(report.reason.as_deref())),
            field("runtime", dash(report.runtime.as_deref())),
            field("version", dash(report.version.as_deref())),
            field("wit", dash(report.wit.as_deref())),
            field("kind", dash(report.kind.map(|k| k.as_str()))),
            field(
                "uses doctrine",
                dash(yes_no(report.uses_doctrine).as_deref()),
            ),
            field("requires", dash(report.requires_intelligence.as_deref())),
            field("binary", dash(report.default_binary.as_deref())),
            field("binary env", dash(report.binary_env.as_deref())),
            field("limits", dash(report.limits.as_deref())),
            field("reads", report.reads().unwrap_or_else(|| "-".into())),
            field(
                "sha256",
                if report.sha256.is_empty() {
                    "-".into()
                } else {
                    report.sha256.clone()
                },
            ),
        ];
        crate::out!("{}", table::render(&lines));
    }
    Ok(if report.state == PluginState::Loaded {
        0
    } else {
        1
    })
}

/// The plugin file a grant or a revoke is about: a path, else the file of
/// the plugin-dir adapter for that runtime.
fn target_file(cfg: &Config, target: &str) -> anyhow::Result<std::path::PathBuf> {
    let path = Path::new(target);
    if path.is_file() {
        return Ok(std::fs::canonicalize(path)?);
    }
    let files: Vec<std::path::PathBuf> = load_from_disk(cfg)?
        .reports()
        .into_iter()
        .filter(|r| r.runtime.as_deref() == Some(target))
        .filter_map(|r| match r.source {
            Source::File(f) => Some(f),
            Source::BuiltIn(_) => None,
        })
        .collect();
    match files.as_slice() {
        [one] => Ok(one.clone()),
        [] => anyhow::bail!(
            "{target}: neither a file nor the runtime of a plugin-dir adapter (built-in adapters need no grant)"
        ),
        // Never guess which file the operator reviewed.
        many => anyhow::bail!(
            "{target}: {} files claim this runtime ({}); name the file",
            many.len(),
            many.iter()
                .map(|f| f.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// Tells a running daemon to load again (its watcher may already have).
fn reload_daemon(cfg: &Config) -> Option<String> {
    let (sock, _) = daemon(cfg)?;
    let token = cfg.bearer_token.as_deref();
    match super::verbs::block_on(crate::client::post_json(&sock, "/fleet/v1/reload", token)) {
        Ok(Ok(_)) => Some("the running iapeerd reloaded its plugins".into()),
        Ok(Err(e)) => Some(format!(
            "the running iapeerd did not reload ({e}); send it SIGHUP"
        )),
        Err(_) => None,
    }
}

/// `plugins grant FILE|RUNTIME`.
pub fn grant(cfg: &Config, target: &str) -> anyhow::Result<i32> {
    let file = target_file(cfg, target)?;
    let report = checked(cfg, &file)?;
    let runtime = report.runtime.clone().unwrap_or_default();
    let Some(reads) = report.reads() else {
        crate::outln!(
            "{runtime} ({}) reads nothing: no grant needed",
            file.display()
        );
        return Ok(0);
    };
    Grants::add(
        &crate::plugins::grants_path(&cfg.root),
        Grant {
            sha256: report.sha256.clone(),
            runtime: runtime.clone(),
            file: file.display().to_string(),
            read_dirs: report.read_dirs.clone(),
            cwd_read_paths: report.cwd_read_paths.clone(),
            granted_at: crate::clock::iso8601_utc(crate::clock::Clock::now_ms(
                &crate::clock::SystemClock,
            )),
        },
    )
    .map_err(anyhow::Error::msg)?;
    crate::outln!(
        "granted {runtime} ({}, sha256 {}…) read-only access to {reads}",
        file.display(),
        &report.sha256[..12],
    );
    if let Some(line) = reload_daemon(cfg) {
        crate::outln!("{line}");
    }
    Ok(0)
}

/// `plugins revoke FILE|RUNTIME`.
pub fn revoke(cfg: &Config, target: &str) -> anyhow::Result<i32> {
    let path = crate::plugins::grants_path(&cfg.root);
    let file = Path::new(target);
    let removed = if file.is_file() {
        let sha = crate::plugins::sha256_file(file)?;
        Grants::remove(&path, |g| g.sha256 == sha)
    } else {
        Grants::remove(&path, |g| g.runtime == target)
    }
    .map_err(anyhow::Error::msg)?;
    if removed == 0 {
        anyhow::bail!("{target}: no grant to revoke");
    }
    crate::outln!("revoked {removed} grant(s) for {target}");
    if let Some(line) = reload_daemon(cfg) {
        crate::outln!("{line}");
    }
    Ok(0)
}

/// Loads what is on disk now.
fn load_from_disk(cfg: &Config) -> anyhow::Result<PluginHost> {
    super::verbs::block_on(PluginHost::load(&cfg.plugin_options()))?.map_err(anyhow::Error::msg)
}

/// The install checks: a valid adapter for this host, tried with nothing
/// granted. `Err` says why not.
pub(super) fn checked(cfg: &Config, file: &Path) -> anyhow::Result<PluginReport> {
    let report = super::verbs::block_on(PluginHost::inspect(file, &cfg.plugin_options()))?
        .map_err(anyhow::Error::msg)?;
    match report.state {
        PluginState::Loaded => Ok(report),
        state => anyhow::bail!(
            "{}: {state}: {}",
            file.display(),
            report.reason.as_deref().unwrap_or("not a valid adapter")
        ),
    }
}

/// `plugins check FILE`.
pub fn check(cfg: &Config, file: &Path, as_json: bool) -> anyhow::Result<i32> {
    let report = checked(cfg, file)?;
    if as_json {
        crate::term::out_json(&report)?;
        return Ok(0);
    }
    let rt = report.runtime.as_deref().unwrap_or("-");
    crate::outln!(
        "{}: a valid {rt} adapter ({} {}, contract {})",
        file.display(),
        rt,
        report.version.as_deref().unwrap_or("-"),
        report.wit.as_deref().unwrap_or("-")
    );
    if let Some(reads) = report.reads() {
        crate::outln!("it reads {reads}: it needs a grant once installed");
    }
    Ok(0)
}

/// `plugins install FILE`.
pub fn install(cfg: &Config, file: &Path) -> anyhow::Result<i32> {
    let report = checked(cfg, file)?;
    let runtime = report.runtime.clone().unwrap_or_default();
    let Some(dir) = cfg.plugin_dirs.first() else {
        anyhow::bail!("no plugin dir to install into (see `iapeer plugins list`)");
    };
    crate::fsutil::ensure_private_dir(dir)?;
    let dest = dir.join(format!("{runtime}.wasm"));
    let bytes = crate::fsutil::read_regular_file(file, crate::plugins::MAX_PLUGIN_BYTES)?;
    if crate::plugins::sha256_file(&dest).is_ok_and(|sha| sha == report.sha256) {
        crate::outln!("{runtime} is already installed as {}", dest.display());
    } else {
        crate::fsutil::write_atomic(&dest, &bytes)?;
        crate::outln!(
            "installed {runtime} {} as {}",
            report.version.as_deref().unwrap_or("-"),
            dest.display()
        );
    }
    if crate::plugins::is_builtin_runtime(&runtime) {
        crate::outln!("it overrides the built-in {runtime} adapter");
    }
    let grants = Grants::read(&crate::plugins::grants_path(&cfg.root)).unwrap_or_default();
    if let Some(reads) = report.reads()
        && !report.granted_by(&grants)
    {
        crate::outln!(
            "it reads {reads}: it serves once you grant it: iapeer plugins grant {}",
            dest.display()
        );
    }
    if let Some(line) = reload_daemon(cfg) {
        crate::outln!("{line}");
    }
    Ok(0)
}

/// `plugins remove RUNTIME`.
pub fn remove(cfg: &Config, runtime: &str) -> anyhow::Result<i32> {
    let host = load_from_disk(cfg)?;
    let files: Vec<(std::path::PathBuf, String)> = host
        .reports()
        .into_iter()
        .filter(|r| r.runtime.as_deref() == Some(runtime))
        .filter_map(|r| match r.source {
            Source::File(f) => Some((f, r.sha256)),
            Source::BuiltIn(_) => None,
        })
        .collect();
    if files.is_empty() {
        if crate::plugins::is_builtin_runtime(runtime) {
            anyhow::bail!("{runtime} is built in; there is no plugin file to remove");
        }
        anyhow::bail!("no plugin file serves {runtime:?} (see `iapeer plugins list`)");
    }
    let grants = crate::plugins::grants_path(&cfg.root);
    for (file, sha) in &files {
        crate::fsutil::remove_if_exists(file)?;
        let _ = Grants::remove(&grants, |g| &g.sha256 == sha);
        crate::outln!("removed {}", file.display());
    }
    if let Some(line) = reload_daemon(cfg) {
        crate::outln!("{line}");
    }
    Ok(0)
}

/// `plugins cache ls|clean`.
pub fn cache(cfg: &Config, clean: bool) -> anyhow::Result<i32> {
    let host = load_from_disk(cfg)?;
    let entries = host
        .cache_entries(&cfg.plugin_options())
        .map_err(anyhow::Error::msg)?;
    let mut freed = (0, 0u64);
    for e in &entries {
        let state = if e.in_use { "in use" } else { "stale" };
        if clean && !e.in_use {
            crate::fsutil::remove_if_exists(&e.path)?;
            freed = (freed.0 + 1, freed.1 + e.bytes);
            crate::outln!("removed {} ({} KiB)", e.path.display(), e.bytes >> 10);
        } else if !clean {
            crate::outln!("{state:6}  {:>7} KiB  {}", e.bytes >> 10, e.path.display());
        }
    }
    if clean {
        crate::outln!(
            "{} stale entries removed, {} KiB freed",
            freed.0,
            freed.1 >> 10
        );
    } else if entries.is_empty() {
        crate::outln!("the compile cache is empty");
    }
    Ok(0)
}
