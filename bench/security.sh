#!/usr/bin/env bash
# Security's costs against Redis (issue 19's figures), redis-benchmark on WarpEngine and a real
# redis-server alternately (fresh servers every round):
#   acl  SET and GET at P=16 as the default user and as a user restricted to the key pattern
#        `key:*` (redis-benchmark's own keys), on both servers: the ratio restricted/default
#        per server says what the per-key check costs.
#   tls  SET and GET at P=1 and P=16 over TLS (`redis-benchmark --tls`, no client certificate)
#        on both servers with the same certificate (made here by openssl, RSA 2048), TLS 1.3.
# Prints ops/s, server CPU seconds per million requests, and the ratios of the round. Quote
# medians: this machine is noisy.
#   bench/security.sh [WARPENGINE_BINARY] [rounds]
# Environment: N (requests, 200000), C (clients, 50), THREADS (WarpEngine workers, 2), PARTS
# ("acl tls", or one of them).
set -euo pipefail
bin=${1:-target/release/warpengine} rounds=${2:-3}
n=${N:-200000}
parts=${PARTS:-acl tls}
. "$(dirname "$0")/lib.sh"

certs=$(mktemp -d)
trap 'rm -rf "$certs"' EXIT
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=bench-ca \
  -keyout "$certs/ca.key" -out "$certs/ca.crt" 2>/dev/null
openssl req -newkey rsa:2048 -nodes -subj /CN=localhost \
  -keyout "$certs/server.key" -out "$certs/server.csr" 2>/dev/null
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' >"$certs/ext"
openssl x509 -req -in "$certs/server.csr" -CA "$certs/ca.crt" -CAkey "$certs/ca.key" \
  -CAcreateserial -days 2 -out "$certs/server.crt" -extfile "$certs/ext" 2>/dev/null
tls_args=(--tls-cert-file "$certs/server.crt" --tls-key-file "$certs/server.key"
  --tls-ca-cert-file "$certs/ca.crt" --tls-auth-clients no)

start_tls() { # server port tls-port -> pid
  local dir
  dir=$(mktemp -d)
  if [ "$1" = warp ]; then
    "$bin" --port "$2" --tls-port "$3" "${tls_args[@]}" --dir "$dir" \
      --threads "${THREADS:-2}" >/dev/null 2>&1 &
  else
    redis-server --port "$2" --tls-port "$3" "${tls_args[@]}" --dir "$dir" --save '' \
      --appendonly no >/dev/null 2>&1 &
  fi
  echo $!
}

ratio() { echo "$1 / $2" | bc -l | xargs printf %.2f; }

for round in $(seq "$rounds"); do
  if [[ " $parts " == *" acl "* ]]; then
    declare -A acl=()
    for server in warp redis; do
      port=$((20000 + RANDOM % 10000))
      pid=$(start "$server" "$port")
      wait_up "$port"
      redis-cli -p "$port" ACL SETUSER bench on '>pw' '~key:*' '+@all' >/dev/null
      line="round $round acl $server"
      for who in default restricted; do
        auth=()
        [ "$who" = restricted ] && auth=(--user bench -a pw)
        for t in set get; do
          read -r rps per_m < <(bench "$port" "$pid" -P 16 -d 64 -t "$t" "${auth[@]}")
          acl[$server-$who-$t]=$rps
          line="$line | $who $t $rps ops/s $(printf %.2f "$per_m") CPU s/M"
        done
      done
      echo "$line"
      kill "$pid"
      wait "$pid" 2>/dev/null || true
    done
    line="round $round acl ratio restricted/default P=16"
    for server in warp redis; do
      for t in set get; do
        line="$line | $server $t $(ratio "${acl[$server-restricted-$t]}" "${acl[$server-default-$t]}")x"
      done
    done
    echo "$line"
  fi
  if [[ " $parts " == *" tls "* ]]; then
    declare -A tls=()
    for server in warp redis; do
      port=$((20000 + RANDOM % 10000))
      tport=$((port + 1))
      pid=$(start_tls "$server" "$port" "$tport")
      wait_up "$port"
      line="round $round tls $server"
      for p in 1 16; do
        for t in set get; do
          read -r rps per_m < <(bench "$tport" "$pid" -P "$p" -d 64 -t "$t" \
            --tls --cacert "$certs/ca.crt")
          tls[$server-$p-$t]=$rps
          line="$line | P=$p $t $rps ops/s $(printf %.2f "$per_m") CPU s/M"
        done
      done
      echo "$line"
      kill "$pid"
      wait "$pid" 2>/dev/null || true
    done
    line="round $round tls ratio warp/redis"
    for p in 1 16; do
      for t in set get; do
        line="$line | P=$p $t $(ratio "${tls[warp-$p-$t]}" "${tls[redis-$p-$t]}")x"
      done
    done
    echo "$line"
  fi
done
