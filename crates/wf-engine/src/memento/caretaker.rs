//! The caretaker: a resource's runtimes in one store, with retention and a byte budget.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::{MementoError, MementoStorage, MementoWrite};
use crate::WorkflowRuntime;

/// The key of run `seq` of `flow`: `<seq>-<flowName>`.
pub fn memento_key(seq: u64, flow: &str) -> String {
    format!("{seq}-{flow}")
}

/// Splits a key into its sequence number and flow name; `None` for keys the engine did not
/// write (they are left alone, never pruned).
pub fn parse_memento_key(key: &str) -> Option<(u64, &str)> {
    let (seq, flow) = key.split_once('-')?;
    Some((seq.parse().ok()?, flow))
}

/// A runtime as stored, with its sequence number and key.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredRuntime {
    /// The sequence number (1, 2, 3 …).
    pub seq: u64,
    /// The key, `<seq>-<flowName>`.
    pub key: String,
    /// The runtime.
    pub runtime: WorkflowRuntime,
}

#[derive(Clone, Debug)]
struct IndexEntry {
    key: String,
    finished: bool,
}

/// Keeps one resource's runtimes: caches the store's content after one load, writes every
/// transition, prunes finished runs beyond the newest `retention`, and refuses a write that
/// would exceed the byte budget.
pub struct MementoCaretaker {
    name: String,
    storage: Arc<dyn MementoStorage>,
    entries: BTreeMap<String, String>,
    index: BTreeMap<u64, IndexEntry>,
    bytes: usize,
    retention: usize,
    budget: usize,
}

impl std::fmt::Debug for MementoCaretaker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MementoCaretaker")
            .field("name", &self.name)
            .field("keys", &self.entries.keys().collect::<Vec<_>>())
            .field("bytes", &self.bytes)
            .finish()
    }
}

fn finished(value: &str) -> bool {
    // Fast path: the engine writes `flowStatus` first. Anything else is parsed.
    if let Some(rest) = value.strip_prefix("{\"flowStatus\":\"") {
        if let Some((status, _)) = rest.split_once('"') {
            return matches!(status, "completed" | "failedAndCompleted");
        }
    }
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct StatusOnly {
        flow_status: crate::FlowStatus,
    }
    serde_json::from_str::<StatusOnly>(value).is_ok_and(|s| s.flow_status.is_finished())
}

impl MementoCaretaker {
    /// Loads the store once. `retention` finished runs are kept; `budget` bytes (keys plus
    /// values) is the most the store may hold.
    pub async fn load(
        name: impl Into<String>,
        storage: Arc<dyn MementoStorage>,
        retention: usize,
        budget: usize,
    ) -> Result<Self, MementoError> {
        let entries = storage.load_all().await?;
        let mut index = BTreeMap::new();
        let mut bytes = 0;
        for (key, value) in &entries {
            bytes += key.len() + value.len();
            if let Some((seq, _)) = parse_memento_key(key) {
                index.insert(
                    seq,
                    IndexEntry {
                        key: key.clone(),
                        finished: finished(value),
                    },
                );
            }
        }
        Ok(MementoCaretaker {
            name: name.into(),
            storage,
            entries,
            index,
            bytes,
            retention,
            budget,
        })
    }

    /// The store's name (`<resource>-workflow`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The cached content of the store.
    pub fn entries(&self) -> &BTreeMap<String, String> {
        &self.entries
    }

    /// The cached size of the store in bytes (keys plus values).
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// The next sequence number: one more than the highest stored.
    pub fn next_seq(&self) -> u64 {
        self.index.keys().next_back().map_or(1, |s| s + 1)
    }

    /// Every stored runtime, by sequence. A value that does not parse is an error naming the
    /// store and key; nothing is changed by reading.
    pub fn runtimes(&self) -> Result<Vec<StoredRuntime>, MementoError> {
        self.index
            .iter()
            .map(|(seq, entry)| self.read(*seq, &entry.key))
            .collect()
    }

    /// The runtime with the highest sequence, if any.
    pub fn latest(&self) -> Result<Option<StoredRuntime>, MementoError> {
        self.index
            .iter()
            .next_back()
            .map(|(seq, entry)| self.read(*seq, &entry.key))
            .transpose()
    }

    /// The uncompleted runtime with the highest sequence, if any.
    pub fn latest_uncompleted(&self) -> Result<Option<StoredRuntime>, MementoError> {
        self.index
            .iter()
            .rev()
            .find(|(_, entry)| !entry.finished)
            .map(|(seq, entry)| self.read(*seq, &entry.key))
            .transpose()
    }

    /// Every uncompleted runtime, newest first (usually none or one).
    pub fn uncompleted(&self) -> Result<Vec<StoredRuntime>, MementoError> {
        self.index
            .iter()
            .rev()
            .filter(|(_, entry)| !entry.finished)
            .map(|(seq, entry)| self.read(*seq, &entry.key))
            .collect()
    }

    fn read(&self, seq: u64, key: &str) -> Result<StoredRuntime, MementoError> {
        let value = self.entries.get(key).map(String::as_str).unwrap_or("");
        let runtime = serde_json::from_str(value).map_err(|source| MementoError::Corrupt {
            location: format!("{}/{key}", self.name),
            source,
        })?;
        Ok(StoredRuntime {
            seq,
            key: key.to_owned(),
            runtime,
        })
    }

    /// Writes run `seq`, pruning finished runs beyond the retention in the same write. Fails
    /// without writing when the store would exceed its budget.
    pub async fn save(&mut self, seq: u64, runtime: &WorkflowRuntime) -> Result<(), MementoError> {
        let key = memento_key(seq, &runtime.flow_name);
        let value = serde_json::to_string(runtime).map_err(|source| MementoError::Corrupt {
            location: format!("{}/{key}", self.name),
            source,
        })?;
        let is_finished = runtime.flow_status.is_finished();

        let old_len = self.entries.get(&key).map_or(0, |v| key.len() + v.len());
        let mut bytes = self.bytes - old_len + key.len() + value.len();
        let mut remove = Vec::new();
        let mut kept_finished = usize::from(is_finished);
        for (other_seq, entry) in self.index.iter().rev() {
            if *other_seq == seq || !entry.finished {
                continue;
            }
            if kept_finished < self.retention {
                kept_finished += 1;
                continue;
            }
            bytes -= entry.key.len() + self.entries.get(&entry.key).map_or(0, String::len);
            remove.push(entry.key.clone());
        }
        if bytes > self.budget {
            return Err(MementoError::BudgetExceeded {
                caretaker: self.name.clone(),
                bytes,
                budget: self.budget,
            });
        }
        let change = MementoWrite { key, value, remove };
        self.storage.write(&change).await?;

        for key in &change.remove {
            self.entries.remove(key);
            if let Some((s, _)) = parse_memento_key(key) {
                self.index.remove(&s);
            }
        }
        self.index.insert(
            seq,
            IndexEntry {
                key: change.key.clone(),
                finished: is_finished,
            },
        );
        self.entries.insert(change.key, change.value);
        self.bytes = bytes;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memento::{InMemoryMementoStore, MockMementoStorage};
    use crate::{FlowStatus, JsonMap};
    use mockall::predicate::function;

    fn runtime(flow: &str, status: FlowStatus) -> WorkflowRuntime {
        WorkflowRuntime {
            flow_status: status,
            retry_times: 0,
            resume_times: 0,
            flow_name: flow.into(),
            start_time: None,
            complete_time: None,
            error_message: String::new(),
            init_context: JsonMap::new(),
            running_steps: vec![],
        }
    }

    #[tokio::test]
    async fn runtime_is_saved_under_seq_dash_flow_name_with_next_sequence() {
        let store = InMemoryMementoStore::new();
        let mut c = MementoCaretaker::load(
            "c1-workflow",
            Arc::new(store.storage("ns", "c1-workflow")),
            10,
            1 << 20,
        )
        .await
        .unwrap();
        assert_eq!(c.next_seq(), 1);
        c.save(1, &runtime("Create", FlowStatus::Prepared))
            .await
            .unwrap();
        assert_eq!(c.next_seq(), 2);
        assert!(store.snapshot("ns", "c1-workflow").contains_key("1-Create"));
    }

    #[tokio::test]
    async fn retention_keeps_newest_finished_runtimes_and_never_an_uncompleted_one() {
        let store = InMemoryMementoStore::new();
        let storage = Arc::new(store.storage("ns", "c1-workflow"));
        let mut c = MementoCaretaker::load("c1-workflow", storage, 2, 1 << 20)
            .await
            .unwrap();
        c.save(1, &runtime("Old", FlowStatus::Failed))
            .await
            .unwrap();
        for seq in 2..=6 {
            c.save(seq, &runtime("F", FlowStatus::Completed))
                .await
                .unwrap();
        }
        let keys: Vec<_> = store.snapshot("ns", "c1-workflow").into_keys().collect();
        assert_eq!(keys, ["1-Old", "5-F", "6-F"]);
        assert_eq!(c.next_seq(), 7);
    }

    #[tokio::test]
    async fn byte_budget_is_checked_before_the_write_with_a_clear_error() {
        let mut storage = MockMementoStorage::new();
        storage.expect_load_all().returning(|| Ok(BTreeMap::new()));
        storage.expect_write().never();
        let mut c = MementoCaretaker::load("c1-workflow", Arc::new(storage), 10, 50)
            .await
            .unwrap();
        let err = c
            .save(1, &runtime("Create", FlowStatus::Running))
            .await
            .unwrap_err();
        assert!(matches!(
            err,
            MementoError::BudgetExceeded { budget: 50, .. }
        ));
        assert!(err.to_string().contains("c1-workflow"), "{err}");
        assert!(c.entries().is_empty());
    }

    #[tokio::test]
    async fn pruned_keys_are_removed_in_the_same_single_write() {
        let mut storage = MockMementoStorage::new();
        let done = serde_json::to_string(&runtime("F", FlowStatus::Completed)).unwrap();
        storage.expect_load_all().returning(move || {
            Ok(BTreeMap::from([
                ("1-F".to_string(), done.clone()),
                ("2-F".to_string(), done.clone()),
            ]))
        });
        storage
            .expect_write()
            .with(function(|w: &MementoWrite| {
                w.key == "3-F" && w.remove == ["1-F"]
            }))
            .times(1)
            .returning(|_| Ok(()));
        let mut c = MementoCaretaker::load("c1-workflow", Arc::new(storage), 2, 1 << 20)
            .await
            .unwrap();
        c.save(3, &runtime("F", FlowStatus::Completed))
            .await
            .unwrap();
        assert_eq!(c.entries().keys().collect::<Vec<_>>(), ["2-F", "3-F"]);
    }

    #[tokio::test]
    async fn corrupt_runtime_value_is_an_error_naming_store_and_key() {
        let mut storage = MockMementoStorage::new();
        storage.expect_load_all().returning(|| {
            Ok(BTreeMap::from([(
                "4-Create".to_string(),
                "{not json".to_string(),
            )]))
        });
        let c = MementoCaretaker::load("c1-workflow", Arc::new(storage), 10, 1 << 20)
            .await
            .unwrap();
        let err = c.runtimes().unwrap_err();
        assert!(err.to_string().contains("c1-workflow/4-Create"), "{err}");
        assert_eq!(c.next_seq(), 5);
    }

    #[test]
    fn foreign_keys_are_not_memento_keys() {
        assert_eq!(
            parse_memento_key("12-ModifyClass"),
            Some((12, "ModifyClass"))
        );
        assert_eq!(parse_memento_key("notes"), None);
        assert_eq!(parse_memento_key("x-Flow"), None);
    }
}
