//! The message fabric between workers. A connection sends every command of one pipeline read
//! that belongs to another worker's shard as one batch through a lock-free queue; the owner
//! runs the batch on its shard and sends it back, replies filled in, through the reverse queue.
//!
//! Wake-ups are the expensive part (an eventfd write each), so a worker is only woken when it
//! has announced it is about to sleep; otherwise it picks messages up on its next socket read
//! or before it parks.

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use crossbeam_queue::ArrayQueue;

use crate::protocol::Reply;

/// Messages one worker may have in flight to another before senders fall back to running
/// the batch themselves under the shard's lock.
const QUEUE_CAPACITY: usize = 4096;

pub struct BatchItem {
    pub spec: usize,
    pub db: usize,
    pub args: Vec<Bytes>,
}

impl BatchItem {
    /// Whether this command names `key` of database `db` among its keys.
    pub fn names(&self, db: usize, key: &[u8]) -> bool {
        let spec = &crate::command_table::TABLE[self.spec];
        self.db == db
            && match spec.keys {
                crate::command_table::Keys::Range(1, 1, _) => self.args[1] == key,
                _ => spec
                    .key_positions(&self.args)
                    .iter()
                    .any(|&p| self.args[p] == key),
            }
    }
}

/// A batch of commands for one shard, reused by its connection from one pipeline to the next.
pub struct RemoteBatch {
    pub origin: usize,
    pub token: usize,
    pub caller: crate::keyctx::Caller,
    pub items: Vec<BatchItem>,
    /// Position of each item's reply in the connection's reply list.
    pub slots: Vec<usize>,
    pub replies: Vec<Reply>,
    /// Items whose keys a pin moved to another shard before they ran (see WORMHOLE).
    pub misrouted: Vec<usize>,
    /// When the batch left its origin, for the hop latency WORMHOLE STATS reports.
    pub sent_at: Option<crate::command_timing::Moment>,
    /// The WORMHOLE epoch its items were routed under.
    pub route_epoch: u64,
}

impl RemoteBatch {
    pub fn new(origin: usize) -> Box<RemoteBatch> {
        Box::new(RemoteBatch {
            origin,
            token: 0,
            caller: Default::default(),
            items: Vec::new(),
            slots: Vec::new(),
            replies: Vec::new(),
            misrouted: Vec::new(),
            sent_at: None,
            route_epoch: 0,
        })
    }

    pub fn clear(&mut self) {
        self.items.clear();
        self.slots.clear();
        self.replies.clear();
        self.misrouted.clear();
        self.sent_at = None;
        if self.items.capacity() > KEPT_ROOM {
            self.items.shrink_to(KEPT_ROOM);
            self.slots.shrink_to(KEPT_ROOM);
            self.replies.shrink_to(KEPT_ROOM);
        }
    }
}

/// The room for commands a batch (and a pipeline's per-read lists) keeps between uses. Each
/// connection keeps a batch per worker, which grows to its largest pipeline: without a bound a
/// burst of a few hundred commands would hold ~80 bytes a command per batch for good, memory
/// that `maxmemory` counts (at a 600 KB budget, one client's 256-command pipelines cost 5% of
/// the keys). Pipelines of up to this many commands reuse their room; longer ones allocate it
/// per read, which is small beside their commands' own work.
pub const KEPT_ROOM: usize = 64;

pub enum Envelope {
    Request(Box<RemoteBatch>),
    Done(Box<RemoteBatch>),
}

pub struct Link {
    /// `inbox[src]`: messages from worker `src` to this worker.
    inbox: Vec<ArrayQueue<Envelope>>,
    /// Set by the worker just before it parks; a sender that finds it set wakes the worker.
    sleeping: AtomicBool,
    pub notify: tokio::sync::Notify,
}

pub struct Fabric {
    links: Vec<Link>,
}

impl Fabric {
    pub fn new(workers: usize) -> Fabric {
        Fabric {
            links: (0..workers)
                .map(|_| Link {
                    inbox: (0..workers)
                        .map(|_| ArrayQueue::new(QUEUE_CAPACITY))
                        .collect(),
                    sleeping: AtomicBool::new(false),
                    notify: tokio::sync::Notify::new(),
                })
                .collect(),
        }
    }

    pub fn link(&self, worker: usize) -> &Link {
        &self.links[worker]
    }

    /// Queues `env` for worker `to`; gives it back when the queue is full.
    pub fn send(&self, from: usize, to: usize, env: Envelope) -> Result<(), Envelope> {
        let link = &self.links[to];
        link.inbox[from].push(env)?;
        if link.sleeping.load(Ordering::SeqCst) && link.sleeping.swap(false, Ordering::SeqCst) {
            link.notify.notify_one();
        }
        Ok(())
    }

    /// Called by a worker just before it parks: after this, senders wake it.
    pub fn announce_sleep(&self, me: usize) {
        self.links[me].sleeping.store(true, Ordering::SeqCst);
    }

    pub fn is_sleeping(&self, worker: usize) -> bool {
        self.links[worker].sleeping.load(Ordering::Relaxed)
    }

    pub fn has_pending(&self, me: usize) -> bool {
        self.links[me].inbox.iter().any(|q| !q.is_empty())
    }

    /// Pops every message waiting for `me`.
    pub fn pop_all(&self, me: usize, mut f: impl FnMut(usize, Envelope)) {
        for (src, q) in self.links[me].inbox.iter().enumerate() {
            while let Some(env) = q.pop() {
                f(src, env);
            }
        }
    }
}

struct Waiter {
    done: Option<Box<RemoteBatch>>,
    waker: Option<Waker>,
    in_use: bool,
}

#[derive(Default)]
struct Waiters {
    slots: Vec<Waiter>,
    free: Vec<usize>,
}

thread_local! {
    static WAITERS: RefCell<Waiters> = RefCell::new(Waiters::default());
    /// Replies that found the origin's queue full; retried on the next drain.
    static OVERFLOW: RefCell<Vec<(usize, Envelope)>> = const { RefCell::new(Vec::new()) };
}

/// Reserves a slot for a batch's returning reply on this worker.
pub fn reserve_waiter() -> usize {
    WAITERS.with(|w| {
        let mut w = w.borrow_mut();
        if let Some(i) = w.free.pop() {
            w.slots[i].in_use = true;
            i
        } else {
            w.slots.push(Waiter {
                done: None,
                waker: None,
                in_use: true,
            });
            w.slots.len() - 1
        }
    })
}

/// Hands a returned batch to the task waiting for it (same thread: no cross-core wake).
pub fn complete(batch: Box<RemoteBatch>) {
    WAITERS.with(|w| {
        let mut w = w.borrow_mut();
        let slot = &mut w.slots[batch.token];
        debug_assert!(slot.in_use);
        slot.done = Some(batch);
        if let Some(waker) = slot.waker.take() {
            waker.wake();
        }
    })
}

/// Resolves to the batch with replies once its owner has run it.
pub struct AwaitBatch {
    pub token: usize,
}

impl Future for AwaitBatch {
    type Output = Box<RemoteBatch>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let token = self.token;
        WAITERS.with(|w| {
            let mut w = w.borrow_mut();
            let slot = &mut w.slots[token];
            if let Some(batch) = slot.done.take() {
                slot.in_use = false;
                slot.waker = None;
                w.free.push(token);
                Poll::Ready(batch)
            } else {
                slot.waker = Some(cx.waker().clone());
                Poll::Pending
            }
        })
    }
}

pub fn push_overflow(to: usize, env: Envelope) {
    OVERFLOW.with(|o| o.borrow_mut().push((to, env)));
}

pub fn take_overflow() -> Vec<(usize, Envelope)> {
    OVERFLOW.with(|o| std::mem::take(&mut *o.borrow_mut()))
}

/// Gives back a slot reserved for a batch that was never sent.
pub fn release_waiter(token: usize) {
    WAITERS.with(|w| {
        let mut w = w.borrow_mut();
        w.slots[token].in_use = false;
        w.free.push(token);
    })
}
