//! The first-party adapters, embedded so an installed `iapeerd` needs no
//! repository checkout. Rebuilt from `adapters/` by `adapters/build.sh`.

pub struct Builtin {
    pub name: &'static str,
    pub wasm: &'static [u8],
}

macro_rules! builtin {
    ($name:literal) => {
        Builtin {
            name: $name,
            wasm: include_bytes!(concat!("../../../plugins-dist/", $name, ".wasm")),
        }
    };
}

pub const BUILTINS: &[Builtin] = &[
    builtin!("claude"),
    builtin!("codex"),
    builtin!("telegram"),
    builtin!("notifier"),
];

/// Does a built-in serve `runtime`? (A built-in's name is its runtime.)
pub fn is_builtin_runtime(runtime: &str) -> bool {
    BUILTINS.iter().any(|b| b.name == runtime)
}
