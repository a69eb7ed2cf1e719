//! Cluster mode: the connections this node hands to other nodes are relayed on one thread
//! of its own, the link thread.
//!
//! Relaying a handed-over connection takes three tasks on the entry node: the client's
//! connection, its stream on the connection shared with the owner, and the task driving that
//! shared connection. Each step wakes the next, and on the server's runtime of several
//! workers a task woken while its worker is busy is taken by another worker, woken for it: at
//! low load most of what a relayed request cost was the workers waking each other (5.2 context
//! switches per request; 2.3 on one thread, `benches/cluster.sh`). On one thread these tasks
//! run one after another with nothing to steal them, and a relay's work (copying bytes) is
//! light enough for one thread to carry a node's (about 12 µs a request: some 80,000 a
//! second). What the owner serves of the connections handed to it stays on the server's
//! workers, as its own clients' requests do: served on one thread, they were limited to what
//! that thread could parse and answer (29,000 requests a second against 37,000).
//!
//! The thread runs a current-thread runtime until its [`LinkThread`] is dropped, which ends
//! it, cancelling what is left on it (the server drops it once every connection has ended).

use std::io;
use std::thread::JoinHandle;

use tokio::runtime::Handle;
use tokio::sync::oneshot;

/// The link thread; dropped, it ends.
pub struct LinkThread {
    handle: Handle,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl LinkThread {
    /// Starts the thread (`ynni-link`) and its runtime.
    pub fn start() -> io::Result<Self> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let handle = runtime.handle().clone();
        let (stop, stopped) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("ynni-link".into())
            .spawn(move || {
                // Ends when told to, or when the sender is gone.
                let _ = runtime.block_on(stopped);
            })?;
        Ok(Self {
            handle,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// Where to spawn the link's tasks.
    pub fn handle(&self) -> &Handle {
        &self.handle
    }
}

impl Drop for LinkThread {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        // Joined only off the runtimes' threads: a runtime's worker must not block.
        if let Some(thread) = self.thread.take()
            && Handle::try_current().is_err()
        {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_what_it_is_given_on_its_own_thread_and_ends_when_dropped() {
        let link = LinkThread::start().expect("start");
        let (tx, rx) = std::sync::mpsc::channel();
        link.handle().spawn(async move {
            let name = std::thread::current().name().map(str::to_string);
            let _ = tx.send(name);
        });
        let name = rx
            .recv_timeout(std::time::Duration::from_secs(5))
            .expect("ran");
        assert_eq!(name.as_deref(), Some("ynni-link"));
        let handle = link.handle().clone();
        drop(link);
        // The runtime is gone: what is spawned now never runs.
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        handle.spawn(async move {
            let _ = tx.send(());
        });
        assert!(
            rx.recv_timeout(std::time::Duration::from_millis(200))
                .is_err()
        );
    }
}
