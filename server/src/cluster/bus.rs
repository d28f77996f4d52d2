//! The wire format of Redis Cluster's bus, version 1 (Redis 7.0's `clusterMsg`), so that
//! WarpEngine and redis-server nodes can share a cluster.
//!
//! Every message is a fixed 2256-byte header followed by a body whose shape depends on the type:
//!
//! ```text
//! 0    "RCmb"           4    totlen (u32)     8    ver=1 (u16)     10   port (u16)
//! 12   type (u16)       14   count (u16)      16   currentEpoch    24   configEpoch
//! 32   offset (u64)     40   sender (40 hex)  80   myslots (2048-byte bitmap)
//! 2128 slaveof (40)     2168 myip (46, NUL-padded)                2214 extensions (u16)
//! 2216 reserved (30)    2246 pport  2248 cport  2250 flags  2252 state  2253 mflags[3]
//! 2256 body: PING/PONG/MEET: `count` gossip entries of 104 bytes, then `extensions` ping
//!      extensions (each: u32 length, u16 type, 2 unused, data padded to 8 bytes); FAIL: a node name; PUBLISH: lengths and data; UPDATE: a
//!      config epoch, a node name and its slot bitmap; AUTH_REQUEST/ACK, MFSTART: nothing.
//! ```
//!
//! Integers are in network byte order. Slot `j` is bit `j % 8` of byte `j / 8` in a bitmap.

use crate::slot::SLOTS;

pub const SIGNATURE: &[u8; 4] = b"RCmb";
pub const VERSION: u16 = 1;
/// The header's size: where a message's body starts.
pub const HEADER_LEN: usize = 2256;
/// One entry of a PING's gossip section.
pub const GOSSIP_LEN: usize = 104;
pub const NAME_LEN: usize = 40;
/// `NET_IP_STR_LEN`: room for an IPv6 address and its NUL.
pub const IP_LEN: usize = 46;
pub const BITMAP_LEN: usize = SLOTS / 8;
/// The largest message accepted: far above what a cluster sends (PUBLISH of big payloads
/// aside), so a corrupt length cannot make a link buffer gigabytes.
pub const MAX_LEN: usize = 512 * 1024 * 1024;

/// Message types (`CLUSTERMSG_TYPE_*`).
pub mod kind {
    pub const PING: u16 = 0;
    pub const PONG: u16 = 1;
    pub const MEET: u16 = 2;
    pub const FAIL: u16 = 3;
    pub const PUBLISH: u16 = 4;
    pub const FAILOVER_AUTH_REQUEST: u16 = 5;
    pub const FAILOVER_AUTH_ACK: u16 = 6;
    pub const UPDATE: u16 = 7;
    pub const MFSTART: u16 = 8;
    pub const MODULE: u16 = 9;
    pub const PUBLISHSHARD: u16 = 10;
    /// Names for CLUSTER INFO's `cluster_stats_messages_<name>_sent` lines.
    pub const NAMES: [&str; 11] = [
        "ping",
        "pong",
        "meet",
        "fail",
        "publish",
        "auth-req",
        "auth-ack",
        "update",
        "mfstart",
        "module",
        "publishshard",
    ];
}

/// Node flags (`CLUSTER_NODE_*`), in headers and gossip entries.
pub mod flag {
    pub const MASTER: u16 = 1;
    pub const SLAVE: u16 = 2;
    pub const PFAIL: u16 = 4;
    pub const FAIL: u16 = 8;
    pub const MYSELF: u16 = 16;
    pub const HANDSHAKE: u16 = 32;
    pub const NOADDR: u16 = 64;
    pub const MEET: u16 = 128;
    pub const MIGRATE_TO: u16 = 256;
    pub const NOFAILOVER: u16 = 512;
}

/// `mflags[0]` bits.
pub mod mflag {
    /// The sending primary has paused its clients for a manual failover.
    pub const PAUSED: u8 = 1;
    /// An AUTH_REQUEST that asks for a vote even though the primary is not failed.
    pub const FORCEACK: u8 = 2;
    /// Ping extensions follow the gossip section.
    pub const EXT_DATA: u8 = 4;
}

/// The hostname ping extension (`CLUSTERMSG_EXT_TYPE_HOSTNAME`).
pub const EXT_HOSTNAME: u16 = 0;

/// A 2048-byte slot bitmap.
#[derive(Clone, PartialEq, Eq)]
pub struct SlotBitmap(pub Box<[u8; BITMAP_LEN]>);

impl SlotBitmap {
    pub fn empty() -> SlotBitmap {
        SlotBitmap(Box::new([0; BITMAP_LEN]))
    }

    pub fn get(&self, slot: usize) -> bool {
        self.0[slot / 8] & (1 << (slot % 8)) != 0
    }

    pub fn set(&mut self, slot: usize) {
        self.0[slot / 8] |= 1 << (slot % 8);
    }

    pub fn count(&self) -> usize {
        self.0.iter().map(|b| b.count_ones() as usize).sum()
    }

    fn read(bytes: &[u8]) -> SlotBitmap {
        let mut map = SlotBitmap::empty();
        map.0.copy_from_slice(&bytes[..BITMAP_LEN]);
        map
    }
}

impl std::fmt::Debug for SlotBitmap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SlotBitmap({} slots)", self.count())
    }
}

/// What every message says about its sender.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    pub kind: u16,
    /// The sender's client port.
    pub port: u16,
    pub current_epoch: u64,
    /// The sender's config epoch, or its primary's if it is a replica.
    pub config_epoch: u64,
    /// The replication offset (a primary's, or what a replica processed).
    pub offset: u64,
    pub sender: String,
    /// The slots of the sender, or of its primary if it is a replica.
    pub myslots: SlotBitmap,
    /// The sender's primary, if it is a replica.
    pub slaveof: Option<String>,
    /// The sender's address as it announces it; empty: take the connection's.
    pub myip: String,
    pub pport: u16,
    pub cport: u16,
    pub flags: u16,
    /// The cluster's state as the sender sees it: 0 ok, 1 fail.
    pub state: u8,
    pub mflags: [u8; 3],
}

impl Header {
    pub fn new(kind: u16, sender: &str) -> Header {
        Header {
            kind,
            port: 0,
            current_epoch: 0,
            config_epoch: 0,
            offset: 0,
            sender: sender.to_string(),
            myslots: SlotBitmap::empty(),
            slaveof: None,
            myip: String::new(),
            pport: 0,
            cport: 0,
            flags: 0,
            state: 0,
            mflags: [0; 3],
        }
    }
}

/// A gossip entry: what the sender knows of a third node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Gossip {
    pub name: String,
    /// Seconds (Unix time) of the sender's last PING to the node, 0 for none in flight.
    pub ping_sent: u32,
    /// Seconds (Unix time) of the last PONG the sender got from the node.
    pub pong_received: u32,
    pub ip: String,
    pub port: u16,
    pub cport: u16,
    pub flags: u16,
    pub pport: u16,
}

/// What follows the header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Body {
    /// PING, PONG, MEET.
    Ping {
        gossip: Vec<Gossip>,
        hostname: Option<String>,
    },
    Fail {
        node: String,
    },
    /// PUBLISH and PUBLISHSHARD.
    Publish {
        channel: Vec<u8>,
        message: Vec<u8>,
    },
    Update {
        config_epoch: u64,
        node: String,
        slots: SlotBitmap,
    },
    /// FAILOVER_AUTH_REQUEST, FAILOVER_AUTH_ACK, MFSTART, and types this node ignores.
    Empty,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    pub header: Header,
    pub body: Body,
}

/// Why bytes are not a message.
#[derive(Debug, PartialEq, Eq)]
pub enum DecodeError {
    Signature,
    Version(u16),
    /// totlen does not match what the type and counts say.
    Length {
        totlen: usize,
        expected: usize,
    },
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DecodeError::Signature => write!(f, "bad signature"),
            DecodeError::Version(v) => write!(f, "protocol version {v}"),
            DecodeError::Length { totlen, expected } => {
                write!(f, "length {totlen}, expected {expected}")
            }
        }
    }
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_be_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

/// A NUL-padded C string field.
fn text_at(b: &[u8], at: usize, len: usize) -> String {
    let field = &b[at..at + len];
    let end = field.iter().position(|&c| c == 0).unwrap_or(len);
    String::from_utf8_lossy(&field[..end]).into_owned()
}

fn put_text(out: &mut [u8], text: &str) {
    let n = text.len().min(out.len());
    out[..n].copy_from_slice(&text.as_bytes()[..n]);
}

/// The total length a frame announces once its first 8 bytes are in: None when the signature
/// is wrong or the length impossible (the link is then dropped, as Redis does).
pub fn frame_len(first8: &[u8; 8]) -> Option<usize> {
    if &first8[..4] != SIGNATURE {
        return None;
    }
    let len = u32::from_be_bytes(first8[4..8].try_into().expect("4 bytes")) as usize;
    (16..=MAX_LEN).contains(&len).then_some(len)
}

/// A whole frame into a message, with Redis's `clusterProcessPacket` length checks. Types this
/// node does not know decode to an empty body.
pub fn decode(b: &[u8]) -> Result<Message, DecodeError> {
    if b.len() < 8 || &b[..4] != SIGNATURE {
        return Err(DecodeError::Signature);
    }
    let totlen = u32_at(b, 4) as usize;
    let short = |expected: usize| DecodeError::Length { totlen, expected };
    if totlen != b.len() || totlen < HEADER_LEN {
        return Err(short(HEADER_LEN.max(totlen)));
    }
    let ver = u16_at(b, 8);
    if ver != VERSION {
        return Err(DecodeError::Version(ver));
    }
    let slaveof = text_at(b, 2128, NAME_LEN);
    let header = Header {
        kind: u16_at(b, 12),
        port: u16_at(b, 10),
        current_epoch: u64_at(b, 16),
        config_epoch: u64_at(b, 24),
        offset: u64_at(b, 32),
        sender: text_at(b, 40, NAME_LEN),
        myslots: SlotBitmap::read(&b[80..]),
        slaveof: (!slaveof.is_empty()).then_some(slaveof),
        myip: text_at(b, 2168, IP_LEN),
        pport: u16_at(b, 2246),
        cport: u16_at(b, 2248),
        flags: u16_at(b, 2250),
        state: b[2252],
        mflags: [b[2253], b[2254], b[2255]],
    };
    let count = u16_at(b, 14) as usize;
    let extensions = u16_at(b, 2214) as usize;
    let body_at = HEADER_LEN;
    let body = match header.kind {
        kind::PING | kind::PONG | kind::MEET => {
            let mut expected = HEADER_LEN + count * GOSSIP_LEN;
            if totlen < expected {
                return Err(short(expected));
            }
            let gossip = (0..count)
                .map(|i| {
                    let g = body_at + i * GOSSIP_LEN;
                    Gossip {
                        name: text_at(b, g, NAME_LEN),
                        ping_sent: u32_at(b, g + 40),
                        pong_received: u32_at(b, g + 44),
                        ip: text_at(b, g + 48, IP_LEN),
                        port: u16_at(b, g + 94),
                        cport: u16_at(b, g + 96),
                        flags: u16_at(b, g + 98),
                        pport: u16_at(b, g + 100),
                    }
                })
                .collect();
            let mut hostname = None;
            if header.mflags[0] & mflag::EXT_DATA != 0 {
                for _ in 0..extensions {
                    if totlen < expected + 8 {
                        return Err(short(expected + 8));
                    }
                    let ext_len = u32_at(b, expected) as usize;
                    let ext_type = u16_at(b, expected + 4);
                    if !ext_len.is_multiple_of(8) || ext_len < 8 || totlen - expected < ext_len {
                        return Err(short(expected + ext_len));
                    }
                    if ext_type == EXT_HOSTNAME {
                        hostname = Some(text_at(b, expected + 8, ext_len - 8));
                    }
                    expected += ext_len;
                }
            }
            if totlen != expected {
                return Err(short(expected));
            }
            Body::Ping { gossip, hostname }
        }
        kind::FAIL => {
            expect(totlen, HEADER_LEN + NAME_LEN)?;
            Body::Fail {
                node: text_at(b, body_at, NAME_LEN),
            }
        }
        kind::PUBLISH | kind::PUBLISHSHARD => {
            if totlen < HEADER_LEN + 8 {
                return Err(short(HEADER_LEN + 16));
            }
            let channel_len = u32_at(b, body_at) as usize;
            let message_len = u32_at(b, body_at + 4) as usize;
            // The C struct reserves 8 bytes of data: shorter payloads still pad to 16.
            let expected = HEADER_LEN + 8 + (channel_len + message_len).max(8);
            let exact = HEADER_LEN + 8 + channel_len + message_len;
            if totlen != expected && totlen != exact {
                return Err(short(expected));
            }
            let data = body_at + 8;
            Body::Publish {
                channel: b[data..data + channel_len].to_vec(),
                message: b[data + channel_len..data + channel_len + message_len].to_vec(),
            }
        }
        kind::UPDATE => {
            expect(totlen, HEADER_LEN + 8 + NAME_LEN + BITMAP_LEN)?;
            Body::Update {
                config_epoch: u64_at(b, body_at),
                node: text_at(b, body_at + 8, NAME_LEN),
                slots: SlotBitmap::read(&b[body_at + 48..]),
            }
        }
        kind::FAILOVER_AUTH_REQUEST | kind::FAILOVER_AUTH_ACK | kind::MFSTART => {
            expect(totlen, HEADER_LEN)?;
            Body::Empty
        }
        _ => Body::Empty,
    };
    Ok(Message { header, body })
}

fn expect(totlen: usize, expected: usize) -> Result<(), DecodeError> {
    if totlen == expected {
        Ok(())
    } else {
        Err(DecodeError::Length { totlen, expected })
    }
}

/// A message into a frame, as Redis lays it out (unused bytes zeroed).
pub fn encode(msg: &Message) -> Vec<u8> {
    let h = &msg.header;
    let mut out = vec![0u8; HEADER_LEN];
    out[..4].copy_from_slice(SIGNATURE);
    out[8..10].copy_from_slice(&VERSION.to_be_bytes());
    out[10..12].copy_from_slice(&h.port.to_be_bytes());
    out[12..14].copy_from_slice(&h.kind.to_be_bytes());
    out[16..24].copy_from_slice(&h.current_epoch.to_be_bytes());
    out[24..32].copy_from_slice(&h.config_epoch.to_be_bytes());
    out[32..40].copy_from_slice(&h.offset.to_be_bytes());
    put_text(&mut out[40..80], &h.sender);
    out[80..80 + BITMAP_LEN].copy_from_slice(&h.myslots.0[..]);
    if let Some(primary) = &h.slaveof {
        put_text(&mut out[2128..2168], primary);
    }
    put_text(&mut out[2168..2168 + IP_LEN - 1], &h.myip);
    out[2246..2248].copy_from_slice(&h.pport.to_be_bytes());
    out[2248..2250].copy_from_slice(&h.cport.to_be_bytes());
    out[2250..2252].copy_from_slice(&h.flags.to_be_bytes());
    out[2252] = h.state;
    out[2253..2256].copy_from_slice(&h.mflags);
    match &msg.body {
        Body::Ping { gossip, hostname } => {
            out[14..16].copy_from_slice(&(gossip.len() as u16).to_be_bytes());
            for g in gossip {
                let mut entry = [0u8; GOSSIP_LEN];
                put_text(&mut entry[..40], &g.name);
                entry[40..44].copy_from_slice(&g.ping_sent.to_be_bytes());
                entry[44..48].copy_from_slice(&g.pong_received.to_be_bytes());
                put_text(&mut entry[48..48 + IP_LEN - 1], &g.ip);
                entry[94..96].copy_from_slice(&g.port.to_be_bytes());
                entry[96..98].copy_from_slice(&g.cport.to_be_bytes());
                entry[98..100].copy_from_slice(&g.flags.to_be_bytes());
                entry[100..102].copy_from_slice(&g.pport.to_be_bytes());
                out.extend_from_slice(&entry);
            }
            if let Some(name) = hostname.as_deref().filter(|n| !n.is_empty()) {
                // The name, its NUL, padding to 8 bytes.
                let padded = (name.len() + 1).div_ceil(8) * 8;
                out.extend_from_slice(&((8 + padded) as u32).to_be_bytes());
                out.extend_from_slice(&EXT_HOSTNAME.to_be_bytes());
                out.extend_from_slice(&[0, 0]);
                out.extend_from_slice(name.as_bytes());
                out.resize(out.len() + padded - name.len(), 0);
                out[2214..2216].copy_from_slice(&1u16.to_be_bytes());
                out[2253] |= mflag::EXT_DATA;
            }
        }
        Body::Fail { node } => {
            let mut name = [0u8; NAME_LEN];
            put_text(&mut name, node);
            out.extend_from_slice(&name);
        }
        Body::Publish { channel, message } => {
            out.extend_from_slice(&(channel.len() as u32).to_be_bytes());
            out.extend_from_slice(&(message.len() as u32).to_be_bytes());
            out.extend_from_slice(channel);
            out.extend_from_slice(message);
            // At least the 8 data bytes of the C struct.
            out.resize(out.len().max(HEADER_LEN + 16), 0);
        }
        Body::Update {
            config_epoch,
            node,
            slots,
        } => {
            out.extend_from_slice(&config_epoch.to_be_bytes());
            let mut name = [0u8; NAME_LEN];
            put_text(&mut name, node);
            out.extend_from_slice(&name);
            out.extend_from_slice(&slots.0[..]);
        }
        Body::Empty => {}
    }
    let totlen = out.len() as u32;
    out[4..8].copy_from_slice(&totlen.to_be_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A MEET sent by a real redis-server 7.0.15 (`cluster-announce-hostname node-a.example`,
    /// slots 0-8000, config epoch 1, two other nodes known) to a listener standing in for a node.
    const REDIS_MEET: &[u8] = include_bytes!("testdata/redis-7.0.15-meet.bin");

    #[test]
    fn decodes_a_meet_from_redis_7_0_15() {
        let msg = decode(REDIS_MEET).unwrap();
        let h = &msg.header;
        assert_eq!(h.kind, kind::MEET);
        assert_eq!(h.sender, "16bc3c175c8c8c97c732d8f3baeea82c8c78064f");
        assert_eq!((h.port, h.cport, h.pport), (7301, 17301, 0));
        assert_eq!((h.current_epoch, h.config_epoch), (2, 1));
        assert_eq!(h.flags, flag::MYSELF | flag::MASTER);
        assert_eq!(h.slaveof, None);
        assert_eq!(h.myip, "");
        assert_eq!(h.state, 0);
        assert!((0..=8000).all(|s| h.myslots.get(s)));
        assert!(!h.myslots.get(8001));
        assert_eq!(h.myslots.count(), 8001);
        let Body::Ping { gossip, hostname } = &msg.body else {
            panic!("not a ping body: {:?}", msg.body)
        };
        assert_eq!(hostname.as_deref(), Some("node-a.example"));
        assert_eq!(gossip.len(), 2);
        for g in gossip {
            assert_eq!(g.ip, "127.0.0.1");
            assert_eq!(g.cport, g.port + 10000);
            assert_eq!(g.flags, flag::MASTER);
            assert!(g.pong_received > 1_700_000_000);
        }
        // Re-encoding gives back the very bytes Redis sent.
        assert_eq!(encode(&msg), REDIS_MEET);
    }

    fn sample_header(kind: u16) -> Header {
        let mut h = Header::new(kind, &"a".repeat(40));
        h.port = 7000;
        h.cport = 17000;
        h.current_epoch = 9;
        h.config_epoch = 4;
        h.offset = 12345;
        h.flags = flag::SLAVE;
        h.slaveof = Some("b".repeat(40));
        h.myip = "10.1.2.3".into();
        h.myslots.set(0);
        h.myslots.set(16383);
        h
    }

    #[test]
    fn every_type_round_trips() {
        let gossip = Gossip {
            name: "c".repeat(40),
            ping_sent: 0,
            pong_received: 1_800_000_000,
            ip: "::1".into(),
            port: 7002,
            cport: 17002,
            flags: flag::MASTER | flag::PFAIL,
            pport: 0,
        };
        let mut slots = SlotBitmap::empty();
        slots.set(77);
        let bodies = [
            (
                kind::PING,
                Body::Ping {
                    gossip: vec![gossip.clone(), gossip],
                    hostname: Some("exactly8".into()),
                },
            ),
            (
                kind::PONG,
                Body::Ping {
                    gossip: vec![],
                    hostname: None,
                },
            ),
            (
                kind::FAIL,
                Body::Fail {
                    node: "d".repeat(40),
                },
            ),
            (
                kind::PUBLISH,
                Body::Publish {
                    channel: b"news".to_vec(),
                    message: b"hello world".to_vec(),
                },
            ),
            (
                kind::PUBLISHSHARD,
                Body::Publish {
                    channel: b"c".to_vec(),
                    message: b"m".to_vec(),
                },
            ),
            (
                kind::UPDATE,
                Body::Update {
                    config_epoch: 7,
                    node: "e".repeat(40),
                    slots,
                },
            ),
            (kind::FAILOVER_AUTH_REQUEST, Body::Empty),
            (kind::FAILOVER_AUTH_ACK, Body::Empty),
            (kind::MFSTART, Body::Empty),
        ];
        for (kind, body) in bodies {
            let mut header = sample_header(kind);
            if let Body::Ping {
                hostname: Some(_), ..
            } = &body
            {
                header.mflags[0] |= mflag::EXT_DATA;
            }
            let msg = Message { header, body };
            let bytes = encode(&msg);
            assert_eq!(u32_at(&bytes, 4) as usize, bytes.len());
            assert_eq!(decode(&bytes).unwrap(), msg, "type {kind}");
        }
    }

    #[test]
    fn layout_matches_redis() {
        let msg = Message {
            header: sample_header(kind::PING),
            body: Body::Ping {
                gossip: vec![],
                hostname: Some("host".into()),
            },
        };
        let b = encode(&msg);
        // Header, then one extension: 8 bytes of type/length, "host\0" padded to 8.
        assert_eq!(b.len(), HEADER_LEN + 16);
        assert_eq!(u16_at(&b, 2214), 1);
        assert_eq!(b[2253], mflag::EXT_DATA);
        assert_eq!(u32_at(&b, HEADER_LEN), 16);
        assert_eq!(&b[2168..2176], b"10.1.2.3");
        assert_eq!(b[2176], 0);
        assert_eq!(u16_at(&b, 2248), 17000);
        // Slot 16383 is the top bit of the bitmap's last byte.
        assert_eq!(b[80 + BITMAP_LEN - 1], 0x80);
        assert_eq!(b[80], 0x01);
    }

    #[test]
    fn rejects_bad_frames() {
        let msg = Message {
            header: sample_header(kind::FAIL),
            body: Body::Fail {
                node: "d".repeat(40),
            },
        };
        let mut b = encode(&msg);
        assert_eq!(frame_len(b[..8].try_into().unwrap()), Some(b.len()));
        b[8..10].copy_from_slice(&2u16.to_be_bytes());
        assert_eq!(decode(&b), Err(DecodeError::Version(2)));
        let mut short = encode(&msg);
        short.truncate(HEADER_LEN + 10);
        let len = short.len() as u32;
        short[4..8].copy_from_slice(&len.to_be_bytes());
        assert!(matches!(decode(&short), Err(DecodeError::Length { .. })));
        // A gossip count beyond the frame.
        let mut ping = encode(&Message {
            header: sample_header(kind::PING),
            body: Body::Ping {
                gossip: vec![],
                hostname: None,
            },
        });
        ping[14..16].copy_from_slice(&3u16.to_be_bytes());
        assert!(matches!(decode(&ping), Err(DecodeError::Length { .. })));
        let mut wrong = [0u8; 8];
        wrong[..4].copy_from_slice(b"RCmx");
        assert_eq!(frame_len(&wrong), None);
    }
}
