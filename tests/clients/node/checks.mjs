// The checks the Node client scripts share (smoke.mjs, cluster_smoke.mjs): each named check runs
// on its own, a failure is printed with its stack and counted, and `report` ends the script with
// one line of counts (the Rust tests look for "LABEL: N passed, 0 failed").
let passed = 0;
let failed = 0;

export async function check(name, fn) {
  try {
    await fn();
    passed += 1;
  } catch (e) {
    failed += 1;
    console.log(`FAIL ${name}: ${e && e.stack ? e.stack : e}`);
  }
}

export function assertEqual(got, want, what) {
  const g = JSON.stringify(got);
  const w = JSON.stringify(want);
  if (g !== w) throw new Error(`${what}: got ${g}, want ${w}`);
}

export async function assertRejects(fn, pattern, what) {
  try {
    await fn();
  } catch (e) {
    if (pattern.test(String(e))) return;
    throw new Error(`${what}: rejected with ${e}`);
  }
  throw new Error(`${what}: not rejected`);
}

/** Prints "LABEL: N passed, M failed" and exits, non-zero if a check failed. */
export function report(label) {
  console.log(`${label}: ${passed} passed, ${failed} failed`);
  process.exit(failed ? 1 : 0);
}
