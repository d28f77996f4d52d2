//! fdatasync of a log file without blocking the event loop. Two back-ends with the same
//! guarantee (every write made before the call is durable when the future resolves):
//! - io_uring: the fdatasync is submitted to a ring whose completions are noticed through an
//!   eventfd registered with the caller's tokio runtime;
//! - a portable thread doing fdatasync, for kernels that refuse io_uring.
//!
//! Writes themselves are plain pwrites by the caller: measured, io_uring writes of the same
//! batches were no faster, and waiting for their completions cost a pass over the event loop.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;
use std::sync::mpsc;

use io_uring::{opcode, squeue, types, IoUring};
use tokio::io::unix::AsyncFd;
use tokio::sync::oneshot;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Uring,
    Thread,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Backend::Uring => "io_uring",
            Backend::Thread => "thread",
        }
    }
}

/// Opens (creating if needed) a log file for appending at its current end.
pub fn open_append(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .create(true)
        .read(true)
        .write(true)
        .truncate(false)
        .open(path)
}

pub enum Syncer {
    Uring(Box<UringSyncer>),
    Thread(ThreadSyncer),
}

impl Syncer {
    /// A syncer for `file`. With `Backend::Uring` this must run inside the tokio runtime that
    /// will await it; if the kernel refuses io_uring, the error says so and the caller falls
    /// back to `Backend::Thread`.
    pub fn new(file: File, backend: Backend) -> io::Result<Syncer> {
        Ok(match backend {
            Backend::Uring => Syncer::Uring(Box::new(UringSyncer::new(file)?)),
            Backend::Thread => Syncer::Thread(ThreadSyncer::new(file)),
        })
    }

    pub fn backend(&self) -> Backend {
        match self {
            Syncer::Uring(_) => Backend::Uring,
            Syncer::Thread(_) => Backend::Thread,
        }
    }

    pub async fn sync(&mut self) -> io::Result<()> {
        match self {
            Syncer::Uring(u) => u.sync().await,
            Syncer::Thread(t) => t.sync().await,
        }
    }
}

pub struct UringSyncer {
    ring: IoUring,
    file: File,
    event: AsyncFd<OwnedFd>,
}

impl UringSyncer {
    fn new(file: File) -> io::Result<UringSyncer> {
        let ring = IoUring::new(8)?;
        // SAFETY: eventfd returns a new descriptor that we own, or -1.
        let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fd is a fresh descriptor owned by nobody else.
        let event = unsafe { OwnedFd::from_raw_fd(fd) };
        ring.submitter().register_eventfd(event.as_raw_fd())?;
        // SAFETY: `event` is an open descriptor owned by the AsyncFd for its whole life.
        let event = unsafe { AsyncFd::register(event) }.map_err(io::Error::from)?;
        Ok(UringSyncer { ring, file, event })
    }

    async fn sync(&mut self) -> io::Result<()> {
        let entry = opcode::Fsync::new(types::Fd(self.file.as_raw_fd()))
            .flags(types::FsyncFlags::DATASYNC)
            .build();
        let res = self.submit_and_wait(entry).await?;
        if res < 0 {
            return Err(io::Error::from_raw_os_error(-res));
        }
        Ok(())
    }

    /// Submits `entry` and waits, without blocking the thread, until it has completed.
    async fn submit_and_wait(&mut self, entry: squeue::Entry) -> io::Result<i32> {
        // SAFETY: the entry refers only to our open file descriptor.
        unsafe { self.ring.submission().push(&entry) }
            .map_err(|_| io::Error::other("io_uring queue full"))?;
        self.ring.submit()?;
        loop {
            if let Some(cqe) = self.ring.completion().next() {
                return Ok(cqe.result());
            }
            let mut ready = self.event.readable().await?;
            let mut counter = [0u8; 8];
            // SAFETY: reading 8 bytes from our own non-blocking eventfd into a local buffer.
            let n = unsafe {
                libc::read(
                    self.event.get_ref().as_raw_fd(),
                    counter.as_mut_ptr().cast(),
                    8,
                )
            };
            if n < 0 {
                ready.clear_ready();
            }
        }
    }
}

type Done = oneshot::Sender<io::Result<()>>;

pub struct ThreadSyncer {
    jobs: mpsc::Sender<Done>,
}

impl ThreadSyncer {
    fn new(file: File) -> ThreadSyncer {
        let (jobs, rx) = mpsc::channel::<Done>();
        std::thread::Builder::new()
            .name("wal-syncer".into())
            .spawn(move || {
                for reply in rx {
                    let _ = reply.send(file.sync_data());
                }
            })
            .expect("spawning the log syncer thread");
        ThreadSyncer { jobs }
    }

    async fn sync(&mut self) -> io::Result<()> {
        let (tx, rx) = oneshot::channel();
        if self.jobs.send(tx).is_err() {
            return Err(io::Error::other("log syncer thread is gone"));
        }
        rx.await
            .unwrap_or_else(|_| Err(io::Error::other("log syncer thread is gone")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn both_backends_sync() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            for backend in [Backend::Thread, Backend::Uring] {
                let path = std::env::temp_dir().join(format!(
                    "warp-wal-{}-{}",
                    std::process::id(),
                    backend.name()
                ));
                let mut file = open_append(&path).unwrap();
                file.write_all(b"hello").unwrap();
                match Syncer::new(file, backend) {
                    Ok(mut s) => {
                        assert_eq!(s.backend(), backend);
                        s.sync().await.unwrap();
                    }
                    Err(e) if backend == Backend::Uring => {
                        eprintln!("io_uring refused here ({e}); only the thread syncer was tested")
                    }
                    Err(e) => panic!("{e}"),
                }
                assert_eq!(std::fs::read(&path).unwrap(), b"hello");
                std::fs::remove_file(&path).unwrap();
            }
        });
    }
}
