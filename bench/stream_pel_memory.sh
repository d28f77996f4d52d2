#!/bin/bash
# Memory per pending entry of a consumer group: N (100,000) entries added to a stream, then read
# by one consumer in one XREADGROUP; prints INFO's used_memory growth across that read per entry.
# Usage: [N=entries] bench/stream_pel_memory.sh PORT   (a running redis-server or WarpEngine; uses
# key pel:s)
set -euo pipefail
PORT=$1
N=${N:-100000}
R="redis-cli -p $PORT"
TMP=$(mktemp)
trap 'rm -f "$TMP"' EXIT
$R del pel:s >/dev/null
python3 -c "
import sys
out = []
for i in range($N):
    a = ['XADD', 'pel:s', '%d-0' % (i + 1), 'f', 'v']
    out.append('*%d\r\n' % len(a) + ''.join('\$%d\r\n%s\r\n' % (len(x), x) for x in a))
sys.stdout.write(''.join(out))" > "$TMP"
$R --pipe < "$TMP" >/dev/null
$R xgroup create pel:s g 0 >/dev/null
used() { $R info memory | grep '^used_memory:' | tr -d '\r' | cut -d: -f2; }
before=$(used)
$R xreadgroup group g consumer-with-a-name count $N streams pel:s '>' >/dev/null
after=$(used)
echo "port $PORT: $(( (after - before) / N )) bytes per pending entry"
$R del pel:s >/dev/null
