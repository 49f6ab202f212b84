#!/usr/bin/env bash
# Tests of the uniffi bindings (bindings/uniffi): Kotlin/JVM, Ruby, Swift.
#
# Installs what is missing (Debian: ruby, ruby-ffi, ruby-minitest, ruby-rack,
# ruby-webrick; a JDK 17 and Maven), builds the cdylib once (debug), checks
# that the committed generated sources (Kotlin, Ruby, Swift) match what the
# pinned uniffi-bindgen generates, then runs against a real
# `sendpromptly serve` on loopback ports:
#   1. the Kotlin SDK's JUnit tests (Maven; Kotlin and Java callers; the
#      official com.standardwebhooks and stripe-java verifiers), installing
#      the jar (with the native library) into the local Maven repository;
#   2. the Ktor example (examples/kotlin) end to end;
#   3. the Ruby gem's minitest tests;
#   4. the Rack example (examples/ruby) end to end.
# Swift sources are generated and drift-checked only: no Swift toolchain here.
#
# Settings (environment):
#   CARGO_TARGET_DIR   cargo's target directory (default target/)
#   SENDPROMPTLY_BIN   a prebuilt server binary (default: built here)
#   MAVEN_REPO         the local Maven repository (default ~/.m2/repository)
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
step() { printf '\n==== %s\n' "$*"; }
start=$SECONDS

missing=()
command -v java >/dev/null && command -v javac >/dev/null || missing+=(openjdk-17-jdk-headless)
command -v mvn >/dev/null || missing+=(maven)
command -v ruby >/dev/null || missing+=(ruby)
command -v strip >/dev/null || missing+=(binutils)
for pkg in ruby-ffi ruby-minitest ruby-rack ruby-webrick; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if [[ ${#missing[@]} -gt 0 ]]; then
    step "Installing ${missing[*]}"
    sudo=""
    [[ $(id -u) -eq 0 ]] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi

target="${CARGO_TARGET_DIR:-$root/target}"
export CARGO_TARGET_DIR="$target"

step "Building the native library and checking the generated sources for drift"
scripts/uniffi-generate.sh --check
cargo test --locked -q -p sendpromptly-uniffi --lib
# The debug library without its debug info (140 MB → ~15 MB) is what the jar
# and the gem carry.
native="$target/uniffi-native"
mkdir -p "$native"
strip --strip-debug -o "$native/libsendpromptly_uniffi.so" "$target/debug/libsendpromptly_uniffi.so"

if [[ -z "${SENDPROMPTLY_BIN:-}" ]]; then
    step "Building the server binary"
    cargo build --locked --bin sendpromptly
    export SENDPROMPTLY_BIN="$target/debug/sendpromptly"
fi

mvn_args=(-B -q -Dsendpromptly.native.dir="$native")
[[ -n "${MAVEN_REPO:-}" ]] && mvn_args+=(-Dmaven.repo.local="$MAVEN_REPO")

# A test run that finds no tests is a failure.
count_junit() {
    local dir="$1" total=0 n
    for report in "$dir"/TEST-*.xml; do
        [[ -e "$report" ]] || continue
        n=$(grep -o '<testsuite [^>]*tests="[0-9]*"' "$report" | grep -o 'tests="[0-9]*"' | grep -o '[0-9]*')
        total=$((total + n))
    done
    if [[ $total -eq 0 ]]; then
        echo "no JUnit tests ran in $dir: that is a failure" >&2
        exit 1
    fi
    echo "$total JUnit tests passed ($dir)"
}

step "Kotlin: JUnit tests (Maven), then install the jar"
(cd bindings/uniffi/kotlin && mvn "${mvn_args[@]}" install)
count_junit bindings/uniffi/kotlin/target/surefire-reports

step "Starting sendpromptly serve for the examples"
work="$(mktemp -d)"
port=$(ruby -rsocket -e 's = TCPServer.new("127.0.0.1", 0); puts s.addr[1]; s.close')
env -u SENDPROMPTLY_API_KEY -u SENDPROMPTLY_URL -u SENDPROMPTLY_CONFIG SENDPROMPTLY_LOG=warn \
    "$SENDPROMPTLY_BIN" serve --listen "127.0.0.1:$port" --database-url "sqlite://$work/sendpromptly.db" \
    --allow-private-urls --sweep-interval-ms 200 --callback-retry-delays 1,1,1 >"$work/serve.out" 2>&1 &
server_pid=$!
trap 'kill "$server_pid" 2>/dev/null || true; rm -rf "$work"' EXIT
for _ in $(seq 600); do
    grep -q "listening on" "$work/serve.out" 2>/dev/null && break
    kill -0 "$server_pid" 2>/dev/null || { cat "$work/serve.out" >&2; exit 1; }
    sleep 0.1
done
export SENDPROMPTLY_URL="http://127.0.0.1:$port"
SENDPROMPTLY_API_KEY=$(sed -n 's/^ *API key: *\(sp_[^ ]*\).*/\1/p' "$work/serve.out" | head -1)
SENDPROMPTLY_SIGNING_SECRET=$(sed -n 's/^ *signing secret: *\(whsec_[^ ]*\).*/\1/p' "$work/serve.out" | head -1)
export SENDPROMPTLY_API_KEY SENDPROMPTLY_SIGNING_SECRET
[[ -n "$SENDPROMPTLY_API_KEY" && -n "$SENDPROMPTLY_SIGNING_SECRET" ]] || { cat "$work/serve.out" >&2; exit 1; }

step "Kotlin: the Ktor example end to end"
(cd examples/kotlin && mvn "${mvn_args[@]}" verify)
count_junit examples/kotlin/target/surefire-reports

step "Ruby: minitest"
cp "$native/libsendpromptly_uniffi.so" bindings/uniffi/ruby/lib/sendpromptly/
run_minitest() {
    local out
    out=$(cd "$1" && ruby -w -Ilib -I"$root/bindings/uniffi/ruby/lib" \
        -e 'files = Dir[ARGV[0]].sort; abort "no test files match #{ARGV[0]}" if files.empty?; files.each { |f| require File.expand_path(f) }' \
        "$2" 2>&1) || {
        echo "$out"
        exit 1
    }
    echo "$out" | tail -3
    if ! echo "$out" | grep -Eq '^[1-9][0-9]* runs, [0-9]+ assertions, 0 failures, 0 errors'; then
        echo "minitest ran no tests or reported failures: that is a failure" >&2
        exit 1
    fi
}
run_minitest bindings/uniffi/ruby "test/test_*.rb"

step "Ruby: the Rack example end to end"
run_minitest examples/ruby test_app.rb

step "uniffi bindings passed ($((SECONDS - start))s)"
