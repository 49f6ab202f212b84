#!/usr/bin/env bash
# Installs stripe-mock, Stripe's mock API server, which answers every
# endpoint of Stripe's published OpenAPI description and refuses (400) a
# request whose parameters the description does not allow. The reconciler's
# requests are checked against it (sendpromptly-server/tests/stripe_mock.rs).
#
# Source it and call `stripe_mock_install`, or run it: it prints the binary's
# path. Needs Go (only the Go module proxy is used). The binary goes to
# ${SENDPROMPTLY_CACHE:-~/.cache/sendpromptly}/bin/stripe-mock; an existing
# binary of the pinned version is reused.
set -euo pipefail

STRIPE_MOCK_VERSION="${STRIPE_MOCK_VERSION:-v0.203.0}"

stripe_mock_install() {
    local cache="${SENDPROMPTLY_CACHE:-$HOME/.cache/sendpromptly}"
    local bin="$cache/bin"
    local stamp="$bin/stripe-mock.version"
    mkdir -p "$bin"
    if [[ -x "$bin/stripe-mock" && -f "$stamp" && "$(cat "$stamp")" == "$STRIPE_MOCK_VERSION" ]]; then
        echo "$bin/stripe-mock"
        return 0
    fi
    if ! command -v go >/dev/null 2>&1; then
        echo "error: stripe-mock is not installed and Go is not available to build it" >&2
        return 1
    fi
    GOFLAGS=-mod=mod GOBIN="$bin" go install "github.com/stripe/stripe-mock@$STRIPE_MOCK_VERSION" >&2
    echo "$STRIPE_MOCK_VERSION" >"$stamp"
    echo "$bin/stripe-mock"
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
    stripe_mock_install
fi
