//! Errors of the fake cluster.

/// A fake-cluster operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// `kube-fake-client` refused to build (an initial object it cannot store).
    #[error("building the fake API server: {0}")]
    Build(#[source] kube_fake_client::Error),
    /// A request to the fake API server failed.
    #[error("fake API server: {what}: {source}")]
    Api {
        /// What was asked.
        what: String,
        /// The client's error.
        #[source]
        source: kube::Error,
    },
    /// An object could not be turned into JSON or back.
    #[error("fake cluster: {what}: {source}")]
    Json {
        /// What was converted.
        what: String,
        /// The serde error.
        #[source]
        source: serde_json::Error,
    },
    /// The kubelet task is gone (the cluster was dropped, or the task panicked).
    #[error("the test kubelet has stopped")]
    KubeletStopped,
}

impl ClusterError {
    pub(crate) fn api(what: impl Into<String>) -> impl FnOnce(kube::Error) -> ClusterError {
        let what = what.into();
        move |source| ClusterError::Api { what, source }
    }
}
