//! Lifecycle and delivery events for the fleet API, read from the event
//! logs themselves — so events written by CLI processes show up too. The
//! SSE stream replays the last N events, then tails both logs (surviving
//! rotation) with a heartbeat comment, until the daemon stops.

use std::convert::Infallible;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::Stream;
use serde::Deserialize;
use serde_json::{Map, Value};

use super::ApiState;
use crate::config::Config;
use crate::events::{self, EventLog};
use crate::logfile::numbered;

/// How often the logs are looked at for new lines when nothing says they
/// changed (the watcher wakes the streams at once; this is its safety net).
const TAIL_POLL: Duration = Duration::from_millis(200);
/// How far back the replay and a peer's recent events read.
const RECENT_BYTES: u64 = 512 << 10;
/// The most events a replay sends.
pub(crate) const MAX_REPLAY: usize = 1000;
/// Event streams open at once, daemon-wide. Far below the listeners'
/// connection cap (256 each), so subscribers can never crowd out requests.
pub(crate) const MAX_STREAMS: usize = 32;

/// One event as JSON: `{"log": "delivery", "ts": …, "ev": …, …fields}`.
fn event_json(log: EventLog, line: &str) -> Option<Value> {
    let fields = events::parse_line(line);
    if fields.len() < 2 || fields[0].0 != "ts" {
        return None;
    }
    let mut obj = Map::new();
    obj.insert("log".into(), Value::String(<&str>::from(log).into()));
    for (k, v) in fields {
        obj.insert(k, Value::String(v));
    }
    Some(Value::Object(obj))
}

/// The newest complete lines of a log, at most `RECENT_BYTES` back.
fn tail_lines(path: &std::path::Path) -> Vec<String> {
    let Ok(mut f) = crate::fsutil::open_state_for_read(path) else {
        return Vec::new();
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let start = len.saturating_sub(RECENT_BYTES);
    if f.seek(SeekFrom::Start(start)).is_err() {
        return Vec::new();
    }
    let mut bytes = Vec::new();
    let _ = f.take(RECENT_BYTES).read_to_end(&mut bytes);
    let text = String::from_utf8_lossy(&bytes);
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    if start > 0 && !lines.is_empty() {
        lines.remove(0); // cut mid-line
    }
    lines
}

/// The last `n` events of both logs (and of their last rotated files),
/// oldest first.
pub(crate) fn recent(cfg: &Config, n: usize, keep: impl Fn(&Value) -> bool) -> Vec<Value> {
    let mut all: Vec<Value> = EventLog::ALL
        .iter()
        .flat_map(|&log| {
            let path = log.path(cfg);
            let mut lines = tail_lines(&numbered(&path, 1));
            lines.extend(tail_lines(&path));
            lines.into_iter().filter_map(move |l| event_json(log, &l))
        })
        .filter(|e| keep(e))
        .collect();
    // ISO timestamps sort as strings; the sort is stable within a log.
    all.sort_by(|a, b| a["ts"].as_str().cmp(&b["ts"].as_str()));
    let skip = all.len().saturating_sub(n);
    all.split_off(skip)
}

/// Does an event concern this peer (as subject, target or sender)?
pub(crate) fn concerns(event: &Value, personality: &str) -> bool {
    let field = |k: &str| event.get(k).and_then(Value::as_str).unwrap_or("");
    let identity_is = |v: &str| {
        crate::names::Identity::parse(v).is_ok_and(|id| id.personality().as_str() == personality)
    };
    field("personality") == personality
        || field("to") == personality
        || identity_is(field("identity"))
        || identity_is(field("caller"))
        || identity_is(field("via"))
}

/// Follows one log file from an offset, across rotations.
pub(crate) struct LogTail {
    log: EventLog,
    path: PathBuf,
    inode: u64,
    offset: u64,
    partial: String,
}

impl LogTail {
    /// A tail starting at the current end of the log.
    pub(crate) fn at_end(cfg: &Config, log: EventLog) -> LogTail {
        let path = log.path(cfg);
        let (inode, offset) = std::fs::metadata(&path)
            .map(|m| (m.ino(), m.len()))
            .unwrap_or((0, 0));
        LogTail {
            log,
            path,
            inode,
            offset,
            partial: String::new(),
        }
    }

    /// Events appended since the last call.
    pub(crate) fn poll(&mut self) -> Vec<Value> {
        let Ok(meta) = std::fs::metadata(&self.path) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        if meta.ino() != self.inode || meta.len() < self.offset {
            // Rotated: finish the old file (now `<log>.1`) first, then read
            // the new one from its start.
            let rotated = numbered(&self.path, 1);
            if std::fs::metadata(&rotated).is_ok_and(|m| m.ino() == self.inode) {
                out = self.read_from(&rotated);
            }
            self.inode = meta.ino();
            self.offset = 0;
            self.partial.clear();
        }
        if meta.len() > self.offset {
            let path = self.path.clone();
            out.extend(self.read_from(&path));
        }
        out
    }

    /// The complete lines of `path` past the offset, as events.
    fn read_from(&mut self, path: &std::path::Path) -> Vec<Value> {
        let Ok(mut f) = crate::fsutil::open_state_for_read(path) else {
            return Vec::new();
        };
        if f.seek(SeekFrom::Start(self.offset)).is_err() {
            return Vec::new();
        }
        let mut bytes = Vec::new();
        let _ = f.take(RECENT_BYTES).read_to_end(&mut bytes);
        self.offset += bytes.len() as u64;
        self.partial.push_str(&String::from_utf8_lossy(&bytes));
        let Some(cut) = self.partial.rfind('\n') else {
            return Vec::new();
        };
        let complete: String = self.partial.drain(..=cut).collect();
        complete
            .lines()
            .filter_map(|l| event_json(self.log, l))
            .collect()
    }
}

/// Wakes the event streams as soon as an event log in the log dir
/// changes (inotify through `notify`), so an event reaches a subscriber in
/// milliseconds rather than at the next poll. The watch follows the log
/// dir by identity: a dir replaced under the same name is watched anew.
pub(crate) struct LogWatch {
    dir: PathBuf,
    names: Arc<Vec<std::ffi::OsString>>,
    changed: tokio::sync::watch::Sender<u64>,
    armed: std::sync::Mutex<Option<Armed>>,
}

/// The watcher on one log dir (`None` when it could not be set up: that
/// dir is then polled, and not tried again until it is replaced).
struct Armed {
    dev: u64,
    ino: u64,
    /// Set by the watcher when the dir itself went away: a dir made anew
    /// may get the old inode number back, so identity alone cannot tell.
    gone: Arc<std::sync::atomic::AtomicBool>,
    _watcher: Option<notify::RecommendedWatcher>,
}

impl LogWatch {
    pub(crate) fn new(cfg: &Config) -> LogWatch {
        let names = EventLog::ALL
            .iter()
            .flat_map(|&log| {
                let path = log.path(cfg);
                [path.clone(), numbered(&path, 1)]
                    .map(|p| p.file_name().unwrap_or_default().to_owned())
            })
            .collect();
        LogWatch {
            dir: cfg.log_dir.clone(),
            names: Arc::new(names),
            changed: tokio::sync::watch::channel(0u64).0,
            armed: std::sync::Mutex::new(None),
        }
    }

    /// Sets the watch up if there is none yet or the log dir was replaced
    /// since (one `stat` when nothing changed). A missing dir is polled.
    pub(crate) fn ensure(&self) {
        let Ok(meta) = std::fs::metadata(&self.dir) else {
            return;
        };
        let mut armed = self
            .armed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if armed.as_ref().is_some_and(|a| {
            a.dev == meta.dev()
                && a.ino == meta.ino()
                && !a.gone.load(std::sync::atomic::Ordering::Relaxed)
        }) {
            return;
        }
        let gone = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let watcher = self
            .arm(gone.clone())
            .inspect_err(|e| {
                tracing::warn!(dir = %self.dir.display(), "cannot watch the event logs ({e}); polling them");
            })
            .ok();
        *armed = Some(Armed {
            dev: meta.dev(),
            ino: meta.ino(),
            gone,
            _watcher: watcher,
        });
    }

    fn arm(
        &self,
        gone: Arc<std::sync::atomic::AtomicBool>,
    ) -> notify::Result<notify::RecommendedWatcher> {
        use notify::Watcher;
        let names = self.names.clone();
        let tx = self.changed.clone();
        let dir = self.dir.clone();
        let mut watcher =
            notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
                let Ok(event) = event else { return };
                if event.kind.is_remove() && event.paths.contains(&dir) {
                    gone.store(true, std::sync::atomic::Ordering::Relaxed);
                }
                let concerns_a_log = !event.kind.is_access()
                    && event
                        .paths
                        .iter()
                        .any(|p| p.file_name().is_some_and(|n| names.iter().any(|m| m == n)));
                if concerns_a_log {
                    tx.send_modify(|n| *n = n.wrapping_add(1));
                }
            })?;
        watcher.watch(&self.dir, notify::RecursiveMode::NonRecursive)?;
        Ok(watcher)
    }

    /// A receiver that sees every later change.
    fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changed.subscribe()
    }
}

/// Waits for a change the watcher saw.
async fn log_changed(rx: &mut tokio::sync::watch::Receiver<u64>) {
    if rx.changed().await.is_err() {
        std::future::pending().await
    }
}

#[derive(Debug, Deserialize)]
pub(super) struct StreamQuery {
    #[serde(default)]
    replay: usize,
}

fn sse_event(e: &Value) -> Event {
    let name = e["log"].as_str().unwrap_or("event").to_string();
    Event::default().event(name).data(e.to_string())
}

/// `GET /fleet/v1/events?replay=N`: `: connected`, the last N events,
/// then every new one; `: hb` comments keep idle connections alive. At most
/// `MAX_STREAMS` at once; one more is a 503.
pub(super) async fn stream(
    State(state): State<Arc<ApiState>>,
    Query(q): Query<StreamQuery>,
) -> Response {
    let Ok(permit) = state.event_streams.clone().try_acquire_owned() else {
        return super::error(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("too many event streams open ({MAX_STREAMS}); close one and retry"),
        );
    };
    let cfg = state.lifecycle().cfg.clone();
    let replay = recent(&cfg, q.replay.min(MAX_REPLAY), |_| true);
    let mut tails: Vec<LogTail> = EventLog::ALL
        .iter()
        .map(|&log| LogTail::at_end(&cfg, log))
        .collect();
    let shutdown = state.shutdown.clone();
    let heartbeat = state.info.heartbeat;
    state.log_watch.ensure();
    let mut changed = state.log_watch.subscribe();
    let state = state.clone();
    let stream = async_stream(move |tx| async move {
        let _permit = permit; // held while the stream lives
        let _ = tx.send(Event::default().comment("connected")).await;
        for e in &replay {
            if tx.send(sse_event(e)).await.is_err() {
                return;
            }
        }
        let mut tick = tokio::time::interval(TAIL_POLL);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tx.closed() => return,
                _ = tick.tick() => state.log_watch.ensure(),
                _ = log_changed(&mut changed) => {}
            }
            let mut fresh: Vec<Value> = tails.iter_mut().flat_map(LogTail::poll).collect();
            fresh.sort_by(|a, b| a["ts"].as_str().cmp(&b["ts"].as_str()));
            for e in &fresh {
                if tx.send(sse_event(e)).await.is_err() {
                    return;
                }
            }
        }
    });
    Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(heartbeat).text("hb"))
        .into_response()
}

/// A stream fed by a task through a small channel.
fn async_stream<F, Fut>(producer: F) -> impl Stream<Item = Result<Event, Infallible>>
where
    F: FnOnce(tokio::sync::mpsc::Sender<Event>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    tokio::spawn(producer(tx));
    futures::stream::unfold(
        rx,
        |mut rx| async move { rx.recv().await.map(|e| (Ok(e), rx)) },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_cfg(tmp: &std::path::Path) -> Config {
        let mut env = crate::config::Env::new();
        env.insert("HOME".into(), tmp.to_string_lossy().into_owned());
        env.insert(
            "IAPEER_ROOT".into(),
            tmp.join("r").to_string_lossy().into_owned(),
        );
        Config::new(env, &Default::default()).unwrap()
    }

    /// The watch wakes subscribers on an append, and again after the log
    /// dir was replaced under its name (no timing asserted: a watch that
    /// never fires hangs until the 10 s detector).
    #[tokio::test]
    async fn the_log_watch_follows_a_replaced_dir() {
        let tmp = tempfile::tempdir().unwrap();
        let cfg = temp_cfg(tmp.path());
        std::fs::create_dir_all(&cfg.log_dir).unwrap();
        let watch = LogWatch::new(&cfg);
        watch.ensure();
        let mut rx = watch.subscribe();
        let append = || {
            let line = events::line("operator", &[("identity", "claude-a")]);
            events::append_to(&cfg, EventLog::Lifecycle, &[line]);
        };
        let hang = Duration::from_secs(10);
        append();
        tokio::time::timeout(hang, rx.changed())
            .await
            .expect("woken by an append")
            .unwrap();
        let old = cfg.log_dir.with_extension("old");
        std::fs::rename(&cfg.log_dir, &old).unwrap();
        std::fs::create_dir_all(&cfg.log_dir).unwrap();
        watch.ensure();
        rx.mark_unchanged();
        append();
        tokio::time::timeout(hang, rx.changed())
            .await
            .expect("woken by an append in the new dir")
            .unwrap();
        // Removed and made again (it may get the same inode number back):
        // the watcher's own removal notice re-arms it, at a later ensure.
        std::fs::remove_dir_all(&cfg.log_dir).unwrap();
        std::fs::create_dir_all(&cfg.log_dir).unwrap();
        let rearmed = async {
            loop {
                watch.ensure();
                rx.mark_unchanged();
                append();
                let quick = Duration::from_millis(50);
                if tokio::time::timeout(quick, rx.changed()).await.is_ok() {
                    break;
                }
            }
        };
        tokio::time::timeout(hang, rearmed)
            .await
            .expect("woken by an append in the remade dir");
    }

    #[test]
    fn tail_follows_appends_and_rotation() {
        let tmp = tempfile::tempdir().unwrap();
        let mut env = crate::config::Env::new();
        env.insert("HOME".into(), tmp.path().to_string_lossy().into_owned());
        env.insert(
            "IAPEER_ROOT".into(),
            tmp.path().join("r").to_string_lossy().into_owned(),
        );
        env.insert("IAPEER_DELIVERY_LOG_MAX_BYTES".into(), "450".into());
        let cfg = Config::new(env, &Default::default()).unwrap();
        let line = |to: &str| events::line("delivery", &[("caller", "claude-a"), ("to", to)]);
        events::append_to(&cfg, EventLog::Delivery, &[line("before")]);
        let mut tail = LogTail::at_end(&cfg, EventLog::Delivery);
        assert!(tail.poll().is_empty());
        events::append_to(&cfg, EventLog::Delivery, &[line("one"), line("two")]);
        let got = tail.poll();
        assert_eq!(got.len(), 2);
        assert_eq!(got[0]["to"], "one");
        assert_eq!(got[0]["log"], "delivery");
        // One rotation (at 450 bytes) happens among these: the tail follows it.
        for i in 0..6 {
            events::append_to(&cfg, EventLog::Delivery, &[line(&format!("r{i}"))]);
        }
        let got: Vec<String> = tail
            .poll()
            .iter()
            .map(|e| e["to"].as_str().unwrap().to_string())
            .collect();
        // Nothing is lost across one rotation between polls.
        assert_eq!(got, ["r0", "r1", "r2", "r3", "r4", "r5"]);
        let recent = recent(&cfg, 2, |e| concerns(e, "r5") || concerns(e, "r4"));
        assert_eq!(recent.len(), 2);
        assert!(concerns(&recent[0], "a"), "the caller's personality counts");
    }
}
