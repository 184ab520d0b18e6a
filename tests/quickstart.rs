//! The README's "Two peers talking" quickstart, run as written (its shell
//! block, with the scratch folder, the port and the MCP SDK's Python
//! swapped for the test's own): the README cannot drift from what works.

use std::process::Command;

use crate::common::repo_root;
use crate::toolchain::{Case, mcp_sdk_python};

/// The README's quickstart shell block.
fn quickstart_block() -> String {
    let readme = std::fs::read_to_string(repo_root().join("README.md")).unwrap();
    let section = &readme[readme
        .find("## Two peers talking")
        .expect("the quickstart section")..];
    let start = section.find("```sh\n").expect("its shell block") + 6;
    let end = start + section[start..].find("```").unwrap();
    section[start..end].to_string()
}

fn the_readme_quickstart_runs_as_written() {
    let tmp = tempfile::tempdir().unwrap();
    let scratch = tmp.path().join("quickstart");
    let home = tmp.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let python = mcp_sdk_python();
    let mut script = String::from("set -euo pipefail\n");
    for line in quickstart_block().lines() {
        let line = line
            .replace("/tmp/quickstart", scratch.to_str().unwrap())
            .replace("8765", &port.to_string())
            .replace("/tmp/mcp-sdk/bin/python", python.to_str().unwrap());
        if line.starts_with("python3 -m venv") {
            // The SDK is already in the test's venv; wait for the daemon instead.
            script.push_str(&format!(
                "for _ in $(seq 100); do curl -s -o /dev/null http://127.0.0.1:{port}/ && break; sleep 0.1; done\n"
            ));
            continue;
        }
        if line.contains("iapeerd &") {
            let daemon = format!(
                "iapeerd --port {port} > {}/daemon.log 2>&1 &",
                tmp.path().display()
            );
            script.push_str(&line.replace("iapeerd &", &daemon));
            script.push('\n');
            continue;
        }
        if line.starts_with("kill %1") {
            // The CLI on the same fleet agrees with the daemon (one HOME).
            script
                .push_str("iapeer send bob --from claude-alice --message 'again, from the CLI'\n");
        }
        script.push_str(&line);
        script.push('\n');
    }
    let bin_dir = std::path::Path::new(env!("CARGO_BIN_EXE_iapeer"))
        .parent()
        .unwrap();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    // Twice: a newcomer who runs it again gets the same, not a fleet
    // left stopped by the first run's last line.
    for run in ["first", "second"] {
        let out = Command::new("bash")
            .arg("-c")
            .arg(&script)
            .current_dir(repo_root())
            .env_clear()
            .env("PATH", &path)
            .env("HOME", &home)
            .env("LANG", "C.UTF-8")
            .env("TERM", "xterm-256color")
            .env("TMPDIR", tmp.path())
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        let said = format!("{run} run; script:\n{script}\nstdout:\n{stdout}\nstderr:\n{stderr}");
        assert!(out.status.success(), "{said}");
        assert!(
            stdout.contains("\"woke\": true"),
            "the MCP call woke bob: {said}"
        );
        assert!(
            stdout.contains("delivered to bob (claude)"),
            "the CLI delivered too: {said}"
        );
        assert!(
            stdout.contains("<message><![CDATA[hello from alice]]></message>")
                && stdout.contains("from-personality=\"alice\""),
            "bob's screen shows the message and its verified sender: {said}"
        );
    }
    assert!(
        std::fs::read_dir(&home).unwrap().next().is_none(),
        "the stand-in wrote nothing into the newcomer's HOME"
    );
}

pub const CASES: &[Case] = crate::cases![the_readme_quickstart_runs_as_written];
