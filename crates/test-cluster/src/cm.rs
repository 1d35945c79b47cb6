//! The cluster manager's HTTP API on 127.0.0.1 (filled in by its owner).
