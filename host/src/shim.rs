//! The session shim: the process tmux starts in a session's pane. It runs
//! the runtime as its child (same terminal, same process group) and, when
//! the runtime ends, writes down how — exit status or signal, and the
//! pane's last lines (captured while the pane still exists) — to
//! `<state>/<id>.exit` and one `ev=session-exit` line in `exits.log`.
//!
//! Why a shim rather than tmux's `remain-on-exit` + `pane-died` hook: the
//! hook's command runs through `sh -c` and `remain-on-exit` keeps dead panes
//! alive, which would break the one-connect liveness check (every tick
//! would need a tmux process per session to ask whether its pane died).
//! The shim costs nothing until the runtime exits, needs no shell, and the
//! session still ends with its process, so a dead socket stays a death.
//!
//! Invoked as `<iapeer|iapeerd> __session <exit-file> <exits-log> <tmux>
//! <socket> <identity> -- <argv…>` (argv passed straight through, never a
//! shell string).

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use crate::clock::{Clock, SystemClock};
use crate::deaths::{ExitRecord, TAIL_CHARS};
use crate::logfile::{self, Rotation};
use crate::{events, fsutil};

/// The first argument that turns either binary into the shim.
pub const ARG: &str = "__session";

/// The argv tmux runs for a session: the shim around the runtime's argv.
pub fn wrap(
    shim: &Path,
    exit_file: &Path,
    exits_log: &Path,
    tmux: &Path,
    socket: &Path,
    identity: &str,
    argv: &[String],
) -> Vec<String> {
    let mut out = vec![
        shim.to_string_lossy().into_owned(),
        ARG.to_string(),
        exit_file.to_string_lossy().into_owned(),
        exits_log.to_string_lossy().into_owned(),
        tmux.to_string_lossy().into_owned(),
        socket.to_string_lossy().into_owned(),
        identity.to_string(),
        "--".to_string(),
    ];
    out.extend(argv.iter().cloned());
    out
}

struct Args {
    exit_file: PathBuf,
    exits_log: PathBuf,
    tmux: PathBuf,
    socket: PathBuf,
    identity: String,
    argv: Vec<String>,
}

fn parse(args: &[String]) -> Option<Args> {
    let (head, argv) = args.split_at(args.iter().position(|a| a == "--")?);
    let [exit_file, exits_log, tmux, socket, identity] = head else {
        return None;
    };
    let argv = argv[1..].to_vec();
    (!argv.is_empty()).then(|| Args {
        exit_file: exit_file.into(),
        exits_log: exits_log.into(),
        tmux: tmux.into(),
        socket: socket.into(),
        identity: identity.clone(),
        argv,
    })
}

/// When this process was started as a session shim, runs it to the end.
pub fn dispatch() -> Option<ExitCode> {
    // `args_os` first: `env::args` panics on an argument that is not
    // UTF-8, and this runs before the command line is parsed.
    if std::env::args_os().nth(1).as_deref() != Some(std::ffi::OsStr::new(ARG)) {
        return None;
    }
    let args: Vec<String> = std::env::args_os()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    Some(main(&args[2..]))
}

/// The shim of this process: its own executable, as it was when first
/// asked (call this at startup). Asked again after the binary was replaced
/// on disk (an upgrade), Linux would answer `… (deleted)`: the path that
/// was resolved first names the new binary, which is a shim as well.
pub fn current() -> Option<PathBuf> {
    static EXE: std::sync::OnceLock<Option<PathBuf>> = std::sync::OnceLock::new();
    EXE.get_or_init(|| {
        let exe = std::env::current_exe().ok()?;
        let text = exe.to_string_lossy();
        Some(match text.strip_suffix(" (deleted)") {
            Some(live) => PathBuf::from(live),
            None => exe,
        })
    })
    .clone()
}

/// Runs the shim (`args` are those after `__session`).
pub fn main(args: &[String]) -> ExitCode {
    let Some(a) = parse(args) else {
        crate::errln!(
            "iapeer {ARG}: expected <exit-file> <exits-log> <tmux> <socket> <identity> -- <argv…>"
        );
        return ExitCode::from(2);
    };
    let mut command = Command::new(&a.argv[0]);
    command
        .args(&a.argv[1..])
        .env_remove("TMUX")
        .env_remove("TMUX_PANE")
        .stdin(Stdio::inherit())
        .stdout(Stdio::inherit())
        .stderr(Stdio::inherit());
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::process::CommandExt;
        // SAFETY: prctl is async-signal-safe; nothing else runs between
        // fork and exec. If the shim is killed outright, the runtime goes
        // with it instead of running on unsupervised.
        let shim = unsafe { libc::getpid() };
        unsafe {
            command.pre_exec(move || {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                // The shim died before the prctl: nobody would record us.
                if libc::getppid() != shim {
                    return Err(std::io::Error::other("the session shim is gone"));
                }
                Ok(())
            });
        }
    }
    // Whatever the runtime leaves behind when it ends (a background job, a
    // grandchild that ignores the hangup) is re-parented to us, so the
    // session can end it: nothing outlives its session.
    #[cfg(target_os = "linux")]
    // SAFETY: a plain prctl on this process.
    unsafe {
        libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1);
    }
    // Registered before the spawn, so a hangup in between is not lost.
    let termination = signal_hook::iterator::Signals::new([
        signal_hook::consts::SIGHUP,
        signal_hook::consts::SIGTERM,
    ]);
    let mut child = match command.spawn() {
        Ok(c) => c,
        Err(e) => {
            // The pane shows it, and the record says it.
            let why = format!("cannot start {}: {e}", a.argv[0]);
            crate::errln!("{why}");
            record(&a, Some(why), Some(127), None, false);
            return ExitCode::from(127);
        }
    };
    // A hangup (the pane closed: the session was killed) is delivered to
    // us, the session leader, only: pass it on, and make sure the runtime
    // ends (SIGKILL after a grace) so a killed session leaves nothing
    // running. Ctrl-C typed into the pane is the runtime's business.
    let hangup = Arc::new(AtomicBool::new(false));
    let reaped = Arc::new(Mutex::new(false));
    if let Ok(signals) = termination {
        forward_termination(signals, child.id(), hangup.clone(), reaped.clone());
    }
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGQUIT] {
        let _ = signal_hook::flag::register(sig, Arc::new(AtomicBool::new(false)));
    }
    // Wait for the exit without reaping (the pid stays ours meanwhile),
    // then stop the forwarder from signalling it, then reap.
    wait_for_exit(child.id());
    *reaped.lock().unwrap_or_else(PoisonError::into_inner) = true;
    let status = child.wait();
    // The runtime may see its input end (and exit 0) before the hangup
    // signal is handled here: a terminal that was hung up says so itself.
    let hung_up = hangup.load(Ordering::SeqCst) || terminal_hung_up();
    let (code, signal) = match &status {
        Ok(s) => {
            use std::os::unix::process::ExitStatusExt;
            (s.code(), s.signal())
        }
        Err(_) => (None, None),
    };
    // A killed session has no pane to read any more.
    let tail = if hung_up { None } else { capture_tail(&a) };
    record(&a, tail, code, signal, hung_up);
    end_leftovers();
    match code {
        Some(c) => ExitCode::from(c.clamp(0, 255) as u8),
        None => ExitCode::from(1),
    }
}

/// How long what the runtime left behind may take to end on SIGTERM.
const LEFTOVER_GRACE: std::time::Duration = std::time::Duration::from_secs(1);

/// Ends the processes the runtime left behind (re-parented to us, the
/// subreaper): SIGTERM, a short grace, SIGKILL; all reaped. Only our own
/// children are signalled, and only before we reap them, so a pid is never
/// one reused by someone else.
fn end_leftovers() {
    let reap = || {
        // SAFETY: reaping our own exited children.
        while unsafe { libc::waitpid(-1, std::ptr::null_mut(), libc::WNOHANG) } > 0 {}
    };
    let signal_all = |sig: libc::c_int| {
        let kids = children();
        for &pid in &kids {
            // SAFETY: our child, not reaped yet (reaping is ours alone).
            unsafe { libc::kill(pid, sig) };
        }
        !kids.is_empty()
    };
    reap();
    if !signal_all(libc::SIGTERM) {
        return;
    }
    let deadline = std::time::Instant::now() + LEFTOVER_GRACE;
    while std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
        reap();
        if children().is_empty() {
            return;
        }
    }
    // Bounded: something that forks faster than it dies is not worth
    // keeping the pane (and its record) open for.
    for _ in 0..500 {
        if !signal_all(libc::SIGKILL) {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
        reap();
    }
}

/// Our live (not yet reaped) children, from `/proc` (Linux; elsewhere the
/// runtime's leftovers are not ours to see).
fn children() -> Vec<libc::pid_t> {
    let me = std::process::id() as libc::pid_t;
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<libc::pid_t>().ok())
        .filter(|&pid| {
            // `pid (comm) state ppid …`; comm may hold spaces and parens.
            std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
                stat.rsplit_once(')')
                    .and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse().ok())
                    == Some(me)
            })
        })
        .collect()
}

/// Is our terminal (the pane) gone? A hung-up tty fails every ioctl with
/// EIO, from the moment of the hangup on.
fn terminal_hung_up() -> bool {
    // SAFETY: tcgetattr only writes the termios it is given.
    let mut t: libc::termios = unsafe { std::mem::zeroed() };
    let failed = unsafe { libc::tcgetattr(libc::STDIN_FILENO, &mut t) } != 0;
    failed && std::io::Error::last_os_error().raw_os_error() == Some(libc::EIO)
}

/// How long a runtime may take to end after its session was hung up.
const HANGUP_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

/// On SIGHUP or SIGTERM: note it, pass it to the runtime, and SIGKILL the
/// runtime if it is still there after the grace. `reaped` (held while
/// signalling) says the pid may no longer be the runtime's.
fn forward_termination(
    mut signals: signal_hook::iterator::Signals,
    child: u32,
    hangup: Arc<AtomicBool>,
    reaped: Arc<Mutex<bool>>,
) {
    let pid = child as libc::pid_t;
    let signal_unless_reaped = move |sig: libc::c_int| {
        let reaped = reaped.lock().unwrap_or_else(PoisonError::into_inner);
        if !*reaped {
            // SAFETY: not reaped yet, so the pid is still our child's.
            unsafe { libc::kill(pid, sig) };
        }
    };
    std::thread::spawn(move || {
        if let Some(sig) = signals.forever().next() {
            hangup.store(true, Ordering::SeqCst);
            signal_unless_reaped(sig);
            std::thread::sleep(HANGUP_GRACE);
            signal_unless_reaped(libc::SIGKILL);
        }
    });
}

/// Blocks until the child has exited, leaving it unreaped (a zombie keeps
/// its pid from being reused).
fn wait_for_exit(child: u32) {
    loop {
        // SAFETY: siginfo is plain data that waitid fills in.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        let rc = unsafe {
            libc::waitid(
                libc::P_PID,
                child as libc::id_t,
                &mut info,
                libc::WEXITED | libc::WNOWAIT,
            )
        };
        if rc == 0 || std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
            return;
        }
    }
}

/// The pane's last lines, read through tmux while the pane still exists.
fn capture_tail(a: &Args) -> Option<String> {
    let out = Command::new(&a.tmux)
        .arg("-f")
        .arg("/dev/null")
        .arg("-S")
        .arg(&a.socket)
        .args(["capture-pane", "-p", "-J", "-t", &a.identity])
        .env_clear()
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    Some(last_lines(&text))
}

/// The last non-empty lines of a pane, flattened into one line of at most
/// `TAIL_CHARS` (the end kept: the last words matter most).
pub fn last_lines(pane: &str) -> String {
    let joined = crate::deaths::flat_tail(pane, 6);
    let chars: Vec<char> = joined.chars().collect();
    chars[chars.len().saturating_sub(TAIL_CHARS)..]
        .iter()
        .filter(|c| !c.is_control())
        .collect()
}

fn record(a: &Args, tail: Option<String>, status: Option<i32>, signal: Option<i32>, hangup: bool) {
    let program = Path::new(&a.argv[0])
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let rec = ExitRecord {
        at: SystemClock.now_ms(),
        program,
        status,
        signal,
        hangup,
        tail: tail.unwrap_or_default(),
    };
    if let Ok(json) = serde_json::to_vec(&rec) {
        let _ = fsutil::write_atomic_lazy(&a.exit_file, &json);
    }
    let status = status.map(|s| s.to_string()).unwrap_or_default();
    let signal = signal.map(|s| s.to_string()).unwrap_or_default();
    let mut fields = vec![
        ("identity", a.identity.as_str()),
        ("dead_status", status.as_str()),
        ("dead_signal", signal.as_str()),
    ];
    if hangup {
        fields.push(("hangup", "true"));
    }
    fields.push(("tail", rec.tail.as_str()));
    let line = events::line("session-exit", &fields);
    let _ = logfile::append(&a.exits_log, line.as_bytes(), Rotation::default());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn args_round_trip() {
        let argv = vec!["/bin/claude".to_string(), "--x".into(), "a b;c".into()];
        let wrapped = wrap(
            Path::new("/bin/iapeer"),
            Path::new("/s/claude-bob.exit"),
            Path::new("/l/exits.log"),
            Path::new("/usr/bin/tmux"),
            Path::new("/k/tmux-iap-claude-bob.sock"),
            "claude-bob",
            &argv,
        );
        assert_eq!(wrapped[1], ARG);
        let a = parse(&wrapped[2..]).unwrap();
        assert_eq!(a.argv, argv);
        assert_eq!(a.identity, "claude-bob");
        assert_eq!(a.exit_file, Path::new("/s/claude-bob.exit"));
        assert!(parse(&["x".into(), "--".into()]).is_none());
    }

    #[test]
    fn tails_keep_the_end() {
        assert_eq!(last_lines("\n a  b \n\n c\n"), "a b ⏎ c");
        let long = format!("{}END", "x".repeat(2000));
        let t = last_lines(&long);
        assert!(t.ends_with("END") && t.chars().count() == TAIL_CHARS);
    }
}
