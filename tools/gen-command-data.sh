#!/usr/bin/env bash
# Regenerates server/data/redis-commands.resp: for every top-level command a real redis-server
# knows (its COMMAND LIST, sorted), the raw RESP3 replies to `COMMAND DOCS <name>` and
# `COMMAND INFO <name>`. The whole list is recorded so that adding a command to WarpEngine's
# table needs no regeneration.
#
# Usage: tools/gen-command-data.sh [command-name ...]   (default: all of Redis's commands)
# Needs: redis-server (the version the data should mirror; 7.0.15 today) and python3.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
out="$root/server/data/redis-commands.resp"

names=("$@")

port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
dir="$(mktemp -d)"
redis-server --port "$port" --save "" --appendonly no --dir "$dir" >"$dir/log" 2>&1 &
pid=$!
trap 'kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; rm -rf "$dir"' EXIT

python3 - "$port" "$out" "${names[@]}" <<'PY'
import socket, sys, time

port, out, names = int(sys.argv[1]), sys.argv[2], sys.argv[3:]

for _ in range(200):
    try:
        sock = socket.create_connection(("127.0.0.1", port))
        break
    except OSError:
        time.sleep(0.05)
else:
    sys.exit("redis-server did not start")

buf = b""

def fill():
    global buf
    chunk = sock.recv(65536)
    if not chunk:
        sys.exit("connection closed")
    buf += chunk

def line(pos):
    while True:
        end = buf.find(b"\r\n", pos)
        if end >= 0:
            return end
        fill()

def reply_end(pos):
    """Offset just past the complete RESP3 reply starting at pos."""
    global buf
    end = line(pos)
    tag, head, after = buf[pos:pos + 1], buf[pos + 1:end], end + 2
    if tag in b"+-:,#_(":
        return after
    n = int(head)
    if tag in b"$=!":
        if n < 0:
            return after
        while len(buf) < after + n + 2:
            fill()
        return after + n + 2
    if tag in b"*~>%|":
        if n < 0:
            return after
        for _ in range(n * 2 if tag in b"%|" else n):
            after = reply_end(after)
        return after
    sys.exit("unexpected reply type %r" % tag)

def command(*args):
    global buf
    req = b"*%d\r\n" % len(args)
    for a in args:
        a = a.encode()
        req += b"$%d\r\n%s\r\n" % (len(a), a)
    sock.sendall(req)
    end = reply_end(0)
    reply, buf = buf[:end], buf[end:]
    return reply

hello = command("HELLO", "3")
if not names:
    listing = command("COMMAND", "LIST")
    # *N, then $len / name pairs.
    lines = listing.split(b"\r\n")[1:-1]
    names = sorted(l.decode() for l in lines[1::2] if "|" not in l.decode())
version = hello.split(b"version\r\n", 1)[1].split(b"\r\n")[1].decode()
data = b""
missing = []
for name in names:
    docs = command("COMMAND", "DOCS", name)
    info = command("COMMAND", "INFO", name)
    if docs == b"%0\r\n":
        missing.append(name)
    data += docs + info
with open(out, "wb") as f:
    f.write(data)
print("redis-server %s: %d commands -> %s (%d bytes)" % (version, len(names), out, len(data)))
if missing:
    print("not known to Redis (empty DOCS map, null INFO):", " ".join(missing))
PY
