//! Connection commands: PING, ECHO, QUIT, RESET, HELLO, AUTH, SELECT.

use bytes::Bytes;

use super::util::{eq_ignore_case, err_echo, int_arg, DB_OUT_OF_RANGE, INT_RANGE, SYNTAX};
use crate::protocol::reply::OK;
use crate::protocol::Reply;
use crate::server_state::REDIS_VERSION;
use crate::session::{ReplyMode, Session};

pub fn ping(s: &mut Session, args: &[Bytes]) -> Reply {
    if args.len() > 2 {
        return super::util::wrong_arity("ping");
    }
    if s.conn.subscribed() && !s.conn.resp3 {
        // In RESP2's subscribed mode a reply must look like a message: Redis answers an array.
        let echo = args.get(1).cloned().unwrap_or_default();
        return Reply::Array(vec![
            Reply::Bulk(Bytes::from_static(b"pong")),
            Reply::Bulk(echo),
        ]);
    }
    match args.get(1) {
        None => Reply::Status("PONG"),
        Some(echo) => Reply::Bulk(echo.clone()),
    }
}

pub fn echo(_s: &mut Session, args: &[Bytes]) -> Reply {
    Reply::Bulk(args[1].clone())
}

pub fn quit(s: &mut Session, _args: &[Bytes]) -> Reply {
    s.conn.close_after_reply = true;
    OK
}

pub fn reset(s: &mut Session, _args: &[Bytes]) -> Reply {
    let auth_required = s
        .server
        .hot
        .auth_required
        .load(std::sync::atomic::Ordering::Relaxed);
    crate::transaction_state::end(s.server, s.conn);
    s.server.monitors.remove(s.conn);
    s.server.tracking.disable(s.conn);
    s.server.pubsub.leave(&mut s.conn.pubsub);
    *s.conn.handle.sink.lock().expect("client sink") = None;
    let c = &mut *s.conn;
    c.db = 0;
    c.resp3 = false;
    c.name.clear();
    c.reply_mode = ReplyMode::On;
    c.answer_regardless = true;
    c.no_touch = false;
    c.authenticated = !auth_required;
    c.user = s.server.acl.default_user();
    s.sync_client_info();
    Reply::Status("RESET")
}

const WRONGPASS: &str = "WRONGPASS invalid username-password pair or user is disabled.";

/// Checks credentials (`default` when no user is named) and, when they open a user, runs the
/// connection as that user.
fn authenticate(s: &mut Session, user: Option<&[u8]>, pass: &[u8]) -> Result<(), Reply> {
    let name = user.unwrap_or(b"default");
    match s.server.acl.authenticate(name, pass) {
        Some(user) => {
            s.conn.user = user;
            s.conn.authenticated = true;
            s.sync_client_info();
            Ok(())
        }
        None => {
            let context = crate::acl::toplevel_context(s.conn);
            let fields = ("auth", Bytes::from_static(b"AUTH"));
            let username = Bytes::copy_from_slice(name);
            crate::acl::log_denial(s.server, s.conn, context, fields, username);
            Err(Reply::err(WRONGPASS))
        }
    }
}

pub fn auth(s: &mut Session, args: &[Bytes]) -> Reply {
    if args.len() > 3 {
        return Reply::err(SYNTAX);
    }
    if args.len() == 2 && s.server.acl.default_user().read(|u| u.nopass) {
        return Reply::err("ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?");
    }
    let (user, pass) = if args.len() == 3 {
        (Some(&args[1][..]), &args[2])
    } else {
        (None, &args[1])
    };
    match authenticate(s, user, pass) {
        Ok(()) => OK,
        Err(e) => e,
    }
}

/// Client names may not contain spaces, newlines or other special characters.
pub fn valid_client_name(name: &[u8]) -> bool {
    name.iter().all(|&c| (b'!'..=b'~').contains(&c))
}

pub const BAD_CLIENT_NAME: &str =
    "ERR Client names cannot contain spaces, newlines or special characters.";

pub fn hello(s: &mut Session, args: &[Bytes]) -> Reply {
    let mut resp3 = s.conn.resp3;
    let mut j = 1;
    if args.len() >= 2 {
        let ver = match int_arg(&args[1]) {
            Ok(v) => v,
            Err(_) => return Reply::err("ERR Protocol version is not an integer or out of range"),
        };
        if !(2..=3).contains(&ver) {
            return Reply::err("NOPROTO unsupported protocol version");
        }
        resp3 = ver == 3;
        j = 2;
    }
    let mut name = None;
    // As in Redis, AUTH and the name are checked as soon as they are parsed, so an error in a
    // later option comes after them.
    while j < args.len() {
        let more = args.len() - j - 1;
        if eq_ignore_case(&args[j], "auth") && more >= 2 {
            if let Err(e) = authenticate(s, Some(&args[j + 1]), &args[j + 2]) {
                return e;
            }
            j += 3;
        } else if eq_ignore_case(&args[j], "setname") && more >= 1 {
            if !valid_client_name(&args[j + 1]) {
                return Reply::err(BAD_CLIENT_NAME);
            }
            name = Some(args[j + 1].clone());
            j += 2;
        } else {
            return err_echo("ERR Syntax error in HELLO option '", &args[j], "'");
        }
    }
    if !s.conn.authenticated {
        return Reply::err("NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time");
    }
    if let Some(name) = name {
        s.conn.name = String::from_utf8_lossy(&name).into_owned();
    }
    s.conn.resp3 = resp3;
    if resp3 {
        // A RESP3 client takes pushes beside replies: invalidations a tracking client
        // redirects here, say.
        crate::pubsub::queue_of(s.conn);
    }
    if let Some(subs) = &s.conn.pubsub {
        // Messages from now on are encoded in the new protocol.
        subs.me.set_resp3(resp3);
    }
    s.sync_client_info();
    Reply::Map(vec![
        (Reply::bulk_str("server"), Reply::bulk_str("redis")),
        (Reply::bulk_str("version"), Reply::bulk_str(REDIS_VERSION)),
        (
            Reply::bulk_str("proto"),
            Reply::Int(if resp3 { 3 } else { 2 }),
        ),
        (Reply::bulk_str("id"), Reply::Int(s.conn.id as i64)),
        (Reply::bulk_str("mode"), Reply::bulk_str("standalone")),
        (Reply::bulk_str("role"), Reply::bulk_str("master")),
        (Reply::bulk_str("modules"), Reply::Array(vec![])),
    ])
}

pub fn select(s: &mut Session, args: &[Bytes]) -> Reply {
    let id = match int_arg(&args[1]) {
        Ok(v) if v < i32::MIN as i64 || v > i32::MAX as i64 => return Reply::err(INT_RANGE),
        Ok(v) => v,
        Err(e) => return e,
    };
    if id != 0 && s.server.cluster.enabled() {
        return Reply::err("ERR SELECT is not allowed in cluster mode");
    }
    if id < 0 || id as usize >= s.server.databases() {
        return Reply::err(DB_OUT_OF_RANGE);
    }
    s.conn.db = id as usize;
    OK
}

/// AUTH's arguments are secrets (MONITOR shows them redacted).
pub fn auth_secrets(args: &[Bytes]) -> Vec<usize> {
    (1..args.len()).collect()
}

/// HELLO's AUTH username and password.
pub fn hello_secrets(args: &[Bytes]) -> Vec<usize> {
    args.iter()
        .position(|a| a.eq_ignore_ascii_case(b"auth"))
        .map_or(Vec::new(), |at| {
            (at + 1..(at + 3).min(args.len())).collect()
        })
}
