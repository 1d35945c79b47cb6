//! The caretaker: a resource's runtimes in one store, with retention and a byte budget.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use super::document::{completion_reserve, RunDocument};
use super::{MementoEntries, MementoError, MementoStorage, MementoWrite};
use crate::failpoints::{self, failpoint};
use crate::WorkflowRuntime;

/// The key of run `seq` of `flow`: `<seq>-<flowName>`.
pub fn memento_key(seq: u64, flow: &str) -> String {
    format!("{seq}-{flow}")
}

/// Splits a key into its sequence number and flow name; `None` for keys the engine did not
/// write (they are left alone, never pruned). The largest `u64` is no engine sequence: it
/// would leave no next one.
pub fn parse_memento_key(key: &str) -> Option<(u64, &str)> {
    let (seq, flow) = key.split_once('-')?;
    let seq: u64 = seq.parse().ok()?;
    (seq < u64::MAX).then_some((seq, flow))
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

/// Keeps one resource's runtimes: shares the store's content after one load, writes every
/// transition, prunes finished runs beyond the newest `retention`, and refuses a write that
/// would exceed the byte budget.
///
/// The run it writes is kept as one encoded fragment per step, so a transition re-encodes the
/// run header and the step that moved only; a stored run is parsed only when asked for.
pub struct MementoCaretaker {
    name: String,
    storage: Arc<dyn MementoStorage>,
    entries: MementoEntries,
    /// The plain-string copy that [`MementoCaretaker::entries`] hands out, made on demand.
    plain: OnceLock<BTreeMap<String, String>>,
    /// The run last written, as fragments; dropped when that run is read back (the reader's
    /// copy is then the one that moves on).
    document: Mutex<Option<RunDocument>>,
    retention: usize,
    budget: usize,
}

impl std::fmt::Debug for MementoCaretaker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MementoCaretaker")
            .field("name", &self.name)
            .field(
                "keys",
                &self.entries.iter().map(|(k, _)| k).collect::<Vec<_>>(),
            )
            .field("bytes", &self.entries.bytes())
            .finish()
    }
}

/// What changed in a runtime since the caretaker last wrote it.
#[derive(Clone, Copy, Debug)]
enum Changed {
    /// Anything: encode it all.
    All,
    /// The run header, and the step at this position when given.
    Header(Option<usize>),
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
        let entries = storage.load_entries().await?;
        Ok(MementoCaretaker {
            name: name.into(),
            storage,
            entries,
            plain: OnceLock::new(),
            document: Mutex::new(None),
            retention,
            budget,
        })
    }

    /// The store's name (`<resource>-workflow`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Where the store lives, for messages: its file when it has one, else its name.
    pub fn location(&self) -> String {
        self.storage.location().unwrap_or_else(|| self.name.clone())
    }

    /// The cached content of the store, as plain strings (copied on the first call after a
    /// write; [`MementoCaretaker::shared_entries`] does not copy).
    pub fn entries(&self) -> &BTreeMap<String, String> {
        self.plain.get_or_init(|| self.entries.to_map())
    }

    /// The cached content of the store, shared with it.
    pub fn shared_entries(&self) -> &MementoEntries {
        &self.entries
    }

    /// The cached size of the store in bytes (keys plus values).
    pub fn bytes(&self) -> usize {
        self.entries.bytes()
    }

    /// The next sequence number: one more than the highest stored.
    pub fn next_seq(&self) -> u64 {
        self.entries
            .latest()
            .map_or(1, |(seq, _, _)| seq.saturating_add(1))
    }

    /// Every stored runtime, by sequence. A value that does not parse is an error naming the
    /// store and key; nothing is changed by reading.
    pub fn runtimes(&self) -> Result<Vec<StoredRuntime>, MementoError> {
        self.entries
            .runs()
            .map(|(seq, key, json)| self.read(seq, key, json))
            .collect()
    }

    /// The runtime with the highest sequence, if any.
    pub fn latest(&self) -> Result<Option<StoredRuntime>, MementoError> {
        self.entries
            .latest()
            .map(|(seq, key, json)| self.read(seq, key, json))
            .transpose()
    }

    /// The uncompleted runtime with the highest sequence, if any.
    pub fn latest_uncompleted(&self) -> Result<Option<StoredRuntime>, MementoError> {
        self.entries
            .latest_uncompleted()
            .map(|(seq, key, json)| self.read(seq, key, json))
            .transpose()
    }

    /// Every uncompleted runtime, newest first (usually none or one).
    pub fn uncompleted(&self) -> Result<Vec<StoredRuntime>, MementoError> {
        self.entries
            .uncompleted_newest_first()
            .map(|(seq, key, json)| self.read(seq, key, json))
            .collect()
    }

    fn read(&self, seq: u64, key: &str, json: &str) -> Result<StoredRuntime, MementoError> {
        let location = match self.storage.location() {
            Some(file) => format!("{}/{key} (file {file})", self.name),
            None => format!("{}/{key}", self.name),
        };
        let runtime = super::decode_runtime(&location, json)?;
        let mut document = self.document.lock().unwrap_or_else(PoisonError::into_inner);
        if document.as_ref().is_some_and(|d| d.seq == seq) {
            *document = None;
        }
        Ok(StoredRuntime {
            seq,
            key: key.to_owned(),
            runtime,
        })
    }

    /// Writes run `seq`, pruning finished runs beyond the retention in the same write. Fails
    /// without writing when the store would exceed its budget; a new run fails so when it
    /// would exceed it once all its steps are timed and it is completed (its outputs aside),
    /// so that a run does not stop half-way at the budget.
    pub async fn save(&mut self, seq: u64, runtime: &WorkflowRuntime) -> Result<(), MementoError> {
        self.write_run(seq, runtime, Changed::All).await
    }

    /// [`MementoCaretaker::save`] of the runtime this caretaker last wrote as `seq`, in which
    /// only the run's own fields and step `step` changed since.
    pub(crate) async fn save_step(
        &mut self,
        seq: u64,
        runtime: &WorkflowRuntime,
        step: usize,
    ) -> Result<(), MementoError> {
        self.write_run(seq, runtime, Changed::Header(Some(step)))
            .await
    }

    /// [`MementoCaretaker::save`] of the runtime this caretaker last wrote as `seq`, in which
    /// only the run's own fields changed since (no step).
    pub(crate) async fn save_header(
        &mut self,
        seq: u64,
        runtime: &WorkflowRuntime,
    ) -> Result<(), MementoError> {
        self.write_run(seq, runtime, Changed::Header(None)).await
    }

    fn encode(
        &mut self,
        seq: u64,
        runtime: &WorkflowRuntime,
        changed: Changed,
    ) -> Result<(RunDocument, String), serde_json::Error> {
        let cached = self
            .document
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let (document, value) = match (cached, changed) {
            (Some(mut document), Changed::Header(step)) if document.fits(seq, runtime) => {
                let value = document.update(runtime, step)?;
                (document, value)
            }
            _ => RunDocument::encode(seq, memento_key(seq, &runtime.flow_name), runtime)?,
        };
        #[cfg(debug_assertions)]
        if let Ok(full) = serde_json::to_string(runtime) {
            assert_eq!(
                value, full,
                "the memento of run {seq} drifted from its runtime: a save named the wrong change"
            );
        }
        Ok((document, value))
    }

    async fn write_run(
        &mut self,
        seq: u64,
        runtime: &WorkflowRuntime,
        changed: Changed,
    ) -> Result<(), MementoError> {
        let (mut document, value) =
            self.encode(seq, runtime, changed)
                .map_err(|source| MementoError::Corrupt {
                    location: format!("{}/{}", self.name, memento_key(seq, &runtime.flow_name)),
                    source,
                })?;
        let key = document.key.clone();
        let is_finished = runtime.flow_status.is_finished();

        // What is stored under the key: known from the last write of this run, else looked up.
        let old = match document.written {
            Some(written) => Some(written),
            None => self.entries.entry_info(&key),
        };
        let old_len = old.map_or(0, |(len, _)| key.len() + len);
        // A new run must fit with what it needs to complete (see `completion_reserve`).
        let reserve = if old.is_none() && !is_finished {
            completion_reserve(runtime)
        } else {
            0
        };
        let mut bytes = self.entries.bytes() - old_len + key.len() + value.len() + reserve;
        let finished_others =
            self.entries.finished_count() - usize::from(old.is_some_and(|(_, done)| done));
        let prune = (finished_others + usize::from(is_finished))
            .saturating_sub(self.retention)
            .min(finished_others);
        let mut remove = Vec::with_capacity(prune);
        if prune > 0 {
            for (other_seq, other_key, size) in self.entries.finished_oldest_first() {
                if remove.len() == prune {
                    break;
                }
                if other_seq == seq {
                    continue;
                }
                bytes -= size;
                remove.push(other_key.to_owned());
            }
        }
        if bytes > self.budget {
            return Err(MementoError::BudgetExceeded {
                caretaker: self.name.clone(),
                bytes,
                budget: self.budget,
            });
        }
        let change = MementoWrite { key, value, remove };
        let shared: Arc<str> = Arc::from(change.value.as_str());
        failpoint!(failpoints::MEMENTO_SAVE_BEFORE);
        self.storage.write_shared(&change, shared.clone()).await?;
        failpoint!(failpoints::MEMENTO_SAVE_AFTER);
        self.entries.apply_shared(&change, shared);
        self.plain = OnceLock::new();
        document.written = Some((change.value.len(), is_finished));
        document.reuse(change.value);
        *self
            .document
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner) = Some(document);
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

    /// Found by `tests/no_panic.rs`: the next sequence after `u64::MAX` overflowed.
    #[tokio::test]
    async fn a_key_with_the_largest_sequence_is_a_foreign_key_and_leaves_a_next_sequence() {
        assert_eq!(parse_memento_key("18446744073709551615-F"), None);
        let mut storage = MockMementoStorage::new();
        storage.expect_load_all().returning(|| {
            Ok(BTreeMap::from([
                ("18446744073709551615-F".to_string(), "{}".to_string()),
                ("18446744073709551614-F".to_string(), "{}".to_string()),
            ]))
        });
        let c = MementoCaretaker::load("c1-workflow", Arc::new(storage), 10, 1 << 20)
            .await
            .unwrap();
        assert_eq!(c.next_seq(), u64::MAX);
    }

    #[test]
    fn foreign_keys_are_not_memento_keys() {
        assert_eq!(
            parse_memento_key("12-ModifyClass"),
            Some((12, "ModifyClass"))
        );
        assert_eq!(parse_memento_key("notes"), None);
        assert_eq!(
            parse_memento_key("18446744073709551614-F"),
            Some((u64::MAX - 1, "F"))
        );
        assert_eq!(parse_memento_key("x-Flow"), None);
    }
}
