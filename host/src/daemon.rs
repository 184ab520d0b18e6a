//! `iapeerd`: the long-running host. Loads the adapters, runs the supervise
//! tick (reap gone and idle sessions, relaunch `/new` ones) every
//! `--tick-secs`, reloads the plugin dirs on SIGHUP, stops on SIGTERM/SIGINT.
//! One daemon per root: a second one refuses to start.

use std::fs::OpenOptions;
use std::os::unix::fs::OpenOptionsExt;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use fs2::FileExt;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::RwLock;

use crate::cli::{GlobalArgs, finish};
use crate::clock::SystemClock;
use crate::config::Config;
use crate::fsutil;
use crate::lifecycle::{Lifecycle, SuperviseAction, supervise_action_name};
use crate::plugins::{PluginHost, PluginState};

#[derive(Debug, Parser)]
#[command(name = "iapeerd", version, about = "The iapeer plugin-host daemon")]
struct IapeerdCli {
    #[command(flatten)]
    global: GlobalArgs,
    /// Seconds between supervise ticks.
    #[arg(long, default_value_t = 60, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    tick_secs: u64,
}

async fn load_plugins(cfg: &Config) -> anyhow::Result<Arc<PluginHost>> {
    let host = PluginHost::load(&cfg.plugin_options())
        .await
        .map_err(anyhow::Error::msg)?;
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

/// Clears the "a tick is running" flag when the tick ends — even if it
/// panicked, so one bad tick never stops supervision.
struct TickDone(Arc<AtomicBool>);

impl Drop for TickDone {
    fn drop(&mut self) {
        self.0.store(false, Ordering::SeqCst);
    }
}

/// One supervise pass plus the eager relaunches it asks for.
async fn supervise(lc: Arc<Lifecycle>) {
    let outcomes = lc.supervise_tick().await;
    for o in outcomes
        .iter()
        .filter(|o| o.action != SuperviseAction::Alive)
    {
        tracing::info!(
            identity = %o.identity,
            action = supervise_action_name(o.action),
            reason = o.reason.as_deref().unwrap_or(""),
            "supervise"
        );
    }
    for r in lc.process_eager_relaunches(&outcomes).await {
        match r.is_ready() {
            true => tracing::info!(
                identity = r.process_address.as_deref().unwrap_or(""),
                "eager fresh relaunch READY"
            ),
            false => tracing::warn!(
                reason = r.reason.as_deref().unwrap_or(""),
                "eager fresh relaunch failed; the /new mark stays"
            ),
        }
    }
}

async fn run(cfg: Config, tick: Duration) -> anyhow::Result<i32> {
    // One daemon per root.
    let lock_dir = cfg.root.join("state/iapeer");
    fsutil::ensure_private_dir(&lock_dir).context("cannot create the daemon state dir")?;
    let lock = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(fsutil::FILE_MODE)
        .open(lock_dir.join("iapeerd.lock"))?;
    if lock.try_lock_exclusive().is_err() {
        anyhow::bail!(
            "another iapeerd is already running on {}",
            cfg.root.display()
        );
    }

    let plugins = load_plugins(&cfg).await?;
    eprintln!(
        "[iapeerd] READY root={} tick={}s {}",
        cfg.root.display(),
        tick.as_secs(),
        summary(&plugins)
    );
    let lifecycle = Arc::new(RwLock::new(Arc::new(Lifecycle::new(
        cfg.clone(),
        plugins,
        Arc::new(SystemClock),
    ))));
    let ticking = Arc::new(AtomicBool::new(false));
    let mut interval = tokio::time::interval(tick);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut term = signal(SignalKind::terminate())?;
    let mut hup = signal(SignalKind::hangup())?;
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            _ = term.recv() => break,
            _ = hup.recv() => {
                // Off the signal loop: a slow plugin must not delay SIGTERM.
                let (cfg, lifecycle) = (cfg.clone(), lifecycle.clone());
                tokio::spawn(async move {
                    match load_plugins(&cfg).await {
                        Ok(host) => {
                            eprintln!("[iapeerd] plugins reloaded {}", summary(&host));
                            let next = Lifecycle::new(cfg, host, Arc::new(SystemClock));
                            *lifecycle.write().await = Arc::new(next);
                        }
                        Err(e) => tracing::error!("plugin reload failed, keeping the old set: {e:#}"),
                    }
                });
            }
            _ = interval.tick() => {
                // A long eager relaunch must not stack ticks on top of it.
                if ticking.swap(true, Ordering::SeqCst) {
                    continue;
                }
                let lc = lifecycle.read().await.clone();
                let done = TickDone(ticking.clone());
                tokio::spawn(async move {
                    supervise(lc).await;
                    drop(done);
                });
            }
        }
    }
    eprintln!("[iapeerd] stopping");
    drop(lock);
    Ok(0)
}

/// Entry point of the `iapeerd` binary.
pub fn iapeerd_main() -> ExitCode {
    let cli = IapeerdCli::parse();
    let cfg = cli.global.config();
    cli.global
        .init_logging("info", Some(&cfg.log_dir.join("iapeerd.log")));
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return finish("iapeerd", Err(e.into())),
    };
    finish(
        "iapeerd",
        runtime.block_on(run(cfg, Duration::from_secs(cli.tick_secs))),
    )
}
