//! The command table: one descriptor per command, as data. Dispatch, COMMAND INFO/DOCS/GETKEYS,
//! key routing, the log, eviction and recovery read it; nothing below the command families
//! matches a command's name to decide what to do.
//!
//! The families in `crate::commands` declare their rows (`commands!`) and install the whole
//! table once at start-up ([`install`]); this module does not know them, so the layers below the
//! commands (dispatch, persistence, eviction, the server) depend on this table and never on the
//! families themselves.

use std::collections::HashMap;
use std::sync::OnceLock;
use std::time::Duration;

use bytes::Bytes;

use crate::keyctx::KeyCtx;
use crate::protocol::Reply;
use crate::session::{ConnState, Session};

/// A command on its key's shard: runs on the owning worker (or under that shard's lock).
pub type KeyedFn = fn(&mut KeyCtx, &[Bytes]) -> Reply;
/// A command about the connection or the whole server; runs on the connection's worker.
pub type SessionFn = fn(&mut Session, &[Bytes]) -> Reply;
/// One try of a blocking command (BLPOP and friends).
pub type BlockingFn = fn(&mut KeyCtx, &[Bytes]) -> Attempt;
/// Gets shard 0 (locked) when run for a client, None when replayed from the log (then it
/// changes metadata only: data moves are in the shards' own logs).
pub type MetaFn = fn(
    &crate::server_state::Server,
    Option<&mut warpengine_storage::Shard>,
    &[Bytes],
) -> (Reply, bool);
/// Lists the keys a fan-out command reads (see [`Run::Fanout`]).
pub type FanoutFn =
    fn(&crate::server_state::Server, &ConnState, &[Bytes]) -> Result<Vec<Bytes>, Reply>;
/// Finds the other database a command writes (MOVE's target, COPY ... DB).
pub type OtherDbFn = fn(&[Bytes]) -> Option<usize>;
/// Rewrites a command, after it ran, into the deterministic command the log keeps (see
/// [`LogForm::Rewritten`]); None: nothing to log.
pub type RewriteFn = fn(&mut KeyCtx, &[Bytes]) -> Option<Vec<Bytes>>;

/// Whether a write's reply says it changed nothing (see [`CommandSpec::unchanged_when`]).
pub type UnchangedFn = fn(&[Bytes], &Reply) -> bool;

/// [`UnchangedFn`]: an integer reply of 0 (DEL of missing keys, SETNX of a present one, SREM of
/// absent members, EXPIRE of a missing key ...).
pub fn zero_changes(_args: &[Bytes], reply: &Reply) -> bool {
    matches!(reply, Reply::Int(0))
}

/// [`UnchangedFn`]: nothing popped or taken: a null or an empty array (LPOP, SPOP, ZPOPMIN,
/// LMOVE of a missing key).
pub fn nothing_returned(_args: &[Bytes], reply: &Reply) -> bool {
    match reply {
        Reply::Nil | Reply::NilArray => true,
        Reply::Array(items) | Reply::Set(items) => items.is_empty(),
        Reply::Pairs(pairs) => pairs.is_empty(),
        _ => false,
    }
}

/// Lists, after a command ran, the deterministic commands that redo its effect (see
/// [`LogForm::Effects`]); empty: nothing to log.
pub type EffectsFn = fn(&mut KeyCtx, &[Bytes], &Reply) -> Vec<Vec<Bytes>>;

/// The outcome of one try of a blocking command.
pub enum Attempt {
    Done(Reply),
    /// Nothing to serve yet: block, for at most this long (None: for ever).
    Block(Option<Duration>),
}

/// How a command runs.
#[derive(Clone, Copy)]
pub enum Run {
    Keyed(KeyedFn),
    Session(SessionFn),
    /// A keyed command that may have to wait for data (BLPOP and friends).
    Blocking(BlockingFn),
    /// A container of WarpEngine's own (QUANTUM, TEMPORAL, ...) whose subcommands are rows of
    /// their own, named `container|sub`: each is dispatched, logged and counted as a command.
    Container,
    /// A change to server-wide metadata (QUANTUM links and rules, WORMHOLE pins): runs under
    /// shard 0's lock and, when it changed something (the flag it returns), is logged in shard
    /// 0's log, so that replay applies such changes in the order they happened. (A pin logs
    /// itself, with the data it moved, as one group.)
    Meta(MetaFn),
    /// A read of several keys named by the command (QUANTUM GET): the function lists them and
    /// the dispatcher reads each from its shard with the `each` command (a keyed command of one
    /// key), one batch per shard, into one flat array.
    Fanout {
        list: FanoutFn,
        each: &'static str,
    },
    /// WAITAOF: waits, off the shards, for the log's fdatasync.
    WaitAof,
    /// WAIT: waits, off the shards, for replicas to acknowledge the stream.
    WaitReplicas,
    /// SHUTDOWN: may wait, off the shards, for lagging replicas (`crate::shutdown`).
    Shutdown,
    /// MULTI, EXEC, DISCARD, WATCH, UNWATCH: a step of a transaction (`dispatch::transaction`).
    Transaction(TxStep),
    /// EVAL, EVALSHA, FCALL and their read-only forms: a script run atomically
    /// (`dispatch::script`).
    Script(ScriptRun),
}

/// Which script command runs (see `dispatch::script`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScriptRun {
    /// EVAL (`read_only`: EVAL_RO): the body is the first argument.
    Eval { read_only: bool },
    /// EVALSHA (EVALSHA_RO): a script of the cache, by SHA-1.
    EvalSha { read_only: bool },
    /// FCALL (FCALL_RO): a function of the loaded libraries, by name.
    Fcall { read_only: bool },
}

/// The positions of a request's secret arguments (see `CommandSpec::redacts`).
pub type SecretsFn = fn(&[Bytes]) -> Vec<usize>;

/// What a transaction command does (see `dispatch::transaction`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TxStep {
    Multi,
    Exec,
    Discard,
    Watch,
    Unwatch,
}

/// Where a command's keys are: Redis's legacy (first, last, step) triple, or a function for
/// commands whose key positions depend on their arguments.
#[derive(Clone, Copy)]
pub enum Keys {
    None,
    Range(i32, i32, i32),
    Custom {
        /// What COMMAND INFO reports (Redis gives containers like OBJECT 0, 0, 0).
        legacy: (i32, i32, i32),
        find: fn(&[Bytes]) -> Vec<usize>,
    },
}

/// What a write puts in the log (see `persist::log`). Most commands are logged as sent:
/// replayed on the same state they give the same result; the others are rewritten into their
/// effect.
#[derive(Clone, Copy)]
pub enum LogForm {
    /// Not a write: nothing is logged.
    NotLogged,
    /// The command as it was sent.
    Argv,
    /// As sent, then the key's resulting absolute expiry (relative expiries: SET EX, EXPIRE ...).
    ArgvWithExpiry,
    /// SPOP: the SREM of the members it popped.
    Spop,
    /// BLPOP/BRPOP served: this pop (`LPOP`/`RPOP`) of the key it popped from.
    ListPop(&'static str),
    /// BLMOVE/BRPOPLPUSH served: this non-blocking move with the same arguments, less timeout.
    Move(&'static str),
    /// The family's function rewrites it (TEMPORAL INCR spells out its implicit settings).
    Rewritten(RewriteFn),
    /// The family's function lists the commands that redo what it did, from its reply and
    /// the resulting state (XREADGROUP: an XCLAIM per delivered entry and XGROUP SETID).
    Effects(EffectsFn),
}

/// Which of its keys a command whose keys span shards may have written: the log records their
/// resulting state.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Writes {
    /// Every key it names.
    All,
    /// Only its first key (the destination of a STORE command, of BITOP).
    First,
    /// Only its second key (COPY's target).
    Second,
}

/// Redis's command flags as bits. The order of [`Flags::NAMES`] is the order in which Redis
/// lists them in COMMAND INFO.
#[derive(Clone, Copy, PartialEq, Eq, Default)]
pub struct Flags(u32);

impl Flags {
    pub const WRITE: Flags = Flags(1 << 0);
    pub const READONLY: Flags = Flags(1 << 1);
    pub const DENYOOM: Flags = Flags(1 << 2);
    pub const ADMIN: Flags = Flags(1 << 3);
    pub const PUBSUB: Flags = Flags(1 << 4);
    pub const NOSCRIPT: Flags = Flags(1 << 5);
    pub const BLOCKING: Flags = Flags(1 << 6);
    pub const LOADING: Flags = Flags(1 << 7);
    pub const STALE: Flags = Flags(1 << 8);
    pub const SKIP_MONITOR: Flags = Flags(1 << 9);
    pub const SKIP_SLOWLOG: Flags = Flags(1 << 10);
    pub const ASKING: Flags = Flags(1 << 11);
    pub const FAST: Flags = Flags(1 << 12);
    pub const NO_AUTH: Flags = Flags(1 << 13);
    pub const MAY_REPLICATE: Flags = Flags(1 << 14);
    pub const NO_MANDATORY_KEYS: Flags = Flags(1 << 15);
    pub const NO_ASYNC_LOADING: Flags = Flags(1 << 16);
    pub const NO_MULTI: Flags = Flags(1 << 17);
    pub const MOVABLEKEYS: Flags = Flags(1 << 18);
    pub const ALLOW_BUSY: Flags = Flags(1 << 19);

    /// Every flag with its name, in COMMAND INFO's order.
    pub const NAMES: [(&'static str, Flags); 20] = [
        ("write", Flags::WRITE),
        ("readonly", Flags::READONLY),
        ("denyoom", Flags::DENYOOM),
        ("admin", Flags::ADMIN),
        ("pubsub", Flags::PUBSUB),
        ("noscript", Flags::NOSCRIPT),
        ("blocking", Flags::BLOCKING),
        ("loading", Flags::LOADING),
        ("stale", Flags::STALE),
        ("skip_monitor", Flags::SKIP_MONITOR),
        ("skip_slowlog", Flags::SKIP_SLOWLOG),
        ("asking", Flags::ASKING),
        ("fast", Flags::FAST),
        ("no_auth", Flags::NO_AUTH),
        ("may_replicate", Flags::MAY_REPLICATE),
        ("no_mandatory_keys", Flags::NO_MANDATORY_KEYS),
        ("no_async_loading", Flags::NO_ASYNC_LOADING),
        ("no_multi", Flags::NO_MULTI),
        ("movablekeys", Flags::MOVABLEKEYS),
        ("allow_busy", Flags::ALLOW_BUSY),
    ];

    /// Flags from Redis's space-separated names (`"write denyoom fast"`), as the families write
    /// their rows. Evaluated when the table is compiled: an unknown name fails the build.
    pub const fn parse(words: &str) -> Flags {
        let b = words.as_bytes();
        let mut bits = 0;
        let mut start = 0;
        while start < b.len() {
            let mut end = start;
            while end < b.len() && b[end] != b' ' {
                end += 1;
            }
            if end > start {
                let mut i = 0;
                let mut found = false;
                while i < Flags::NAMES.len() {
                    let name = Flags::NAMES[i].0.as_bytes();
                    if name.len() == end - start {
                        let mut j = 0;
                        while j < name.len() && name[j] == b[start + j] {
                            j += 1;
                        }
                        if j == name.len() {
                            bits |= Flags::NAMES[i].1 .0;
                            found = true;
                        }
                    }
                    i += 1;
                }
                assert!(found, "unknown command flag");
            }
            start = end + 1;
        }
        Flags(bits)
    }

    /// These flags and `other`'s.
    pub const fn with(self, other: Flags) -> Flags {
        Flags(self.0 | other.0)
    }

    pub const fn contains(self, other: Flags) -> bool {
        self.0 & other.0 == other.0
    }

    /// These flags without `other`'s.
    pub const fn without(self, other: Flags) -> Flags {
        Flags(self.0 & !other.0)
    }

    /// The names of the flags set, in COMMAND INFO's order. Redis 7.0's COMMAND INFO does not
    /// show `may_replicate` (PUBLISH and EVAL carry it; CLIENT PAUSE WRITE holds them).
    pub fn names(self) -> impl Iterator<Item = &'static str> {
        Flags::NAMES
            .into_iter()
            .filter(move |(_, f)| self.contains(*f) && *f != Flags::MAY_REPLICATE)
            .map(|(name, _)| name)
    }
}

/// One command: everything the layers below the families need to know about it.
#[derive(Clone, Copy)]
pub struct CommandSpec {
    pub name: &'static str,
    pub arity: i32,
    pub flags: Flags,
    pub keys: Keys,
    pub group: &'static str,
    pub summary: &'static str,
    pub since: &'static str,
    pub run: Run,
    /// How the command is logged when it writes.
    pub log: LogForm,
    /// Which keys it writes when they span shards.
    pub writes: Writes,
    /// A move between two keys (LMOVE, RPOPLPUSH, SMOVE and the blocking moves): when its keys
    /// span shards, the log holds each shard's own step (the pop, the push) rather than both
    /// keys' whole state, and the replication stream sends the command itself, as Redis.
    pub effects_when_spanning: Option<EffectsFn>,
    /// MOVE and COPY ... DB also write a key in another database: the function finds which
    /// (None: the command's own). A background snapshot preserves such keys in every database.
    pub other_db: Option<OtherDbFn>,
    /// SET's DURABILITY option: the class a request asks for (see `crate::durability`).
    pub takes_durability: bool,
    /// Runs at once inside MULTI instead of being queued (QUIT, RESET; the transaction
    /// commands themselves always do).
    pub runs_in_multi: bool,
    /// A blocking command that may not block (inside a transaction) and finds nothing answers
    /// a null bulk string (BLMOVE, BRPOPLPUSH) instead of a null array.
    pub nil_bulk_if_cannot_block: bool,
    /// Redis builds its reply with a length written last (addReplyDeferredLen: KEYS, SMEMBERS,
    /// the ZRANGE and XRANGE families), which puts the whole reply in its reply list: the
    /// output limits count all of it, not what overflows Redis's 16 KB buffer.
    pub reply_length_deferred: bool,
    /// May run while a RESP2 connection is in Pub/Sub's subscribed mode (the (un)subscribe
    /// commands, PING, QUIT, RESET).
    pub allowed_when_subscribed: bool,
    /// CLIENT CACHING's flag survives it (Redis: the CLIENT command leaves it for the next).
    pub keeps_tracking_caching: bool,
    /// The positions of secret arguments (AUTH's password), which MONITOR shows redacted.
    pub redacts: Option<SecretsFn>,
    /// For a container that parses its own subcommands (CLIENT, CONFIG): whether MONITOR hides
    /// this request (an `admin` subcommand), as the `admin` flag hides a whole command.
    pub monitor_hides: Option<fn(&[Bytes]) -> bool>,
    /// A blocking command whose arguments name a moving target (XREAD's `$`, the stream's
    /// last ID when it blocks): the function pins them, under the keys' locks, to what it
    /// waits for, and the retries use its arguments.
    pub pins_block_args: Option<RewriteFn>,
    /// A write every waiter of its key may want (XADD: each reader of the stream, not only the
    /// first, as one pop serves one popper; XGROUP DESTROY: each consumer of the group): it
    /// wakes all of them, not the longest waiting.
    pub wakes_all_waiters: bool,
    /// Cluster mode: runs on this node whenever its keys' slot is open here (migrating or
    /// importing), never redirected: MIGRATE, as Redis's `getNodeByQuery` lets it, so that
    /// `redis-cli --cluster fix` moves keys off a node it made importing.
    pub runs_in_open_slot: bool,
    /// A read of one string key that a worker may answer from its copy of a replicated hot
    /// key (GET: see `hot_copies`).
    pub reads_hot_copy: bool,
    /// A write whose reply can say it changed nothing (DEL of missing keys answers 0, SET NX
    /// of a present key nil): such a run is not logged (so not propagated), not counted as a
    /// change, and not seen by WATCH or client tracking, as Redis propagates and counts only
    /// what changed the data (its `dirty` counter).
    pub unchanged_when: Option<UnchangedFn>,
    /// A connection command that takes no lock (SELECT): inside EXEC it runs within the locked
    /// step of the keyed commands around it instead of splitting it in two.
    pub runs_in_exec_step: bool,
    /// Its reply is a Pub/Sub (un)subscribe confirmation, which CLIENT REPLY OFF does not
    /// silence (Redis sends it as it sends messages, in RESP2 and RESP3).
    pub confirms_subscription: bool,
}

impl CommandSpec {
    /// Whether the command came with a Redis release after 7.0 (its `since`), so that Redis
    /// 7.0, which WarpEngine answers as, does not know it.
    pub fn came_after_redis_7_0(&self) -> bool {
        let mut parts = self.since.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
        let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
        (major, minor) > (7, 0)
    }

    /// A subcommand's container (`client` for `client|setinfo`); None for a command.
    pub fn container(&self) -> Option<&'static str> {
        self.name.split_once('|').map(|(container, _)| container)
    }

    /// A row with the defaults: logged as sent when it writes, every key written.
    #[allow(clippy::too_many_arguments)]
    pub const fn new(
        name: &'static str,
        arity: i32,
        flags: &'static str,
        keys: Keys,
        group: &'static str,
        since: &'static str,
        run: Run,
        summary: &'static str,
    ) -> CommandSpec {
        let flags = Flags::parse(flags);
        CommandSpec {
            name,
            arity,
            flags,
            keys,
            group,
            summary,
            since,
            run,
            log: if flags.contains(Flags::WRITE) {
                LogForm::Argv
            } else {
                LogForm::NotLogged
            },
            writes: Writes::All,
            effects_when_spanning: None,
            other_db: None,
            takes_durability: false,
            runs_in_multi: matches!(run, Run::Transaction(_)),
            nil_bulk_if_cannot_block: false,
            reply_length_deferred: false,
            allowed_when_subscribed: false,
            keeps_tracking_caching: false,
            redacts: None,
            monitor_hides: None,
            pins_block_args: None,
            wakes_all_waiters: false,
            runs_in_open_slot: false,
            reads_hot_copy: false,
            unchanged_when: None,
            runs_in_exec_step: false,
            confirms_subscription: false,
        }
    }

    pub const fn confirms_subscription(mut self) -> CommandSpec {
        self.confirms_subscription = true;
        self
    }

    pub const fn runs_in_exec_step(mut self) -> CommandSpec {
        self.runs_in_exec_step = true;
        self
    }

    pub const fn unchanged_when(mut self, unchanged: UnchangedFn) -> CommandSpec {
        self.unchanged_when = Some(unchanged);
        self
    }

    /// Whether this write's `reply` (not an error) says it changed nothing. A status (SET's
    /// +OK) never does: checked first, inline, so the common write makes no call.
    #[inline]
    pub fn changed_nothing(&self, args: &[Bytes], reply: &Reply) -> bool {
        !matches!(reply, Reply::Status(_)) && self.unchanged_when.is_some_and(|f| f(args, reply))
    }

    pub const fn reads_hot_copy(mut self) -> CommandSpec {
        self.reads_hot_copy = true;
        self
    }

    pub const fn monitor_hides(mut self, hides: fn(&[Bytes]) -> bool) -> CommandSpec {
        self.monitor_hides = Some(hides);
        self
    }

    pub const fn wakes_all_waiters(mut self) -> CommandSpec {
        self.wakes_all_waiters = true;
        self
    }

    pub const fn runs_in_open_slot(mut self) -> CommandSpec {
        self.runs_in_open_slot = true;
        self
    }

    pub const fn pins_block_args(mut self, pin: RewriteFn) -> CommandSpec {
        self.pins_block_args = Some(pin);
        self
    }

    pub const fn redacts(mut self, secret: SecretsFn) -> CommandSpec {
        self.redacts = Some(secret);
        self
    }

    pub const fn keeps_tracking_caching(mut self) -> CommandSpec {
        self.keeps_tracking_caching = true;
        self
    }

    pub const fn allowed_when_subscribed(mut self) -> CommandSpec {
        self.allowed_when_subscribed = true;
        self
    }

    pub const fn nil_bulk_if_cannot_block(mut self) -> CommandSpec {
        self.nil_bulk_if_cannot_block = true;
        self
    }

    pub const fn reply_length_deferred(mut self) -> CommandSpec {
        self.reply_length_deferred = true;
        self
    }

    pub const fn runs_in_multi(mut self) -> CommandSpec {
        self.runs_in_multi = true;
        self
    }

    pub const fn log(mut self, form: LogForm) -> CommandSpec {
        self.log = form;
        self
    }

    pub const fn writes(mut self, writes: Writes) -> CommandSpec {
        self.writes = writes;
        self
    }

    pub const fn effects_when_spanning(mut self, effects: EffectsFn) -> CommandSpec {
        self.effects_when_spanning = Some(effects);
        self
    }

    pub const fn other_db(mut self, find: OtherDbFn) -> CommandSpec {
        self.other_db = Some(find);
        self
    }

    pub const fn takes_durability(mut self, takes: bool) -> CommandSpec {
        self.takes_durability = takes;
        self
    }

    pub const fn is_write(&self) -> bool {
        self.flags.contains(Flags::WRITE)
    }

    pub const fn is_logged(&self) -> bool {
        !matches!(self.log, LogForm::NotLogged)
    }

    pub fn legacy_keys(&self) -> (i32, i32, i32) {
        match self.keys {
            Keys::None => (0, 0, 0),
            Keys::Range(f, l, s) => (f, l, s),
            Keys::Custom { legacy, .. } => legacy,
        }
    }

    /// Positions of the keys in `args` (args[0] is the command name).
    pub fn key_positions(&self, args: &[Bytes]) -> Vec<usize> {
        self.key_positions_iter(args).collect()
    }

    /// The same positions without collecting them (a range of positions allocates nothing),
    /// for per-request checks such as a restricted ACL user's.
    pub fn key_positions_iter(&self, args: &[Bytes]) -> KeyPositions {
        match self.keys {
            Keys::None => KeyPositions::Listed(Vec::new().into_iter()),
            Keys::Range(first, last, step) => {
                let argc = args.len() as i32;
                let last = if last < 0 {
                    argc + last
                } else {
                    last.min(argc - 1)
                };
                KeyPositions::Range {
                    next: first,
                    last: last.min(argc - 1),
                    step: step.max(1),
                }
            }
            Keys::Custom { find, .. } => KeyPositions::Listed(find(args).into_iter()),
        }
    }

    /// ACL categories derived from flags and group, as COMMAND INFO lists them.
    pub fn acl_categories(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.flags.contains(Flags::WRITE) {
            out.push("@write".to_string());
        }
        if self.flags.contains(Flags::READONLY) {
            out.push("@read".to_string());
        }
        match self.group {
            "string" => out.push("@string".into()),
            "generic" => out.push("@keyspace".into()),
            "connection" => out.push("@connection".into()),
            "list" => out.push("@list".into()),
            "hash" => out.push("@hash".into()),
            "set" => out.push("@set".into()),
            "sorted-set" => out.push("@sortedset".into()),
            "bitmap" => out.push("@bitmap".into()),
            _ => {}
        }
        if self.flags.contains(Flags::ADMIN) {
            out.push("@admin".into());
            out.push("@dangerous".into());
        }
        out.push(
            if self.flags.contains(Flags::FAST) {
                "@fast"
            } else {
                "@slow"
            }
            .into(),
        );
        out
    }
}

static INSTALLED: OnceLock<Vec<CommandSpec>> = OnceLock::new();

/// A request's key positions, in order (`CommandSpec::key_positions_iter`).
pub enum KeyPositions {
    Range { next: i32, last: i32, step: i32 },
    Listed(std::vec::IntoIter<usize>),
}

impl Iterator for KeyPositions {
    type Item = usize;

    fn next(&mut self) -> Option<usize> {
        match self {
            KeyPositions::Range { next, last, step } => {
                if *next > *last {
                    return None;
                }
                let at = *next as usize;
                *next += *step;
                Some(at)
            }
            KeyPositions::Listed(list) => list.next(),
        }
    }
}

/// Installs the table (the families' rows, `crate::commands::install`). Once: later calls
/// keep the first table.
pub fn install(rows: impl FnOnce() -> Vec<CommandSpec>) {
    INSTALLED.get_or_init(rows);
}

/// What Redis records of the subcommand a request names, for containers that parse their own
/// subcommands (CLIENT, CONFIG, OBJECT ...): None when the command has no recorded
/// subcommands, else whether the subcommand exists, its arity and its flags. Scripts check
/// their calls against it as Redis checks them against its subcommand table.
pub type SubcommandFacts = fn(&[Bytes]) -> Option<Option<(i32, Flags)>>;

static SUBCOMMAND_FACTS: OnceLock<SubcommandFacts> = OnceLock::new();

/// Installs the families' [`SubcommandFacts`] (once, at start-up, with the table).
pub fn install_subcommand_facts(facts: SubcommandFacts) {
    SUBCOMMAND_FACTS.get_or_init(|| facts);
}

/// See [`SubcommandFacts`].
pub fn subcommand_facts(args: &[Bytes]) -> Option<Option<(i32, Flags)>> {
    SUBCOMMAND_FACTS.get().and_then(|f| f(args))
}

/// [`subcommand_facts`] of a request whose name is row `index` of the table: None at once for
/// the commands Redis does not split into subcommands (most of them; a script asks this for
/// each command it calls), from a list made on first use.
pub fn subcommand_facts_at(index: usize, args: &[Bytes]) -> Option<Option<(i32, Flags)>> {
    static SPLIT: OnceLock<Vec<bool>> = OnceLock::new();
    let split = SPLIT.get_or_init(|| {
        TABLE
            .iter()
            .map(|spec| {
                let probe = [
                    Bytes::from_static(spec.name.as_bytes()),
                    Bytes::from_static(b"help"),
                ];
                subcommand_facts(&probe).is_some()
            })
            .collect()
    });
    if !split.get(index).copied().unwrap_or(true) {
        return None;
    }
    subcommand_facts(args)
}

/// The installed table, indexed by the numbers dispatch and the statistics use.
pub struct Table;

/// Every command: `TABLE[index]`, `TABLE.iter()`.
pub static TABLE: Table = Table;

impl std::ops::Deref for Table {
    type Target = [CommandSpec];

    fn deref(&self) -> &[CommandSpec] {
        INSTALLED
            .get()
            .expect("the command table is installed at start-up (commands::install)")
    }
}

/// The table row a request runs as: its command, or for a `Run::Container` the subcommand row
/// its second argument names. Errors are Redis's for unknown subcommands and wrong arity.
pub fn resolve(index: usize, args: &[Bytes]) -> Result<usize, Reply> {
    let spec = &TABLE[index];
    if !matches!(spec.run, Run::Container) {
        return Ok(index);
    }
    let container = spec.name;
    let Some(sub) = args.get(1) else {
        return Err(wrong_arity(container));
    };
    let mut name = Vec::with_capacity(container.len() + 1 + sub.len());
    name.extend_from_slice(container.as_bytes());
    name.push(b'|');
    name.extend_from_slice(sub);
    let found = if sub.contains(&b'|') {
        None
    } else {
        lookup_row(&name)
    };
    let Some(found) = found else {
        return Err(unknown_subcommand(sub, &container.to_ascii_uppercase()));
    };
    let row = &TABLE[found];
    let argc = args.len() as i32;
    if (row.arity >= 0 && argc != row.arity) || argc < -row.arity {
        return Err(wrong_arity(row.name));
    }
    Ok(found)
}

/// Whether `argc` arguments (the name included) fit Redis's arity: exactly `arity`, or at
/// least `-arity` when negative.
pub fn arity_ok(arity: i32, argc: usize) -> bool {
    let argc = argc as i32;
    if arity >= 0 {
        argc == arity
    } else {
        argc >= -arity
    }
}

pub fn wrong_arity(name: &str) -> Reply {
    Reply::err(format!(
        "ERR wrong number of arguments for '{name}' command"
    ))
}

/// The reply to an unknown subcommand of a container command (CLIENT, CONFIG, OBJECT ...).
pub fn unknown_subcommand(sub: &[u8], container: &str) -> Reply {
    let mut msg = b"ERR unknown subcommand '".to_vec();
    msg.extend_from_slice(crate::protocol::reply::c_string(sub, 128));
    msg.extend_from_slice(format!("'. Try {container} HELP.").as_bytes());
    Reply::error_bytes(msg)
}

/// The subcommand rows of a container, in table order.
pub fn subcommands(container: &str) -> impl Iterator<Item = &'static CommandSpec> + '_ {
    TABLE.iter().filter(move |c| {
        c.name
            .split_once('|')
            .is_some_and(|(parent, _)| parent == container)
    })
}

/// Whether a row is a top-level command (COMMAND, COMMAND COUNT and COMMAND LIST show only those).
pub fn is_top_level(spec: &CommandSpec) -> bool {
    !spec.name.contains('|')
}

/// Finds a top-level command by name, case-insensitively, without allocating.
pub fn lookup(name: &[u8]) -> Option<usize> {
    lookup_row(name).filter(|&i| is_top_level(&TABLE[i]))
}

type Index = HashMap<&'static [u8], usize, ahash::RandomState>;

/// Names to rows: the table's names, as `rename-command` left them (built at the first
/// lookup, so renames must come before it: see `rename_commands`).
static INDEX: OnceLock<Index> = OnceLock::new();

/// Names longer than the table's longest (renamed commands, often 40 hex digits): kept apart so
/// that the usual lookup stays a 32-byte lowercase copy.
static LONG_NAMES: OnceLock<Vec<(Box<[u8]>, usize)>> = OnceLock::new();

fn table_index() -> Index {
    TABLE
        .iter()
        .enumerate()
        .map(|(i, c)| (c.name.as_bytes(), i))
        .collect()
}

/// Applies `rename-command old new` lines in order, as redis-server does at start: the command
/// is found under `new` only (`new` empty: not at all), by clients, scripts and the log alike
/// (the log records the name a client used, so renames must stay the same across restarts, as
/// for Redis's AOF). Must run before any lookup; errors carry Redis's texts.
pub fn rename_commands(renames: &[(String, String)]) -> Result<(), String> {
    if renames.is_empty() {
        return Ok(());
    }
    let mut index = table_index();
    let mut long = Vec::new();
    for (old, new) in renames {
        let old = old.to_ascii_lowercase();
        let found = index.remove(old.as_bytes()).or_else(|| {
            let at = long
                .iter()
                .position(|(n, _): &(Box<[u8]>, usize)| **n == *old.as_bytes())?;
            Some(long.remove(at).1)
        });
        let Some(row) = found.filter(|&i| is_top_level(&TABLE[i])) else {
            return Err("No such command in rename-command".into());
        };
        if new.is_empty() {
            continue;
        }
        let new = new.to_ascii_lowercase();
        let taken =
            index.contains_key(new.as_bytes()) || long.iter().any(|(n, _)| **n == *new.as_bytes());
        if taken {
            return Err("Target command name already exists".into());
        }
        if new.len() > 32 {
            long.push((new.into_bytes().into_boxed_slice(), row));
        } else {
            // Leaked once at start: the index holds static names.
            index.insert(Box::leak(new.into_bytes().into_boxed_slice()), row);
        }
    }
    let fresh = INDEX.set(index).is_ok() && LONG_NAMES.set(long).is_ok();
    if fresh {
        Ok(())
    } else {
        Err("rename-command applied after the command table was in use".into())
    }
}

/// Finds any row, subcommand rows (`container|sub`) included.
pub fn lookup_row(name: &[u8]) -> Option<usize> {
    let index = INDEX.get_or_init(table_index);
    if name.len() > 32 {
        return lookup_long(name);
    }
    let mut buf = [0u8; 32];
    for (d, s) in buf.iter_mut().zip(name) {
        *d = s.to_ascii_lowercase();
    }
    index.get(&buf[..name.len()]).copied()
}

/// Finds a top-level command by the name the table gives it, whatever `rename-command` did:
/// for the server's own commands (a fan-out's GETs, the effects a write logs), which must not
/// depend on what clients call them.
pub fn lookup_original(name: &[u8]) -> Option<usize> {
    if LONG_NAMES.get().is_none() {
        // No renames were applied: the index has the table's names.
        return lookup(name);
    }
    static ORIGINAL: OnceLock<Index> = OnceLock::new();
    let lower = name.to_ascii_lowercase();
    ORIGINAL
        .get_or_init(table_index)
        .get(&lower[..])
        .copied()
        .filter(|&i| is_top_level(&TABLE[i]))
}

#[cold]
fn lookup_long(name: &[u8]) -> Option<usize> {
    LONG_NAMES
        .get()?
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|&(_, row)| row)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_parse_from_names_and_list_in_redis_order() {
        let f = Flags::parse("fast write  denyoom");
        assert!(f.contains(Flags::WRITE) && f.contains(Flags::DENYOOM));
        assert!(!f.contains(Flags::READONLY));
        assert_eq!(f.names().collect::<Vec<_>>(), ["write", "denyoom", "fast"]);
        assert_eq!(Flags::parse("").names().count(), 0);
    }

    #[test]
    #[should_panic(expected = "unknown command flag")]
    fn an_unknown_flag_is_refused() {
        Flags::parse("write wirte");
    }
}
