//! `iapeer doctor [PEER|RUNTIME]`: what an operator runs the day a runtime
//! updates. It boots the real runtime — in a fresh throwaway folder, or in
//! a peer's folder without resuming its conversation — through the adapter
//! the host would use, to input-ready, and stops. Nothing is typed but the
//! keys that answer dialogs the adapter identified. It prints each step
//! with its time and the pane it judged, and the runtime's `--version`
//! next to the version the adapter was verified with.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::trial::{Ending, Trial, one_line};
use super::verbs::block_on;
use crate::config::Config;
use crate::names::Runtime;
use crate::plugins::{AdapterKind, PluginHost};
use crate::registry;

/// What one doctor run boots.
struct Target {
    runtime: Runtime,
    /// The peer's folder, or `None` for a fresh throwaway one.
    peer: Option<(String, PathBuf)>,
}

pub fn run(
    cfg: &Config,
    name: Option<&str>,
    timeout: Duration,
    save_panes: Option<&Path>,
) -> anyhow::Result<i32> {
    let targets = targets(cfg, name)?;
    let mut worst = 0;
    for (i, target) in targets.iter().enumerate() {
        if i > 0 {
            crate::outln!();
        }
        // One folder per runtime when several are checked.
        let save = save_panes.map(|d| match targets.len() {
            1 => d.to_path_buf(),
            _ => d.join(target.runtime.as_str()),
        });
        let code = examine(cfg, target, timeout, save)?;
        if code == Ending::Interrupted.exit_code() {
            // One interrupt ends the whole check, not one runtime's boot.
            return Ok(code);
        }
        worst = worst.max(code);
    }
    Ok(worst)
}

fn load(cfg: &Config) -> anyhow::Result<PluginHost> {
    block_on(PluginHost::load(&cfg.plugin_options()))?.map_err(anyhow::Error::msg)
}

/// `NAME` as a registered peer, else as a runtime; without one, the
/// runtimes the registry's peers use, else every agent runtime whose
/// binary is installed.
fn targets(cfg: &Config, name: Option<&str>) -> anyhow::Result<Vec<Target>> {
    let plugins = load(cfg)?;
    let registry = registry::read_registry(&cfg.registry_path()).unwrap_or_default();
    let agent = |rt: &str| {
        plugins
            .adapter(rt)
            .is_some_and(|a| a.info().kind == AdapterKind::Tui)
    };
    let Some(name) = name else {
        let mut runtimes: Vec<&str> = registry
            .peers
            .iter()
            .map(|p| p.default_runtime.as_str())
            .filter(|rt| agent(rt))
            .collect();
        if runtimes.is_empty() {
            runtimes = plugins
                .runtimes()
                .filter(|rt| agent(rt) && installed(cfg, &plugins, rt))
                .collect();
        }
        runtimes.sort_unstable();
        runtimes.dedup();
        if runtimes.is_empty() {
            anyhow::bail!("doctor: no peer registered and no agent runtime installed; name one");
        }
        return Ok(runtimes
            .into_iter()
            .map(|rt| Target {
                runtime: Runtime::new(rt).expect("a served runtime's name is valid"),
                peer: None,
            })
            .collect());
    };
    let (runtime, peer) = match registry.find(name) {
        Some(p) => (
            p.default_runtime.clone(),
            Some((p.personality.to_string(), p.cwd.clone())),
        ),
        None => match Runtime::new(name) {
            Ok(rt) if plugins.adapter(rt.as_str()).is_some() => (rt, None),
            _ => {
                if let Some(why) = plugins.why_not_serving(name) {
                    anyhow::bail!("doctor {}: {why}", one_line(name));
                }
                let served: Vec<&str> = plugins.runtimes().collect();
                anyhow::bail!(
                    "doctor {}: neither a registered peer nor a runtime with an adapter (runtimes: {})",
                    one_line(name),
                    served.join(", ")
                );
            }
        },
    };
    if !agent(runtime.as_str()) {
        anyhow::bail!(
            "doctor {}: {runtime} is a bridge, not an agent runtime; doctor boots agents",
            one_line(name)
        );
    }
    Ok(vec![Target { runtime, peer }])
}

/// Whether `runtime`'s binary is a file here (named by path or on PATH).
fn installed(cfg: &Config, plugins: &PluginHost, runtime: &str) -> bool {
    let Some(adapter) = plugins.adapter(runtime) else {
        return false;
    };
    let info = adapter.info();
    let binary = cfg.resolve_binary(runtime, info.binary_env.as_deref(), &info.default_binary);
    if binary.contains('/') {
        return Path::new(&binary).is_file();
    }
    let path = cfg.env.get("PATH").map(String::as_str).unwrap_or_default();
    std::env::split_paths(path).any(|d| d.join(&binary).is_file())
}

/// Boots one target and reports; the exit code of its ending.
fn examine(
    cfg: &Config,
    target: &Target,
    timeout: Duration,
    save_panes: Option<PathBuf>,
) -> anyhow::Result<i32> {
    // Each boot gets a host of its own: a quarantine one boot earned must
    // not be read as the next one's failure.
    let plugins = load(cfg)?;
    let rt = target.runtime.as_str();
    let adapter = plugins
        .adapter(rt)
        .ok_or_else(|| anyhow::anyhow!("doctor: no adapter serves {rt}"))?
        .clone();
    let info = adapter.info();
    let binary = cfg.resolve_binary(rt, info.binary_env.as_deref(), &info.default_binary);
    let said = block_on(crate::runtime_version::of(&binary, &cfg.env))?;
    let release = info.version.split('+').next().unwrap_or_default();
    let verified = crate::runtime_version::verified_with(&info.version);
    crate::outln!("doctor: {rt}");
    crate::outln!(
        "  adapter  {rt} {release} ({})",
        one_line(&adapter.source().to_string())
    );
    crate::outln!("  binary   {}", one_line(&binary));
    crate::outln!(
        "  version  {} — {}",
        one_line(said.as_deref().unwrap_or("unknown (`--version` failed)")),
        verdict(said.as_deref(), verified.as_deref())
    );
    let mut trial = Trial::new(cfg, "doctor", timeout)?;
    trial.save_panes = save_panes;
    let cwd = match &target.peer {
        Some((peer, cwd)) => {
            crate::outln!(
                "  folder   {} ({peer}'s; a fresh conversation, its own is not resumed)",
                one_line(&cwd.display().to_string())
            );
            cwd.clone()
        }
        None => {
            let cwd = trial.dir("folder")?;
            crate::outln!(
                "  folder   {} (new and empty)",
                one_line(&cwd.display().to_string())
            );
            cwd
        }
    };
    crate::outln!("  booting to input-ready; nothing will be typed but dialog answers");
    let ending = trial.wake(plugins, &target.runtime, &cwd, None)?;
    Ok(ending.exit_code())
}

/// The runtime's version against the adapter's verified one.
fn verdict(said: Option<&str>, verified: Option<&str>) -> String {
    match (said, verified) {
        (_, None) => "the adapter names no version it was verified with".into(),
        (None, Some(v)) => format!("the adapter was verified with {v}"),
        (Some(s), Some(v)) if mentions(s, v) => {
            "the version the adapter was verified with".to_string()
        }
        (Some(_), Some(v)) => format!(
            "NOT the version the adapter was verified with ({v}): a screen it does not know fails the boot below"
        ),
    }
}

/// `version` appears in `line` as a whole token (`2.1.33` is not in
/// `2.1.332 (Claude Code)`).
fn mentions(line: &str, version: &str) -> bool {
    line.split(|c: char| !(c.is_ascii_alphanumeric() || c == '.' || c == '-'))
        .any(|token| token == version)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_version_is_a_whole_token() {
        assert!(mentions("2.1.332 (Claude Code)", "2.1.332"));
        assert!(mentions("codex-cli 0.171.0", "0.171.0"));
        assert!(!mentions("2.1.3321 (Claude Code)", "2.1.332"));
        assert!(!mentions("12.1.332", "2.1.332"));
    }

    #[test]
    fn a_differing_version_is_said_plainly() {
        assert!(verdict(Some("2.1.400 (Claude Code)"), Some("2.1.332")).starts_with("NOT"));
        assert_eq!(
            verdict(Some("2.1.332 (Claude Code)"), Some("2.1.332")),
            "the version the adapter was verified with"
        );
    }
}
