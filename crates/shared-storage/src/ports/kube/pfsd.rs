//! H. pfsd, started by the pfsd tool in each instance pod's `pfsd-tool` container, through
//! the Kubernetes exec API.
//!
//! The command line is the tool's own (`entry_oper.py <config> -p mapper_<volume> -e
//! <insId>`); its three values are checked against a safe character set first, so nothing
//! from a resource can reach the shell as code. Exit 0 is done; a container that is not
//! ready yet is pending; any other failure is an error (the original dropped it).

use std::sync::Arc;

use async_trait::async_trait;

use super::engine_agent::NOT_READY_MARKERS;
use super::exec::{ExecError, PodExec};
use super::KubePortsConfig;
use crate::ports::sim::port::PFSD;
use crate::ports::{EngineTarget, PfsdTool, PortError, Progress};

/// The container pfsd is started from.
pub const PFSD_TOOL_CONTAINER: &str = "pfsd-tool";

/// The production [`PfsdTool`].
#[derive(Clone)]
pub struct ExecPfsdTool {
    exec: Arc<dyn PodExec>,
}

impl std::fmt::Debug for ExecPfsdTool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExecPfsdTool").finish_non_exhaustive()
    }
}

/// `value` when every character is a letter, a digit, one of `-_.=` or (when `spaces`) a
/// space; otherwise an error naming `field`.
fn safe<'a>(field: &str, value: &'a str, spaces: bool) -> Result<&'a str, PortError> {
    let ok = value
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "-_.=".contains(c) || (spaces && c == ' '));
    if ok {
        Ok(value)
    } else {
        Err(PortError::Rejected {
            port: PFSD,
            message: format!(
                "{field} {value:?} has characters other than letters, digits, `-_.=`{}",
                if spaces { " and spaces" } else { "" }
            ),
        })
    }
}

/// The tool's command line.
pub fn pfsd_argv(config: &str, volume_id: &str, ins_id: &str) -> Result<Vec<String>, PortError> {
    let config = safe(
        "the pfsd config (spec.resourceAdditional.pfsd.config)",
        config,
        true,
    )?;
    let volume = safe("the volume id", volume_id, false)?;
    let ins = safe("the instance id", ins_id, false)?;
    Ok(vec![
        "bash".into(),
        "-c".into(),
        format!(
            "srv_opr_action=start_instance python2 /docker_script/entry_oper.py {config} -p mapper_{volume} -e {ins}"
        ),
    ])
}

impl ExecPfsdTool {
    /// The tool over `exec`. It needs no settings; `config` is taken for uniformity.
    pub fn new(config: Arc<KubePortsConfig>, exec: Arc<dyn PodExec>) -> Self {
        let _ = config;
        ExecPfsdTool { exec }
    }
}

#[async_trait]
impl PfsdTool for ExecPfsdTool {
    async fn start_pfsd(
        &self,
        target: &EngineTarget,
        config: &str,
        volume_id: &str,
    ) -> Result<Progress, PortError> {
        let argv = pfsd_argv(config, volume_id, &target.ins_id)?;
        let result = self
            .exec
            .exec(
                &target.namespace,
                &target.pod_name,
                PFSD_TOOL_CONTAINER,
                &argv,
                None,
            )
            .await;
        let not_ready = |text: &str| NOT_READY_MARKERS.iter().any(|m| text.contains(m));
        match result {
            Ok(out) if out.success() => Ok(Progress::Done(())),
            Ok(out) if not_ready(&out.stderr) => Ok(Progress::pending(format!(
                "pfsd-tool in pod {} is not ready",
                target.pod_name
            ))),
            Ok(out) => Err(PortError::Rejected {
                port: PFSD,
                message: format!(
                    "starting pfsd in pod {} exited with {}: {}",
                    target.pod_name,
                    out.exit_code,
                    out.stderr.trim()
                ),
            }),
            Err(ExecError::PodNotFound { namespace, pod }) => Err(PortError::NotFound {
                port: PFSD,
                what: format!("pod {namespace}/{pod}"),
            }),
            Err(e) if not_ready(&e.to_string()) => Ok(Progress::pending(format!(
                "pfsd-tool in pod {} is not ready",
                target.pod_name
            ))),
            Err(e) => Err(PortError::Unavailable {
                port: PFSD,
                message: e.to_string(),
            }),
        }
    }
}
