"""Framework and job-queue integrations: one decorator instead of two calls.

Each module imports only when its framework is installed
(``pip install 'sendpromptly[flask]'``, ``[fastapi]``, ``[django]``,
``[celery]``, ``[rq]``):

- :mod:`sendpromptly.integrations.flask`, :mod:`~sendpromptly.integrations.starlette`
  (FastAPI), :mod:`~sendpromptly.integrations.django`: ``stripe_webhook`` and
  ``shopify_webhook`` (verify, receipt, typed event to the view; 400 on a bad
  signature) and ``repair_endpoint`` (verify the repair callback, call the
  app's fulfilment function, report the result with the ``reprocess_id``).
- :mod:`sendpromptly.integrations.celery`: the event reference travels in the
  task's headers; the result is sent when the task succeeds or finally fails.
- :mod:`sendpromptly.integrations.rq`: the same for RQ jobs (``meta`` and the
  job's success/failure callbacks).

``sendpromptly.track`` works anywhere else. Instrumentation never raises:
what cannot be sent is logged on the ``sendpromptly`` logger.
"""
