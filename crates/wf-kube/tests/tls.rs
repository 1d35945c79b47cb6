//! An https kubeconfig gives a working `kube::Client`: kube is built with rustls (ring), and
//! `install_crypto_provider` settles the crypto provider even in this test build, where
//! rustls also sees aws-lc-rs (through kube-fake-client) and would otherwise have no default.

use std::time::Duration;

use kube::config::{KubeConfigOptions, Kubeconfig};
use tokio::io::AsyncReadExt;

/// A self-signed CA (P-256, valid until 2126), only ever parsed.
const CA_PEM: &str = "-----BEGIN CERTIFICATE-----
MIIBizCCATGgAwIBAgIUR5ETH5gdaxA01dy7tzm7O6SI6rswCgYIKoZIzj0EAwIw
GjEYMBYGA1UEAwwPd2Yta3ViZSB0ZXN0IENBMCAXDTI2MTIwMjA4MDA1MFoYDzIx
MjYxMTA4MDgwMDUwWjAaMRgwFgYDVQQDDA93Zi1rdWJlIHRlc3QgQ0EwWTATBgcq
hkjOPQIBBggqhkjOPQMBBwNCAAQYVk+4d/ALYRS5tNgVLKz4dq8Q0RLQrPJHrLR8
F6/Mp+H62Kh6VN5xixOhNXhkzhWYQfkEV5+vkQCa3IXWu677o1MwUTAdBgNVHQ4E
FgQUVjwMk9ir4J8Ef4KbgdTaTyshtmQwHwYDVR0jBBgwFoAUVjwMk9ir4J8Ef4Kb
gdTaTyshtmQwDwYDVR0TAQH/BAUwAwEB/zAKBggqhkjOPQQDAgNIADBFAiEAzDsV
d7on1Iy3VhyZY3pSKSd8qKkKWV82dWOKGp4BsyMCIFsf6IpM6eAfvBttakYs4Wmn
6esQgA1A9sG2VvGrw/ZY
-----END CERTIFICATE-----
";

/// Writes a kubeconfig for `server` trusting [`CA_PEM`]; returns its directory.
fn kubeconfig(server: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, CA_PEM).expect("ca");
    let path = dir.path().join("kubeconfig");
    let text = format!(
        "apiVersion: v1
kind: Config
clusters:
- name: test
  cluster:
    server: {server}
    certificate-authority: {ca}
users:
- name: operator
  user:
    token: not-a-real-token
contexts:
- name: test
  context: {{cluster: test, user: operator, namespace: ops}}
current-context: test
",
        ca = ca.display()
    );
    std::fs::write(&path, text).expect("kubeconfig");
    (dir, path)
}

async fn config_from(path: &std::path::Path) -> kube::Config {
    let kubeconfig = Kubeconfig::read_from(path).expect("kubeconfig parses");
    kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .expect("config")
}

#[tokio::test]
async fn a_client_builds_from_an_https_kubeconfig_with_a_ca() {
    wf_kube::install_crypto_provider();
    let (_dir, path) = kubeconfig("https://127.0.0.1:6443");
    let config = config_from(&path).await;
    assert_eq!(config.cluster_url.scheme_str(), Some("https"));
    assert_eq!(
        config.root_cert.as_ref().map(Vec::len),
        Some(1),
        "the CA is read"
    );
    assert_eq!(config.default_namespace, "ops");

    let client = kube::Client::try_from(config);

    // Without a TLS stack this is "TLS required but no TLS stack selected".
    assert!(
        client.is_ok(),
        "{}",
        client.err().map(|e| e.to_string()).unwrap_or_default()
    );
    assert_eq!(
        client
            .map(|c| c.default_namespace().to_owned())
            .ok()
            .as_deref(),
        Some("ops")
    );
}

#[tokio::test]
async fn the_client_of_an_https_kubeconfig_opens_with_a_tls_handshake() {
    wf_kube::install_crypto_provider();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (_dir, path) = kubeconfig(&format!("https://{addr}"));
    let client = kube::Client::try_from(config_from(&path).await).expect("client");

    // The "API server" reads the first bytes the client sends, then hangs up.
    let server = tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.expect("accept");
        let mut first = [0u8; 3];
        stream.read_exact(&mut first).await.expect("read");
        first
    });
    let call = tokio::time::timeout(Duration::from_secs(10), client.apiserver_version()).await;
    let first = tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .expect("the client connected")
        .expect("server task");

    // 0x16 0x03 0x01: a TLS handshake record (the ClientHello), not plain HTTP.
    assert_eq!(
        first,
        [0x16, 0x03, 0x01],
        "{:?}",
        String::from_utf8_lossy(&first)
    );
    assert!(
        matches!(call, Ok(Err(_))),
        "the handshake cannot succeed: {call:?}"
    );
}

#[test]
fn installing_the_crypto_provider_twice_keeps_the_first() {
    wf_kube::install_crypto_provider();
    let first = rustls::crypto::CryptoProvider::get_default().cloned();
    wf_kube::install_crypto_provider();
    let second = rustls::crypto::CryptoProvider::get_default().cloned();
    assert!(first.is_some());
    assert!(std::sync::Arc::ptr_eq(&first.unwrap(), &second.unwrap()));
}
