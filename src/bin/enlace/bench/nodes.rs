//! The bench's nodes: members started in this process, members run as
//! processes of their own, and what `/proc` says about them.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use tokio::task::JoinSet;

use enlace::service::client::ClientConfig;
use enlace::testing::{RunningNode, Sandbox};
use enlace::trust::load::LoadedSettings;
use enlace::wire::pb::v1 as pb;

use crate::failure::Spelled;

/// How long a node run as a process has to answer its agency API.
pub(super) const READY_TIMEOUT: Duration = Duration::from_secs(120);

/// Starts member `id` of `sandbox` as a node process of its own (its
/// listeners must have been released), logging at its default level to a
/// file in the sandbox.
pub(super) fn spawn_node(
    sandbox: &Sandbox,
    id: &str,
) -> anyhow::Result<(ChildProcess, std::path::PathBuf)> {
    let exe = std::env::current_exe().context("cannot find this program")?;
    let config = sandbox.member(id).spelled()?.config_path();
    let log_path = sandbox.dir.join(format!("{id}-node.log"));
    let log = std::fs::File::create(&log_path)
        .with_context(|| format!("cannot create {}", log_path.display()))?;
    let child = std::process::Command::new(exe)
        .args(["node", "run", "--config"])
        .arg(&config)
        .env_remove("RUST_LOG")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .spawn()
        .context("cannot start the node process")?;
    Ok((ChildProcess(Some(child)), log_path))
}

/// Waits until member `id`, run as `child`, answers on its agency API.
pub(super) async fn wait_ready(
    sandbox: &Sandbox,
    id: &str,
    child: &mut ChildProcess,
) -> anyhow::Result<()> {
    let config = ClientConfig::load(&sandbox.member(id).spelled()?.client_path()).spelled()?;
    let started = Instant::now();
    loop {
        if let Some(status) = child.exited()? {
            bail!("the node process exited before it answered: {status}");
        }
        if let Ok(mut c) = config.connect().await
            && c.list_peers(pb::ListPeersRequest {}).await.is_ok()
        {
            return Ok(());
        }
        if started.elapsed() > READY_TIMEOUT {
            bail!("the node process did not answer within {READY_TIMEOUT:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A node process; killed if dropped before [`ChildProcess::terminate`].
pub(super) struct ChildProcess(Option<std::process::Child>);

impl ChildProcess {
    pub(super) fn id(&self) -> anyhow::Result<u32> {
        self.0
            .as_ref()
            .map(std::process::Child::id)
            .context("the node process is gone")
    }

    pub(super) fn exited(&mut self) -> anyhow::Result<Option<std::process::ExitStatus>> {
        match &mut self.0 {
            Some(c) => c.try_wait().spelled(),
            None => Err(anyhow!("the node process is gone")),
        }
    }

    /// SIGTERM, as an operator would stop it; SIGKILL after 10 s.
    pub(super) async fn terminate(&mut self) -> anyhow::Result<()> {
        let Some(mut child) = self.0.take() else {
            return Ok(());
        };
        if child.try_wait().spelled()?.is_some() {
            bail!("the node process had already exited");
        }
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = child.try_wait().spelled()? {
                return if status.success() {
                    Ok(())
                } else {
                    Err(anyhow!("the node process ended with {status}"))
                };
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                bail!("the node process did not stop within 10 s of SIGTERM");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for ChildProcess {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The last lines of a node's log, for an error message.
pub(super) fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let tail = lines[lines.len().saturating_sub(10)..].join("\n");
    format!("last lines of {}:\n{tail}", path.display())
}

/// Starts members `ids` after the already running `nodes`; on a failure,
/// stops every node it has.
pub(super) async fn start_all(
    sandbox: &mut Sandbox,
    ids: &[&str],
    mut nodes: Vec<RunningNode>,
) -> anyhow::Result<Vec<RunningNode>> {
    for id in ids {
        match sandbox.start(id).await {
            Ok(n) => nodes.push(n),
            Err(e) => {
                let _ = stop_all(nodes).await;
                bail!("cannot start {id}: {e}");
            }
        }
    }
    Ok(nodes)
}

/// Stops every node at once (one by one, the survivors would log their
/// failed reconnections); the first failure, if any.
pub(super) async fn stop_all(nodes: Vec<RunningNode>) -> anyhow::Result<()> {
    let mut stopping = JoinSet::new();
    for node in nodes {
        stopping.spawn(async move { (node.id.clone(), node.stop().await) });
    }
    let mut first = Ok(());
    while let Some(done) = stopping.join_next().await {
        let failed = match done {
            Ok((_, Ok(()))) => continue,
            Ok((id, Err(e))) => anyhow!("node {id} did not stop cleanly: {e}"),
            Err(e) => anyhow!("a node's stop task failed: {e}"),
        };
        if first.is_ok() {
            first = Err(failed);
        }
    }
    first
}

pub(super) fn load_settings(sandbox: &Sandbox, id: &str) -> anyhow::Result<LoadedSettings> {
    let path = sandbox.member(id).spelled()?.config_path();
    enlace::trust::load::settings(&path, None).spelled()
}

/// A value from `/proc/<pid>/status`, in KiB.
pub(super) fn proc_status_kib(pid: u32, field: &str) -> anyhow::Result<u64> {
    let path = format!("/proc/{pid}/status");
    let text = std::fs::read_to_string(&path).with_context(|| format!("cannot read {path}"))?;
    text.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().strip_suffix("kB"))
        .and_then(|v| v.trim().parse().ok())
        .with_context(|| format!("{path} has no {field}"))
}

/// CPU time this process has used so far (all threads, user and system).
/// `/proc/self/stat` counts in USER_HZ ticks, 100 per second on Linux.
pub(super) fn process_cpu() -> anyhow::Result<Duration> {
    cpu_of("/proc/self/stat")
}

/// CPU time used so far by process `pid`.
pub(super) fn process_cpu_of(pid: u32) -> anyhow::Result<Duration> {
    cpu_of(&format!("/proc/{pid}/stat"))
}

/// CPU time every process on the machine has used so far (all cores;
/// `/proc/stat`'s first line, user to steal, less idle and I/O wait).
pub(super) fn machine_cpu() -> anyhow::Result<Duration> {
    let stat = std::fs::read_to_string("/proc/stat").context("cannot read /proc/stat")?;
    let ticks: Vec<u64> = stat
        .lines()
        .next()
        .and_then(|l| l.strip_prefix("cpu "))
        .map(|l| {
            l.split_whitespace()
                .filter_map(|v| v.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    // user nice system idle iowait irq softirq steal
    if ticks.len() < 8 {
        bail!("/proc/stat has no cpu line");
    }
    let busy = ticks[0] + ticks[1] + ticks[2] + ticks[5] + ticks[6] + ticks[7];
    Ok(Duration::from_millis(busy * 10))
}

pub(super) fn cpu_of(path: &str) -> anyhow::Result<Duration> {
    let stat = std::fs::read_to_string(path).with_context(|| format!("cannot read {path}"))?;
    // Fields after the command name (which may hold spaces), from field 3.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let tick = |i: usize| fields.get(i).and_then(|v| v.parse::<u64>().ok());
    match (tick(11), tick(12)) {
        (Some(user), Some(system)) => Ok(Duration::from_millis((user + system) * 10)),
        _ => Err(anyhow!("{path} has no utime/stime")),
    }
}
