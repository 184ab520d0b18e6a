//! `iapeerd install-service [--print]`: run the daemon under the user's
//! service manager — a systemd user unit on Linux, a launchd agent
//! (`com.agfpd.iapeer`, KeepAlive) on macOS. Idempotent: the file is
//! written only when its content changes; the exact command that enables
//! it is printed.
//!
//! Sessions must outlive a daemon restart, so the manager is told to stop
//! only the daemon's own process (`KillMode=process`;
//! `AbandonProcessGroup`), never the tmux servers it started.

use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::config::Config;
use crate::fsutil;

/// The unit's (or agent's) name.
const SYSTEMD_UNIT: &str = "iapeerd.service";
const LAUNCHD_LABEL: &str = "com.agfpd.iapeer";

/// The environment baked into the service: where things are and which
/// binaries to run, as this shell has them now.
fn service_env(cfg: &Config) -> Vec<(String, String)> {
    let wanted = |k: &str| {
        k == "PATH"
            || k == "HOME"
            || k.starts_with("IAPEER_")
            || k.ends_with("_RUNTIME_BIN")
            || k == "XDG_CONFIG_HOME"
    };
    let mut env: Vec<(String, String)> = cfg
        .env
        .iter()
        .filter(|(k, _)| wanted(k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    if !env.iter().any(|(k, _)| k == "IAPEER_ROOT") {
        env.push((
            "IAPEER_ROOT".into(),
            cfg.root.to_string_lossy().into_owned(),
        ));
    }
    env.sort();
    env
}

/// A value no service file can carry faithfully: a line break would end
/// the line, and XML 1.0 has no way to write most control characters.
fn check_value(what: &str, v: &str) -> anyhow::Result<()> {
    if v.chars().any(char::is_control) {
        anyhow::bail!(
            "{what} contains a control character; a service file cannot carry it (unset or fix it, then run install-service again)"
        );
    }
    Ok(())
}

/// An `ExecStart=` word: quoted, and `$` doubled (systemd would expand
/// `$NAME` there).
fn systemd_exec_quote(v: &str) -> String {
    systemd_quote(&v.replace('$', "$$"))
}

/// A systemd value in double quotes (`\` and `"` escaped, `%` doubled).
fn systemd_quote(v: &str) -> String {
    let escaped = v
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('%', "%%");
    format!("\"{escaped}\"")
}

fn systemd_unit(
    exe: &Path,
    args: &[String],
    env: &[(String, String)],
    root: &Path,
    grace_secs: u64,
) -> String {
    let mut unit = String::from(
        "# Written by `iapeerd install-service`; run it again to update.\n\
         [Unit]\n\
         Description=iapeerd: keeps a fleet of AI agent sessions alive on demand\n\n\
         [Service]\n\
         Type=simple\n",
    );
    let command: Vec<String> = std::iter::once(exe.to_string_lossy().into_owned())
        .chain(args.iter().cloned())
        .map(|word| systemd_exec_quote(&word))
        .collect();
    unit.push_str(&format!("ExecStart={}\n", command.join(" ")));
    unit.push_str(&format!(
        "WorkingDirectory={}\n",
        root.to_string_lossy().replace('%', "%%")
    ));
    for (k, v) in env {
        unit.push_str(&format!(
            "Environment={}\n",
            systemd_quote(&format!("{k}={v}"))
        ));
    }
    unit.push_str(&format!(
        "Restart=on-failure\n\
         RestartSec=2\n\
         # Sessions (tmux servers) outlive the daemon: stop only iapeerd itself.\n\
         KillMode=process\n\
         TimeoutStopSec={}\n\n\
         [Install]\n\
         WantedBy=default.target\n",
        grace_secs.saturating_add(15)
    ));
    unit
}

fn xml(v: &str) -> String {
    v.chars()
        .filter(|c| !c.is_control() || matches!(c, '\t' | '\n' | '\r'))
        .collect::<String>()
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn launchd_plist(
    exe: &Path,
    args: &[String],
    env: &[(String, String)],
    root: &Path,
    log_dir: &Path,
) -> String {
    let mut p = String::from(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
         <!DOCTYPE plist PUBLIC \"-//Apple//DTD PLIST 1.0//EN\" \"http://www.apple.com/DTDs/PropertyList-1.0.dtd\">\n\
         <plist version=\"1.0\">\n<dict>\n",
    );
    p.push_str(&format!(
        "    <key>Label</key>\n    <string>{LAUNCHD_LABEL}</string>\n"
    ));
    p.push_str("    <key>ProgramArguments</key>\n    <array>\n");
    for word in std::iter::once(exe.to_string_lossy().into_owned()).chain(args.iter().cloned()) {
        p.push_str(&format!("        <string>{}</string>\n", xml(&word)));
    }
    p.push_str("    </array>\n");
    p.push_str(&format!(
        "    <key>WorkingDirectory</key>\n    <string>{}</string>\n",
        xml(&root.to_string_lossy())
    ));
    p.push_str("    <key>EnvironmentVariables</key>\n    <dict>\n");
    for (k, v) in env {
        p.push_str(&format!(
            "        <key>{}</key>\n        <string>{}</string>\n",
            xml(k),
            xml(v)
        ));
    }
    p.push_str("    </dict>\n");
    p.push_str("    <key>RunAtLoad</key>\n    <true/>\n    <key>KeepAlive</key>\n    <true/>\n");
    p.push_str("    <key>ThrottleInterval</key>\n    <integer>10</integer>\n");
    p.push_str("    <!-- Sessions (tmux servers) outlive the daemon. -->\n");
    p.push_str("    <key>AbandonProcessGroup</key>\n    <true/>\n");
    for (key, file) in [
        ("StandardOutPath", "daemon-stdout.log"),
        ("StandardErrorPath", "daemon-stderr.log"),
    ] {
        p.push_str(&format!(
            "    <key>{key}</key>\n    <string>{}</string>\n",
            xml(&log_dir.join(file).to_string_lossy())
        ));
    }
    p.push_str("</dict>\n</plist>\n");
    p
}

/// What to write where, and how to turn it on.
pub(crate) struct Service {
    pub path: PathBuf,
    pub content: String,
    pub enable: String,
}

/// The daemon's own command line, as the service should run it: every
/// argument given to `install-service` but the subcommand and `--print`,
/// as given (the service runs from the state root: give paths absolute).
pub(crate) fn daemon_args() -> Vec<String> {
    let mut args: Vec<String> = std::env::args_os()
        .skip(1)
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    if let Some(at) = args.iter().position(|a| a == "install-service") {
        args.remove(at);
        args.retain(|a| a != "--print");
    }
    args
}

pub(crate) fn service(cfg: &Config, args: &[String], grace_secs: u64) -> anyhow::Result<Service> {
    let exe = std::env::current_exe().context("cannot tell where iapeerd is")?;
    let env = service_env(cfg);
    check_value("iapeerd's path", &exe.to_string_lossy())?;
    for a in args {
        check_value("an argument", a)?;
    }
    check_value("the state root", &cfg.root.to_string_lossy())?;
    for (k, v) in &env {
        check_value("a variable name", k)?;
        check_value(&format!("${k}"), v)?;
    }
    if cfg!(target_os = "macos") {
        let path = cfg.launch_agents_dir.join(format!("{LAUNCHD_LABEL}.plist"));
        Ok(Service {
            enable: format!("launchctl bootstrap gui/$(id -u) {}", path.display()),
            content: launchd_plist(&exe, args, &env, &cfg.root, &cfg.log_dir),
            path,
        })
    } else {
        let path = cfg.systemd_user_dir.join(SYSTEMD_UNIT);
        Ok(Service {
            enable: format!(
                "systemctl --user daemon-reload && systemctl --user enable --now {SYSTEMD_UNIT}"
            ),
            content: systemd_unit(&exe, args, &env, &cfg.root, grace_secs),
            path,
        })
    }
}

/// `install-service`: prints or writes the file; says how to enable it.
pub(crate) fn install(cfg: &Config, grace_secs: u64, print: bool) -> anyhow::Result<i32> {
    let s = service(cfg, &daemon_args(), grace_secs)?;
    if print {
        crate::outln!("# {}", s.path.display());
        crate::term::out_raw(s.content.as_bytes());
        crate::errln!("# then: {}", s.enable);
        return Ok(0);
    }
    let unchanged = fsutil::read_regular_text(&s.path, 1 << 20).is_ok_and(|old| old == s.content);
    if unchanged {
        crate::outln!("unchanged {}", s.path.display());
    } else {
        // 0600: it may carry IAPEER_BEARER_TOKEN.
        fsutil::write_atomic(&s.path, s.content.as_bytes())
            .with_context(|| format!("cannot write {}", s.path.display()))?;
        crate::outln!("wrote {}", s.path.display());
    }
    crate::outln!("enable it with: {}", s.enable);
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_unit_that_spares_the_sessions() {
        let env = vec![
            ("IAPEER_ROOT".to_string(), "/h/my root".to_string()),
            ("PATH".to_string(), "/usr/bin:/bin".to_string()),
        ];
        // The flags given to install-service are the service's.
        let args = vec!["--port".to_string(), "9999".to_string()];
        let unit = systemd_unit(
            Path::new("/opt/iap \"d\"/iapeerd"),
            &args,
            &env,
            Path::new("/r"),
            30,
        );
        // It runs from the state root, which outlives the shell it was installed from.
        assert!(unit.contains("WorkingDirectory=/r\n"), "{unit}");
        assert!(
            unit.contains("ExecStart=\"/opt/iap \\\"d\\\"/iapeerd\" \"--port\" \"9999\"\n"),
            "{unit}"
        );
        assert!(unit.contains("Environment=\"IAPEER_ROOT=/h/my root\"\n"));
        assert!(unit.contains("KillMode=process\n"));
        assert!(unit.contains("TimeoutStopSec=45\n"));
        assert_eq!(systemd_quote("50%"), "\"50%%\"");
        assert_eq!(systemd_exec_quote("/a$HOME/b"), "\"/a$$HOME/b\"");
        assert!(check_value("$X", "a\nb").is_err());
        assert!(check_value("$X", "a b/ü").is_ok());
        let plist = launchd_plist(
            Path::new("/bin/iapeerd"),
            &args,
            &env,
            Path::new("/r"),
            Path::new("/l"),
        );
        assert!(plist.contains("<string>/bin/iapeerd</string>\n        <string>--port</string>\n        <string>9999</string>\n    </array>"));
        assert!(plist.contains("<string>com.agfpd.iapeer</string>"));
        assert!(plist.contains("<key>AbandonProcessGroup</key>\n    <true/>"));
        assert!(plist.contains("<string>/l/daemon-stderr.log</string>"));
        assert_eq!(xml("a<b>&c\u{7}"), "a&lt;b&gt;&amp;c");
    }
}
