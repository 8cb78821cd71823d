//! This node's entry in the roster, and its peers, dialled as the
//! replicators dial them.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use time::OffsetDateTime;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use super::certificates::date;
use super::{Check, EXPIRY_WARNING_DAYS, PEER_TIMEOUT, Report, Status};
use crate::records::model::NodeId;
use crate::trust::load::LoadedSettings;
use crate::trust::roster::{Endpoint, Role, Roster};
use crate::trust::tls::{self, TlsIdentity};

/// The gRPC service whose health a peer check asks for: a node reports it
/// serving once its store is open and its roster validated.
const FEDERATION_SERVICE: &str = crate::service::FEDERATION_SERVICE_NAME;

/// This node's entry in the roster: membership, signing key, endpoint.
pub(super) fn roster_entry<F: FnMut(&Check)>(
    r: &mut Report<F>,
    roster: &Roster,
    id: &NodeId,
    settings: Option<&LoadedSettings>,
    listen: Option<SocketAddr>,
    now: OffsetDateTime,
) {
    let Some(member) = roster.member(id) else {
        r.push(
            "roster",
            Status::Fail,
            format!(
                "node.id: {id} is not a member of the roster {}",
                roster.path.display()
            ),
        );
        return;
    };
    r.push(
        "roster",
        Status::Ok,
        format!(
            "{id} is a member of federation {} in {} ({}, {})",
            roster.federation,
            roster.path.display(),
            member.name,
            match member.role {
                Role::Member => "member",
                Role::Observer => "observer",
            }
        ),
    );
    let p = &roster.position;
    let now_ms = (now.unix_timestamp_nanos() / 1_000_000) as i64;
    let days_left = (p.expires_at_ms - now_ms).div_euclid(86_400_000);
    let (status, message) = if p.expires_at_ms <= now_ms {
        (
            Status::Warn,
            format!(
                "roster version {} expired {} days ago: links keep working, but no change can be adopted until a new version is approved (docs/roster.md, \"Expiry\")",
                p.version, -days_left
            ),
        )
    } else if days_left <= crate::trust::reload::EXPIRY_WARNING_DAYS {
        (
            Status::Warn,
            format!(
                "roster version {} expires in {days_left} days: have a successor approved before then (docs/roster.md)",
                p.version
            ),
        )
    } else {
        (
            Status::Ok,
            format!(
                "roster version {} ({}), threshold {}, expires in {days_left} days",
                p.version,
                crate::trust::chain::hex(&p.hash),
                p.threshold
            ),
        )
    };
    r.push("roster", status, message);

    if let Some(signing) = settings.map(|s| &s.signing) {
        let key_id = signing.key_id();
        let now_ms = (now.unix_timestamp_nanos() / 1_000_000) as i64;
        let (status, message) = match roster.signing_key(key_id) {
            None => (
                Status::Fail,
                format!("signing.key_id {key_id:?} is not listed in the roster"),
            ),
            Some((owner, _)) if owner.id != *id => (
                Status::Fail,
                format!(
                    "signing.key_id {key_id:?} belongs to member {}, not to {id}",
                    owner.id
                ),
            ),
            Some((_, key)) if key.public_key.as_slice() != signing.public_key() => (
                Status::Fail,
                format!(
                    "signing.key does not match the public key the roster lists under {key_id:?}"
                ),
            ),
            Some((_, key)) if key.valid_until_ms.is_some_and(|t| t < now_ms) => (
                Status::Fail,
                format!(
                    "signing.key_id {key_id:?} is valid only until {} in the roster: peers refuse records signed with it now; switch to the next key (runbook: rotating the signing key)",
                    date_ms(key.valid_until_ms)
                ),
            ),
            Some((_, key)) if key.valid_from_ms.is_some_and(|t| t > now_ms) => (
                Status::Fail,
                format!(
                    "signing.key_id {key_id:?} is valid only from {} in the roster: peers refuse records signed with it until then",
                    date_ms(key.valid_from_ms)
                ),
            ),
            Some((_, key))
                if key
                    .valid_until_ms
                    .is_some_and(|t| t - now_ms <= EXPIRY_WARNING_DAYS * 86_400_000) =>
            {
                (
                    Status::Warn,
                    format!(
                        "signing.key matches the roster's key {key_id:?}, which is valid only until {}: list its successor and switch before then",
                        date_ms(key.valid_until_ms)
                    ),
                )
            }
            Some(_) => (
                Status::Ok,
                format!("signing.key matches the roster's key {key_id:?} for {id}"),
            ),
        };
        r.push("roster", status, message);
    }

    let (status, message) = match &member.endpoint {
        None if member.role == Role::Member => (
            Status::Warn,
            format!(
                "{id} has no endpoint in the roster: no peer can pull the records it publishes"
            ),
        ),
        None => (
            Status::Ok,
            format!("{id} has no endpoint in the roster (an observer that only pulls)"),
        ),
        Some(ep) => {
            let same: Vec<String> = roster
                .members()
                .filter(|m| {
                    m.id != *id && m.endpoint.as_ref().is_some_and(|e| same_endpoint(e, ep))
                })
                .map(|m| m.id.to_string())
                .collect();
            match listen {
                _ if !same.is_empty() => (
                    Status::Fail,
                    format!(
                        "the roster gives {} the same endpoint {ep} as {id}: peers cannot tell them apart",
                        same.join(", ")
                    ),
                ),
                Some(l) if l.port() != 0 && l.port() != ep.port => (
                    Status::Warn,
                    format!(
                        "the roster endpoint of {id} is {ep} but listen.peer is {l}: fine behind a port forward or proxy, otherwise peers cannot reach this node"
                    ),
                ),
                _ => (
                    Status::Ok,
                    format!("no other member uses {id}'s endpoint {ep}"),
                ),
            }
        }
    };
    r.push("roster", status, message);

    let without_ca: Vec<String> = roster
        .members()
        .filter(|m| m.endpoint.is_some() && m.ca_certs.is_empty())
        .map(|m| m.id.to_string())
        .collect();
    let with_endpoint = roster.members().filter(|m| m.endpoint.is_some()).count();
    if without_ca.is_empty() {
        r.push(
            "roster",
            Status::Ok,
            format!("every member with an endpoint ({with_endpoint}) lists a CA"),
        );
    } else {
        r.push(
            "roster",
            Status::Fail,
            format!(
                "members with an endpoint but no CA (no certificate of theirs can be verified): {}",
                without_ca.join(", ")
            ),
        );
    }
}

fn same_endpoint(a: &Endpoint, b: &Endpoint) -> bool {
    a.port == b.port && a.host.eq_ignore_ascii_case(&b.host)
}

fn date_ms(ms: Option<i64>) -> String {
    ms.and_then(|ms| OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).ok())
        .map(date)
        .unwrap_or_default()
}

/// Dials every peer as its replicator would, all at once.
pub(super) async fn peers<F: FnMut(&Check)>(r: &mut Report<F>, settings: &LoadedSettings) {
    let mut probes = tokio::task::JoinSet::new();
    let mut results = Vec::new();
    for m in settings.roster.members() {
        if m.id == settings.node_id {
            continue;
        }
        // NOTE: the same choice as `exchange::peers::Dialer::endpoint`: the
        // `[[sync.peers]]` override first, then the roster.
        let (endpoint, via) = match (settings.sync.endpoints.get(&m.id), &m.endpoint) {
            (Some(e), _) => (e.clone(), " ([[sync.peers]])"),
            (None, Some(e)) => (e.clone(), ""),
            (None, None) => {
                results.push((
                    m.id.clone(),
                    Status::Ok,
                    format!(
                        "{}: not dialled (no endpoint in the roster and no [[sync.peers]] entry)",
                        m.id
                    ),
                ));
                continue;
            }
        };
        let roster = settings.roster.clone();
        let identity = settings.tls.clone();
        let peer = m.id.clone();
        probes.spawn(async move {
            let (status, outcome) = probe(roster, identity, &peer, &endpoint).await;
            (
                peer.clone(),
                status,
                format!("{peer} at {endpoint}{via}: {outcome}"),
            )
        });
    }
    while let Some(done) = probes.join_next().await {
        match done {
            Ok(result) => results.push(result),
            Err(e) => results.push((
                settings.node_id.clone(),
                Status::Fail,
                format!("a peer check failed to run: {e}"),
            )),
        }
    }
    results.sort_by(|a, b| a.0.cmp(&b.0));
    for (_, status, message) in results {
        r.push("peer", status, message);
    }
}

async fn probe(
    roster: Arc<Roster>,
    identity: TlsIdentity,
    peer: &NodeId,
    endpoint: &Endpoint,
) -> (Status, String) {
    let started = Instant::now();
    let channel = tls::peer_client_config(&roster, &identity, peer).and_then(|config| {
        crate::exchange::peers::peer_channel(config, &endpoint.host, endpoint.port)
    });
    let channel = match channel {
        Ok(c) => c,
        Err(e) => return (Status::Fail, format!("cannot dial: {e}")),
    };
    let request = HealthCheckRequest {
        service: FEDERATION_SERVICE.into(),
    };
    let answer =
        tokio::time::timeout(PEER_TIMEOUT, HealthClient::new(channel).check(request)).await;
    match answer {
        Err(_) => (
            Status::Fail,
            format!("unreachable: no answer within {} s", PEER_TIMEOUT.as_secs()),
        ),
        Ok(Err(status)) => (Status::Fail, format!("unreachable: {}", reason(&status))),
        Ok(Ok(resp)) => match ServingStatus::try_from(resp.into_inner().status) {
            Ok(ServingStatus::Serving) => (
                Status::Ok,
                format!(
                    "mTLS handshake and health check passed ({} ms)",
                    started.elapsed().as_millis()
                ),
            ),
            Ok(other) => (
                Status::Fail,
                format!(
                    "reachable, but its federation service is {}",
                    other.as_str_name()
                ),
            ),
            Err(_) => (
                Status::Fail,
                "reachable, but its health answer is not understood".into(),
            ),
        },
    }
}

/// A failed call as one line: the status message and the errors under it
/// (where the TLS or connection failure is told).
fn reason(status: &tonic::Status) -> String {
    let mut out = status.message().to_owned();
    if let Some(source) = std::error::Error::source(status) {
        let chain = crate::service::client::error_chain(source);
        if out.is_empty() || chain.contains(&out) {
            out = chain;
        } else if !out.contains(&chain) {
            out = format!("{out}: {chain}");
        }
    }
    if out.is_empty() {
        out = format!("{:?}", status.code());
    }
    out
}
