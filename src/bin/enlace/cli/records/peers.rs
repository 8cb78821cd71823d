//! `enlace peers`: the replication status of a node's peers, and the
//! digest comparison that tells whether they hold the same records.

use anyhow::bail;
use clap::Args;
use serde_json::{Value, json};

use super::super::agency::{Client, ClientArg, connect, status_error};
use super::super::output::time;
use enlace::wire::pb::v1 as pb;

#[derive(Debug, Args)]
pub struct PeersArgs {
    #[command(flatten)]
    client: ClientArg,
    /// Compare record digests with every peer, per origin; exits 1 if any
    /// differs or cannot be compared.
    #[arg(long)]
    verify: bool,
    #[arg(long)]
    json: bool,
}

async fn verify_peers(c: &mut Client, as_json: bool) -> anyhow::Result<()> {
    let resp = c
        .verify_peers(pb::VerifyPeersRequest {})
        .await
        .map_err(status_error)?
        .into_inner();
    let mut bad = 0;
    for p in &resp.comparisons {
        let ok = p.error.is_empty() && p.equal;
        if !ok {
            bad += 1;
        }
        if as_json {
            println!(
                "{}",
                json!({
                    "peer": p.peer,
                    "origin": if p.origin.is_empty() { Value::Null } else { json!(p.origin) },
                    "up_to_seq": p.up_to_seq,
                    "local_count": p.local_count,
                    "peer_count": p.peer_count,
                    "equal": ok,
                    "error": if p.error.is_empty() { Value::Null } else { json!(p.error) },
                })
            );
        } else if p.error.is_empty() {
            println!(
                "{:<8} origin {:<8} up to seq {:>8}  here {:>8}  there {:>8}  {}",
                p.peer,
                p.origin,
                p.up_to_seq,
                p.local_count,
                p.peer_count,
                if p.equal { "same" } else { "DIFFERENT" }
            );
        } else {
            println!("{:<8} cannot compare: {}", p.peer, p.error);
        }
    }
    if bad > 0 {
        bail!("{bad} comparison(s) differ or failed");
    }
    Ok(())
}

pub async fn peers(a: PeersArgs) -> anyhow::Result<()> {
    let mut c = connect(&a.client).await?;
    if a.verify {
        return verify_peers(&mut c, a.json).await;
    }
    let resp = c
        .list_peers(pb::ListPeersRequest {})
        .await
        .map_err(status_error)?
        .into_inner();
    for p in resp.peers {
        if a.json {
            println!(
                "{}",
                json!({
                    "node_id": p.node_id,
                    "endpoint": p.endpoint,
                    "connected": p.connected,
                    "cursor": p.cursor,
                    "head": p.head,
                    "lag": p.lag,
                    "last_error": if p.last_error.is_empty() { Value::Null } else { json!(p.last_error) },
                    "last_contact": if p.last_contact_ms == 0 { Value::Null } else { json!(time(p.last_contact_ms)) },
                    "records_received": p.records_received,
                    "records_rejected": p.records_rejected,
                })
            );
        } else {
            println!(
                "{:<8} {:<22} {:<12} cursor {:>8}  received {:>8}  rejected {:>4}  {}",
                p.node_id,
                p.endpoint,
                if p.connected {
                    "connected"
                } else {
                    "disconnected"
                },
                p.cursor,
                p.records_received,
                p.records_rejected,
                p.last_error
            );
        }
    }
    Ok(())
}
