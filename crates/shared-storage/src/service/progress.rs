//! Progress markers: for external actions that are not idempotent (a restart, a grow), the
//! step records what it did in one annotation, so a re-run after a crash or a wait does not
//! do it again. Markers are scoped to the run (its sequence number), so an interrupted
//! run's markers never suppress a later run's actions; cleanup removes the annotation.

use std::collections::{BTreeMap, BTreeSet};

use super::{ServiceError, SharedStorageService};
use crate::crd::MPDCluster;
use crate::ports::ClusterRef;

/// The annotation holding the markers (a JSON array of `<run>/<marker>` strings).
pub const FLOW_PROGRESS: &str = "polardb.mpd/flowProgress";

fn all_markers(cr: &MPDCluster) -> BTreeSet<String> {
    cr.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(FLOW_PROGRESS))
        .and_then(|raw| serde_json::from_str(raw).ok())
        .unwrap_or_default()
}

/// The markers of one run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RunMarkers {
    run: u64,
    done: BTreeSet<String>,
}

impl RunMarkers {
    /// The markers of run `run` recorded on `cr`.
    pub fn load(cr: &MPDCluster, run: u64) -> Self {
        let prefix = format!("{run}/");
        RunMarkers {
            run,
            done: all_markers(cr)
                .into_iter()
                .filter_map(|m| m.strip_prefix(&prefix).map(str::to_owned))
                .collect(),
        }
    }

    /// Whether `marker` was recorded by this run.
    pub fn contains(&self, marker: &str) -> bool {
        self.done.contains(marker)
    }
}

impl SharedStorageService {
    /// Removes the markers of run `run` (an abandoned run: nothing resumes it), and the
    /// annotation when none is left. No write when the run has none.
    pub async fn release_run_markers(
        &self,
        cluster: &ClusterRef,
        run: u64,
    ) -> Result<(), ServiceError> {
        let prefix = format!("{run}/");
        self.modify(cluster, |cr| {
            let mut out = cr.clone();
            let mut all = all_markers(cr);
            let before = all.len();
            all.retain(|m| !m.starts_with(&prefix));
            if all.len() != before {
                if let Some(map) = out.metadata.annotations.as_mut() {
                    if all.is_empty() {
                        map.remove(FLOW_PROGRESS);
                    } else if let Ok(raw) = serde_json::to_string(&all) {
                        map.insert(FLOW_PROGRESS.to_owned(), raw);
                    }
                }
            }
            out
        })
        .await?;
        Ok(())
    }

    /// Records `marker` for the run of `markers`.
    pub async fn mark(
        &self,
        cluster: &ClusterRef,
        markers: &mut RunMarkers,
        marker: &str,
    ) -> Result<(), ServiceError> {
        markers.done.insert(marker.to_owned());
        let scoped = format!("{}/{marker}", markers.run);
        self.modify(cluster, |cr| {
            let mut out = cr.clone();
            let mut all = all_markers(cr);
            all.insert(scoped.clone());
            if let Ok(raw) = serde_json::to_string(&all) {
                out.metadata
                    .annotations
                    .get_or_insert_with(BTreeMap::new)
                    .insert(FLOW_PROGRESS.to_owned(), raw);
            }
            out
        })
        .await?;
        Ok(())
    }
}
