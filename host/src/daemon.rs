//! `iapeerd`: the long-running host. Loads the adapters, reports what it
//! loaded, reloads the plugin dirs on SIGHUP, and stops on SIGTERM/SIGINT.

use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use tokio::signal::unix::{SignalKind, signal};

use crate::cli::{GlobalArgs, finish};
use crate::config::Config;
use crate::plugins::{PluginHost, PluginState};

#[derive(Debug, Parser)]
#[command(name = "iapeerd", version, about = "The iapeer plugin-host daemon")]
struct IapeerdCli {
    #[command(flatten)]
    global: GlobalArgs,
    /// Seconds between supervise ticks.
    #[arg(long, default_value_t = 60, value_name = "N")]
    tick_secs: u64,
}

fn load_plugins(cfg: &Config) -> anyhow::Result<Arc<PluginHost>> {
    let host = PluginHost::load(&cfg.plugin_options()).map_err(anyhow::Error::msg)?;
    for r in host.reports() {
        let runtime = r.runtime.as_deref().unwrap_or("-");
        match r.state {
            PluginState::Loaded => tracing::info!(runtime, source = %r.source, "adapter loaded"),
            _ => tracing::warn!(
                runtime,
                source = %r.source,
                state = crate::cli::state_name(r.state),
                reason = r.reason.as_deref().unwrap_or(""),
                "adapter not loaded"
            ),
        }
    }
    Ok(Arc::new(host))
}

fn summary(host: &PluginHost) -> String {
    let runtimes: Vec<&str> = host.runtimes().collect();
    let not_loaded = host
        .reports()
        .iter()
        .filter(|r| r.state != PluginState::Loaded)
        .count();
    format!("adapters={} not_loaded={not_loaded}", runtimes.join(","))
}

async fn run(cfg: Config) -> anyhow::Result<i32> {
    let mut host = load_plugins(&cfg)?;
    eprintln!("[iapeerd] READY root={} {}", cfg.root.display(), summary(&host));
    let mut term = signal(SignalKind::terminate())?;
    let mut hup = signal(SignalKind::hangup())?;
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            _ = term.recv() => break,
            _ = hup.recv() => {
                let c = cfg.clone();
                match tokio::task::spawn_blocking(move || load_plugins(&c)).await? {
                    Ok(h) => {
                        host = h;
                        eprintln!("[iapeerd] plugins reloaded {}", summary(&host));
                    }
                    Err(e) => tracing::error!("plugin reload failed, keeping the old set: {e:#}"),
                }
            }
        }
    }
    eprintln!("[iapeerd] stopping");
    Ok(0)
}

/// Entry point of the `iapeerd` binary.
pub fn iapeerd_main() -> ExitCode {
    let cli = IapeerdCli::parse();
    cli.global.init_logging("info");
    let cfg = cli.global.config();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => return finish("iapeerd", Err(e.into())),
    };
    finish("iapeerd", runtime.block_on(run(cfg)))
}
