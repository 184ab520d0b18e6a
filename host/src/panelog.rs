//! Pane logs: everything a session's terminal shows, appended to
//! `<root>/logs/iapeer/panes/<identity>.log` (size-capped, rotated), for
//! `iapeer logs` and for finding out afterwards what a peer did.
//!
//! tmux's `pipe-pane` runs its command through `sh -c` (after expanding
//! `#` formats), so the command is built only from host paths, each
//! shell-quoted and `#`-escaped, plus this program's own arguments — no
//! peer-controlled text. The writer is this program again
//! (`__pane-log <file> <max-bytes> <keep>`): it keeps the file open and
//! rotates it itself.

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::config::Config;
use crate::logfile::Rotation;
use crate::names::Identity;

/// The first argument that turns either binary into the pane-log writer.
pub const ARG: &str = "__pane-log";

pub fn path(cfg: &Config, id: &Identity) -> PathBuf {
    cfg.log_dir.join("panes").join(format!("{id}.log"))
}

/// `'…'` for `sh`: a `'` inside becomes `'\''`.
fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// The `pipe-pane` command for a session's log: `exec <exe> __pane-log
/// <file> <max> <keep>`, quoted for `sh` and escaped for tmux formats.
pub fn pipe_command(exe: &Path, file: &Path, rotation: Rotation) -> String {
    let cmd = format!(
        "exec {} {ARG} {} {} {}",
        shell_quote(&exe.to_string_lossy()),
        shell_quote(&file.to_string_lossy()),
        rotation.max_bytes,
        rotation.keep
    );
    cmd.replace('#', "##")
}

/// When this process was started as a pane-log writer, runs it to the end
/// (end of input: the pane closed).
pub fn dispatch() -> Option<ExitCode> {
    // Not `env::args`: it panics on an argument that is not UTF-8.
    if std::env::args_os().nth(1).as_deref() != Some(std::ffi::OsStr::new(ARG)) {
        return None;
    }
    let args: Vec<String> = std::env::args_os()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let (Some(file), Some(max), Some(keep)) = (args.get(2), args.get(3), args.get(4)) else {
        crate::errln!("iapeer {ARG}: expected <file> <max-bytes> <keep>");
        return Some(ExitCode::from(2));
    };
    let rotation = Rotation {
        max_bytes: max.parse().unwrap_or(Rotation::default().max_bytes),
        keep: keep.parse().unwrap_or(Rotation::default().keep),
    };
    Some(
        match write_all(io::stdin().lock(), Path::new(file), rotation) {
            Ok(()) => ExitCode::SUCCESS,
            Err(_) => ExitCode::from(1),
        },
    )
}

fn open(file: &Path) -> io::Result<(File, u64)> {
    let f = crate::logfile::open_append(file)?;
    let size = f.metadata()?.len();
    Ok((f, size))
}

/// Copies `input` into `file`, rotating at the bound.
fn write_all(mut input: impl Read, file: &Path, rotation: Rotation) -> io::Result<()> {
    let (mut out, mut size) = open(file)?;
    let mut buf = vec![0u8; 64 << 10];
    loop {
        let n = match input.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if size >= rotation.max_bytes {
            drop(out);
            crate::logfile::rotate(file, rotation)?;
            (out, size) = open(file)?;
        }
        out.write_all(&buf[..n])?;
        size += n as u64;
    }
}

/// How far back [`tail`] reads a pane log.
const TAIL_READ_BYTES: u64 = 256 << 10;

/// The last `max_lines` lines of a runtime's pane log as readable text
/// (escape sequences stripped), for the panel and the dashboard.
pub fn tail(cfg: &Config, id: &Identity, max_lines: usize) -> io::Result<Vec<String>> {
    let current = path(cfg, id);
    let mut lines = tail_of(&current, max_lines)?;
    // Just after a rotation the current log is short: the rest of the
    // screenful is at the end of the one before.
    if lines.len() < max_lines
        && let Ok(older) = tail_of(
            &crate::logfile::numbered(&current, 1),
            max_lines - lines.len(),
        )
    {
        lines.splice(0..0, older);
    }
    Ok(lines)
}

fn tail_of(log: &Path, max_lines: usize) -> io::Result<Vec<String>> {
    use std::io::{Seek, SeekFrom};
    let mut file = crate::fsutil::open_state_for_read(log)?;
    let len = file.metadata()?.len();
    let start = len.saturating_sub(TAIL_READ_BYTES);
    file.seek(SeekFrom::Start(start))?;
    let mut bytes = Vec::new();
    file.take(TAIL_READ_BYTES).read_to_end(&mut bytes)?;
    let text = crate::term::strip_terminal(&String::from_utf8_lossy(&bytes));
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    if start > 0 && lines.len() > 1 {
        lines.remove(0); // cut mid-line
    }
    let keep = lines.len().saturating_sub(max_lines);
    Ok(lines.split_off(keep))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pipe_command_quotes_and_escapes() {
        let cmd = pipe_command(
            Path::new("/opt/it's #1/iapeer"),
            Path::new("/r/logs/claude-bob.log"),
            Rotation {
                max_bytes: 100,
                keep: 2,
            },
        );
        assert_eq!(
            cmd,
            r"exec '/opt/it'\''s ##1/iapeer' __pane-log '/r/logs/claude-bob.log' 100 2"
        );
    }

    /// Just after a rotation the tail is filled from the log before.
    #[test]
    fn the_tail_reaches_into_the_rotated_log() {
        let tmp = tempfile::tempdir().unwrap();
        let mut env = crate::config::Env::new();
        env.insert("HOME".into(), tmp.path().to_string_lossy().into_owned());
        env.insert(
            "IAPEER_ROOT".into(),
            tmp.path().join("r").to_string_lossy().into_owned(),
        );
        let cfg = Config::new(env, &Default::default()).unwrap();
        let id = Identity::parse("claude-bob").unwrap();
        let current = path(&cfg, &id);
        std::fs::create_dir_all(current.parent().unwrap()).unwrap();
        std::fs::write(crate::logfile::numbered(&current, 1), "a1\na2\na3\n").unwrap();
        std::fs::write(&current, "b1\nb2\n").unwrap();
        assert_eq!(tail(&cfg, &id, 4).unwrap(), ["a2", "a3", "b1", "b2"]);
        assert_eq!(tail(&cfg, &id, 2).unwrap(), ["b1", "b2"]);
    }

    #[test]
    fn the_writer_rotates() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("p/x.log");
        let rotation = Rotation {
            max_bytes: 10,
            keep: 1,
        };
        write_all(&b"0123456789abc"[..], &file, rotation).unwrap();
        write_all(&b"def"[..], &file, rotation).unwrap();
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "def");
        let rotated = crate::logfile::numbered(&file, 1);
        assert_eq!(std::fs::read_to_string(rotated).unwrap(), "0123456789abc");
    }
}
