#!/usr/bin/env bash
# Runs every cargo-fuzz target in fuzz/ (signature verifiers, provider event
# parsers, Retry-After, alert channels, the API's JSON bodies and validation,
# and the server's own parsers: page cursors, sealed values, console forms)
# for ${FUZZ_SECONDS:-20} seconds each, seeding the corpora from the test
# fixtures.
#
#   scripts/fuzz.sh                 # all targets, 20 s each
#   FUZZ_SECONDS=300 scripts/fuzz.sh stripe_verify
#
# Needs cargo-fuzz (`cargo install cargo-fuzz`). cargo-fuzz needs nightly
# compiler flags: a nightly toolchain is used when FUZZ_TOOLCHAIN names one
# (e.g. FUZZ_TOOLCHAIN=nightly); otherwise the pinned stable toolchain runs
# with RUSTC_BOOTSTRAP=1. Crashes land in fuzz/artifacts/<target>/.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root/fuzz"
seconds="${FUZZ_SECONDS:-20}"
fixtures="$root/sendpromptly-core/tests/fixtures"

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "cargo-fuzz is not installed: run 'cargo install cargo-fuzz'" >&2
    exit 1
fi

if [[ -n "${FUZZ_TOOLCHAIN:-}" ]]; then
    fuzz=(cargo "+$FUZZ_TOOLCHAIN" fuzz)
else
    export RUSTC_BOOTSTRAP=1
    fuzz=(cargo fuzz)
fi

seed() {
    local target="$1"
    local dir="corpus/$target"
    mkdir -p "$dir"
    case "$target" in
        stripe_event_reference)
            cp "$fixtures"/stripe/*.json "$fixtures"/vectors/stripe_vector*.json "$dir"/ ;;
        shopify_event_reference)
            for f in "$fixtures"/shopify/*.json; do
                python3 -c 'import json,sys; sys.stdout.write(json.dumps(json.load(open(sys.argv[1]))["body"]))' \
                    "$f" > "$dir/$(basename "$f")" 2>/dev/null || true
            done
            cp "$fixtures"/vectors/shopify_vector_body.txt "$dir"/ ;;
        stripe_verify)
            { printf 't=1533204620,v1=82216eca827bcb7b34b8055eb2d2d9e6bc13b9ac39ded14a61e69f70c565f53a\n'
              cat "$fixtures"/vectors/stripe_vector1_payload.json; } > "$dir/vector1" ;;
        shopify_verify)
            { printf 'B23tXN681gZ0qIWNRrgtzBE9XSDo5yaUu6wfmhu3a7g=\norders/paid\nshop.myshopify.com\nwh_1\n2026-11-28T10:00:00Z\n'
              cat "$fixtures"/vectors/shopify_vector_body.txt; } > "$dir/vector" ;;
        standard_webhooks_verify)
            printf 'msg_p5jXN8AQM9LWM0D4loKWxJek\n1614265330\nv1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=\n{"test": 2432232314}' > "$dir/spec" ;;
        repair_callback_verify)
            printf 'rep_01\n{"type":"reprocess.requested","reprocess_id":"rep_01","incident_id":"inc_01","attempt":1,"requested_at":"2026-11-28T10:00:00Z","requested_by":"console:a@example.com","event":{"provider":"stripe","event_id":"evt_1","event_type":"invoice.paid","metadata":{"credits":500}}}' > "$dir/callback" ;;
        retry_after)
            printf '120' > "$dir/seconds"
            printf 'Wed, 21 Oct 2026 07:28:00 GMT' > "$dir/date" ;;
        alert_channels)
            printf '[{"type":"email","to":"ops@example.com","on":["incident.opened","reprocess.failed"]},{"type":"slack","webhook_url":"https://hooks.slack.com/services/T/B/x"},{"type":"webhook","url":"https://ops.example/alerts","on":["incident.resolved"]}]' > "$dir/channels"
            printf 'incident.opened' > "$dir/event" ;;
        api_bodies)
            printf '{"provider":"stripe","event_id":"evt_1","event_type":"invoice.paid","subject":"cus_1","effect":"credits.add","deadline_seconds":1800,"metadata":{"amount":1999,"currency":"usd"}}' > "$dir/receipt"
            printf '{"provider":"shopify","event_id":"1234","status":"failure","error":"tenant not found","reprocess_id":"rep_01"}' > "$dir/result"
            printf '{"repair_url":"https://app.example/repair","default_deadline_seconds":900,"deadlines_by_event_type":{"invoice.paid":3600},"alert_channels":[]}' > "$dir/project"
            printf '{"state":"open","event_type":"invoice.paid","dry_run":true,"rate_per_second":5}' > "$dir/batch" ;;
        page_cursors)
            printf 'ZTo0Mg' > "$dir/events"            # e:42
            printf 'aToxNzY0MDAwMDAwMDAwOmluY18x' > "$dir/incidents" ;;  # i:1764000000000:inc_1
        sealed_values)
            printf 'signing_secrets\0prj_1\nspenc1:k1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA' > "$dir/sealed"
            printf 'ctx\nwhsec_plain' > "$dir/plain" ;;
        console_forms)
            printf 'incident_id=inc_1&incident_id=inc_2&state=open&kind=failed_result&provider=stripe&opened_after=2026-11-22T09%%3A00&rate_per_second=5&concurrency=3&note=n' > "$dir/batch"
            printf 'invoice.paid = 3600\n# comment\ncustomer.created: 60\n' > "$dir/deadlines"
            printf 'stripe_endpoint_secrets=whsec_1%%0Awhsec_2&tracked=invoice.paid&receipt_grace_seconds=600&receipt_grace_by_event_type=invoice.paid%%3D60' > "$dir/tap"
            printf '/incidents?state=open' > "$dir/next" ;;
    esac
}

targets=("$@")
if [[ ${#targets[@]} -eq 0 ]]; then
    mapfile -t targets < <("${fuzz[@]}" list)
fi

for target in "${targets[@]}"; do
    echo "== fuzzing $target for ${seconds}s"
    seed "$target"
    "${fuzz[@]}" run "$target" "corpus/$target" -- -max_total_time="$seconds"
done
echo "fuzzed ${#targets[@]} target(s) for ${seconds}s each: no crashes"
