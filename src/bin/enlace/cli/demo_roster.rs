//! The demo's roster change: Costa Rica (cr) joins the federation by
//! quorum. gt proposes version 2 of the roster through its node, every
//! member's administrator sees the same diff, gt and hn approve through
//! their nodes, cr signs offline and gt submits its approval; each node
//! adopts version 2 by itself, and cr, started from the sealed chain,
//! receives the next alert.

use std::time::Duration;

use anyhow::{Context, bail};

use super::agency::status_error;
use super::output::indent;
use crate::failure::Spelled;
use enlace::testing::{RunningNode, Sandbox};
use enlace::trust::chain::{self, Approval};
use enlace::trust::roster::diff;
use enlace::wire::pb::v1 as pb;

/// How long the demo waits for each expected event.
const WAIT: Duration = Duration::from_secs(30);

/// Waits until member `id`'s node has roster version `version` in force.
async fn in_force(sandbox: &Sandbox, id: &str, version: u64) -> anyhow::Result<()> {
    let mut client = sandbox.client(id).await.spelled()?;
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let roster = client
            .get_roster(pb::GetRosterRequest {})
            .await
            .map_err(status_error)?
            .into_inner();
        if roster.version >= version {
            return Ok(());
        }
        if tokio::time::Instant::now() > deadline {
            bail!("{id} did not adopt roster version {version} within {WAIT:?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until member `id`'s node holds proposal `proposal` (it travels
/// as a record).
async fn holds_proposal(sandbox: &Sandbox, id: &str, proposal: &str) -> anyhow::Result<()> {
    let mut client = sandbox.client(id).await.spelled()?;
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let held = client
            .list_roster_proposals(pb::ListRosterProposalsRequest {})
            .await
            .map_err(status_error)?
            .into_inner()
            .proposals;
        if held.iter().any(|p| p.id == proposal) {
            return Ok(());
        }
        if tokio::time::Instant::now() > deadline {
            bail!("{id} did not receive roster proposal {proposal} within {WAIT:?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// cr joins by quorum; returns its running node. `say` prints a step.
pub(super) async fn cr_joins(
    sandbox: &mut Sandbox,
    full_roster: &str,
    say: impl Fn(String),
) -> anyhow::Result<RunningNode> {
    let mut gt = sandbox.client("gt").await.spelled()?;
    let mut hn = sandbox.client("hn").await.spelled()?;
    let v1 = gt
        .get_roster(pb::GetRosterRequest {})
        .await
        .map_err(status_error)?
        .into_inner();
    let previous = chain::parse_hash(&v1.sha256).spelled()?;
    let v2 = sandbox
        .compile_roster(full_roster, 2, Some(previous))
        .spelled()?;
    let proposed = gt
        .propose_roster(pb::ProposeRosterRequest {
            version: v2.bytes.to_vec(),
        })
        .await
        .map_err(status_error)?
        .into_inner();
    let current = chain::Version::parse(v1.version_bytes).spelled()?;
    let changes: Vec<String> = diff::diff(&current.roster, &v2.roster)
        .iter()
        .map(ToString::to_string)
        .collect();
    say(format!(
        "gt proposed roster version 2 (enlace roster propose), published to every member as a signed record; its id, which approvals sign, is {}; what every administrator reviews (enlace roster diff):\n{}",
        proposed.id,
        indent(&changes.join("\n"))
    ));

    for (id, client) in [("gt", &mut gt), ("hn", &mut hn)] {
        holds_proposal(sandbox, id, &proposed.id).await?;
        let key = sandbox.governance_key(id).spelled()?;
        let state = client
            .approve_roster(pb::ApproveRosterRequest {
                approval: Some(Approval::sign(&key, &v2.hash()).to_pb()),
            })
            .await
            .map_err(status_error)?
            .into_inner();
        say(format!(
            "{id} approved with its governance key (enlace roster approve): {} of version 1's threshold {}, {} of version 2's threshold {} — {}",
            state.current_approvals,
            state.current_threshold,
            state.next_approvals,
            state.next_threshold,
            state.state
        ));
    }
    // cr's own governance key signs offline; gt submits the approval.
    let from_cr = Approval::sign(&sandbox.governance_key("cr").spelled()?, &v2.hash());
    let state = gt
        .approve_roster(pb::ApproveRosterRequest {
            approval: Some(from_cr.to_pb()),
        })
        .await
        .map_err(status_error)?
        .into_inner();
    say(format!(
        "cr signed offline (enlace roster sign) and gt submitted it (enlace roster submit): approved by {} — {}",
        state.approved_by.join(", "),
        state.state
    ));
    for id in ["gt", "hn", "sv"] {
        in_force(sandbox, id, 2).await?;
    }
    say(
        "gt, hn and sv each adopted roster version 2 by themselves: persisted, then trust reloaded live (no restart); cr's CA and signing key are now trusted".to_owned(),
    );

    // cr's operator is handed one hash out of band: version 2's.
    sandbox.anchor_only("cr", &v2.hash(), "gt").spelled()?;
    let cr = sandbox.start("cr").await.spelled()?;
    say(format!(
        "started node cr with only the anchor sha256:{} and gt's endpoint: it fetched the roster chain from gt and verified it from the anchor",
        chain::hex(&v2.hash())
    ));
    let mut watch = sandbox
        .client("cr")
        .await
        .spelled()?
        .watch_records(pb::WatchRecordsRequest::default())
        .await
        .map_err(status_error)?
        .into_inner();
    let alert = gt
        .publish_alert(pb::PublishAlertRequest {
            alert: Some(enlace::testing::sample_alert(
                "Alerta a todos los miembros, Costa Rica incluida",
            )),
            ..Default::default()
        })
        .await
        .map_err(status_error)?
        .into_inner();
    loop {
        let r = tokio::time::timeout(WAIT, watch.message())
            .await
            .context("cr did not receive gt's alert in time")?
            .map_err(status_error)?
            .context("cr's watch stream ended")?;
        if r.record_id == alert.record_id {
            say(format!(
                "cr received {} from gt; signature verified with key {}",
                r.record_id, r.key_id
            ));
            return Ok(cr);
        }
    }
}
