//! Per-write durability: `SET ... DURABILITY always|everysec|no` overrides `appendfsync` for
//! that write's reply: `always` waits for its record's fdatasync, `everysec` and `no` only for
//! its write (the log is then synced by the everysec timer or by the OS). A read's replies
//! wait for the strongest durability any of its writes to a shard asked for.

use bytes::Bytes;

use crate::persist::{Durable, Fsync};

pub fn parse(word: &[u8]) -> Option<Fsync> {
    ["always", "everysec", "no"]
        .iter()
        .find(|w| word.eq_ignore_ascii_case(w.as_bytes()))
        .map(|w| Fsync::parse(w))
}

/// The DURABILITY a SET asks for, scanning its options as SET's parser does.
pub fn requested(args: &[Bytes]) -> Option<Fsync> {
    let mut j = 3;
    while j + 1 < args.len() {
        let opt = &args[j];
        if opt.eq_ignore_ascii_case(b"durability") {
            return parse(&args[j + 1]);
        }
        let takes_value = ["ex", "px", "exat", "pxat"]
            .iter()
            .any(|o| opt.eq_ignore_ascii_case(o.as_bytes()));
        j += if takes_value { 2 } else { 1 };
    }
    None
}

/// What a write's reply waits for: its own DURABILITY, or appendfsync's.
pub fn of_write(default: Fsync, asked: Option<Fsync>) -> Durable {
    asked.unwrap_or(default).durable()
}

/// The refusal for a DURABILITY the server cannot honour (no log to make the write durable).
pub fn refusal(asked: Fsync, log_on: bool) -> Option<&'static str> {
    (asked != Fsync::No && !log_on)
        .then_some("ERR DURABILITY always|everysec needs the write-ahead log (appendonly yes)")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(words: &[&str]) -> Vec<Bytes> {
        words.iter().map(|w| Bytes::from(w.to_string())).collect()
    }

    #[test]
    fn finds_the_option_after_others() {
        assert_eq!(
            requested(&argv(&[
                "SET",
                "k",
                "v",
                "EX",
                "10",
                "DURABILITY",
                "always"
            ])),
            Some(Fsync::Always)
        );
        assert_eq!(
            requested(&argv(&["SET", "k", "v", "GET", "durability", "NO"])),
            Some(Fsync::No)
        );
        // A key or value that reads "durability" is not the option.
        assert_eq!(requested(&argv(&["SET", "durability", "always"])), None);
        assert_eq!(
            requested(&argv(&["SET", "k", "v", "EX", "durability", "always"])),
            None
        );
        assert_eq!(
            requested(&argv(&["SET", "k", "v", "DURABILITY", "sometimes"])),
            None
        );
    }
}
