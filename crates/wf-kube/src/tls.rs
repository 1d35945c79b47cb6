//! TLS to the API server: rustls with the ring crypto provider.
//!
//! kube builds its rustls client config from the process-wide default crypto provider.
//! rustls picks that default by itself only when exactly one provider is compiled in; a
//! build that also pulls in aws-lc-rs (through another dependency, as test builds do) has
//! none, and the first https client panics. [`install_crypto_provider`] settles it: call it
//! once at the start of `main`, before the first `kube::Client` is built.
//!
//! ```
//! wf_kube::install_crypto_provider();
//! assert!(rustls::crypto::CryptoProvider::get_default().is_some());
//! ```

/// Makes ring the process-wide rustls crypto provider, unless one is installed already
/// (then that one stays). Idempotent and cheap; safe to call from several places.
pub fn install_crypto_provider() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        // An error means another thread installed one in between: that one is used.
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
}
