//! What every Gemini adapter must answer, whatever it is written in: the
//! built-in example's tests and the Python adapter's share it.

use std::path::Path;

use iapeer::plugins::{Adapter, LaunchSpec, ResumeCheck};

use crate::common::{Block, write_with_mtime};

pub fn spec(binary: &str, cwd: &str) -> LaunchSpec {
    LaunchSpec {
        personality: "bob".into(),
        identity: "x-bob".into(),
        cwd: cwd.into(),
        binary: binary.into(),
        ..Default::default()
    }
}

pub fn argv(a: &Adapter, s: &LaunchSpec) -> String {
    a.build_launch(s).block().unwrap().argv.join(" ")
}

pub fn strs(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// What every Gemini adapter must answer, whatever it is written in.
pub fn gemini_goldens(g: &Adapter, home: &Path) {
    assert_eq!(g.info().runtime.as_str(), "gemini");
    assert_eq!(g.info().read_dirs, [".gemini/tmp"]);
    assert!(g.info().uses_doctrine);
    let mut s = spec("gemini", "/w");
    assert_eq!(argv(g, &s), "gemini --yolo");
    s.resume = true;
    s.system_prompt_file = Some("/sp.md".into());
    s.extra_args = strs(&["-m", "pro"]);
    let cmd = g.build_launch(&s).block().unwrap();
    assert_eq!(cmd.argv.join(" "), "gemini --yolo --resume latest -m pro");
    assert_eq!(
        cmd.env,
        [("GEMINI_SYSTEM_MD".to_string(), "/sp.md".to_string())]
    );
    // The project's chats live under ~/.gemini/tmp/<sha256(cwd)>/chats.
    assert_eq!(g.newest_activity_mtime("/w").block().unwrap(), None);
    assert!(matches!(
        g.resolve_resume("/w").block().unwrap(),
        ResumeCheck::Nothing(_)
    ));
    let hash = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(b"/w"));
    let chats = home.join(".gemini/tmp").join(hash).join("chats");
    write_with_mtime(&chats.join("session-1.json"), "{}", 4_000);
    write_with_mtime(&chats.join("notes.txt"), "", 9_000);
    assert_eq!(g.newest_activity_mtime("/w").block().unwrap(), Some(4_000));
    assert_eq!(
        g.resolve_resume("/w").block().unwrap(),
        ResumeCheck::Resumable(None)
    );
    // Screens: the trust dialog is answered, the composer means ready.
    let trust = "Do you trust this folder?\n> 1. Trust folder\n  2. Don't trust";
    let ready = " Gemini CLI\n\n> Type your message or @path/to/file";
    let auth = "Waiting for auth... (Press ESC to cancel)\n> Type your message";
    assert_eq!(
        g.boot_dialog_keys(trust).block().unwrap(),
        Some(strs(&["Enter"]))
    );
    assert!(!g.is_input_ready(trust).block().unwrap());
    assert_eq!(g.boot_dialog_keys(ready).block().unwrap(), None);
    assert!(g.is_input_ready(ready).block().unwrap());
    assert!(!g.is_input_ready(auth).block().unwrap());
    let interrupt = g.control_keys("interrupt").block().unwrap().unwrap();
    assert_eq!(interrupt.steps, [strs(&["Escape"])]);
    let compact = g.control_keys("compact").block().unwrap().unwrap();
    assert_eq!(compact.steps, [strs(&["-l", "/compact"]), strs(&["Enter"])]);
    assert_eq!(compact.step_delay_ms, 300);
}
