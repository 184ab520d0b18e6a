//! The system prompt: a golden of all its layers, and the wake passing it to
//! the runtime.

use crate::common;

use std::fs;
use std::path::Path;

use common::Fleet;
use iapeer::prompt::{PromptInput, SystemFacts, compose};
use iapeer::registry::parse_registry;

fn write(path: &Path, text: &str) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, text).unwrap();
}

#[test]
fn all_layers_golden() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    let root = home.join(".iapeer");
    let cwd = tmp.path().join("peer");
    let local = cwd.join(".iapeer");
    write(&root.join("IAPEER.md"), "Global doctrine.\n\n\n");
    write(&local.join("IAPEER.md"), "Local doctrine: be kind.\n");
    write(&root.join("TOOLS.md"), "Global tools.\n");
    write(&local.join("TOOLS.md"), "Local tools.\n");
    write(&local.join("alpha.MD"), "Alpha, local only.");
    write(&root.join("Zeta.md"), "Zeta, global only.\n");
    write(&root.join("EMPTY.md"), "\n\n");
    write(&root.join("notes.txt"), "not markdown");
    // A doc that leads outside its dir (here: to a key) is never included.
    write(&home.join(".ssh/id_ed25519"), "PRIVATE KEY");
    std::os::unix::fs::symlink(home.join(".ssh/id_ed25519"), local.join("KEYS.md")).unwrap();
    // Names whose last bytes are inside a multi-byte character.
    write(&root.join("заметки"), "not markdown either");
    write(&local.join("éé"), "nor this");
    write(
        &root.join("iapeer.md"),
        "a second doctrine spelling is never a domain doc",
    );
    write(&root.join("fragments/f1.md"), "Fragment one.\n");
    write(&local.join("fragments/f1.md"), "Fragment one, local.\n");
    write(&local.join("fragments/f0.md"), "Fragment zero.\n");

    let registry = parse_registry(
        r#"{"peers":[
          {"personality":"zed","default_runtime":"codex","runtimes":["codex","claude"],"cwd":"/w/zed","description":"The reviewer."},
          {"personality":"amy","default_runtime":"telegram","cwd":"/w/amy"}
        ]}"#,
        Path::new("/r"),
    )
    .unwrap();
    let facts = SystemFacts {
        platform: "linux".into(),
        os_version: "12".into(),
        user: "op".into(),
        hostname: "box".into(),
        today: "2026-11-25".into(),
    };
    let text = compose(&PromptInput {
        personality: "zed",
        description: "The \"reviewer\"\u{7f}",
        cwd: &cwd,
        registered_cwd: &cwd,
        facts: &facts,
        root: &root,
        home: &home,
        peers: &registry.peers,
    })
    .unwrap();
    let cwd_s = cwd.display();
    let expected = format!(
        r#"---
personality: "zed"
description: "The \"reviewer\"\u007f"
peer-cwd: "{cwd_s}"
platform: "linux"
os_version: "12"
user: "op"
hostname: "box"
today: "2026-11-25"
---

<!-- ~/.iapeer/IAPEER.md -->
Global doctrine.

<!-- {cwd_s}/.iapeer/IAPEER.md -->
Local doctrine: be kind.

## Known peers
- amy
  runtime: telegram
  runtimes: telegram
  intelligence: natural
- zed — The reviewer.
  runtime: codex
  runtimes: codex, claude
  intelligence: artificial

<!-- ~/.iapeer/TOOLS.md -->
Global tools.

<!-- {cwd_s}/.iapeer/TOOLS.md -->
Local tools.

<!-- ~/.iapeer/Zeta.md -->
Zeta, global only.

<!-- {cwd_s}/.iapeer/alpha.MD -->
Alpha, local only.

<!-- {cwd_s}/.iapeer/fragments/f0.md -->
Fragment zero.

<!-- ~/.iapeer/fragments/f1.md -->
Fragment one.

<!-- {cwd_s}/.iapeer/fragments/f1.md -->
Fragment one, local.
"#
    );
    assert_eq!(text, expected);

    // No local doctrine: a bare session, no prompt at all.
    fs::remove_file(local.join("IAPEER.md")).unwrap();
    assert_eq!(
        compose(&PromptInput {
            personality: "zed",
            description: "",
            cwd: &cwd,
            registered_cwd: &cwd,
            facts: &facts,
            root: &root,
            home: &home,
            peers: &[],
        }),
        None
    );
}

#[test]
fn a_doctrine_peer_is_launched_with_its_prompt_file() {
    let f = Fleet::new();
    let cwd = f.register("doc", "claude", &["--description", "Keeps the docs."]);
    write(&cwd.join(".iapeer/IAPEER.md"), "You keep the docs.\n");
    f.ok(&["wake", "doc", "--message", "hi"]);
    let prompt_file = f.state("claude-doc", "system-prompt.md");
    let run = f.runs().pop().unwrap();
    assert!(
        run.contains(&format!("--system-prompt-file {}", prompt_file.display())),
        "{run}"
    );
    let text = fs::read_to_string(&prompt_file).unwrap();
    assert!(
        text.starts_with("---\npersonality: \"doc\"\ndescription: \"Keeps the docs.\"\n"),
        "{text}"
    );
    assert!(text.contains("user: \"tester\""), "{text}");
    assert!(text.contains("You keep the docs."));
    assert!(text.contains("## Known peers\n- doc — Keeps the docs."));
    assert!(text.ends_with("You keep the docs.\n") || text.ends_with('\n'));

    // A bare peer gets none…
    f.register("plain", "claude", &[]);
    f.ok(&["wake", "plain"]);
    assert!(!f.runs().pop().unwrap().contains("--system-prompt-file"));
    assert!(!f.state("claude-plain", "system-prompt.md").exists());
    // …nor does a router, doctrine or not.
    let router = f.register("relay", "notifier", &[]);
    write(
        &router.join(".iapeer/IAPEER.md"),
        "Doctrine a router ignores.\n",
    );
    f.ok(&["wake", "relay"]);
    assert!(!f.state("notifier-relay", "system-prompt.md").exists());
}
