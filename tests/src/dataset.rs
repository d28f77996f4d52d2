//! Comparing whole datasets between servers (replication tests): every key of every database,
//! read type by type, with its absolute expiry.

use std::collections::BTreeMap;

use crate::{RawConn, Resp};

/// Every key of databases 0 to 15 as `db/key` → `expiry type value` (hashes and sets sorted,
/// streams with each consumer group's pending summary). Leaves the connection in db 0.
pub fn contents(c: &mut RawConn) -> BTreeMap<String, String> {
    each_key(c, |c, key, kind| {
        let value = match kind {
            "string" => format!("{:?}", c.call(&["GET", key])),
            "list" => format!("{:?}", c.call(&["LRANGE", key, "0", "-1"])),
            "hash" => sorted(c.call(&["HGETALL", key])),
            "set" => sorted(c.call(&["SMEMBERS", key])),
            "zset" => format!("{:?}", c.call(&["ZRANGE", key, "0", "-1", "WITHSCORES"])),
            "stream" => stream(c, key),
            // WarpEngine's decaying counters: their members by rank (scores move with
            // time, so two reads a moment apart differ in them).
            "temporal" => format!("{:?}", c.call(&["TEMPORAL", "TOP", key, "1000"])),
            other => panic!("type {other}"),
        };
        format!("{kind} {value}")
    })
}

/// Every key of databases 0 to 15 as `db/key` → `expiry value`, its value read by `value`
/// (given the key and its TYPE). Leaves the connection in db 0.
pub fn each_key(
    c: &mut RawConn,
    mut value: impl FnMut(&mut RawConn, &str, &str) -> String,
) -> BTreeMap<String, String> {
    let mut all = BTreeMap::new();
    for db in 0..16 {
        c.call(&["SELECT", &db.to_string()]);
        let Resp::Array(keys) = c.call(&["KEYS", "*"]) else {
            panic!("KEYS")
        };
        for key in keys {
            let Resp::Bulk(key) = key else { panic!("key") };
            let key = String::from_utf8(key).unwrap();
            let Resp::Simple(kind) = c.call(&["TYPE", &key]) else {
                panic!("TYPE")
            };
            let value = value(c, &key, &kind);
            let expiry = c.call(&["PEXPIRETIME", &key]).int();
            all.insert(format!("{db}/{key}"), format!("{expiry} {value}"));
        }
    }
    c.call(&["SELECT", "0"]);
    all
}

/// A stream's entries, and per group (by name) its pending summary.
fn stream(c: &mut RawConn, key: &str) -> String {
    let mut out = format!("{:?}", c.call(&["XRANGE", key, "-", "+"]));
    let Resp::Array(groups) = c.call(&["XINFO", "GROUPS", key]) else {
        panic!("XINFO GROUPS")
    };
    for group in groups {
        let Resp::Array(fields) = group else {
            panic!("a group")
        };
        let Resp::Bulk(name) = &fields[1] else {
            panic!("a group's name")
        };
        let name = String::from_utf8_lossy(name).into_owned();
        out.push_str(&format!(" {name}: {:?}", c.call(&["XPENDING", key, &name])));
    }
    out
}

/// An array reply's items, sorted (for unordered types).
pub fn sorted(reply: Resp) -> String {
    let Resp::Array(items) = reply else {
        panic!("not an array: {reply:?}")
    };
    let mut items: Vec<String> = items.iter().map(|i| format!("{i:?}")).collect();
    items.sort();
    items.join(",")
}

/// Asserts two `contents` are equal, naming the keys that differ (the values are long).
pub fn assert_same(got: &BTreeMap<String, String>, expected: &BTreeMap<String, String>) {
    let differing: Vec<String> = expected
        .keys()
        .chain(got.keys())
        .filter(|k| got.get(*k) != expected.get(*k))
        .map(|k| {
            let short = |v: Option<&String>| v.map(|v| v.chars().take(300).collect::<String>());
            format!(
                "{k}: {:?} != {:?}",
                short(got.get(k)),
                short(expected.get(k))
            )
        })
        .collect();
    assert!(differing.is_empty(), "{differing:#?}");
}
