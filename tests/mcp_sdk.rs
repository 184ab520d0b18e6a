//! A client this project did not write, the official Python MCP SDK,
//! against the daemon's MCP front door.

use std::process::Command;

use serde_json::{Value, json};

use crate::common::{self, Fleet};
use crate::toolchain::Case;

/// The official Python MCP SDK (`mcp` on PyPI), installed by `.ci/run` into
/// `target/interop-venv`: initialize, tools/list, tools/call over TCP and
/// over the Unix socket.
fn the_python_mcp_sdk_can_use_send_to_peer() {
    let python = crate::toolchain::mcp_sdk_python();
    let f = Fleet::new();
    f.register("alice", "claude", &[]);
    let bob = f.register("bob", "claude", &[]);
    let carol = f.register("carol", "claude", &[]);
    let d = f.start_daemon(&[]);
    let script = common::repo_root().join("tests/interop/mcp_client.py");
    let run = |args: &[&str]| -> Value {
        let out = Command::new(&python)
            .arg(&script)
            .args(args)
            .output()
            .unwrap();
        let said: Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|_| panic!("no JSON: {}", String::from_utf8_lossy(&out.stderr)));
        // The client's exit says whether the tool delivered.
        let failed = said["result"]["isError"] == true;
        assert_eq!(out.status.code(), Some(i32::from(failed)), "{said}");
        said
    };
    let over_tcp = run(&[
        &format!("{}/mcp", d.tcp),
        "claude-alice",
        "bob",
        "hello from python",
    ]);
    assert_eq!(over_tcp["server"], "iapeer");
    assert_eq!(over_tcp["tools"].as_array().unwrap().len(), 2);
    assert_eq!(over_tcp["tools"][0]["name"], "send_to_peer");
    assert_eq!(over_tcp["tools"][1]["name"], "message_status");
    // The id the send returned, asked after through the SDK too.
    let status = &over_tcp["status"]["structuredContent"];
    assert_eq!(status["state"], "delivered", "{over_tcp}");
    assert_eq!(status["to"], "claude-bob", "{over_tcp}");
    assert_eq!(status["id"], over_tcp["result"]["structuredContent"]["id"]);
    assert_eq!(
        over_tcp["tools"][0]["inputSchema"]["additionalProperties"],
        false
    );
    assert_eq!(over_tcp["result"]["isError"], false, "{over_tcp}");
    assert_eq!(over_tcp["result"]["structuredContent"]["woke"], true);
    assert_eq!(
        over_tcp["result"]["structuredContent"]["delivered_to"],
        json!({"personality": "bob", "runtime": "claude"})
    );
    assert_eq!(
        f.claude_transcript(&bob)
            .matches("hello from python")
            .count(),
        1
    );

    let over_unix = run(&[
        "http://localhost/mcp",
        "claude-bob",
        "carol",
        "over the socket",
        "--uds",
        d.sock.to_str().unwrap(),
    ]);
    assert_eq!(over_unix["result"]["isError"], false, "{over_unix}");
    assert!(
        f.claude_transcript(&carol)
            .contains("from-personality=\"bob\"")
    );

    let refused = run(&[&format!("{}/mcp", d.tcp), "", "bob", "who am I?"]);
    assert_eq!(refused["result"]["isError"], true);
    assert!(
        refused["result"]["text"]
            .as_str()
            .unwrap()
            .contains("x-iapeer-identity")
    );
}

pub const CASES: &[Case] = crate::cases![the_python_mcp_sdk_can_use_send_to_peer];
