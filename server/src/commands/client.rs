//! CLIENT: ID, SETNAME, GETNAME, SETINFO, LIST, INFO, KILL, UNBLOCK, NO-EVICT, NO-TOUCH, REPLY, HELP,
//! PAUSE, UNPAUSE, and client-side caching's TRACKING, CACHING, GETREDIR, TRACKINGINFO (the
//! mechanism is in `tracking.rs`).

use std::time::Instant;

use bytes::Bytes;

use super::connection::{valid_client_name, BAD_CLIENT_NAME};
use super::util::{
    eq_ignore_case, err_echo, help, int_arg, lower, on_off, subcommand_syntax_error,
    unknown_subcommand, wrong_arity, SYNTAX,
};
use crate::blocked_clients::Unblock;
use crate::client_pause::PauseMode;
use crate::clients::ClientInfo;
use crate::protocol::reply::OK;
use crate::protocol::Reply;
use crate::session::{ReplyMode, Session};

pub fn client(s: &mut Session, args: &[Bytes]) -> Reply {
    let sub = lower(&args[1]);
    let argc = args.len();
    let arity_ok = match sub.as_str() {
        "help" | "id" | "getname" | "info" | "getredir" | "trackinginfo" | "unpause" => argc == 2,
        "pause" if argc > 4 => return subcommand_syntax_error(&args[1], "CLIENT"),
        "pause" => argc >= 3,
        "caching" => argc == 3,
        "tracking" => argc >= 3,
        "setname" | "no-evict" | "no-touch" | "reply" => argc == 3,
        "setinfo" => argc == 4,
        "list" => argc >= 2,
        "kill" => argc >= 3,
        "unblock" if argc > 4 => return subcommand_syntax_error(&args[1], "CLIENT"),
        "unblock" => argc >= 3,
        _ => return unknown_subcommand(&args[1], "CLIENT"),
    };
    if !arity_ok {
        return wrong_arity(&format!("client|{sub}"));
    }
    match sub.as_str() {
        "help" => help(
            "CLIENT",
            &[
                "CACHING (YES|NO)",
                "    Enable/disable tracking of the keys for next command in OPTIN/OPTOUT modes.",
                "GETREDIR",
                "    Return the client ID we are redirecting to when tracking is enabled.",
                "GETNAME",
                "    Return the name of the current connection.",
                "ID",
                "    Return the ID of the current connection.",
                "INFO",
                "    Return information about the current client connection.",
                "KILL <ip:port>",
                "    Kill connection made from <ip:port>.",
                "KILL <option> <value> [<option> <value> [...]]",
                "    Kill connections. Options are:",
                "    * ADDR (<ip:port>|<unixsocket>:0)",
                "      Kill connections made from the specified address",
                "    * LADDR (<ip:port>|<unixsocket>:0)",
                "      Kill connections made to specified local address",
                "    * TYPE (NORMAL|MASTER|REPLICA|PUBSUB)",
                "      Kill connections by type.",
                "    * USER <username>",
                "      Kill connections authenticated by <username>.",
                "    * SKIPME (YES|NO)",
                "      Skip killing current connection (default: yes).",
                "LIST [options ...]",
                "    Return information about client connections. Options:",
                "    * TYPE (NORMAL|MASTER|REPLICA|PUBSUB)",
                "      Return clients of specified type.",
                "UNPAUSE",
                "    Stop the current client pause, resuming traffic.",
                "PAUSE <timeout> [WRITE|ALL]",
                "    Suspend all, or just write, clients for <timeout> milliseconds.",
                "REPLY (ON|OFF|SKIP)",
                "    Control the replies sent to the current connection.",
                "SETNAME <name>",
                "    Assign the name <name> to the current connection.",
                "UNBLOCK <clientid> [TIMEOUT|ERROR]",
                "    Unblock the specified blocked client.",
                "TRACKING (ON|OFF) [REDIRECT <id>] [BCAST] [PREFIX <prefix> [...]]",
                "         [OPTIN] [OPTOUT] [NOLOOP]",
                "    Control server assisted client side caching.",
                "TRACKINGINFO",
                "    Report tracking status for the current connection.",
                "NO-EVICT (ON|OFF)",
                "    Protect current client connection from eviction.",
            ],
        ),
        "id" => Reply::Int(s.conn.id as i64),
        "getredir" => Reply::Int(s.conn.tracking.as_ref().map_or(-1, |t| t.redirect as i64)),
        "trackinginfo" => tracking_info(s),
        "caching" => caching(s, &args[2]),
        "tracking" => tracking(s, args),
        "unpause" => {
            s.server.pause.unpause();
            OK
        }
        "pause" => pause(s, args),
        "getname" => {
            if s.conn.name.is_empty() {
                Reply::Nil
            } else {
                Reply::bulk_str(&s.conn.name)
            }
        }
        "setname" => {
            if !valid_client_name(&args[2]) {
                return Reply::err(BAD_CLIENT_NAME);
            }
            s.conn.name = String::from_utf8_lossy(&args[2]).into_owned();
            s.sync_client_info();
            OK
        }
        "setinfo" => setinfo(s, &args[2], &args[3]),
        "info" => {
            let info = s.conn.handle.snapshot();
            Reply::Verbatim(Bytes::from(format!(
                "{}\n",
                describe(&info, s.conn.id, args)
            )))
        }
        "list" => list(s, args),
        "kill" => kill(s, args),
        "unblock" => unblock(s, args),
        "no-evict" | "no-touch" => {
            let on = match on_off(&args[2]) {
                Ok(on) => on,
                Err(e) => return e,
            };
            if sub == "no-touch" {
                s.conn.no_touch = on;
            } else {
                s.conn
                    .handle
                    .info
                    .lock()
                    .expect("client info lock")
                    .no_evict = on;
            }
            OK
        }
        _ => {
            // REPLY: OFF and SKIP are silent themselves; the pipeline honours the new mode.
            let mode = if eq_ignore_case(&args[2], "on") {
                ReplyMode::On
            } else if eq_ignore_case(&args[2], "off") {
                ReplyMode::Off
            } else if eq_ignore_case(&args[2], "skip") {
                ReplyMode::Skip
            } else {
                return Reply::err(SYNTAX);
            };
            s.conn.reply_mode = mode;
            s.conn.answer_regardless = mode == ReplyMode::On;
            OK
        }
    }
}

fn setinfo(s: &mut Session, attr: &[u8], value: &[u8]) -> Reply {
    let is_name = eq_ignore_case(attr, "lib-name");
    if !is_name && !eq_ignore_case(attr, "lib-ver") {
        return err_echo("ERR Unrecognized option '", attr, "'");
    }
    if !valid_client_name(value) {
        let what = if is_name { "lib-name" } else { "lib-ver" };
        return Reply::err(format!(
            "ERR {what} cannot contain spaces, newlines or special characters."
        ));
    }
    let mut info = s.conn.handle.info.lock().expect("client info lock");
    let v = String::from_utf8_lossy(value).into_owned();
    if is_name {
        info.lib_name = v;
    } else {
        info.lib_ver = v;
    }
    OK
}

/// Redis's fixed reply buffer, which CLIENT LIST's obl shows.
const REPLY_BUFFER: usize = crate::output_limits::UNCOUNTED_REPLY_BYTES as usize;

/// The bytes of a request as a client sends it (RESP): `*<n>` and each `$<len>` argument.
fn request_len(args: &[Bytes]) -> usize {
    let digits = |n: usize| n.to_string().len();
    3 + digits(args.len())
        + args
            .iter()
            .map(|a| 5 + digits(a.len()) + a.len())
            .sum::<usize>()
}

/// One CLIENT LIST line, with the fields Redis 7 prints, in its order. `current` is the
/// connection asking, running `args`.
pub fn describe(c: &ClientInfo, current: u64, args: &[Bytes]) -> String {
    let now = Instant::now();
    let b = &c.buffers;
    // The arguments of the command running now (the asking connection's), or of a request
    // still arriving.
    let running: usize = if c.id == current {
        args.iter().map(|a| a.len()).sum()
    } else {
        0
    };
    let argv_mem = running + b.partial_args;
    let tot_mem = c.memory(running);
    // Unwritten replies where Redis would hold them: up to 16 KB in its fixed buffer (obl);
    // past that in its reply list (omem; oll counts it here in 16 KB blocks, Redis in nodes of
    // at least 16 KB), its fixed buffer having gone out first.
    let (in_buffer, in_list) = if b.reply <= REPLY_BUFFER {
        (b.reply, 0)
    } else {
        (0, b.reply)
    };
    // The asking connection is running CLIENT LIST or INFO now: Redis shows that command,
    // and its request still in the query buffer.
    let (cmd, query) = if c.id == current {
        let sub = String::from_utf8_lossy(&args[1]).to_ascii_lowercase();
        (format!("client|{sub}"), b.query + request_len(args))
    } else {
        (c.last_cmd.to_string(), b.query)
    };
    format!(
        "id={} addr={} laddr={} fd={} name={} age={} idle={} flags={} db={} sub={} psub={} ssub={} multi={} qbuf={} qbuf-free={} argv-mem={argv_mem} multi-mem={} rbs={} rbp={} obl={} oll={} omem={} tot-mem={tot_mem} events=r cmd={} user={} redir={} resp={} lib-name={} lib-ver={}",
        c.id,
        c.addr,
        c.laddr,
        c.fd,
        c.name,
        now.duration_since(c.created).as_secs(),
        c.last_interaction.elapsed().as_secs(),
        c.flags(),
        c.db,
        c.subscriptions.0,
        c.subscriptions.1,
        c.subscriptions.2,
        c.multi.map_or(-1, |n| n as i64),
        query,
        b.query_capacity.saturating_sub(query),
        b.multi,
        b.reply_capacity,
        b.reply_peak.min(b.reply_capacity),
        in_buffer,
        in_list.div_ceil(REPLY_BUFFER),
        in_list + b.pushes,
        cmd,
        c.user,
        c.tracking.as_ref().map_or(-1, |t| t.redirect as i64),
        c.resp,
        c.lib_name,
        c.lib_ver,
    )
}

fn list(s: &mut Session, args: &[Bytes]) -> Reply {
    let mut ids: Option<Vec<u64>> = None;
    let mut kind: Option<String> = None;
    let mut j = 2;
    while j < args.len() {
        if eq_ignore_case(&args[j], "type") && j + 1 < args.len() {
            let t = lower(&args[j + 1]);
            if !["normal", "master", "replica", "slave", "pubsub"].contains(&t.as_str()) {
                return err_echo("ERR Unknown client type '", &args[j + 1], "'");
            }
            // "slave" is the old name of "replica".
            kind = Some(if t == "slave" { "replica".into() } else { t });
            j += 2;
        } else if eq_ignore_case(&args[j], "id") && j + 1 < args.len() {
            let mut list = Vec::new();
            for a in &args[j + 1..] {
                match int_arg(a) {
                    Ok(v) if v > 0 => list.push(v as u64),
                    _ => return Reply::err("ERR Invalid client ID"),
                }
            }
            ids = Some(list);
            j = args.len();
        } else {
            return Reply::err(SYNTAX);
        }
    }
    s.sync_client_info();
    let mut text = String::new();
    for c in s.server.clients.snapshot() {
        if ids.as_ref().is_some_and(|ids| !ids.contains(&c.id))
            || kind.as_ref().is_some_and(|k| c.kind() != k)
        {
            continue;
        }
        text.push_str(&describe(&c, s.conn.id, args));
        text.push('\n');
    }
    Reply::Verbatim(Bytes::from(text))
}

fn kill(s: &mut Session, args: &[Bytes]) -> Reply {
    let me = s.conn.id;
    if args.len() == 3 {
        // Old form: CLIENT KILL addr:port.
        let addr = String::from_utf8_lossy(&args[2]).into_owned();
        let (n, self_hit) = s
            .server
            .clients
            .kill_where(me, |c| c.addr.to_string() == addr);
        if self_hit {
            s.conn.close_after_reply = true;
        }
        return if n == 0 {
            Reply::err("ERR No such client")
        } else {
            OK
        };
    }
    let mut id: Option<u64> = None;
    let mut addr: Option<String> = None;
    let mut laddr: Option<String> = None;
    let mut user: Option<String> = None;
    let mut max_age: Option<u64> = None;
    let mut kind: Option<&'static str> = None;
    let mut skip_me = true;
    let mut j = 2;
    while j < args.len() {
        if j + 1 >= args.len() {
            return Reply::err(SYNTAX);
        }
        let opt = lower(&args[j]);
        let val = &args[j + 1];
        match opt.as_str() {
            "id" => match int_arg(val) {
                Ok(v) if v > 0 => id = Some(v as u64),
                _ => return Reply::err("ERR client-id should be greater than 0"),
            },
            "addr" => addr = Some(String::from_utf8_lossy(val).into_owned()),
            "laddr" => laddr = Some(String::from_utf8_lossy(val).into_owned()),
            "user" => {
                if s.server.acl.get(val).is_none() {
                    return super::util::err_echo("ERR No such user '", val, "'");
                }
                user = Some(String::from_utf8_lossy(val).into_owned());
            }
            "maxage" => match int_arg(val) {
                Ok(v) if v >= 0 => max_age = Some(v as u64),
                _ => return Reply::err(SYNTAX),
            },
            "type" => {
                let t = lower(val);
                if !["normal", "master", "replica", "slave", "pubsub"].contains(&t.as_str()) {
                    return err_echo("ERR Unknown client type '", val, "'");
                }
                // "slave" is the old name of "replica".
                kind = Some(match t.as_str() {
                    "normal" => "normal",
                    "pubsub" => "pubsub",
                    "master" => "master",
                    _ => "replica",
                });
            }
            "skipme" => {
                if eq_ignore_case(val, "yes") {
                    skip_me = true;
                } else if eq_ignore_case(val, "no") {
                    skip_me = false;
                } else {
                    return Reply::err(SYNTAX);
                }
            }
            _ => return Reply::err(SYNTAX),
        }
        j += 2;
    }
    let now = Instant::now();
    let (n, self_hit) = s.server.clients.kill_where(me, |c| {
        kind.is_none_or(|k| c.kind() == k)
            && id.is_none_or(|i| c.id == i)
            && addr.as_ref().is_none_or(|a| c.addr.to_string() == *a)
            && laddr.as_ref().is_none_or(|a| c.laddr.to_string() == *a)
            && user.as_ref().is_none_or(|u| c.user == *u)
            && max_age.is_none_or(|m| now.duration_since(c.created).as_secs() >= m)
            && !(skip_me && c.id == me)
    });
    if self_hit {
        s.conn.close_after_reply = true;
    }
    Reply::Int(n as i64)
}

/// CLIENT UNBLOCK id [TIMEOUT|ERROR]: ends another client's blocking command, as its timeout
/// would or with an error; 1 if that client was blocked.
fn unblock(s: &mut Session, args: &[Bytes]) -> Reply {
    let id = match int_arg(&args[2]) {
        Ok(id) => id,
        Err(e) => return e,
    };
    let how = match args.get(3) {
        None => Unblock::Timeout,
        Some(a) if eq_ignore_case(a, "timeout") => Unblock::Timeout,
        Some(a) if eq_ignore_case(a, "error") => Unblock::Error,
        Some(_) => return Reply::err("ERR CLIENT UNBLOCK reason should be TIMEOUT or ERROR"),
    };
    let Some(client) = u64::try_from(id)
        .ok()
        .and_then(|id| s.server.clients.get(id))
    else {
        return Reply::Int(0);
    };
    let waiter = client.blocked_on.lock().expect("blocked_on lock").take();
    match waiter {
        Some(w) => {
            w.unblock(how);
            Reply::Int(1)
        }
        None => Reply::Int(0),
    }
}

/// CLIENT PAUSE timeout-ms [WRITE|ALL]: holds the covered requests until CLIENT UNPAUSE or the
/// timeout (see `crate::client_pause`).
fn pause(s: &mut Session, args: &[Bytes]) -> Reply {
    let timeout = match int_arg(&args[2]) {
        Ok(t) if t < 0 => return Reply::err("ERR timeout is negative"),
        Ok(t) => t as u64,
        Err(_) => return Reply::err("ERR timeout is not an integer or out of range"),
    };
    let mode = match args.get(3) {
        None => PauseMode::All,
        Some(a) if eq_ignore_case(a, "all") => PauseMode::All,
        Some(a) if eq_ignore_case(a, "write") => PauseMode::Write,
        Some(_) => return Reply::err("ERR CLIENT PAUSE mode must be WRITE or ALL"),
    };
    let until = crate::server_state::unix_ms().saturating_add(timeout);
    s.server.pause.pause(mode, until);
    OK
}

/// CLIENT TRACKING ON|OFF [REDIRECT id] [BCAST] [PREFIX p ...] [OPTIN] [OPTOUT] [NOLOOP],
/// with Redis's checks in Redis's order.
fn tracking(s: &mut Session, args: &[Bytes]) -> Reply {
    let opts = match tracking_options(s.server, &args[3..]) {
        Ok(o) => o,
        Err(e) => return e,
    };
    if eq_ignore_case(&args[2], "on") {
        if s.conn
            .tracking
            .as_ref()
            .is_some_and(|t| t.bcast != opts.bcast)
        {
            return Reply::err(
                "ERR You can't switch BCAST mode on/off before disabling tracking for this client, and then re-enabling it with a different mode.",
            );
        }
        if let Err(e) = check_tracking_options(&opts) {
            return e;
        }
        if let Some(t) = &s.conn.tracking {
            if (opts.optin && t.optout) || (opts.optout && t.optin) {
                return Reply::err(
                    "ERR You can't switch OPTIN/OPTOUT mode before disabling tracking for this client, and then re-enabling it with a different mode.",
                );
            }
        }
        if let Err(e) = s.server.tracking.enable(s.conn, opts) {
            return e;
        }
    } else if eq_ignore_case(&args[2], "off") {
        s.server.tracking.disable(s.conn);
    } else {
        return Reply::err(SYNTAX);
    }
    OK
}

/// CLIENT CACHING YES|NO: whether the next command's keys are tracked (OPTIN / OPTOUT).
fn caching(s: &mut Session, arg: &[u8]) -> Reply {
    let Some(t) = &s.conn.tracking else {
        return Reply::err(
            "ERR CLIENT CACHING can be called only when the client is in tracking mode with OPTIN or OPTOUT mode enabled",
        );
    };
    if eq_ignore_case(arg, "yes") {
        if !t.optin {
            return Reply::err(
                "ERR CLIENT CACHING YES is only valid when tracking is enabled in OPTIN mode.",
            );
        }
    } else if eq_ignore_case(arg, "no") {
        if !t.optout {
            return Reply::err(
                "ERR CLIENT CACHING NO is only valid when tracking is enabled in OPTOUT mode.",
            );
        }
    } else {
        return Reply::err(SYNTAX);
    }
    s.conn.tracking_caching = true;
    OK
}

/// CLIENT TRACKINGINFO: flags (a set), redirect, prefixes.
fn tracking_info(s: &Session) -> Reply {
    let t = s.conn.tracking.as_ref();
    let mut flags = vec![Reply::bulk_str(if t.is_some() { "on" } else { "off" })];
    if let Some(t) = t {
        let caching = s.conn.tracking_caching;
        let mut flag = |on: bool, name: &str| {
            if on {
                flags.push(Reply::bulk_str(name));
            }
        };
        flag(t.bcast, "bcast");
        flag(t.optin, "optin");
        flag(t.optin && caching, "caching-yes");
        flag(t.optout, "optout");
        flag(t.optout && caching, "caching-no");
        flag(t.noloop, "noloop");
        flag(
            t.broken_redirect.load(std::sync::atomic::Ordering::Relaxed),
            "broken_redirect",
        );
    }
    Reply::Map(vec![
        (Reply::bulk_str("flags"), Reply::Set(flags)),
        (
            Reply::bulk_str("redirect"),
            Reply::Int(t.map_or(-1, |t| t.redirect as i64)),
        ),
        (
            Reply::bulk_str("prefixes"),
            Reply::Array(
                t.map(|t| {
                    // In byte order, as Redis's radix tree lists them.
                    let mut prefixes = t.prefixes.clone();
                    prefixes.sort();
                    prefixes.into_iter().map(Reply::Bulk).collect()
                })
                .unwrap_or_default(),
            ),
        ),
    ])
}

/// CLIENT TRACKING's arguments after ON|OFF, as Redis parses them.
fn tracking_options(
    server: &crate::server_state::Server,
    args: &[Bytes],
) -> Result<crate::tracking::Options, Reply> {
    let mut o = crate::tracking::Options::default();
    let mut j = 0;
    while j < args.len() {
        let a = &args[j];
        let more = j + 1 < args.len();
        if a.eq_ignore_ascii_case(b"redirect") && more {
            j += 1;
            if o.redirect != 0 {
                return Err(Reply::err(
                    "ERR A client can only redirect to a single other client",
                ));
            }
            let id = int_arg(&args[j])?;
            if id <= 0 || server.clients.get(id as u64).is_none() {
                return Err(Reply::err(
                    "ERR The client ID you want redirect to does not exist",
                ));
            }
            o.redirect = id as u64;
        } else if a.eq_ignore_ascii_case(b"bcast") {
            o.bcast = true;
        } else if a.eq_ignore_ascii_case(b"optin") {
            o.optin = true;
        } else if a.eq_ignore_ascii_case(b"optout") {
            o.optout = true;
        } else if a.eq_ignore_ascii_case(b"noloop") {
            o.noloop = true;
        } else if a.eq_ignore_ascii_case(b"prefix") && more {
            j += 1;
            o.prefixes.push(args[j].clone());
        } else {
            return Err(Reply::err(SYNTAX));
        }
        j += 1;
    }
    if !o.bcast && !o.prefixes.is_empty() {
        return Err(Reply::err(
            "ERR PREFIX option requires BCAST mode to be enabled",
        ));
    }
    Ok(o)
}

/// The checks Redis makes on ON's options before looking at the client's current state.
fn check_tracking_options(o: &crate::tracking::Options) -> Result<(), Reply> {
    if o.bcast && (o.optin || o.optout) {
        return Err(Reply::err(
            "ERR OPTIN and OPTOUT are not compatible with BCAST",
        ));
    }
    if o.optin && o.optout {
        return Err(Reply::err(
            "ERR You can't specify both OPTIN mode and OPTOUT mode",
        ));
    }
    for (i, p) in o.prefixes.iter().enumerate() {
        if let Some(q) = o.prefixes[i + 1..]
            .iter()
            .find(|q| crate::tracking::overlaps(p, q))
        {
            return Err(crate::tracking::prefix_error(p, q, "another provided"));
        }
    }
    Ok(())
}
