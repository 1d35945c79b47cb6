//! [`CallbackToken`]: the bearer token the cluster manager presents on every callback.

use k8s_openapi::api::core::v1::Secret;
use subtle::ConstantTimeEq;

/// The Secret that holds the token, in the operator's namespace (see `deploy/`).
pub const DEFAULT_TOKEN_SECRET: &str = "polar-mpd-callback-token";

/// The key of the token in that Secret.
pub const TOKEN_KEY: &str = "token";

/// The fewest bytes a token may have (after surrounding whitespace is trimmed). 32 random
/// bytes, base64- or hex-encoded, are well above it.
pub const MIN_TOKEN_LEN: usize = 16;

/// Why a token could not be read. No variant holds or prints the token.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The Secret could not be read (missing, forbidden, API unreachable).
    #[error("cannot read the callback token Secret {namespace}/{name}: {source}")]
    Read {
        /// The Secret's namespace.
        namespace: String,
        /// The Secret's name.
        name: String,
        /// The API error.
        #[source]
        source: Box<kube::Error>,
    },
    /// The Secret has no such key.
    #[error("the callback token Secret {secret} has no key `{key}`")]
    MissingKey {
        /// `namespace/name`.
        secret: String,
        /// The key looked for.
        key: String,
    },
    /// The token file could not be read.
    #[error("cannot read the callback token file {path}: {source}")]
    File {
        /// The file.
        path: std::path::PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The token is unusable; `origin` says where it came from.
    #[error("the callback token from {origin} {problem}")]
    Invalid {
        /// Where the token came from (a Secret key or a file), never the token.
        origin: String,
        /// What is wrong with it.
        problem: &'static str,
    },
}

/// A bearer token, compared in constant time. Its `Debug` output is redacted and it has no
/// `Display`: it never reaches a log line or an error message.
///
/// ```
/// use shared_storage::callbacks::CallbackToken;
///
/// let token = CallbackToken::new("s3cr3t-s3cr3t-s3cr3t\n", "an example").unwrap();
/// assert!(token.matches_header("Bearer s3cr3t-s3cr3t-s3cr3t"));
/// assert!(!token.matches_header("Bearer s3cr3t-s3cr3t-s3cr3T"));
/// assert!(!token.matches_header("Basic s3cr3t-s3cr3t-s3cr3t"));
/// assert_eq!(format!("{token:?}"), "CallbackToken(<redacted>)");
/// assert!(CallbackToken::new("short", "an example").is_err());
/// ```
#[derive(Clone)]
pub struct CallbackToken(Vec<u8>);

impl std::fmt::Debug for CallbackToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CallbackToken(<redacted>)")
    }
}

impl CallbackToken {
    /// A token from its text, trimmed of surrounding whitespace (a Secret made from a file
    /// often ends in a newline). `origin` names where it came from, for errors.
    ///
    /// # Errors
    /// [`TokenError::Invalid`] when it is shorter than [`MIN_TOKEN_LEN`] bytes or holds
    /// anything but visible ASCII (a header value could not carry it).
    pub fn new(text: impl AsRef<[u8]>, origin: &str) -> Result<Self, TokenError> {
        let trimmed = text.as_ref().trim_ascii();
        let invalid = |problem| TokenError::Invalid {
            origin: origin.to_owned(),
            problem,
        };
        if trimmed.len() < MIN_TOKEN_LEN {
            return Err(invalid("is shorter than 16 bytes"));
        }
        if !trimmed.iter().all(u8::is_ascii_graphic) {
            return Err(invalid("holds characters other than visible ASCII"));
        }
        Ok(CallbackToken(trimmed.to_vec()))
    }

    /// Reads the token from key `key` of the Secret `name` in `namespace`.
    ///
    /// # Errors
    /// [`TokenError::Read`], [`TokenError::MissingKey`], or [`TokenError::Invalid`] (see
    /// [`CallbackToken::new`]); each names the Secret and key, never the value.
    pub async fn from_secret(
        client: kube::Client,
        namespace: &str,
        name: &str,
        key: &str,
    ) -> Result<Self, TokenError> {
        let api: kube::Api<Secret> = kube::Api::namespaced(client, namespace);
        let secret = api.get(name).await.map_err(|source| TokenError::Read {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            source: Box::new(source),
        })?;
        let qualified = format!("{namespace}/{name}");
        let value = secret
            .data
            .as_ref()
            .and_then(|data| data.get(key))
            .map(|bytes| bytes.0.clone())
            .or_else(|| {
                secret
                    .string_data
                    .as_ref()
                    .and_then(|data| data.get(key))
                    .map(|text| text.clone().into_bytes())
            })
            .ok_or_else(|| TokenError::MissingKey {
                secret: qualified.clone(),
                key: key.to_owned(),
            })?;
        Self::new(value, &format!("Secret {qualified} key `{key}`"))
    }

    /// Reads the token from a file (e.g. the Secret mounted as a volume).
    ///
    /// # Errors
    /// [`TokenError::File`], or [`TokenError::Invalid`] (see [`CallbackToken::new`]).
    pub fn from_file(path: &std::path::Path) -> Result<Self, TokenError> {
        let bytes = std::fs::read(path).map_err(|source| TokenError::File {
            path: path.to_path_buf(),
            source,
        })?;
        Self::new(bytes, &format!("file {}", path.display()))
    }

    /// Whether `presented` is the token, compared in constant time (for a given length:
    /// only a difference of length ends the comparison early).
    pub fn matches(&self, presented: &[u8]) -> bool {
        bool::from(self.0.as_slice().ct_eq(presented))
    }

    /// Whether an `Authorization` header value is `Bearer <the token>` (the scheme is
    /// matched case-insensitively, as RFC 7235 says).
    pub fn matches_header(&self, value: impl AsRef<[u8]>) -> bool {
        let value = value.as_ref();
        let Some((scheme, rest)) = value.split_at_checked(6) else {
            return false;
        };
        if !scheme.eq_ignore_ascii_case(b"bearer") {
            return false;
        }
        match rest.split_first() {
            Some((b' ', token)) => self.matches(token.trim_ascii()),
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::ByteString;
    use kube::api::PostParams;
    use std::collections::BTreeMap;

    const TOKEN: &str = "0123456789abcdef0123";

    #[test]
    fn a_token_is_trimmed_and_checked_without_echoing_it() {
        let token = CallbackToken::new(format!("  {TOKEN}\r\n"), "test").unwrap();
        assert!(token.matches(TOKEN.as_bytes()));
        assert!(token.matches_header(format!("bearer {TOKEN}")));
        assert!(token.matches_header(format!("BEARER  {TOKEN} ")));
        assert!(!token.matches_header(format!("Bearer{TOKEN}")));
        assert!(!token.matches_header(TOKEN));
        assert!(!token.matches_header("Bearer "));
        assert!(!token.matches(&TOKEN.as_bytes()[1..]));
        for bad in [
            "tiny1",
            "0123456789abcdef 0123",
            "0123456789abcdef\u{e9}0123",
        ] {
            let err = CallbackToken::new(bad, "Secret ns/s key `token`").unwrap_err();
            let message = err.to_string();
            assert!(message.contains("Secret ns/s key `token`"), "{message}");
            assert!(!message.contains(bad), "{message}");
        }
    }

    async fn client_with(secret: Option<BTreeMap<String, ByteString>>) -> kube::Client {
        let client = kube_fake_client::ClientBuilder::new()
            .build()
            .await
            .unwrap();
        if let Some(data) = secret {
            let api: kube::Api<Secret> = kube::Api::namespaced(client.clone(), "ops");
            let mut secret = Secret {
                data: Some(data),
                ..Secret::default()
            };
            secret.metadata.name = Some(DEFAULT_TOKEN_SECRET.into());
            api.create(&PostParams::default(), &secret).await.unwrap();
        }
        client
    }

    #[tokio::test]
    async fn the_token_is_read_from_its_secret_and_errors_name_the_secret_and_key() {
        let data = BTreeMap::from([(TOKEN_KEY.to_owned(), ByteString(TOKEN.into()))]);
        let client = client_with(Some(data)).await;
        let token =
            CallbackToken::from_secret(client.clone(), "ops", DEFAULT_TOKEN_SECRET, TOKEN_KEY)
                .await
                .unwrap();
        assert!(token.matches(TOKEN.as_bytes()));

        let err = CallbackToken::from_secret(client, "ops", DEFAULT_TOKEN_SECRET, "other")
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("ops/polar-mpd-callback-token"), "{err}");
        assert!(err.contains("`other`"), "{err}");

        let err = CallbackToken::from_secret(client_with(None).await, "ops", "nope", TOKEN_KEY)
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("ops/nope"), "{err}");
    }

    #[test]
    fn the_token_can_come_from_a_mounted_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, format!("{TOKEN}\n")).unwrap();
        assert!(CallbackToken::from_file(&path)
            .unwrap()
            .matches(TOKEN.as_bytes()));
        let err = CallbackToken::from_file(&dir.path().join("missing")).unwrap_err();
        assert!(err.to_string().contains("missing"), "{err}");
    }
}
