//! One reload task for the plugin dirs. Three things ask for a reload — a
//! change in a plugin dir (watched with `notify`), SIGHUP, and
//! `POST /fleet/v1/reload` — and all go through this task, so two reloads
//! never run at once and a burst of file events becomes one reload.
//!
//! A reload reuses every adapter whose file did not change (same sha256),
//! keeps the previous version of a changed file that does not validate, and
//! unloads a removed file (`PluginHost::reload`).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use notify::{RecommendedWatcher, RecursiveMode, Watcher};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::api::ApiState;
use crate::api::reload::{ReloadSummary, Reloader, Request, Trigger};
use crate::config::Config;
use crate::lifecycle::Handoff;

/// File events settle this long before a reload (a copy is many writes).
const SETTLE: Duration = Duration::from_millis(300);

/// Starts the task.
pub(crate) fn spawn(
    cfg: Config,
    state: Arc<ApiState>,
    hands: Handoff,
    shutdown: CancellationToken,
) -> Reloader {
    let (tx, mut rx) = mpsc::channel::<Request>(64);
    tokio::spawn(async move {
        loop {
            let first = tokio::select! {
                _ = shutdown.cancelled() => return,
                r = rx.recv() => match r { Some(r) => r, None => return },
            };
            let mut operator = first.trigger == Trigger::Operator;
            let mut waiting: Vec<_> = first.answer.into_iter().collect();
            tokio::time::sleep(SETTLE).await;
            while let Ok(more) = rx.try_recv() {
                operator |= more.trigger == Trigger::Operator;
                waiting.extend(more.answer);
            }
            let result = reload_once(&cfg, &state, &hands, &shutdown, operator).await;
            for w in waiting {
                let _ = w.send(result.clone());
            }
        }
    });
    Reloader::new(tx)
}

async fn reload_once(
    cfg: &Config,
    state: &Arc<ApiState>,
    hands: &Handoff,
    shutdown: &CancellationToken,
    lift_quarantines: bool,
) -> Result<ReloadSummary, String> {
    let current = state.lifecycle();
    let host = current
        .plugins
        .reload(&cfg.plugin_options(), lift_quarantines)
        .await?;
    let reports = host.reports();
    for r in reports.iter().filter(|r| r.reason.is_some()) {
        tracing::warn!(source = %r.source, state = %r.state, reason = r.reason.as_deref().unwrap_or(""), "plugin");
    }
    crate::errln!("[iapeerd] plugins reloaded {}", super::summary(&host));
    let summary = ReloadSummary {
        adapters: host.runtimes().map(str::to_string).collect(),
        reused: host.reused(),
        reports,
    };
    let next = super::new_lifecycle(cfg, Arc::new(host), hands, shutdown);
    if let Some(link) = current.fleet_link() {
        next.join_fleet(link.clone());
    }
    state.replace_lifecycle(next);
    Ok(summary)
}

/// Watches the plugin dirs (creating missing ones, 0700, so a `.wasm`
/// copied in later is seen) and asks for a reload on any change. `None`
/// when the platform has no watcher: SIGHUP and the API still work.
pub(crate) fn watch(dirs: &[PathBuf], reloader: Reloader) -> Option<RecommendedWatcher> {
    let mut watcher =
        match notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
            if event.is_ok_and(|e| !e.kind.is_access()) {
                reloader.request(Trigger::FileEvent);
            }
        }) {
            Ok(w) => w,
            Err(e) => {
                tracing::warn!("cannot watch the plugin dirs ({e}); reload with SIGHUP");
                return None;
            }
        };
    for dir in dirs {
        if let Err(e) = crate::fsutil::ensure_private_dir(dir) {
            tracing::warn!(dir = %dir.display(), "cannot create the plugin dir: {e}");
            continue;
        }
        if let Err(e) = watcher.watch(dir, RecursiveMode::NonRecursive) {
            tracing::warn!(dir = %dir.display(), "cannot watch the plugin dir: {e}");
        }
    }
    Some(watcher)
}
