//! TLS on `tls-port` against the real binary, with certificates made by `openssl` for each test:
//! redis-cli --tls with and without a client certificate under each `tls-auth-clients`, a
//! certificate from an unknown authority and a plaintext client refused while the server serves
//! on, the plaintext port beside the TLS one or `port 0`, `tls-protocols`, certificate files
//! replaced by CONFIG SET without a restart, and redis-py with `ssl=True`.

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use warpengine_tests::{
    free_port, run_python, start_warpengine, warpengine_binary, RawConn, Resp, ServerProcess,
    TempDir,
};

/// Runs openssl; panics with its output if it fails.
fn openssl(dir: &str, args: &[&str]) {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("openssl");
    assert!(out.status.success(), "openssl {args:?}: {out:?}");
}

/// An authority `ca` (ca.crt, ca.key) in `dir`.
fn authority(dir: &str, ca: &str) {
    let (crt, key) = (format!("{ca}.crt"), format!("{ca}.key"));
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            &format!("/CN={ca}"),
            "-keyout",
            &key,
            "-out",
            &crt,
        ],
    );
}

/// A certificate `name` (name.crt, name.key) signed by `ca`, for a server (localhost) or a
/// client.
fn certificate(dir: &str, ca: &str, name: &str, server: bool) {
    let (crt, key, csr) = (
        format!("{name}.crt"),
        format!("{name}.key"),
        format!("{name}.csr"),
    );
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            &format!("/CN={name}"),
            "-keyout",
            &key,
            "-out",
            &csr,
        ],
    );
    let ext = format!("{name}.ext");
    let extensions = if server {
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n"
    } else {
        "extendedKeyUsage=clientAuth\n"
    };
    std::fs::write(format!("{dir}/{ext}"), extensions).unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            &format!("{ca}.crt"),
            "-CAkey",
            &format!("{ca}.key"),
            "-CAcreateserial",
            "-days",
            "2",
            "-out",
            &crt,
            "-extfile",
            &ext,
        ],
    );
}

/// Authorities `ca` and `other`; `server` and `client` signed by ca, `stranger` (a client) by
/// other, `server2` (a server) by other.
fn certificates(name: &str) -> TempDir {
    let dir = TempDir::new(name);
    let d = dir.path();
    authority(d, "ca");
    authority(d, "other");
    certificate(d, "ca", "server", true);
    certificate(d, "ca", "client", false);
    certificate(d, "other", "stranger", false);
    certificate(d, "other", "server2", true);
    dir
}

fn tls_args(dir: &TempDir, tls_port: u16) -> Vec<String> {
    let d = dir.path();
    [
        "--tls-port",
        &tls_port.to_string(),
        "--tls-cert-file",
        &format!("{d}/server.crt"),
        "--tls-key-file",
        &format!("{d}/server.key"),
        "--tls-ca-cert-file",
        &format!("{d}/ca.crt"),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// redis-cli over TLS trusting `ca`, with the client certificate `client` if any.
fn cli(dir: &TempDir, port: u16, ca: &str, client: Option<&str>, args: &[&str]) -> Output {
    let d = dir.path();
    let mut cmd = Command::new("redis-cli");
    cmd.args(["-p", &port.to_string(), "--tls", "--cacert"])
        .arg(format!("{d}/{ca}.crt"));
    if let Some(c) = client {
        cmd.arg("--cert")
            .arg(format!("{d}/{c}.crt"))
            .arg("--key")
            .arg(format!("{d}/{c}.key"));
    }
    cmd.args(args)
        .stdin(Stdio::null())
        .output()
        .expect("redis-cli")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn start_with_tls(dir: &TempDir) -> (ServerProcess, u16) {
    let tls_port = free_port();
    let args = tls_args(dir, tls_port);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    (start_warpengine(&args), tls_port)
}

#[test]
fn clients_with_a_certificate_are_served_and_others_refused_cleanly() {
    let dir = certificates("tls-auth");
    let (server, tls) = start_with_tls(&dir);
    let with_cert = cli(
        &dir,
        tls,
        "ca",
        Some("client"),
        &["SET", "tls:k", "over tls"],
    );
    assert_eq!(stdout(&with_cert), "OK", "{with_cert:?}");
    // The plaintext port serves the same data at once.
    let mut plain = RawConn::connect(server.port);
    assert_eq!(
        plain.call(&["GET", "tls:k"]),
        Resp::Bulk(b"over tls".to_vec())
    );
    // tls-auth-clients yes (the default): no certificate, or one no known authority signed.
    for client in [None, Some("stranger")] {
        let refused = cli(&dir, tls, "ca", client, &["GET", "tls:k"]);
        assert_ne!(stdout(&refused), "over tls", "{client:?} was served");
    }
    // A plaintext client on the TLS port gets no reply and is closed.
    let mut stray = std::net::TcpStream::connect(("127.0.0.1", tls)).unwrap();
    stray
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    std::io::Write::write_all(&mut stray, b"PING\r\n").unwrap();
    let mut reply = Vec::new();
    let _ = std::io::Read::read_to_end(&mut stray, &mut reply);
    assert!(!reply.starts_with(b"+PONG"), "{reply:?}");
    // The server serves on.
    assert_eq!(
        stdout(&cli(&dir, tls, "ca", Some("client"), &["GET", "tls:k"])),
        "over tls"
    );
    for (mode, without_cert_served) in [("optional", true), ("no", true)] {
        plain.call(&["CONFIG", "SET", "tls-auth-clients", mode]);
        let out = cli(&dir, tls, "ca", None, &["PING"]);
        assert_eq!(
            stdout(&out) == "PONG",
            without_cert_served,
            "{mode}: {out:?}"
        );
    }
    // optional still checks a certificate that is given.
    plain.call(&["CONFIG", "SET", "tls-auth-clients", "optional"]);
    assert_ne!(
        stdout(&cli(&dir, tls, "ca", Some("stranger"), &["PING"])),
        "PONG"
    );
    // The server's certificate is checked by the client too.
    assert_ne!(
        stdout(&cli(&dir, tls, "other", Some("client"), &["PING"])),
        "PONG"
    );
}

#[test]
fn new_certificate_files_take_effect_without_a_restart() {
    let dir = certificates("tls-reload");
    let d = dir.path();
    let (server, tls) = start_with_tls(&dir);
    let mut admin = RawConn::connect(server.port);
    admin.call(&["CONFIG", "SET", "tls-auth-clients", "no"]);
    assert_eq!(stdout(&cli(&dir, tls, "ca", None, &["PING"])), "PONG");
    let bad = admin.call(&[
        "CONFIG",
        "SET",
        "tls-cert-file",
        &format!("{d}/missing.crt"),
    ]);
    assert_eq!(
        bad,
        Resp::Error("ERR CONFIG SET failed (possibly related to argument 'tls-cert-file') - Unable to update TLS configuration. Check server logs.".into())
    );
    // Refused: the old certificate still serves.
    assert_eq!(stdout(&cli(&dir, tls, "ca", None, &["PING"])), "PONG");
    let set = admin.call(&[
        "CONFIG",
        "SET",
        "tls-cert-file",
        &format!("{d}/server2.crt"),
        "tls-key-file",
        &format!("{d}/server2.key"),
    ]);
    assert_eq!(set, Resp::Simple("OK".into()));
    assert_eq!(stdout(&cli(&dir, tls, "other", None, &["PING"])), "PONG");
    assert_ne!(stdout(&cli(&dir, tls, "ca", None, &["PING"])), "PONG");
}

/// Whether `openssl s_client` with these options (-tls1_2, -ciphersuites ...) completes a
/// handshake.
fn handshake(dir: &TempDir, port: u16, options: &[&str]) -> bool {
    let d = dir.path();
    Command::new("openssl")
        .args(["s_client", "-connect", &format!("127.0.0.1:{port}")])
        .args(options)
        .args(["-CAfile", &format!("{d}/ca.crt")])
        .args([
            "-cert",
            &format!("{d}/client.crt"),
            "-key",
            &format!("{d}/client.key"),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("openssl s_client")
        .success()
}

#[test]
fn tls_protocols_and_port_zero() {
    let dir = certificates("tls-protocols");
    let tls = free_port();
    let mut args = tls_args(&dir, tls);
    args.extend(["--port", "0", "--tls-protocols", "TLSv1.2"].map(String::from));
    let mut child = Command::new(warpengine_binary())
        .args(&args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("warpengine");
    let deadline = Instant::now() + Duration::from_secs(20);
    while stdout(&cli(&dir, tls, "ca", Some("client"), &["PING"])) != "PONG" {
        assert!(Instant::now() < deadline, "no TLS service with port 0");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(handshake(&dir, tls, &["-tls1_2"]));
    assert!(
        !handshake(&dir, tls, &["-tls1_3"]),
        "TLS 1.3 offered against tls-protocols"
    );
    let set = cli(
        &dir,
        tls,
        "ca",
        Some("client"),
        &["CONFIG", "SET", "tls-protocols", "TLSv1.3"],
    );
    assert_eq!(stdout(&set), "OK");
    assert!(handshake(&dir, tls, &["-tls1_3"]));
    assert!(!handshake(&dir, tls, &["-tls1_2"]));
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn redis_py_over_tls() {
    let dir = certificates("tls-py");
    let d = dir.path();
    let (_server, tls) = start_with_tls(&dir);
    let script = format!(
        r#"
import redis
r = redis.Redis(host="localhost", port={tls}, ssl=True, ssl_ca_certs="{d}/ca.crt",
                ssl_certfile="{d}/client.crt", ssl_keyfile="{d}/client.key")
r.set("py:tls", "secure")
assert r.get("py:tls") == b"secure", r.get("py:tls")
p = r.pipeline()
for i in range(100):
    p.incr("py:n")
assert p.execute()[-1] == 100
print("ok")
"#
    );
    let (ok, out) = run_python(&["-c", &script]);
    assert!(ok && out.contains("ok"), "{out}");
}

#[test]
fn ioredis_and_node_redis_over_tls() {
    let node = concat!(env!("CARGO_MANIFEST_DIR"), "/clients/node");
    if !std::path::Path::new(node).join("node_modules").exists() {
        // As tests/node_clients.rs: scripts/test.sh installs them and requires the test.
        assert!(
            std::env::var("WARP_REQUIRE_GUARD").as_deref() != Ok("1"),
            "no {node}/node_modules: run `npm ci` there (scripts/test.sh does)"
        );
        eprintln!("skipped: no {node}/node_modules");
        return;
    }
    let dir = certificates("tls-node");
    let (_server, tls) = start_with_tls(&dir);
    let out = Command::new("node")
        .arg(format!("{node}/tls_smoke.mjs"))
        .arg(tls.to_string())
        .arg(dir.path())
        .output()
        .expect("node");
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && text.contains("node tls: ok"),
        "{text}"
    );
}

#[test]
fn the_redis_crate_over_tls() {
    let dir = certificates("tls-rs");
    let d = dir.path();
    let (_server, tls) = start_with_tls(&dir);
    let read = |name: &str| std::fs::read(format!("{d}/{name}")).unwrap();
    let client = redis::Client::build_with_tls(
        format!("rediss://localhost:{tls}"),
        redis::TlsCertificates {
            client_tls: Some(redis::ClientTlsConfig {
                client_cert: read("client.crt"),
                client_key: read("client.key"),
            }),
            root_cert: Some(read("ca.crt")),
        },
    )
    .expect("client");
    let mut c = client.get_connection().expect("connection over TLS");
    let _: () = redis::cmd("SET")
        .arg(&["rs:tls", "secure"])
        .query(&mut c)
        .expect("set");
    let got: String = redis::cmd("GET").arg("rs:tls").query(&mut c).expect("get");
    assert_eq!(got, "secure");
    // Without its certificate the crate's connection is refused.
    let anonymous = redis::Client::build_with_tls(
        format!("rediss://localhost:{tls}"),
        redis::TlsCertificates {
            client_tls: None,
            root_cert: Some(read("ca.crt")),
        },
    )
    .expect("client");
    let refused = anonymous
        .get_connection()
        .and_then(|mut c| redis::cmd("PING").query::<String>(&mut c));
    assert!(refused.is_err(), "{refused:?}");
}

#[test]
fn ciphersuites_and_a_ca_directory() {
    let dir = certificates("tls-suites");
    let d = dir.path();
    let (server, tls) = start_with_tls(&dir);
    let mut admin = RawConn::connect(server.port);
    assert!(handshake(
        &dir,
        tls,
        &["-tls1_3", "-ciphersuites", "TLS_AES_128_GCM_SHA256"]
    ));
    let set = admin.call(&[
        "CONFIG",
        "SET",
        "tls-ciphersuites",
        "TLS_AES_256_GCM_SHA384",
    ]);
    assert_eq!(set, Resp::Simple("OK".into()));
    assert!(handshake(
        &dir,
        tls,
        &["-tls1_3", "-ciphersuites", "TLS_AES_256_GCM_SHA384"]
    ));
    assert!(!handshake(
        &dir,
        tls,
        &["-tls1_3", "-ciphersuites", "TLS_AES_128_GCM_SHA256"]
    ));
    // Authorities from a directory instead of a file.
    let cas = format!("{d}/cas");
    std::fs::create_dir(&cas).unwrap();
    std::fs::copy(format!("{d}/ca.crt"), format!("{cas}/ca.pem")).unwrap();
    let set = admin.call(&[
        "CONFIG",
        "SET",
        "tls-ca-cert-file",
        "",
        "tls-ca-cert-dir",
        &cas,
    ]);
    assert_eq!(set, Resp::Simple("OK".into()));
    let out = cli(&dir, tls, "ca", Some("client"), &["PING"]);
    assert_eq!(stdout(&out), "PONG", "{out:?}");
    assert_ne!(
        stdout(&cli(&dir, tls, "ca", Some("stranger"), &["PING"])),
        "PONG"
    );
}

#[test]
fn an_encrypted_key_and_tls12_cipher_lists() {
    let dir = certificates("tls-keypass");
    let d = dir.path();
    // The server's key, encrypted as `openssl pkcs8 -topk8 -v2 aes-256-cbc` writes it.
    openssl(
        d,
        &[
            "pkcs8",
            "-topk8",
            "-in",
            "server.key",
            "-out",
            "server.enc.key",
            "-v2",
            "aes-256-cbc",
            "-passout",
            "pass:s3cret",
        ],
    );
    let tls = free_port();
    let mut args = tls_args(&dir, tls);
    let key = args.iter().position(|a| a == "--tls-key-file").unwrap() + 1;
    args[key] = format!("{d}/server.enc.key");
    let mut without_pass: Vec<&str> = args.iter().map(String::as_str).collect();
    without_pass.extend(["--tls-auth-clients", "no"]);
    // Without the pass the key cannot be read: the start stops with a message.
    let refused = warpengine_tests::try_start_warpengine_on(free_port(), &without_pass);
    assert!(refused.is_err_and(|e| e.contains("tls-key-file-pass")));
    let mut with_pass = without_pass.clone();
    with_pass.extend(["--tls-key-file-pass", "s3cret"]);
    let server = start_warpengine(&with_pass);
    let out = cli(&dir, tls, "ca", None, &["PING"]);
    assert_eq!(stdout(&out), "PONG", "{out:?}");
    // A wrong pass set at run time is refused, and the working configuration stays.
    let mut admin = RawConn::connect(server.port);
    let wrong = admin.call(&["CONFIG", "SET", "tls-key-file-pass", "wrong"]);
    assert!(matches!(wrong, Resp::Error(_)), "{wrong:?}");
    assert_eq!(stdout(&cli(&dir, tls, "ca", None, &["PING"])), "PONG");
    // tls-ciphers: the TLS 1.2 suites by OpenSSL name; TLS 1.3 is tls-ciphersuites' business.
    let rsa128 = ["-tls1_2", "-cipher", "ECDHE-RSA-AES128-GCM-SHA256"];
    let rsa256 = ["-tls1_2", "-cipher", "ECDHE-RSA-AES256-GCM-SHA384"];
    assert!(handshake(&dir, tls, &rsa128) && handshake(&dir, tls, &rsa256));
    let set = admin.call(&["CONFIG", "SET", "tls-ciphers", "HIGH:!AES128"]);
    assert_eq!(set, Resp::Simple("OK".into()));
    assert!(!handshake(&dir, tls, &rsa128));
    assert!(handshake(&dir, tls, &rsa256));
    assert!(handshake(&dir, tls, &["-tls1_3"]));
    let none = admin.call(&["CONFIG", "SET", "tls-ciphers", "DHE-RSA-AES128-SHA256"]);
    assert!(matches!(none, Resp::Error(_)), "{none:?}");
}
