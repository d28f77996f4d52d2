//! Redis's `pqsort` (`pqsort.c`: NetBSD's Bentley-McIlroy quicksort, stopping at partitions
//! outside a wanted range), ported so that a partial sort leaves equal elements in the order
//! Redis leaves them. As redis-server 7.0 runs it, a partition that moved nothing does not
//! switch to insertion sort (the switch NetBSD's source shows): compared on ties against the
//! real server, only this version agrees. GEORADIUS ... COUNT n sorts only the first n places this way; ties
//! (members at the same distance) then come out in Redis's order, which no stable sort gives.

use std::cmp::Ordering;

/// Sorts `v` enough that places `lrange..=rrange` hold what a full sort would put there, in
/// the order Redis's `pqsort(v, len, size, cmp, lrange, rrange)` leaves them.
pub fn pqsort<T>(v: &mut [T], cmp: &impl Fn(&T, &T) -> Ordering, lrange: usize, rrange: usize) {
    let len = v.len();
    partial_sort(v, 0, len, cmp, (lrange, rrange));
}

fn insertion_sort<T>(v: &mut [T], a: usize, n: usize, cmp: &impl Fn(&T, &T) -> Ordering) {
    for pm in a + 1..a + n {
        let mut pl = pm;
        while pl > a && cmp(&v[pl - 1], &v[pl]) == Ordering::Greater {
            v.swap(pl, pl - 1);
            pl -= 1;
        }
    }
}

/// The median of three places, with the comparisons in C's order.
fn med3<T>(v: &[T], a: usize, b: usize, c: usize, cmp: &impl Fn(&T, &T) -> Ordering) -> usize {
    let lt = |x: usize, y: usize| cmp(&v[x], &v[y]) == Ordering::Less;
    let gt = |x: usize, y: usize| cmp(&v[x], &v[y]) == Ordering::Greater;
    if lt(a, b) {
        if lt(b, c) {
            b
        } else if lt(a, c) {
            c
        } else {
            a
        }
    } else if gt(b, c) {
        b
    } else if lt(a, c) {
        a
    } else {
        c
    }
}

/// Swaps the `n` places from `a` with the `n` places from `b`, pairwise.
fn vecswap<T>(v: &mut [T], a: usize, b: usize, n: usize) {
    for i in 0..n {
        v.swap(a + i, b + i);
    }
}

/// Whether the `n` places from `a` lie wholly before or wholly after the wanted range.
fn outside(a: usize, n: usize, (lrange, rrange): (usize, usize)) -> bool {
    (lrange < a && rrange < a) || (lrange >= a + n && rrange >= a + n)
}

/// `_pqsort` over the `n` places from `a`.
fn partial_sort<T>(
    v: &mut [T],
    mut a: usize,
    mut n: usize,
    cmp: &impl Fn(&T, &T) -> Ordering,
    range: (usize, usize),
) {
    loop {
        if n < 7 {
            insertion_sort(v, a, n, cmp);
            return;
        }
        let mut pm = a + n / 2;
        if n > 7 {
            let mut pl = a;
            let mut pn = a + n - 1;
            if n > 40 {
                let d = n / 8;
                pl = med3(v, pl, pl + d, pl + 2 * d, cmp);
                pm = med3(v, pm - d, pm, pm + d, cmp);
                pn = med3(v, pn - 2 * d, pn - d, pn, cmp);
            }
            pm = med3(v, pl, pm, pn, cmp);
        }
        v.swap(a, pm);
        let (mut pa, mut pb) = (a + 1, a + 1);
        let (mut pc, mut pd) = (a + n - 1, a + n - 1);
        loop {
            while pb <= pc {
                let c = cmp(&v[pb], &v[a]);
                if c == Ordering::Greater {
                    break;
                }
                if c == Ordering::Equal {
                    v.swap(pa, pb);
                    pa += 1;
                }
                pb += 1;
            }
            while pb <= pc {
                let c = cmp(&v[pc], &v[a]);
                if c == Ordering::Less {
                    break;
                }
                if c == Ordering::Equal {
                    v.swap(pc, pd);
                    pd -= 1;
                }
                pc -= 1;
            }
            if pb > pc {
                break;
            }
            v.swap(pb, pc);
            pb += 1;
            pc -= 1;
        }
        let pn = a + n;
        let r = (pa - a).min(pb - pa);
        vecswap(v, a, pb - r, r);
        let r = (pd - pc).min(pn - pd - 1);
        vecswap(v, pb, pn - r, r);
        let r = pb - pa;
        if r > 1 && !outside(a, r, range) {
            partial_sort(v, a, r, cmp, range);
        }
        let r = pd - pc;
        if r > 1 {
            // The upper part iterates instead of recursing, as in C.
            a = pn - r;
            n = r;
            if !outside(a, n, range) {
                continue;
            }
        }
        return;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wanted_places_end_up_sorted() {
        let mut seed = 7u64;
        for len in [1usize, 5, 7, 8, 30, 41, 100, 500] {
            let mut v: Vec<u32> = (0..len)
                .map(|_| {
                    seed = seed
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    (seed >> 40) as u32 % 50
                })
                .collect();
            let mut sorted = v.clone();
            sorted.sort();
            let upto = len.min(10) - 1;
            pqsort(&mut v, &|a: &u32, b: &u32| a.cmp(b), 0, upto);
            assert_eq!(v[..=upto], sorted[..=upto], "len {len}");
        }
    }

    #[test]
    fn ties_come_out_in_redis_order() {
        // GEORADIUS over f, e, d, c, b, a at one spot and z further away, COUNT 3: Redis 7.0
        // answers d b c (its pqsort over the members in scan order a b c d e f z).
        let mut v = vec![
            (0, 'a'),
            (0, 'b'),
            (0, 'c'),
            (0, 'd'),
            (0, 'e'),
            (0, 'f'),
            (1, 'z'),
        ];
        pqsort(
            &mut v,
            &|x: &(i32, char), y: &(i32, char)| x.0.cmp(&y.0),
            0,
            2,
        );
        let names: String = v[..3].iter().map(|p| p.1).collect();
        assert_eq!(names, "dbc");
        // Members in scan order a b c (one spot) then farther ones, already ascending, COUNT
        // 3: Redis 7.0 answers a b c (with an insertion-sort switch it would be b c a).
        let mut v = vec![
            (0, 'a'),
            (0, 'b'),
            (0, 'c'),
            (12, 'd'),
            (59, 'e'),
            (68, 'f'),
            (96, 'g'),
        ];
        pqsort(
            &mut v,
            &|x: &(i32, char), y: &(i32, char)| x.0.cmp(&y.0),
            0,
            2,
        );
        let names: String = v[..3].iter().map(|p| p.1).collect();
        assert_eq!(names, "abc");
    }
}
