//! `audit verify --witnesses-from`: what a peer witnessed of the node under
//! audit, asked of that peer directly through its own agency API
//! (`Agency.AuditWitnessed`) with one of its admin clients.
//!
//! Without it, a verifier reading a node with `--client` gets the peers'
//! witnesses as relayed by that node. Each witness carries the peer's
//! signature, so the node cannot forge one; but it could leave the newest
//! out, or say a peer was unreachable. Asked directly, the peers answer
//! for themselves, and the verifier need not trust the node it audits.

use std::path::{Path, PathBuf};

use enlace::records::model::NodeId;
use enlace::service::client::ClientConfig;
use enlace::wire::Witness;
use enlace::wire::pb::v1 as pb;

/// What one `--witnesses-from` file gave.
pub(super) struct Asked {
    pub file: PathBuf,
    pub outcome: Result<(NodeId, Vec<Witness>), String>,
}

/// Every page of what the node behind `file` witnessed of `node`'s log.
pub(super) async fn ask(file: &Path, node: &NodeId, justification: &str) -> Asked {
    let outcome = async {
        let cfg = ClientConfig::load(file).map_err(|e| e.to_string())?;
        let mut client = cfg.connect().await.map_err(|e| e.to_string())?;
        let mut all = Vec::new();
        let mut answered_by: Option<String> = None;
        let mut after = 0;
        loop {
            let page = client
                .audit_witnessed(pb::WitnessedRequest {
                    node: node.to_string(),
                    after_size: after,
                    up_to_size: 0,
                    limit: 0,
                    justification: justification.to_owned(),
                })
                .await
                .map_err(|s| format!("refused: {}", s.message()))?
                .into_inner();
            match &answered_by {
                Some(w) if *w != page.witness => {
                    return Err(format!(
                        "answered first as {w}, then as {}",
                        page.witness
                    ));
                }
                _ => answered_by = Some(page.witness.clone()),
            }
            let last = page
                .witnesses
                .last()
                .and_then(|w| w.checkpoint.as_ref())
                .and_then(|c| enlace::audit::checkpoint::Checkpoint::decode(&c.body).ok())
                .map(|c| c.size);
            all.extend(page.witnesses.into_iter().map(Witness::from_pb));
            match last {
                Some(size) if page.more && size > after => after = size,
                _ => break,
            }
        }
        let peer = NodeId::parse(answered_by.as_deref().unwrap_or_default())
            .map_err(|e| format!("the answer names no node: {e}"))?;
        if peer == *node {
            return Err(format!(
                "it is a client of {node}, the node under audit: give an admin client of one of its peers"
            ));
        }
        Ok((peer, all))
    }
    .await;
    Asked {
        file: file.to_owned(),
        outcome,
    }
}

/// Puts what the peers answered directly in place of what the node under
/// audit relayed for them, and says so: the check's detail names each
/// peer, how many witnesses it gave and how many the node relayed.
pub(super) fn substitute(
    peers: &mut Vec<(NodeId, Result<Vec<Witness>, String>)>,
    asked: Vec<Asked>,
) -> enlace::audit::verify::Check {
    let mut ok = true;
    let mut lines = Vec::new();
    for a in asked {
        match a.outcome {
            Ok((peer, witnesses)) => {
                let relayed = match peers.iter().find(|(p, _)| *p == peer) {
                    Some((_, Ok(ws))) => format!("the node relayed {}", ws.len()),
                    Some((_, Err(e))) => format!("the node relayed none: {e}"),
                    None => "the node relayed none".into(),
                };
                lines.push(format!(
                    "{peer}: {} witnesses, asked directly ({}); {relayed}",
                    witnesses.len(),
                    a.file.display()
                ));
                peers.retain(|(p, _)| *p != peer);
                peers.push((peer, Ok(witnesses)));
            }
            Err(e) => {
                ok = false;
                lines.push(format!("{}: {e}", a.file.display()));
            }
        }
    }
    enlace::audit::verify::Check {
        name: "witnesses asked directly".into(),
        ok,
        detail: lines.join("; "),
    }
}
