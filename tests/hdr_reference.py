"""Reads taskscope's HdrHistogram outputs with a reference reader: Python's `hdrhistogram`
package (HdrHistogram's own Python port, from PyPI). Run by CI:

    python3 tests/hdr_reference.py REPORT.hlog REPORT.json

Checks that every interval of the log decodes, that every `*_hdr` field of the JSON report
decodes, and that both agree with the JSON report's own counts, medians and maxima.
"""

import json
import sys

from hdrh.histogram import HdrHistogram
from hdrh.log import HistogramLogReader


def fail(message):
    print(f"hdr_reference: {message}", file=sys.stderr)
    sys.exit(1)


def close(ours, theirs):
    """taskscope's buckets are within 1.6 %, HdrHistogram's 3 digits within 0.1 %."""
    return abs(ours - theirs) <= max(1, 0.03 * max(ours, theirs))


def decoded(encoded, what):
    try:
        return HdrHistogram.decode(encoded)
    except Exception as e:  # the reader's own exceptions (cookie, payload) name no common base
        fail(f"{what}: the reference reader cannot decode it: {type(e).__name__} {e}")


def json_histograms(report):
    """(tag as in the interval log, percentiles, base64 payload) of every histogram."""
    for t in report["tasks"]:
        yield f"poll:{t['name']}", t["poll_ns"], t["poll_ns_hdr"]
        yield f"scheduled:{t['name']}", t["scheduled_ns"], t["scheduled_ns_hdr"]
    for s in report.get("scopes", []):
        yield f"scope_latency:{s['name']}", s["latency_ns"], s["latency_ns_hdr"]
    for lock in report["locks"]:
        side = {"rwlock_read": ":read", "rwlock_write": ":write"}.get(lock["kind"], "")
        yield f"lock_wait:{lock['name']}{side}", lock["wait_ns"], lock["wait_ns_hdr"]
        yield f"lock_hold:{lock['name']}{side}", lock["hold_ns"], lock["hold_ns_hdr"]
    for sem in report["semaphores"]:
        yield f"semaphore_wait:{sem['name']}", sem["wait_ns"], sem["wait_ns_hdr"]


def tag_text(tag):
    return "".join("_" if c in ", \r\n" else c for c in tag)


def main(hlog_path, json_path):
    with open(json_path) as f:
        report = json.load(f)
    expected = {}
    for tag, percentiles, encoded in json_histograms(report):
        h = decoded(encoded, f"JSON {tag}")
        if h.get_total_count() != percentiles["count"]:
            fail(f"JSON {tag}: {h.get_total_count()} values, the report says {percentiles['count']}")
        # The median agrees within the buckets' precision. (An upper percentile with few values
        # above it may sit a bucket apart: the two pick a percentile's value by its rank in
        # ways that can differ by one value.) The report's maximum is exact over every poll,
        # the histogram holds the timed ones: the histogram's cannot be above it.
        if percentiles["count"]:
            p50 = h.get_value_at_percentile(50)
            if not close(percentiles["p50"], p50):
                fail(f"JSON {tag}: p50 {p50}, the report says {percentiles['p50']}")
            if h.get_max_value() > percentiles["max"] * 1.03 + 1:
                fail(f"JSON {tag}: max {h.get_max_value()} above the report's {percentiles['max']}")
        if percentiles["count"]:
            expected[tag_text(tag)] = percentiles["count"]

    reader = HistogramLogReader(hlog_path, HdrHistogram(1, 10**15, 3))
    seen = {}
    while True:
        h = reader.get_next_interval_histogram()
        if h is None:
            break
        seen[h.get_tag()] = h.get_total_count()
    if not seen:
        fail(f"{hlog_path}: no interval read")
    if seen != expected:
        fail(f"{hlog_path}: intervals {seen}, the JSON report's histograms {expected}")
    print(f"hdr_reference: {len(seen)} intervals and {len(expected)} JSON histograms read alike")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        fail("usage: hdr_reference.py REPORT.hlog REPORT.json")
    main(sys.argv[1], sys.argv[2])
