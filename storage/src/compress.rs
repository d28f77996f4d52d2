//! HORIZON's compressed tier (`horizon-compress`, docs/physics.md): zstd with a dictionary.
//!
//! A cache value is a few hundred bytes, too short for a compressor to find much repetition
//! inside it: alone, LZ4 kept 94% of the bytes of bench/docgen.py's JSON and HTML and zstd 71%.
//! What such values repeat is each other's field names, markup and words, so they are
//! compressed against a dictionary trained on earlier values: zstd then keeps 48% (LZ4 with the
//! same bytes as a raw dictionary 59%, and costs more to compress). Measured by
//! storage/benches/compress.rs; BENCHMARKS.md has the figures.
//!
//! One dictionary for the whole process, trained once on up to [`SAMPLE_BYTES`] of the values
//! a database holds when HORIZON first compresses (until then nothing is compressed) and never
//! changed, so that a compressed value can move between databases and shards and still be
//! read. Values unlike the samples simply compress less, and stay plain when that saves less
//! than an eighth.
//!
//! zstd allocates its dictionaries and contexts with the C allocator, which the server's
//! counting allocator does not see; [`outside_bytes`] is what they hold (ZSTD_sizeof_*), for
//! `used_memory` and so for maxmemory: about 110 KB for the dictionaries and 130 KB per worker
//! that compressed and decompressed, a large part of a small memory budget.

use std::cell::RefCell;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};

use zstd::bulk::Compressor;
use zstd::dict::{DecoderDictionary, EncoderDictionary};
use zstd::zstd_safe::{CParameter, DCtx};

/// The dictionary's size (storage/benches/compress.rs measures it against 32 KB).
pub const DICT_BYTES: usize = 16 * 1024;
/// Sample bytes the dictionary is trained on: zstd's best dictionaries come from about a
/// hundred times their size, but 64 KB of values this alike measured as well as 256 KB, and
/// training takes time in proportion.
pub const SAMPLE_BYTES: usize = 64 * 1024;
/// Fewer sample bytes than this train no useful dictionary: wait for more values.
pub const MIN_SAMPLE_BYTES: usize = 8 * 1024;
/// Level 1: compression happens in the eviction path, where its cost delays a write.
const LEVEL: i32 = 1;

struct Dictionary {
    enc: EncoderDictionary<'static>,
    dec: DecoderDictionary<'static>,
}

static DICTIONARY: OnceLock<Dictionary> = OnceLock::new();
/// Held while training, so that two shards starting at once train once.
static TRAINING: Mutex<()> = Mutex::new(());

/// Bytes zstd holds in the C heap: the dictionaries and every thread's contexts.
static OUTSIDE: AtomicUsize = AtomicUsize::new(0);

/// What zstd holds outside the counting allocator (see the module docs).
pub fn outside_bytes() -> usize {
    OUTSIDE.load(Ordering::Relaxed)
}

/// What [`outside_bytes`] comes to once `workers` threads have each compressed and
/// decompressed, before anything is (eviction's rule for when the tier pays): the sizes the
/// unit test below prints (`cargo test -p warpengine-storage --lib compress -- --nocapture`),
/// rounded up.
pub fn expected_outside_bytes(workers: usize) -> u64 {
    110 * 1024 + 130 * 1024 * workers as u64
}

/// A thread's zstd context, with the size last added to [`OUTSIDE`] for it (a context grows
/// its workspace on first use), taken off again when the thread ends.
struct Counted<C> {
    context: C,
    counted: usize,
}

impl<C> Counted<C> {
    fn new(context: C) -> Self {
        Counted {
            context,
            counted: 0,
        }
    }

    /// Brings [`OUTSIDE`] up to `size`, the context's size now.
    fn recount(&mut self, size: usize) {
        if size > self.counted {
            OUTSIDE.fetch_add(size - self.counted, Ordering::Relaxed);
        } else {
            OUTSIDE.fetch_sub(self.counted - size, Ordering::Relaxed);
        }
        self.counted = size;
    }
}

impl<C> Drop for Counted<C> {
    fn drop(&mut self) {
        OUTSIDE.fetch_sub(self.counted, Ordering::Relaxed);
    }
}

thread_local! {
    // zstd's contexts are per thread: each worker keeps its own, made on first use.
    static COMPRESSOR: RefCell<Option<Counted<Compressor<'static>>>> = const { RefCell::new(None) };
    static DECOMPRESSOR: RefCell<Option<Counted<DCtx<'static>>>> = const { RefCell::new(None) };
}

/// `plain` compressed against the dictionary, or None while there is none yet or when zstd
/// fails.
pub fn compress(plain: &[u8]) -> Option<Vec<u8>> {
    let dict = DICTIONARY.get()?;
    COMPRESSOR.with(|c| {
        let mut c = c.borrow_mut();
        if c.is_none() {
            let mut new = Compressor::with_prepared_dictionary(&dict.enc).ok()?;
            // The caller stores the length and every value uses the one dictionary: the frame
            // need not repeat either (6 bytes less per value).
            new.set_parameter(CParameter::ContentSizeFlag(false)).ok()?;
            new.set_parameter(CParameter::DictIdFlag(false)).ok()?;
            *c = Some(Counted::new(new));
        }
        let c = c.as_mut()?;
        let packed = c.context.compress(plain).ok();
        let size = c.context.context_mut().sizeof();
        c.recount(size);
        packed
    })
}

/// The `len` bytes that [`compress`] turned into `packed`.
pub fn decompress(packed: &[u8], len: usize) -> Vec<u8> {
    let dict = DICTIONARY
        .get()
        .expect("a value was compressed, so the dictionary exists");
    DECOMPRESSOR.with(|d| {
        let mut d = d.borrow_mut();
        let d = d.get_or_insert_with(|| {
            let mut context = DCtx::create();
            context
                .ref_ddict(dict.dec.as_ddict())
                .expect("zstd takes the dictionary");
            Counted::new(context)
        });
        let mut plain = Vec::with_capacity(len);
        // Compressed here, from memory: a failure is a corrupted heap, not bad input.
        let n = d
            .context
            .decompress(&mut plain, packed)
            .expect("a compressed value decompresses");
        assert_eq!(n, len, "a compressed value comes back at its length");
        let size = d.context.sizeof();
        d.recount(size);
        plain
    })
}

/// Trains the dictionary on `samples` (values read in place: nothing is copied to wait for
/// more, which under a small maxmemory would evict the very keys that supply them). Returns
/// whether a dictionary exists now; false when the samples hold fewer than
/// [`MIN_SAMPLE_BYTES`].
pub fn train(samples: &[&[u8]]) -> bool {
    let _one = TRAINING.lock().expect("training lock");
    if ready() {
        return true;
    }
    if samples.iter().map(|s| s.len()).sum::<usize>() < MIN_SAMPLE_BYTES {
        return false;
    }
    // Training fails when the samples are too few or too alike for its statistics: their own
    // bytes are then the dictionary (zstd takes raw content as one).
    let dict = zstd::dict::from_samples(samples, DICT_BYTES).unwrap_or_else(|_| {
        let mut raw = samples.concat();
        raw.truncate(DICT_BYTES);
        raw
    });
    let made = Dictionary {
        enc: EncoderDictionary::copy(&dict, LEVEL),
        dec: DecoderDictionary::copy(&dict),
    };
    let size = made.enc.as_cdict().sizeof() + made.dec.as_ddict().sizeof();
    if DICTIONARY.set(made).is_ok() {
        OUTSIDE.fetch_add(size, Ordering::Relaxed);
    }
    true
}

/// Whether the dictionary exists (values are compressed from then on).
pub fn ready() -> bool {
    DICTIONARY.get().is_some()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Text with the repetition of real documents (field names, words) but no runs of one byte.
    pub(crate) fn document(len: usize, seed: u64) -> Vec<u8> {
        let words = [
            "\"price\":",
            "\"user_id\":",
            "\"title\":\"",
            "\"status\":",
            "active",
            "checkout ",
            "basket ",
            "{",
            "}",
            ",",
        ];
        let mut out = Vec::new();
        let mut seed = seed;
        while out.len() < len {
            crate::next_test_random(&mut seed);
            out.extend_from_slice(words[(seed >> 40) as usize % words.len()].as_bytes());
            out.extend_from_slice(format!("{}", (seed >> 20) % 1000).as_bytes());
        }
        out.truncate(len);
        out
    }

    /// Trains the process's dictionary (tests share it) on documents like the tests'.
    pub(crate) fn train() {
        let docs: Vec<Vec<u8>> = (0..200).map(|i| document(400, i)).collect();
        let samples: Vec<&[u8]> = docs.iter().map(Vec::as_slice).collect();
        assert!(!super::train(&samples[..10]) || ready(), "too few bytes");
        assert!(super::train(&samples));
        assert!(ready());
    }

    #[test]
    fn values_compress_against_the_dictionary_and_come_back() {
        train();
        let doc = document(400, 12345);
        let packed = compress(&doc).expect("compresses once trained");
        assert!(packed.len() < doc.len() / 2, "{} bytes", packed.len());
        assert_eq!(decompress(&packed, doc.len()), doc);
        // Another thread (another worker) reads it with its own context.
        let back = std::thread::spawn(move || decompress(&packed, 400))
            .join()
            .unwrap();
        assert_eq!(back, doc);
        // The dictionaries and this thread's two contexts are counted (the other thread's
        // context went with it; other tests' threads may add theirs meanwhile).
        let dict = DICTIONARY.get().expect("trained");
        let (cdict, ddict) = (dict.enc.as_cdict().sizeof(), dict.dec.as_ddict().sizeof());
        let cctx = COMPRESSOR.with(|c| c.borrow().as_ref().map_or(0, |c| c.counted));
        let dctx = DECOMPRESSOR.with(|d| d.borrow().as_ref().map_or(0, |d| d.counted));
        eprintln!("zstd: encoder dictionary {cdict}, decoder dictionary {ddict}, compression context {cctx}, decompression context {dctx} bytes");
        assert!(cctx > 0 && dctx > 0, "contexts counted: {cctx} {dctx}");
        assert!(outside_bytes() >= cdict + ddict + cctx + dctx);
        assert!((cdict + ddict) as u64 <= expected_outside_bytes(0));
        assert!((cctx + dctx) as u64 <= expected_outside_bytes(1) - expected_outside_bytes(0));
    }
}
