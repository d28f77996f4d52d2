//! A vector that grows by adding chunks (each twice the one before), never by moving what it
//! holds. A doubling `Vec` copies everything at each growth (tens of MB in one command, for a
//! large keyspace) and frees the old copy, which the allocator keeps resident for a while; here
//! growth allocates untouched room, and nothing moves.

/// Elements in the first chunk.
const FIRST: usize = 64;

pub struct ChunkedVec<T> {
    /// Chunk `k` holds positions `FIRST * (2^k - 1)` onwards, `FIRST << k` of them.
    chunks: Vec<Vec<T>>,
    len: usize,
}

impl<T> Default for ChunkedVec<T> {
    fn default() -> Self {
        ChunkedVec {
            chunks: Vec::new(),
            len: 0,
        }
    }
}

/// The chunk holding position `i`, and the offset in it.
fn locate(i: usize) -> (usize, usize) {
    let k = (i / FIRST + 1).ilog2() as usize;
    (k, i - FIRST * ((1 << k) - 1))
}

impl<T> ChunkedVec<T> {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Positions allocated, filled or not.
    pub fn capacity(&self) -> usize {
        self.chunks.iter().map(Vec::capacity).sum()
    }

    pub fn get(&self, i: usize) -> Option<&T> {
        if i >= self.len {
            return None;
        }
        let (k, at) = locate(i);
        self.chunks[k].get(at)
    }

    pub fn get_mut(&mut self, i: usize) -> Option<&mut T> {
        if i >= self.len {
            return None;
        }
        let (k, at) = locate(i);
        self.chunks[k].get_mut(at)
    }

    pub fn push(&mut self, value: T) {
        let (k, _) = locate(self.len);
        if k == self.chunks.len() {
            self.chunks.push(Vec::with_capacity(FIRST << k));
        }
        self.chunks[k].push(value);
        self.len += 1;
    }

    pub fn pop(&mut self) -> Option<T> {
        let last = self.len.checked_sub(1)?;
        let (k, _) = locate(last);
        let value = self.chunks[k].pop();
        self.len = last;
        // Keep one empty chunk past the last used one, so that a size going back and forth
        // across a chunk boundary does not allocate and free a chunk each time.
        let (in_use, _) = locate(self.len);
        self.chunks.truncate(in_use + 2);
        value
    }

    /// Removes position `i`; the last element takes its place.
    pub fn swap_remove(&mut self, i: usize) -> T {
        assert!(i < self.len, "swap_remove at {i} of {}", self.len);
        let last = self.pop().expect("not empty");
        if i == self.len {
            return last;
        }
        std::mem::replace(self.get_mut(i).expect("below len"), last)
    }

    pub fn iter(&self) -> impl Iterator<Item = &T> {
        self.chunks.iter().flatten()
    }
}

impl<T> std::ops::Index<usize> for ChunkedVec<T> {
    type Output = T;

    fn index(&self, i: usize) -> &T {
        self.get(i).expect("position below len")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_map_to_chunks_of_doubling_size() {
        assert_eq!(locate(0), (0, 0));
        assert_eq!(locate(FIRST - 1), (0, FIRST - 1));
        assert_eq!(locate(FIRST), (1, 0));
        assert_eq!(locate(3 * FIRST - 1), (1, 2 * FIRST - 1));
        assert_eq!(locate(3 * FIRST), (2, 0));
        assert_eq!(locate(7 * FIRST), (3, 0));
    }

    #[test]
    fn behaves_as_a_vec_through_pushes_pops_and_swap_removes() {
        let mut c = ChunkedVec::default();
        let mut v = Vec::new();
        let mut seed = 11u64;
        for step in 0..50_000u32 {
            crate::next_test_random(&mut seed);
            match (seed >> 40) % 4 {
                0 if !v.is_empty() => {
                    let i = (seed >> 8) as usize % v.len();
                    assert_eq!(c.swap_remove(i), v.swap_remove(i));
                }
                1 => assert_eq!(c.pop(), v.pop()),
                _ => {
                    c.push(step);
                    v.push(step);
                }
            }
            assert_eq!(c.len(), v.len());
        }
        assert!(c.iter().eq(v.iter()));
        for (i, x) in v.iter().enumerate() {
            assert_eq!(c.get(i), Some(x));
        }
        assert_eq!(c.get(v.len()), None);
        assert!(c.capacity() >= c.len() && c.capacity() <= 4 * c.len() + 3 * FIRST);
        while c.pop().is_some() {}
        assert!(c.capacity() <= 3 * FIRST, "shrunk back: {}", c.capacity());
    }
}
