//! A memento store's content as the engine holds it: shared, not copied.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};
use std::iter::Peekable;
use std::sync::Arc;

use super::{parse_memento_key, MementoWrite};

/// A key as the maps hold it: its sort bytes, so that comparing two keys is one `memcmp`.
/// Engine keys (`<seq>-<flowName>`) are `1`, the sequence in 8 big-endian bytes, then the
/// key; other keys are `0` then the key. So keys order by sequence, other keys first.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct EntryKey(Arc<[u8]>);

impl std::borrow::Borrow<[u8]> for EntryKey {
    fn borrow(&self) -> &[u8] {
        &self.0
    }
}

/// The sequence of sort bytes `key`, when it is an engine key.
fn seq_of(key: &[u8]) -> Option<u64> {
    match key {
        [1, seq @ ..] => Some(u64::from_be_bytes(seq.get(..8)?.try_into().ok()?)),
        _ => None,
    }
}

/// The key text of sort bytes `key`.
fn text_of(key: &[u8]) -> &str {
    let text = match key {
        [1, rest @ ..] => rest.get(8..).unwrap_or_default(),
        [_, rest @ ..] => rest,
        [] => &[],
    };
    // Made from a `&str`: always UTF-8.
    std::str::from_utf8(text).unwrap_or_default()
}

impl EntryKey {
    fn seq(&self) -> Option<u64> {
        seq_of(&self.0)
    }

    fn text(&self) -> &str {
        text_of(&self.0)
    }
}

/// The sort bytes of a key, on the stack when short, to look up with.
struct Probe {
    inline: [u8; 72],
    heap: Vec<u8>,
    len: usize,
}

impl Probe {
    fn new(text: &str) -> Self {
        let seq = parse_memento_key(text).map(|(seq, _)| seq);
        let mut probe = Probe {
            inline: [0; 72],
            heap: Vec::new(),
            len: text.len() + if seq.is_some() { 9 } else { 1 },
        };
        let mut head = [0u8; 9];
        let head = match seq {
            Some(seq) => {
                head[0] = 1;
                head[1..].copy_from_slice(&seq.to_be_bytes());
                &head[..]
            }
            None => &head[..1],
        };
        if probe.len <= probe.inline.len() {
            probe.inline[..head.len()].copy_from_slice(head);
            probe.inline[head.len()..probe.len].copy_from_slice(text.as_bytes());
        } else {
            probe.heap.extend_from_slice(head);
            probe.heap.extend_from_slice(text.as_bytes());
        }
        probe
    }

    fn bytes(&self) -> &[u8] {
        if self.heap.is_empty() {
            &self.inline[..self.len]
        } else {
            &self.heap
        }
    }

    fn seq(&self) -> Option<u64> {
        seq_of(self.bytes())
    }

    fn text(&self) -> &str {
        text_of(self.bytes())
    }

    fn to_owned(&self) -> EntryKey {
        EntryKey(Arc::from(self.bytes()))
    }
}

/// A stored document and whether the run it holds is over.
#[derive(Clone, Debug)]
struct Stored {
    json: Arc<str>,
    finished: bool,
}

impl Stored {
    fn new(json: &str) -> Self {
        Stored::shared(Arc::from(json))
    }

    fn shared(json: Arc<str>) -> Self {
        Stored {
            finished: finished(&json),
            json,
        }
    }
}

/// Whether a stored run is over (`completed` or `failedAndCompleted`), reading only its
/// status: the engine writes `flowStatus` first; anything else is parsed for that field.
fn finished(json: &str) -> bool {
    if let Some(rest) = json.strip_prefix("{\"flowStatus\":\"") {
        if let Some((status, _)) = rest.split_once('"') {
            return matches!(status, "completed" | "failedAndCompleted");
        }
    }
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct StatusOnly {
        flow_status: crate::FlowStatus,
    }
    serde_json::from_str::<StatusOnly>(json).is_ok_and(|s| s.flow_status.is_finished())
}

/// Changes kept beside the base before they are folded into it, when nobody else holds the
/// base (folding in place costs only the changes).
const FOLD_AFTER: usize = 32;
/// Changes kept beside a base that others hold before it is copied to fold them.
const FOLD_SHARED_AFTER: usize = 4 * FOLD_AFTER;

/// The content of one memento store (key to JSON), as stores hand it to the engine.
///
/// Cloning is cheap and shares the stored bytes: the content is a shared base plus a short
/// list of later changes, folded into the base every few dozen keys, so neither a load nor a
/// write copies the documents of other runs. It also keeps what the caretaker asks of it
/// without parsing a document: the highest sequence, the uncompleted runs, the finished runs
/// oldest first, and the size in bytes.
///
/// ```
/// use wf_engine::memento::{MementoEntries, MementoWrite};
///
/// let mut entries = MementoEntries::new();
/// entries.apply(&MementoWrite {
///     key: "1-Create".into(),
///     value: r#"{"flowStatus":"completed","flowName":"Create"}"#.into(),
///     remove: vec![],
/// });
/// let loaded = entries.clone(); // shares the document
/// assert_eq!(loaded.get("1-Create").map(str::len), Some(46));
/// assert_eq!(loaded.bytes(), "1-Create".len() + 46);
/// ```
#[derive(Clone, Debug, Default)]
pub struct MementoEntries {
    base: Arc<BTreeMap<EntryKey, Stored>>,
    /// Later changes: `None` removes a key of the base.
    delta: Arc<BTreeMap<EntryKey, Option<Stored>>>,
    unfinished: Arc<BTreeSet<EntryKey>>,
    finished: usize,
    len: usize,
    bytes: usize,
}

impl MementoEntries {
    /// No entries.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many keys.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there is no key.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The size in bytes: keys plus values.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// The JSON stored under `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.lookup(Probe::new(key).bytes()).map(|s| &*s.json)
    }

    /// Every key and value: engine keys by sequence, after any other keys.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.merged(false).map(|(k, v)| (k.text(), &*v.json))
    }

    /// A copy as plain strings, ordered by key.
    pub fn to_map(&self) -> BTreeMap<String, String> {
        self.iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect()
    }

    /// Applies one write: its removals, then its key.
    pub fn apply(&mut self, change: &MementoWrite) {
        self.apply_shared(change, Arc::from(change.value.as_str()));
    }

    /// Applies one write whose value is also given as `value` (the same text, shared): the
    /// entries keep that string instead of a copy, so a caretaker and a store that both
    /// keep entries hold one copy of each document between them.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use wf_engine::memento::{MementoEntries, MementoWrite};
    ///
    /// let change = MementoWrite {
    ///     key: "1-Create".into(),
    ///     value: r#"{"flowStatus":"running"}"#.into(),
    ///     remove: vec![],
    /// };
    /// let shared: Arc<str> = Arc::from(change.value.as_str());
    /// let mut entries = MementoEntries::new();
    /// entries.apply_shared(&change, shared.clone());
    /// assert_eq!(entries.get("1-Create"), Some(&*shared));
    /// ```
    pub fn apply_shared(&mut self, change: &MementoWrite, value: Arc<str>) {
        debug_assert_eq!(&*value, change.value.as_str());
        for key in &change.remove {
            self.put(&Probe::new(key), None);
        }
        self.put(&Probe::new(&change.key), Some(Stored::shared(value)));
    }

    /// The engine key with the highest sequence: `(seq, key, json)`.
    pub(crate) fn latest(&self) -> Option<(u64, &str, &str)> {
        self.merged(true)
            .next()
            .and_then(|(k, v)| Some((k.seq()?, k.text(), &*v.json)))
    }

    /// The uncompleted run with the highest sequence: `(seq, key, json)`.
    pub(crate) fn latest_uncompleted(&self) -> Option<(u64, &str, &str)> {
        let key = self.unfinished.iter().next_back()?;
        let stored = self.lookup(&key.0)?;
        Some((key.seq()?, key.text(), &*stored.json))
    }

    /// Every engine key holding an uncompleted run, newest first: `(seq, key, json)`.
    pub(crate) fn uncompleted_newest_first(&self) -> impl Iterator<Item = (u64, &str, &str)> {
        self.unfinished.iter().rev().filter_map(|key| {
            let stored = self.lookup(&key.0)?;
            Some((key.seq()?, key.text(), &*stored.json))
        })
    }

    /// Every engine key by sequence: `(seq, key, json)`.
    pub(crate) fn runs(&self) -> impl Iterator<Item = (u64, &str, &str)> {
        self.merged(false)
            .filter_map(|(k, v)| Some((k.seq()?, k.text(), &*v.json)))
    }

    /// How many engine keys hold a finished run.
    pub(crate) fn finished_count(&self) -> usize {
        self.finished
    }

    /// The finished runs, oldest first: `(seq, key, bytes of key and value)`.
    pub(crate) fn finished_oldest_first(&self) -> impl Iterator<Item = (u64, &str, usize)> {
        self.merged(false).filter_map(|(k, v)| {
            let seq = k.seq().filter(|_| v.finished)?;
            let text = k.text();
            Some((seq, text, text.len() + v.json.len()))
        })
    }

    /// The length of the JSON under `key`, and whether it is an engine key holding a
    /// finished run.
    pub(crate) fn entry_info(&self, key: &str) -> Option<(usize, bool)> {
        let key = Probe::new(key);
        self.lookup(key.bytes())
            .map(|s| (s.json.len(), key.seq().is_some() && s.finished))
    }

    fn lookup(&self, key: &[u8]) -> Option<&Stored> {
        match self.delta.get(key) {
            Some(change) => change.as_ref(),
            None => self.base.get(key),
        }
    }

    fn put(&mut self, key: &Probe, value: Option<Stored>) {
        let bytes = key.bytes();
        let engine = key.seq().is_some();
        let text_len = key.text().len();
        let delta = Arc::make_mut(&mut self.delta);
        let (old, slot) = match delta.get_mut(bytes) {
            Some(slot) => (
                slot.as_ref().map(|s| (s.json.len(), s.finished)),
                Some(slot),
            ),
            None => (
                self.base.get(bytes).map(|s| (s.json.len(), s.finished)),
                None,
            ),
        };
        if old.is_none() && value.is_none() {
            return;
        }
        if let Some((len, finished)) = old {
            self.len -= 1;
            self.bytes -= text_len + len;
            self.finished -= usize::from(engine && finished);
        }
        if let Some(new) = &value {
            self.len += 1;
            self.bytes += text_len + new.json.len();
            self.finished += usize::from(engine && new.finished);
        }
        if engine {
            let was_unfinished = old.is_some_and(|(_, finished)| !finished);
            let is_unfinished = value.as_ref().is_some_and(|v| !v.finished);
            if was_unfinished != is_unfinished {
                let unfinished = Arc::make_mut(&mut self.unfinished);
                if is_unfinished {
                    unfinished.insert(key.to_owned());
                } else {
                    unfinished.remove(bytes);
                }
            }
        }
        match slot {
            Some(slot) => {
                if value.is_none() && !self.base.contains_key(bytes) {
                    // Removing a key that only a change added: forget the change.
                    delta.remove(bytes);
                } else {
                    *slot = value;
                }
            }
            None => {
                delta.insert(key.to_owned(), value);
                let pending = delta.len();
                if pending > FOLD_SHARED_AFTER
                    || (pending > FOLD_AFTER && Arc::get_mut(&mut self.base).is_some())
                {
                    self.fold();
                }
            }
        }
    }

    /// Folds the pending changes into the base when nobody else holds it, which costs only
    /// the changes. A store calls it before handing out a clone, so that clones share a base
    /// and few changes.
    pub fn compact(&mut self) {
        if !self.delta.is_empty() && Arc::get_mut(&mut self.base).is_some() {
            self.fold();
        }
    }

    /// Folds the changes into the base: in place when nobody else holds the base, else into
    /// a new one.
    fn fold(&mut self) {
        let delta = std::mem::take(Arc::make_mut(&mut self.delta));
        if let Some(base) = Arc::get_mut(&mut self.base) {
            for (key, change) in delta {
                match change {
                    Some(stored) => base.insert(key, stored),
                    None => base.remove(&key),
                };
            }
        } else {
            let mut base = (*self.base).clone();
            for (key, change) in delta {
                match change {
                    Some(stored) => base.insert(key, stored),
                    None => base.remove(&key),
                };
            }
            self.base = Arc::new(base);
        }
    }

    fn merged(&self, reverse: bool) -> impl Iterator<Item = (&EntryKey, &Stored)> {
        let (forward, backward) = if reverse {
            (
                None,
                Some(Merged::new(
                    self.base.iter().rev(),
                    self.delta.iter().rev(),
                    true,
                )),
            )
        } else {
            (
                Some(Merged::new(self.base.iter(), self.delta.iter(), false)),
                None,
            )
        };
        forward
            .into_iter()
            .flatten()
            .chain(backward.into_iter().flatten())
    }
}

impl From<BTreeMap<String, String>> for MementoEntries {
    fn from(map: BTreeMap<String, String>) -> Self {
        map.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
    }
}

impl<'a> FromIterator<(&'a str, &'a str)> for MementoEntries {
    fn from_iter<I: IntoIterator<Item = (&'a str, &'a str)>>(iter: I) -> Self {
        let mut entries = MementoEntries::new();
        let mut base = BTreeMap::new();
        for (key, json) in iter {
            let key = Probe::new(key);
            let (engine, text_len) = (key.seq().is_some(), key.text().len());
            let key = key.to_owned();
            let stored = Stored::new(json);
            if let Some(old) = base.insert(key.clone(), stored.clone()) {
                entries.len -= 1;
                entries.bytes -= text_len + old.json.len();
                if engine && old.finished {
                    entries.finished -= 1;
                }
            }
            entries.len += 1;
            entries.bytes += text_len + stored.json.len();
            if engine {
                if stored.finished {
                    entries.finished += 1;
                } else {
                    Arc::make_mut(&mut entries.unfinished).insert(key);
                }
            }
        }
        entries.base = Arc::new(base);
        entries
    }
}

/// The base and the changes merged in key order (or reverse key order).
struct Merged<'a, B, D>
where
    B: Iterator<Item = (&'a EntryKey, &'a Stored)>,
    D: Iterator<Item = (&'a EntryKey, &'a Option<Stored>)>,
{
    base: Peekable<B>,
    delta: Peekable<D>,
    reverse: bool,
}

impl<'a, B, D> Merged<'a, B, D>
where
    B: Iterator<Item = (&'a EntryKey, &'a Stored)>,
    D: Iterator<Item = (&'a EntryKey, &'a Option<Stored>)>,
{
    fn new(base: B, delta: D, reverse: bool) -> Self {
        Merged {
            base: base.peekable(),
            delta: delta.peekable(),
            reverse,
        }
    }
}

impl<'a, B, D> Iterator for Merged<'a, B, D>
where
    B: Iterator<Item = (&'a EntryKey, &'a Stored)>,
    D: Iterator<Item = (&'a EntryKey, &'a Option<Stored>)>,
{
    type Item = (&'a EntryKey, &'a Stored);

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let order = match (self.base.peek(), self.delta.peek()) {
                (None, None) => return None,
                (Some(_), None) => Ordering::Less,
                (None, Some(_)) => Ordering::Greater,
                (Some((b, _)), Some((d, _))) => {
                    let order = b.cmp(d);
                    if self.reverse {
                        order.reverse()
                    } else {
                        order
                    }
                }
            };
            match order {
                Ordering::Less => return self.base.next(),
                Ordering::Greater => {
                    if let Some((k, Some(v))) = self.delta.next() {
                        return Some((k, v));
                    }
                }
                Ordering::Equal => {
                    self.base.next();
                    if let Some((k, Some(v))) = self.delta.next() {
                        return Some((k, v));
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(key: &str, value: &str, remove: &[&str]) -> MementoWrite {
        MementoWrite {
            key: key.into(),
            value: value.into(),
            remove: remove.iter().map(|k| k.to_string()).collect(),
        }
    }

    const DONE: &str = r#"{"flowStatus":"completed","flowName":"F"}"#;
    const RUNNING: &str = r#"{"flowStatus":"running","flowName":"F"}"#;

    #[test]
    fn entries_match_a_plain_map_under_any_sequence_of_writes() {
        let mut entries = MementoEntries::new();
        let mut plain = BTreeMap::<String, String>::new();
        let mut shared = Vec::new();
        for i in 0..300u64 {
            let key = format!("{}-F", i % 70);
            let value = if i % 3 == 0 { RUNNING } else { DONE };
            let remove: Vec<String> = if i % 5 == 0 {
                vec![format!("{}-F", (i * 7) % 70), "notes".into()]
            } else {
                vec![]
            };
            let change = MementoWrite {
                key: if i % 11 == 0 { "notes".into() } else { key },
                value: value.into(),
                remove,
            };
            for k in &change.remove {
                plain.remove(k);
            }
            plain.insert(change.key.clone(), change.value.clone());
            entries.apply(&change);
            if i % 13 == 0 {
                shared.push(entries.clone()); // later writes must not show in a clone
            }
            assert_eq!(entries.to_map(), plain, "after write {i}");
            assert_eq!(entries.len(), plain.len());
            let bytes: usize = plain.iter().map(|(k, v)| k.len() + v.len()).sum();
            assert_eq!(entries.bytes(), bytes);
            let finished = plain
                .iter()
                .filter(|(k, v)| parse_memento_key(k).is_some() && v.as_str() == DONE)
                .count();
            assert_eq!(entries.finished_count(), finished);
            let latest = plain
                .keys()
                .filter_map(|k| parse_memento_key(k))
                .map(|(s, _)| s)
                .max();
            assert_eq!(entries.latest().map(|(s, _, _)| s), latest);
            let uncompleted = plain
                .iter()
                .filter(|(k, v)| parse_memento_key(k).is_some() && v.as_str() == RUNNING)
                .filter_map(|(k, _)| parse_memento_key(k))
                .map(|(s, _)| s)
                .max();
            assert_eq!(entries.latest_uncompleted().map(|(s, _, _)| s), uncompleted);
        }
        let first = &shared[0];
        assert_eq!(first.to_map().len(), 1, "a clone is a snapshot");
    }

    #[test]
    fn finished_runs_come_oldest_first_and_other_keys_are_not_runs() {
        let entries: MementoEntries = [
            ("10-F", DONE),
            ("9-F", DONE),
            ("11-F", RUNNING),
            ("notes", DONE),
        ]
        .into_iter()
        .collect();
        let oldest: Vec<u64> = entries.finished_oldest_first().map(|(s, _, _)| s).collect();
        assert_eq!(oldest, [9, 10]);
        assert_eq!(entries.runs().count(), 3);
        assert_eq!(entries.entry_info("9-F"), Some((DONE.len(), true)));
        assert_eq!(entries.entry_info("notes"), Some((DONE.len(), false)));
        assert_eq!(entries.entry_info("8-F"), None);
        let mut next = entries.clone();
        next.apply(&put("12-F", DONE, &["9-F"]));
        assert_eq!(next.latest().map(|(s, k, _)| (s, k)), Some((12, "12-F")));
        assert_eq!(
            entries.get("9-F"),
            Some(DONE),
            "the clone it came from is unchanged"
        );
    }
}
