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

/// The runtimes the built-ins serve (their names are their runtimes).
pub const BUILTIN_RUNTIMES: &[&str] = &["claude", "codex", "telegram", "notifier"];

#[cfg(test)]
mod tests {
    #[test]
    fn the_runtime_list_names_every_builtin() {
        let names: Vec<&str> = super::BUILTINS.iter().map(|b| b.name).collect();
        assert_eq!(names, super::BUILTIN_RUNTIMES);
    }
}
