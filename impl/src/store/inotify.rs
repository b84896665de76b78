//! The file-system store's change hint ([`super::ChangeHint`]): an inotify watch on the directory
//! that holds a journal's entries. A create (`link` into the directory), a delete or a rename
//! there wakes the waiter at once, instead of at its next poll.
//!
//! The hint is an optimisation only: whatever goes wrong with it (no `/proc`, the inotify limits
//! reached, the directory removed) ends in a late wake, never a wrong one, because the waiter
//! re-reads the journal after every wake and polls as before. (A queue overflow is not even a
//! loss: `IN_Q_OVERFLOW` wakes the waiter too.)
//!
//! Each wait costs one inotify instance and one blocking thread for at most one poll interval
//! (`poll_max`, 500 ms by default), and one more blocking thread to close the instance (a close
//! waits in the kernel, see `Drop`). A process with more waiters than the per-user instance limit
//! (128 by default) has the rest poll. One shared instance per store, read through the runtime's
//! reactor, is the better design and is left for issue 15.

use std::mem::MaybeUninit;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Arc;
use std::time::Duration;

use rustix::event::{PollFd, PollFlags};
use rustix::fs::inotify::{self, CreateFlags, WatchFlags};

/// A watch on one directory. Dropping it closes the inotify descriptor (and its watch).
pub(super) struct DirHint {
    inotify: Arc<OwnedFd>,
}

impl DirHint {
    /// Watches `dir`, an open directory (opened without following symlinks, so the watch is on
    /// the store's own directory whatever its name now points at). `None` if the kernel refuses
    /// (no `/proc`, or the per-user watch limit reached): the caller polls instead.
    pub(super) fn new(dir: &OwnedFd) -> Option<DirHint> {
        let inotify = inotify::init(CreateFlags::CLOEXEC | CreateFlags::NONBLOCK).ok()?;
        // The descriptor's path in /proc names this very directory, not a path to re-resolve.
        let path = format!("/proc/self/fd/{}", dir.as_raw_fd());
        let events = WatchFlags::CREATE
            | WatchFlags::MOVED_TO
            | WatchFlags::DELETE
            | WatchFlags::DELETE_SELF
            | WatchFlags::MOVE_SELF
            | WatchFlags::ONLYDIR;

        inotify::add_watch(&inotify, path, events).ok()?;
        Some(DirHint {
            inotify: Arc::new(inotify),
        })
    }
}

impl Drop for DirHint {
    fn drop(&mut self) {
        // Closing an inotify instance is slow: the kernel tears its group down only after a
        // grace period (`fsnotify_destroy_group` waits in `synchronize_srcu`), 10-20 ms measured
        // here. Closed on the waiter's task, that wait came between seeing the release and taking
        // the lock, in every hand-off, and blocked a runtime thread meanwhile (issue 15, goal 2).
        // So the last handle is closed on a blocking thread; outside a runtime, here.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let inotify = Arc::clone(&self.inotify);
            runtime.spawn_blocking(move || drop(inotify));
        }
    }
}

#[async_trait::async_trait]
impl super::ChangeHint for DirHint {
    async fn changed(&mut self, limit: Duration) {
        let inotify = Arc::clone(&self.inotify);
        // A blocking `poll` on a worker thread: if the waiter is cancelled, the thread still ends
        // by `limit` (at most the waiter's longest poll interval).
        let _ = tokio::task::spawn_blocking(move || {
            let timeout = rustix::time::Timespec::try_from(limit).ok();
            let mut fds = [PollFd::new(&*inotify, PollFlags::IN)];
            let _ = rustix::event::poll(&mut fds, timeout.as_ref());
            // Drain what arrived, so that the next call waits for news after this one. An event
            // drained here is not lost: the caller re-reads the journal after we return.
            let mut buffer = [MaybeUninit::<u8>::uninit(); 4096];
            let mut reader = inotify::Reader::new(&*inotify, &mut buffer);
            while reader.next().is_ok() {}
        })
        .await;
    }
}
