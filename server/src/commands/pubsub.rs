//! Pub/Sub: SUBSCRIBE, PSUBSCRIBE, SSUBSCRIBE and their UNSUBSCRIBEs, PUBLISH, SPUBLISH and the
//! PUBSUB introspection container. The registry and the delivery of messages are
//! `crate::pubsub`'s; these functions parse arguments and answer as Redis 7.0 does. A connection
//! with subscriptions is in subscribed mode: under RESP2 only the commands whose rows say
//! `allowed_when_subscribed` run (the dispatcher refuses the rest), and PING answers in the
//! subscribed form.

use bytes::Bytes;

use super::util::help;
use super::{commands, k, session, Run, NO_KEYS};
use crate::protocol::Reply;
use crate::pubsub::Kind;
use crate::session::Session;

commands! {
    pub static COMMANDS;
    "subscribe", -2, "pubsub noscript loading stale", NO_KEYS, "pubsub", "2.0.0", session(subscribe), "Listens for messages published to channels.", allowed_when_subscribed(), confirms_subscription();
    "unsubscribe", -1, "pubsub noscript loading stale", NO_KEYS, "pubsub", "2.0.0", session(unsubscribe), "Stops listening to messages posted to channels.", allowed_when_subscribed(), confirms_subscription();
    "psubscribe", -2, "pubsub noscript loading stale", NO_KEYS, "pubsub", "2.0.0", session(psubscribe), "Listens for messages published to channels that match one or more patterns.", allowed_when_subscribed(), confirms_subscription();
    "punsubscribe", -1, "pubsub noscript loading stale", NO_KEYS, "pubsub", "2.0.0", session(punsubscribe), "Stops listening to messages published to channels that match one or more patterns.", allowed_when_subscribed(), confirms_subscription();
    "ssubscribe", -2, "pubsub noscript loading stale", k(1, -1, 1), "pubsub", "7.0.0", session(ssubscribe), "Listens for messages published to shard channels.", allowed_when_subscribed(), confirms_subscription();
    "sunsubscribe", -1, "pubsub noscript loading stale", k(1, -1, 1), "pubsub", "7.0.0", session(sunsubscribe), "Stops listening to messages posted to shard channels.", allowed_when_subscribed(), confirms_subscription();
    "publish", 3, "pubsub loading stale fast may_replicate", NO_KEYS, "pubsub", "2.0.0", session(publish), "Posts a message to a channel.";
    "spublish", 3, "pubsub loading stale fast may_replicate", k(1, 1, 1), "pubsub", "7.0.0", session(spublish), "Post a message to a shard channel";
    "pubsub", -2, "", NO_KEYS, "pubsub", "2.8.0", Run::Container, "A container for Pub/Sub commands.";
    // Subcommands in the order Redis lists them (COMMAND INFO, COMMAND DOCS).
    "pubsub|shardnumsub", -2, "pubsub loading stale", NO_KEYS, "pubsub", "7.0.0", session(shardnumsub), "Returns the count of subscribers of shard channels.";
    "pubsub|help", 2, "loading stale", NO_KEYS, "pubsub", "6.2.0", session(help_), "Returns helpful text about the different subcommands.";
    "pubsub|numsub", -2, "pubsub loading stale", NO_KEYS, "pubsub", "2.8.0", session(numsub), "Returns a count of subscribers to channels.";
    "pubsub|shardchannels", -2, "pubsub loading stale", NO_KEYS, "pubsub", "7.0.0", session(shardchannels), "Returns the active shard channels.";
    "pubsub|channels", -2, "pubsub loading stale", NO_KEYS, "pubsub", "2.8.0", session(channels), "Returns the active channels.";
    "pubsub|numpat", 2, "pubsub loading stale", NO_KEYS, "pubsub", "2.8.0", session(numpat), "Returns a count of unique pattern subscriptions.";
}

fn change(s: &mut Session, args: &[Bytes], kind: Kind, on: bool) -> Reply {
    let resp3 = s.conn.resp3;
    let registry = &s.server.pubsub;
    let names = &args[1..];
    let frames = if on {
        registry.subscribe(crate::pubsub::queue_of(s.conn), resp3, kind, names)
    } else {
        registry.unsubscribe(&mut s.conn.pubsub, resp3, kind, names)
    };
    let counts = s.conn.pubsub.as_ref().map_or((0, 0, 0), |p| p.counts());
    s.conn
        .handle
        .info
        .lock()
        .expect("client info lock")
        .subscriptions = counts;
    Reply::Raw(Bytes::from(frames))
}

fn subscribe(s: &mut Session, args: &[Bytes]) -> Reply {
    change(s, args, Kind::Channel, true)
}

fn unsubscribe(s: &mut Session, args: &[Bytes]) -> Reply {
    change(s, args, Kind::Channel, false)
}

fn psubscribe(s: &mut Session, args: &[Bytes]) -> Reply {
    change(s, args, Kind::Pattern, true)
}

fn punsubscribe(s: &mut Session, args: &[Bytes]) -> Reply {
    change(s, args, Kind::Pattern, false)
}

fn ssubscribe(s: &mut Session, args: &[Bytes]) -> Reply {
    change(s, args, Kind::Shard, true)
}

fn sunsubscribe(s: &mut Session, args: &[Bytes]) -> Reply {
    change(s, args, Kind::Shard, false)
}

fn publish(s: &mut Session, args: &[Bytes]) -> Reply {
    let clients = s.server.client_memory();
    let receivers = s.server.pubsub.publish(false, &args[1], &args[2], clients);
    propagate(s, false, args);
    Reply::Int(receivers as i64)
}

fn spublish(s: &mut Session, args: &[Bytes]) -> Reply {
    let clients = s.server.client_memory();
    let receivers = s.server.pubsub.publish(true, &args[1], &args[2], clients);
    propagate(s, true, args);
    Reply::Int(receivers as i64)
}

/// A message goes to the replicas too (while the replication stream is on), whose
/// subscribers then get it, as Redis propagates PUBLISH; in cluster mode, to the other nodes
/// through the cluster bus instead.
fn propagate(s: &Session, shard: bool, args: &[Bytes]) {
    if s.server.cluster.enabled() {
        crate::cluster::links::publish(s.server, shard, &args[1], &args[2]);
    } else if s.server.wal.is_tapped() && !s.server.replication.is_replica() {
        let argv: Vec<&[u8]> = args.iter().map(|a| &a[..]).collect();
        s.server.replication.feed_command_in(s.conn.db, &argv);
    }
}

fn list_channels(s: &mut Session, args: &[Bytes], shard: bool) -> Reply {
    if args.len() > 3 {
        // Redis's pubsubCommand checks this count itself, with its generic syntax error.
        return super::util::subcommand_syntax_error(&args[1], "PUBSUB");
    }
    let pattern = args.get(2).map(|p| &p[..]);
    let found = s.server.pubsub.channels(shard, pattern);
    Reply::Array(found.into_iter().map(Reply::Bulk).collect())
}

fn channels(s: &mut Session, args: &[Bytes]) -> Reply {
    list_channels(s, args, false)
}

fn shardchannels(s: &mut Session, args: &[Bytes]) -> Reply {
    list_channels(s, args, true)
}

fn count_subscribers(s: &mut Session, args: &[Bytes], shard: bool) -> Reply {
    let mut out = Vec::with_capacity((args.len() - 2) * 2);
    for channel in &args[2..] {
        out.push(Reply::Bulk(channel.clone()));
        out.push(Reply::Int(
            s.server.pubsub.subscribers(shard, channel) as i64
        ));
    }
    Reply::Array(out)
}

fn numsub(s: &mut Session, args: &[Bytes]) -> Reply {
    count_subscribers(s, args, false)
}

fn shardnumsub(s: &mut Session, args: &[Bytes]) -> Reply {
    count_subscribers(s, args, true)
}

fn numpat(s: &mut Session, _args: &[Bytes]) -> Reply {
    Reply::Int(s.server.pubsub.patterns() as i64)
}

fn help_(_s: &mut Session, _args: &[Bytes]) -> Reply {
    help(
        "PUBSUB",
        &[
            "CHANNELS [<pattern>]",
            "    Return the currently active channels matching a <pattern> (default: '*').",
            "NUMPAT",
            "    Return number of subscriptions to patterns.",
            "NUMSUB [<channel> ...]",
            "    Return the number of subscribers for the specified channels, excluding",
            "    pattern subscriptions(default: no channels).",
            "SHARDCHANNELS [<pattern>]",
            "    Return the currently active shard level channels matching a <pattern> (default: '*').",
            "SHARDNUMSUB [<shardchannel> ...]",
            "    Return the number of subscribers for the specified shard level channel(s)",
        ],
    )
}
