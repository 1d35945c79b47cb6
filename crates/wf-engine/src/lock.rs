//! Per-resource locks keyed by namespace and name, freed when idle.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::OwnedMutexGuard;

use crate::ResourceKey;

type LockMap = HashMap<ResourceKey, Arc<tokio::sync::Mutex<()>>>;

/// One async mutex per resource. An entry exists only while someone holds or waits for the
/// lock, so the map does not grow with every resource ever seen.
#[derive(Clone, Debug, Default)]
pub struct ResourceLocks {
    map: Arc<Mutex<LockMap>>,
}

/// Holds a resource's lock; dropping it releases the lock and frees the entry when idle.
#[derive(Debug)]
pub struct ResourceLockGuard {
    guard: Option<OwnedMutexGuard<()>>,
    key: ResourceKey,
    map: Arc<Mutex<LockMap>>,
}

impl ResourceLocks {
    /// No locks yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Waits for and takes the lock of `key`.
    pub async fn lock(&self, key: &ResourceKey) -> ResourceLockGuard {
        let mutex = self.entry(key);
        let guard = mutex.lock_owned().await;
        ResourceLockGuard {
            guard: Some(guard),
            key: key.clone(),
            map: self.map.clone(),
        }
    }

    /// Waits at most `timeout` for the lock of `key`; `None` when it was still held by
    /// someone else then. A wait that times out leaves no entry behind.
    ///
    /// For writers other than the state machine that must serialise with its flows (a
    /// status monitor, a callback handler) and would rather give up than queue behind a
    /// long reconcile. Share the machine's locks with them through
    /// [`StateMachine::locks`](crate::StateMachine::locks).
    pub async fn lock_timeout(
        &self,
        key: &ResourceKey,
        timeout: std::time::Duration,
    ) -> Option<ResourceLockGuard> {
        let mutex = self.entry(key);
        match tokio::time::timeout(timeout, mutex.lock_owned()).await {
            Ok(guard) => Some(ResourceLockGuard {
                guard: Some(guard),
                key: key.clone(),
                map: self.map.clone(),
            }),
            Err(_elapsed) => {
                free_if_idle(&self.map, key);
                None
            }
        }
    }

    fn entry(&self, key: &ResourceKey) -> Arc<tokio::sync::Mutex<()>> {
        self.map
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(key.clone())
            .or_default()
            .clone()
    }

    /// How many resources have a lock entry (held or waited for).
    pub fn len(&self) -> usize {
        self.map
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// Whether no lock is held or waited for.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Removes the entry of `key` when nobody holds or waits for it.
fn free_if_idle(map: &Mutex<LockMap>, key: &ResourceKey) {
    let mut map = map.lock().unwrap_or_else(PoisonError::into_inner);
    if map
        .get(key)
        .is_some_and(|mutex| Arc::strong_count(mutex) == 1)
    {
        map.remove(key);
    }
}

impl Drop for ResourceLockGuard {
    fn drop(&mut self) {
        drop(self.guard.take());
        free_if_idle(&self.map, &self.key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn lock_entries_are_freed_when_idle() {
        let locks = ResourceLocks::new();
        {
            let _a = locks.lock(&ResourceKey::new("ns", "a")).await;
            let _b = locks.lock(&ResourceKey::new("ns", "b")).await;
            assert_eq!(locks.len(), 2);
        }
        assert!(locks.is_empty());
    }

    #[tokio::test]
    async fn locks_are_keyed_by_namespace_and_name() {
        let locks = ResourceLocks::new();
        let _one = locks.lock(&ResourceKey::new("ns1", "c1")).await;
        // Same name in another namespace: not blocked.
        let other = tokio::time::timeout(
            Duration::from_secs(5),
            locks.lock(&ResourceKey::new("ns2", "c1")),
        )
        .await;
        assert!(other.is_ok());
        // Same namespace and name: blocked while held.
        let same = tokio::time::timeout(
            Duration::from_millis(50),
            locks.lock(&ResourceKey::new("ns1", "c1")),
        )
        .await;
        assert!(same.is_err());
    }

    #[tokio::test]
    async fn lock_timeout_gives_up_while_held_and_leaves_no_entry() {
        let locks = ResourceLocks::new();
        let key = ResourceKey::new("ns", "c1");
        let held = locks.lock(&key).await;
        assert!(locks
            .lock_timeout(&key, Duration::from_millis(20))
            .await
            .is_none());
        assert_eq!(locks.len(), 1, "only the holder's entry");
        drop(held);
        assert!(locks.is_empty());
        let got = locks.lock_timeout(&key, Duration::from_millis(20)).await;
        assert!(got.is_some(), "free again");
        assert_eq!(locks.len(), 1);
        drop(got);
        assert!(locks.is_empty());
    }

    #[tokio::test]
    async fn a_clone_of_the_locks_serialises_with_the_original() {
        let locks = ResourceLocks::new();
        let shared = locks.clone();
        let key = ResourceKey::new("ns", "c1");
        let _held = locks.lock(&key).await;
        assert!(shared
            .lock_timeout(&key, Duration::from_millis(20))
            .await
            .is_none());
    }

    #[tokio::test]
    async fn a_waiter_gets_the_lock_after_release_and_the_entry_is_then_freed() {
        let locks = ResourceLocks::new();
        let key = ResourceKey::new("ns", "c1");
        let first = locks.lock(&key).await;
        let waiter = {
            let locks = locks.clone();
            let key = key.clone();
            tokio::spawn(async move {
                let _g = locks.lock(&key).await;
            })
        };
        tokio::task::yield_now().await;
        drop(first);
        waiter.await.unwrap();
        assert!(locks.is_empty());
    }
}
