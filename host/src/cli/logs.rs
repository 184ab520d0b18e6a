//! `iapeer logs PEER [RUNTIME] [-n N] [--follow] [--raw]`: what a peer's
//! terminal showed, from its pane log. Escape sequences are stripped unless
//! `--raw`.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};

use crate::config::Config;
use crate::names::Identity;
use crate::panelog;
use crate::registry;

/// How far back the first screenful is read.
const TAIL_BYTES: u64 = 1 << 20;

pub struct LogsArgs<'a> {
    pub peer: &'a str,
    pub runtime: Option<&'a str>,
    pub lines: usize,
    pub follow: bool,
    pub raw: bool,
}

/// The log of the named runtime, else the one written last, else the default.
fn log_path(cfg: &Config, a: &LogsArgs<'_>) -> anyhow::Result<(Identity, PathBuf)> {
    let reg = registry::read_registry(&cfg.registry_path())?;
    let peer = reg
        .find(a.peer)
        .with_context(|| format!("peer {:?} is not registered", a.peer))?;
    let id = crate::lifecycle::log_identity(cfg, peer, a.runtime)?;
    let path = panelog::path(cfg, &id);
    Ok((id, path))
}

fn render(bytes: &[u8], raw: bool) -> String {
    let text = String::from_utf8_lossy(bytes);
    if raw {
        text.into_owned()
    } else {
        // What stripping leaves (a lone BEL, a stray C1) still must not
        // reach the terminal raw.
        crate::term::escape_controls(&crate::term::strip_terminal(&text), true).into_owned()
    }
}

pub fn logs(cfg: &Config, a: LogsArgs<'_>) -> anyhow::Result<i32> {
    let (id, path) = log_path(cfg, &a)?;
    let mut file = match crate::fsutil::open_state_for_read(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!(
            "{}: no pane log for {id} yet (at {})",
            a.peer,
            path.display()
        ),
        Err(e) => bail!("{}: cannot read the pane log of {id}: {e}", a.peer),
    };
    let len = file.metadata()?.len();
    let start = len.saturating_sub(TAIL_BYTES);
    file.seek(SeekFrom::Start(start))?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)?;
    let text = render(&bytes, a.raw);
    let lines: Vec<&str> = text.lines().collect();
    let mut out = std::io::stdout().lock();
    for l in &lines[lines.len().saturating_sub(a.lines)..] {
        writeln!(out, "{l}").map_err(stdout_error)?;
    }
    out.flush().map_err(stdout_error)?;
    if !a.follow {
        return Ok(0);
    }
    // Follow: new bytes as they come, across rotation (a new inode), a
    // whole line at a time so no escape sequence or UTF-8 character is cut
    // in two.
    let mut inode = file.metadata()?.ino();
    let mut offset = len;
    let mut pending = Vec::new();
    let mut before = 0;
    loop {
        std::thread::sleep(Duration::from_millis(200));
        let Ok(meta) = std::fs::metadata(&path) else {
            continue;
        };
        let rotated = meta.ino() != inode || meta.len() < offset;
        // What the writer put in the old file after our last look.
        read_from(&mut file, offset, &mut pending)?;
        if rotated {
            inode = meta.ino();
            file = crate::fsutil::open_state_for_read(&path)?;
            read_from(&mut file, 0, &mut pending)?;
        }
        offset = file.stream_position()?;
        // Whole lines at once; a TUI that redraws in place (cursor moves,
        // no newline) is shown once it pauses, cut before any escape
        // sequence or character that may still be incomplete.
        let grew = pending.len() > before;
        let end = match pending.iter().rposition(|&b| b == b'\n') {
            Some(newline) => newline + 1,
            None if !grew || pending.len() > 1 << 20 => safe_cut(&pending),
            None => 0,
        };
        if end > 0 {
            let shown: Vec<u8> = pending.drain(..end).collect();
            out.write_all(render(&shown, a.raw).as_bytes())
                .and_then(|()| out.flush())
                .map_err(stdout_error)?;
        }
        before = pending.len();
    }
}

/// A failed write to stdout: the reader going away ends the command
/// quietly (see `cli::finish`); any other failure is said as such.
fn stdout_error(e: std::io::Error) -> anyhow::Error {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        anyhow::Error::new(crate::term::StdoutClosed)
    } else {
        anyhow::Error::new(e).context("cannot write the output")
    }
}

/// How much of `bytes` can be shown without cutting an escape sequence or
/// a UTF-8 character in two.
fn safe_cut(bytes: &[u8]) -> usize {
    // No escape sequence we strip is longer than this.
    const LONGEST_ESCAPE: usize = 32;
    let mut end = bytes.len();
    if let Some(esc) = bytes.iter().rposition(|&b| b == 0x1b)
        && end - esc < LONGEST_ESCAPE
    {
        end = esc;
    }
    match std::str::from_utf8(&bytes[..end]) {
        Err(e) if e.error_len().is_none() => e.valid_up_to(),
        _ => end,
    }
}

/// Appends what `file` holds from `offset` on to `into`.
fn read_from(file: &mut File, offset: u64, into: &mut Vec<u8>) -> std::io::Result<()> {
    file.seek(SeekFrom::Start(offset))?;
    file.read_to_end(into)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::safe_cut;

    #[test]
    fn a_pause_shows_what_is_whole() {
        assert_eq!(safe_cut(b"spinner done"), 12);
        assert_eq!(
            safe_cut(b"abc\x1b[5;1"),
            3,
            "an escape still arriving waits"
        );
        assert_eq!(safe_cut("ab\u{e9}".as_bytes()), 4);
        assert_eq!(
            safe_cut(&"ab\u{e9}".as_bytes()[..3]),
            2,
            "half a character waits"
        );
    }
}
