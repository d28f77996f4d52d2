//! Glob-style matching with Redis's exact rules (`stringmatchlen` in util.c):
//! `*`, `?`, `[abc]`, `[^abc]`, `[a-z]` and `\` escapes.
//!
//! Like Redis since 7.0.9 (CVE-2022-36021), a `*` whose rest of the pattern matches nowhere in
//! the rest of the string ends the whole search: an earlier `*` taking more characters could
//! only start that rest later still. Without this, `a*a*a*…*b` against a string of `a`s takes
//! exponential time (KEYS held a worker at 100% CPU); with it, the work is polynomial.

pub fn glob_match(pattern: &[u8], string: &[u8], nocase: bool) -> bool {
    let mut give_up = false;
    match_from(pattern, string, nocase, 0, &mut give_up)
}

fn eq(a: u8, b: u8, nocase: bool) -> bool {
    if nocase {
        a.eq_ignore_ascii_case(&b)
    } else {
        a == b
    }
}

/// `give_up`: set when a `*` found no match for the rest of the pattern anywhere (see above).
fn match_from(mut p: &[u8], mut s: &[u8], nocase: bool, depth: usize, give_up: &mut bool) -> bool {
    // Redis caps recursion to keep pathological patterns from blowing the stack.
    if depth > 1000 {
        return false;
    }
    while !p.is_empty() && !s.is_empty() {
        match p[0] {
            b'*' => {
                while p.len() > 1 && p[1] == b'*' {
                    p = &p[1..];
                }
                if p.len() == 1 {
                    return true;
                }
                while !s.is_empty() {
                    if match_from(&p[1..], s, nocase, depth + 1, give_up) {
                        return true;
                    }
                    if *give_up {
                        return false;
                    }
                    s = &s[1..];
                }
                *give_up = true;
                return false;
            }
            b'?' => {
                s = &s[1..];
            }
            b'[' => {
                p = &p[1..];
                let not = !p.is_empty() && p[0] == b'^';
                if not {
                    p = &p[1..];
                }
                let mut matched = false;
                loop {
                    if p.is_empty() {
                        break;
                    }
                    if p[0] == b'\\' && p.len() >= 2 {
                        p = &p[1..];
                        if p[0] == s[0] {
                            matched = true;
                        }
                    } else if p[0] == b']' {
                        break;
                    } else if p.len() >= 3 && p[1] == b'-' {
                        let (mut start, mut end) = (p[0], p[2]);
                        let mut c = s[0];
                        if start > end {
                            std::mem::swap(&mut start, &mut end);
                        }
                        if nocase {
                            start = start.to_ascii_lowercase();
                            end = end.to_ascii_lowercase();
                            c = c.to_ascii_lowercase();
                        }
                        p = &p[2..];
                        if c >= start && c <= end {
                            matched = true;
                        }
                    } else if eq(p[0], s[0], nocase) {
                        matched = true;
                    }
                    p = &p[1..];
                }
                let matched = if not { !matched } else { matched };
                if !matched {
                    return false;
                }
                s = &s[1..];
            }
            b'\\' if p.len() >= 2 => {
                p = &p[1..];
                if !eq(p[0], s[0], nocase) {
                    return false;
                }
                s = &s[1..];
            }
            c => {
                if !eq(c, s[0], nocase) {
                    return false;
                }
                s = &s[1..];
            }
        }
        if p.is_empty() {
            // The class branch may have consumed the rest of the pattern.
            break;
        }
        p = &p[1..];
        if s.is_empty() {
            while !p.is_empty() && p[0] == b'*' {
                p = &p[1..];
            }
            break;
        }
    }
    p.is_empty() && s.is_empty()
}

#[cfg(test)]
mod tests {
    use super::glob_match;

    fn m(p: &str, s: &str) -> bool {
        glob_match(p.as_bytes(), s.as_bytes(), false)
    }

    /// Plain glob over `a`, `b`, `?` and `*` by dynamic programming: the reference.
    fn reference(p: &[u8], s: &[u8]) -> bool {
        let mut m = vec![vec![false; s.len() + 1]; p.len() + 1];
        m[0][0] = true;
        for i in 1..=p.len() {
            for j in 0..=s.len() {
                m[i][j] = match p[i - 1] {
                    b'*' => m[i - 1][j] || (j > 0 && m[i][j - 1]),
                    b'?' => j > 0 && m[i - 1][j - 1],
                    c => j > 0 && s[j - 1] == c && m[i - 1][j - 1],
                };
            }
        }
        m[p.len()][s.len()]
    }

    #[test]
    fn giving_up_early_changes_no_answer() {
        let mut x = 7u64;
        let mut pick = |n: u64| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (x >> 33) % n
        };
        for _ in 0..20_000 {
            let p: Vec<u8> = (0..pick(9)).map(|_| b"ab?*"[pick(4) as usize]).collect();
            // Non-empty strings: with an empty one Redis's matcher answers no even to "*".
            let s: Vec<u8> = (0..1 + pick(8)).map(|_| b"ab"[pick(2) as usize]).collect();
            assert_eq!(
                glob_match(&p, &s, false),
                reference(&p, &s),
                "{:?} {:?}",
                String::from_utf8_lossy(&p),
                String::from_utf8_lossy(&s)
            );
        }
    }

    #[test]
    fn hopeless_patterns_end_quickly() {
        // On a thread of its own, so that an exponential matcher (years here) fails the test
        // at the deadline instead of hanging it; polynomial is well under a second.
        let (done, finished) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let many_stars = "a*".repeat(20) + "b";
            let answers = [
                m(&many_stars, &"a".repeat(40)),
                m(&"*a".repeat(30), &"a".repeat(29)),
                m(&("*?".repeat(25) + "b"), &"a".repeat(60)),
                m(&"a*".repeat(500), &"a".repeat(400)),
                m(&("a*".repeat(20) + "b"), &("a".repeat(40) + "b")),
            ];
            let _ = done.send(answers);
        });
        let answers = finished
            .recv_timeout(std::time::Duration::from_secs(5))
            .expect("a hopeless pattern did not end within 5 s");
        assert_eq!(answers, [false, false, false, false, true]);
    }

    #[test]
    fn basics() {
        assert!(m("*", "anything"));
        // Redis's matcher says no here; KEYS and SCAN special-case a lone "*".
        assert!(!m("*", ""));
        assert!(m("h?llo", "hello"));
        assert!(!m("h?llo", "hllo"));
        assert!(m("h*llo", "heeeello"));
        assert!(m("h[ae]llo", "hallo"));
        assert!(!m("h[ae]llo", "hillo"));
        assert!(m("h[^e]llo", "hallo"));
        assert!(!m("h[^e]llo", "hello"));
        assert!(m("h[a-b]llo", "hbllo"));
        assert!(m("h[b-a]llo", "hallo"));
        assert!(m("h\\*llo", "h*llo"));
        assert!(!m("h\\*llo", "hallo"));
        assert!(m("user:*", "user:42"));
        assert!(!m("user:*", "use"));
        assert!(m("a*b*c", "aXXbYYc"));
        assert!(!m("a*b*c", "aXXbYY"));
        assert!(m("abc*", "abc"));
        assert!(m("abc**", "abc"));
        assert!(!m("", "a"));
        assert!(m("", ""));
        assert!(glob_match(b"HELLO", b"hello", true));
    }
}
