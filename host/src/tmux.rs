//! The only code that runs tmux. Every argument is passed as its own argv
//! element — no shell ever parses peer data — and each server gets its own
//! socket, is started without any user config (`-f /dev/null`), and hosts
//! exactly one session.
//!
//! Liveness without a tmux process: a server with no sessions exits (tmux's
//! `exit-empty` default, which no config can turn off here), and we create
//! exactly one session per socket. So "the session is alive" is "the socket
//! accepts a connection": a refused connection or a missing socket file is a
//! definite death; any other outcome (including a hung server, whose socket
//! still accepts) is not a death. That costs ~10 µs instead of a ~4.5 ms
//! `tmux has-session` process.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::process::Command;

/// A tmux call that hangs longer than this is abandoned (its outcome unknown).
pub const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// The size of a new session's window.
const WIDTH: &str = "220";
const HEIGHT: &str = "50";

/// What a liveness probe found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Liveness {
    Alive,
    Dead(DeathCause),
    /// Neither provably alive nor provably dead: never reap on this.
    Unknown(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeathCause {
    /// No socket file: the server is gone.
    SocketMissing,
    /// A socket file nobody listens on: the server died.
    StaleSocket,
}

impl DeathCause {
    pub fn describe(self) -> &'static str {
        match self {
            DeathCause::SocketMissing => "server-dead (socket file missing)",
            DeathCause::StaleSocket => "server-dead (stale socket)",
        }
    }
}

/// Is the session on this socket alive? (See the module docs for why a
/// connect is a correct answer.)
pub fn probe(sock: &Path) -> Liveness {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    // In a shared socket dir (the default /tmp) another user could squat the
    // path: only a socket this user owns speaks for our session.
    match std::fs::symlink_metadata(sock) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Liveness::Dead(DeathCause::SocketMissing);
        }
        Err(e) => return Liveness::Unknown(e.to_string()),
        Ok(m) if !m.file_type().is_socket() || m.uid() != unsafe { libc::geteuid() } => {
            return Liveness::Unknown(format!(
                "{} is not a socket owned by this user",
                sock.display()
            ));
        }
        Ok(_) => {}
    }
    match connect_nonblocking(sock) {
        Ok(()) => Liveness::Alive,
        Err(e) if e.kind() == io::ErrorKind::NotFound => Liveness::Dead(DeathCause::SocketMissing),
        Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
            Liveness::Dead(DeathCause::StaleSocket)
        }
        // Someone listens but its backlog is full: a stalled server. Not
        // dead — and never worth blocking the caller for.
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
            Liveness::Unknown(format!("{} is not accepting connections", sock.display()))
        }
        Err(e) => Liveness::Unknown(e.to_string()),
    }
}

/// A non-blocking `connect()`: a stalled server whose listen queue is full
/// answers `EAGAIN` at once instead of parking the calling thread (which
/// here is a tokio worker) until it wakes up.
fn connect_nonblocking(sock: &Path) -> io::Result<()> {
    use socket2::{Domain, SockAddr, Socket, Type};
    // socket2 sets close-on-exec itself; `Type::nonblocking` is not
    // available on every Unix (macOS), so set it after creation.
    let s = Socket::new(Domain::UNIX, Type::STREAM, None)?;
    s.set_nonblocking(true)?;
    s.connect(&SockAddr::unix(sock)?)
}

#[derive(Debug, thiserror::Error)]
pub enum TmuxError {
    #[error("tmux {command} timed out after {0:?}", CALL_TIMEOUT)]
    Timeout { command: String },
    #[error("cannot run tmux: {0}")]
    Spawn(io::Error),
    #[error("tmux {command} failed: {stderr}")]
    Failed { command: String, stderr: String },
}

/// tmux splits its own argv into commands at arguments ending in `;`; an
/// argument that really ends in `;` is passed as `…\;` (tmux drops one
/// backslash there).
fn escape(arg: &str) -> String {
    match arg.strip_suffix(';') {
        Some(head) => format!("{head}\\;"),
        None => arg.to_string(),
    }
}

/// Text as it may be pasted: line breaks (`\r\n` and `\r` become `\n`) and
/// tabs survive, every other control character is dropped — an ESC could end
/// the bracketed paste early and turn the rest of a message into keystrokes.
pub fn paste_safe(text: &str) -> String {
    text.replace("\r\n", "\n")
        .replace('\r', "\n")
        .chars()
        .filter(|&c| c == '\n' || c == '\t' || !c.is_control())
        .collect()
}

#[derive(Debug, Clone)]
pub struct Tmux {
    bin: PathBuf,
}

impl Tmux {
    /// tmux as found on the configuration's `PATH`.
    pub fn for_config(cfg: &crate::config::Config) -> Tmux {
        Tmux::from_path(cfg.env.get("PATH").map(String::as_str))
    }

    /// tmux as found on `path` (the value of `PATH`), else plain `tmux`.
    pub fn from_path(path: Option<&str>) -> Tmux {
        let bin = path
            .into_iter()
            .flat_map(|p| p.split(':'))
            .filter(|d| !d.is_empty())
            .map(|d| Path::new(d).join("tmux"))
            .find(|p| p.is_file())
            .unwrap_or_else(|| PathBuf::from("tmux"));
        Tmux { bin }
    }

    /// The tmux binary in use.
    pub fn bin(&self) -> &Path {
        &self.bin
    }

    fn command(&self, sock: &Path, args: &[&str]) -> Command {
        let mut c = Command::new(&self.bin);
        c.arg("-f").arg("/dev/null").arg("-S").arg(sock);
        c.args(args.iter().map(|a| escape(a)));
        // The tmux client sends its environment to the server: pass nothing
        // (new-session sets the session's own environment explicitly).
        c.env_clear();
        c.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        c.kill_on_drop(true);
        c
    }

    async fn run(&self, c: Command, what: &str, stdin: Option<&[u8]>) -> Result<String, TmuxError> {
        self.run_output(c, what, stdin).await.map(|(out, _)| out)
    }

    /// [`Tmux::run`], with what tmux printed on stderr even on success.
    async fn run_output(
        &self,
        mut c: Command,
        what: &str,
        stdin: Option<&[u8]>,
    ) -> Result<(String, String), TmuxError> {
        if stdin.is_some() {
            c.stdin(Stdio::piped());
        }
        let work = async {
            let mut child = c.spawn().map_err(TmuxError::Spawn)?;
            if let (Some(data), Some(mut pipe)) = (stdin, child.stdin.take()) {
                pipe.write_all(data).await.map_err(TmuxError::Spawn)?;
                drop(pipe);
            }
            child.wait_with_output().await.map_err(TmuxError::Spawn)
        };
        let out = tokio::time::timeout(CALL_TIMEOUT, work)
            .await
            .map_err(|_| TmuxError::Timeout {
                command: what.to_string(),
            })??;
        let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
        if out.status.success() {
            Ok((String::from_utf8_lossy(&out.stdout).into_owned(), stderr))
        } else {
            Err(TmuxError::Failed {
                command: what.to_string(),
                stderr: if stderr.is_empty() {
                    format!("{}", out.status)
                } else {
                    stderr
                },
            })
        }
    }

    async fn tmux(&self, sock: &Path, args: &[&str]) -> Result<String, TmuxError> {
        self.run(self.command(sock, args), args[0], None).await
    }

    /// Starts a server on `sock` with one detached session running `argv`
    /// (executed directly: with more than one argument tmux does not use a
    /// shell) in `cwd`, with exactly `env` as its environment. Nothing here
    /// goes through tmux's format expansion either.
    pub async fn new_session(
        &self,
        sock: &Path,
        identity: &str,
        cwd: &Path,
        argv: &[String],
        env: &BTreeMap<String, String>,
        pipe: Option<&str>,
    ) -> Result<(), TmuxError> {
        // No `-c`: tmux expands formats in it (`#(cmd)` would run a shell).
        // The session starts in the client's working directory instead.
        let mut args = vec![
            "new-session",
            "-d",
            "-s",
            identity,
            "-x",
            WIDTH,
            "-y",
            HEIGHT,
            "--",
        ];
        // A single argument would be run through `sh -c`: go through env(1)
        // instead, which execs it directly.
        if argv.len() == 1 {
            args.extend(["/usr/bin/env", "--"]);
        }
        args.extend(argv.iter().map(String::as_str));
        // The pane's output goes to `pipe` from its first byte: in the same
        // client call, so nothing is printed before the pipe is there.
        let pipe_args: Vec<&str>;
        let mut c = match pipe {
            Some(cmd) => {
                pipe_args = vec!["pipe-pane", "-o", "-t", identity, cmd];
                self.sequence(sock, &[&args, &pipe_args])
            }
            None => self.command(sock, &args),
        };
        c.env_clear().envs(env).current_dir(cwd);
        let (_, stderr) = self.run_output(c, "new-session", None).await?;
        // A server that cannot create its socket (a socket dir it cannot
        // write) says so on stderr, yet the client exits 0: report tmux's
        // words, not a session that "vanished".
        if !stderr.is_empty() && !sock.exists() {
            return Err(TmuxError::Failed {
                command: "new-session".into(),
                stderr,
            });
        }
        Ok(())
    }

    pub async fn kill_session(&self, sock: &Path, identity: &str) -> Result<(), TmuxError> {
        self.tmux(sock, &["kill-session", "-t", identity])
            .await
            .map(drop)
    }

    pub async fn kill_server(&self, sock: &Path) -> Result<(), TmuxError> {
        self.tmux(sock, &["kill-server"]).await.map(drop)
    }

    pub async fn list_sessions(&self, sock: &Path) -> Result<Vec<String>, TmuxError> {
        let out = self
            .tmux(sock, &["list-sessions", "-F", "#{session_name}"])
            .await?;
        Ok(out
            .lines()
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect())
    }

    /// The visible pane as plain text.
    pub async fn capture_pane(&self, sock: &Path, identity: &str) -> Result<String, TmuxError> {
        self.tmux(sock, &["capture-pane", "-p", "-t", identity])
            .await
    }

    /// One `send-keys` call. A leading `-l` (literal) is kept as a flag; every
    /// other key comes after `--`, so no key can be read as an option.
    pub async fn send_keys(
        &self,
        sock: &Path,
        identity: &str,
        keys: &[String],
    ) -> Result<(), TmuxError> {
        let mut args = vec!["send-keys", "-t", identity];
        let keys = match keys.split_first() {
            Some((first, rest)) if first == "-l" => {
                args.push("-l");
                rest
            }
            _ => keys,
        };
        args.push("--");
        args.extend(keys.iter().map(String::as_str));
        self.tmux(sock, &args).await.map(drop)
    }

    /// Runs several tmux commands in one client call (`a ; b ; c`): one
    /// process instead of several, and they run in order with nothing in
    /// between. tmux stops at the first command that fails.
    fn sequence(&self, sock: &Path, commands: &[&[&str]]) -> Command {
        let mut args: Vec<String> = Vec::new();
        for (i, cmd) in commands.iter().enumerate() {
            if i > 0 {
                args.push(";".into());
            }
            args.extend(cmd.iter().map(|a| escape(a)));
        }
        let mut c = Command::new(&self.bin);
        c.arg("-f").arg("/dev/null").arg("-S").arg(sock).args(args);
        c.env_clear();
        c.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        c.kill_on_drop(true);
        c
    }

    /// Pastes `text` into the pane through a tmux buffer (the text travels
    /// on stdin, never on a command line), loaded and pasted in one client
    /// call. Bracketed (`-p`) so a TUI takes it as one paste; `-r` keeps LF
    /// line endings for routers.
    pub async fn paste(
        &self,
        sock: &Path,
        identity: &str,
        text: &str,
        keep_lf: bool,
    ) -> Result<(), TmuxError> {
        static PASTES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let buffer = format!(
            "iapeer-{}-{}",
            std::process::id(),
            PASTES.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        );
        let mut paste = vec!["paste-buffer", "-p", "-d", "-b", &buffer, "-t", identity];
        if keep_lf {
            paste.insert(1, "-r");
        }
        let load: &[&str] = &["load-buffer", "-b", &buffer, "-"];
        let text = paste_safe(text);
        let pasted = self
            .run(
                self.sequence(sock, &[load, &paste]),
                "paste-buffer",
                Some(text.as_bytes()),
            )
            .await;
        if pasted.is_err() {
            let _ = self.tmux(sock, &["delete-buffer", "-b", &buffer]).await;
        }
        pasted.map(drop)
    }

    /// The blocking command that attaches the terminal to the session.
    pub fn attach_command(&self, sock: &Path, identity: &str) -> std::process::Command {
        let mut c = std::process::Command::new(&self.bin);
        c.arg("-S")
            .arg(sock)
            .args(["attach-session", "-t", identity]);
        c.env_remove("TMUX").env_remove("TMUX_PANE");
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_trailing_semicolons_only() {
        assert_eq!(escape("a;"), "a\\;");
        assert_eq!(escape("b \\;"), "b \\\\;");
        assert_eq!(escape(";"), "\\;");
        assert_eq!(escape(";x"), ";x");
        assert_eq!(escape("plain"), "plain");
    }

    #[test]
    fn pasted_text_cannot_carry_escapes() {
        assert_eq!(
            paste_safe("a\u{1b}[201~ INJECTED\u{1b}[Z\r\nb\tc\u{7}"),
            "a[201~ INJECTED[Z\nb\tc"
        );
        assert_eq!(paste_safe("x\ry"), "x\ny");
    }

    #[test]
    fn a_stalled_server_is_unknown_and_never_blocks() {
        let tmp = tempfile::tempdir().unwrap();
        let sock = tmp.path().join("stalled.sock");
        // A listener that never accepts: fill its queue.
        let _listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
        let mut held = Vec::new();
        loop {
            use socket2::{Domain, SockAddr, Socket, Type};
            let s = Socket::new(Domain::UNIX, Type::STREAM, None).unwrap();
            s.set_nonblocking(true).unwrap();
            match s.connect(&SockAddr::unix(&sock).unwrap()) {
                Ok(()) => held.push(s),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => panic!("{e}"),
            }
            assert!(held.len() < 100_000, "the backlog never filled");
        }
        // A blocking connect would hang here for good.
        assert!(matches!(probe(&sock), Liveness::Unknown(_)));
    }

    #[test]
    fn probe_distinguishes_missing_and_stale_sockets() {
        let tmp = tempfile::tempdir().unwrap();
        let sock = tmp.path().join("s.sock");
        assert_eq!(probe(&sock), Liveness::Dead(DeathCause::SocketMissing));
        let listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
        assert_eq!(probe(&sock), Liveness::Alive);
        drop(listener);
        assert_eq!(probe(&sock), Liveness::Dead(DeathCause::StaleSocket));
        // Not a socket (or a symlink to one): never taken for our session.
        let file = tmp.path().join("f.sock");
        std::fs::write(&file, "").unwrap();
        assert!(matches!(probe(&file), Liveness::Unknown(_)));
        let link = tmp.path().join("l.sock");
        std::os::unix::fs::symlink(&sock, &link).unwrap();
        assert!(matches!(probe(&link), Liveness::Unknown(_)));
    }
}
