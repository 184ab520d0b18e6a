//! The mailbox's storage: one SQLite file in WAL mode, `<root>/state/mail.db`,
//! shared by the daemon and every CLI process. Each change is one short
//! transaction, so a message is either committed whole or not at all, and
//! a process killed mid-way leaves the file consistent.
//!
//! A message moves `queued` → `claimed` (a deliverer holds the peer's wake
//! lock and is about to paste) → `submitted` (Enter went in; not yet seen
//! taken) → `delivered`; or to `dead` (dead-lettered). A claim left behind
//! by a killed deliverer is found by the next one under the same lock.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, params};

use super::{MessageId, MessageState};
use crate::fsutil;

/// Every state of a message not yet delivered nor dead.
const WAITING: [MessageState; 2] = [MessageState::Queued, MessageState::Submitted];

/// The messages, read through the planner's choice of index ...
const MESSAGES: &str = "messages";

/// ... or through the index of their state, which the planner would pass
/// over for a scan in `seq` order of every message kept (finished ones are
/// kept a week).
const MESSAGES_BY_STATE: &str = "messages INDEXED BY messages_by_state";

/// How long a process waits for another's transaction before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS messages (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    id           TEXT NOT NULL UNIQUE,
    personality  TEXT NOT NULL,
    runtime      TEXT,
    sender       TEXT NOT NULL,
    door         TEXT NOT NULL,
    topic        TEXT,
    envelope     TEXT NOT NULL,
    created_ms   INTEGER NOT NULL,
    expires_ms   INTEGER NOT NULL,
    state        TEXT NOT NULL,
    why          TEXT,
    attempts     INTEGER NOT NULL DEFAULT 0,
    claimed_by   TEXT,
    claimed_ms   INTEGER,
    done_ms      INTEGER,
    to_identity TEXT,
    woke         INTEGER NOT NULL DEFAULT 0,
    not_before_ms INTEGER NOT NULL DEFAULT 0,
    to_host      TEXT,
    from_host    TEXT,
    wire         TEXT,
    report_due   INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS topics (
    identity  TEXT NOT NULL,
    topic     TEXT NOT NULL,
    noted_ms  INTEGER NOT NULL,
    PRIMARY KEY (identity, topic)
);
CREATE INDEX IF NOT EXISTS messages_waiting
    ON messages(personality, seq) WHERE state IN ('queued', 'submitted');
CREATE INDEX IF NOT EXISTS messages_by_state ON messages(state);
";

/// The fleet's columns, for a mailbox made before them: the host a message
/// is for (sent here, owned there), the host it came from (to tell what
/// became of it), the message as it travels, and an outcome not yet told.
const FLEET_COLUMNS: [(&str, &str); 4] = [
    ("to_host", "TEXT"),
    ("from_host", "TEXT"),
    ("wire", "TEXT"),
    ("report_due", "INTEGER NOT NULL DEFAULT 0"),
];

/// The fleet's index and trigger: any change of state or reason of a
/// message from another host is due to be told to it.
const FLEET_SCHEMA: &str = "
CREATE INDEX IF NOT EXISTS messages_report_due ON messages(seq) WHERE report_due = 1;
CREATE TRIGGER IF NOT EXISTS messages_report AFTER UPDATE OF state, why ON messages
WHEN NEW.from_host IS NOT NULL AND (OLD.state IS NOT NEW.state OR OLD.why IS NOT NEW.why)
BEGIN UPDATE messages SET report_due = 1 WHERE seq = NEW.seq; END;
";

/// Adds what [`FLEET_COLUMNS`] and [`FLEET_SCHEMA`] add, once.
fn migrate(conn: &mut Connection) -> rusqlite::Result<()> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let have: Vec<String> = tx
        .prepare("SELECT name FROM pragma_table_info('messages')")?
        .query_map([], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    for (name, decl) in FLEET_COLUMNS {
        if !have.iter().any(|h| h == name) {
            tx.execute_batch(&format!("ALTER TABLE messages ADD COLUMN {name} {decl}"))?;
        }
    }
    tx.execute_batch(FLEET_SCHEMA)?;
    tx.commit()
}

/// When a write reaches the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sync {
    /// Before the call returns: a message accepted, a claim (a claim lost
    /// to a power cut would let a message be typed twice).
    Full,
    /// With the next full write or checkpoint: only for a write whose loss
    /// crash recovery settles the same way (a delivery it finds in the
    /// runtime's record; a queued message's reason and next try).
    Lazy,
}

#[derive(Debug, thiserror::Error)]
pub enum MailError {
    #[error("mailbox {path}: {source}")]
    Open {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("mailbox {path}: {source}")]
    Dir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("mailbox: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("mailbox: a message row holds an unknown state {0:?}")]
    BadState(String),
}

/// How a message travels to another host, made with its id.
type WireOf<'a> = dyn Fn(&MessageId) -> String + 'a;

/// A message to commit.
#[derive(Clone)]
pub struct NewMessage<'a> {
    pub personality: &'a str,
    pub runtime: Option<&'a str>,
    pub sender: &'a str,
    pub door: &'a str,
    pub topic: Option<&'a str>,
    /// The envelope of the message with the id it is given.
    pub envelope: &'a dyn Fn(&MessageId) -> String,
    pub ttl: Duration,
}

/// One message as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub seq: i64,
    pub id: MessageId,
    pub personality: String,
    pub runtime: Option<String>,
    pub sender: String,
    pub door: String,
    pub topic: Option<String>,
    pub envelope: String,
    pub created_ms: u64,
    pub expires_ms: u64,
    pub state: MessageState,
    pub why: Option<String>,
    pub attempts: u32,
    pub claimed_by: Option<String>,
    pub claimed_ms: Option<u64>,
    pub done_ms: Option<u64>,
    /// Where it was (or is being) delivered.
    pub to_identity: Option<String>,
    pub woke: bool,
    /// A requeued message is tried again from then (a backoff).
    pub not_before_ms: u64,
    /// Sent here to a peer of this host (fleet).
    pub to_host: Option<String>,
    /// Came from this host, which is told what became of it (fleet).
    pub from_host: Option<String>,
    /// The message as it travels to `to_host`.
    pub wire: Option<String>,
}

const COLUMNS: &str = "seq, id, personality, runtime, sender, door, topic, envelope, created_ms, \
     expires_ms, state, why, attempts, claimed_by, claimed_ms, done_ms, to_identity, woke, \
     not_before_ms, to_host, from_host, wire";

fn from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<(Message, String)> {
    let ms = |i: usize| -> rusqlite::Result<u64> { Ok(row.get::<_, i64>(i)?.max(0) as u64) };
    let opt_ms = |i: usize| -> rusqlite::Result<Option<u64>> {
        Ok(row.get::<_, Option<i64>>(i)?.map(|v| v.max(0) as u64))
    };
    let state: String = row.get(10)?;
    Ok((
        Message {
            seq: row.get(0)?,
            id: MessageId(row.get(1)?),
            personality: row.get(2)?,
            runtime: row.get(3)?,
            sender: row.get(4)?,
            door: row.get(5)?,
            topic: row.get(6)?,
            envelope: row.get(7)?,
            created_ms: ms(8)?,
            expires_ms: ms(9)?,
            state: MessageState::Queued,
            why: row.get(11)?,
            attempts: row.get::<_, i64>(12)?.clamp(0, i64::from(u32::MAX)) as u32,
            claimed_by: row.get(13)?,
            claimed_ms: opt_ms(14)?,
            done_ms: opt_ms(15)?,
            to_identity: row.get(16)?,
            woke: row.get::<_, i64>(17)? != 0,
            not_before_ms: ms(18)?,
            to_host: row.get(19)?,
            from_host: row.get(20)?,
            wire: row.get(21)?,
        },
        state,
    ))
}

fn finish(pair: (Message, String)) -> Result<Message, MailError> {
    let (mut m, state) = pair;
    m.state = state.parse().map_err(|_| MailError::BadState(state))?;
    Ok(m)
}

fn ms(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// The mailbox of one root.
pub struct Mailbox {
    conn: Mutex<Connection>,
    path: PathBuf,
    /// Told of every change made through this handle, so a waiter in this
    /// process need not poll (another process's changes are not seen).
    changed: tokio::sync::Notify,
}

impl std::fmt::Debug for Mailbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mailbox").field("path", &self.path).finish()
    }
}

impl Mailbox {
    /// Opens (creating) the mailbox at `path`, its folder 0700 and the
    /// file 0600.
    pub fn open(path: &Path) -> Result<Mailbox, MailError> {
        if let Some(dir) = path.parent() {
            fsutil::ensure_private_dir(dir).map_err(|source| MailError::Dir {
                path: dir.to_path_buf(),
                source,
            })?;
        }
        // Made 0600 before SQLite sees it (its -wal and -shm files take
        // the database file's mode); never through a link planted there.
        // Opened by this code only when it does not exist yet: closing a
        // descriptor of a database file drops every POSIX lock this process
        // holds on it, connections of its own included (a plugin reload
        // opens the mailbox again beside the open one), and another process
        // would then think itself the last and remove the write-ahead log.
        match std::fs::symlink_metadata(path) {
            Ok(meta) if meta.is_file() => {}
            Ok(_) => {
                return Err(MailError::Dir {
                    path: path.to_path_buf(),
                    source: std::io::Error::other("not a regular file"),
                });
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                use std::os::unix::fs::OpenOptionsExt;
                let created = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
                    .open(path);
                match created {
                    // Another process made it meanwhile: as good.
                    Ok(_) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                    Err(source) => {
                        return Err(MailError::Dir {
                            path: path.to_path_buf(),
                            source,
                        });
                    }
                }
            }
            Err(source) => {
                return Err(MailError::Dir {
                    path: path.to_path_buf(),
                    source,
                });
            }
        }
        let open = || -> rusqlite::Result<Connection> {
            let conn = Connection::open_with_flags(
                path,
                rusqlite::OpenFlags::default() | rusqlite::OpenFlags::SQLITE_OPEN_NOFOLLOW,
            )?;
            conn.busy_timeout(BUSY_TIMEOUT)?;
            conn.pragma_update(None, "journal_mode", "WAL")?;
            // A commit is on disk before the sender hears "accepted".
            conn.pragma_update(None, "synchronous", "FULL")?;
            conn.execute_batch(SCHEMA)?;
            let mut conn = conn;
            migrate(&mut conn)?;
            Ok(conn)
        };
        let conn = open().map_err(|source| MailError::Open {
            path: path.to_path_buf(),
            source,
        })?;
        for file in [
            path.to_path_buf(),
            with_suffix(path, "-wal"),
            with_suffix(path, "-shm"),
        ] {
            restrict(&file);
        }
        Ok(Mailbox {
            conn: Mutex::new(conn),
            path: path.to_path_buf(),
            changed: tokio::sync::Notify::new(),
        })
    }

    #[cfg(test)]
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn with<T>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, MailError>,
    ) -> Result<T, MailError> {
        let mut conn = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut conn)
    }

    /// A change made through this handle: anyone waiting on
    /// [`Mailbox::changed`] looks again.
    fn told_of_change(&self) {
        self.changed.notify_waiters();
    }

    /// Resolves at the next change made through this handle (create it,
    /// and `enable` it, before looking, so no change is missed between).
    pub fn changed(&self) -> tokio::sync::futures::Notified<'_> {
        self.changed.notified()
    }

    /// A change: `with_sync`, then waiters told.
    fn write<T>(
        &self,
        sync: Sync,
        f: impl FnOnce(&mut Connection) -> Result<T, MailError>,
    ) -> Result<T, MailError> {
        let result = self.with_sync(sync, f);
        self.told_of_change();
        result
    }

    /// `with`, its writes reaching the disk as `sync` says.
    fn with_sync<T>(
        &self,
        sync: Sync,
        f: impl FnOnce(&mut Connection) -> Result<T, MailError>,
    ) -> Result<T, MailError> {
        if sync == Sync::Full {
            return self.with(f);
        }
        self.with(|c| {
            c.pragma_update(None, "synchronous", "NORMAL")?;
            let result = f(c);
            c.pragma_update(None, "synchronous", "FULL")?;
            result
        })
    }

    /// Commits a new message, queued; its id.
    pub fn commit(&self, m: &NewMessage<'_>, now_ms: u64) -> Result<MessageId, MailError> {
        self.insert(m, now_ms, None)
    }

    /// Commits a new message: queued here, or outbound to the host and
    /// with the wire form `abroad` gives (made with its id).
    fn insert(
        &self,
        m: &NewMessage<'_>,
        now_ms: u64,
        abroad: Option<(&str, &WireOf<'_>)>,
    ) -> Result<MessageId, MailError> {
        let expires = now_ms.saturating_add(u64::try_from(m.ttl.as_millis()).unwrap_or(u64::MAX));
        self.write(Sync::Full, |c| {
            // Made under the lock: in one process, ids sort as they commit.
            let id = MessageId::generate();
            let envelope = (m.envelope)(&id);
            let (state, to_host, wire) = match abroad {
                Some((host, wire)) => ("outbound", Some(host), Some(wire(&id))),
                None => ("queued", None, None),
            };
            c.prepare_cached(
                "INSERT INTO messages (id, personality, runtime, sender, door, topic, envelope, \
                 created_ms, expires_ms, state, to_host, wire) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
            )?
            .execute(params![
                id.as_str(),
                m.personality,
                m.runtime,
                m.sender,
                m.door,
                m.topic,
                envelope,
                ms(now_ms),
                ms(expires),
                state,
                to_host,
                wire
            ])?;
            Ok(id)
        })
    }

    pub fn get(&self, id: &MessageId) -> Result<Option<Message>, MailError> {
        self.with(|c| {
            let row = c
                .prepare_cached(&format!("SELECT {COLUMNS} FROM messages WHERE id = ?1"))?
                .query_row(params![id.as_str()], from_row)
                .optional()?;
            row.map(finish).transpose()
        })
    }

    /// Messages not yet delivered nor dead, oldest first: all of them, or
    /// one peer's.
    pub fn waiting(&self, personality: Option<&str>) -> Result<Vec<Message>, MailError> {
        // Two statements, so that each is served by the index of waiting
        // mail (finished messages are kept for a week).
        match personality {
            Some(p) => self.select(
                MESSAGES,
                "personality = ?1 AND state IN ('queued', 'submitted')",
                params![p],
            ),
            None => self.select(
                MESSAGES_BY_STATE,
                "state IN ('queued', 'submitted')",
                params![],
            ),
        }
    }

    /// Every message of one peer (or all), oldest first, up to `limit`
    /// of the newest.
    pub fn history(
        &self,
        personality: Option<&str>,
        limit: u32,
    ) -> Result<Vec<Message>, MailError> {
        let mut rows = self.with(|c| {
            let mut stmt = c.prepare(&format!(
                "SELECT {COLUMNS} FROM messages WHERE (?1 IS NULL OR personality = ?1) \
                 ORDER BY seq DESC LIMIT ?2"
            ))?;
            let rows = stmt.query_map(params![personality, limit], from_row)?;
            rows.map(|r| finish(r?)).collect::<Result<Vec<_>, _>>()
        })?;
        rows.reverse();
        Ok(rows)
    }

    /// The messages of `from` that pass `filter`, oldest first.
    fn select(
        &self,
        from: &str,
        filter: &str,
        params: &[&dyn rusqlite::ToSql],
    ) -> Result<Vec<Message>, MailError> {
        self.with(|c| {
            let mut stmt = c.prepare_cached(&format!(
                "SELECT {COLUMNS} FROM {from} WHERE {filter} ORDER BY seq"
            ))?;
            let rows = stmt.query_map(params, from_row)?;
            rows.map(|r| finish(r?)).collect()
        })
    }

    /// The oldest message waiting for `personality`, if any.
    pub fn oldest_waiting(&self, personality: &str) -> Result<Option<Message>, MailError> {
        self.with(|c| {
            let row = c
                .prepare_cached(&format!(
                    "SELECT {COLUMNS} FROM messages \
                     WHERE personality = ?1 AND state IN ('queued', 'submitted') \
                     ORDER BY seq LIMIT 1"
                ))?
                .query_row(params![personality], from_row)
                .optional()?;
            row.map(finish).transpose()
        })
    }

    /// How many messages wait for each peer that has any.
    pub fn depths(&self) -> Result<Vec<(String, u64)>, MailError> {
        self.with(|c| {
            let mut stmt = c.prepare_cached(
                "SELECT personality, COUNT(*) FROM messages \
                 WHERE state IN ('queued', 'submitted') GROUP BY personality",
            )?;
            let rows =
                stmt.query_map([], |r| Ok((r.get(0)?, r.get::<_, i64>(1)?.max(0) as u64)))?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
    }

    /// How many messages wait for `personality`.
    pub fn depth(&self, personality: &str) -> Result<u64, MailError> {
        self.with(|c| {
            let n: i64 = c
                .prepare_cached(
                    "SELECT COUNT(*) FROM messages \
                     WHERE personality = ?1 AND state IN ('queued', 'submitted')",
                )?
                .query_row(params![personality], |r| r.get(0))?;
            Ok(n.max(0) as u64)
        })
    }

    /// Claims the queued messages `ids` for delivery to `identity` by
    /// `claimer` (a process, see [`super::claimer`]): the ones still
    /// queued, in order. They are about to be typed in: from here a crash
    /// leaves them to be checked against the runtime before any second try.
    pub fn claim(
        &self,
        ids: &[MessageId],
        identity: &str,
        claimer: &str,
        now_ms: u64,
    ) -> Result<Vec<MessageId>, MailError> {
        self.write(Sync::Full, |c| {
            let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let mut claimed = Vec::new();
            for id in ids {
                let n = tx
                    .prepare_cached(
                        "UPDATE messages SET state = 'submitted', to_identity = ?2, \
                         claimed_by = ?3, claimed_ms = ?4, attempts = attempts + 1 \
                         WHERE id = ?1 AND state = 'queued'",
                    )?
                    .execute(params![id.as_str(), identity, claimer, ms(now_ms)])?;
                if n == 1 {
                    claimed.push(id.clone());
                }
            }
            tx.commit()?;
            Ok(claimed)
        })
    }

    /// Moves `ids` from one state to another (only those in `from`).
    fn transition(
        &self,
        sync: Sync,
        ids: &[MessageId],
        from: &[MessageState],
        set: &str,
        values: &[&dyn rusqlite::ToSql],
    ) -> Result<usize, MailError> {
        let from = from
            .iter()
            .map(|s| format!("'{}'", s.as_str()))
            .collect::<Vec<_>>()
            .join(", ");
        self.write(sync, |c| {
            let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let mut n = 0;
            {
                let sql = format!("UPDATE messages SET {set} WHERE id = ?1 AND state IN ({from})");
                let mut stmt = tx.prepare_cached(&sql)?;
                for id in ids {
                    let mut all: Vec<&dyn rusqlite::ToSql> = vec![&id.0];
                    all.extend_from_slice(values);
                    n += stmt.execute(all.as_slice())?;
                }
            }
            tx.commit()?;
            Ok(n)
        })
    }

    /// Typed in, fate unknown, and nobody waiting on it any more: the
    /// next deliverer checks it first.
    pub fn release(&self, ids: &[MessageId]) -> Result<usize, MailError> {
        self.transition(
            Sync::Full,
            ids,
            &[MessageState::Submitted],
            "claimed_by = NULL",
            &[],
        )
    }

    /// `ids` reached `to`; `unconfirmed`: as far as can be told (why not).
    pub fn delivered(
        &self,
        ids: &[MessageId],
        to: &str,
        woke: bool,
        unconfirmed: Option<&str>,
        now_ms: u64,
    ) -> Result<usize, MailError> {
        self.transition(
            Sync::Full,
            ids,
            &WAITING,
            "state = 'delivered', to_identity = ?2, woke = ?3, done_ms = ?4, why = ?5, \
             claimed_by = NULL",
            &[&to, &i64::from(woke), &ms(now_ms), &unconfirmed],
        )
    }

    /// Back in the queue, nothing typed: `why` says what it waits for;
    /// the daemon tries again from `not_before_ms`.
    pub fn requeue(
        &self,
        ids: &[MessageId],
        why: &str,
        not_before_ms: u64,
    ) -> Result<usize, MailError> {
        self.transition(
            Sync::Full,
            ids,
            &WAITING,
            "state = 'queued', why = ?2, claimed_by = NULL, not_before_ms = ?3",
            &[&why, &ms(not_before_ms)],
        )
    }

    /// Queued messages not claimed this time: `why` and the next try
    /// (written lazily: a crash only loses the reason and the pause).
    pub fn wait_again(
        &self,
        ids: &[MessageId],
        why: &str,
        not_before_ms: u64,
    ) -> Result<usize, MailError> {
        self.transition(
            Sync::Lazy,
            ids,
            &[MessageState::Queued],
            "why = ?2, not_before_ms = ?3",
            &[&why, &ms(not_before_ms)],
        )
    }

    /// Gives up on `ids`: dead-lettered with `why`. Only a queued message
    /// can be: one being typed in is settled by its deliverer first.
    pub fn dead_letter(
        &self,
        ids: &[MessageId],
        why: &str,
        now_ms: u64,
    ) -> Result<usize, MailError> {
        self.transition(
            Sync::Full,
            ids,
            &[MessageState::Queued],
            "state = 'dead', why = ?2, done_ms = ?3, claimed_by = NULL",
            &[&why, &ms(now_ms)],
        )
    }

    /// A dead-lettered (or waiting) message queued again, with a new TTL.
    pub fn retry(&self, id: &MessageId, ttl: Duration, now_ms: u64) -> Result<usize, MailError> {
        let expires = now_ms.saturating_add(u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX));
        self.transition(
            Sync::Full,
            std::slice::from_ref(id),
            &[MessageState::Dead, MessageState::Queued],
            "state = 'queued', why = 'retried by the operator', expires_ms = ?2, done_ms = NULL, \
             claimed_by = NULL, not_before_ms = 0",
            &[&ms(expires)],
        )
    }

    /// Waiting messages past their TTL (queued only: a claim is in hand).
    pub fn expired(&self, now_ms: u64) -> Result<Vec<Message>, MailError> {
        self.select(
            MESSAGES_BY_STATE,
            "state = 'queued' AND expires_ms <= ?1",
            params![ms(now_ms)],
        )
    }

    /// Deletes finished messages (delivered or dead) older than `before`.
    pub fn prune(&self, before_ms: u64) -> Result<usize, MailError> {
        self.with(|c| {
            Ok(c.execute(
                "DELETE FROM messages WHERE state IN ('delivered', 'dead') AND done_ms < ?1",
                params![ms(before_ms)],
            )?)
        })
    }
}

/// A message from another host, to take in.
pub struct Incoming<'a> {
    pub id: &'a MessageId,
    pub personality: &'a str,
    pub runtime: Option<&'a str>,
    pub sender: &'a str,
    pub topic: Option<&'a str>,
    pub envelope: &'a str,
    pub created_ms: u64,
    pub expires_ms: u64,
    pub from_host: &'a str,
    /// Refused on arrival (why): kept dead, and the sender's host told.
    pub refused: Option<&'a str>,
}

/// What the host a message was sent to told of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Told<'a> {
    Waiting {
        why: &'a str,
    },
    Delivered {
        to_identity: &'a str,
        woke: bool,
        unconfirmed: Option<&'a str>,
        at_ms: u64,
    },
    Dead {
        why: &'a str,
        at_ms: u64,
    },
}

/// The fleet: mail to and from peers of other hosts.
impl Mailbox {
    /// Commits a message for a peer of `to_host`, outbound; `wire` is how
    /// it travels, made with its id.
    pub fn commit_outbound(
        &self,
        m: &NewMessage<'_>,
        to_host: &str,
        wire: &WireOf<'_>,
        now_ms: u64,
    ) -> Result<MessageId, MailError> {
        self.insert(m, now_ms, Some((to_host, wire)))
    }

    /// Messages for peers of other hosts not yet delivered nor dead there,
    /// oldest first.
    pub fn abroad(&self) -> Result<Vec<Message>, MailError> {
        self.select(
            MESSAGES_BY_STATE,
            "state IN ('outbound', 'forwarded')",
            params![],
        )
    }

    /// Messages not yet handed to the fleet, oldest first.
    pub fn outbound(&self) -> Result<Vec<Message>, MailError> {
        self.select(MESSAGES_BY_STATE, "state = 'outbound'", params![])
    }

    /// In the fleet's stream (only if nothing newer was told meanwhile).
    pub fn forwarded(&self, id: &MessageId, why: &str) -> Result<usize, MailError> {
        self.transition(
            Sync::Lazy,
            std::slice::from_ref(id),
            &[MessageState::Outbound],
            "state = 'forwarded', why = ?2",
            &[&why],
        )
    }

    /// Still outbound: why (lazily: only the reason is lost to a crash).
    pub fn outbound_waits(&self, id: &MessageId, why: &str) -> Result<usize, MailError> {
        self.transition(
            Sync::Lazy,
            std::slice::from_ref(id),
            &[MessageState::Outbound],
            "why = ?2",
            &[&why],
        )
    }

    /// Gives up on a message for another host: never handed to the
    /// fleet, or never heard of again.
    pub fn abroad_dead(&self, id: &MessageId, why: &str, now_ms: u64) -> Result<usize, MailError> {
        self.transition(
            Sync::Full,
            std::slice::from_ref(id),
            &[MessageState::Outbound, MessageState::Forwarded],
            "state = 'dead', why = ?2, done_ms = ?3",
            &[&why, &ms(now_ms)],
        )
    }

    /// What `by_host` told of a message sent from here to it; heard only
    /// from the host it was sent to, and never once it is final.
    pub fn told(&self, id: &MessageId, by_host: &str, told: &Told<'_>) -> Result<usize, MailError> {
        let (set, values): (&str, Vec<&dyn rusqlite::ToSql>) = match told {
            Told::Waiting { why } => ("state = 'forwarded', why = ?3", vec![why]),
            Told::Delivered {
                to_identity,
                woke,
                unconfirmed,
                at_ms,
            } => (
                "state = 'delivered', to_identity = ?3, woke = ?4, why = ?5, done_ms = ?6",
                vec![to_identity, woke, unconfirmed, at_ms],
            ),
            Told::Dead { why, at_ms } => {
                ("state = 'dead', why = ?3, done_ms = ?4", vec![why, at_ms])
            }
        };
        // A reason lost to a crash is told again; an outcome is not.
        let sync = match told {
            Told::Waiting { .. } => Sync::Lazy,
            _ => Sync::Full,
        };
        self.write(sync, |c| {
            let sql = format!(
                "UPDATE messages SET {set} \
                 WHERE id = ?1 AND to_host = ?2 AND state IN ('outbound', 'forwarded')"
            );
            let mut all: Vec<&dyn rusqlite::ToSql> = vec![&id.0, &by_host];
            all.extend(values);
            Ok(c.prepare_cached(&sql)?.execute(all.as_slice())?)
        })
    }

    /// Takes in a message from another host, once (by its id): whether it
    /// is new here. Its host is told what becomes of it.
    pub fn take_in(&self, m: &Incoming<'_>, now_ms: u64) -> Result<bool, MailError> {
        let (state, done) = match m.refused {
            Some(_) => ("dead", Some(ms(now_ms))),
            None => ("queued", None),
        };
        self.write(Sync::Full, |c| {
            let n = c
                .prepare_cached(
                    "INSERT OR IGNORE INTO messages (id, personality, runtime, sender, door, topic, \
                     envelope, created_ms, expires_ms, state, why, done_ms, from_host, report_due) \
                     VALUES (?1, ?2, ?3, ?4, 'fleet', ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, 1)",
                )?
                .execute(params![
                    m.id.as_str(),
                    m.personality,
                    m.runtime,
                    m.sender,
                    m.topic,
                    m.envelope,
                    ms(m.created_ms),
                    ms(m.expires_ms),
                    state,
                    m.refused,
                    done,
                    m.from_host
                ])?;
            Ok(n == 1)
        })
    }

    /// Messages from other hosts with news not yet told, oldest first.
    pub fn reports_due(&self) -> Result<Vec<Message>, MailError> {
        self.select(
            "messages INDEXED BY messages_report_due",
            "report_due = 1",
            params![],
        )
    }

    /// `m` was told as it stood; still due if it changed since.
    pub fn reported(&self, m: &Message) -> Result<usize, MailError> {
        self.with_sync(Sync::Lazy, |c| {
            Ok(c.prepare_cached(
                "UPDATE messages SET report_due = 0 \
                 WHERE id = ?1 AND state = ?2 AND why IS ?3",
            )?
            .execute(params![m.id.as_str(), m.state.as_str(), m.why])?)
        })
    }
}

/// The most topics kept per session (the oldest go first).
pub const MAX_TOPICS: usize = 16;

impl Mailbox {
    /// The topics a session has seen, oldest first.
    pub fn topics(&self, identity: &str) -> Result<Vec<String>, MailError> {
        self.with(|c| {
            let mut stmt =
                c.prepare("SELECT topic FROM topics WHERE identity = ?1 ORDER BY noted_ms, rowid")?;
            let rows = stmt.query_map(params![identity], |r| r.get(0))?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
    }

    /// Notes that a session saw `topic` (now its most recent); at most
    /// [`MAX_TOPICS`] are kept.
    pub fn note_topic(&self, identity: &str, topic: &str, now_ms: u64) -> Result<(), MailError> {
        self.with(|c| {
            let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            tx.execute(
                "INSERT INTO topics (identity, topic, noted_ms) VALUES (?1, ?2, ?3) \
                 ON CONFLICT (identity, topic) DO UPDATE SET noted_ms = excluded.noted_ms",
                params![identity, topic, ms(now_ms)],
            )?;
            tx.execute(
                "DELETE FROM topics WHERE identity = ?1 AND topic NOT IN \
                 (SELECT topic FROM topics WHERE identity = ?1 ORDER BY noted_ms DESC, rowid DESC LIMIT ?2)",
                params![identity, MAX_TOPICS as i64],
            )?;
            tx.commit()?;
            Ok(())
        })
    }

    /// A fresh session starts with no topics.
    pub fn reset_topics(&self, identity: &str) -> Result<(), MailError> {
        self.with(|c| {
            c.execute("DELETE FROM topics WHERE identity = ?1", params![identity])?;
            Ok(())
        })
    }
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// 0600, whatever the umask made it.
fn restrict(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = std::fs::symlink_metadata(path)
        && meta.is_file()
        && meta.permissions().mode() & 0o077 != 0
    {
        let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600));
    }
}
