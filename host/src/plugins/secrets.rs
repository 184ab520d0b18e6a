//! What no adapter may read: the home's credential stores and a project's
//! secret files, checked when an adapter declares what it reads and again
//! on every read; and the plain relative paths both checks take.

/// The components of a relative path made only of normal names (no `.`,
/// `..`, root, empty component or NUL), or `None`.
pub fn plain_relative_components(path: &str) -> Option<Vec<String>> {
    if path.is_empty() || path.starts_with('/') || path.contains('\0') {
        return None;
    }
    path.split('/')
        .map(|c| match c {
            "" | "." | ".." => None,
            c => Some(c.to_string()),
        })
        .collect()
}

/// Home-relative places that hold credentials, keys or browser profiles
/// (or iapeer's own state, with its bearer token). No adapter may declare
/// one, anything inside one, or anything that contains one.
pub const SECRET_STORES: &[&str] = &[
    ".ssh",
    ".gnupg",
    ".aws",
    ".azure",
    ".config/gcloud",
    ".kube",
    ".docker",
    ".password-store",
    ".netrc",
    ".git-credentials",
    ".config/gh",
    ".config/op",
    ".1password",
    ".npmrc",
    ".pypirc",
    ".cargo/credentials",
    ".cargo/credentials.toml",
    ".vault-token",
    ".terraform.d",
    ".local/share/keyrings",
    ".pki",
    ".mozilla",
    ".config/google-chrome",
    ".config/chromium",
    ".config/BraveSoftware",
    ".config/microsoft-edge",
    ".config/vivaldi",
    "snap",
    "Library/Keychains",
    "Library/Cookies",
    "Library/Application Support/Google/Chrome",
    "Library/Application Support/Firefox",
    "Library/Application Support/BraveSoftware",
    "Library/Application Support/Microsoft Edge",
    "Library/Safari",
    ".iapeer",
    // Credentials of other tools, and shell histories (commands typed with
    // secrets in them).
    ".pgpass",
    ".my.cnf",
    ".s3cfg",
    ".boto",
    ".gem/credentials",
    ".pulumi",
    ".oci",
    ".databrickscfg",
    ".m2/settings.xml",
    ".m2/settings-security.xml",
    ".gradle/gradle.properties",
    ".bash_history",
    ".zsh_history",
    ".python_history",
    ".psql_history",
    ".mysql_history",
    ".node_repl_history",
    ".local/share/fish/fish_history",
    // The agents' own credentials: their transcript dirs stay readable.
    ".claude/.credentials.json",
    ".claude.json",
    ".codex/auth.json",
    ".gemini/oauth_creds.json",
    ".config/anthropic",
    ".config/openai",
];

/// The secret store a declared dir would expose: it is one, lies inside
/// one, or contains one. Names compare without regard to ASCII case (macOS
/// homes are case-insensitive); `info` refuses non-ASCII names before
/// asking, as Unicode case folding could alias a store.
pub fn touches_secret_store(dir: &str) -> Option<&'static str> {
    let declared = plain_relative_components(dir)?;
    SECRET_STORES.iter().copied().find(|secret| {
        let secret: Vec<&str> = secret.split('/').collect();
        declared
            .iter()
            .zip(&secret)
            .all(|(d, s)| d.eq_ignore_ascii_case(s))
    })
}

/// Names that hold credentials when they sit in a project folder; a cwd
/// path may not be one, lie in one or contain one (and, since a cwd may be
/// the home itself, the home's secret stores are refused too).
const CWD_SECRETS: &[&str] = &[".env", ".envrc", ".git", ".netrc", ".npmrc", ".pypirc"];

/// The project secret a cwd-relative path would expose (its first
/// component names one), compared without regard to ASCII case.
pub fn touches_cwd_secret(path: &str) -> Option<&'static str> {
    let first = path.split('/').next()?.to_ascii_lowercase();
    // `.env` also covers its variants (`.env.local`, `.env.production`).
    CWD_SECRETS
        .iter()
        .copied()
        .find(|s| first == *s || (*s == ".env" && first.starts_with(".env")))
}
