#!/usr/bin/env python3
"""Parses a /metrics text (standard input) with prometheus_client's two parsers — the
OpenMetrics one, strict about the format the service declares, and the classic
Prometheus text one that older scrapers use — and prints every sample as one JSON
object per line: {"family", "type", "name", "labels", "value"} (from the OpenMetrics
parse; the value as Python's shortest round-trip text, e.g. "0.040987906000000005", for
the reader to parse exactly: a JSON number read back by serde_json may land one unit in
the last place away). Fails when either parser refuses the text or they disagree on a sample's value.

Run by tests/api/metrics.rs.
"""
import json
import sys

from prometheus_client.openmetrics.parser import text_string_to_metric_families as openmetrics
from prometheus_client.parser import text_string_to_metric_families as classic


def samples(families):
    for family in families:
        for s in family.samples:
            yield family, s


def main():
    text = sys.stdin.read()
    strict = list(samples(openmetrics(text)))
    loose = {(s.name, tuple(sorted(s.labels.items()))): s.value for _, s in samples(classic(text))}
    for family, s in strict:
        key = (s.name, tuple(sorted(s.labels.items())))
        if key not in loose or loose[key] != s.value:
            sys.exit(f"the parsers disagree on {key}: {s.value} and {loose.get(key)}")
        print(json.dumps({"family": family.name, "type": family.type, "name": s.name,
                          "labels": s.labels, "value": repr(s.value)}))


if __name__ == "__main__":
    main()
