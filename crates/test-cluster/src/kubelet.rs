//! The test kubelet on a kube-fake-client API server (filled in by its owner).
