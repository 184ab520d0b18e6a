#!/usr/bin/env bash
# What a newcomer starts from builds and serves a wake: `iapeer plugins new`,
# the one documented cargo command, then `iapeer plugins try` against a small
# stand-in runtime (a TUI that shows a `>` composer and appends each input
# line to its activity file). The template leaves that file a TODO the host
# refuses: first the unfilled scaffold must fail `plugins check` saying so,
# then, filled in as a newcomer would, it must serve. Needs the wasm32-wasip2
# target and a built `target/debug/iapeer`.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
iapeer="$root/target/debug/iapeer"
work=$(mktemp -d /tmp/iapeer-scaffold.XXXXXX)
trap 'rm -rf "$work"' EXIT

"$iapeer" plugins new demo --dir "$work/demo"
(cd "$work/demo" && cargo build --release --target wasm32-wasip2 --quiet)
wasm="$work/demo/target/wasm32-wasip2/release/adapter_demo.wasm"
if "$iapeer" plugins check "$wasm" >"$work/check.log" 2>&1; then
  echo "scaffold-check: the unfilled template passed plugins check" >&2; exit 1
fi
grep -q "placeholder" "$work/check.log" || { cat "$work/check.log" >&2; exit 1; }
sed -i 's|"TODO-the-file-the-runtime-writes"|".demo.history.md"|' "$work/demo/src/lib.rs"
grep -q '".demo.history.md"' "$work/demo/src/lib.rs"
(cd "$work/demo" && cargo build --release --target wasm32-wasip2 --quiet)

cat >"$work/fake-demo" <<'FAKE'
#!/usr/bin/env bash
printf 'Demo TUI 1.0\n\n> \n'
while IFS= read -r line; do printf '%s\n' "$line" >> .demo.history.md; done
FAKE
chmod +x "$work/fake-demo"
mkdir -p "$work/peer" "$work/home"

HOME="$work/home" "$iapeer" plugins try "$wasm" --bin "$work/fake-demo" \
  --message "hello from the scaffold" --cwd "$work/peer" --timeout-secs 20 | tee "$work/try.log"
grep -q "ok: demo-try woke, message processed" "$work/try.log"
echo "scaffold-check: the scaffold builds and serves a wake"
