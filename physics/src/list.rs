//! An intrusive doubly linked list of slots in a slab, with O(1) push, unlink and lookup by id:
//! the queues the FIFO-based policies are made of.

use std::collections::HashMap;

use ahash::RandomState;

pub const NIL: u32 = u32::MAX;

#[derive(Clone, Debug)]
pub struct Node<T> {
    pub id: u64,
    pub data: T,
    prev: u32,
    next: u32,
}

/// Nodes of several lists share one slab; each list keeps its own head (newest) and tail
/// (oldest).
#[derive(Debug)]
pub struct Slab<T> {
    nodes: Vec<Node<T>>,
    free: Vec<u32>,
    pub index: HashMap<u64, u32, RandomState>,
}

#[derive(Clone, Copy, Debug)]
pub struct List {
    pub head: u32,
    pub tail: u32,
    pub len: usize,
}

impl Default for List {
    fn default() -> List {
        List {
            head: NIL,
            tail: NIL,
            len: 0,
        }
    }
}

impl<T> Default for Slab<T> {
    fn default() -> Slab<T> {
        Slab {
            nodes: Vec::new(),
            free: Vec::new(),
            index: HashMap::default(),
        }
    }
}

impl<T> Slab<T> {
    pub fn node(&self, i: u32) -> &Node<T> {
        &self.nodes[i as usize]
    }

    pub fn node_mut(&mut self, i: u32) -> &mut Node<T> {
        &mut self.nodes[i as usize]
    }

    pub fn get(&self, id: u64) -> Option<u32> {
        self.index.get(&id).copied()
    }

    /// A new node for `id` at the head (newest end) of `list`.
    pub fn push_head(&mut self, list: &mut List, id: u64, data: T) -> u32 {
        let node = Node {
            id,
            data,
            prev: NIL,
            next: list.head,
        };
        let i = match self.free.pop() {
            Some(i) => {
                self.nodes[i as usize] = node;
                i
            }
            None => {
                self.nodes.push(node);
                (self.nodes.len() - 1) as u32
            }
        };
        self.link_head(list, i);
        self.index.insert(id, i);
        i
    }

    /// Puts an unlinked node back at the head of `list`.
    pub fn link_head(&mut self, list: &mut List, i: u32) {
        let old = list.head;
        {
            let n = &mut self.nodes[i as usize];
            n.prev = NIL;
            n.next = old;
        }
        if old != NIL {
            self.nodes[old as usize].prev = i;
        } else {
            list.tail = i;
        }
        list.head = i;
        list.len += 1;
    }

    /// Takes node `i` out of `list` (it stays allocated).
    pub fn unlink(&mut self, list: &mut List, i: u32) {
        let (prev, next) = {
            let n = &self.nodes[i as usize];
            (n.prev, n.next)
        };
        if prev != NIL {
            self.nodes[prev as usize].next = next;
        } else {
            list.head = next;
        }
        if next != NIL {
            self.nodes[next as usize].prev = prev;
        } else {
            list.tail = prev;
        }
        list.len -= 1;
    }

    /// Unlinks and frees node `i`; returns its id.
    pub fn remove(&mut self, list: &mut List, i: u32) -> u64 {
        self.unlink(list, i);
        let id = self.nodes[i as usize].id;
        self.index.remove(&id);
        self.free.push(i);
        id
    }

    /// The node towards the head from `i` (newer), or NIL.
    pub fn newer(&self, i: u32) -> u32 {
        self.nodes[i as usize].prev
    }
}
