//! What the offline and the client roster commands share: reading
//! versions, approvals and governance keys from files, compiling a source
//! after a version, and printing a roster. Its own file so that the two
//! command sets depend on it and not on each other.

use std::path::Path;

use anyhow::Context;
use prost::Message;

use enlace::records::crypto::SigningKey;
use enlace::trust::chain::{self, Approval, Signed, Version};
use enlace::trust::roster::{Role, Roster, RosterSource};
use enlace::wire::pb::v1 as pb;

use super::output::time as rfc3339;

/// Compiles the roster source `file` as the version after `head` (version
/// 1 of a new chain without one), proposed now: its bytes, and the roster
/// they describe.
///
/// NOTE: a source that breaks the OPRF epoch rules towards `head` is
/// refused here, with the chain's own refusal: every node would refuse
/// the version, and nobody should approve it first.
pub(super) fn compile_after(
    file: &Path,
    head: Option<&Roster>,
) -> anyhow::Result<(Vec<u8>, Roster)> {
    let source = RosterSource::load(file).map_err(anyhow::Error::msg)?;
    let (n, previous) = match head {
        Some(r) => (r.position.version + 1, Some(r.position.hash)),
        None => (1, None),
    };
    let (bytes, next) = source
        .compile(n, previous, enlace::clock::now_ms())
        .map_err(anyhow::Error::msg)?;
    if let Some(head) = head {
        chain::check_oprf_epochs(head, &next)
            .map_err(|r| anyhow::anyhow!("{}: refused ({}): {r}", file.display(), r.reason()))?;
    }
    Ok((bytes, next))
}

/// A governance key from its file, refused if others can read it.
pub(super) fn load_governance_key(path: &Path) -> anyhow::Result<SigningKey> {
    SigningKey::load(path, "governance").map_err(anyhow::Error::msg)
}

/// An approval file written by `sign`.
pub(super) fn read_approval(path: &Path) -> anyhow::Result<Approval> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let a = pb::RosterApproval::decode(bytes.as_slice())
        .map_err(|e| anyhow::anyhow!("{}: is not an approval: {e}", path.display()))?;
    Approval::from_pb(&a).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

/// Prints a version as `roster show` does, for people or as JSON,
/// whether it came from a chain directory or from a node.
pub(super) fn print_roster(r: &Roster, json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(&describe(r))?);
    } else {
        print!("{}", readable(r));
    }
    Ok(())
}

pub(super) fn read_version(path: &Path) -> anyhow::Result<Version> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    // A sealed version file is accepted as a proposal too.
    if let Ok(signed) = Signed::decode(&bytes) {
        return Ok(signed.version);
    }
    Version::parse(bytes).map_err(anyhow::Error::msg)
}

/// A version as JSON: the `roster show --json` contract.
pub(super) fn describe(r: &Roster) -> serde_json::Value {
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
            "oprf_epochs": m.oprf_keys.iter().map(|k| k.epoch).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    })
}

/// A version for people.
pub(super) fn readable(r: &Roster) -> String {
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
            "  {:<6} {:<8} {} {}  endpoint {}  signing {}  governance {}  oprf {}",
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
            or_dash(m.signing_keys.iter().map(|k| k.key_id.clone()).collect()),
            or_dash(
                m.governance_keys
                    .iter()
                    .map(|k| chain::key_name(k))
                    .collect()
            ),
            or_dash(
                m.oprf_keys
                    .iter()
                    .map(|k| format!("epoch {}", k.epoch))
                    .collect()
            ),
        );
    }
    out
}

/// A list for people: comma-separated, `-` when empty.
fn or_dash(items: Vec<String>) -> String {
    if items.is_empty() {
        "-".to_owned()
    } else {
        items.join(",")
    }
}
