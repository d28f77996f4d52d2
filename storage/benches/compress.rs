//! HORIZON's compressed tier (issue 22): LZ4 (lz4_flex) against zstd (level 1 and 3), alone and
//! with a dictionary of the server's size made from the server's amount of samples (LZ4: their
//! raw bytes; zstd: trained on them, what the server does, `warpengine_storage::compress`;
//! WARP_DICT_BYTES=n for another size), on realistic cache values, the JSON documents
//! and HTML fragments of bench/docgen.py: the share of bytes each keeps, then the time to
//! decompress one value (what a GET of a compressed value adds) and to compress one (what the
//! eviction sweep pays).
//! Run: cargo bench -p warpengine-storage --bench compress [-- --quick]
//! (WARP_DOCS=N values, default 2000; WARP_DOC_MEAN=bytes, default 400).

use std::process::Command;

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use warpengine_storage::StrValue;

fn values() -> Vec<Vec<u8>> {
    let count = std::env::var("WARP_DOCS").unwrap_or_else(|_| "2000".into());
    let mean = std::env::var("WARP_DOC_MEAN").unwrap_or_else(|_| "400".into());
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../bench/docgen.py");
    let out = Command::new("python3")
        .args([script, "--raw", "--count", &count, "--mean", &mean])
        .output()
        .expect("python3 runs bench/docgen.py");
    assert!(out.status.success(), "docgen.py failed");
    out.stdout
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(<[u8]>::to_vec)
        .collect()
}

fn bench(c: &mut Criterion) {
    let all = values();
    // A shared dictionary: 32 KB of other values of the same kind (LZ4 takes raw bytes; zstd
    // one trained on them), as a server could keep from the first values it compresses.
    let (train, docs) = all.split_at(all.len() / 4);
    let docs = docs.to_vec();
    let total: usize = docs.iter().map(Vec::len).sum();
    let zstd1: Vec<Vec<u8>> = docs
        .iter()
        .map(|d| zstd::bulk::compress(d, 1).unwrap())
        .collect();
    let zstd3: Vec<Vec<u8>> = docs
        .iter()
        .map(|d| zstd::bulk::compress(d, 3).unwrap())
        .collect();
    let lz4: Vec<Vec<u8>> = docs
        .iter()
        .map(|d| lz4_flex::block::compress_prepend_size(d))
        .collect();
    let size = |v: &[Vec<u8>]| v.iter().map(Vec::len).sum::<usize>() as f64 / total as f64;
    let dict_bytes: usize = std::env::var("WARP_DICT_BYTES")
        .map(|v| v.parse().unwrap())
        .unwrap_or(warpengine_storage::compress::DICT_BYTES);
    // The server trains on its first SAMPLE_BYTES of values.
    let mut sampled = 0;
    let train: Vec<Vec<u8>> = train
        .iter()
        .take_while(|t| {
            sampled += t.len();
            sampled <= warpengine_storage::compress::SAMPLE_BYTES
        })
        .cloned()
        .collect();
    let mut raw_dict: Vec<u8> = train.concat();
    raw_dict.truncate(dict_bytes);
    let lz4_dict: Vec<Vec<u8>> = docs
        .iter()
        .map(|d| lz4_flex::block::compress_with_dict(d, &raw_dict))
        .collect();
    let trained = zstd::dict::from_samples(&train, dict_bytes).unwrap();
    let zstd_dict: Vec<Vec<u8>> = docs
        .iter()
        .map(|d| {
            zstd::bulk::Compressor::with_dictionary(1, &trained)
                .unwrap()
                .compress(d)
                .unwrap()
        })
        .collect();
    eprintln!(
        "with a {dict_bytes}-byte dictionary from {} samples: lz4 {:.3}, zstd-1 (trained) {:.3}",
        train.len(),
        lz4_dict.iter().map(Vec::len).sum::<usize>() as f64 / total as f64,
        zstd_dict.iter().map(Vec::len).sum::<usize>() as f64 / total as f64
    );
    // What the server keeps (its dictionary trained on the same samples, as it trains on the
    // first values it sees): values that do not shrink by an eighth stay as written.
    let samples: Vec<&[u8]> = train.iter().map(Vec::as_slice).collect();
    assert!(warpengine_storage::compress::train(&samples));
    let kept: usize = docs
        .iter()
        .map(|d| match StrValue::from_slice(d).compress() {
            true => 4 + warpengine_storage::compress::compress(d).unwrap().len(),
            false => d.len(),
        })
        .sum();
    eprintln!(
        "{} values, mean {} bytes: compressed/original lz4 {:.3}, zstd-1 {:.3}, zstd-3 {:.3}; \
         StrValue::compress keeps {:.3}",
        docs.len(),
        total / docs.len(),
        size(&lz4),
        size(&zstd1),
        size(&zstd3),
        kept as f64 / total as f64
    );
    let mut g = c.benchmark_group("decompress_one_value");
    let mut i = 0;
    g.bench_function("lz4_flex with dictionary", |b| {
        b.iter(|| {
            i = (i + 1) % docs.len();
            black_box(
                lz4_flex::block::decompress_with_dict(&lz4_dict[i], docs[i].len(), &raw_dict)
                    .unwrap(),
            )
        })
    });
    let mut ddec = zstd::bulk::Decompressor::with_dictionary(&trained).unwrap();
    g.bench_function("zstd-1 with dictionary", |b| {
        b.iter(|| {
            i = (i + 1) % docs.len();
            black_box(ddec.decompress(&zstd_dict[i], docs[i].len()).unwrap())
        })
    });
    g.bench_function("lz4_flex", |b| {
        b.iter(|| {
            i = (i + 1) % docs.len();
            black_box(lz4_flex::block::decompress_size_prepended(&lz4[i]).unwrap())
        })
    });
    let mut dec = zstd::bulk::Decompressor::new().unwrap();
    g.bench_function("zstd-1", |b| {
        b.iter(|| {
            i = (i + 1) % docs.len();
            black_box(dec.decompress(&zstd1[i], docs[i].len()).unwrap())
        })
    });
    // A GET of a plain value copies it into the reply: the baseline decompression replaces.
    g.bench_function("copy (plain value)", |b| {
        b.iter(|| {
            i = (i + 1) % docs.len();
            black_box(bytes::Bytes::copy_from_slice(&docs[i]))
        })
    });
    g.finish();
    let mut g = c.benchmark_group("compress_one_value");
    g.bench_function("lz4_flex", |b| {
        b.iter(|| {
            i = (i + 1) % docs.len();
            black_box(lz4_flex::block::compress_prepend_size(&docs[i]))
        })
    });
    g.bench_function("lz4_flex with dictionary", |b| {
        b.iter(|| {
            i = (i + 1) % docs.len();
            black_box(lz4_flex::block::compress_with_dict(&docs[i], &raw_dict))
        })
    });
    let mut enc = zstd::bulk::Compressor::new(1).unwrap();
    g.bench_function("zstd-1", |b| {
        b.iter(|| {
            i = (i + 1) % docs.len();
            black_box(enc.compress(&docs[i]).unwrap())
        })
    });
    let mut denc = zstd::bulk::Compressor::with_dictionary(1, &trained).unwrap();
    g.bench_function("zstd-1 with dictionary", |b| {
        b.iter(|| {
            i = (i + 1) % docs.len();
            black_box(denc.compress(&docs[i]).unwrap())
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
