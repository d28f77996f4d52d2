//! ACL: SETUSER, GETUSER, DELUSER, LIST, USERS, WHOAMI, CAT, GENPASS, DRYRUN, HELP over the
//! users of `crate::acl`; and the command catalog those rules name, built from the command
//! table and Redis's recorded categories and key specs (`command_data`), installed at start-up.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;

use super::command_data;
use super::util::{help, int_arg, lower, subcommand_syntax_error};
use super::{commands, Flags, Keys, Run, NO_KEYS, TABLE};
use crate::acl::{self, Catalog, CatalogEntry, ChannelRule, KeyAccess, KeyRule, Verdict};
use crate::command_table::{self, arity_ok, unknown_subcommand, wrong_arity, CommandSpec};
use crate::protocol::reply::OK;
use crate::protocol::Reply;
use crate::session::Session;

commands! {
    pub static COMMANDS;
    "acl", -2, "", NO_KEYS, "server", "6.0.0", super::session(acl), "A container for Access List Control commands.", monitor_hides(command_data::admin_subcommand), redacts(acl_secrets);
}

/// Categories of a command Redis does not record (WarpEngine's own), from its flags and group.
fn derived_categories(spec: &CommandSpec) -> u32 {
    let f = spec.flags;
    let mut names = Vec::new();
    let by_flag = [
        (Flags::WRITE, "write"),
        (Flags::READONLY, "read"),
        (Flags::ADMIN, "admin"),
        (Flags::ADMIN, "dangerous"),
        (Flags::PUBSUB, "pubsub"),
        (Flags::BLOCKING, "blocking"),
    ];
    for (flag, name) in by_flag {
        if f.contains(flag) {
            names.push(name);
        }
    }
    names.push(if f.contains(Flags::FAST) {
        "fast"
    } else {
        "slow"
    });
    names.push(match spec.group {
        "sorted-set" => "sortedset",
        "scripting" => "scripting",
        g => g,
    });
    names.iter().filter_map(|n| acl::category_bit(n)).sum()
}

fn categories_of(names: &[&str]) -> u32 {
    names
        .iter()
        .filter_map(|n| acl::category_bit(n.trim_start_matches('@')))
        .fold(0, |acc, b| acc | b)
}

/// How the key check finds a command's keys: one key spec's access for every key position,
/// several specs resolved per request, or (commands Redis lacks) the row's read/write flags.
fn key_rule(spec: &CommandSpec, specs: Option<&'static [Reply]>) -> KeyRule {
    let by_flags = KeyAccess {
        read: !spec.flags.contains(Flags::WRITE) || spec.flags.contains(Flags::READONLY),
        write: spec.flags.contains(Flags::WRITE),
    };
    match specs {
        _ if spec.name == "set" => KeyRule::Set,
        _ if spec.name == "bitfield" => KeyRule::Bitfield,
        Some([]) => KeyRule::None,
        // Shard channels (SPUBLISH, SSUBSCRIBE) sit where keys are, flagged not_key: the
        // channel rules check them, not the key rules.
        Some(all) if all.iter().all(|s| spec_flags(s).contains(&"not_key")) => KeyRule::None,
        Some([one]) if matches!(spec.keys, Keys::Range(..)) => {
            KeyRule::Uniform(acl::access_of_flags(&spec_flags(one)))
        }
        Some(many) => KeyRule::Specs(many, by_flags),
        None if matches!(spec.keys, Keys::None) => KeyRule::None,
        None => KeyRule::Uniform(by_flags),
    }
}

fn spec_flags(spec: &Reply) -> Vec<&str> {
    let Reply::Map(pairs) = spec else {
        return Vec::new();
    };
    pairs
        .iter()
        .find(|(k, _)| matches!(k, Reply::Bulk(b) if &b[..] == b"flags"))
        .map_or(Vec::new(), |(_, v)| command_data::statuses(v))
}

/// Builds the catalog: every top-level row, then its subcommands (Redis's recorded ones, or a
/// WarpEngine container's rows).
fn build_catalog() -> Catalog {
    let mut entries: Vec<CatalogEntry> = Vec::new();
    for spec in TABLE.iter().filter(|s| command_table::is_top_level(s)) {
        let id = entries.len();
        let recorded = command_data::get(spec.name);
        let categories = match recorded {
            Some(c) => categories_of(&command_data::statuses(&c.info[6])),
            None => derived_categories(spec),
        };
        entries.push(CatalogEntry {
            fullname: spec.name.to_string(),
            categories,
            parent: None,
            subcommands: Vec::new(),
            keys: key_rule(spec, command_data::key_specs(spec.name, None)),
            channels: channel_rule(spec.name),
        });
        let mut subs = Vec::new();
        if matches!(spec.run, Run::Container) {
            let recorded = command_data::subcommands_with_categories(spec.name);
            for row in command_table::subcommands(spec.name) {
                let categories = match recorded.iter().find(|(full, _)| full == row.name) {
                    Some((_, cats)) => {
                        categories_of(&cats.iter().map(String::as_str).collect::<Vec<_>>())
                    }
                    None => derived_categories(row),
                };
                subs.push(CatalogEntry {
                    fullname: row.name.to_string(),
                    categories,
                    parent: Some(id),
                    subcommands: Vec::new(),
                    keys: key_rule(row, command_data::key_specs(spec.name, Some(row.name))),
                    channels: ChannelRule::None,
                });
            }
        } else {
            for (full, cats) in command_data::subcommands_with_categories(spec.name) {
                let names: Vec<&str> = cats.iter().map(String::as_str).collect();
                let specs = command_data::key_specs(spec.name, Some(&full));
                // A subcommand's keys are found by the parent row's finder.
                let keys = match specs {
                    Some([]) | None => KeyRule::None,
                    Some(many) => KeyRule::Specs(many, key_access_by_flags(spec)),
                };
                subs.push(CatalogEntry {
                    fullname: full,
                    categories: categories_of(&names),
                    parent: Some(id),
                    subcommands: Vec::new(),
                    keys,
                    channels: ChannelRule::None,
                });
            }
        }
        let first_sub = entries.len();
        entries[id].subcommands = (first_sub..first_sub + subs.len()).collect();
        entries.extend(subs);
    }
    let by_name: HashMap<String, usize> = entries
        .iter()
        .enumerate()
        .map(|(i, e)| (e.fullname.clone(), i))
        .collect();
    let by_row = TABLE
        .iter()
        .map(|row| by_name.get(row.name).copied().unwrap_or(usize::MAX))
        .collect();
    Catalog {
        entries,
        by_name,
        by_row,
        find_keys: command_data::keys_by_specs,
        flags_of_key: command_data::flags_of_key,
    }
}

/// The Pub/Sub commands whose channels are checked (Redis's CMD_CHANNEL_SUBSCRIBE and
/// CMD_CHANNEL_PUBLISH).
fn channel_rule(name: &str) -> ChannelRule {
    match name {
        "subscribe" | "ssubscribe" => ChannelRule::EveryArgument { patterns: false },
        "psubscribe" => ChannelRule::EveryArgument { patterns: true },
        "publish" | "spublish" => ChannelRule::First,
        _ => ChannelRule::None,
    }
}

fn key_access_by_flags(spec: &CommandSpec) -> KeyAccess {
    KeyAccess {
        read: true,
        write: spec.flags.contains(Flags::WRITE),
    }
}

/// Installs the catalog (called by `commands::install`).
pub fn install() {
    acl::install_catalog(build_catalog);
}

const HELP: &[&str] = &[
    "CAT [<category>]",
    "    List all commands that belong to <category>, or all command categories",
    "    when no category is specified.",
    "DELUSER <username> [<username> ...]",
    "    Delete a list of users.",
    "DRYRUN <username> <command> [<arg> ...]",
    "    Returns whether the user can execute the given command without executing the command.",
    "GETUSER <username>",
    "    Get the user's details.",
    "GENPASS [<bits>]",
    "    Generate a secure 256-bit user password. The optional `bits` argument can",
    "    be used to specify a different size.",
    "LIST",
    "    Show users details in config file format.",
    "LOAD",
    "    Reload users from the ACL file.",
    "LOG [<count> | RESET]",
    "    Show the ACL log entries.",
    "SAVE",
    "    Save the current config to the ACL file.",
    "SETUSER <username> <attribute> [<attribute> ...]",
    "    Create or modify a user with the specified attributes.",
    "USERS",
    "    List all the registered usernames.",
    "WHOAMI",
    "    Return the current connection username.",
];

pub fn acl(s: &mut Session, args: &[Bytes]) -> Reply {
    let sub = lower(&args[1]);
    let full = format!("acl|{sub}");
    match command_data::subcommand_arity_and_keyed("acl", &full) {
        Some((arity, _)) if !arity_ok(arity, args.len()) => return wrong_arity(&full),
        Some(_) => {}
        None => return unknown_subcommand(&args[1], "ACL"),
    }
    match sub.as_str() {
        "help" => help("ACL", HELP),
        "setuser" => setuser(s, args),
        "getuser" => getuser(s, &args[2]),
        "deluser" => deluser(s, &args[2..]),
        "list" => Reply::Array(
            s.server
                .acl
                .all()
                .iter()
                .map(|u| {
                    Reply::Bulk(Bytes::from(format!(
                        "user {} {}",
                        u.name,
                        u.read(|st| st.describe())
                    )))
                })
                .collect(),
        ),
        "users" => Reply::Array(
            s.server
                .acl
                .all()
                .iter()
                .map(|u| Reply::Bulk(Bytes::from(u.name.clone())))
                .collect(),
        ),
        "whoami" => Reply::Bulk(Bytes::from(s.conn.user.name.clone())),
        "cat" | "genpass" if args.len() > 3 => subcommand_syntax_error(&args[1], "ACL"),
        "cat" => cat(args.get(2)),
        "genpass" => genpass(args.get(2)),
        "dryrun" => dryrun(s, args),
        "log" if args.len() > 3 => subcommand_syntax_error(&args[1], "ACL"),
        "log" => log(s, args.get(2)),
        "load" => load(s),
        "save" => save(s),
        _ => unknown_subcommand(&args[1], "ACL"),
    }
}

/// ACL SETUSER's user name and rules are secrets: the slow log and MONITOR show them
/// redacted, as Redis.
pub fn acl_secrets(args: &[Bytes]) -> Vec<usize> {
    if args.len() >= 3 && args[1].eq_ignore_ascii_case(b"setuser") {
        (2..args.len()).collect()
    } else {
        Vec::new()
    }
}

fn setuser(s: &mut Session, args: &[Bytes]) -> Reply {
    let name = &args[2];
    // As Redis's ACLStringHasSpaces: white space (C's isspace) or NUL.
    if name
        .iter()
        .any(|&b| b == 0 || b == b' ' || (b'\t'..=b'\r').contains(&b))
    {
        return Reply::err("ERR Usernames can't contain spaces or null characters");
    }
    match s.server.acl.set_user(name, &args[3..]) {
        Ok(user) => {
            if Arc::ptr_eq(&user, &s.server.acl.default_user()) {
                s.server.sync_auth_required();
            }
            if user
                .channels_shrank
                .swap(false, std::sync::atomic::Ordering::Relaxed)
            {
                close_refused_subscribers(s, &user);
            }
            OK
        }
        Err(acl::SetUserError::Rule(rule, e)) => {
            let mut msg = b"ERR Error in ACL SETUSER modifier '".to_vec();
            msg.extend_from_slice(&rule);
            msg.extend_from_slice(format!("': {}", e.text()).as_bytes());
            Reply::error_bytes(msg)
        }
        Err(acl::SetUserError::Unmatched(start)) => {
            let mut msg = b"ERR Unmatched parenthesis in acl selector starting at '".to_vec();
            msg.extend_from_slice(&start);
            msg.extend_from_slice(b"'.");
            Reply::error_bytes(msg)
        }
    }
}

/// After a user lost channel permissions, its connections subscribed to a channel or pattern
/// it may no longer use are closed, as Redis 7.0 frees them.
fn close_refused_subscribers(s: &mut Session, user: &acl::User) {
    let server = s.server;
    let mut refused = Vec::new();
    for info in server.clients.snapshot() {
        if info.user != user.name || info.subscriptions == (0, 0, 0) {
            continue;
        }
        let Some(handle) = server.clients.get(info.id) else {
            continue;
        };
        let Some(sub) = handle.sink.lock().expect("client sink").clone() else {
            continue;
        };
        let (channels, patterns) = server.pubsub.subscribed_by(&sub);
        if !user.read(|st| st.allows_subscriptions(&channels, &patterns)) {
            refused.push(info.id);
        }
    }
    if refused.is_empty() {
        return;
    }
    let me = s.conn.id;
    let (_, self_hit) = server.clients.kill_where(me, |c| refused.contains(&c.id));
    if self_hit {
        s.conn.close_after_reply = true;
    }
}

fn bulk(s: String) -> Reply {
    Reply::Bulk(Bytes::from(s))
}

fn getuser(s: &mut Session, name: &[u8]) -> Reply {
    let Some(user) = s.server.acl.get(name) else {
        return Reply::Nil;
    };
    user.read(|st| {
        let selectors = st
            .selectors()
            .iter()
            .map(|sel| {
                Reply::Map(vec![
                    (bulk("commands".into()), bulk(sel.describe_commands())),
                    (bulk("keys".into()), bulk(sel.describe_keys())),
                    (bulk("channels".into()), bulk(sel.describe_channels())),
                ])
            })
            .collect();
        Reply::Map(vec![
            (
                bulk("flags".into()),
                Reply::Set(st.flags().into_iter().map(|f| bulk(f.into())).collect()),
            ),
            (
                bulk("passwords".into()),
                Reply::Array(st.passwords.iter().map(|p| bulk(p.clone())).collect()),
            ),
            (bulk("commands".into()), bulk(st.root().describe_commands())),
            (bulk("keys".into()), bulk(st.root().describe_keys())),
            (bulk("channels".into()), bulk(st.root().describe_channels())),
            (bulk("selectors".into()), Reply::Array(selectors)),
        ])
    })
}

/// Deletes users; their connections are closed, as Redis frees their clients.
fn deluser(s: &mut Session, names: &[Bytes]) -> Reply {
    if names.iter().any(|n| &n[..] == b"default") {
        return Reply::err("ERR The 'default' user cannot be removed");
    }
    let removed = s.server.acl.delete(names);
    let me = s.conn.id;
    let (_, self_hit) = s
        .server
        .clients
        .kill_where(me, |c| names.iter().any(|n| c.user.as_bytes() == &n[..]));
    if self_hit || names.iter().any(|n| s.conn.user.name.as_bytes() == &n[..]) {
        s.conn.close_after_reply = true;
    }
    Reply::Int(removed as i64)
}

fn cat(category: Option<&Bytes>) -> Reply {
    let Some(name) = category else {
        return Reply::Array(
            acl::CATEGORIES
                .iter()
                .map(|c| bulk(c.to_string()))
                .collect(),
        );
    };
    let bit = std::str::from_utf8(name).ok().and_then(acl::category_bit);
    match bit {
        Some(bit) => Reply::Array(
            acl::commands_in(bit)
                .into_iter()
                .map(|c| bulk(c.to_string()))
                .collect(),
        ),
        None => {
            let mut msg = b"ERR Unknown category '".to_vec();
            msg.extend_from_slice(name);
            msg.push(b'\'');
            Reply::error_bytes(msg)
        }
    }
}

const GENPASS_RANGE: &str = "ERR ACL GENPASS argument must be the number of bits for the output password, a positive number up to 4096";

/// A random password of `bits` bits (256 by default) in hex, from the kernel's random source.
fn genpass(bits: Option<&Bytes>) -> Reply {
    let bits = match bits.map(|b| int_arg(b)) {
        None => 256,
        Some(Ok(n)) if (1..=4096).contains(&n) => n as usize,
        Some(Ok(_)) => return Reply::err(GENPASS_RANGE),
        Some(Err(e)) => return e,
    };
    let chars = bits.div_ceil(4);
    let mut raw = vec![0u8; chars.div_ceil(2)];
    if let Err(e) = std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut raw))
    {
        return Reply::err(format!("ERR can't read random bytes: {e}"));
    }
    let mut hex: String = raw.iter().map(|b| format!("{b:02x}")).collect();
    hex.truncate(chars);
    bulk(hex)
}

const NO_ACLFILE: &str = "ERR This Redis instance is not configured to use an ACL file. You may want to specify users via the ACL SETUSER command and then issue a CONFIG REWRITE (assuming you have a Redis configuration file set) in order to store users in the Redis configuration.";

fn aclfile(s: &Session) -> String {
    s.server
        .config
        .read()
        .expect("config lock")
        .get("aclfile")
        .to_string()
}

/// LOAD: the users of the ACL file replace all others; every connection of a user other than
/// `default` is closed (Redis frees the old users with their clients).
fn load(s: &mut Session) -> Reply {
    let path = aclfile(s);
    if path.is_empty() {
        return Reply::err(NO_ACLFILE);
    }
    if let Err(e) = s.server.acl.load_file(&path) {
        return Reply::err(format!("ERR {e}"));
    }
    s.server.sync_auth_required();
    let me = s.conn.id;
    s.server.clients.kill_where(me, |c| c.user != "default");
    if s.conn.user.name != "default" {
        s.conn.close_after_reply = true;
    }
    OK
}

/// SAVE: every user, as ACL LIST describes it, into the ACL file.
fn save(s: &mut Session) -> Reply {
    let path = aclfile(s);
    if path.is_empty() {
        return Reply::err(NO_ACLFILE);
    }
    match s.server.acl.save_file(&path) {
        Ok(()) => OK,
        Err(e) => {
            tracing::warn!("Failed saving ACL file {path}: {e}");
            Reply::err("ERR There was an error trying to save the ACLs. Please check the server logs for more information")
        }
    }
}

/// LOG [count | RESET]: the newest refusals (10 by default), each as Redis's map.
fn log(s: &mut Session, arg: Option<&Bytes>) -> Reply {
    let count = match arg {
        None => 10,
        Some(a) if a.eq_ignore_ascii_case(b"reset") => {
            s.server.acl.log.reset();
            return OK;
        }
        Some(a) => match int_arg(a) {
            Ok(n) => n.max(0) as usize,
            Err(e) => return e,
        },
    };
    let now = std::time::Instant::now();
    let entries = s.server.acl.log.newest(count);
    Reply::Array(
        entries
            .into_iter()
            .map(|e| {
                let age = now.duration_since(e.at).as_secs_f64();
                let client = super::client::describe(&e.client, 0, &[]);
                Reply::Map(vec![
                    (bulk("count".into()), Reply::Int(e.count as i64)),
                    (bulk("reason".into()), bulk(e.reason.into())),
                    (bulk("context".into()), bulk(e.context.name().into())),
                    (bulk("object".into()), Reply::Bulk(e.object)),
                    (bulk("username".into()), Reply::Bulk(e.username)),
                    (bulk("age-seconds".into()), Reply::Double(age)),
                    (bulk("client-info".into()), bulk(client)),
                ])
            })
            .collect(),
    )
}

/// DRYRUN user command args...: whether the user may run it, without running it.
fn dryrun(s: &mut Session, args: &[Bytes]) -> Reply {
    let Some(user) = s.server.acl.get(&args[2]) else {
        let mut msg = b"ERR User '".to_vec();
        msg.extend_from_slice(&args[2]);
        msg.extend_from_slice(b"' not found");
        return Reply::error_bytes(msg);
    };
    let request = &args[3..];
    let Some(row) = command_table::lookup(&request[0]) else {
        let mut msg = b"ERR Command '".to_vec();
        msg.extend_from_slice(&request[0]);
        msg.extend_from_slice(b"' not found");
        return Reply::error_bytes(msg);
    };
    let spec = &TABLE[row];
    if !arity_ok(spec.arity, request.len()) {
        return wrong_arity(spec.name);
    }
    let row = command_table::resolve(row, request).unwrap_or(row);
    let no_auth = TABLE[row].flags.contains(Flags::NO_AUTH);
    match user.check(row, request, no_auth) {
        (Verdict::Allowed, _) => OK,
        (verdict, entry) => Reply::Bulk(Bytes::from(
            verdict.dryrun_text(acl::fullname(entry), request),
        )),
    }
}
