"""OpenTelemetry glue, used only when ``opentelemetry-api`` is installed (an
optional dependency: nothing here imports it at module load).

- ``current_span_context()``: the current span's ids for the native client,
  which formats and validates the ``traceparent`` (the W3C rules live once,
  in the Rust core) and adds it to every receipt and result.
- ``repair_span(headers)``: a span for a repair handler whose parent is the
  callback's ``traceparent`` (it continues the failing signal's trace).
"""

import contextlib
from typing import Any, Iterator, Mapping, Optional, Tuple

_MISSING = object()
_trace: Any = None


def _api() -> Any:
    """``opentelemetry.trace``, or None when it is not installed (cached)."""
    global _trace
    if _trace is None:
        try:
            from opentelemetry import trace
        except ImportError:
            _trace = _MISSING
        else:
            _trace = trace
    return None if _trace is _MISSING else _trace


def current_span_context() -> Optional[Tuple[int, int, int, Optional[str]]]:
    """``(trace_id, span_id, flags, tracestate)`` of the current valid span, or None."""
    trace = _api()
    if trace is None:
        return None
    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return None
    state = context.trace_state.to_header() if context.trace_state else ""
    return context.trace_id, context.span_id, int(context.trace_flags), state or None


def _header(headers: Any, name: str) -> Optional[str]:
    if headers is None:
        return None
    getter = getattr(headers, "get", None)
    value = getter(name) if getter else None
    if value is None and isinstance(headers, Mapping):
        value = next((v for k, v in headers.items() if str(k).lower() == name), None)
    return value if isinstance(value, str) else None


@contextlib.contextmanager
def repair_span(headers: Any, reprocess_id: str = "") -> Iterator[None]:
    """Runs a repair handler in a span ``sendpromptly.repair`` whose parent is
    the callback's ``traceparent``; does nothing without OpenTelemetry or
    without the header."""
    trace = _api()
    traceparent = _header(headers, "traceparent")
    if trace is None or traceparent is None:
        yield
        return
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    carrier = {"traceparent": traceparent}
    state = _header(headers, "tracestate")
    if state:
        carrier["tracestate"] = state
    parent = TraceContextTextMapPropagator().extract(carrier=carrier)
    tracer = trace.get_tracer("sendpromptly")
    attributes = {"sendpromptly.reprocess_id": reprocess_id} if reprocess_id else {}
    with tracer.start_as_current_span("sendpromptly.repair", context=parent, attributes=attributes):
        yield
