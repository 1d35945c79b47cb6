//! [`Watch`]: what the [`crate::Reconciler`]'s controller watches — the `watcher::Config` of
//! the main objects, a filter on them, and owned child types whose changes reconcile their
//! owner.
//!
//! # Example
//!
//! ```
//! use k8s_openapi::api::core::v1::{ConfigMap, Pod};
//! use kube::runtime::watcher;
//! use wf_kube::Watch;
//!
//! # fn watch(client: kube::Client) -> Watch<ConfigMap> {
//! Watch::<ConfigMap>::default()
//!     .config(watcher::Config::default().labels("app=db"))
//!     // Objects the filter refuses are not reconciled (label `filtered`).
//!     .filter(|cm: &ConfigMap| cm.data.is_some())
//!     // A change of a Pod owned by a ConfigMap (owner reference) reconciles the ConfigMap.
//!     .owns(kube::Api::<Pod>::all(client), watcher::Config::default().labels("app=db"))
//! # }
//! ```

use std::fmt::Debug;
use std::sync::Arc;

use kube::runtime::{watcher, Controller};
use kube::{Api, Resource};
use serde::de::DeserializeOwned;

use crate::KubeObject;

/// Adds one owned child type to a controller.
type AddOwned<K> = Arc<dyn Fn(Controller<K>) -> Controller<K> + Send + Sync>;

/// Decides whether an object is reconciled.
type Filter<K> = Arc<dyn Fn(&K) -> bool + Send + Sync>;

/// What the controller watches; see the [module](self) docs. Cheap to clone.
pub struct Watch<K: KubeObject> {
    config: watcher::Config,
    filter: Option<Filter<K>>,
    owned: Vec<AddOwned<K>>,
}

impl<K: KubeObject> Clone for Watch<K> {
    fn clone(&self) -> Self {
        Watch {
            config: self.config.clone(),
            filter: self.filter.clone(),
            owned: self.owned.clone(),
        }
    }
}

impl<K: KubeObject> Default for Watch<K> {
    /// Every object of the API, no owned types.
    fn default() -> Self {
        Watch {
            config: watcher::Config::default(),
            filter: None,
            owned: Vec::new(),
        }
    }
}

impl<K: KubeObject> Debug for Watch<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watch")
            .field("config", &self.config)
            .field("filtered", &self.filter.is_some())
            .field("owned_types", &self.owned.len())
            .finish()
    }
}

impl<K: KubeObject> Watch<K> {
    /// The watcher config of the main objects (label and field selectors, page size…).
    /// Default: every object.
    pub fn config(mut self, config: watcher::Config) -> Self {
        self.config = config;
        self
    }

    /// Only objects for which `filter` is true are reconciled; an event of any other object
    /// ends its reconcile at once (no read, no write; [`crate::Decision`] label `filtered`).
    /// Use it for what a selector cannot express, such as a spec field.
    pub fn filter(mut self, filter: impl Fn(&K) -> bool + Send + Sync + 'static) -> Self {
        self.filter = Some(Arc::new(filter));
        self
    }

    /// A change of a `Child` of `api` (selected by `config`) whose owner reference names a
    /// `K` reconciles that `K` (`kube::runtime::Controller::owns`). Select narrowly: every
    /// matching child is streamed to the operator.
    pub fn owns<Child>(mut self, api: Api<Child>, config: watcher::Config) -> Self
    where
        Child:
            Clone + Resource<DynamicType = ()> + DeserializeOwned + Debug + Send + Sync + 'static,
    {
        self.owned.push(Arc::new(move |controller: Controller<K>| {
            controller.owns(api.clone(), config.clone())
        }));
        self
    }

    /// Whether `object` passes the filter (true when there is none).
    pub fn admits(&self, object: &K) -> bool {
        self.filter.as_ref().is_none_or(|filter| filter(object))
    }

    /// How many owned child types are watched.
    pub fn owned_types(&self) -> usize {
        self.owned.len()
    }

    /// A controller over `api` watching what this says.
    pub(crate) fn controller(&self, api: Api<K>) -> Controller<K> {
        self.owned
            .iter()
            .fold(Controller::new(api, self.config.clone()), |c, add| add(c))
    }
}
