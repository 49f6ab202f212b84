#!/usr/bin/env bash
# JMH benchmarks of the Kotlin/JVM SDK's verifiers (verifyRepairRequest,
# stripeVerify) against the official Java libraries (com.standardwebhooks,
# stripe-java's Webhook.constructEvent) on 1 KiB and 16 KiB bodies.
#
#   bench/jmh.sh            release library, JMH defaults below (~4 minutes)
#   BENCH_QUICK=1 bench/jmh.sh   debug library, one short iteration (a smoke run)
#
# Builds libsendpromptly_uniffi (release), installs the SDK jar with it into
# the local Maven repository (tests skipped: scripts/test-uniffi.sh runs
# them), compiles bench/jmh and runs it. Not part of scripts/test.sh.
# Settings: CARGO_TARGET_DIR, JMH_ARGS (extra JMH options).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
target="${CARGO_TARGET_DIR:-$root/target}"
export CARGO_TARGET_DIR="$target"

if [[ "${BENCH_QUICK:-}" == "1" ]]; then
    cargo build --locked -q -p sendpromptly-uniffi
    profile=debug
    jmh=(-f 1 -wi 1 -w 200ms -i 1 -r 200ms)
else
    cargo build --locked --release -q -p sendpromptly-uniffi
    profile=release
    jmh=(-f 1 -wi 3 -w 2s -i 5 -r 2s)
fi
(cd bindings/uniffi/kotlin && mvn -B -q install -DskipTests -Dsendpromptly.native.dir="$target/$profile")
cd bench/jmh
mvn -B -q compile dependency:build-classpath -Dmdep.outputFile=target/classpath.txt
java -cp "target/classes:$(cat target/classpath.txt)" org.openjdk.jmh.Main "${jmh[@]}" ${JMH_ARGS:-} VerifyBench
