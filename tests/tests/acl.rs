//! ACL end to end: the `redis` crate and redis-cli authenticating as a named user, NOPERM for
//! commands, keys and channels, ACL LOG's entries (whose ages and client fields the corpus
//! cannot compare), CLIENT LIST's `user=`, CLIENT KILL USER, DELUSER closing the user's
//! connections, and `requirepass` as the default user's password. Replies themselves are
//! compared with Redis by the corpus (`tests/corpus/acl.txt`).

use std::collections::HashMap;

use redis::{Commands, Value};
use warpengine_tests::{start_warpengine, RawConn, Resp};

fn connect(url: &str) -> redis::Connection {
    redis::Client::open(url)
        .expect("client")
        .get_connection()
        .expect("connection")
}

fn user_url(port: u16, user: &str, pass: &str) -> String {
    format!("redis://{user}:{pass}@127.0.0.1:{port}/")
}

/// One ACL LOG entry as field => text (integers and doubles as their text).
fn log_entries(c: &mut redis::Connection) -> Vec<HashMap<String, String>> {
    let entries: Vec<Value> = redis::cmd("ACL").arg("LOG").query(c).expect("acl log");
    entries
        .into_iter()
        .map(|e| {
            let Value::Array(fields) = e else {
                panic!("an entry is a flat map in RESP2: {e:?}")
            };
            fields
                .chunks(2)
                .map(|kv| {
                    let text = |v: &Value| match v {
                        Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
                        Value::Int(n) => n.to_string(),
                        other => format!("{other:?}"),
                    };
                    (text(&kv[0]), text(&kv[1]))
                })
                .collect()
        })
        .collect()
}

#[test]
fn the_redis_crate_runs_as_a_named_user() {
    let server = start_warpengine(&[]);
    let mut admin = connect(&server.url());
    let _: () = redis::cmd("ACL")
        .arg(&[
            "SETUSER",
            "app",
            "on",
            ">s3cret",
            "+@all",
            "-flushall",
            "~app:*",
            "&news",
        ])
        .query(&mut admin)
        .expect("setuser");
    let mut app = connect(&user_url(server.port, "app", "s3cret"));
    let me: String = redis::cmd("ACL")
        .arg("WHOAMI")
        .query(&mut app)
        .expect("whoami");
    assert_eq!(me, "app");
    let _: () = app.set("app:k", "v").expect("own key");
    assert_eq!(app.get::<_, String>("app:k").expect("get"), "v");
    let err = app.get::<_, String>("other").expect_err("other key");
    assert!(
        err.to_string()
            .contains("no permissions to access one of the keys"),
        "{err}"
    );
    let err = redis::cmd("FLUSHALL")
        .query::<()>(&mut app)
        .expect_err("flushall");
    assert!(err.to_string().contains("'flushall' command"), "{err}");
    let err = app
        .publish::<_, _, i64>("sports", "x")
        .expect_err("channel");
    assert!(err.to_string().contains("one of the channels"), "{err}");
    assert_eq!(
        app.publish::<_, _, i64>("news", "x")
            .expect("allowed channel"),
        0
    );

    // A wrong password answers WRONGPASS.
    let wrong = redis::Client::open(user_url(server.port, "app", "nope"))
        .expect("client")
        .get_connection();
    let err = wrong.err().expect("refused");
    assert_eq!(err.kind(), redis::ErrorKind::AuthenticationFailed, "{err}");

    // ACL LOG: newest first, with what was refused and by whom.
    let log = log_entries(&mut admin);
    let fields: Vec<(&str, &str, &str, &str)> = log
        .iter()
        .map(|e| {
            (
                e["reason"].as_str(),
                e["object"].as_str(),
                e["username"].as_str(),
                e["context"].as_str(),
            )
        })
        .collect();
    assert_eq!(
        fields,
        vec![
            ("auth", "AUTH", "app", "toplevel"),
            ("channel", "sports", "app", "toplevel"),
            ("command", "flushall", "app", "toplevel"),
            ("key", "other", "app", "toplevel"),
        ]
    );
    assert!(log[0]["client-info"].contains("user="), "{:?}", log[0]);
    assert!(log[0]["age-seconds"].parse::<f64>().expect("age") >= 0.0);
    // The same refusal again is counted in its entry, moved to the front.
    let _ = app.get::<_, String>("other");
    let log = log_entries(&mut admin);
    assert_eq!(
        (log[0]["object"].as_str(), log[0]["count"].as_str()),
        ("other", "2")
    );
    assert_eq!(log.len(), 4);

    // CLIENT LIST shows the user; CLIENT KILL USER closes its connections.
    let list: String = redis::cmd("CLIENT")
        .arg("LIST")
        .query(&mut admin)
        .expect("list");
    assert!(list.contains("user=app"), "{list}");
    let killed: i64 = redis::cmd("CLIENT")
        .arg(&["KILL", "USER", "app"])
        .query(&mut admin)
        .expect("kill");
    assert_eq!(killed, 1);
    assert!(redis::cmd("PING").query::<String>(&mut app).is_err());

    // DELUSER closes the deleted user's connections.
    let mut again = connect(&user_url(server.port, "app", "s3cret"));
    let deleted: i64 = redis::cmd("ACL")
        .arg(&["DELUSER", "app"])
        .query(&mut admin)
        .expect("deluser");
    assert_eq!(deleted, 1);
    assert!(redis::cmd("PING").query::<String>(&mut again).is_err());
}

#[test]
fn requirepass_is_the_default_users_password() {
    let server = start_warpengine(&["--requirepass", "topsecret"]);
    let mut c = redis::Client::open(format!("redis://:topsecret@127.0.0.1:{}/", server.port))
        .expect("client")
        .get_connection()
        .expect("authenticated with the password");
    let user: Vec<Value> = redis::cmd("ACL")
        .arg(&["GETUSER", "default"])
        .query(&mut c)
        .expect("getuser");
    let passwords = format!("{:?}", user[3]);
    // SHA-256 of "topsecret".
    let digest = "53336a676c64c1396553b2b7c92f38126768827c93b64d9142069c10eda7a721";
    assert!(passwords.contains(digest), "{passwords}");
    let _: () = redis::cmd("CONFIG")
        .arg(&["SET", "requirepass", ""])
        .query(&mut c)
        .expect("config set");
    let mut open = connect(&server.url());
    let pong: String = redis::cmd("PING")
        .query(&mut open)
        .expect("no password now");
    assert_eq!(pong, "PONG");
    let list: Vec<String> = redis::cmd("ACL")
        .arg("LIST")
        .query(&mut open)
        .expect("list");
    assert_eq!(list, vec!["user default on nopass ~* &* +@all"]);
}

#[test]
fn redis_cli_logs_in_with_user_and_pass() {
    let server = start_warpengine(&[]);
    let port = server.port.to_string();
    let cli = |args: &[&str]| {
        let out = std::process::Command::new("redis-cli")
            .args(["-p", &port])
            .args(args)
            .output()
            .expect("redis-cli");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert_eq!(
        cli(&[
            "ACL",
            "SETUSER",
            "cli",
            "on",
            ">pw",
            "+get",
            "+acl|whoami",
            "~c*"
        ]),
        "OK\n"
    );
    let as_user = |args: &[&str]| {
        let mut all = vec!["--user", "cli", "--pass", "pw", "--no-auth-warning"];
        all.extend_from_slice(args);
        cli(&all)
    };
    assert_eq!(as_user(&["ACL", "WHOAMI"]), "cli\n");
    assert_eq!(as_user(&["GET", "c1"]), "\n");
    assert_eq!(
        as_user(&["SET", "c1", "v"]).trim_end(),
        "NOPERM this user has no permissions to run the 'set' command"
    );
}

/// ACL LOAD and SAVE with the aclfile, and the file read at start: the same files given to
/// redis-server and WarpEngine (each its own copy) give the same replies, error texts included
/// (with the file's path made the same), and ACL SAVE writes the same file.
#[test]
fn aclfile_load_and_save_match_redis() {
    if !warpengine_tests::redis_available() {
        eprintln!("skipped: no redis-server");
        return;
    }
    let dir = warpengine_tests::TempDir::new("aclfile");
    let redis_file = format!("{}/redis.acl", dir.0.display());
    let warp_file = format!("{}/warp.acl", dir.0.display());
    let first = "user a on >x ~* +@all\n\nuser default on nopass ~* &* +@all\n";
    std::fs::write(&redis_file, first).expect("write");
    std::fs::write(&warp_file, first).expect("write");
    let redis = warpengine_tests::start_redis(&["--aclfile", &redis_file]);
    let warp = start_warpengine(&["--aclfile", &warp_file]);
    let mut rc = warpengine_tests::RawConn::connect(redis.port);
    let mut wc = warpengine_tests::RawConn::connect(warp.port);
    let mut both = |args: &[&str]| {
        let r = String::from_utf8_lossy(
            &rc.command(&args.iter().map(|a| a.as_bytes()).collect::<Vec<_>>()),
        )
        .replace(&redis_file, "FILE");
        let w = String::from_utf8_lossy(
            &wc.command(&args.iter().map(|a| a.as_bytes()).collect::<Vec<_>>()),
        )
        .replace(&warp_file, "FILE");
        assert_eq!(w, r, "{args:?}");
        w
    };
    assert!(both(&["ACL", "LIST"]).contains("user a on #2d71"));
    let files = [
        "user a on >x ~* +@all\nbogus line\n",
        "user a on >x ~* +nosuch\n",
        "user b on nopass\n# comment\n  \nuser b off\n",
        "user b on nopass \"unbal\n(+get\n",
        "user b on nopass\nuser c (+get\n",
        "user c on nopass (+get ~a*) %R~r*\n",
        "user b on nopass\n",
    ];
    for content in files {
        std::fs::write(&redis_file, content).expect("write");
        std::fs::write(&warp_file, content).expect("write");
        both(&["ACL", "LOAD"]);
        both(&["ACL", "LIST"]);
    }
    both(&["ACL", "SETUSER", "c", "(+get", "~a)", "&ch", ">pw"]);
    assert_eq!(both(&["ACL", "SAVE"]), "+OK\r\n");
    let saved_redis = std::fs::read_to_string(&redis_file).expect("read");
    let saved_warp = std::fs::read_to_string(&warp_file).expect("read");
    assert_eq!(saved_warp, saved_redis);
    // A saved file loads back to the same users.
    both(&["ACL", "LOAD"]);
    assert_eq!(both(&["ACL", "LIST"]).matches("user ").count(), 3);
    // A missing file.
    std::fs::remove_file(&redis_file).expect("rm");
    std::fs::remove_file(&warp_file).expect("rm");
    both(&["ACL", "LOAD"]);
}

#[test]
fn acl_load_and_save_need_an_aclfile_and_a_bad_file_stops_the_start() {
    let server = start_warpengine(&[]);
    let mut c = connect(&server.url());
    let err = redis::cmd("ACL")
        .arg("LOAD")
        .query::<()>(&mut c)
        .expect_err("no file");
    assert!(
        err.to_string()
            .contains("not configured to use an ACL file"),
        "{err}"
    );
    let dir = warpengine_tests::TempDir::new("aclfile-bad");
    let bad = format!("{}/bad.acl", dir.0.display());
    std::fs::write(&bad, "user a on +nosuch\n").expect("write");
    let port = warpengine_tests::free_port().to_string();
    let out = std::process::Command::new(warpengine_tests::warpengine_binary())
        .args(["--port", &port, "--aclfile", &bad])
        .output()
        .expect("run warpengine");
    assert!(!out.status.success(), "a bad ACL file must stop the start");
    let log =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        log.contains("Unknown command or category name in ACL"),
        "{log}"
    );
}

/// `user` lines in the config file create users at start, as redis-server creates them from
/// the same file (the default user reset first, selectors split by spaces merged).
#[test]
fn config_file_user_lines_match_redis() {
    if !warpengine_tests::redis_available() {
        eprintln!("skipped: no redis-server");
        return;
    }
    let dir = warpengine_tests::TempDir::new("acl-conf");
    let conf = format!("{}/users.conf", dir.0.display());
    std::fs::write(
        &conf,
        "user default on >dpw ~* &* +@all\nuser app on >apw ~app:* +@read (+set ~w*) resetchannels &news\nuser off-user\n",
    )
    .expect("write");
    let redis = warpengine_tests::start_redis(&["--include", &conf]);
    let warp = start_warpengine(&["--config", &conf]);
    let list = |port: u16| {
        let mut c = warpengine_tests::RawConn::connect(port);
        c.command(&[b"AUTH", b"dpw"]);
        String::from_utf8_lossy(&c.command(&[b"ACL", b"LIST"])).into_owned()
    };
    let want = list(redis.port);
    assert!(want.contains("user app on"), "{want}");
    assert_eq!(list(warp.port), want);
    let mut app = connect(&user_url(warp.port, "app", "apw"));
    let _: () = app.set("wkey", "v").expect("set through the selector");
    assert!(app.set::<_, _, ()>("app:k", "v").is_err());
}

/// A user whose channels shrink loses the subscriptions it may no longer have: those
/// connections are closed, as Redis 7.0 closes them; subscriptions still allowed stay.
#[test]
fn subscribers_lose_channels_taken_away() {
    let server = start_warpengine(&[]);
    let mut admin = connect(&server.url());
    let _: () = redis::cmd("ACL")
        .arg(&[
            "SETUSER",
            "sub",
            "on",
            "nopass",
            "+@all",
            "~*",
            "resetchannels",
            "&news",
            "&sports",
        ])
        .query(&mut admin)
        .expect("setuser");
    let mut news = connect(&user_url(server.port, "sub", "x"));
    let mut sports = connect(&user_url(server.port, "sub", "x"));
    let _: () = redis::cmd("SUBSCRIBE")
        .arg("news")
        .query(&mut news)
        .expect("subscribe news");
    let _: () = redis::cmd("SUBSCRIBE")
        .arg("sports")
        .query(&mut sports)
        .expect("subscribe sports");
    let _: () = redis::cmd("ACL")
        .arg(&["SETUSER", "sub", "resetchannels", "&sports"])
        .query(&mut admin)
        .expect("shrink");
    let list: String = redis::cmd("CLIENT")
        .arg("LIST")
        .query(&mut admin)
        .expect("list");
    assert_eq!(list.matches("user=sub").count(), 1, "{list}");
    assert!(list.contains("sub=1"), "{list}");
    let delivered: i64 = admin.publish("sports", "goal").expect("publish");
    assert_eq!(delivered, 1);
}

/// CONFIG REWRITE writes the users as `user` lines (in place of the file's, the rest at the
/// end) and a restart with the file has them again.
#[test]
fn config_rewrite_keeps_users_across_a_restart() {
    let dir = warpengine_tests::TempDir::new("acl-rewrite");
    let conf = format!("{}/w.conf", dir.0.display());
    std::fs::write(&conf, "save \"\"\nuser app on >x ~* +get\n").expect("write");
    let rules = [
        "SETUSER",
        "other",
        "on",
        ">y",
        "~o*",
        "+@read",
        "(+set ~s*)",
    ];
    {
        let server = start_warpengine(&["--config", &conf]);
        let mut c = connect(&server.url());
        let _: () = redis::cmd("ACL")
            .arg(&rules)
            .query(&mut c)
            .expect("setuser");
        let _: () = redis::cmd("CONFIG")
            .arg("REWRITE")
            .query(&mut c)
            .expect("rewrite");
    }
    let text = std::fs::read_to_string(&conf).expect("read");
    let lines: Vec<&str> = text.lines().filter(|l| l.starts_with("user ")).collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert!(lines[0].starts_with("user app on #"), "{text}");
    let server = start_warpengine(&["--config", &conf]);
    let mut other = connect(&user_url(server.port, "other", "y"));
    let _: () = other.set("s1", "v").expect("the selector survived");
    assert!(other.set::<_, _, ()>("o1", "v").is_err());
    assert!(other.get::<_, String>("s1").is_err());
}

/// Key permissions of commands whose key specs are incomplete (MIGRATE, SORT): each key the
/// command's own finder gives gets the flags of the spec it falls under (MIGRATE's keys are
/// read and written, SORT's source read and its STORE destination written), as Redis's.
/// Redis's acl-v2 unit's cases, compared with redis-server.
#[test]
fn incomplete_key_specs_check_each_key_as_redis() {
    if !warpengine_tests::redis_available() {
        return;
    }
    let cases: &[&[&str]] = &[
        &["MIGRATE", "h", "p", "rw", "0", "500"],
        &["MIGRATE", "h", "p", "read", "0", "500"],
        &["MIGRATE", "h", "p", "write", "0", "500"],
        &["MIGRATE", "h", "p", "", "0", "5000", "KEYS", "rw"],
        &["MIGRATE", "h", "p", "", "0", "5000", "KEYS", "read"],
        &["MIGRATE", "h", "p", "", "0", "5000", "KEYS", "write"],
        &[
            "MIGRATE", "h", "p", "", "0", "5000", "AUTH", "KEYS", "KEYS", "write",
        ],
        &[
            "MIGRATE", "h", "p", "", "0", "5000", "AUTH2", "KEYS", "123", "KEYS", "read",
        ],
        &[
            "MIGRATE", "h", "p", "", "0", "5000", "AUTH2", "USER", "KEYS", "KEYS", "rw",
        ],
        &["SORT", "read", "STORE", "write"],
        &["SORT", "read", "STORE", "read"],
        &["SORT", "write", "STORE", "write"],
        &["SORT", "read"],
        &["EVAL", "", "1", "rw1"],
        &["EVAL", "", "1", "read"],
        &["EVAL_RO", "", "1", "read"],
        // More keys announced than given: no keys at all, as Redis's key specs say.
        &["EVAL", "", "3", "rw", "read"],
        &["EVAL", "", "3", "rw", "write"],
        &["FCALL", "f", "4", "read", "write"],
        &["ZUNIONSTORE", "rw", "3", "read", "write"],
    ];
    let run = |port: u16| -> Vec<Resp> {
        let mut c = RawConn::connect(port);
        c.call(&[
            "ACL",
            "SETUSER",
            "command-test",
            "+@all",
            "%R~read*",
            "%W~write*",
            "%RW~rw*",
        ]);
        cases
            .iter()
            .map(|case| {
                let mut args = vec!["ACL", "DRYRUN", "command-test"];
                args.extend_from_slice(case);
                c.call(&args)
            })
            .collect()
    };
    let redis = warpengine_tests::start_redis(&[]);
    let warp = start_warpengine(&[]);
    let (theirs, ours) = (run(redis.port), run(warp.port));
    for ((case, t), o) in cases.iter().zip(&theirs).zip(&ours) {
        assert_eq!(o, t, "{case:?}");
    }
}

/// SORT's BY and GET patterns name keys no ACL check sees: they are refused unless the user may
/// read every key, as Redis's (its acl-v2 unit), compared with redis-server.
#[test]
fn sort_by_and_get_need_access_to_every_key() {
    if !warpengine_tests::redis_available() {
        return;
    }
    let rules: &[&[&str]] = &[
        &["+sort", "~mylist"],
        &["+sort", "~mylist", "~v*"],
        &["+sort", "~mylist", "%W~*"],
        &["+sort", "~mylist", "%R~*"],
        &["+sort", "allkeys"],
    ];
    let run = |port: u16| -> Vec<Resp> {
        let mut admin = RawConn::connect(port);
        admin.call(&["SET", "v1", "1"]);
        admin.call(&["LPUSH", "mylist", "1"]);
        let mut seen = Vec::new();
        for rule in rules {
            admin.call(&["ACL", "SETUSER", "sorter", "reset", "on", "nopass"]);
            let mut setuser = vec!["ACL", "SETUSER", "sorter"];
            setuser.extend_from_slice(rule);
            admin.call(&setuser);
            let mut c = RawConn::connect(port);
            c.call(&["AUTH", "sorter", "x"]);
            for cmd in [
                &["SORT", "mylist", "BY", "v*"][..],
                &["SORT", "mylist", "GET", "v*"],
                &["SORT", "mylist", "BY", "nosort"],
                &["SORT", "mylist"],
            ] {
                seen.push(c.call(cmd));
            }
        }
        seen
    };
    let redis = warpengine_tests::start_redis(&[]);
    let warp = start_warpengine(&[]);
    assert_eq!(run(warp.port), run(redis.port));
}
