//! `enlace bench verify-limit`: the ceiling that replication is measured
//! against — Ed25519 record verifications (and body decodes) per second
//! on one thread.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;

use enlace::records::crypto::{self, SigningKey};
use enlace::records::model::NodeId;
use enlace::records::selector::MatchingKey;
use enlace::wire;

use super::records::{Records, sample_contact};
use super::report::{Report, Row, group};
use crate::failure::Spelled;

/// Distinct signed records the verify-limit loop cycles through.
pub(super) const VERIFY_SAMPLE: u64 = 2048;
/// How long the verify-limit loop runs, at least.
pub(super) const VERIFY_TIME: Duration = Duration::from_secs(1);

pub(super) async fn run() -> anyhow::Result<Report> {
    let limit = measure_verify_limit().await?;
    Ok(Report {
        heading: format!(
            "verify-limit — Ed25519 record verifications on one thread ({}-byte bodies)",
            limit.body_bytes
        ),
        rows: vec![
            Row::new("verifications/s", group(limit.per_s)),
            Row::new("body decodes/s", group(limit.decode_per_s)),
        ],
        notes: Vec::new(),
        json: json!({
            "bench": "verify-limit",
            "verify_limit_per_s": limit.per_s.round(),
            "decode_per_s": limit.decode_per_s.round(),
            "body_bytes": limit.body_bytes,
        }),
    })
}

pub(super) struct VerifyLimit {
    pub(super) per_s: f64,
    decode_per_s: f64,
    pub(super) body_bytes: usize,
}

/// Signature verifications (and body decodes) per second on one thread.
pub(super) async fn measure_verify_limit() -> anyhow::Result<VerifyLimit> {
    let origin = NodeId::parse("gt").spelled()?;
    let (signing, _) = SigningKey::generate("gt-bench-1").spelled()?;
    let (matching, _) = MatchingKey::generate().spelled()?;
    let records = Records::new(
        origin,
        Arc::new(signing),
        Some(&matching),
        Some(sample_contact()),
        Duration::from_secs(365 * 86_400),
    )?;
    tokio::task::spawn_blocking(move || {
        let envelopes = (1..=VERIFY_SAMPLE)
            .map(|seq| records.signed(seq).map(|(_, e, _)| e))
            .collect::<Result<Vec<_>, _>>()?;
        let key = records.signing.public_key().to_vec();
        let key_id = records.signing.key_id().to_owned();
        let per_s = rate_on_one_thread(&envelopes, |e| {
            crypto::verify_record(&key, &key_id, &e.body, &e.signature).spelled()
        })?;
        let decode_per_s = rate_on_one_thread(&envelopes, |e| {
            std::hint::black_box(wire::decode_body(&e.body).spelled()?);
            Ok(())
        })?;
        Ok(VerifyLimit {
            per_s,
            decode_per_s,
            body_bytes: records.body_bytes,
        })
    })
    .await
    .spelled()?
}

/// Runs `f` over `items` again and again for at least [`VERIFY_TIME`];
/// returns calls per second.
pub(super) fn rate_on_one_thread<T>(
    items: &[T],
    f: impl Fn(&T) -> anyhow::Result<()>,
) -> anyhow::Result<f64> {
    // One untimed pass: caches and lazy initialisation.
    for item in items.iter().take(64) {
        f(item)?;
    }
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < VERIFY_TIME {
        for item in items {
            f(item)?;
        }
        n += items.len() as u64;
    }
    Ok(n as f64 / start.elapsed().as_secs_f64())
}
