//! The handle that asks the daemon's one reload task for a reload of the
//! plugin dirs (the task itself is the daemon's): what the API holds to
//! answer `POST /fleet/v1/reload`.

use tokio::sync::{mpsc, oneshot};

use crate::plugins::PluginReport;

/// What a reload left serving.
#[derive(Debug, Clone, serde::Serialize)]
pub(crate) struct ReloadSummary {
    /// The runtimes served now.
    pub adapters: Vec<String>,
    /// How many of them were kept from before, unchanged (not recompiled).
    pub reused: usize,
    pub reports: Vec<PluginReport>,
}

/// Who asked. Only an operator's reload (SIGHUP, the API, the CLI's plugin
/// verbs) puts quarantined adapters back; a file event elsewhere in a
/// plugin dir does not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Trigger {
    FileEvent,
    Operator,
}

pub(crate) struct Request {
    pub trigger: Trigger,
    pub answer: Option<oneshot::Sender<Result<ReloadSummary, String>>>,
}

/// Asks the reload task for a reload.
#[derive(Clone)]
pub(crate) struct Reloader(mpsc::Sender<Request>);

impl Reloader {
    pub(crate) fn new(to_the_task: mpsc::Sender<Request>) -> Reloader {
        Reloader(to_the_task)
    }

    /// Fire and forget (a burst of requests is one reload).
    pub fn request(&self, trigger: Trigger) {
        let _ = self.0.try_send(Request {
            trigger,
            answer: None,
        });
    }

    /// Reloads (as the operator) and says what is serving afterwards.
    pub async fn reload(&self) -> Result<ReloadSummary, String> {
        let (tx, rx) = oneshot::channel();
        self.0
            .send(Request {
                trigger: Trigger::Operator,
                answer: Some(tx),
            })
            .await
            .map_err(|_| "the reload task has stopped".to_string())?;
        rx.await
            .map_err(|_| "the reload task has stopped".to_string())?
    }
}
