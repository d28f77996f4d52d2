//! Appending to a log file without blocking the event loop. Two back-ends with the same
//! guarantee (a write has completed, and with `sync` it is covered by fdatasync, before the
//! future resolves):
//! - io_uring: one write per call, with the fdatasync linked behind it (group commit), and
//!   completions noticed through an eventfd registered with the caller's tokio runtime;
//! - a portable writer thread doing pwrite + fdatasync, for kernels that refuse io_uring.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::FileExt;
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

pub struct Writer {
    offset: u64,
    inner: Inner,
}

enum Inner {
    Uring(Box<UringWriter>),
    Thread(ThreadWriter),
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

impl Writer {
    /// A writer appending to `file`. With `Backend::Uring` this must run inside the tokio
    /// runtime that will await its writes; if the kernel refuses io_uring, the error says so
    /// and the caller falls back to `Backend::Thread`.
    pub fn new(file: File, backend: Backend) -> io::Result<Writer> {
        let offset = file.metadata()?.len();
        let inner = match backend {
            Backend::Uring => Inner::Uring(Box::new(UringWriter::new(file)?)),
            Backend::Thread => Inner::Thread(ThreadWriter::new(file)),
        };
        Ok(Writer { offset, inner })
    }

    pub fn backend(&self) -> Backend {
        match self.inner {
            Inner::Uring(_) => Backend::Uring,
            Inner::Thread(_) => Backend::Thread,
        }
    }

    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Appends `buf` (and fdatasyncs when `sync`); hands the buffer back for reuse. On error
    /// the file's end is unknown: the caller must stop writing to it.
    pub async fn append(&mut self, buf: Vec<u8>, sync: bool) -> (Vec<u8>, io::Result<()>) {
        let offset = self.offset;
        let len = buf.len() as u64;
        let (buf, res) = match &mut self.inner {
            Inner::Uring(u) => u.write(buf, offset, sync).await,
            Inner::Thread(t) => t.run(Job::Write { buf, offset, sync }).await,
        };
        if res.is_ok() {
            self.offset += len;
        }
        (buf, res)
    }

    pub async fn sync(&mut self) -> io::Result<()> {
        match &mut self.inner {
            Inner::Uring(u) => u.sync().await,
            Inner::Thread(t) => t.run(Job::Sync).await.1,
        }
    }
}

struct UringWriter {
    ring: IoUring,
    file: File,
    event: AsyncFd<OwnedFd>,
}

const WRITE_TAG: u64 = 1;
const SYNC_TAG: u64 = 2;

impl UringWriter {
    fn new(file: File) -> io::Result<UringWriter> {
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
        Ok(UringWriter { ring, file, event })
    }

    async fn write(&mut self, buf: Vec<u8>, offset: u64, sync: bool) -> (Vec<u8>, io::Result<()>) {
        let mut done = 0usize;
        while done < buf.len() {
            let rest = &buf[done..];
            let write = opcode::Write::new(
                types::Fd(self.file.as_raw_fd()),
                rest.as_ptr(),
                rest.len() as u32,
            )
            .offset(offset + done as u64)
            .build()
            .user_data(WRITE_TAG);
            // The fdatasync is linked behind the write: one submission, one wait.
            let link = sync && rest.len() <= u32::MAX as usize;
            let write = if link {
                write.flags(squeue::Flags::IO_LINK)
            } else {
                write
            };
            let mut entries = vec![write];
            if link {
                entries.push(self.fsync_entry());
            }
            // The buffer stays alive and unmoved until every entry above has completed:
            // `complete` does not return before that.
            let results = match self.submit_and_wait(&entries).await {
                Ok(r) => r,
                Err(e) => return (buf, Err(e)),
            };
            let written = results[0];
            if written < 0 {
                return (buf, Err(io::Error::from_raw_os_error(-written)));
            }
            if written == 0 {
                return (
                    buf,
                    Err(io::Error::new(
                        io::ErrorKind::WriteZero,
                        "log write wrote nothing",
                    )),
                );
            }
            done += written as usize;
            if done == buf.len() && link {
                // A short write cancels the linked fdatasync (-ECANCELED); then the loop's end
                // syncs separately.
                if results[1] >= 0 {
                    return (buf, Ok(()));
                }
                if results[1] != -libc::ECANCELED {
                    return (buf, Err(io::Error::from_raw_os_error(-results[1])));
                }
            }
        }
        if sync {
            if let Err(e) = self.sync().await {
                return (buf, Err(e));
            }
        }
        (buf, Ok(()))
    }

    fn fsync_entry(&self) -> squeue::Entry {
        opcode::Fsync::new(types::Fd(self.file.as_raw_fd()))
            .flags(types::FsyncFlags::DATASYNC)
            .build()
            .user_data(SYNC_TAG)
    }

    async fn sync(&mut self) -> io::Result<()> {
        let entry = self.fsync_entry();
        let res = self.submit_and_wait(&[entry]).await?;
        if res[0] < 0 {
            return Err(io::Error::from_raw_os_error(-res[0]));
        }
        Ok(())
    }

    /// Submits `entries` and waits, without blocking the thread, until each has completed;
    /// returns their results in the same order.
    async fn submit_and_wait(&mut self, entries: &[squeue::Entry]) -> io::Result<Vec<i32>> {
        {
            let mut sq = self.ring.submission();
            for e in entries {
                // SAFETY: the buffers the entries point to outlive their completion (the
                // caller awaits this function before touching them).
                unsafe { sq.push(e) }.map_err(|_| io::Error::other("io_uring queue full"))?;
            }
        }
        self.ring.submit()?;
        let mut results = vec![None; entries.len()];
        let mut pending = entries.len();
        loop {
            for cqe in self.ring.completion() {
                let i = match cqe.user_data() {
                    WRITE_TAG => 0,
                    _ => entries.len() - 1,
                };
                if results[i].is_none() {
                    pending -= 1;
                }
                results[i] = Some(cqe.result());
            }
            if pending == 0 {
                return Ok(results.into_iter().map(|r| r.unwrap_or(0)).collect());
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

enum Job {
    Write {
        buf: Vec<u8>,
        offset: u64,
        sync: bool,
    },
    Sync,
}

type Done = oneshot::Sender<(Vec<u8>, io::Result<()>)>;

struct ThreadWriter {
    jobs: mpsc::Sender<(Job, Done)>,
}

impl ThreadWriter {
    fn new(file: File) -> ThreadWriter {
        let (jobs, rx) = mpsc::channel::<(Job, Done)>();
        std::thread::Builder::new()
            .name("wal-writer".into())
            .spawn(move || {
                for (job, reply) in rx {
                    let out = match job {
                        Job::Write { buf, offset, sync } => {
                            let mut res = file.write_all_at(&buf, offset);
                            if res.is_ok() && sync {
                                res = file.sync_data();
                            }
                            (buf, res)
                        }
                        Job::Sync => (Vec::new(), file.sync_data()),
                    };
                    let _ = reply.send(out);
                }
            })
            .expect("spawning the log writer thread");
        ThreadWriter { jobs }
    }

    async fn run(&mut self, job: Job) -> (Vec<u8>, io::Result<()>) {
        let (tx, rx) = oneshot::channel();
        if self.jobs.send((job, tx)).is_err() {
            return (
                Vec::new(),
                Err(io::Error::other("log writer thread is gone")),
            );
        }
        rx.await.unwrap_or_else(|_| {
            (
                Vec::new(),
                Err(io::Error::other("log writer thread is gone")),
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_path(name: &str) -> std::path::PathBuf {
        std::env::temp_dir().join(format!("warp-wal-{}-{name}", std::process::id()))
    }

    async fn append_and_read(backend: Backend) -> Option<Vec<u8>> {
        let path = temp_path(backend.name());
        let _ = std::fs::remove_file(&path);
        let mut w = match Writer::new(open_append(&path).unwrap(), backend) {
            Ok(w) => w,
            Err(_) if backend == Backend::Uring => return None,
            Err(e) => panic!("{e}"),
        };
        let (buf, r) = w.append(b"hello ".to_vec(), false).await;
        r.unwrap();
        assert_eq!(buf, b"hello ");
        let (_, r) = w.append(b"world".to_vec(), true).await;
        r.unwrap();
        w.sync().await.unwrap();
        assert_eq!(w.offset(), 11);
        let data = std::fs::read(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        Some(data)
    }

    #[test]
    fn both_backends_append_in_order() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            assert_eq!(
                append_and_read(Backend::Thread).await.unwrap(),
                b"hello world"
            );
            match append_and_read(Backend::Uring).await {
                Some(data) => assert_eq!(data, b"hello world"),
                None => eprintln!("io_uring refused here; only the thread writer was tested"),
            }
        });
    }
}
