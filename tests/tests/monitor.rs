//! MONITOR against the real binary: Redis's line format, every connection's commands on any
//! worker, a transaction's commands when EXEC runs them (EXEC last), AUTH redacted, admin
//! commands hidden, and redis-cli MONITOR.

use std::io::Read;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use warpengine_tests::{start_warpengine, RawConn, Resp};

/// The arguments part of a monitor line: `+<secs>.<micros> [<db> <addr>] <args>`, checked.
fn monitored(line: Vec<u8>) -> (String, String) {
    let text = String::from_utf8(line).expect("utf-8 line");
    let text = text.strip_suffix("\r\n").expect("a line");
    let rest = text.strip_prefix('+').expect("a status line");
    let (stamp, rest) = rest.split_once(' ').expect("a timestamp");
    let (secs, micros) = stamp.split_once('.').expect("seconds.micros");
    assert!(secs.parse::<u64>().is_ok() && micros.len() == 6, "{text}");
    let (client, args) = rest.split_once("] ").expect("[db addr]");
    (client.trim_start_matches('[').to_string(), args.to_string())
}

#[test]
fn monitor_shows_every_client_s_commands_in_redis_s_format() {
    let server = start_warpengine(&["--threads", "2"]);
    let mut mon = RawConn::connect(server.port);
    assert_eq!(mon.command(&[b"MONITOR"]), b"+OK\r\n");
    let mut c = RawConn::connect(server.port);
    c.call(&["SET", "k", "a \"quoted\"\nvalue"]);
    c.call(&["SELECT", "3"]);
    c.call(&["GET", "k"]);
    c.call(&["AUTH", "secret"]);
    c.call(&["CONFIG", "GET", "maxmemory"]);
    c.call(&["MULTI"]);
    c.call(&["INCR", "n"]);
    c.call(&["EXEC"]);
    let expected = [
        ("0", r#""SET" "k" "a \"quoted\"\nvalue""#),
        ("0", r#""SELECT" "3""#),
        ("3", r#""GET" "k""#),
        ("3", r#""AUTH" "(redacted)""#),
        // CONFIG is an admin command: not shown.
        ("3", r#""MULTI""#),
        ("3", r#""INCR" "n""#),
        ("3", r#""EXEC""#),
    ];
    for (db, args) in expected {
        let (client, got) = monitored(mon.read_reply().expect("a monitor line"));
        assert!(client.starts_with(&format!("{db} 127.0.0.1:")), "{client}");
        assert_eq!(got, args);
    }
    // RESET ends monitoring.
    assert_eq!(mon.command(&[b"RESET"]), b"+RESET\r\n");
    c.call(&["PING"]);
    assert_eq!(mon.command(&[b"PING"]), b"+PONG\r\n");
}

#[test]
fn redis_cli_monitor_prints_commands() {
    let server = start_warpengine(&["--threads", "2"]);
    let mut cli = Command::new("redis-cli")
        .args(["-p", &server.port.to_string(), "MONITOR"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("redis-cli");
    let mut c = RawConn::connect(server.port);
    // Until redis-cli's MONITOR has run, nothing shows: keep writing for a while.
    let deadline = Instant::now() + Duration::from_millis(1500);
    while Instant::now() < deadline {
        assert_eq!(
            c.call(&["SET", "cli-key", "cli-value"]),
            Resp::Simple("OK".into())
        );
        thread::sleep(Duration::from_millis(50));
    }
    cli.kill().expect("kill redis-cli");
    let mut out = String::new();
    cli.stdout.take().unwrap().read_to_string(&mut out).unwrap();
    cli.wait().expect("redis-cli ended");
    assert!(out.contains(r#""SET" "cli-key" "cli-value""#), "{out}");
}
