#!/usr/bin/env bash
# Checks the Stripe reconciler's requests against Stripe's published OpenAPI
# description: installs stripe-mock (scripts/lib/stripe-mock.sh) and runs
# sendpromptly-server/tests/stripe_mock.rs with it required (no skip).
# Arguments are passed to `cargo test`.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
# shellcheck source=lib/stripe-mock.sh
source "$root/scripts/lib/stripe-mock.sh"
STRIPE_MOCK_BIN="$(stripe_mock_install)"
export STRIPE_MOCK_BIN
export SENDPROMPTLY_REQUIRE_STRIPE_MOCK=1
echo "STRIPE_MOCK_BIN=$STRIPE_MOCK_BIN"
cargo test -p sendpromptly-server --locked --test stripe_mock "$@"
