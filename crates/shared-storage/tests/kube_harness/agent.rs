//! The exec stand-in: the engine agent and the pfsd tool of every instance pod, answering
//! the operator's exec calls as the containers would.
//!
//! It speaks the adapters' protocol: an agent action is the fixed `bash -c` line in the
//! `manager` container with the whole environment on stdin (`key='value'` lines); pfsd is
//! started by its command line in `pfsd-tool`; `kill 1` stops the engine at once. An exec
//! into a pod that does not exist fails as the API server's would; one into a pod that is
//! not Ready answers `container not found`. The engine of each pod (by uid, so a recreated
//! pod starts blank) is installed, started and stopped by the actions, and the health
//! check answers from that.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use shared_storage::ports::kube::{ExecError, ExecOutput, PodExec};

/// One exec the stand-in received.
#[derive(Clone, Debug)]
pub struct Exec {
    /// The pod.
    pub pod: String,
    /// The container.
    pub container: String,
    /// The command line.
    pub argv: Vec<String>,
    /// The environment read from stdin.
    pub env: BTreeMap<String, String>,
}

impl Exec {
    /// `srv_opr_type/srv_opr_action`, or the command for the others.
    pub fn action(&self) -> String {
        match (self.env.get("srv_opr_type"), self.env.get("srv_opr_action")) {
            (Some(t), Some(a)) => format!("{t}/{a}"),
            _ => self.argv.last().cloned().unwrap_or_default(),
        }
    }
}

#[derive(Clone, Debug, Default)]
struct Engine {
    installed: bool,
    running: bool,
    starts: u32,
    params: BTreeMap<String, String>,
    grown: u32,
}

#[derive(Default)]
struct State {
    engines: BTreeMap<String, Engine>,
    execs: Vec<Exec>,
}

/// The stand-in; clones share their state.
#[derive(Clone)]
pub struct FakeAgent {
    client: kube::Client,
    state: Arc<Mutex<State>>,
}

/// The agent's fixed command line (the environment comes on stdin).
pub const AGENT_SCRIPT: &str =
    "set -a && . /dev/stdin && set +a && exec python /docker_script/entry_point.py";

/// Parses `key='value'` lines, `'\''` being a quote inside a value.
pub fn parse_env(text: &str) -> Result<BTreeMap<String, String>, String> {
    let mut env = BTreeMap::new();
    let mut rest = text;
    while !rest.trim_start().is_empty() {
        rest = rest.trim_start_matches(['\n', ' ']);
        let eq = rest
            .find('=')
            .ok_or_else(|| format!("no `=` in {rest:?}"))?;
        let key = rest[..eq].to_owned();
        rest = &rest[eq + 1..];
        let mut value = String::new();
        loop {
            let body = rest
                .strip_prefix('\'')
                .ok_or_else(|| format!("value of {key} is not single-quoted"))?;
            let close = body
                .find('\'')
                .ok_or_else(|| format!("value of {key} is not closed"))?;
            value.push_str(&body[..close]);
            rest = &body[close + 1..];
            if let Some(after) = rest.strip_prefix("\\'") {
                value.push('\'');
                rest = after;
            } else {
                break;
            }
        }
        env.insert(key, value);
    }
    Ok(env)
}

fn ok(stdout: &str, stderr: &str) -> Result<ExecOutput, ExecError> {
    Ok(ExecOutput {
        exit_code: 0,
        stdout: stdout.into(),
        stderr: stderr.into(),
    })
}

fn exit(code: i32, stderr: &str) -> Result<ExecOutput, ExecError> {
    Ok(ExecOutput {
        exit_code: code,
        stdout: String::new(),
        stderr: stderr.into(),
    })
}

impl FakeAgent {
    /// A stand-in reading pods through `client`.
    pub fn new(client: kube::Client) -> Self {
        FakeAgent {
            client,
            state: Arc::default(),
        }
    }

    /// Every exec so far, in order.
    pub fn execs(&self) -> Vec<Exec> {
        self.state.lock().unwrap().execs.clone()
    }

    /// Forgets the execs recorded so far (the engines stay).
    pub fn clear_execs(&self) {
        self.state.lock().unwrap().execs.clear();
    }

    /// How many times the engine of the pod named `pod` (its current incarnation) started.
    pub fn starts(&self, uid: &str) -> u32 {
        self.state
            .lock()
            .unwrap()
            .engines
            .get(uid)
            .map_or(0, |e| e.starts)
    }

    /// The parameters last applied to the engine of the pod with `uid`.
    pub fn params(&self, uid: &str) -> BTreeMap<String, String> {
        self.state
            .lock()
            .unwrap()
            .engines
            .get(uid)
            .map(|e| e.params.clone())
            .unwrap_or_default()
    }

    /// How many times the file system was grown in the pod with `uid`.
    pub fn grown(&self, uid: &str) -> u32 {
        self.state
            .lock()
            .unwrap()
            .engines
            .get(uid)
            .map_or(0, |e| e.grown)
    }

    fn run(&self, uid: &str, exec: &Exec) -> Result<ExecOutput, ExecError> {
        let mut state = self.state.lock().unwrap();
        let engine = state.engines.entry(uid.to_owned()).or_default();
        if exec.container == "pfsd-tool" {
            return ok("pfsd started", "");
        }
        if exec.argv.len() == 3 && exec.argv[2] == "kill 1" {
            engine.running = false;
            return ok("", "");
        }
        match exec.action().as_str() {
            "hostins_ops/setup_install_instance" => {
                engine.installed = true;
                ok("", "")
            }
            "hostins_ops/start_instance" => {
                if !engine.installed {
                    return exit(1, "instance is not installed");
                }
                if !engine.running {
                    engine.running = true;
                    engine.starts += 1;
                }
                ok("", "")
            }
            "hostins_ops/stop_instance" => {
                engine.running = false;
                ok("", "")
            }
            "health_check/hostins_check" => {
                if engine.running {
                    ok("healthy", "")
                } else {
                    exit(1, "could not connect to server")
                }
            }
            "account/create" | "hostins_ops/setup_logagent_config" => {
                if engine.running {
                    ok("", "")
                } else {
                    exit(1, "the engine is not running")
                }
            }
            "update_conf/update" => {
                let params: BTreeMap<String, String> = exec
                    .env
                    .get("params")
                    .and_then(|p| serde_json::from_str(p).ok())
                    .unwrap_or_default();
                engine.params.extend(params);
                ok("", "")
            }
            "hostins_ops/grow_pfs" => {
                engine.grown += 1;
                ok("", "")
            }
            other => exit(2, &format!("unknown action {other}")),
        }
    }
}

#[async_trait::async_trait]
impl PodExec for FakeAgent {
    async fn exec(
        &self,
        namespace: &str,
        pod: &str,
        container: &str,
        argv: &[String],
        stdin: Option<Vec<u8>>,
    ) -> Result<ExecOutput, ExecError> {
        let env = match &stdin {
            Some(bytes) => {
                parse_env(&String::from_utf8_lossy(bytes)).map_err(|message| ExecError::Failed {
                    namespace: namespace.into(),
                    pod: pod.into(),
                    container: container.into(),
                    message: format!("bad environment on stdin: {message}"),
                })?
            }
            None => BTreeMap::new(),
        };
        let exec = Exec {
            pod: pod.into(),
            container: container.into(),
            argv: argv.to_vec(),
            env,
        };
        self.state.lock().unwrap().execs.push(exec.clone());
        let found = Api::<Pod>::namespaced(self.client.clone(), namespace)
            .get_opt(pod)
            .await
            .map_err(|e| ExecError::Connection {
                namespace: namespace.into(),
                pod: pod.into(),
                container: container.into(),
                message: e.to_string(),
            })?;
        let Some(found) = found else {
            return Err(ExecError::PodNotFound {
                namespace: namespace.into(),
                pod: pod.into(),
            });
        };
        let ready = found
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
        if !ready || found.metadata.deletion_timestamp.is_some() {
            return Err(ExecError::Failed {
                namespace: namespace.into(),
                pod: pod.into(),
                container: container.into(),
                message: "container not found".into(),
            });
        }
        let uid = found.metadata.uid.unwrap_or_default();
        self.run(&uid, &exec)
    }
}

#[test]
fn the_env_parser_reads_quoted_values_with_quotes_inside() {
    let env = parse_env("a='1'\nb='it'\\''s'\nc='{\"x\": \"y z\"}'\n").unwrap();
    assert_eq!(env["a"], "1");
    assert_eq!(env["b"], "it's");
    assert_eq!(env["c"], "{\"x\": \"y z\"}");
    assert!(parse_env("a=1\n").is_err());
}
