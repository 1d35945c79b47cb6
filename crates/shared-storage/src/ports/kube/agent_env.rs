//! The environment of an engine-agent action: the per-pod keys the agent expects (the
//! instance, its ports, the shared volume, the effective parameters, the cluster's topology
//! with its accounts) and the action's own keys, written for the agent's stdin.
//!
//! The agent reads its environment from stdin (`set -a && . /dev/stdin`), one
//! `key='value'` line per variable, so nothing of it is on a command line. Values are
//! single-quoted with each `'` written `'\''`, which the shell reads back exactly.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

use crate::domain::{DbIns, SharedStorageCluster};
use crate::ports::Account;

/// The per-pod key that holds the topology, with the account passwords: it goes only to the
/// agent's stdin, never into the per-pod ConfigMap.
pub const TOPOLOGY_KEY: &str = "cluster_custins_info";

/// One shell word: `value` single-quoted.
pub fn quote(value: &str) -> String {
    format!("'{}'", value.replace('\'', "'\\''"))
}

/// An environment from `(key, value)` pairs.
pub fn env<const N: usize>(pairs: [(&str, String); N]) -> BTreeMap<String, String> {
    pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
}

/// The stdin of an action: `key='value'` lines, in key order.
pub fn encode(env: &BTreeMap<String, String>) -> Vec<u8> {
    let mut out = String::new();
    for (key, value) in env {
        out.push_str(key);
        out.push('=');
        out.push_str(&quote(value));
        out.push('\n');
    }
    out.into_bytes()
}

/// `srv_opr_host_ip`: not an IP, the instance's ports as JSON.
pub fn ports_json(ins: &DbIns) -> String {
    json!({"link": [ins.port], "access_port": [ins.port], "perf_port": [ins.port]}).to_string()
}

fn number(id: &str) -> Value {
    id.parse::<i64>().map_or_else(|_| json!(id), |n| json!(n))
}

/// The topology the agent is given: the RW and every RO (temp ROs included) with the
/// accounts, the shared volume (always under the RW's physical id) and the instances.
pub fn topology(model: &SharedStorageCluster, accounts: &[Account]) -> String {
    let rw_phys = model
        .rw
        .as_ref()
        .map(|rw| rw.physical_ins_id.clone())
        .unwrap_or_default();
    let accounts: Map<String, Value> = accounts
        .iter()
        .map(|a| {
            (
                a.name.clone(),
                json!({"priviledge_type": a.privilege, "account": a.name, "password": a.password}),
            )
        })
        .collect();
    let entry = |ins: &DbIns, rw: bool| {
        json!({
            "accounts": accounts,
            "pbd_list": [{"pbd_number": 0, "pbd_name": "", "label": "primary", "data_version": 0,
                          "custins_id": number(&rw_phys), "engine_type": "san"}],
            "hostins": {ins.ins_id.clone(): {"role": if rw { "master" } else { "slave" },
                                             "port": model.port, "ins_ip": ins.host_ip}},
            "ins_type": if rw { 0 } else { 3 },
        })
    };
    let mut out = Map::new();
    if let Some(rw) = &model.rw {
        out.insert(
            "polardb_mpd_rw".into(),
            json!({ rw.physical_ins_id.clone(): entry(rw, true) }),
        );
    }
    let ros: Map<String, Value> = model
        .ros
        .values()
        .chain(model.temp_ros.values())
        .map(|ro| (ro.physical_ins_id.clone(), entry(ro, false)))
        .collect();
    if !ros.is_empty() {
        out.insert("polardb_mpd_ro".into(), Value::Object(ros));
    }
    Value::Object(out).to_string()
}

/// The per-pod keys of `ins` (without the topology: see [`TOPOLOGY_KEY`]).
pub fn pod_keys(
    model: &SharedStorageCluster,
    ins: &DbIns,
    mycnf: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    let is_rw = model.rw.as_ref().is_some_and(|rw| rw.ins_id == ins.ins_id);
    let slot = ins
        .pod_name
        .rsplit('-')
        .next()
        .unwrap_or_default()
        .to_owned();
    env([
        ("cust_ins_id", ins.physical_ins_id.clone()),
        (
            "mycnf_dict",
            serde_json::to_string(mycnf).unwrap_or_else(|_| "{}".into()),
        ),
        ("storage_type", "fcsan".into()),
        (
            "port",
            json!({ ins.ins_id.clone(): {"link": [ins.port], "access_port": [ins.port], "perf_port": [ins.port]} })
                .to_string(),
        ),
        ("logic_ins_id", model.logic_ins_id.clone()),
        ("ins_id", ins.ins_id.clone()),
        ("pod_name", ins.pod_name.clone()),
        ("slot_unique_name", slot),
        ("on_pfs", "True".into()),
        (
            "san_device_name",
            format!("/dev/mapper/{}", model.storage.volume_id),
        ),
        ("polarfs_host_id", ins.fs_id.clone()),
        (
            "service_type",
            if is_rw { "polardb_mpd_rw" } else { "polardb_mpd_ro" }.into(),
        ),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads `key='value'` lines back as the shell would.
    fn decode(text: &str) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        for line in text.lines() {
            let (key, rest) = line.split_once('=').unwrap();
            let mut value = String::new();
            let mut rest = rest;
            loop {
                let body = rest.strip_prefix('\'').unwrap();
                let close = body.find('\'').unwrap();
                value.push_str(&body[..close]);
                rest = &body[close + 1..];
                match rest.strip_prefix("\\'") {
                    Some(after) => {
                        value.push('\'');
                        rest = after;
                    }
                    None => break,
                }
            }
            out.insert(key.to_owned(), value);
        }
        out
    }

    #[test]
    fn values_with_quotes_spaces_and_json_round_trip_through_the_shell_quoting() {
        let env: BTreeMap<String, String> = [
            ("a", "it's"),
            ("b", "{\"x\": \"y z\"}"),
            ("c", "'''"),
            ("d", "$(rm -rf /)"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let text = String::from_utf8(encode(&env)).unwrap();
        assert_eq!(decode(&text), env);
        assert!(
            text.contains("d='$(rm -rf /)'"),
            "no expansion inside single quotes"
        );
    }

    #[test]
    fn the_topology_puts_every_pbd_under_the_rws_physical_id_and_the_ros_apart() {
        let ins = |phys: &str, id: &str| DbIns {
            physical_ins_id: phys.into(),
            ins_id: id.into(),
            pod_name: format!("c1-{phys}-{id}"),
            host_ip: "10.0.0.1".into(),
            port: 5432,
            ..DbIns::default()
        };
        let model = SharedStorageCluster {
            port: 5432,
            rw: Some(ins("1001", "1002")),
            ros: BTreeMap::from([("1004".to_owned(), ins("1003", "1004"))]),
            ..SharedStorageCluster::default()
        };
        let accounts = [Account {
            name: "aurora".into(),
            password: "s3cret".into(),
            privilege: 7,
        }];
        let t: Value = serde_json::from_str(&topology(&model, &accounts)).unwrap();
        let rw = &t["polardb_mpd_rw"]["1001"];
        assert_eq!(rw["ins_type"], 0);
        assert_eq!(rw["hostins"]["1002"]["role"], "master");
        assert_eq!(rw["accounts"]["aurora"]["priviledge_type"], 7);
        let ro = &t["polardb_mpd_ro"]["1003"];
        assert_eq!(ro["pbd_list"][0]["custins_id"], 1001);
        assert_eq!(ro["hostins"]["1004"]["role"], "slave");
        let keys = pod_keys(&model, model.ros.get("1004").unwrap(), &BTreeMap::new());
        assert_eq!(keys["service_type"], "polardb_mpd_ro");
        assert_eq!(keys["slot_unique_name"], "1004");
        assert!(!keys.contains_key(TOPOLOGY_KEY));
    }
}
