#!/usr/bin/env bash
# Rebuild every adapter component from source (needs the wasm32-wasip2 target:
# `rustup target add wasm32-wasip2`):
#   plugins-dist/{claude,codex,telegram,notifier}.wasm   built into iapeerd
#   plugins-dist/examples/gemini.wasm                    third-party example
#   tests/fixtures/plugins/{evil,badinfo,future,greedy,homebody,cwdreader}.wasm
#                                                        misbehaving test plugins
# and their SHA256SUMS.
#
#   adapters/build.sh           build and install the outputs
#   adapters/build.sh --check   build, then fail if any committed output differs
#
# The build is reproducible: the toolchain is pinned (rust-toolchain.toml),
# dependencies are locked (adapters/Cargo.lock) and path prefixes are remapped,
# so the bytes depend on neither the checkout path nor the target dir.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
mode=${1:-build}
case "$mode" in build|--check) ;; *) echo "usage: $0 [--check]" >&2; exit 2 ;; esac

target_dir=${IAPEER_WASM_TARGET_DIR:-$root/target/wasm}
cargo_home=${CARGO_HOME:-$HOME/.cargo}
export RUSTFLAGS="--remap-path-prefix=$root=/iapeerd --remap-path-prefix=$cargo_home=/cargo"
export CARGO_TARGET_DIR=$target_dir
unset CARGO_ENCODED_RUSTFLAGS RUSTC_WRAPPER

# crate name  ->  output path (relative to the repository root)
outputs=(
  "adapter-claude      plugins-dist/claude.wasm"
  "adapter-codex       plugins-dist/codex.wasm"
  "adapter-telegram    plugins-dist/telegram.wasm"
  "adapter-notifier    plugins-dist/notifier.wasm"
  "adapter-gemini      plugins-dist/examples/gemini.wasm"
  "fixture-evil        tests/fixtures/plugins/evil.wasm"
  "fixture-badinfo     tests/fixtures/plugins/badinfo.wasm"
  "fixture-future      tests/fixtures/plugins/future.wasm"
  "fixture-greedy      tests/fixtures/plugins/greedy.wasm"
  "fixture-homebody    tests/fixtures/plugins/homebody.wasm"
  "fixture-cwdreader   tests/fixtures/plugins/cwdreader.wasm"
)

packages=()
for row in "${outputs[@]}"; do read -r crate _ <<<"$row"; packages+=(-p "$crate"); done
locked=(); [ -f "$root/adapters/Cargo.lock" ] && locked=(--locked)

cargo build --release "${locked[@]}" --target wasm32-wasip2 \
  --manifest-path "$root/adapters/Cargo.toml" "${packages[@]}"

drift=0
for row in "${outputs[@]}"; do
  read -r crate out <<<"$row"
  built="$target_dir/wasm32-wasip2/release/${crate//-/_}.wasm"
  if [ "$mode" = --check ]; then
    if ! cmp -s "$built" "$root/$out"; then
      echo "drift: $out differs from what adapters/ builds ($(sha256sum "$built" | cut -c1-16) vs committed $(sha256sum "$root/$out" 2>/dev/null | cut -c1-16))" >&2
      drift=1
    fi
  else
    mkdir -p "$(dirname "$root/$out")"
    cp "$built" "$root/$out"
  fi
done

write_sums() { # dir files...
  local dir=$1; shift
  (cd "$root/$dir" && sha256sum "$@") > "$root/$dir/SHA256SUMS"
}
if [ "$mode" != --check ]; then
  write_sums plugins-dist claude.wasm codex.wasm notifier.wasm telegram.wasm examples/gemini.wasm
  write_sums tests/fixtures/plugins badinfo.wasm evil.wasm future.wasm greedy.wasm homebody.wasm
else
  (cd "$root/plugins-dist" && sha256sum --quiet -c SHA256SUMS) || drift=1
  (cd "$root/tests/fixtures/plugins" && sha256sum --quiet -c SHA256SUMS) || drift=1
fi

if [ "$drift" != 0 ]; then
  echo "the committed adapter components are not what the sources build: run adapters/build.sh and commit the result" >&2
  exit 1
fi
[ "$mode" = --check ] && echo "adapters: committed components match a fresh build"
exit 0
