//! The system prompt of a doctrine peer, written to
//! `<state>/<identity>.system-prompt.md` before each launch. A peer is a
//! doctrine peer when `<cwd>/.iapeer/IAPEER.md` exists; anyone else
//! launches bare.
//!
//! Layout (sections joined by one blank line, each without trailing
//! newlines, the file ending in exactly one newline):
//! 1. a YAML block of identity facts;
//! 2. the doctrine: `<root>/IAPEER.md`, then `<cwd>/.iapeer/IAPEER.md`;
//! 3. `## Known peers` from the registry;
//! 4. every other `*.md` of `<root>/` and `<cwd>/.iapeer/` (by name, the
//!    global half first), then the same for their `fragments/` dirs.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use crate::fsutil;
use crate::registry::PeerRecord;

/// Facts about the host, gathered once per launch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SystemFacts {
    pub platform: String,
    pub os_version: String,
    pub user: String,
    pub hostname: String,
    /// Local date, `YYYY-MM-DD`.
    pub today: String,
}

impl SystemFacts {
    pub fn gather(env: &crate::config::Env) -> SystemFacts {
        let platform = match std::env::consts::OS {
            "macos" => "darwin".to_string(),
            other => other.to_string(),
        };
        let os_version = if cfg!(target_os = "macos") {
            std::process::Command::new("sw_vers")
                .arg("-productVersion")
                .output()
                .ok()
                .filter(|o| o.status.success())
                .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
                .filter(|v| !v.is_empty())
        } else {
            None
        };
        let os_version = os_version.or_else(|| {
            fs::read_to_string("/etc/os-release").ok().and_then(|t| {
                t.lines().find_map(|l| {
                    let v = l.strip_prefix("VERSION_ID=")?;
                    let v = v.trim().trim_matches('"');
                    (!v.is_empty()).then(|| v.to_string())
                })
            })
        });
        let os_version = os_version.unwrap_or_else(|| "unknown".into());
        let user = env
            .get("USER")
            .map(|u| u.trim().to_string())
            .filter(|u| !u.is_empty())
            .or_else(login_name)
            .unwrap_or_else(|| "unknown".into());
        SystemFacts {
            platform,
            os_version,
            user,
            hostname: short_hostname().unwrap_or_else(|| "unknown".into()),
            today: local_today(),
        }
    }
}

fn short_hostname() -> Option<String> {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname NUL-terminates
    // on success when the name fits.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return None;
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    let name = String::from_utf8_lossy(&buf[..end]);
    let short = name.split('.').next().unwrap_or("").trim();
    (!short.is_empty()).then(|| short.to_string())
}

fn login_name() -> Option<String> {
    // SAFETY: getpwuid returns a pointer into static storage or NULL; the
    // name is copied out before any other call.
    unsafe {
        let pw = libc::getpwuid(libc::geteuid());
        if pw.is_null() || (*pw).pw_name.is_null() {
            return None;
        }
        let name = std::ffi::CStr::from_ptr((*pw).pw_name)
            .to_string_lossy()
            .into_owned();
        (!name.is_empty()).then_some(name)
    }
}

fn local_today() -> String {
    // SAFETY: localtime_r writes into the provided struct only.
    unsafe {
        let now = libc::time(std::ptr::null_mut());
        let mut tm: libc::tm = std::mem::zeroed();
        if libc::localtime_r(&now, &mut tm).is_null() {
            return "unknown".into();
        }
        format!(
            "{:04}-{:02}-{:02}",
            tm.tm_year + 1900,
            tm.tm_mon + 1,
            tm.tm_mday
        )
    }
}

/// A YAML-safe scalar: a JSON string literal, with DEL and NUL escaped too.
fn yaml_string(s: &str) -> String {
    serde_json::to_string(s)
        .expect("strings serialize")
        .replace('\u{7f}', "\\u007f")
}

/// What the composition reads.
pub struct PromptInput<'a> {
    pub personality: &'a str,
    pub description: &'a str,
    /// Where the doctrine files are read (canonical).
    pub cwd: &'a Path,
    /// The cwd as registered: what `peer-cwd` says.
    pub registered_cwd: &'a Path,
    pub facts: &'a SystemFacts,
    /// `<root>`: the global doctrine layers live here.
    pub root: &'a Path,
    pub home: &'a Path,
    pub peers: &'a [PeerRecord],
}

/// `~/…` when under `$HOME`, else the path as is.
fn display_path(path: &Path, home: &Path) -> String {
    match path.strip_prefix(home) {
        Ok(rest) if home != Path::new("/") && !home.as_os_str().is_empty() => {
            format!("~/{}", rest.display())
        }
        _ => path.display().to_string(),
    }
}

/// The largest doctrine file included.
const MAX_DOC_BYTES: u64 = 1 << 20;

/// `<!-- path -->\n<content>` for a non-blank file. The file must resolve
/// inside `base` (the dir it was found in): a symlink in a doctrine dir must
/// not carry, say, `~/.ssh/id_ed25519` into a prompt sent to a model.
fn marked_file(path: &Path, base: &Path, home: &Path) -> Option<String> {
    let real = path.canonicalize().ok()?;
    if !real.starts_with(base.canonicalize().ok()?) {
        tracing::warn!(path = %path.display(), "doctrine file leads outside its directory; skipped");
        return None;
    }
    let content = fsutil::read_regular_text(&real, MAX_DOC_BYTES).ok()?;
    let content = content.trim_end_matches(['\n', '\r']);
    (!content.trim_matches(['\n', '\r']).is_empty())
        .then(|| format!("<!-- {} -->\n{content}", display_path(path, home)))
}

/// `*.md`, any case (`.md` alone is a hidden file, not a doc).
fn is_md(name: &str) -> bool {
    Path::new(name)
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("md"))
}

fn md_names(dir: &Path) -> BTreeSet<String> {
    fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .filter(|e| e.path().is_file())
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| is_md(n) && !n.eq_ignore_ascii_case("IAPEER.md"))
        .collect()
}

/// Every other doc of a global and a local dir: names in codepoint order,
/// each name's global half before its local half.
fn domain_docs(global: &Path, local: &Path, home: &Path) -> Vec<String> {
    let names: BTreeSet<String> = md_names(global).union(&md_names(local)).cloned().collect();
    names
        .iter()
        .flat_map(|n| [global.join(n), local.join(n)])
        .filter_map(|p| {
            let base = if p.starts_with(global) { global } else { local };
            marked_file(&p, base, home)
        })
        .collect()
}

fn known_peers(peers: &[PeerRecord]) -> Option<String> {
    if peers.is_empty() {
        return None;
    }
    let mut sorted: Vec<&PeerRecord> = peers.iter().collect();
    sorted.sort_by(|a, b| a.personality.cmp(&b.personality));
    let mut out = String::from("## Known peers");
    for p in sorted {
        out.push_str(&format!("\n- {}", p.personality));
        if !p.description.is_empty() {
            out.push_str(&format!(" — {}", p.description));
        }
        let runtimes: Vec<&str> = p.runtimes.iter().map(|r| r.as_str()).collect();
        out.push_str(&format!(
            "\n  runtime: {}\n  runtimes: {}\n  intelligence: {}",
            p.default_runtime,
            runtimes.join(", "),
            p.intelligence
        ));
    }
    Some(out)
}

/// The local doctrine whose presence makes a peer a doctrine peer.
pub fn local_doctrine(cwd: &Path) -> PathBuf {
    cwd.join(".iapeer/IAPEER.md")
}

/// The composed prompt, or `None` for a peer without a local doctrine.
pub fn compose(input: &PromptInput<'_>) -> Option<String> {
    let local_dir = input.cwd.join(".iapeer");
    if !local_doctrine(input.cwd).is_file() {
        return None;
    }
    let f = input.facts;
    let facts = [
        ("personality", input.personality),
        ("description", input.description),
        ("peer-cwd", &input.registered_cwd.to_string_lossy()),
        ("platform", &f.platform),
        ("os_version", &f.os_version),
        ("user", &f.user),
        ("hostname", &f.hostname),
        ("today", &f.today),
    ]
    .iter()
    .map(|(k, v)| format!("{k}: {}", yaml_string(v)))
    .collect::<Vec<_>>()
    .join("\n");
    let mut sections = vec![format!("---\n{facts}\n---")];
    sections.extend(marked_file(
        &input.root.join("IAPEER.md"),
        input.root,
        input.home,
    ));
    sections.extend(marked_file(
        &local_doctrine(input.cwd),
        &local_dir,
        input.home,
    ));
    sections.extend(known_peers(input.peers));
    sections.extend(domain_docs(input.root, &local_dir, input.home));
    sections.extend(domain_docs(
        &input.root.join("fragments"),
        &local_dir.join("fragments"),
        input.home,
    ));
    let mut text = sections
        .iter()
        .map(|s| s.trim_end_matches(['\n', '\r']))
        .collect::<Vec<_>>()
        .join("\n\n");
    text.push('\n');
    Some(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml_strings_escape_controls() {
        assert_eq!(yaml_string("a\"b"), "\"a\\\"b\"");
        assert_eq!(yaml_string("x\u{7f}\u{0}\n"), "\"x\\u007f\\u0000\\n\"");
        assert_eq!(yaml_string("é"), "\"é\"");
    }

    #[test]
    fn md_detection() {
        assert!(is_md("NOTES.MD"));
        assert!(is_md("a.md"));
        assert!(!is_md(".md"));
        assert!(!is_md("a.mdx"));
        // Multi-byte names never split a character.
        assert!(!is_md("заметки"));
        assert!(!is_md("éé"));
        assert!(is_md("заметки.md"));
    }
}
