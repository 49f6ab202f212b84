#!/usr/bin/env python3
"""Interop harness for tests/interop_python.rs.

Reads a JSON list of operations on stdin, runs each with the OFFICIAL Python
packages (`stripe`, `standardwebhooks`) and prints a JSON list of results on
stdout. Payloads travel as base64 so they stay byte-exact.

Operations:
  {"op": "stripe_sign", "payload": b64, "secret": str, "timestamp": int}
      -> {"header": "t=...,v1=..."}   (stripe.WebhookSignature.generate_signature_header)
  {"op": "stripe_verify", "payload": b64, "header": str, "secret": str, "tolerance": int}
      -> {"ok": true, "event_id": ..., "type": ...} | {"ok": false, "category": ..., "message": ...}
      (stripe.Webhook.construct_event)
  {"op": "sw_sign", "secret": str, "msg_id": str, "timestamp": int, "payload": b64}
      -> {"signature": "v1,..."}        (standardwebhooks.Webhook(secret).sign)
  {"op": "sw_verify", "secret": str, "headers": {...}, "payload": b64}
      -> {"ok": true, "body": ...} | {"ok": false, "category": ..., "message": ...}
      (standardwebhooks.Webhook(secret).verify)

Error categories are named after the Rust error variants so both sides can be
compared directly.
"""
import base64
import json
import sys
from datetime import datetime, timezone

import stripe
from standardwebhooks.webhooks import Webhook, WebhookVerificationError


def stripe_category(message):
    table = [
        ("No Stripe-Signature header", "missing_header"),
        ("Unable to extract timestamp", "malformed_header"),
        ("No signatures found with expected scheme", "no_v1_signature"),
        ("No signatures found matching", "no_matching_signature"),
        ("Timestamp outside the tolerance zone", "timestamp_outside_tolerance"),
        ("No webhook secret", "missing_secret"),
    ]
    for needle, category in table:
        if needle in message:
            return category
    return "unknown:" + message


def sw_category(message):
    table = [
        ("Missing required headers", "missing_header"),
        ("Invalid Signature Headers", "malformed_timestamp"),
        ("Message timestamp too old", "timestamp_too_old"),
        ("Message timestamp too new", "timestamp_in_future"),
        ("No matching signature found", "no_matching_signature"),
    ]
    for needle, category in table:
        if needle in message:
            return category
    return "unknown:" + message


def run(op):
    kind = op["op"]
    if kind == "stripe_sign":
        payload = base64.b64decode(op["payload"]).decode("utf-8")
        header = stripe.WebhookSignature.generate_signature_header(
            payload, op["secret"], timestamp=op["timestamp"])
        return {"header": header}
    if kind == "stripe_verify":
        payload = base64.b64decode(op["payload"])
        try:
            event = stripe.Webhook.construct_event(
                payload, op["header"], op["secret"], tolerance=op["tolerance"])
        except stripe.SignatureVerificationError as err:
            return {"ok": False, "category": stripe_category(str(err)), "message": str(err)}
        except ValueError as err:  # json.JSONDecodeError, UnicodeDecodeError, thin events
            return {"ok": False, "category": "invalid_payload", "message": str(err)}
        return {"ok": True, "event_id": event["id"], "type": event["type"]}
    if kind == "sw_sign":
        payload = base64.b64decode(op["payload"]).decode("utf-8")
        ts = datetime.fromtimestamp(op["timestamp"], tz=timezone.utc)
        return {"signature": Webhook(op["secret"]).sign(op["msg_id"], ts, payload)}
    if kind == "sw_verify":
        payload = base64.b64decode(op["payload"])
        try:
            body = Webhook(op["secret"]).verify(payload, op["headers"])
        except WebhookVerificationError as err:
            return {"ok": False, "category": sw_category(str(err)), "message": str(err)}
        except ValueError as err:  # e.g. a signature entry without a comma
            return {"ok": False, "category": "malformed_header", "message": str(err)}
        return {"ok": True, "body": body}
    raise SystemExit("unknown op " + kind)


def main():
    ops = json.load(sys.stdin)
    json.dump([run(op) for op in ops], sys.stdout)


if __name__ == "__main__":
    main()
