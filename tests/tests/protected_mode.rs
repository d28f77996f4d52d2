//! Protected mode as Redis 7.0 applies it when a connection is accepted: with `protected-mode
//! yes` and a default user that takes any password (`nopass`, even when switched off), a
//! client that is not on the loopback interface gets `-DENIED ...` and is disconnected.
//! Compared with redis-server, reply for reply, from this machine's own non-loopback address.

use std::io::{Read, Write};
use std::net::{IpAddr, TcpStream, UdpSocket};
use std::time::Duration;

use warpengine_tests::{redis_available, start_redis, start_warpengine, RawConn};

/// An address of this machine that is not loopback: the one it would route outward from (a
/// UDP "connect" sends nothing).
fn own_outward_address() -> IpAddr {
    let socket = UdpSocket::bind("0.0.0.0:0").expect("udp socket");
    socket
        .connect("192.0.2.1:9")
        .or_else(|_| socket.connect("10.255.255.1:9"))
        .expect("a route off loopback (the test needs a network interface)");
    let ip = socket.local_addr().expect("local address").ip();
    assert!(!ip.is_loopback(), "{ip} is loopback");
    ip
}

/// What a PING from `from` gets: the whole reply, or what the server wrote before closing.
fn ping_from(from: IpAddr, port: u16) -> String {
    let mut s = TcpStream::connect((from, port)).expect("connect from outside");
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let _ = s.write_all(b"*1\r\n$4\r\nPING\r\n");
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(n) = s.read(&mut buf) {
        if n == 0 {
            break;
        }
        got.extend_from_slice(&buf[..n]);
        if got.ends_with(b"\r\n") && !got.starts_with(b"-DENIED") {
            break;
        }
    }
    String::from_utf8_lossy(&got).into_owned()
}

#[test]
fn protected_mode_refuses_outside_clients_while_the_default_user_has_no_password() {
    assert!(redis_available(), "redis-server is needed (see .ci/run)");
    let outside = own_outward_address();
    let args = ["--bind", "0.0.0.0", "--protected-mode", "yes"];
    let ours = start_warpengine(&args);
    let theirs = start_redis(&args);
    for port in [ours.port, theirs.port] {
        let admin = [
            "ACL",
            "SETUSER",
            "admin",
            "on",
            ">pw",
            "allkeys",
            "allcommands",
        ];
        let admin: Vec<&[u8]> = admin.iter().map(|a| a.as_bytes()).collect();
        assert_eq!(RawConn::connect(port).command(&admin), b"+OK\r\n");
    }
    let steps: &[(&[&str], &str)] = &[
        (&[], "default nopass: refused"),
        (
            &["ACL", "SETUSER", "default", "off"],
            "off but nopass: refused",
        ),
        (
            &["ACL", "SETUSER", "default", "on", ">secret"],
            "a password: NOAUTH",
        ),
        (
            &["ACL", "SETUSER", "default", "nopass"],
            "nopass again: refused",
        ),
        (&["CONFIG", "SET", "protected-mode", "no"], "mode off: PONG"),
    ];
    for (change, what) in steps {
        let mut seen = Vec::new();
        for port in [ours.port, theirs.port] {
            if !change.is_empty() {
                let mut admin = RawConn::connect(port);
                assert_eq!(admin.command(&[b"AUTH", b"admin", b"pw"]), b"+OK\r\n");
                let args: Vec<&[u8]> = change.iter().map(|a| a.as_bytes()).collect();
                assert_eq!(admin.command(&args), b"+OK\r\n", "{what}");
            }
            seen.push(ping_from(outside, port));
        }
        assert_eq!(seen[0], seen[1], "{what}");
        let expected = match *what {
            w if w.ends_with("refused") => "-DENIED",
            w if w.ends_with("NOAUTH") => "-NOAUTH",
            _ => "+PONG",
        };
        assert!(seen[0].starts_with(expected), "{what}: {}", seen[0]);
    }
    // Loopback clients are never refused.
    assert_eq!(
        RawConn::connect(ours.port).command(&[b"PING"]),
        b"+PONG\r\n"
    );
}
