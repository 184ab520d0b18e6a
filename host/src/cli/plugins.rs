//! `iapeer plugins list` and `iapeer plugins inspect`.

use std::path::Path;

use serde_json::json;

use super::table;
use crate::config::Config;
use crate::plugins::{PluginHost, PluginReport, PluginState, SUPPORTED_CONTRACTS};

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
            if r.read_dirs.is_empty() {
                "-".into()
            } else {
                r.read_dirs.join(",")
            },
        ]);
        if let Some(reason) = &r.reason {
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

/// What the running daemon serves, when one answers.
fn served_by_daemon(cfg: &Config) -> Option<(u64, Vec<PluginReport>)> {
    let sock = crate::daemon::read_discovery(cfg)?.sock?;
    let token = cfg.bearer_token.as_deref();
    let plugins =
        super::verbs::block_on(crate::client::get_json(&sock, "/fleet/v1/plugins", token))
            .ok()?
            .ok()?;
    let pid = crate::daemon::read_discovery(cfg).map_or(0, |d| u64::from(d.pid));
    let reports = serde_json::from_value(plugins["plugins"].clone()).ok()?;
    Some((pid, reports))
}

/// `plugins list`: what the running daemon serves (a changed file that
/// does not validate shows next to the version still serving), else what
/// a load from disk gives now.
pub fn list(cfg: &Config, as_json: bool) -> anyhow::Result<i32> {
    let (reports, served_by) = match served_by_daemon(cfg) {
        Some((pid, reports)) => (reports, Some(pid)),
        None => {
            let host = super::verbs::block_on(PluginHost::load(&cfg.plugin_options()))?
                .map_err(anyhow::Error::msg)?;
            (host.reports().to_vec(), None)
        }
    };
    if as_json {
        let doc = json!({
            "contracts": SUPPORTED_CONTRACTS,
            "plugin_dirs": cfg.plugin_dirs,
            "builtins": cfg.builtin_plugins,
            "served_by_daemon": served_by,
            "plugins": reports,
        });
        println!("{}", serde_json::to_string_pretty(&doc)?);
    } else {
        let dirs: Vec<String> = cfg.plugin_dirs.iter().map(|d| dir_line(d)).collect();
        println!(
            "plugin dirs: {}",
            if dirs.is_empty() {
                "none".into()
            } else {
                dirs.join(", ")
            }
        );
        if let Some(pid) = served_by {
            println!("as served by the running iapeerd (pid {pid})");
        }
        print!("{}", rows(&reports));
    }
    Ok(0)
}

pub fn inspect(cfg: &Config, file: &Path, as_json: bool) -> anyhow::Result<i32> {
    let report = super::verbs::block_on(PluginHost::inspect(file, &cfg.plugin_options()))?
        .map_err(anyhow::Error::msg)?;
    if as_json {
        println!("{}", serde_json::to_string_pretty(&report)?);
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
            field(
                "reads",
                if report.read_dirs.is_empty() {
                    "-".into()
                } else {
                    report.read_dirs.join(", ")
                },
            ),
            field(
                "sha256",
                if report.sha256.is_empty() {
                    "-".into()
                } else {
                    report.sha256.clone()
                },
            ),
        ];
        print!("{}", table::render(&lines));
    }
    Ok(if report.state == PluginState::Loaded {
        0
    } else {
        1
    })
}
