//! Access control lists as Redis 7.0 has them (src/acl.c): users with passwords (kept as
//! SHA-256 hex digests), a root selector and further selectors of commands, key patterns and
//! channel patterns; the rules `ACL SETUSER` and `user` config lines apply; the description
//! `ACL LIST` and `ACL GETUSER` give; and the check every request passes.
//!
//! The command catalog the rules name (every command and subcommand with its ACL categories
//! and key access) is built by the command families (`commands::acl`) and installed here once,
//! so this module never reaches up into them.
//!
//! Cost: a connection holds its user; a user allowed every command, key and channel carries a
//! flag (`User::unrestricted`) and the admission check is that one load.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock, RwLock};

use bytes::Bytes;
use sha2::{Digest, Sha256};
use warpengine_storage::glob::glob_match;

/// Redis's ACL categories, in Redis's order (the order `ACL CAT` lists them and the order the
/// description tries them in).
pub const CATEGORIES: [&str; 21] = [
    "keyspace",
    "read",
    "write",
    "set",
    "sortedset",
    "list",
    "hash",
    "string",
    "bitmap",
    "hyperloglog",
    "geo",
    "stream",
    "pubsub",
    "admin",
    "fast",
    "slow",
    "blocking",
    "dangerous",
    "connection",
    "transaction",
    "scripting",
];

/// The bit of a category name (without `@`), if Redis has it.
pub fn category_bit(name: &str) -> Option<u32> {
    CATEGORIES
        .iter()
        .position(|c| c.eq_ignore_ascii_case(name))
        .map(|i| 1 << i)
}

/// Which access a key position asks for (from its key specification's flags).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeyAccess {
    pub read: bool,
    pub write: bool,
}

/// How the keys of a command are found for the key check.
pub enum KeyRule {
    /// No keys.
    None,
    /// The table row's key positions, each with this access (one key spec, or a command Redis
    /// lacks whose access follows its read/write flags).
    Uniform(KeyAccess),
    /// Several key specs: resolved per request (`Catalog::find_keys`); `fallback` when the specs
    /// cannot be resolved without the command's own finder.
    Specs(&'static [crate::protocol::Reply], KeyAccess),
    /// SET: a write only, unless GET also reads the old value (Redis's `setGetKeys`).
    Set,
    /// BITFIELD: a read and a write, or a read only when every operation is a GET
    /// (`bitfieldGetKeys`).
    Bitfield,
}

/// Where a Pub/Sub command names the channels the channel check applies to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChannelRule {
    /// No channels checked (every other command, and the unsubscribing ones).
    None,
    /// Every argument after the name (SUBSCRIBE, SSUBSCRIBE; PSUBSCRIBE's are patterns).
    EveryArgument { patterns: bool },
    /// The first argument (PUBLISH, SPUBLISH).
    First,
}

/// One command or subcommand as the ACL rules see it.
pub struct CatalogEntry {
    /// `get`, `config|get`.
    pub fullname: String,
    pub categories: u32,
    pub parent: Option<usize>,
    pub subcommands: Vec<usize>,
    pub keys: KeyRule,
    pub channels: ChannelRule,
}

/// Finds a request's key positions and their spec flags from Redis's key specs (None: the specs
/// need the command's own finder).
pub type FindKeysFn = fn(&[crate::protocol::Reply], &[Bytes]) -> Option<Vec<(usize, Vec<String>)>>;

/// The spec flags of the key at a position (None: no spec reaches it).
pub type FlagsOfKeyFn = fn(&[crate::protocol::Reply], &[Bytes], usize) -> Option<Vec<String>>;

/// Every command and subcommand, in table order (parents before their subcommands).
pub struct Catalog {
    pub entries: Vec<CatalogEntry>,
    pub by_name: HashMap<String, usize>,
    /// The entry of each command table row (`usize::MAX`: none).
    pub by_row: Vec<usize>,
    /// `command_data::keys_by_specs`: positions and flags from Redis's key specs.
    pub find_keys: FindKeysFn,
    /// `command_data::flags_of_key`: a key's flags when the specs cannot find the keys.
    pub flags_of_key: FlagsOfKeyFn,
}

static CATALOG: OnceLock<Catalog> = OnceLock::new();

/// Installs the catalog (at start-up, by `commands::install`).
pub fn install_catalog(build: impl FnOnce() -> Catalog) {
    CATALOG.get_or_init(build);
}

fn catalog() -> &'static Catalog {
    CATALOG.get().expect("ACL catalog installed at start-up")
}

impl Catalog {
    fn words(&self) -> usize {
        self.entries.len().div_ceil(64)
    }

    /// The catalog entry a request of table row `table_row` runs as: for a container that
    /// parses its own subcommands (CONFIG, CLIENT), the subcommand's when it names one. Only
    /// such containers build a name to look up.
    pub fn entry_of(&self, table_row: usize, args: &[Bytes]) -> Option<usize> {
        let id = *self.by_row.get(table_row)?;
        if id == usize::MAX {
            return None;
        }
        if !self.entries[id].subcommands.is_empty() && args.len() >= 2 {
            let full = format!(
                "{}|{}",
                self.entries[id].fullname,
                String::from_utf8_lossy(&args[1]).to_ascii_lowercase()
            );
            if let Some(&sub) = self.by_name.get(&full) {
                return Some(sub);
            }
        }
        Some(id)
    }

    /// The commands of a category, by full name, in catalog order.
    pub fn commands_in(&self, bit: u32) -> impl Iterator<Item = &str> {
        self.entries
            .iter()
            .filter(move |e| e.categories & bit != 0)
            .map(|e| e.fullname.as_str())
    }
}

/// A key pattern with the access it grants (`~p` both, `%R~p`, `%W~p`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyPattern {
    pub pattern: Bytes,
    pub read: bool,
    pub write: bool,
    /// The pattern is a literal prefix and one final `*` (`key:*`, the usual kind): matched
    /// with a prefix comparison instead of the glob matcher, on every command of the user.
    prefix_only: bool,
}

impl KeyPattern {
    fn new(pattern: Bytes, read: bool, write: bool) -> KeyPattern {
        let prefix_only = pattern.last() == Some(&b'*')
            && !pattern[..pattern.len() - 1]
                .iter()
                .any(|c| matches!(c, b'*' | b'?' | b'[' | b'\\'));
        KeyPattern {
            pattern,
            read,
            write,
            prefix_only,
        }
    }

    fn matches(&self, key: &[u8]) -> bool {
        if self.prefix_only {
            key.starts_with(&self.pattern[..self.pattern.len() - 1])
        } else {
            glob_match(&self.pattern, key, false)
        }
    }
}

/// What a set of rules allows: commands, keys and channels.
#[derive(Clone, Debug, Default)]
pub struct Selector {
    /// One bit per catalog entry.
    commands: Vec<u64>,
    /// Every command allowed (cleared by any removal): the check's shortcut.
    all_commands: bool,
    /// Set by `+@all` only, cleared by `-@all` only: the rules started from every command, so
    /// commands added later are allowed too (Redis's reserved command bit). The description
    /// starts from `+@all` when it is set.
    future_commands: bool,
    /// First arguments allowed of an otherwise blocked command (`+select|0`), by entry.
    first_args: BTreeMap<usize, Vec<String>>,
    all_keys: bool,
    patterns: Vec<KeyPattern>,
    all_channels: bool,
    channels: Vec<Bytes>,
}

/// Why a rule was refused (`ACLSetUserStringError`'s texts).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RuleError {
    Syntax,
    UnknownName,
    KeyAfterAll,
    ChannelAfterAll,
    NoSuchPassword,
    BadHash,
    SubcommandFirstArg,
}

impl RuleError {
    pub fn text(self) -> &'static str {
        match self {
            RuleError::Syntax => "Syntax error",
            RuleError::UnknownName => "Unknown command or category name in ACL",
            RuleError::KeyAfterAll => "Adding a pattern after the * pattern (or the 'allkeys' flag) is not valid and does not have any effect. Try 'resetkeys' to start with an empty list of patterns",
            RuleError::ChannelAfterAll => "Adding a pattern after the * pattern (or the 'allchannels' flag) is not valid and does not have any effect. Try 'resetchannels' to start with an empty list of channels",
            RuleError::NoSuchPassword => "The password you are trying to remove from the user does not exist",
            RuleError::BadHash => "The password hash must be exactly 64 characters and contain only lowercase hexadecimal characters",
            RuleError::SubcommandFirstArg => "Allowing first-arg of a subcommand is not supported",
        }
    }
}

fn has_spaces(s: &[u8]) -> bool {
    s.iter().any(|c| c.is_ascii_whitespace())
}

impl Selector {
    fn new() -> Selector {
        Selector {
            // Sized by the catalog; empty before it is installed (a server built by a unit
            // test that installed no commands).
            commands: vec![0; CATALOG.get().map_or(0, Catalog::words)],
            ..Selector::default()
        }
    }

    fn bit(&self, id: usize) -> bool {
        self.commands
            .get(id / 64)
            .is_some_and(|w| w & (1 << (id % 64)) != 0)
    }

    fn set_bit(&mut self, id: usize, on: bool) {
        let Some(word) = self.commands.get_mut(id / 64) else {
            return;
        };
        if on {
            *word |= 1 << (id % 64);
        } else {
            *word &= !(1 << (id % 64));
            self.all_commands = false;
        }
    }

    /// Allows or blocks a command and, for a container, its subcommands (`ACLChangeSelectorPerm`).
    fn change_perm(&mut self, id: usize, allow: bool) {
        self.set_bit(id, allow);
        self.first_args.remove(&id);
        for &sub in &catalog().entries[id].subcommands {
            self.set_bit(sub, allow);
        }
    }

    fn set_category(&mut self, bit: u32, allow: bool) {
        let cat = catalog();
        for (id, e) in cat.entries.iter().enumerate() {
            if e.categories & bit != 0 {
                self.change_perm(id, allow);
            }
        }
    }

    fn set_all(&mut self, allow: bool) {
        let fill = if allow { u64::MAX } else { 0 };
        self.commands.iter_mut().for_each(|w| *w = fill);
        self.all_commands = allow;
        self.future_commands = allow;
        self.first_args.clear();
    }

    fn allows_everything(&self) -> bool {
        self.all_commands && self.all_keys && self.all_channels
    }

    /// Applies one selector rule (`ACLSetSelector`).
    pub fn apply(&mut self, op: &[u8]) -> Result<(), RuleError> {
        let is = |w: &str| op.eq_ignore_ascii_case(w.as_bytes());
        if is("allkeys") || op == b"~*" {
            self.all_keys = true;
            self.patterns.clear();
        } else if is("resetkeys") {
            self.all_keys = false;
            self.patterns.clear();
        } else if is("allchannels") || op == b"&*" {
            self.all_channels = true;
            self.channels.clear();
        } else if is("resetchannels") {
            self.all_channels = false;
            self.channels.clear();
        } else if is("allcommands") || is("+@all") {
            self.set_all(true);
        } else if is("nocommands") || is("-@all") {
            self.set_all(false);
        } else if op[0] == b'~' || op[0] == b'%' {
            self.add_key_pattern(op)?;
        } else if op[0] == b'&' {
            if self.all_channels {
                return Err(RuleError::ChannelAfterAll);
            }
            if has_spaces(&op[1..]) {
                return Err(RuleError::Syntax);
            }
            let pattern = Bytes::copy_from_slice(&op[1..]);
            if !self.channels.contains(&pattern) {
                self.channels.push(pattern);
            }
            self.all_channels = false;
        } else if op.len() >= 2 && (op[0] == b'+' || op[0] == b'-') && op[1] == b'@' {
            let name = std::str::from_utf8(&op[2..]).map_err(|_| RuleError::UnknownName)?;
            let bit = category_bit(name).ok_or(RuleError::UnknownName)?;
            self.set_category(bit, op[0] == b'+');
        } else if op[0] == b'+' {
            self.allow_command(&op[1..])?;
        } else if op[0] == b'-' {
            let id = lookup_command(&op[1..]).ok_or(RuleError::UnknownName)?;
            self.change_perm(id, false);
        } else {
            return Err(RuleError::Syntax);
        }
        Ok(())
    }

    fn add_key_pattern(&mut self, op: &[u8]) -> Result<(), RuleError> {
        if self.all_keys {
            return Err(RuleError::KeyAfterAll);
        }
        let (mut read, mut write) = (false, false);
        let mut offset = 1;
        if op[0] == b'%' {
            loop {
                match op.get(offset).map(u8::to_ascii_uppercase) {
                    Some(b'R') if !read => read = true,
                    Some(b'W') if !write => write = true,
                    Some(b'~') => {
                        offset += 1;
                        break;
                    }
                    // `%R` with no `~`: Redis takes the rest (nothing) as the pattern.
                    None => break,
                    _ => return Err(RuleError::Syntax),
                }
                offset += 1;
            }
        } else {
            (read, write) = (true, true);
        }
        let pattern = op.get(offset..).unwrap_or_default();
        if has_spaces(pattern) {
            return Err(RuleError::Syntax);
        }
        let pattern = Bytes::copy_from_slice(pattern);
        match self.patterns.iter_mut().find(|p| p.pattern == pattern) {
            Some(p) => {
                p.read |= read;
                p.write |= write;
            }
            None => self.patterns.push(KeyPattern::new(pattern, read, write)),
        }
        self.all_keys = false;
        Ok(())
    }

    /// `+cmd`, `+container|sub`, or `+cmd|first-arg`.
    fn allow_command(&mut self, name: &[u8]) -> Result<(), RuleError> {
        let Some(bar) = name.iter().rposition(|&c| c == b'|') else {
            let id = lookup_command(name).ok_or(RuleError::UnknownName)?;
            self.change_perm(id, true);
            return Ok(());
        };
        let id = lookup_command(&name[..bar]).ok_or(RuleError::UnknownName)?;
        let entry = &catalog().entries[id];
        if entry.parent.is_some() {
            return Err(RuleError::SubcommandFirstArg);
        }
        let sub = &name[bar + 1..];
        if sub.is_empty() {
            return Err(RuleError::Syntax);
        }
        if !entry.subcommands.is_empty() {
            let sub_id = lookup_command(name).ok_or(RuleError::UnknownName)?;
            self.change_perm(sub_id, true);
        } else {
            tracing::warn!(
                "Deprecation warning: Allowing a first arg of an otherwise blocked command is a misuse of ACL and may get disabled in the future (offender: +{})",
                String::from_utf8_lossy(name)
            );
            let sub = String::from_utf8_lossy(sub).into_owned();
            let list = self.first_args.entry(id).or_default();
            if !list.iter().any(|s| s.eq_ignore_ascii_case(&sub)) {
                list.push(sub);
            }
        }
        Ok(())
    }

    /// `%R~a* ~b*` (or `~*`): the key part of the description.
    pub fn describe_keys(&self) -> String {
        if self.all_keys {
            return "~*".into();
        }
        let parts: Vec<String> = self.patterns.iter().map(describe_pattern).collect();
        parts.join(" ")
    }

    /// `&a &b` (or `&*`): the channel part of GETUSER's reply.
    pub fn describe_channels(&self) -> String {
        if self.all_channels {
            return "&*".into();
        }
        let parts: Vec<String> = self
            .channels
            .iter()
            .map(|c| format!("&{}", String::from_utf8_lossy(c)))
            .collect();
        parts.join(" ")
    }

    /// The command rules, starting from `+@all` or `-@all`, then the best-fitting categories,
    /// then single commands (`ACLDescribeSelectorCommandRules`'s approximation).
    pub fn describe_commands(&self) -> String {
        let cat = catalog();
        let additive = !self.future_commands;
        let mut rules = String::from(if additive { "-@all " } else { "+@all " });
        let mut fake = Selector::new();
        fake.set_all(!additive);
        let mut temp = self.clone();
        let mut applied = [false; CATEGORIES.len()];
        loop {
            let mut best = None;
            let (mut min_diff, mut max_same) = (usize::MAX, 0);
            for (j, name) in CATEGORIES.iter().enumerate() {
                if applied[j] {
                    continue;
                }
                let bit = category_bit(name).expect("listed category");
                let (mut on, mut off) = (0, 0);
                for (id, e) in cat.entries.iter().enumerate() {
                    if e.categories & bit != 0 {
                        if temp.bit(id) {
                            on += 1
                        } else {
                            off += 1
                        }
                    }
                }
                let (diff, same) = if additive { (off, on) } else { (on, off) };
                if same > diff && (diff < min_diff || (diff == min_diff && same > max_same)) {
                    best = Some(j);
                    min_diff = diff;
                    max_same = same;
                }
            }
            let Some(j) = best else { break };
            let bit = 1 << j;
            fake.set_category(bit, additive);
            temp.set_category(bit, !additive);
            rules.push_str(if additive { "+@" } else { "-@" });
            rules.push_str(CATEGORIES[j]);
            rules.push(' ');
            applied[j] = true;
        }
        for (id, e) in cat.entries.iter().enumerate() {
            let mine = self.bit(id);
            if mine != fake.bit(id) {
                rules.push(if mine { '+' } else { '-' });
                rules.push_str(&e.fullname);
                rules.push(' ');
                fake.change_perm(id, mine);
            }
            if !mine {
                for arg in self.first_args.get(&id).into_iter().flatten() {
                    rules.push_str(&format!("+{}|{arg} ", e.fullname));
                }
            }
        }
        rules.pop();
        rules
    }

    /// Keys, channels, then commands, as in ACL LIST.
    fn describe(&self) -> String {
        let mut out = String::new();
        if self.all_keys {
            out.push_str("~* ");
        } else {
            for p in &self.patterns {
                out.push_str(&describe_pattern(p));
                out.push(' ');
            }
        }
        if self.all_channels {
            out.push_str("&* ");
        } else {
            out.push_str("resetchannels ");
            for c in &self.channels {
                out.push('&');
                out.push_str(&String::from_utf8_lossy(c));
                out.push(' ');
            }
        }
        out.push_str(&self.describe_commands());
        out
    }

    /// Checks a request (`ACLSelectorCheckCmd`): the command, then its keys, then its channels.
    fn check(&self, entry: usize, table_row: usize, args: &[Bytes], no_auth: bool) -> Verdict {
        if !self.all_commands && !no_auth && !self.bit(entry) {
            let idx = if catalog().entries[entry].parent.is_some() {
                2
            } else {
                1
            };
            let allowed = args.len() >= 2
                && self.first_args.get(&entry).is_some_and(|list| {
                    args.get(idx)
                        .is_some_and(|a| list.iter().any(|s| s.as_bytes().eq_ignore_ascii_case(a)))
                });
            if !allowed {
                return Verdict::DeniedCommand;
            }
        }
        if !self.all_keys {
            let refused = match uniform_access(entry, args) {
                // Most commands: every key needs the same access (checked without collecting
                // the keys, on every request of a restricted user).
                Some(access) => crate::command_table::TABLE[table_row]
                    .key_positions_iter(args)
                    .filter(|&p| p < args.len())
                    .find(|&p| !self.key_allowed(&args[p], access)),
                None => request_keys(entry, table_row, args)
                    .into_iter()
                    .find(|&(p, access)| !self.key_allowed(&args[p], access))
                    .map(|(p, _)| p),
            };
            if let Some(pos) = refused {
                return Verdict::DeniedKey(pos);
            }
        }
        if !self.all_channels {
            for (pos, is_pattern) in request_channels(entry, args) {
                if !self.channel_allowed(&args[pos], is_pattern) {
                    return Verdict::DeniedChannel(pos);
                }
            }
        }
        Verdict::Allowed
    }

    fn key_allowed(&self, key: &[u8], access: KeyAccess) -> bool {
        self.all_keys
            || self
                .patterns
                .iter()
                .any(|p| (p.read || !access.read) && (p.write || !access.write) && p.matches(key))
    }

    /// A channel name is matched against the patterns; a PSUBSCRIBE pattern only literally.
    fn channel_allowed(&self, channel: &[u8], is_pattern: bool) -> bool {
        self.all_channels
            || self.channels.iter().any(|p| {
                if is_pattern {
                    p[..] == *channel
                } else {
                    glob_match(p, channel, false)
                }
            })
    }
}

fn describe_pattern(p: &KeyPattern) -> String {
    let prefix = match (p.read, p.write) {
        (true, true) => "~",
        (true, false) => "%R~",
        (false, true) => "%W~",
        (false, false) => "%~",
    };
    format!("{prefix}{}", String::from_utf8_lossy(&p.pattern))
}

fn lookup_command(name: &[u8]) -> Option<usize> {
    let name = std::str::from_utf8(name).ok()?.to_ascii_lowercase();
    catalog().by_name.get(&name).copied()
}

/// The access every key of the request needs, when it is the same for all of them (the rules
/// `request_keys` spells out per key otherwise).
fn uniform_access(entry: usize, args: &[Bytes]) -> Option<KeyAccess> {
    match &catalog().entries[entry].keys {
        KeyRule::Uniform(access) => Some(*access),
        KeyRule::Set => Some(set_access(args)),
        _ => None,
    }
}

/// SET writes its key, and reads it too with GET.
fn set_access(args: &[Bytes]) -> KeyAccess {
    let get = args.iter().skip(3).any(|a| a.eq_ignore_ascii_case(b"get"));
    KeyAccess {
        read: get,
        write: true,
    }
}

/// The keys of a request with the access each needs.
fn request_keys(entry: usize, table_row: usize, args: &[Bytes]) -> Vec<(usize, KeyAccess)> {
    let cat = catalog();
    let spec = &crate::command_table::TABLE[table_row];
    let uniform = |access| {
        spec.key_positions(args)
            .into_iter()
            .filter(|&p| p < args.len())
            .map(|p| (p, access))
            .collect()
    };
    match &cat.entries[entry].keys {
        KeyRule::None => Vec::new(),
        KeyRule::Uniform(access) => uniform(*access),
        KeyRule::Set => uniform(set_access(args)),
        KeyRule::Bitfield => {
            let writes = args.iter().skip(2).any(|a| {
                a.eq_ignore_ascii_case(b"set")
                    || a.eq_ignore_ascii_case(b"incrby")
                    || a.eq_ignore_ascii_case(b"overflow")
            });
            // Reads always; writes too unless every operation is a GET.
            uniform(KeyAccess {
                read: true,
                write: writes,
            })
        }
        KeyRule::Specs(specs, fallback) => match (cat.find_keys)(specs, args) {
            Some(found) => found
                .into_iter()
                .filter(|(p, _)| *p < args.len())
                .map(|(p, flags)| (p, access_of_flags(&flags)))
                .collect(),
            // Incomplete specs (SORT, MIGRATE): the command's own finder's keys, each with the
            // flags of the spec it falls under.
            None => spec
                .key_positions(args)
                .into_iter()
                .filter(|&p| p < args.len())
                .map(|p| {
                    let access = (cat.flags_of_key)(specs, args, p)
                        .map_or(*fallback, |flags| access_of_flags(&flags));
                    (p, access)
                })
                .collect(),
        },
    }
}

/// Read or write access from a key spec's flags (`access` reads; `insert`, `delete`, `update`
/// write).
pub fn access_of_flags<S: AsRef<str>>(flags: &[S]) -> KeyAccess {
    let has = |f: &str| flags.iter().any(|x| x.as_ref() == f);
    KeyAccess {
        read: has("access"),
        write: has("insert") || has("delete") || has("update"),
    }
}

/// The channels a Pub/Sub request names, and whether each is a pattern (PSUBSCRIBE).
/// Unsubscribing is never refused.
fn request_channels(entry: usize, args: &[Bytes]) -> Vec<(usize, bool)> {
    match catalog().entries[entry].channels {
        ChannelRule::None => Vec::new(),
        ChannelRule::EveryArgument { patterns } => (1..args.len()).map(|p| (p, patterns)).collect(),
        ChannelRule::First if args.len() >= 2 => vec![(1, false)],
        ChannelRule::First => Vec::new(),
    }
}

/// The outcome of a permission check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Allowed,
    DeniedCommand,
    /// The argument position of the first key refused.
    DeniedKey(usize),
    DeniedChannel(usize),
}

impl Verdict {
    /// Redis's order of refusals (ACL_DENIED_CMD < ACL_DENIED_KEY < ACL_DENIED_CHANNEL), then
    /// the argument position.
    fn rank(self) -> (u8, usize) {
        match self {
            Verdict::Allowed => (0, 0),
            Verdict::DeniedCommand => (1, 0),
            Verdict::DeniedKey(at) => (2, at),
            Verdict::DeniedChannel(at) => (4, at),
        }
    }

    /// ACL DRYRUN's sentence for a refusal.
    pub fn dryrun_text(self, fullname: &str, args: &[Bytes]) -> Vec<u8> {
        let mut out = b"This user has no permissions to ".to_vec();
        match self {
            Verdict::Allowed => return Vec::new(),
            Verdict::DeniedCommand => {
                out.extend_from_slice(format!("run the '{fullname}' command").as_bytes())
            }
            Verdict::DeniedKey(at) | Verdict::DeniedChannel(at) => {
                out.extend_from_slice(b"access the '");
                out.extend_from_slice(&args[at]);
                out.extend_from_slice(if matches!(self, Verdict::DeniedKey(_)) {
                    b"' key"
                } else {
                    b"' channel"
                });
            }
        }
        out
    }

    /// The NOPERM error Redis 7.0 answers (`fullname` names the command refused).
    pub fn error(self, fullname: &str) -> String {
        match self {
            Verdict::Allowed => String::new(),
            Verdict::DeniedCommand => {
                format!("NOPERM this user has no permissions to run the '{fullname}' command")
            }
            Verdict::DeniedKey(_) => {
                "NOPERM this user has no permissions to access one of the keys used as arguments"
                    .into()
            }
            Verdict::DeniedChannel(_) => {
                "NOPERM this user has no permissions to access one of the channels used as arguments"
                    .into()
            }
        }
    }
}

/// A user's settings.
#[derive(Clone, Debug)]
pub struct UserState {
    pub enabled: bool,
    pub nopass: bool,
    /// None: neither flag given; Some(true): sanitize-payload; Some(false): skip-sanitize-payload.
    pub sanitize_payload: Option<bool>,
    /// SHA-256 digests in lowercase hex.
    pub passwords: Vec<String>,
    pub root: Selector,
    pub selectors: Vec<Selector>,
}

/// A user: its name, its settings (changed in place by ACL SETUSER, so its connections see the
/// change), and whether it may do everything.
pub struct User {
    pub name: String,
    state: RwLock<UserState>,
    unrestricted: AtomicBool,
    /// Set by the last SETUSER when it took channel permissions away: its subscribers are
    /// then checked (see `commands::acl`).
    pub channels_shrank: AtomicBool,
}

/// The SHA-256 of a password, in lowercase hex (`ACLHashPassword`).
pub fn hash_password(password: &[u8]) -> String {
    let digest = Sha256::digest(password);
    let mut out = String::with_capacity(64);
    for b in digest {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

/// Compares two digests in time independent of where they differ.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn valid_hash(h: &[u8]) -> bool {
    h.len() == 64 && h.iter().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f'))
}

impl UserState {
    /// A new user: off, no passwords, no commands, no keys; channels per `acl-pubsub-default`.
    fn new(all_channels: bool) -> UserState {
        let mut root = Selector::new();
        root.all_channels = all_channels;
        UserState {
            enabled: false,
            nopass: false,
            sanitize_payload: None,
            passwords: Vec::new(),
            root,
            selectors: Vec::new(),
        }
    }

    /// Applies one rule (`ACLSetUser`). `all_channels`: `acl-pubsub-default` is allchannels.
    pub fn apply(&mut self, op: &[u8], all_channels: bool) -> Result<(), RuleError> {
        if op.is_empty() {
            return Ok(());
        }
        let is = |w: &str| op.eq_ignore_ascii_case(w.as_bytes());
        if is("on") {
            self.enabled = true;
        } else if is("off") {
            self.enabled = false;
        } else if is("skip-sanitize-payload") {
            self.sanitize_payload = Some(false);
        } else if is("sanitize-payload") {
            self.sanitize_payload = Some(true);
        } else if is("nopass") {
            self.nopass = true;
            self.passwords.clear();
        } else if is("resetpass") {
            self.nopass = false;
            self.passwords.clear();
        } else if op[0] == b'>' || op[0] == b'#' {
            let hash = if op[0] == b'>' {
                hash_password(&op[1..])
            } else if valid_hash(&op[1..]) {
                String::from_utf8_lossy(&op[1..]).into_owned()
            } else {
                return Err(RuleError::BadHash);
            };
            if !self.passwords.contains(&hash) {
                self.passwords.push(hash);
            }
            self.nopass = false;
        } else if op[0] == b'<' || op[0] == b'!' {
            let hash = if op[0] == b'<' {
                hash_password(&op[1..])
            } else if valid_hash(&op[1..]) {
                String::from_utf8_lossy(&op[1..]).into_owned()
            } else {
                return Err(RuleError::BadHash);
            };
            let at = self
                .passwords
                .iter()
                .position(|p| *p == hash)
                .ok_or(RuleError::NoSuchPassword)?;
            self.passwords.remove(at);
        } else if op[0] == b'(' && op[op.len() - 1] == b')' {
            let mut selector = Selector::new();
            let inner = &op[1..op.len() - 1];
            let words = crate::protocol::parse::split_args(inner).ok_or(RuleError::Syntax)?;
            for word in words {
                selector.apply(&word)?;
            }
            self.selectors.push(selector);
        } else if is("clearselectors") {
            self.selectors.clear();
        } else if is("reset") {
            self.nopass = false;
            self.passwords.clear();
            self.root.apply(b"resetkeys")?;
            self.root.apply(b"resetchannels")?;
            if all_channels {
                self.root.apply(b"allchannels")?;
            }
            self.enabled = false;
            self.sanitize_payload = Some(true);
            self.selectors.clear();
            self.root.apply(b"-@all")?;
        } else {
            self.root.apply(op)?;
        }
        Ok(())
    }

    /// The channel patterns of every selector, or None when one allows every channel.
    fn channel_patterns(&self) -> Option<Vec<Bytes>> {
        let mut all = Vec::new();
        for s in std::iter::once(&self.root).chain(&self.selectors) {
            if s.all_channels {
                return None;
            }
            all.extend(s.channels.iter().cloned());
        }
        Some(all)
    }

    /// Whether subscriptions made under `before` may be refused under these rules: some
    /// channel permission was lost (`ACLKillPubsubClientsIfNeeded`'s first test).
    pub fn channels_shrank_from(&self, before: &UserState) -> bool {
        match (before.channel_patterns(), self.channel_patterns()) {
            (_, None) => false,
            (None, Some(_)) => true,
            (Some(old), Some(new)) => old != new,
        }
    }

    /// Whether a connection subscribed to these channels and patterns may keep them.
    pub fn allows_subscriptions(&self, channels: &[Bytes], patterns: &[Bytes]) -> bool {
        let Some(allowed) = self.channel_patterns() else {
            return true;
        };
        patterns.iter().all(|p| allowed.contains(p))
            && channels
                .iter()
                .all(|c| allowed.iter().any(|a| glob_match(a, c, false)))
    }

    /// The flags as GETUSER lists them.
    pub fn flags(&self) -> Vec<&'static str> {
        let mut flags = vec![if self.enabled { "on" } else { "off" }];
        if self.nopass {
            flags.push("nopass");
        }
        match self.sanitize_payload {
            Some(false) => flags.push("skip-sanitize-payload"),
            Some(true) => flags.push("sanitize-payload"),
            None => {}
        }
        flags
    }

    pub fn root(&self) -> &Selector {
        &self.root
    }

    pub fn selectors(&self) -> &[Selector] {
        &self.selectors
    }

    /// The rules that re-create this user (`ACLDescribeUser`), as ACL LIST and ACL SAVE write.
    pub fn describe(&self) -> String {
        let mut out = String::new();
        for f in self.flags() {
            out.push_str(f);
            out.push(' ');
        }
        for p in &self.passwords {
            out.push('#');
            out.push_str(p);
            out.push(' ');
        }
        out.push_str(&self.root.describe());
        for s in &self.selectors {
            out.push_str(" (");
            out.push_str(&s.describe());
            out.push(')');
        }
        out
    }

    fn unrestricted(&self) -> bool {
        self.root.allows_everything()
    }

    /// Checks a request against the root selector, then each further selector; the first
    /// that allows it wins, otherwise the root selector's refusal is answered.
    pub fn check(&self, entry: usize, table_row: usize, args: &[Bytes], no_auth: bool) -> Verdict {
        let mut worst = Verdict::DeniedCommand;
        for selector in std::iter::once(&self.root).chain(&self.selectors) {
            let verdict = selector.check(entry, table_row, args, no_auth);
            if verdict == Verdict::Allowed {
                return verdict;
            }
            // As Redis: the refusal answered is the most specific one (channel over key over
            // command), and among equals the one at the later argument.
            if verdict.rank() > worst.rank() {
                worst = verdict;
            }
        }
        worst
    }

    /// Whether `password` opens this user (`ACLCheckUserCredentials`).
    pub fn password_matches(&self, password: &[u8]) -> bool {
        if self.nopass {
            return true;
        }
        let hashed = hash_password(password);
        // Every stored digest is compared, so the time taken says nothing of which matched.
        self.passwords.iter().fold(false, |found, p| {
            constant_time_eq(p.as_bytes(), hashed.as_bytes()) | found
        })
    }
}

impl User {
    pub fn new(name: &str, state: UserState) -> User {
        let unrestricted = state.unrestricted();
        User {
            name: name.to_string(),
            state: RwLock::new(state),
            unrestricted: AtomicBool::new(unrestricted),
            channels_shrank: AtomicBool::new(false),
        }
    }

    /// The hot-path test: a user allowed every command, key and channel needs no check.
    #[inline]
    pub fn unrestricted(&self) -> bool {
        self.unrestricted.load(Ordering::Relaxed)
    }

    pub fn state(&self) -> UserState {
        self.state.read().expect("ACL user lock").clone()
    }

    pub fn read<R>(&self, f: impl FnOnce(&UserState) -> R) -> R {
        f(&self.state.read().expect("ACL user lock"))
    }

    /// Replaces the settings (after every rule of a SETUSER applied to a copy succeeded).
    pub fn replace(&self, state: UserState) {
        self.unrestricted
            .store(state.unrestricted(), Ordering::Relaxed);
        *self.state.write().expect("ACL user lock") = state;
    }

    /// Whether some selector that allows this request also lets it read every key (`~*`,
    /// `allkeys`, `%R~*`): SORT's BY and GET patterns name keys the request does not show, so
    /// Redis allows them only then (ACLUserCheckCmdWithUnrestrictedKeyAccess).
    pub fn reads_every_key(&self, table_row: usize, args: &[Bytes]) -> bool {
        if self.unrestricted() {
            return true;
        }
        let Some(entry) = catalog().entry_of(table_row, args) else {
            return true;
        };
        self.read(|s| {
            std::iter::once(&s.root)
                .chain(&s.selectors)
                .any(|selector| {
                    selector.check(entry, table_row, args, false) == Verdict::Allowed
                        && (selector.all_keys
                            || selector
                                .patterns
                                .iter()
                                .any(|p| p.read && &p.pattern[..] == b"*"))
                })
        })
    }

    /// Checks a request whose table row is `table_row`.
    pub fn check(&self, table_row: usize, args: &[Bytes], no_auth: bool) -> (Verdict, usize) {
        let Some(entry) = catalog().entry_of(table_row, args) else {
            return (Verdict::Allowed, 0);
        };
        (
            self.read(|s| s.check(entry, table_row, args, no_auth)),
            entry,
        )
    }
}

/// The commands of a category, by full name, in catalog order (ACL CAT).
pub fn commands_in(bit: u32) -> Vec<&'static str> {
    catalog().commands_in(bit).collect()
}

/// The full name of a catalog entry (`config|get`).
pub fn fullname(entry: usize) -> &'static str {
    &catalog().entries[entry].fullname
}

/// Why ACL SETUSER changed nothing.
#[derive(Debug)]
pub enum SetUserError {
    /// A rule (as merged) was refused.
    Rule(Bytes, RuleError),
    /// A selector's `(` was never closed: the argument it started at.
    Unmatched(Bytes),
}

/// Joins the arguments of a selector split by the client's quoting (`(+get` `~a)`) into one
/// rule, with single spaces, as Redis's `ACLMergeSelectorArguments`.
fn merge_selector_args(rules: &[Bytes]) -> Result<Vec<Bytes>, SetUserError> {
    let mut out = Vec::with_capacity(rules.len());
    let mut open: Option<(Bytes, Vec<u8>)> = None;
    for rule in rules {
        match &mut open {
            Some((_, acc)) => {
                acc.push(b' ');
                acc.extend_from_slice(rule);
                if rule.last() == Some(&b')') {
                    let (_, acc) = open.take().expect("an open selector");
                    out.push(Bytes::from(acc));
                }
            }
            None if rule.first() == Some(&b'(') && rule.last() != Some(&b')') => {
                open = Some((rule.clone(), rule.to_vec()));
            }
            None => out.push(rule.clone()),
        }
    }
    match open {
        Some((start, _)) => Err(SetUserError::Unmatched(start)),
        None => Ok(out),
    }
}

/// The server's users, by name in byte order (as Redis's radix tree lists them).
pub struct Users {
    users: RwLock<BTreeMap<Vec<u8>, Arc<User>>>,
    default_user: Arc<User>,
    /// acl-pubsub-default: whether new users start with allchannels.
    pub pubsub_default_all: AtomicBool,
    pub log: AclLog,
}

impl Default for Users {
    fn default() -> Self {
        Users::new()
    }
}

/// Rules allowing every command, key and channel, without a password: the `default` user's at
/// start, and the superuser's.
fn allowed_everything() -> UserState {
    let mut state = UserState::new(true);
    for rule in ["+@all", "~*", "&*", "on", "nopass"] {
        state
            .apply(rule.as_bytes(), true)
            .expect("rules allowing everything are valid");
    }
    state
}

/// The user a replica runs its primary's stream as: allowed everything, whatever ACL SETUSER
/// does to `default`, and named as Redis's CLIENT LIST names it. Not in the user table.
pub fn superuser() -> Arc<User> {
    Arc::new(User::new("(superuser)", allowed_everything()))
}

impl Users {
    /// The users at start: `default`, on, nopass, every command, key and channel.
    pub fn new() -> Users {
        let default_user = Arc::new(User::new("default", allowed_everything()));
        let mut users = BTreeMap::new();
        users.insert(b"default".to_vec(), default_user.clone());
        Users {
            users: RwLock::new(users),
            default_user,
            pubsub_default_all: AtomicBool::new(false),
            log: AclLog::default(),
        }
    }

    pub fn default_user(&self) -> Arc<User> {
        self.default_user.clone()
    }

    pub fn get(&self, name: &[u8]) -> Option<Arc<User>> {
        self.users
            .read()
            .expect("ACL users lock")
            .get(name)
            .cloned()
    }

    pub fn all(&self) -> Vec<Arc<User>> {
        self.users
            .read()
            .expect("ACL users lock")
            .values()
            .cloned()
            .collect()
    }

    /// Applies rules to a user, creating it if new; nothing changes unless every rule is valid.
    /// The error names the rule refused.
    pub fn set_user(&self, name: &[u8], rules: &[Bytes]) -> Result<Arc<User>, SetUserError> {
        let all_channels = self.pubsub_default_all.load(Ordering::Relaxed);
        let rules = merge_selector_args(rules)?;
        let existing = self.get(name);
        let mut state = match &existing {
            Some(u) => u.state(),
            None => UserState::new(all_channels),
        };
        let before = state.clone();
        for rule in &rules {
            state
                .apply(rule, all_channels)
                .map_err(|e| SetUserError::Rule(rule.clone(), e))?;
        }
        let mut users = self.users.write().expect("ACL users lock");
        match users.get(name) {
            Some(u) => {
                let shrank = state.channels_shrank_from(&before);
                u.replace(state);
                u.channels_shrank.store(shrank, Ordering::Relaxed);
                Ok(u.clone())
            }
            None => {
                let user = Arc::new(User::new(&String::from_utf8_lossy(name), state));
                users.insert(name.to_vec(), user.clone());
                Ok(user)
            }
        }
    }

    /// Replaces every user with those of an ACL file (`ACLLoadFromFile`): all or nothing; the
    /// error lists every problem found, in Redis's words. A file without a `default` line
    /// gives the default user its initial settings. The default user keeps its identity (its
    /// connections stay); every other user is new.
    pub fn load_file(&self, path: &str) -> Result<(), String> {
        let text = std::fs::read(path).map_err(|e| {
            let why = e.to_string();
            let why = why.split(" (os error").next().unwrap_or(&why).to_string();
            format!("Error loading ACLs, opening file '{path}': {why}")
        })?;
        let all_channels = self.pubsub_default_all.load(Ordering::Relaxed);
        let mut errors = String::new();
        let mut loaded: BTreeMap<Vec<u8>, UserState> = BTreeMap::new();
        for (n, line) in text.split(|&c| c == b'\n').enumerate() {
            let lineno = n + 1;
            let line = line.trim_ascii();
            if line.is_empty() {
                continue;
            }
            let Some(argv) = crate::protocol::parse::split_args(line) else {
                errors.push_str(&format!("{path}:{lineno}: Syntax error. "));
                continue;
            };
            if argv.is_empty() {
                continue;
            }
            if argv.len() < 2 || &argv[0][..] != b"user" {
                errors.push_str(&format!(
                    "{path}:{lineno} should start with user keyword followed by the username. "
                ));
                continue;
            }
            let name = argv[1].to_vec();
            if has_spaces(&name) {
                errors.push_str(&format!(
                    "'{path}:{lineno}: username '{}' contains invalid characters. ",
                    String::from_utf8_lossy(&name)
                ));
                continue;
            }
            if loaded.contains_key(&name) {
                errors.push_str(&format!(
                    "WARNING: Duplicate user '{}' found on line {lineno}. ",
                    String::from_utf8_lossy(&name)
                ));
                continue;
            }
            let Ok(rules) = merge_selector_args(&argv[2..]) else {
                errors.push_str(&format!(
                    "{path}:{lineno}: Unmatched parenthesis in selector definition."
                ));
                continue;
            };
            let mut state = UserState::new(all_channels);
            let applied = rules.iter().try_for_each(|rule| {
                state.apply(rule, all_channels).map_err(|e| {
                    format!(
                        "{path}:{lineno}: Error in applying operation '{}': {}. ",
                        String::from_utf8_lossy(rule),
                        e.text()
                    )
                })
            });
            match applied {
                Ok(()) => {
                    loaded.insert(name, state);
                }
                Err(e) => errors.push_str(&e),
            }
        }
        if !errors.is_empty() {
            errors.push_str(
                "WARNING: ACL errors detected, no change to the previously active ACL rules was performed",
            );
            return Err(errors);
        }
        let default_state = loaded
            .remove(&b"default"[..])
            .unwrap_or_else(|| Users::new().default_user.state());
        self.default_user.replace(default_state);
        let mut users = self.users.write().expect("ACL users lock");
        users.clear();
        users.insert(b"default".to_vec(), self.default_user.clone());
        for (name, state) in loaded {
            let user = Arc::new(User::new(&String::from_utf8_lossy(&name), state));
            users.insert(name, user);
        }
        Ok(())
    }

    /// Creates the users of the config file's `user` lines (`ACLLoadConfiguredUsers`): the
    /// default user is reset first; a refused rule stops the start with Redis's message.
    pub fn create_configured(&self, lines: &[Vec<String>]) -> Result<(), String> {
        for words in lines {
            let name = words[0].as_bytes();
            let mut rules: Vec<Bytes> = words[1..]
                .iter()
                .map(|w| Bytes::copy_from_slice(w.as_bytes()))
                .collect();
            if name == b"default" {
                rules.insert(0, Bytes::from_static(b"reset"));
            }
            match self.set_user(name, &rules) {
                Ok(user) => {
                    if !user.read(|s| s.enabled) {
                        tracing::info!("The user '{}' is disabled (there is no 'on' modifier in the user description). Make sure this is not a configuration error.", user.name);
                    }
                }
                Err(SetUserError::Rule(rule, e)) => {
                    return Err(format!(
                        "Error loading ACL rule '{}' for the user named '{}': {}",
                        String::from_utf8_lossy(&rule),
                        words[0],
                        e.text()
                    ))
                }
                Err(SetUserError::Unmatched(start)) => {
                    return Err(format!(
                        "Unmatched parenthesis in acl selector starting at '{}'.",
                        String::from_utf8_lossy(&start)
                    ))
                }
            }
        }
        Ok(())
    }

    /// Writes every user as a `user` line (`ACLSaveToFile`), through a temporary file renamed
    /// over `path`.
    pub fn save_file(&self, path: &str) -> std::io::Result<()> {
        let mut text = String::new();
        for user in self.all() {
            text.push_str(&format!(
                "user {} {}\n",
                user.name,
                user.read(|s| s.describe())
            ));
        }
        let tmp = format!("{path}.tmp-{}", std::process::id());
        std::fs::write(&tmp, text)?;
        std::fs::rename(&tmp, path)
    }

    /// Removes users (never `default`); the count removed.
    pub fn delete(&self, names: &[Bytes]) -> usize {
        let mut users = self.users.write().expect("ACL users lock");
        names
            .iter()
            .filter(|n| users.remove(&n[..]).is_some())
            .count()
    }

    /// The user a name and password open, if any (`ACLCheckUserCredentials`).
    pub fn authenticate(&self, name: &[u8], password: &[u8]) -> Option<Arc<User>> {
        let user = self.get(name)?;
        let ok = user.read(|s| s.enabled && s.password_matches(password));
        ok.then_some(user)
    }

    /// Whether new connections must authenticate: the default user is off or has a password.
    pub fn auth_required(&self) -> bool {
        self.default_user.read(|s| !s.enabled || !s.nopass)
    }

    /// The default user takes any password (`nopass`), whether on or off: what protected mode
    /// looks at, as Redis's `DefaultUser->flags & USER_FLAG_NOPASS`.
    pub fn default_nopass(&self) -> bool {
        self.default_user.read(|s| s.nopass)
    }
}

/// Where a refusal happened (ACL LOG's `context`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogContext {
    Toplevel,
    Multi,
    Lua,
}

impl LogContext {
    pub fn name(self) -> &'static str {
        match self {
            LogContext::Toplevel => "toplevel",
            LogContext::Multi => "multi",
            LogContext::Lua => "lua",
        }
    }
}

/// One ACL LOG entry: a refusal, counted again when it repeats within a minute.
#[derive(Clone, Debug)]
pub struct LogEntry {
    pub count: u64,
    /// `command`, `key`, `channel` or `auth`.
    pub reason: &'static str,
    pub context: LogContext,
    /// The command, key or channel refused (`AUTH` for a failed authentication).
    pub object: Bytes,
    pub username: Bytes,
    /// When it last happened.
    pub at: std::time::Instant,
    /// The client as it was then.
    pub client: crate::clients::ClientInfo,
}

/// Repeats of the same refusal within this long count in one entry (Redis's
/// ACL_LOG_GROUPING_MAX_TIME_DELTA).
const LOG_GROUPING: std::time::Duration = std::time::Duration::from_secs(60);

/// The ACL LOG: newest first, at most `acllog-max-len` entries.
#[derive(Default)]
pub struct AclLog {
    entries: std::sync::Mutex<std::collections::VecDeque<LogEntry>>,
}

impl AclLog {
    /// Records a refusal, or counts it again in the entry of the same refusal in the last
    /// minute (then moved to the front with the new time and client).
    pub fn add(&self, mut entry: LogEntry, max_len: usize) {
        let mut entries = self.entries.lock().expect("ACL log lock");
        let same = entries.iter().position(|e| {
            e.reason == entry.reason
                && e.context == entry.context
                && e.object == entry.object
                && e.username == entry.username
                && entry.at.duration_since(e.at) < LOG_GROUPING
        });
        if let Some(at) = same {
            let old = entries.remove(at).expect("found above");
            entry.count = old.count + 1;
        }
        entries.push_front(entry);
        entries.truncate(max_len);
    }

    /// The newest `count` entries.
    pub fn newest(&self, count: usize) -> Vec<LogEntry> {
        let entries = self.entries.lock().expect("ACL log lock");
        entries.iter().take(count).cloned().collect()
    }

    pub fn reset(&self) {
        self.entries.lock().expect("ACL log lock").clear();
    }
}

/// Adds a refusal to the ACL LOG (kept to `acllog-max-len` entries), with the client as it is.
pub fn log_denial(
    server: &crate::server_state::Server,
    conn: &crate::session::ConnState,
    context: LogContext,
    (reason, object): (&'static str, Bytes),
    username: Bytes,
) {
    let max_len = server
        .config
        .read()
        .expect("config lock")
        .get_i64("acllog-max-len")
        .max(0) as usize;
    let entry = LogEntry {
        count: 1,
        reason,
        context,
        object,
        username,
        at: std::time::Instant::now(),
        client: conn.handle.snapshot(),
    };
    server.acl.log.add(entry, max_len);
}

/// The context of a refusal at the top level: `multi` while a transaction is being queued.
pub fn toplevel_context(conn: &crate::session::ConnState) -> LogContext {
    if conn.tx.is_some() {
        LogContext::Multi
    } else {
        LogContext::Toplevel
    }
}

impl Verdict {
    /// ACL LOG's reason and object for a refusal of `args`.
    pub fn log_fields(self, entry: usize, args: &[Bytes]) -> (&'static str, Bytes) {
        match self {
            Verdict::DeniedKey(at) => ("key", args[at].clone()),
            Verdict::DeniedChannel(at) => ("channel", args[at].clone()),
            _ => ("command", Bytes::from(fullname(entry).to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_hash_is_sha256_hex() {
        assert_eq!(
            hash_password(b"p"),
            "148de9c5a7a44d19e56cd9ae1a554bf67847afb0c58f6e12fa29ac7ddfca9940"
        );
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
    }
}
