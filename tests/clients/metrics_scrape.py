"""Scrapes WarpEngine's /metrics and parses it with the Prometheus client library's own text
parser; prints one `name{labels} value` line per sample, sorted, for the test to read.
Usage: python3 metrics_scrape.py PORT"""

import sys
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

port = int(sys.argv[1])
with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
    assert response.status == 200, response.status
    assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    text = response.read().decode()

lines = []
for family in text_string_to_metric_families(text):
    for sample in family.samples:
        labels = ",".join(f'{k}="{v}"' for k, v in sorted(sample.labels.items()))
        lines.append(f"{sample.name}{{{labels}}} {sample.value}")
print("\n".join(sorted(lines)))
