#!/usr/bin/env python3
"""Independent check of GET /v1/stats (issue #25), run by
sendpromptly-server/tests/analytics.rs.

Reads a JSON file with the raw timings the test produced (receipt and
success times of each event, opening and resolution of each incident, the
SLOs, the clock) and the server's reports, recomputes every figure from
the definitions in docs/analytics.md with Python's `statistics`, and exits
non-zero on the first disagreement.

Percentiles: the server reports the midpoint of the log bucket holding the
nearest-rank value. This script computes the exact nearest-rank value
(`statistics.median_low` for p50, the sorted list for p95/p99), applies
the documented bucket rule to it, and also asserts the documented error
bound (0.4 %) against the exact value.
"""
import json
import math
import statistics
import sys

DAY = 86_400_000
SLOT = 300_000
BURN_RULES = [(60, 5, 14.4), (360, 30, 6.0)]
checks = 0


def fail(msg):
    print("MISMATCH:", msg)
    sys.exit(1)


def same(what, got, want, tol=1e-9):
    global checks
    checks += 1
    if want is None or got is None:
        if got is not want and got != want:
            fail(f"{what}: server {got!r}, python {want!r}")
        return
    if abs(got - want) > tol * max(1.0, abs(want)):
        fail(f"{what}: server {got!r}, python {want!r}")


def bucket(v):
    v = max(0, int(v))
    if v < 256:
        return v
    e = v.bit_length() - 1 - 7
    return e * 128 + (v >> e)


def bucket_mid(b):
    if b < 256:
        return float(b)
    e = b // 128 - 1
    low = (b - e * 128) << e
    return (low + low + (1 << e) - 1) / 2


def nearest_rank(values, q):
    s = sorted(values)
    return s[min(len(s), max(1, math.ceil(q * len(s)))) - 1]


def check_durations(what, got, values):
    same(f"{what}.count", got["count"], len(values))
    for q, key in [(0.5, "p50_ms"), (0.95, "p95_ms"), (0.99, "p99_ms")]:
        if not values:
            same(f"{what}.{key}", got[key], None)
            continue
        exact = nearest_rank(values, q)
        if q == 0.5:
            assert exact == statistics.median_low(values)
        want = bucket_mid(bucket(exact))
        same(f"{what}.{key}", got[key], want)
        if abs(got[key] - exact) > exact / 256 + 0.5:
            fail(f"{what}.{key}: {got[key]} is outside 0.4 % of the exact {exact}")


def figures(what, got, events, incidents):
    same(f"{what}.received", got["received"], len(events))
    tte = [e["success_ms"] - e["received_ms"] for e in events if e["success_ms"] is not None]
    check_durations(f"{what}.time_to_effect", got["time_to_effect"], tte)
    check_durations(f"{what}.delivery_lag", got["delivery_lag"], [])
    ttr = [i["resolved_ms"] - i["opened_ms"] for i in incidents if i["resolved_ms"] is not None]
    check_durations(f"{what}.time_to_repair", got["time_to_repair"], ttr)
    rep = got["repairs"]
    same(f"{what}.repairs.opened", rep["opened"], len(incidents))
    same(f"{what}.repairs.resolved_manually", rep["resolved_manually"],
         sum(1 for i in incidents if i["how"] == "manual"))
    same(f"{what}.repairs.repaired_by_reprocess", rep["repaired_by_reprocess"], 0)
    same(f"{what}.repairs.still_open", rep["still_open"],
         sum(1 for i in incidents if i["how"] == "open"))


def check_report(report, events, incidents, now, event_type=None):
    if event_type:
        events = [e for e in events if e["event_type"] == event_type]
        incidents = [i for i in incidents if i["event_type"] == event_type]
    figures("overall", report["overall"], events, incidents)
    types = sorted({e["event_type"] for e in events})
    same("types", len(report["by_event_type"]), len(types))
    for got, t in zip(report["by_event_type"], types):
        if got["event_type"] != t:
            fail(f"type order: {got['event_type']} vs {t}")
        figures(t, got, [e for e in events if e["event_type"] == t],
                [i for i in incidents if i["event_type"] == t])
    for d in report["daily"]:
        day_events = [e for e in events
                      if e["received_ms"] // DAY * DAY == to_ms(d["day"])]
        same(f"daily {d['day']}.received", d["received"], len(day_events))
        check_durations(f"daily {d['day']}.time_to_effect", d["time_to_effect"],
                        [e["success_ms"] - e["received_ms"] for e in day_events
                         if e["success_ms"] is not None])
    same("daily total", sum(d["received"] for d in report["daily"]), len(events))


def to_ms(day):
    import datetime
    d = datetime.datetime.strptime(day, "%Y-%m-%d").replace(tzinfo=datetime.timezone.utc)
    return int(d.timestamp() * 1000)


def slo_counts(events, slo, now, minutes):
    threshold = slo["threshold_seconds"] * 1000
    end = (now - threshold) // SLOT * SLOT
    start = end - minutes * 60_000
    due = [e for e in events if e["event_type"] == slo["event_type"]
           and start <= e["received_ms"] // SLOT * SLOT < end]
    good = [e for e in due if e["success_ms"] is not None
            and e["success_ms"] - e["received_ms"] <= threshold]
    return len(due), len(good)


def burn(due, good, objective):
    return 0.0 if due == 0 else (due - good) / due / (1 - objective)


def check_slos(report, events, now):
    for got in report["slos"]:
        objective = got["objective_percent"] / 100
        due, good = slo_counts(events, got, now, got["window_days"] * 24 * 60)
        what = f"slo {got['event_type']}"
        same(f"{what}.due", got["due"], due)
        same(f"{what}.good", got["good"], good)
        same(f"{what}.attainment_percent", got["attainment_percent"],
             None if due == 0 else good / due * 100)
        same(f"{what}.error_budget_left_percent", got["error_budget_left_percent"],
             None if due == 0 else (1 - (due - good) / (due * (1 - objective))) * 100)
        same(f"{what}.burn_rate_1h", got["burn_rate_1h"],
             burn(*slo_counts(events, got, now, 60), objective))
        burning = any(
            burn(*slo_counts(events, got, now, long), objective) >= factor
            and burn(*slo_counts(events, got, now, short), objective) >= factor
            for long, short, factor in BURN_RULES)
        same(f"{what}.burning", got["burning"], burning)


def main():
    data = json.load(open(sys.argv[1]))
    now = data["now_ms"]
    events, incidents = data["events"], data["incidents"]
    check_report(data["report"], events, incidents, now)
    check_slos(data["report"], events, now)
    if len(data["report"]["slos"]) != len(data["slos"]):
        fail("every SLO is reported")
    only = data["report_order_created"]
    check_report(only, [e for e in events if e["received_ms"] >= to_ms(only["daily"][0]["day"])],
                 incidents, now, "order.created")
    check_slos(only, events, now)
    print(f"checked {checks} figures against Python's computation")


main()
