//! Helpers shared by the black-box tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use iapeer::plugins::{CallBudgets, CompileCache, PluginHost, PluginOptions};

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// One compile cache for every test process: each component is compiled
/// once per test run instead of once per test.
pub fn cache_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("compile-cache")
}

pub fn fixture_plugin(name: &str) -> PathBuf {
    repo_root().join("tests/fixtures/plugins").join(name)
}

pub fn example_plugin(name: &str) -> PathBuf {
    repo_root().join("plugins-dist/examples").join(name)
}

pub fn plugin_host(home: &Path, plugin_dirs: Vec<PathBuf>) -> PluginHost {
    PluginHost::load(&PluginOptions {
        home: home.to_path_buf(),
        plugin_dirs,
        builtins: true,
        cache: CompileCache::new(Some(&cache_dir())),
        // Short enough that the runaway-guest tests finish quickly.
        budgets: CallBudgets {
            quick: Duration::from_millis(500),
            scan: Duration::from_secs(2),
        },
    })
    .expect("wasm engine starts")
}

/// Creates `path` (and parents) with `content` and the given mtime.
pub fn write_with_mtime(path: &Path, content: &str, mtime_ms: u64) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, content).unwrap();
    let f = std::fs::File::options().write(true).open(path).unwrap();
    f.set_modified(SystemTime::UNIX_EPOCH + Duration::from_millis(mtime_ms))
        .unwrap();
}
