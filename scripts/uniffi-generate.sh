#!/usr/bin/env bash
# Generates the Kotlin, Ruby and Swift sources of the uniffi bindings
# (bindings/uniffi) from the built library, with the workspace's pinned
# uniffi-bindgen (crate bindings/uniffi/bindgen, uniffi =0.32.2).
#
#   scripts/uniffi-generate.sh           rewrite the committed sources
#   scripts/uniffi-generate.sh --check   regenerate into a temp dir and fail
#                                        (diff -r) if the committed ones drifted
#
# Settings: CARGO_TARGET_DIR (default target/).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

check=0
[[ "${1:-}" == "--check" ]] && check=1

target="${CARGO_TARGET_DIR:-$root/target}"
cargo build --locked -q -p sendpromptly-uniffi -p sendpromptly-uniffi-bindgen
lib="$target/debug/libsendpromptly_uniffi.so"
bindgen="$target/debug/uniffi-bindgen"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
for language in kotlin ruby swift; do
    "$bindgen" generate --library "$lib" --language "$language" \
        --config bindings/uniffi/uniffi.toml --no-format --out-dir "$work/raw/$language" >/dev/null
done

# Where each generated file lives in the tree.
out="$work/tree"
mkdir -p "$out/kotlin/src/main/kotlin/com/sendpromptly" "$out/ruby/lib/sendpromptly" \
    "$out/swift/Sources/SendPromptly" "$out/swift/Sources/sendpromptlyFFI/include"
cp "$work/raw/kotlin/com/sendpromptly/sendpromptly.kt" "$out/kotlin/src/main/kotlin/com/sendpromptly/"
cp "$work/raw/ruby/sendpromptly.rb" "$out/ruby/lib/sendpromptly/native.rb"
cp "$work/raw/swift/SendPromptly.swift" "$out/swift/Sources/SendPromptly/"
cp "$work/raw/swift/sendpromptlyFFI.h" "$out/swift/Sources/sendpromptlyFFI/include/"
cp "$work/raw/swift/sendpromptlyFFI.modulemap" "$out/swift/Sources/sendpromptlyFFI/include/module.modulemap"

generated=(
    kotlin/src/main/kotlin/com/sendpromptly/sendpromptly.kt
    ruby/lib/sendpromptly/native.rb
    swift/Sources/SendPromptly/SendPromptly.swift
    swift/Sources/sendpromptlyFFI/include/sendpromptlyFFI.h
    swift/Sources/sendpromptlyFFI/include/module.modulemap
)
status=0
for file in "${generated[@]}"; do
    if [[ $check -eq 1 ]]; then
        if ! diff -u "bindings/uniffi/$file" "$out/$file" >"$work/diff" 2>&1; then
            echo "drift: bindings/uniffi/$file differs from what uniffi-bindgen generates:" >&2
            head -40 "$work/diff" >&2
            status=1
        fi
    else
        mkdir -p "$(dirname "bindings/uniffi/$file")"
        cp "$out/$file" "bindings/uniffi/$file"
    fi
done
if [[ $check -eq 1 ]]; then
    # Every generated file, and no stale extra one, in the generated folders.
    diff -r "$out/kotlin/src/main/kotlin" bindings/uniffi/kotlin/src/main/kotlin >/dev/null || status=1
    diff -r "$out/swift/Sources" bindings/uniffi/swift/Sources >/dev/null || status=1
    if [[ $status -ne 0 ]]; then
        echo "run scripts/uniffi-generate.sh and commit the result" >&2
        exit 1
    fi
    echo "uniffi generated sources are up to date"
fi
