//! `enlace roster` through a node's agency API (`--client F`): the version
//! in force there, a proposal published to every member, the proposals
//! held with their approvals, what one changes, and an approval.
//!
//! A governance key never reaches the node: `approve` reads the
//! proposal's bytes from the node, checks that they hash to the id asked
//! for, shows what they change, and signs that hash here, exactly as the
//! offline `sign` does; only the detached approval is sent. What the node
//! refuses (a key of no member, a proposal that does not follow the
//! version in force, …) is printed with its reason, and the command fails.

use std::path::Path;

use anyhow::{Context, anyhow, bail};

use super::agency::{Client, ClientArg, connect, status_error};
use super::output::time as rfc3339;
use super::roster_files::{
    compile_after, load_governance_key, print_roster, read_approval, readable,
};
use enlace::records::crypto;
use enlace::trust::chain::{self, Approval, Version};
use enlace::trust::roster::Roster;
use enlace::trust::roster::diff::{Change, diff as changes};
use enlace::wire::pb::v1 as pb;

/// `roster show --client`: the version in force at the node.
pub async fn show(arg: &ClientArg, json: bool) -> anyhow::Result<()> {
    let mut c = connect(arg).await?;
    let head = in_force(&mut c).await?;
    print_roster(&head.roster, json)
}

/// `roster propose`: the source compiled after the node's version in
/// force, published; the proposal id alone on stdout.
pub async fn propose(arg: &ClientArg, file: &Path) -> anyhow::Result<()> {
    let mut c = connect(arg).await?;
    let head = in_force(&mut c).await?;
    let (bytes, next) = compile_after(file, Some(&head.roster))?;
    eprint!("{}", readable(&next));
    eprint!(
        "{}",
        changes_text(&head.roster, &changes(&head.roster, &next))
    );
    let status = c
        .propose_roster(pb::ProposeRosterRequest { version: bytes })
        .await
        .map_err(status_error)?
        .into_inner();
    let id = chain::hex(&next.position.hash);
    if status.id != id {
        bail!(
            "the node answered for proposal {}, not for the one sent ({id})",
            status.id
        );
    }
    eprintln!("proposed: {}", status_line(&status));
    eprintln!(
        "each member's administrator reviews it with `enlace roster diff --client F {}` and approves it with `enlace roster approve`",
        &id[..12]
    );
    println!("{id}");
    Ok(())
}

/// `roster proposals`: what the node holds, newest version first.
pub async fn proposals(arg: &ClientArg, json: bool) -> anyhow::Result<()> {
    let mut c = connect(arg).await?;
    let list = c
        .list_roster_proposals(pb::ListRosterProposalsRequest {})
        .await
        .map_err(status_error)?
        .into_inner()
        .proposals;
    if json {
        let all: Vec<serde_json::Value> = list.iter().map(proposal_json).collect();
        println!("{}", serde_json::to_string_pretty(&all)?);
        return Ok(());
    }
    if list.is_empty() {
        eprintln!("no roster proposal is held by this node");
    }
    for s in &list {
        println!("{}", status_line(s));
        println!(
            "  proposed by {} at {} (record {})",
            s.proposed_by,
            rfc3339(s.proposed_at_ms),
            s.record_id
        );
    }
    Ok(())
}

/// `roster diff`: what a proposal changes, compared with the version it
/// follows as the node holds it.
pub async fn diff(arg: &ClientArg, id: &str, json: bool, out: Option<&Path>) -> anyhow::Result<()> {
    let mut c = connect(arg).await?;
    let p = fetch(&mut c, id).await?;
    if let Some(out) = out {
        // Checked against the id by `fetch`: what `sign` approves offline.
        enlace::records::crypto::write_public_file(out, &p.version.bytes, false)
            .with_context(|| format!("cannot write the proposal to {}", out.display()))?;
        eprintln!("proposal written to {}", out.display());
    }
    let Some(previous) = &p.previous else {
        bail!(
            "the node does not hold version {}, which proposal {} follows: there is nothing to compare it with",
            p.version.number().saturating_sub(1),
            p.status.id
        );
    };
    p.warn_if_unlinked();
    let list = changes(&previous.roster, &p.version.roster);
    if json {
        let items = list
            .iter()
            .map(|ch| {
                let mut v = serde_json::to_value(ch)?;
                v["text"] = ch.to_string().into();
                Ok(v)
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "id": p.status.id,
                "version": p.version.number(),
                "state": p.status.state,
                "previous": {
                    "version": previous.number(),
                    "hash": chain::hex(&previous.hash()),
                },
                "follows": p.follows(),
                "changes": items,
            }))?
        );
    } else {
        print!("{}", p.heading());
        print!("{}", changes_text(&previous.roster, &list));
    }
    Ok(())
}

/// `roster approve`: the proposal checked and shown, signed here with the
/// governance key, and the approval sent.
pub async fn approve(arg: &ClientArg, id: &str, key_file: &Path) -> anyhow::Result<()> {
    let key = load_governance_key(key_file)?;
    let mut c = connect(arg).await?;
    let p = fetch(&mut c, id).await?;
    eprint!("{}", p.heading());
    match &p.previous {
        Some(previous) => {
            p.warn_if_unlinked();
            eprint!(
                "{}",
                changes_text(
                    &previous.roster,
                    &changes(&previous.roster, &p.version.roster)
                )
            );
        }
        None => {
            eprintln!(
                "  the node does not hold version {}, which it follows: the whole version instead of a diff",
                p.version.number().saturating_sub(1)
            );
            eprint!("{}", readable(&p.version.roster));
        }
    }
    let pk = key.public_key();
    let owner = p
        .version
        .roster
        .governance_key_owner(pk)
        .or_else(|| p.previous.as_ref()?.roster.governance_key_owner(pk));
    match owner {
        Some(m) => eprintln!(
            "approving as {} (governance key {})",
            m.id,
            chain::key_name(pk)
        ),
        None => eprintln!(
            "governance key {} ({}) is no voting member's in the versions shown; the node decides",
            chain::key_name(pk),
            key_file.display()
        ),
    }
    let approval = Approval::sign(&key, &p.version.hash());
    let status = send(&mut c, &approval).await?;
    println!("{}", status_line(&status));
    Ok(())
}

/// `roster submit`: an approval made offline by `sign`, sent.
pub async fn submit(arg: &ClientArg, signature: &Path) -> anyhow::Result<()> {
    let approval = read_approval(signature)?;
    eprintln!(
        "approval of proposal {} by governance key {}",
        chain::hex(&approval.roster_sha256),
        approval.key_name()
    );
    let mut c = connect(arg).await?;
    let status = send(&mut c, &approval).await?;
    println!("{}", status_line(&status));
    Ok(())
}

async fn send(c: &mut Client, approval: &Approval) -> anyhow::Result<pb::RosterProposalStatus> {
    Ok(c.approve_roster(pb::ApproveRosterRequest {
        approval: Some(approval.to_pb()),
    })
    .await
    .map_err(status_error)?
    .into_inner())
}

/// The version in force at the node, read from its bytes, which must be
/// what the node says they are.
async fn in_force(c: &mut Client) -> anyhow::Result<Version> {
    let s = c
        .get_roster(pb::GetRosterRequest {})
        .await
        .map_err(status_error)?
        .into_inner();
    if s.version_bytes.is_empty() {
        bail!(
            "the node sent version {} of its roster without its bytes",
            s.version
        );
    }
    let v = Version::parse(s.version_bytes).map_err(|e| {
        anyhow!(
            "the node's roster version {} cannot be read: {e}",
            s.version
        )
    })?;
    let hash = chain::hex(&v.hash());
    if v.number() != s.version || hash != s.sha256 {
        bail!(
            "the node says version {} ({}) is in force, but sent the bytes of version {} ({hash})",
            s.version,
            s.sha256,
            v.number()
        );
    }
    Ok(v)
}

/// A proposal as the node holds it, its bytes checked against its id.
struct Proposal {
    status: pb::RosterProposalStatus,
    version: Version,
    /// The version it follows, when the node holds it.
    previous: Option<Version>,
}

async fn fetch(c: &mut Client, id: &str) -> anyhow::Result<Proposal> {
    let wanted = id.trim().trim_start_matches("sha256:").to_ascii_lowercase();
    let d = c
        .get_roster_proposal(pb::GetRosterProposalRequest { id: id.to_owned() })
        .await
        .map_err(status_error)?
        .into_inner();
    let status = d
        .status
        .context("the node sent a proposal without its status")?;
    // What is approved is the hash of these bytes: they must be the
    // proposal asked for, whatever the node says.
    let hash = chain::hex(&crypto::sha256(&d.version));
    if hash != status.id || !hash.starts_with(&wanted) {
        bail!(
            "the node sent bytes that hash to {hash}, for proposal {} asked as {wanted}: not approved, not shown",
            status.id
        );
    }
    let version = Version::parse(d.version)
        .map_err(|e| anyhow!("proposal {hash} is not a valid roster version: {e}"))?;
    let previous = if d.previous_version.is_empty() {
        None
    } else {
        Some(
            Version::parse(d.previous_version)
                .map_err(|e| anyhow!("the version proposal {hash} follows cannot be read: {e}"))?,
        )
    };
    Ok(Proposal {
        status,
        version,
        previous,
    })
}

impl Proposal {
    /// Whether it names the version the node sent as its previous.
    fn follows(&self) -> bool {
        self.previous
            .as_ref()
            .is_some_and(|p| p.hash() == self.version.roster.position.previous)
    }

    fn warn_if_unlinked(&self) {
        if let Some(p) = &self.previous
            && !self.follows()
        {
            eprintln!(
                "warning: proposal {} names {} as its previous version, not version {} held here ({}): it cannot follow it",
                self.status.id,
                chain::hex(&self.version.roster.position.previous),
                p.number(),
                chain::hex(&p.hash())
            );
        }
    }

    /// What is proposed, in a few lines.
    fn heading(&self) -> String {
        let r = &self.version.roster;
        let p = &r.position;
        let mut out = format!(
            "federation {} roster version {}, proposed by {} at {}\n  sha256     {}\n",
            r.federation,
            p.version,
            self.status.proposed_by,
            rfc3339(self.status.proposed_at_ms),
            chain::hex(&p.hash)
        );
        if let Some(prev) = &self.previous {
            out.push_str(&format!(
                "  follows    version {} {}\n",
                prev.number(),
                chain::hex(&prev.hash())
            ));
        }
        out.push_str(&format!(
            "  expires    {}\n  state      {}\n",
            rfc3339(p.expires_at_ms),
            standing(&self.status)
        ));
        if !self.status.reason.is_empty() {
            out.push_str(&format!("  reason     {}\n", self.status.reason));
        }
        out
    }
}

/// The changes, one per line, for people.
fn changes_text(current: &Roster, list: &[Change]) -> String {
    if list.is_empty() {
        return format!(
            "  changes    none: it grants the same trust as version {}\n",
            current.position.version
        );
    }
    let mut out = format!(
        "  changes from version {} ({}):\n",
        current.position.version,
        list.len()
    );
    for ch in list {
        out.push_str(&format!("    {ch}\n"));
    }
    out
}

/// A proposal's state and approvals: `pending, approvals 1 of 2 (…)`.
fn standing(s: &pb::RosterProposalStatus) -> String {
    let mut out = format!(
        "{}, approvals {} of {} (version in force {} of {}, proposed version {} of {})",
        s.state,
        s.approved_by.len(),
        s.next_threshold,
        s.current_approvals,
        s.current_threshold,
        s.next_approvals,
        s.next_threshold
    );
    if !s.approved_by.is_empty() {
        out.push_str(&format!(", approved by {}", s.approved_by.join(", ")));
    }
    out
}

/// A proposal on one line: id, version, [`standing`] and the reason.
fn status_line(s: &pb::RosterProposalStatus) -> String {
    let mut line = format!("{} version {}: {}", s.id, s.version, standing(s));
    if !s.reason.is_empty() {
        line.push_str(&format!(": {}", s.reason));
    }
    line
}

/// A proposal as JSON: the `roster proposals --json` contract.
fn proposal_json(s: &pb::RosterProposalStatus) -> serde_json::Value {
    serde_json::json!({
        "id": s.id,
        "version": s.version,
        "state": s.state,
        "approvals": s.approved_by.len(),
        "threshold": s.next_threshold,
        "approved_by": s.approved_by,
        "current_approvals": s.current_approvals,
        "current_threshold": s.current_threshold,
        "next_approvals": s.next_approvals,
        "next_threshold": s.next_threshold,
        "proposed_by": s.proposed_by,
        "proposed_at": rfc3339(s.proposed_at_ms),
        "record_id": s.record_id,
        "reason": (!s.reason.is_empty()).then_some(&s.reason),
    })
}
