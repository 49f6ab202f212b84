#!/usr/bin/env bash
# SendPromptly in one minute: builds the server, then runs examples/demo/demo.py
# (Python 3.9+, standard library only). Exits 0 only when every step happened.
#   SENDPROMPTLY_BIN   a prebuilt server binary (default: built here with cargo)
#   CARGO_TARGET_DIR   cargo's target directory (default target/)
# Extra arguments go to demo.py (e.g. --keep to look around in the console afterwards).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
if [[ -z "${SENDPROMPTLY_BIN:-}" ]]; then
    echo "Building the sendpromptly binary (the first build takes a few minutes)…"
    cargo build --quiet --bin sendpromptly
    SENDPROMPTLY_BIN="${CARGO_TARGET_DIR:-$root/target}/debug/sendpromptly"
fi
exec "${PYTHON:-python3}" examples/demo/demo.py --bin "$SENDPROMPTLY_BIN" "$@"
