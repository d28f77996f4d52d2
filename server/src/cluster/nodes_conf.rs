//! CLUSTER NODES and `nodes.conf`, which share one line format:
//!
//! `<id> <ip:port@cport[,hostname]> <flags> <primary|-> <ping-sent> <pong-recv> <config-epoch>
//! <link-state> <slot> <slot-range> ... [open slots, nodes.conf and myself only]`
//!
//! then, in the file only, `vars currentEpoch <n> lastVoteEpoch <n>`. A restarted node reads
//! its peers back from it and rejoins their cluster through the bus.

use super::bus::flag;
use super::{Owner, Peer, State};
use crate::slot::SLOTS;

/// Redis's `representClusterNodeFlags` names, in its order.
const FLAG_NAMES: [(u16, &str); 8] = [
    (flag::MYSELF, "myself"),
    (flag::MASTER, "master"),
    (flag::SLAVE, "slave"),
    (flag::PFAIL, "fail?"),
    (flag::FAIL, "fail"),
    (flag::HANDSHAKE, "handshake"),
    (flag::NOADDR, "noaddr"),
    (flag::NOFAILOVER, "nofailover"),
];

pub fn flag_names(flags: u16) -> String {
    let names: Vec<&str> = FLAG_NAMES
        .iter()
        .filter(|(bit, _)| flags & bit != 0)
        .map(|(_, name)| *name)
        .collect();
    if names.is_empty() {
        "noflags".into()
    } else {
        names.join(",")
    }
}

fn parse_flags(text: &str) -> u16 {
    text.split(',')
        .filter_map(|name| FLAG_NAMES.iter().find(|(_, n)| *n == name))
        .fold(0, |acc, (bit, _)| acc | bit)
}

fn push_range(line: &mut String, first: u16, last: u16) {
    if first == last {
        line.push_str(&format!(" {first}"));
    } else {
        line.push_str(&format!(" {first}-{last}"));
    }
}

impl State {
    /// `nodes.conf` as Redis writes it: one line per node, then the epochs.
    pub fn nodes_conf(&self) -> String {
        let mut out = self.describe(true);
        out.push_str(&format!(
            "vars currentEpoch {} lastVoteEpoch {}\n",
            self.current_epoch, self.last_vote_epoch
        ));
        out
    }

    /// One node's address field: `ip:port@cport[,hostname]`.
    fn address(&self, owner: Owner) -> String {
        let (ip, port, cport, hostname) = match owner {
            Owner::Peer(i) => {
                let p = &self.peers[i];
                (p.ip.as_str(), p.port, p.cport, p.hostname.as_str())
            }
            _ => (
                self.my_ip.as_str(),
                self.announce.port,
                self.announce.cport,
                self.announce.hostname.as_str(),
            ),
        };
        let mut out = format!("{ip}:{port}@{cport}");
        if !hostname.is_empty() {
            out.push(',');
            out.push_str(hostname);
        }
        out
    }

    /// CLUSTER NODES (and the node lines of `nodes.conf`, which add open slots too).
    pub fn describe(&self, with_open_slots: bool) -> String {
        let ranges = self.ranges();
        let mut out = String::new();
        for owner in self.owners() {
            let (primary, ping, pong, connected) = match owner {
                Owner::Peer(i) => {
                    let p = &self.peers[i];
                    (
                        p.primary.as_deref(),
                        p.ping_sent,
                        p.pong_received,
                        p.link.is_some(),
                    )
                }
                _ => (self.primary.as_deref(), 0, 0, true),
            };
            // A replica shows its primary's config epoch, as Redis does.
            let epoch = match primary.and_then(|id| self.lookup(id.as_bytes())) {
                Some(p) => self.epoch_of(p),
                None => self.epoch_of(owner),
            };
            let mut line = format!(
                "{} {} {} {} {ping} {pong} {epoch} {}",
                self.node_id(owner),
                self.address(owner),
                flag_names(self.flags_of(owner)),
                primary.unwrap_or("-"),
                if connected {
                    "connected"
                } else {
                    "disconnected"
                },
            );
            for &(first, last, o) in &ranges {
                if o == owner {
                    push_range(&mut line, first, last);
                }
            }
            if with_open_slots && owner == Owner::Myself {
                for (slot, &to) in &self.migrating {
                    line.push_str(&format!(" [{slot}->-{}]", self.node_id(to)));
                }
                for (slot, &from) in &self.importing {
                    line.push_str(&format!(" [{slot}-<-{}]", self.node_id(from)));
                }
            }
            line.push('\n');
            if owner == Owner::Myself {
                out.insert_str(0, &line);
            } else {
                out.push_str(&line);
            }
        }
        out
    }

    /// Reads back what [`State::nodes_conf`] wrote: this node and its peers (with their
    /// addresses, roles, epochs and slots; links come from the bus), open slots and the
    /// epochs. None when the text is not a nodes.conf.
    pub(super) fn parse(text: &str) -> Option<State> {
        let mut state = State::fresh();
        let mut found = false;
        // Open slots name their other node by id: resolved once every node is known.
        let mut open: Vec<(u16, bool, String)> = Vec::new();
        let mut owned: Vec<(usize, usize, String)> = Vec::new();
        let now = crate::server_state::unix_ms();
        for line in text.lines() {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields.first() == Some(&"vars") {
                for pair in fields[1..].chunks(2) {
                    let value = pair.get(1).and_then(|v| v.parse().ok()).unwrap_or(0);
                    match pair[0] {
                        "currentEpoch" => state.current_epoch = value,
                        "lastVoteEpoch" => state.last_vote_epoch = value,
                        _ => {}
                    }
                }
                continue;
            }
            if fields.len() < 8 {
                continue;
            }
            let id = fields[0].to_string();
            let flags = parse_flags(fields[2]);
            let primary = (fields[3] != "-").then(|| fields[3].to_string());
            let epoch: u64 = fields[6].parse().ok()?;
            let (addr, hostname) = fields[1].split_once(',').unwrap_or((fields[1], ""));
            let (hostport, cport) = addr.split_once('@').unwrap_or((addr, "0"));
            let (ip, port) = hostport.rsplit_once(':')?;
            let (port, cport) = (port.parse().ok()?, cport.parse().ok()?);
            if flags & flag::MYSELF != 0 {
                found = true;
                state.myself = id.clone();
                state.config_epoch = epoch;
                state.my_ip = ip.to_string();
                state.primary = primary;
            } else {
                let mut peer = Peer::new(id.clone(), ip.to_string(), port, cport, flags, now);
                peer.hostname = hostname.to_string();
                peer.primary = primary;
                // A replica line shows its primary's epoch: its own is learnt again by PONG.
                peer.config_epoch = if flags & flag::SLAVE != 0 { 0 } else { epoch };
                // Nothing is known of its health until the bus reaches it again.
                peer.flags &= !(flag::PFAIL | flag::HANDSHAKE);
                state.peers.push(peer);
            }
            for spec in &fields[8..] {
                if let Some(o) = spec.strip_prefix('[').and_then(|s| s.strip_suffix(']')) {
                    if let Some((slot, to)) = o.split_once("->-") {
                        open.push((slot.parse().ok()?, true, to.to_string()));
                    } else if let Some((slot, from)) = o.split_once("-<-") {
                        open.push((slot.parse().ok()?, false, from.to_string()));
                    }
                    continue;
                }
                let (first, last) = match spec.split_once('-') {
                    Some((a, b)) => (a.parse::<usize>().ok()?, b.parse::<usize>().ok()?),
                    None => (spec.parse().ok()?, spec.parse().ok()?),
                };
                if first > last || last >= SLOTS {
                    return None;
                }
                owned.push((first, last, id.clone()));
            }
        }
        for (first, last, id) in owned {
            let owner = state.lookup(id.as_bytes())?;
            state.slots[first..=last].fill(owner);
        }
        for (slot, migrating, id) in open {
            let Some(node) = state.lookup(id.as_bytes()) else {
                continue;
            };
            if migrating {
                state.migrating.insert(slot, node);
            } else {
                state.importing.insert(slot, node);
            }
        }
        found.then_some(state)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nodes_conf_round_trips_with_peers() {
        let mut s = State::fresh();
        s.my_ip = "127.0.0.1".into();
        s.announce.port = 7000;
        s.announce.cport = 17000;
        s.slots[..100].fill(Owner::Myself);
        s.slots[200..].fill(Owner::Myself);
        s.current_epoch = 3;
        s.config_epoch = 2;
        let mut b = Peer::new(
            "b".repeat(40),
            "127.0.0.1".into(),
            7001,
            17001,
            flag::MASTER,
            0,
        );
        b.config_epoch = 3;
        b.hostname = "node-b".into();
        s.peers.push(b);
        let mut c = Peer::new(
            "c".repeat(40),
            "127.0.0.1".into(),
            7002,
            17002,
            flag::SLAVE | flag::FAIL,
            0,
        );
        c.primary = Some(s.myself.clone());
        s.peers.push(c);
        s.slots[100..200].fill(Owner::Peer(0));
        s.migrating.insert(5, Owner::Peer(0));
        s.importing.insert(150, Owner::Peer(0));
        let text = s.nodes_conf();
        assert!(
            text.starts_with(&format!(
                "{} 127.0.0.1:7000@17000 myself,master - 0 0 2 connected 0-99 200-16383 [5->-{}] [150-<-{}]\n",
                s.myself,
                "b".repeat(40),
                "b".repeat(40)
            )),
            "{text}"
        );
        assert!(text.contains(&format!(
            "{} 127.0.0.1:7001@17001,node-b master - 0 0 3 disconnected 100-199\n",
            "b".repeat(40)
        )));
        assert!(text.contains(&format!(
            "{} 127.0.0.1:7002@17002 slave,fail {} 0 0 2 disconnected\n",
            "c".repeat(40),
            s.myself
        )));
        let back = State::parse(&text).unwrap();
        assert_eq!(back.myself, s.myself);
        assert_eq!(back.slots, s.slots);
        assert_eq!(back.migrating, s.migrating);
        assert_eq!(back.importing, s.importing);
        assert_eq!((back.current_epoch, back.config_epoch), (3, 2));
        assert_eq!(back.peers.len(), 2);
        assert_eq!(back.peers[0].hostname, "node-b");
        assert_eq!(back.peers[0].config_epoch, 3);
        assert_eq!(back.peers[1].primary.as_deref(), Some(s.myself.as_str()));
        assert_eq!(back.peers[1].flags, flag::SLAVE | flag::FAIL);
    }
}
