//! The table of `get`: one row per MPDCluster, in the CRD's printer columns (NAME, STATUS,
//! LEADER, RO, READY, AGE, as `kubectl get mpdclusters` prints them); `-o wide` adds the
//! namespace, the version, the class and the volume.

use chrono::{DateTime, Utc};

use super::format::{age, or_dash};
use super::stdout::Stdout;
use crate::crd::MPDCluster;

/// One row of the table.
struct Row {
    name: String,
    status: String,
    leader: String,
    ro: String,
    ready: String,
    age: String,
    namespace: String,
    version: String,
    class: String,
    volume: String,
}

fn created(cr: &MPDCluster) -> Option<DateTime<Utc>> {
    let t = cr.metadata.creation_timestamp.as_ref()?.0;
    DateTime::from_timestamp(t.as_second(), t.subsec_nanosecond().try_into().ok()?)
}

impl Row {
    fn new(cr: &MPDCluster, now: DateTime<Utc>) -> Self {
        let status = cr.status.clone().unwrap_or_default();
        let ready = status
            .conditions
            .iter()
            .find(|c| c.type_ == "Ready")
            .map(|c| c.status.clone())
            .unwrap_or_default();
        let mut state = or_dash(&status.cluster_status);
        if cr.metadata.deletion_timestamp.is_some() {
            state.push_str("(Deleting)");
        }
        Row {
            name: cr.metadata.name.clone().unwrap_or_default(),
            status: state,
            leader: or_dash(&status.leader_instance_id),
            ro: cr.spec.follower_num.to_string(),
            ready: or_dash(&ready),
            age: age(created(cr), now),
            namespace: cr.metadata.namespace.clone().unwrap_or_default(),
            version: or_dash(&cr.spec.version_cfg.version_name),
            class: or_dash(&cr.spec.class_info.class_name),
            volume: or_dash(
                cr.spec
                    .share_store
                    .as_ref()
                    .map_or("", |s| s.share_pvc_name.as_str()),
            ),
        }
    }
}

/// Prints `clusters` as the `get` table (`wide`: with the extra columns).
pub fn print_listing(clusters: &[MPDCluster], wide: bool, out: &mut Stdout<'_>) {
    let now = Utc::now();
    let rows: Vec<Row> = clusters.iter().map(|c| Row::new(c, now)).collect();
    let width = |f: fn(&Row) -> &str, title: &str| {
        rows.iter()
            .map(|r| f(r).chars().count())
            .chain([title.len()])
            .max()
            .unwrap_or(0)
    };
    let w_name = width(|r| &r.name, "NAME");
    let w_status = width(|r| &r.status, "STATUS");
    let w_leader = width(|r| &r.leader, "LEADER");
    let w_ns = width(|r| &r.namespace, "NAMESPACE");
    let w_version = width(|r| &r.version, "VERSION");
    let w_class = width(|r| &r.class, "CLASS");
    let line = |name: &str,
                status: &str,
                leader: &str,
                ro: &str,
                ready: &str,
                age: &str,
                extra: Option<[&str; 4]>| {
        let mut line = format!(
            "{name:<w_name$}   {status:<w_status$}   {leader:<w_leader$}   {ro:<3}   {ready:<5}   {age:<5}"
        );
        if let Some([ns, version, class, volume]) = extra {
            line.push_str(&format!(
                "   {ns:<w_ns$}   {version:<w_version$}   {class:<w_class$}   {volume}"
            ));
        }
        line.trim_end().to_owned()
    };
    out.line(line(
        "NAME",
        "STATUS",
        "LEADER",
        "RO",
        "READY",
        "AGE",
        wide.then_some(["NAMESPACE", "VERSION", "CLASS", "VOLUME"]),
    ));
    for r in &rows {
        if out.is_closed() {
            break;
        }
        out.line(line(
            &r.name,
            &r.status,
            &r.leader,
            &r.ro,
            &r.ready,
            &r.age,
            wide.then_some([&r.namespace, &r.version, &r.class, &r.volume]),
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::{MPDClusterSpec, MPDClusterStatus};

    fn printed(clusters: &[MPDCluster], wide: bool) -> String {
        let mut buffer = Vec::new();
        print_listing(clusters, wide, &mut Stdout::to(&mut buffer));
        String::from_utf8(buffer).unwrap()
    }

    #[test]
    fn a_row_holds_the_printer_columns_and_wide_adds_the_version_and_class() {
        let mut cr = MPDCluster::new(
            "demo",
            MPDClusterSpec {
                follower_num: 2,
                ..MPDClusterSpec::default()
            },
        );
        cr.metadata.namespace = Some("default".into());
        cr.spec.version_cfg.version_name = "1.1.1".into();
        let mut status = MPDClusterStatus {
            leader_instance_id: "1000".into(),
            ..MPDClusterStatus::default()
        };
        status.set_state("Running", Some(1));
        cr.status = Some(status);
        let table = printed(std::slice::from_ref(&cr), false);
        let lines: Vec<Vec<&str>> = table
            .lines()
            .map(|l| l.split_whitespace().collect())
            .collect();
        assert_eq!(lines[0], ["NAME", "STATUS", "LEADER", "RO", "READY", "AGE"]);
        assert_eq!(lines[1], ["demo", "Running", "1000", "2", "True", "-"]);
        let wide = printed(&[cr], true);
        let lines: Vec<Vec<&str>> = wide
            .lines()
            .map(|l| l.split_whitespace().collect())
            .collect();
        assert_eq!(&lines[0][6..], ["NAMESPACE", "VERSION", "CLASS", "VOLUME"]);
        assert_eq!(&lines[1][6..], ["default", "1.1.1", "-", "-"]);
    }
}
