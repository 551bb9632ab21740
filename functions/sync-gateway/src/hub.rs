//! Which sockets belong to which user, and the live fan-out to them.
//!
//! Every replica receives every `task-updates` event (its own consumer
//! group) and hands each one only to the sockets of the event's user.
//! Each socket has a bounded queue. A push never waits on a socket: when a
//! queue is full the socket is kicked (its session closes it with
//! [`crate::protocol::Close::TooSlow`], and the client resumes from its
//! last offset), so one slow reader never holds up the partition or other
//! users. An event is serialised once and shared by every queue it enters.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use axum::extract::ws::Utf8Bytes;
use tokio::sync::{mpsc, oneshot};

/// One live stream entry, ready to send.
#[derive(Debug, PartialEq, Eq)]
pub struct Live {
    pub epoch: String,
    pub offset: i64,
    /// The `event` frame.
    pub text: Utf8Bytes,
}

struct Entry {
    id: u64,
    tx: mpsc::Sender<Arc<Live>>,
    kick: oneshot::Sender<()>,
}

/// The registry of this replica's sockets.
#[derive(Clone)]
pub struct Hub {
    users: Arc<Mutex<HashMap<String, Vec<Entry>>>>,
    capacity: usize,
    next_id: Arc<AtomicU64>,
    /// Whether any push reached this replica: its consumer has joined.
    pushed: Arc<AtomicBool>,
}

/// What one publish did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Fanout {
    pub queued: usize,
    pub kicked: usize,
}

/// A socket's place in the hub; dropping it leaves the hub.
pub struct Registration {
    hub: Hub,
    user: String,
    id: u64,
}

impl Drop for Registration {
    fn drop(&mut self) {
        let mut users = self.hub.lock();
        if let Some(list) = users.get_mut(&self.user) {
            list.retain(|e| e.id != self.id);
            if list.is_empty() {
                users.remove(&self.user);
            }
        }
    }
}

/// What a session reads: its live queue and the kick that says the queue
/// overflowed.
pub struct Subscription {
    pub registration: Registration,
    pub live: mpsc::Receiver<Arc<Live>>,
    pub kicked: oneshot::Receiver<()>,
}

impl Hub {
    /// A hub whose sockets queue at most `capacity` events each.
    pub fn new(capacity: usize) -> Self {
        Self {
            users: Arc::default(),
            capacity: capacity.max(1),
            next_id: Arc::default(),
            pushed: Arc::default(),
        }
    }

    /// Whether this replica has received a push since it started, that is
    /// whether its consumer group had joined and was reading by now.
    pub fn pushed(&self) -> bool {
        self.pushed.load(Ordering::Acquire)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Vec<Entry>>> {
        // The map stays consistent at every await-free step, so a panic
        // elsewhere while holding it leaves nothing half-done.
        self.users.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Adds a socket of `user`.
    pub fn register(&self, user: &str) -> Subscription {
        let (tx, live) = mpsc::channel(self.capacity);
        let (kick, kicked) = oneshot::channel();
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.lock()
            .entry(user.to_owned())
            .or_default()
            .push(Entry { id, tx, kick });
        Subscription {
            registration: Registration {
                hub: self.clone(),
                user: user.to_owned(),
                id,
            },
            live,
            kicked,
        }
    }

    /// Queues `event` for every socket of `user`; a socket whose queue is
    /// full is kicked and leaves the hub.
    pub fn publish(&self, user: &str, event: Arc<Live>) -> Fanout {
        self.pushed.store(true, Ordering::Release);
        let mut fanout = Fanout::default();
        let mut users = self.lock();
        let Some(list) = users.get_mut(user) else {
            return fanout;
        };
        let mut kept = Vec::with_capacity(list.len());
        for entry in list.drain(..) {
            match entry.tx.try_send(event.clone()) {
                Ok(()) => {
                    fanout.queued += 1;
                    kept.push(entry);
                }
                Err(mpsc::error::TrySendError::Full(_)) => {
                    fanout.kicked += 1;
                    let _ = entry.kick.send(());
                }
                // The session ended; its registration is on its way out.
                Err(mpsc::error::TrySendError::Closed(_)) => {}
            }
        }
        if kept.is_empty() {
            users.remove(user);
        } else {
            *list = kept;
        }
        fanout
    }

    /// Open sockets of `user` on this replica.
    pub fn sockets_of(&self, user: &str) -> usize {
        self.lock().get(user).map_or(0, Vec::len)
    }

    /// Open sockets on this replica.
    pub fn sockets(&self) -> usize {
        self.lock().values().map(Vec::len).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn live(offset: i64) -> Arc<Live> {
        Arc::new(Live {
            epoch: "e".into(),
            offset,
            text: Utf8Bytes::from(format!("{offset}")),
        })
    }

    #[tokio::test]
    async fn each_user_gets_only_their_events() {
        let hub = Hub::new(8);
        let mut a1 = hub.register("alice");
        let mut a2 = hub.register("alice");
        let mut b = hub.register("bob");
        assert!(!hub.pushed());
        assert_eq!(hub.publish("carol", live(1)), Fanout::default());
        assert!(hub.pushed(), "any push counts, for anyone");
        assert_eq!(hub.publish("alice", live(1)).queued, 2);
        assert_eq!(a1.live.recv().await.unwrap().offset, 1);
        assert_eq!(a2.live.recv().await.unwrap().offset, 1);
        assert!(b.live.try_recv().is_err(), "nothing of alice's for bob");
        assert_eq!(hub.sockets(), 3);
        assert_eq!((hub.sockets_of("alice"), hub.sockets_of("carol")), (2, 0));
    }

    #[tokio::test]
    async fn a_full_queue_kicks_only_that_socket() {
        let hub = Hub::new(2);
        let mut slow = hub.register("alice");
        let mut fast = hub.register("alice");
        for offset in 1..=2 {
            hub.publish("alice", live(offset));
            assert_eq!(fast.live.recv().await.unwrap().offset, offset);
        }
        let fanout = hub.publish("alice", live(3));
        assert_eq!(
            fanout,
            Fanout {
                queued: 1,
                kicked: 1
            }
        );
        assert!(slow.kicked.try_recv().is_ok(), "the slow socket is told");
        assert_eq!(fast.live.recv().await.unwrap().offset, 3);
        assert_eq!(hub.sockets(), 1, "the kicked socket left the hub");
        // Its queue still holds what it had; the session closes anyway.
        assert_eq!(slow.live.recv().await.unwrap().offset, 1);
    }

    #[test]
    fn dropping_a_registration_leaves_the_hub() {
        let hub = Hub::new(2);
        let a = hub.register("alice");
        let b = hub.register("alice");
        drop(a);
        assert_eq!(hub.sockets(), 1);
        drop(b);
        assert!(hub.lock().is_empty(), "no empty user lists linger");
    }
}
