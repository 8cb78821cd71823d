//! `enlace roster`: the federation's roster chain, offline.
//!
//! A change is made from a TOML source (`compile`), approved by each
//! member's governance key where that key lives (`sign`, which needs no
//! node and no network), and put together once a threshold approved
//! (`seal`), after which the version file goes to each member's chain
//! directory (`federation.chain`) or travels through the federation.
//! `verify` checks a whole chain directory from version 1 or an anchor,
//! and `show` prints the version in force of a chain directory.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::Subcommand;
use prost::Message;

use enlace::records::crypto::{self, SigningKey};
use enlace::trust::chain::{self, Approval, Signed, Tally, Version};
use enlace::trust::roster::{Role, Roster, RosterSource};
use enlace::wire::pb::v1 as pb;

use super::output::time as rfc3339;

#[derive(Debug, Subcommand)]
pub enum RosterCommand {
    /// The version in force of a chain directory: version, hash, expiry,
    /// threshold, members.
    Show {
        /// A chain directory (`federation.chain`, or a node's
        /// `<data_dir>/roster`).
        #[arg(long)]
        chain: PathBuf,
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
}

pub fn roster(cmd: RosterCommand) -> anyhow::Result<()> {
    match cmd {
        RosterCommand::Show {
            chain,
            anchor,
            json,
        } => {
            let walk = walk(&chain, anchor.as_deref())?;
            let head = walk.head();
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&describe(&head.version.roster))?
                );
            } else {
                print!("{}", readable(&head.version.roster));
            }
            Ok(())
        }
        RosterCommand::Compile { file, after, out } => {
            let source = RosterSource::load(&file).map_err(anyhow::Error::msg)?;
            let (n, previous) = match &after {
                Some(dir) => {
                    let walk = walk(dir, None)?;
                    let head = &walk.head().version.roster.position;
                    (head.version + 1, Some(head.hash))
                }
                None => (1, None),
            };
            let (bytes, roster) = source
                .compile(n, previous, enlace::clock::now_ms())
                .map_err(anyhow::Error::msg)?;
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
            let key =
                SigningKey::load(&governance_key, "governance").map_err(anyhow::Error::msg)?;
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
            let mut approvals = Vec::new();
            for s in &signatures {
                let bytes =
                    std::fs::read(s).with_context(|| format!("cannot read {}", s.display()))?;
                let a = pb::RosterApproval::decode(bytes.as_slice())
                    .map_err(|e| anyhow::anyhow!("{}: is not an approval: {e}", s.display()))
                    .and_then(|a| {
                        Approval::from_pb(&a).map_err(|e| anyhow::anyhow!("{}: {e}", s.display()))
                    })?;
                approvals.push(a);
            }
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

fn read_version(path: &Path) -> anyhow::Result<Version> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    // A sealed version file is accepted as a proposal too.
    if let Ok(signed) = Signed::decode(&bytes) {
        return Ok(signed.version);
    }
    Version::parse(bytes).map_err(anyhow::Error::msg)
}

/// A version as JSON: the `roster show --json` contract.
fn describe(r: &Roster) -> serde_json::Value {
    let p = &r.position;
    serde_json::json!({
        "federation": r.federation,
        "version": p.version,
        "hash": chain::hex(&p.hash),
        "previous": (p.version > 1).then(|| chain::hex(&p.previous)),
        "expires": rfc3339(p.expires_at_ms),
        "threshold": p.threshold,
        "members": r.members().map(|m| serde_json::json!({
            "id": m.id.as_str(),
            "name": m.name,
            "country": m.country,
            "role": match m.role { Role::Member => "member", Role::Observer => "observer" },
            "endpoint": m.endpoint.as_ref().map(|e| format!("{}:{}", e.host, e.port)),
            "signing_keys": m.signing_keys.iter().map(|k| k.key_id.clone()).collect::<Vec<_>>(),
            "governance_keys": m.governance_keys.iter().map(|k| chain::key_name(k)).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    })
}

/// A version for people.
fn readable(r: &Roster) -> String {
    use std::fmt::Write as _;
    let p = &r.position;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "federation {} roster version {}",
        r.federation, p.version
    );
    let _ = writeln!(out, "  hash       {}", chain::hex(&p.hash));
    if p.version > 1 {
        let _ = writeln!(out, "  previous   {}", chain::hex(&p.previous));
    }
    let _ = writeln!(out, "  expires    {}", rfc3339(p.expires_at_ms));
    let voting = r.voting_members().count();
    let _ = writeln!(
        out,
        "  threshold  {} of {voting} voting members",
        p.threshold
    );
    for m in r.members() {
        let _ = writeln!(
            out,
            "  {:<6} {:<8} {} {}  endpoint {}  signing {}  governance {}",
            m.id.as_str(),
            match m.role {
                Role::Member => "member",
                Role::Observer => "observer",
            },
            m.country,
            m.name,
            m.endpoint
                .as_ref()
                .map_or("-".to_owned(), |e| format!("{}:{}", e.host, e.port)),
            m.signing_keys
                .iter()
                .map(|k| k.key_id.as_str())
                .collect::<Vec<_>>()
                .join(","),
            m.governance_keys
                .iter()
                .map(|k| chain::key_name(k))
                .collect::<Vec<_>>()
                .join(","),
        );
    }
    out
}
