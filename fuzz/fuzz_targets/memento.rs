//! The memento decoder (a memento file's bytes, `decode_memento_file`), then what the engine
//! does with a store: the caretaker's queries and a save of every run it read (the
//! hand-written encoder). Also one stored runtime (`decode_runtime`) and the history lines.
#![no_main]

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use wf_engine::async_trait;
use wf_engine::hook::parse_history;
use wf_engine::memento::{
    decode_memento_file, decode_runtime, MementoCaretaker, MementoEntries, MementoError,
    MementoStorage, MementoWrite,
};

/// A store that hands out fixed content and accepts every write.
struct Fixed(BTreeMap<String, String>);

#[async_trait]
impl MementoStorage for Fixed {
    async fn load_all(&self) -> Result<BTreeMap<String, String>, MementoError> {
        Ok(self.0.clone())
    }

    async fn write(&self, _: &MementoWrite) -> Result<(), MementoError> {
        Ok(())
    }
}

fuzz_target!(|data: &[u8]| {
    let _ = parse_history(Path::new("fuzz.txt"), data);
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = decode_runtime("fuzz/1-F", text);
    }
    let entries = match decode_memento_file("fuzz.json", data) {
        Ok(entries) => entries,
        // The lazy path too: a store whose values were never checked.
        Err(_) => match serde_json::from_slice::<BTreeMap<String, String>>(data) {
            Ok(raw) => raw,
            Err(_) => return,
        },
    };
    let shared = MementoEntries::from(entries.clone());
    let _ = (shared.len(), shared.bytes(), shared.to_map());
    let Ok(runtime) = tokio::runtime::Builder::new_current_thread().build() else {
        return;
    };
    runtime.block_on(async {
        let Ok(mut caretaker) =
            MementoCaretaker::load("fuzz-workflow", Arc::new(Fixed(entries)), 3, 1 << 20).await
        else {
            return;
        };
        let _ = caretaker.latest();
        let _ = caretaker.latest_uncompleted();
        let _ = caretaker.uncompleted();
        if let Ok(runs) = caretaker.runtimes() {
            for run in runs {
                let _ = caretaker.save(run.seq, &run.runtime).await;
                let next = caretaker.next_seq();
                let _ = caretaker.save(next, &run.runtime).await;
            }
        }
    });
});
