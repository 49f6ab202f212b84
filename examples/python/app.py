"""A Flask app whose Stripe webhook handler adds credits, instrumented with
SendPromptly's two signals, and the repair endpoint SendPromptly calls when
someone asks to reprocess a failed or missing result.

Run it (after `pip install ./bindings/python flask`):

    export STRIPE_WEBHOOK_SECRET=whsec_…          # from the Stripe dashboard / CLI
    export SENDPROMPTLY_API_KEY=sp_live_…          # printed by `sendpromptly serve`
    export SENDPROMPTLY_URL=http://127.0.0.1:7700
    export SENDPROMPTLY_SIGNING_SECRET=whsec_…     # printed by `sendpromptly serve`
    flask --app app run --port 5000

and set the project's repair URL to http://127.0.0.1:5000/sendpromptly/repair.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Any, Dict, Optional

from flask import Flask, request

import sendpromptly

log = logging.getLogger("credits")


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
    stripe_secret = stripe_secret or os.environ["STRIPE_WEBHOOK_SECRET"]
    signing_secret = signing_secret or os.environ["SENDPROMPTLY_SIGNING_SECRET"]
    credits = credits or Credits()
    app.config["credits"] = credits

    def apply(event_id: str, customer: Optional[str], amount: int) -> Optional[str]:
        """Applies the effect; returns why it failed, or None."""
        try:
            credits.add(event_id, customer, amount)
            return None
        except LookupError as err:
            return str(err)

    @app.post("/webhooks/stripe")
    def stripe_webhook() -> Any:
        try:
            event = sendpromptly.stripe.verify(
                request.get_data(), request.headers.get("Stripe-Signature"), stripe_secret
            )
        except sendpromptly.SignatureVerificationError as err:
            return {"error": str(err)}, 400
        if event["type"] != "invoice.paid":
            return {"ignored": event["type"]}, 200
        invoice = event["data"]["object"]
        amount = int(invoice.get("amount_paid", 0))

        # 1. Receipt: we have the event. Never fail the webhook because
        #    SendPromptly is down: the call is bounded (3 s by default).
        try:
            sp.receipt_for(event, effect="credits.add", metadata={"credits": amount})
        except sendpromptly.SendPromptlyError as err:
            log.warning("SendPromptly receipt not recorded: %s", err)

        # 2. The business effect, then the result.
        failure = apply(event["id"], invoice.get("customer"), amount)
        try:
            if failure is None:
                sp.success_for(event)
            else:
                sp.failure_for(event, failure)  # opens an incident at once
        except sendpromptly.SendPromptlyError as err:
            log.warning("SendPromptly result not recorded: %s", err)
        return {"received": True}, 200

    @app.post("/sendpromptly/repair")
    def repair() -> Any:
        try:
            callback = sendpromptly.verify_repair_request(request.get_data(), request.headers, signing_secret)
        except sendpromptly.SignatureVerificationError as err:
            return {"error": str(err)}, 400
        # Process the event again (idempotently) from what the receipt said.
        event = callback.event
        amount = int((event.metadata or {}).get("credits", 0))
        failure = apply(event.event_id, event.subject, amount)
        try:
            if failure is None:
                sp.success_for(callback)  # links the result to this reprocess
            else:
                sp.failure_for(callback, failure)
        except sendpromptly.SendPromptlyError:
            # Not recorded: let SendPromptly deliver the callback again.
            return {"error": "result not recorded"}, 503
        return {"repaired": failure is None}, 200

    return app


if __name__ == "__main__":
    create_app().run(port=5000)
