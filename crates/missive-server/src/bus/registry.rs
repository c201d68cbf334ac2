//! The node's live connections, per user. Delivery never waits: each
//! connection has a bounded queue, and a connection whose queue is full is
//! told to close (1013) and resume with `since=`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;
use uuid::Uuid;

use super::{Envelope, Payload};

/// Frames queued per connection before it counts as a slow reader.
pub const QUEUE: usize = 1024;

/// An item of a connection's queue: a payload and its cursor for that user.
#[derive(Debug, Clone)]
pub struct Outbound {
    /// The user's event cursor (`None` for ephemeral payloads).
    pub cursor: Option<i64>,
    /// The payload.
    pub payload: Arc<Payload>,
}

struct Connection {
    id: u64,
    queue: flume::Sender<Outbound>,
    overflow: Arc<Notify>,
}

/// A registered connection's end: its queue and the overflow signal.
pub struct Subscription {
    /// The user.
    pub user: Uuid,
    /// Registry-unique id.
    pub id: u64,
    /// Incoming payloads (flume allocates its buffer only when items arrive,
    /// so an idle connection's queue costs next to nothing).
    pub queue: flume::Receiver<Outbound>,
    /// Fires when the queue overflowed and the connection must close.
    pub overflow: Arc<Notify>,
}

/// Independent parts of the registry: a delivery locks only the shard of
/// each target, so the runtime's workers rarely wait for each other.
const SHARDS: usize = 16;

type Shard = Mutex<HashMap<Uuid, Vec<Connection>>>;

/// Live connections of this node.
#[derive(Default)]
pub struct Registry {
    next_id: AtomicU64,
    /// Envelopes handed to [`Registry::deliver`].
    delivered: AtomicU64,
    /// Users' connections, spread over the shards by user id.
    shards: [Shard; SHARDS],
}

impl Registry {
    /// The shard that holds `user`'s connections. User ids are UUIDs (v7)
    /// whose last bytes are random, so they spread evenly.
    fn shard(&self, user: &Uuid) -> &Shard {
        let bytes = user.as_bytes();
        &self.shards[usize::from(bytes[15]) % SHARDS]
    }

    /// Registers a new connection of `user`.
    pub fn register(&self, user: Uuid) -> Subscription {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = flume::bounded(QUEUE);
        let overflow = Arc::new(Notify::new());
        let connection = Connection {
            id,
            queue: tx,
            overflow: overflow.clone(),
        };
        if let Ok(mut users) = self.shard(&user).lock() {
            users.entry(user).or_default().push(connection);
        }
        Subscription {
            user,
            id,
            queue: rx,
            overflow,
        }
    }

    /// Removes a connection.
    pub fn unregister(&self, user: Uuid, id: u64) {
        if let Ok(mut users) = self.shard(&user).lock()
            && let Some(connections) = users.get_mut(&user)
        {
            connections.retain(|c| c.id != id);
            if connections.is_empty() {
                users.remove(&user);
            }
        }
    }

    /// Envelopes delivered so far (whether or not a target had a connection here).
    pub fn delivered(&self) -> u64 {
        self.delivered.load(Ordering::Relaxed)
    }

    /// Whether `user` has an open connection on this node.
    pub fn is_connected(&self, user: Uuid) -> bool {
        self.shard(&user)
            .lock()
            .map(|u| u.contains_key(&user))
            .unwrap_or(false)
    }

    /// `f` of each shard's users, one shard locked at a time.
    fn per_shard<'a, T>(
        &'a self,
        f: impl Fn(&HashMap<Uuid, Vec<Connection>>) -> T + 'a,
    ) -> impl Iterator<Item = T> + 'a {
        self.shards
            .iter()
            .filter_map(move |shard| shard.lock().ok().map(|users| f(&users)))
    }

    /// The users with an open connection on this node.
    pub fn users(&self) -> Vec<Uuid> {
        self.per_shard(|users| users.keys().copied().collect::<Vec<_>>())
            .flatten()
            .collect()
    }

    /// Open connections in total.
    pub fn connections(&self) -> usize {
        self.per_shard(|users| users.values().map(Vec::len).sum::<usize>())
            .sum()
    }

    /// Queues `payload` on every connection of this node; never blocks (a full
    /// queue closes its connection, which then resumes from the store anyway).
    pub fn broadcast(&self, payload: Arc<Payload>) {
        for shard in &self.shards {
            let Ok(users) = shard.lock() else { continue };
            for connection in users.values().flatten() {
                let item = Outbound {
                    cursor: None,
                    payload: payload.clone(),
                };
                if let Err(flume::TrySendError::Full(_)) = connection.queue.try_send(item) {
                    connection.overflow.notify_one();
                }
            }
        }
    }

    /// Queues the envelope on every connection of each target; never blocks.
    pub fn deliver(&self, envelope: &Envelope) {
        self.delivered.fetch_add(1, Ordering::Relaxed);
        for (user, cursor) in &envelope.targets {
            let Ok(users) = self.shard(user).lock() else {
                continue;
            };
            let Some(connections) = users.get(user) else {
                continue;
            };
            for connection in connections {
                let item = Outbound {
                    cursor: *cursor,
                    payload: envelope.payload.clone(),
                };
                match connection.queue.try_send(item) {
                    Ok(()) => {}
                    Err(flume::TrySendError::Full(_)) => connection.overflow.notify_one(),
                    Err(flume::TrySendError::Disconnected(_)) => {}
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn typing() -> Arc<Payload> {
        Arc::new(Payload::Typing {
            chat_id: Uuid::nil(),
            user: "+1234567".into(),
            is_typing: true,
        })
    }

    #[tokio::test]
    async fn every_connection_of_a_target_gets_the_envelope() {
        let registry = Registry::default();
        let alice = Uuid::now_v7();
        let bob = Uuid::now_v7();
        let a1 = registry.register(alice);
        let a2 = registry.register(alice);
        let b = registry.register(bob);
        registry.deliver(&Envelope {
            targets: vec![(alice, Some(7))],
            payload: typing(),
        });
        assert_eq!(a1.queue.recv_async().await.map(|o| o.cursor), Ok(Some(7)));
        assert_eq!(a2.queue.recv_async().await.map(|o| o.cursor), Ok(Some(7)));
        assert!(b.queue.try_recv().is_err());
        registry.unregister(alice, a1.id);
        assert_eq!(registry.connections(), 2);
        assert!(registry.is_connected(alice));
        registry.unregister(alice, a2.id);
        assert!(!registry.is_connected(alice));
        assert_eq!(registry.users(), vec![bob]);
    }

    #[tokio::test]
    async fn users_in_one_shard_or_in_different_shards_get_only_their_own() {
        let registry = Registry::default();
        let user = |last: u8| {
            let mut bytes = *Uuid::now_v7().as_bytes();
            bytes[15] = last;
            Uuid::from_bytes(bytes)
        };
        // 0 and 16 share a shard; 1 has its own.
        let (a, b, c) = (user(0), user(16), user(1));
        let subs = [
            registry.register(a),
            registry.register(b),
            registry.register(c),
        ];
        assert_eq!(registry.connections(), 3);
        registry.deliver(&Envelope {
            targets: vec![(a, Some(1)), (c, Some(2))],
            payload: typing(),
        });
        assert_eq!(subs[0].queue.try_recv().map(|o| o.cursor), Ok(Some(1)));
        assert!(subs[1].queue.try_recv().is_err(), "b shares a's shard only");
        assert_eq!(subs[2].queue.try_recv().map(|o| o.cursor), Ok(Some(2)));
        let mut users = registry.users();
        users.sort();
        let mut expected = vec![a, b, c];
        expected.sort();
        assert_eq!(users, expected);
    }

    #[tokio::test]
    async fn a_broadcast_reaches_every_connection() {
        let registry = Registry::default();
        let a = registry.register(Uuid::now_v7());
        let b = registry.register(Uuid::now_v7());
        registry.broadcast(Arc::new(Payload::CatchUp));
        for sub in [a, b] {
            let item = sub.queue.recv_async().await.expect("an item");
            assert_eq!(*item.payload, Payload::CatchUp);
        }
    }

    #[tokio::test]
    async fn a_full_queue_signals_overflow_instead_of_blocking() {
        let registry = Registry::default();
        let user = Uuid::now_v7();
        let sub = registry.register(user);
        for _ in 0..=QUEUE {
            registry.deliver(&Envelope {
                targets: vec![(user, None)],
                payload: typing(),
            });
        }
        tokio::time::timeout(std::time::Duration::from_secs(1), sub.overflow.notified())
            .await
            .expect("overflow is signalled");
    }
}
