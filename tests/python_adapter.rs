//! The Gemini adapter written in Python (adapters/python-gemini, built by
//! componentize-py in `.ci/run`, which points `IAPEER_PYTHON_ADAPTER` at
//! it): the Rust one's goldens, and a wake end to end.

use serde_json::Value;

use crate::common::{self, Fleet, plugin_host};
use crate::gemini::gemini_goldens;
use crate::toolchain::Case;

fn json(out: &str) -> Value {
    serde_json::from_str(out).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"))
}

/// The same goldens for the Gemini adapter written in Python
/// (adapters/python-gemini, componentize-py): built by
/// adapters/python-gemini/build.sh, which `.ci/run` runs and points
/// `IAPEER_PYTHON_ADAPTER` at (CI requires it: `IAPEER_REQUIRE_PYTHON_ADAPTER=1`).
fn python_gemini_adapter() {
    let wasm = std::env::var_os("IAPEER_PYTHON_ADAPTER").expect("IAPEER_PYTHON_ADAPTER is set");
    let home = tempfile::tempdir().unwrap();
    let dir = home.path().join("plugins");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(&wasm, dir.join("gemini.wasm")).unwrap();
    let host = plugin_host(home.path(), vec![dir]);
    let g = host
        .adapter("gemini")
        .expect("the Python adapter loads")
        .clone();
    assert_eq!(g.info().contract, "0.2");
    gemini_goldens(&g, home.path());
}

/// The Gemini adapter written in Python (see `python_gemini_adapter` in
/// tests/adapters.rs for how it is built) serves a wake end to end, like
/// the Rust one.
fn a_python_adapter_wakes_a_peer() {
    let wasm = std::env::var_os("IAPEER_PYTHON_ADAPTER").expect("IAPEER_PYTHON_ADAPTER is set");
    let f = Fleet::new().with_env(
        "IAPEER_GEMINI_BIN",
        common::fake("fake-gemini").to_str().unwrap(),
    );
    let plugins = f.root.join("plugins");
    std::fs::create_dir_all(&plugins).unwrap();
    // It declares 128 MiB (CPython inside): the operator's cap decides.
    let file = std::path::Path::new(&wasm).to_str().unwrap();
    let inspect = f.ok(&["plugins", "inspect", file]);
    assert!(
        inspect.contains("128 MiB, 2000 ms a call, 10000 ms a scan"),
        "{inspect}"
    );
    let mut capped = f.cmd(&["plugins", "inspect", file]);
    capped.env("IAPEER_PLUGIN_MAX_MEMORY_MIB", "100");
    let text = String::from_utf8(capped.output().unwrap().stdout).unwrap();
    assert!(text.contains("100 MiB"), "capped: {text}");
    let mut starved = f.cmd(&["plugins", "check", file]);
    starved.env("IAPEER_PLUGIN_MAX_MEMORY_MIB", "8");
    let out = starved.output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        err.contains("does not start within its limits (8 MiB"),
        "{err}"
    );
    let installed = f.ok(&["plugins", "install", file]);
    assert!(installed.contains("installed gemini 0.2.0"), "{installed}");
    assert!(installed.contains("iapeer plugins grant"), "{installed}");
    f.ok(&["plugins", "grant", "gemini"]);
    f.register("pyg", "gemini", &[]);
    let out = json(&f.ok(&["wake", "pyg", "--message", "hello python", "--json"]));
    assert_eq!(out["taskDelivered"], true, "{out}");
    assert!(f.is_live("gemini-pyg"));
    f.ok(&["stop", "pyg"]);
}

pub const CASES: &[Case] = crate::cases![python_gemini_adapter, a_python_adapter_wakes_a_peer];
