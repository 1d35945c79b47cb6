//! Reading MPDCluster YAML files strictly: malformed YAML, unknown fields, wrong types and
//! missing fields are errors naming the file and the field.

use std::io::Read;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_yaml::Value;

use super::LocalError;
use crate::crd::MPDCluster;

/// The `apiVersion` of an MPDCluster.
pub const API_VERSION: &str = "mpd.polardb.aliyun.com/v1";
/// The `kind` of an MPDCluster.
pub const KIND: &str = "MPDCluster";

/// The most bytes an MPDCluster file may hold: the API server's object limit (1 MiB), which
/// no object it stores can pass. A larger file is refused unread.
pub const MAX_DOCUMENT_BYTES: u64 = 1 << 20;

/// The keys of `metadata` a document may set and that are checked; other metadata keys
/// (uid, resourceVersion, ... as in a dumped object) are ignored.
const METADATA_KEYS: [&str; 4] = ["name", "namespace", "annotations", "labels"];

/// Reads the MPDClusters of a YAML file holding one or more documents (`---`); empty
/// documents are skipped.
///
/// Errors: [`LocalError::Input`] when the file cannot be read; [`LocalError::TooLarge`] when
/// it holds more than [`MAX_DOCUMENT_BYTES`] (it is not read); [`LocalError::Yaml`] when it is
/// not YAML (with line and column) or holds no document; [`LocalError::Invalid`] naming the
/// field (dotted path) for a wrong `apiVersion`/`kind`, a wrong type, a missing required field
/// (including `metadata.name`), an invalid name and any unknown field. In a file of several
/// documents the message starts with `document <n>:` (from 1).
pub fn load_documents(path: &Path) -> Result<Vec<MPDCluster>, LocalError> {
    let bytes = read_limited(path, MAX_DOCUMENT_BYTES).map_err(|e| match e {
        Limited::TooLarge(bytes) => LocalError::TooLarge {
            path: path.to_path_buf(),
            bytes,
            limit: MAX_DOCUMENT_BYTES,
        },
        Limited::Io(source) => LocalError::Input {
            path: path.to_path_buf(),
            source,
        },
    })?;
    parse_documents(path, &bytes)
}

/// Why [`read_limited`] read nothing.
#[derive(Debug)]
pub(crate) enum Limited {
    /// The file holds this many bytes, more than the limit.
    TooLarge(u64),
    /// The file could not be read.
    Io(std::io::Error),
}

/// The bytes of `path`, refusing unread a file of more than `limit` bytes (its size is
/// checked before, and the read stops one byte past the limit, should it grow meanwhile).
pub(crate) fn read_limited(path: &Path, limit: u64) -> Result<Vec<u8>, Limited> {
    let file = std::fs::File::open(path).map_err(Limited::Io)?;
    let len = file.metadata().map_err(Limited::Io)?.len();
    if len > limit {
        return Err(Limited::TooLarge(len));
    }
    let mut bytes = Vec::new();
    file.take(limit.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(Limited::Io)?;
    let read = u64::try_from(bytes.len()).unwrap_or(u64::MAX);
    if read > limit {
        return Err(Limited::TooLarge(read));
    }
    Ok(bytes)
}

/// [`load_documents`] of the content of a file (`path` names it in errors): UTF-8, with or
/// without a byte-order mark, lines ending in LF or CRLF, at most [`MAX_DOCUMENT_BYTES`].
///
/// Errors: as [`load_documents`]; [`LocalError::TooLarge`] for content over the limit, and
/// [`LocalError::Yaml`] for content that is not UTF-8.
pub fn parse_documents(path: &Path, bytes: &[u8]) -> Result<Vec<MPDCluster>, LocalError> {
    let len = u64::try_from(bytes.len()).unwrap_or(u64::MAX);
    if len > MAX_DOCUMENT_BYTES {
        return Err(LocalError::TooLarge {
            path: path.to_path_buf(),
            bytes: len,
            limit: MAX_DOCUMENT_BYTES,
        });
    }
    let text = std::str::from_utf8(bytes).map_err(|e| LocalError::Yaml {
        path: path.to_path_buf(),
        message: format!("the file is not UTF-8 text ({e})"),
    })?;
    // A byte-order mark and CRLF line ends, as editors on Windows write them.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let text = if text.contains('\r') {
        std::borrow::Cow::Owned(text.replace("\r\n", "\n"))
    } else {
        std::borrow::Cow::Borrowed(text)
    };
    let mut values = Vec::new();
    for document in serde_yaml::Deserializer::from_str(&text) {
        let value = Value::deserialize(document).map_err(|e| yaml_error(path, &e))?;
        if !value.is_null() {
            values.push(value);
        }
    }
    if values.is_empty() {
        return Err(LocalError::Yaml {
            path: path.to_path_buf(),
            message: "the file holds no YAML document".to_string(),
        });
    }
    let several = values.len() > 1;
    values
        .into_iter()
        .enumerate()
        .map(|(i, value)| {
            parse_document(value).map_err(|(field, message)| LocalError::Invalid {
                path: path.to_path_buf(),
                field,
                message: if several {
                    format!("document {}: {message}", i + 1)
                } else {
                    message
                },
            })
        })
        .collect()
}

/// Loads every file in order and fails on the first error, writing nothing. Returns each
/// document with its file.
pub fn validate_paths(paths: &[PathBuf]) -> Result<Vec<(PathBuf, MPDCluster)>, LocalError> {
    let mut out = Vec::new();
    for path in paths {
        for cluster in load_documents(path)? {
            out.push((path.clone(), cluster));
        }
    }
    Ok(out)
}

fn yaml_error(path: &Path, error: &serde_yaml::Error) -> LocalError {
    // serde_yaml's message ends with the location ("at line L column C") when known.
    let message = match error.location() {
        Some(at) if !error.to_string().contains(" line ") => {
            format!("{error} at line {} column {}", at.line(), at.column())
        }
        _ => error.to_string(),
    };
    LocalError::Yaml {
        path: path.to_path_buf(),
        message,
    }
}

/// One document to an MPDCluster, or `(field, message)`.
fn parse_document(value: Value) -> Result<MPDCluster, (String, String)> {
    if !value.is_mapping() {
        return Err((
            "(root)".to_string(),
            "a document must be a mapping (an MPDCluster object)".to_string(),
        ));
    }
    expect_string(&value, "apiVersion", API_VERSION)?;
    expect_string(&value, "kind", KIND)?;

    let cluster: MPDCluster = serde_path_to_error::deserialize(value.clone()).map_err(|e| {
        let path = e.path().to_string();
        let message = e.inner().to_string();
        match missing_field(&message) {
            Some(name) if path == "." => (name.to_string(), "missing required field".to_string()),
            Some(name) => (
                format!("{path}.{name}"),
                "missing required field".to_string(),
            ),
            None => (path, message),
        }
    })?;

    match cluster.metadata.name.as_deref() {
        None | Some("") => {
            return Err((
                "metadata.name".to_string(),
                "missing required field".to_string(),
            ))
        }
        Some(name) => check_dns_subdomain(name).map_err(|m| ("metadata.name".to_string(), m))?,
    }
    if let Some(namespace) = cluster.metadata.namespace.as_deref() {
        check_dns_label(namespace).map_err(|m| ("metadata.namespace".to_string(), m))?;
    }

    let round_trip = serde_yaml::to_value(&cluster).map_err(|e| {
        (
            ".".to_string(),
            format!("cannot re-serialise the object: {e}"),
        )
    })?;
    if let Some(field) = unknown_field(&value, &round_trip) {
        return Err((field, "unknown field".to_string()));
    }
    Ok(cluster)
}

fn expect_string(value: &Value, key: &str, expected: &str) -> Result<(), (String, String)> {
    match value.get(key) {
        Some(Value::String(s)) if s == expected => Ok(()),
        Some(Value::String(s)) => Err((key.to_string(), format!("expected {expected}, found {s}"))),
        Some(other) => Err((
            key.to_string(),
            format!("expected {expected}, found {}", describe(other)),
        )),
        None => Err((
            key.to_string(),
            format!("missing required field (expected {expected})"),
        )),
    }
}

fn describe(value: &Value) -> String {
    serde_yaml::to_string(value)
        .map(|s| s.trim_end().to_string())
        .unwrap_or_else(|_| "a non-string value".to_string())
}

/// The name in serde's "missing field `name`" message.
fn missing_field(message: &str) -> Option<&str> {
    let rest = message.strip_prefix("missing field `")?;
    rest.split('`').next()
}

/// The first key of `input` that the typed round trip dropped, as a dotted path. `status`
/// and the metadata keys other than [`METADATA_KEYS`] are not checked; null values are
/// fine (an unset optional field).
fn unknown_field(input: &Value, round_trip: &Value) -> Option<String> {
    let (Value::Mapping(input), Value::Mapping(round_trip)) = (input, round_trip) else {
        return None;
    };
    for (key, value) in input {
        let name = key_name(key);
        match name.as_str() {
            "status" => continue,
            "metadata" => {
                let (Value::Mapping(meta), Some(Value::Mapping(meta_rt))) =
                    (value, round_trip.get("metadata"))
                else {
                    continue;
                };
                for known in METADATA_KEYS {
                    if let Some(v) = meta.get(known) {
                        let path = format!("metadata.{known}");
                        if let Some(f) = compare(v, meta_rt.get(known), path) {
                            return Some(f);
                        }
                    }
                }
            }
            _ => {
                if let Some(f) = compare(value, round_trip.get(key), name) {
                    return Some(f);
                }
            }
        }
    }
    None
}

/// The first key under `input` (at `path`) missing from `round_trip`.
fn compare(input: &Value, round_trip: Option<&Value>, path: String) -> Option<String> {
    if input.is_null() {
        return None;
    }
    let Some(round_trip) = round_trip else {
        return Some(path);
    };
    match (input, round_trip) {
        (Value::Mapping(input), Value::Mapping(round_trip)) => {
            input.iter().find_map(|(key, value)| {
                compare(
                    value,
                    round_trip.get(key),
                    format!("{path}.{}", key_name(key)),
                )
            })
        }
        (Value::Sequence(input), Value::Sequence(round_trip)) => input
            .iter()
            .enumerate()
            .find_map(|(i, value)| compare(value, round_trip.get(i), format!("{path}[{i}]"))),
        (Value::Tagged(input), Value::Tagged(round_trip)) => {
            compare(&input.value, Some(&round_trip.value), path)
        }
        _ => None,
    }
}

fn key_name(key: &Value) -> String {
    match key {
        Value::String(s) => s.clone(),
        other => describe(other),
    }
}

/// A Kubernetes object name: a DNS-1123 subdomain (lowercase alphanumerics, `-` and `.`,
/// starting and ending alphanumeric, at most 253 characters).
fn check_dns_subdomain(name: &str) -> Result<(), String> {
    let ok = name.len() <= 253 && name.split('.').all(label_ok);
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{name:?} is not a valid name (lowercase letters, digits, '-' and '.', starting and ending with a letter or digit, at most 253 characters)"
        ))
    }
}

/// A namespace: a DNS-1123 label (at most 63 characters, no `.`).
fn check_dns_label(name: &str) -> Result<(), String> {
    if name.len() <= 63 && label_ok(name) {
        Ok(())
    } else {
        Err(format!(
            "{name:?} is not a valid namespace (lowercase letters, digits and '-', starting and ending with a letter or digit, at most 63 characters)"
        ))
    }
}

fn label_ok(label: &str) -> bool {
    let alnum = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    !label.is_empty()
        && label.chars().all(|c| alnum(c) || c == '-')
        && label.starts_with(alnum)
        && label.ends_with(alnum)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "\
apiVersion: mpd.polardb.aliyun.com/v1
kind: MPDCluster
metadata:
  name: c1
  namespace: team-a
  labels:
    app: pg
  annotations:
    note: hello
  uid: ignored-when-dumped
spec:
  operatorName: polar-mpd
  dbClusterType: share
  followerNum: 1
  classInfo:
    className: polar.o.x4.medium
  classInfoModifyTo:
    className: \"\"
  dbType: null
  shareStore:
    drive: pvc
    sharePvcName: pvc-1
    volumeId: wwid-1
    volumeType: lun
  netCfg:
    engineStartPort: 5432
  versionCfg:
    versionName: \"\"
status:
  clusterStatus: Running
  whatever: 1
";

    fn write(dir: &tempfile::TempDir, name: &str, text: &str) -> PathBuf {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    /// Loads `text` from a temp file, expecting `Invalid`; returns (file, field, message).
    fn invalid(text: &str) -> (PathBuf, String, String, LocalError) {
        let dir = tempfile::tempdir().unwrap();
        let path = write(&dir, "c.yaml", text);
        let err = load_documents(&path).unwrap_err();
        match &err {
            LocalError::Invalid {
                path: p,
                field,
                message,
            } => {
                assert_eq!(p, &path);
                assert!(err.to_string().contains("c.yaml"), "{err}");
                assert!(err.to_string().contains(field.as_str()), "{err}");
                assert_eq!(err.exit_code(), 2);
                (p.clone(), field.clone(), message.clone(), err)
            }
            other => panic!("expected Invalid, got {other:?}"),
        }
    }

    #[test]
    fn a_good_document_loads() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(&dir, "c.yaml", GOOD);
        let docs = load_documents(&path).unwrap();
        assert_eq!(docs.len(), 1);
        let c = &docs[0];
        assert_eq!(c.metadata.name.as_deref(), Some("c1"));
        assert_eq!(c.metadata.namespace.as_deref(), Some("team-a"));
        assert_eq!(c.spec.follower_num, 1);
        assert_eq!(c.spec.share_store.as_ref().unwrap().volume_id, "wwid-1");
    }

    #[test]
    fn a_document_over_one_mib_is_refused_naming_the_file_and_the_size() {
        let dir = tempfile::tempdir().unwrap();
        let huge = GOOD.replace(
            "    note: hello\n",
            &format!("    note: \"{}\"\n", "x".repeat(1 << 20)),
        );
        let path = write(&dir, "huge.yaml", &huge);
        let err = load_documents(&path).unwrap_err();
        let LocalError::TooLarge {
            path: p,
            bytes,
            limit,
        } = &err
        else {
            panic!("{err:?}");
        };
        assert_eq!(p, &path);
        assert_eq!(*bytes, huge.len() as u64);
        assert_eq!(*limit, MAX_DOCUMENT_BYTES);
        let text = err.to_string();
        assert!(text.contains("huge.yaml"), "{text}");
        assert!(text.contains(&huge.len().to_string()), "{text}");
        assert_eq!(err.exit_code(), 2);
        // The same content handed over as bytes is refused the same way.
        assert!(matches!(
            parse_documents(&path, huge.as_bytes()),
            Err(LocalError::TooLarge { .. })
        ));
        // Just under the limit is fine.
        let fits = GOOD.replace(
            "    note: hello\n",
            &format!("    note: \"{}\"\n", "x".repeat((1 << 20) - GOOD.len())),
        );
        assert!(fits.len() <= 1 << 20);
        assert_eq!(
            load_documents(&write(&dir, "fits.yaml", &fits))
                .unwrap()
                .len(),
            1
        );
    }

    #[test]
    fn a_bom_and_crlf_line_ends_are_accepted() {
        let dir = tempfile::tempdir().unwrap();
        let windows = format!("\u{feff}{}", GOOD.replace('\n', "\r\n"));
        let path = write(&dir, "windows.yaml", &windows);
        let docs = load_documents(&path).unwrap();
        assert_eq!(docs.len(), 1);
        assert_eq!(docs[0].metadata.name.as_deref(), Some("c1"));
        assert_eq!(
            docs[0].metadata.annotations.as_ref().unwrap()["note"],
            "hello",
            "no carriage return is left in a value"
        );
        let unix = write(&dir, "unix.yaml", GOOD);
        assert_eq!(
            serde_json::to_value(load_documents(&unix).unwrap()).unwrap(),
            serde_json::to_value(&docs).unwrap()
        );
        // Several documents with CRLF too.
        let two =
            format!("{GOOD}---\n{}", GOOD.replace("name: c1", "name: c2")).replace('\n', "\r\n");
        assert_eq!(
            load_documents(&write(&dir, "two.yaml", &two))
                .unwrap()
                .len(),
            2
        );
    }

    #[test]
    fn a_file_that_is_not_utf8_is_malformed_naming_the_file() {
        let err = parse_documents(Path::new("bin.yaml"), b"kind: \xff\xfe\n").unwrap_err();
        assert!(matches!(err, LocalError::Yaml { .. }), "{err:?}");
        assert!(err.to_string().contains("bin.yaml"), "{err}");
    }

    #[test]
    fn several_documents_load_in_order_and_empty_ones_are_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let second = GOOD.replace("name: c1", "name: c2");
        let text = format!("---\n{GOOD}---\n{second}---\n");
        let path = write(&dir, "c.yaml", &text);
        let docs = load_documents(&path).unwrap();
        let names: Vec<_> = docs
            .iter()
            .map(|c| c.metadata.name.clone().unwrap())
            .collect();
        assert_eq!(names, ["c1", "c2"]);
    }

    #[test]
    fn malformed_yaml_names_the_file_and_the_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(&dir, "bad.yaml", "kind: MPDCluster\nspec: [1, 2\n");
        let err = load_documents(&path).unwrap_err();
        let LocalError::Yaml { path: p, message } = &err else {
            panic!("{err:?}");
        };
        assert_eq!(p, &path);
        assert!(message.contains("line 3 column 1"), "{message}");
        assert!(err.to_string().contains("bad.yaml"));
        assert_eq!(err.exit_code(), 2);
    }

    #[test]
    fn an_empty_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(&dir, "empty.yaml", "---\n");
        assert!(matches!(
            load_documents(&path).unwrap_err(),
            LocalError::Yaml { .. }
        ));
    }

    #[test]
    fn an_unknown_field_is_named_by_its_path() {
        let text = GOOD.replace("volumeId: wwid-1", "volumeID: wwid-1");
        let (_, field, message, _) = invalid(&text);
        assert_eq!(field, "spec.shareStore.volumeID");
        assert_eq!(message, "unknown field");
        let (_, field, _, _) =
            invalid(&GOOD.replace("followerNum: 1", "followerNum: 1\n  extra: x"));
        assert_eq!(field, "spec.extra");
        let (_, field, _, _) = invalid(&format!("{GOOD}bogus: 1\n"));
        assert_eq!(field, "bogus");
    }

    #[test]
    fn a_wrong_type_is_named_by_its_path() {
        let (_, field, message, _) = invalid(&GOOD.replace("followerNum: 1", "followerNum: two"));
        assert_eq!(field, "spec.followerNum");
        assert!(message.contains("invalid type"), "{message}");
    }

    #[test]
    fn a_missing_required_field_is_named_by_its_path() {
        let text = GOOD.replace("    className: polar.o.x4.medium\n", "    cpu: \"2\"\n");
        let (_, field, message, _) = invalid(&text);
        assert_eq!(field, "spec.classInfo.className");
        assert_eq!(message, "missing required field");
        let (_, field, _, _) = invalid(&GOOD.replace("  followerNum: 1\n", ""));
        assert_eq!(field, "spec.followerNum");
        let (_, field, _, _) = invalid(&GOOD.replace("  name: c1\n", ""));
        assert_eq!(field, "metadata.name");
        let (_, field, _, _) = invalid(&GOOD.replace("  name: c1\n", "  name: C_1\n"));
        assert_eq!(field, "metadata.name");
    }

    #[test]
    fn a_wrong_kind_or_api_version_is_invalid() {
        let (_, field, message, _) = invalid(&GOOD.replace("kind: MPDCluster", "kind: Pod"));
        assert_eq!(field, "kind");
        assert!(message.contains("MPDCluster") && message.contains("Pod"));
        let (_, field, _, _) = invalid(&GOOD.replace("mpd.polardb.aliyun.com/v1", "v1"));
        assert_eq!(field, "apiVersion");
        let (_, field, _, _) = invalid(&GOOD.replace("kind: MPDCluster\n", ""));
        assert_eq!(field, "kind");
    }

    #[test]
    fn the_bad_document_of_several_is_numbered() {
        let text = format!(
            "{GOOD}---\n{}",
            GOOD.replace("followerNum: 1", "followerNum: x")
        );
        let (_, field, message, _) = invalid(&text);
        assert_eq!(field, "spec.followerNum");
        assert!(message.starts_with("document 2: "), "{message}");
    }

    #[test]
    fn validate_paths_stops_at_the_first_bad_file() {
        let dir = tempfile::tempdir().unwrap();
        let a = write(&dir, "a.yaml", GOOD);
        let b = write(&dir, "b.yaml", &GOOD.replace("name: c1", "name: c2"));
        let ok = validate_paths(&[a.clone(), b.clone()]).unwrap();
        assert_eq!(ok.len(), 2);
        assert_eq!(ok[1].0, b);
        let bad = write(&dir, "bad.yaml", "kind: [");
        let missing = dir.path().join("missing.yaml");
        let err = validate_paths(&[a.clone(), bad.clone(), missing]).unwrap_err();
        assert!(matches!(&err, LocalError::Yaml { path, .. } if path == &bad));
        let err = validate_paths(&[a, dir.path().join("missing.yaml")]).unwrap_err();
        assert!(err.to_string().contains("missing.yaml"));
    }
}
