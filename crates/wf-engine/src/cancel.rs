//! Cancellation of running flows: a background watch of `is_cancelled()`, and a registry
//! through which a watch event can cancel at once.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::{ResourceKey, StateResource};

/// The cancellation tokens of the flows running now, by resource.
#[derive(Clone, Debug, Default)]
pub(crate) struct CancelRegistry {
    tokens: Arc<Mutex<HashMap<ResourceKey, (u64, CancellationToken)>>>,
    next_id: Arc<AtomicU64>,
}

/// Keeps a flow's token registered and its watcher alive; dropping it stops both.
#[derive(Debug)]
pub(crate) struct CancelScope {
    pub(crate) token: CancellationToken,
    id: u64,
    key: ResourceKey,
    registry: CancelRegistry,
    watcher: Option<JoinHandle<()>>,
}

impl CancelRegistry {
    /// Registers a new token for `resource` and starts polling `is_cancelled()` every
    /// `interval` in the background.
    pub(crate) fn scope<R: StateResource>(&self, resource: &R, interval: Duration) -> CancelScope {
        let token = CancellationToken::new();
        let key = resource.key();
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.tokens
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(key.clone(), (id, token.clone()));
        let watched = resource.clone();
        let cancel = token.clone();
        let watcher = tokio::spawn(async move {
            loop {
                if watched.is_cancelled().await {
                    tracing::info!(resource = %watched.key(), "resource cancelled; stopping its flow");
                    cancel.cancel();
                    return;
                }
                tokio::select! {
                    () = cancel.cancelled() => return,
                    () = tokio::time::sleep(interval) => {}
                }
            }
        });
        CancelScope {
            token,
            id,
            key,
            registry: self.clone(),
            watcher: Some(watcher),
        }
    }

    /// Cancels the flow running for `key`; returns whether one was running.
    pub(crate) fn cancel(&self, key: &ResourceKey) -> bool {
        match self
            .tokens
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(key)
        {
            Some((_, token)) => {
                token.cancel();
                true
            }
            None => false,
        }
    }
}

impl Drop for CancelScope {
    fn drop(&mut self) {
        if let Some(watcher) = self.watcher.take() {
            watcher.abort();
        }
        let mut tokens = self
            .registry
            .tokens
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        // Only remove our own token: a newer scope for the same key may have replaced it.
        if tokens.get(&self.key).is_some_and(|(id, _)| *id == self.id) {
            tokens.remove(&self.key);
        }
    }
}
