//! `enlace roster`: the federation's roster chain.
//!
//! Offline, a change is made from a TOML source (`compile`), approved by
//! each member's governance key where that key lives (`sign`, which needs
//! no node and no network), and put together once a threshold approved
//! (`seal`), after which the version file goes to each member's chain
//! directory (`federation.chain`). `verify` checks a whole chain directory
//! from version 1 or an anchor, and `show --chain` prints the version in
//! force of a chain directory.
//!
//! Through a node (`--client`, [`super::roster_client`]), the same change
//! travels through the federation: `propose` publishes it to every member,
//! `proposals` and `diff` show what is held and what it changes, `approve`
//! signs it here with a governance key and `submit` sends an approval made
//! offline by `sign`; every node adopts it by itself once both thresholds
//! are held, and `show --client` prints the version in force at a node.

use std::path::{Path, PathBuf};

use anyhow::bail;
use clap::{ArgGroup, Subcommand};
use prost::Message;

use enlace::records::crypto;
use enlace::trust::chain::{self, Approval, Tally};

use super::agency::ClientArg;
use super::output::time as rfc3339;
use super::roster_client as remote;
use super::roster_files::{
    compile_after, load_governance_key, print_roster, read_approval, read_version, readable,
};

#[derive(Debug, Subcommand)]
pub enum RosterCommand {
    /// The version in force of a chain directory, or at a node: version,
    /// hash, expiry, threshold, members.
    #[command(group(ArgGroup::new("source").required(true).args(["chain", "client"])))]
    Show {
        /// A chain directory (`federation.chain`, or a node's
        /// `<data_dir>/roster`).
        #[arg(long)]
        chain: Option<PathBuf>,
        /// Or ask a node: an agency client file (endpoint, certificate,
        /// key, CA).
        #[arg(long)]
        client: Option<PathBuf>,
        /// Verify the chain directory from the version with this hash.
        #[arg(long)]
        anchor: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Encode a TOML roster as the next version of a chain (version 1 of a
    /// new chain without --after). Prints the version's hash on the last
    /// line: what every approver signs.
    Compile {
        /// The roster source (TOML).
        #[arg(long)]
        file: PathBuf,
        /// The chain the version follows: its newest version is the
        /// previous one.
        #[arg(long)]
        after: Option<PathBuf>,
        /// Where to write the version's bytes (the proposal).
        #[arg(long)]
        out: PathBuf,
    },
    /// Approve a proposal with a governance key, offline. Prints what is
    /// approved, then writes the detached approval.
    Sign {
        /// The proposal: a version's bytes, from `compile`.
        #[arg(long)]
        proposal: PathBuf,
        /// The member's governance key (PKCS#8 PEM, mode 0600).
        #[arg(long)]
        governance_key: PathBuf,
        /// Where to write the approval.
        #[arg(long)]
        out: PathBuf,
    },
    /// Put a proposal and its approvals into a chain directory, once they
    /// reach both thresholds (or version 1's own).
    Seal {
        #[arg(long)]
        proposal: PathBuf,
        /// Approval files from `sign`; repeat.
        #[arg(long = "signature", required = true)]
        signatures: Vec<PathBuf>,
        /// The chain directory to add the version to.
        #[arg(long)]
        chain: PathBuf,
    },
    /// Verify a chain directory from version 1, or from the version whose
    /// hash is the anchor. Works offline.
    Verify {
        #[arg(long)]
        chain: PathBuf,
        #[arg(long)]
        anchor: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Propose a TOML roster as the next version to every member, through
    /// a node: compiled after the version in force there. Prints the
    /// proposal id (its hash, what approvals sign) on the last line.
    Propose {
        #[command(flatten)]
        client: ClientArg,
        /// The roster source (TOML).
        #[arg(long)]
        file: PathBuf,
    },
    /// The proposals a node holds, newest version first, with their state
    /// and approvals.
    Proposals {
        #[command(flatten)]
        client: ClientArg,
        /// An array of objects: id, version, approvals, threshold, state, …
        #[arg(long)]
        json: bool,
    },
    /// What a proposal held by a node changes, compared with the version
    /// it follows.
    Diff {
        #[command(flatten)]
        client: ClientArg,
        /// The proposal id, or a prefix of at least 8 hex digits.
        id: String,
        #[arg(long)]
        json: bool,
        /// Also write the proposal's bytes (checked against its id) to
        /// this file, for `enlace roster sign` on an offline machine.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Approve a proposal held by a node with a governance key: checks its
    /// id, prints what is approved, signs here (the key never leaves this
    /// machine) and sends the approval.
    Approve {
        #[command(flatten)]
        client: ClientArg,
        /// The proposal id, or a prefix of at least 8 hex digits.
        id: String,
        /// The member's governance key (PKCS#8 PEM, mode 0600).
        #[arg(long)]
        governance_key: PathBuf,
    },
    /// Send an approval made offline by `sign` to a node, which publishes
    /// it to every member.
    Submit {
        #[command(flatten)]
        client: ClientArg,
        /// The approval file written by `sign`.
        #[arg(long)]
        signature: PathBuf,
    },
}

pub async fn roster(cmd: RosterCommand) -> anyhow::Result<()> {
    match cmd {
        RosterCommand::Show {
            chain,
            client,
            anchor,
            json,
        } => match (chain, client) {
            (_, Some(_)) if anchor.is_some() => {
                bail!("--anchor verifies a chain directory: give it with --chain")
            }
            (_, Some(client)) => remote::show(&ClientArg { client }, json).await,
            (Some(chain), None) => {
                let walk = walk(&chain, anchor.as_deref())?;
                print_roster(&walk.head().version.roster, json)
            }
            (None, None) => bail!("give --chain or --client"),
        },
        RosterCommand::Propose { client, file } => remote::propose(&client, &file).await,
        RosterCommand::Proposals { client, json } => remote::proposals(&client, json).await,
        RosterCommand::Diff {
            client,
            id,
            json,
            out,
        } => remote::diff(&client, &id, json, out.as_deref()).await,
        RosterCommand::Approve {
            client,
            id,
            governance_key,
        } => remote::approve(&client, &id, &governance_key).await,
        RosterCommand::Submit { client, signature } => remote::submit(&client, &signature).await,
        RosterCommand::Compile { file, after, out } => {
            let head = after.as_deref().map(|dir| walk(dir, None)).transpose()?;
            let (bytes, roster) =
                compile_after(&file, head.as_ref().map(|w| &*w.head().version.roster))?;
            crypto::write_public_file(&out, &bytes, false).map_err(anyhow::Error::msg)?;
            eprint!("{}", readable(&roster));
            eprintln!("wrote proposal {}", out.display());
            println!("{}", chain::hex(&roster.position.hash));
            Ok(())
        }
        RosterCommand::Sign {
            proposal,
            governance_key,
            out,
        } => {
            let version = read_version(&proposal)?;
            let key = load_governance_key(&governance_key)?;
            let roster = &version.roster;
            let Some(member) = roster.governance_key_owner(key.public_key()) else {
                bail!(
                    "{} is not a governance key of any voting member of version {}; an approval by it would not count",
                    governance_key.display(),
                    roster.position.version
                );
            };
            eprint!("{}", readable(roster));
            eprintln!(
                "approving as {} (governance key {})",
                member.id,
                chain::key_name(key.public_key())
            );
            let approval = Approval::sign(&key, &version.hash());
            crypto::write_public_file(&out, &approval.to_pb().encode_to_vec(), false)
                .map_err(anyhow::Error::msg)?;
            eprintln!("wrote approval {}", out.display());
            Ok(())
        }
        RosterCommand::Seal {
            proposal,
            signatures,
            chain: dir,
        } => {
            let version = read_version(&proposal)?;
            let approvals = signatures
                .iter()
                .map(|s| read_approval(s))
                .collect::<anyhow::Result<Vec<_>>>()?;
            let signed = chain::seal(&version, approvals);
            let current = if version.number() == 1 {
                None
            } else {
                Some(walk(&dir, None)?.head().version.roster.clone())
            };
            let tally = match &current {
                Some(c) => chain::verify_successor(c, &signed, Some(enlace::clock::now_ms()))
                    .map_err(|r| anyhow::anyhow!("refused ({}): {r}", r.reason()))?,
                None => {
                    chain::verify_start(&signed, None, Some(enlace::clock::now_ms()))
                        .map_err(|r| anyhow::anyhow!("refused ({}): {r}", r.reason()))?;
                    Tally::count(None, &version.roster, &signed.approvals)
                }
            };
            for r in &tally.ignored {
                eprintln!("not counted ({}): {r}", r.reason());
            }
            let path = chain::dir::write(&dir, &signed, chain::dir::Access::Shared)
                .map_err(anyhow::Error::msg)?;
            println!("{}", path.display());
            Ok(())
        }
        RosterCommand::Verify {
            chain: dir,
            anchor,
            json,
        } => {
            let walk = walk(&dir, anchor.as_deref())?;
            let now = enlace::clock::now_ms();
            if json {
                let versions: Vec<_> = walk
                    .chain
                    .iter()
                    .map(|s| {
                        let p = &s.version.roster.position;
                        serde_json::json!({
                            "version": p.version,
                            "hash": chain::hex(&p.hash),
                            "approvals": s.approvals.len(),
                            "expires": rfc3339(p.expires_at_ms),
                        })
                    })
                    .collect();
                println!(
                    "{}",
                    serde_json::json!({
                        "valid": walk.stopped.is_none(),
                        "versions": versions,
                        "stopped": walk.stopped.as_ref().map(|(at, r)| serde_json::json!({
                            "version": at, "reason": r.reason(), "message": r.to_string(),
                        })),
                    })
                );
            } else {
                for s in &walk.chain {
                    let p = &s.version.roster.position;
                    println!(
                        "version {} {} ({} approvals, expires {})",
                        p.version,
                        chain::hex(&p.hash),
                        s.approvals.len(),
                        rfc3339(p.expires_at_ms)
                    );
                }
            }
            let head = &walk.head().version.roster;
            if let Some((at, r)) = &walk.stopped {
                bail!("version {at} refused ({}): {r}", r.reason());
            }
            if let Err(r) = chain::check_expiry(head, now) {
                eprintln!(
                    "warning: {r}; links keep working, but a change needs a new version approved"
                );
            }
            Ok(())
        }
    }
}

fn walk(dir: &Path, anchor: Option<&str>) -> anyhow::Result<chain::Walk> {
    let anchor = anchor
        .map(chain::parse_hash)
        .transpose()
        .map_err(|e| anyhow::anyhow!("--anchor: {e}"))?;
    let found = chain::dir::read(dir).map_err(|p| anyhow::anyhow!("{}", p.join("\n")))?;
    if found.is_empty() {
        bail!(
            "{}: holds no roster version (<version>.roster)",
            dir.display()
        );
    }
    chain::verify_chain(found.into_iter().map(|(_, s)| s).collect(), anchor.as_ref())
        .map_err(|(at, r)| anyhow::anyhow!("version {at} refused ({}): {r}", r.reason()))
}
