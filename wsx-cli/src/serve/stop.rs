//! The server's stop signal, which every connection waits on alongside its socket.
//!
//! A session polls it each time its task wakes, that is for every message. A
//! `tokio::sync::watch` receiver (or a bare `Notified`) takes the lock of its shared waiter list
//! on every poll once registered, and all connections share that lock; [`Stop::stopped`]
//! registers once and then costs one atomic load per poll while its task's waker stays the same.

use std::future::{poll_fn, Future};
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Poll, Waker};

use tokio::sync::Notify;

/// Set once, when the server starts to stop.
#[derive(Default)]
pub(super) struct Stop {
    stopping: AtomicBool,
    notify: Notify,
}

impl Stop {
    /// Tells every waiter, present and future, that the server is stopping.
    pub(super) fn stop(&self) {
        // Set before notifying: a waiter that registers after the notification sees the flag.
        self.stopping.store(true, Ordering::SeqCst);
        self.notify.notify_waiters();
    }

    pub(super) fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }

    /// Resolves once the server is stopping. Registers with the notifier at its first poll,
    /// and again only when polled from another task; otherwise a poll is one atomic load.
    pub(super) async fn stopped(&self) {
        let notified = self.notify.notified();
        tokio::pin!(notified);
        // The waker registered with `notified`: while the task's waker is this one, a
        // notification wakes it, and a poll only needs the flag.
        let mut registered: Option<Waker> = None;
        poll_fn(|cx| {
            let same_waker = registered.as_ref().is_some_and(|w| w.will_wake(cx.waker()));
            if !same_waker {
                if notified.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(());
                }
                registered = Some(cx.waker().clone());
            }
            // Read after registering: a `stop` that came first set the flag before notifying.
            if self.is_stopping() {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    #[tokio::test]
    async fn wakes_a_waiter_registered_before_the_stop() {
        let stop = Arc::new(Stop::default());
        let waiter = tokio::spawn({
            let stop = stop.clone();
            async move { stop.stopped().await }
        });
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        stop.stop();
        tokio::time::timeout(Duration::from_secs(5), waiter).await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn resolves_at_once_after_the_stop() {
        let stop = Stop::default();
        let early = stop.stopped(); // made before, polled after
        stop.stop();
        assert!(stop.is_stopping());
        early.await;
        stop.stopped().await;
    }

    #[tokio::test]
    async fn polled_again_and_again_it_still_wakes() {
        // A session polls its stop future each time a message wakes its task.
        let stop = Arc::new(Stop::default());
        let (tx, mut rx) = tokio::sync::mpsc::channel::<()>(1);
        let session = tokio::spawn({
            let stop = stop.clone();
            async move {
                let stopped = stop.stopped();
                tokio::pin!(stopped);
                let mut messages = 0;
                loop {
                    tokio::select! {
                        biased;
                        () = &mut stopped => return messages,
                        Some(()) = rx.recv() => messages += 1,
                    }
                }
            }
        });
        for _ in 0..100 {
            tx.send(()).await.unwrap();
        }
        tokio::task::yield_now().await;
        stop.stop();
        let messages = tokio::time::timeout(Duration::from_secs(5), session).await.unwrap();
        assert!(messages.unwrap() >= 99);
    }
}
