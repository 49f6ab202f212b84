"""A Flask app whose Stripe webhook adds credits, instrumented with
SendPromptly's Flask integration, and the repair endpoint SendPromptly calls
when someone asks to reprocess a failed or missing result.

- ``@stripe_webhook`` verifies the signature (400 if it fails), sends the
  receipt filled from the event and hands the view the verified event;
- ``sendpromptly.track(event)`` sends ``success`` when the block ends,
  ``failure`` (type and message) when it raises;
- ``@repair_endpoint`` verifies the repair callback, calls ``fulfil`` and
  reports its result with the callback's ``reprocess_id``.

Run it (after `pip install './bindings/python[flask]'`):

    export STRIPE_WEBHOOK_SECRET=whsec_…          # from the Stripe dashboard / CLI
    export SENDPROMPTLY_API_KEY=sp_live_…          # printed by `sendpromptly serve`
    export SENDPROMPTLY_URL=http://127.0.0.1:7700
    export SENDPROMPTLY_SIGNING_SECRET=whsec_…     # printed by `sendpromptly serve`
    flask --app app run --port 5000

and set the project's repair URL to http://127.0.0.1:5000/sendpromptly/repair.
"""

from __future__ import annotations

import threading
from typing import Any, Dict, Optional

from flask import Flask

import sendpromptly
from sendpromptly.integrations.flask import repair_endpoint, stripe_webhook


class Credits:
    """The business effect: a credit balance per Stripe customer. A real app
    keeps this in its database, keyed by event id so a retry adds nothing."""

    def __init__(self) -> None:
        self.balances: Dict[str, int] = {}
        self.applied: set = set()
        self.unknown_customers: set = set()
        self._lock = threading.Lock()

    def add(self, event_id: str, customer: Optional[str], amount: int) -> None:
        if not customer or customer in self.unknown_customers:
            raise LookupError(f"no account for customer {customer!r}")
        with self._lock:
            if event_id in self.applied:  # idempotent: Stripe and repairs may retry
                return
            self.balances[customer] = self.balances.get(customer, 0) + amount
            self.applied.add(event_id)


def create_app(
    sp: Optional[sendpromptly.Client] = None,
    stripe_secret: Optional[str] = None,
    signing_secret: Optional[str] = None,
    credits: Optional[Credits] = None,
) -> Flask:
    app = Flask(__name__)
    sp = sp or sendpromptly.Client()  # SENDPROMPTLY_API_KEY, SENDPROMPTLY_URL
    credits = credits or Credits()
    app.config["credits"] = credits

    # Secrets default to $STRIPE_WEBHOOK_SECRET and $SENDPROMPTLY_SIGNING_SECRET.
    @app.post("/webhooks/stripe")
    @stripe_webhook(
        stripe_secret,
        client=sp,
        event_types=["invoice.paid"],  # others: 200, no receipt
        effect="credits.add",
        metadata=lambda event: {"credits": int(event["data"]["object"].get("amount_paid", 0))},
    )
    def on_invoice_paid(event: Dict[str, Any]) -> Any:
        invoice = event["data"]["object"]
        try:
            with sendpromptly.track(event, client=sp):
                credits.add(event["id"], invoice.get("customer"), int(invoice.get("amount_paid", 0)))
        except LookupError:
            pass  # recorded as a failure: SendPromptly opens an incident, a reprocess repairs it
        return {"received": True}

    @app.post("/sendpromptly/repair")
    @repair_endpoint(signing_secret, client=sp)
    def fulfil(event: sendpromptly.RepairCallbackEvent) -> None:
        # Process the event again (idempotently) from what the receipt said.
        credits.add(event.event_id, event.subject, int((event.metadata or {}).get("credits", 0)))

    return app


if __name__ == "__main__":
    create_app().run(port=5000)
