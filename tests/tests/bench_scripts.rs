//! Benchmark scripts must run: each is smoke-run here on a tiny input, so that a broken one
//! cannot land. (So far: `bench/icount.sh`; the others are to follow, see issue 14.)

use std::process::Command;

use warpengine_tests::warpengine_binary;

#[test]
fn icount_counts_instructions_per_request() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let out = Command::new("bash")
        .arg(format!("{root}/bench/icount.sh"))
        .arg(warpengine_binary())
        .args(["get", "300"])
        .output()
        .expect("run bench/icount.sh");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "icount.sh failed: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let per_request: u64 = text
        .split_whitespace()
        .nth(2)
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no count in {text:?}"));
    assert!(per_request > 0, "{text}");
}
