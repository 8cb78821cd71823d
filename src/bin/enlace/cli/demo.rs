//! `enlace demo`: a three-member federation (gt, hn, sv) on this machine,
//! with a throwaway PKI, showing an alert travel from one member's node to
//! the others, verified, and an alert addressed to one member only never
//! reaching the other; then each member publishes its protected
//! statistics and gt assembles the regional table; then a fourth member,
//! cr (Costa Rica), joins by quorum (`demo_roster`) and receives an alert.
//!
//! It runs from any working directory: everything lives in a temporary
//! directory (or `--dir`), nodes bind `127.0.0.1:0`.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use clap::Args;
use tokio::sync::mpsc;

use super::agency::status_error;
use super::output::indent;
use crate::failure::Spelled;
use enlace::config::LogFormat;
use enlace::testing::Sandbox;
use enlace::wire::pb::v1 as pb;

/// How long the demo waits for each expected event.
const WAIT: Duration = Duration::from_secs(30);

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Keep the federation's files (PKI, roster, configs, stores) in this
    /// new directory instead of a temporary one.
    #[arg(long)]
    dir: Option<PathBuf>,
}

/// A TLP:RED alert about a smuggling suspect, for named recipients only.
fn smuggling_alert() -> pb::Alert {
    use enlace::records::vocabulary::{AlertType, HandlingCode, Offence, Tlp, Urgency};
    pb::Alert {
        summary: "Sospechoso de tráfico ilícito de migrantes; cruce por El Carmen".into(),
        language: "es".into(),
        r#type: AlertType::Wanted.wire(),
        offence: Offence::Smuggling.wire(),
        smuggling: Some(pb::SmugglingElements {
            material_benefit: true,
            life_endangered: true,
            inhuman_treatment: false,
        }),
        origin_countries: vec!["GT".into()],
        destination_countries: vec!["US".into()],
        handling: Some(pb::Handling {
            code: HandlingCode::H2.wire(),
            condition: String::new(),
        }),
        tlp: Tlp::Red.wire(),
        urgency: Urgency::Urgent.wire(),
        ..Default::default()
    }
}

/// A few series of member `id`'s metrics listener.
async fn scrape_some(sandbox: &Sandbox, id: &str) -> anyhow::Result<String> {
    let member = sandbox.member(id).spelled()?;
    let client = enlace::service::client::ClientConfig::load(&member.client_path()).spelled()?;
    let config =
        enlace::trust::tls::metrics_client_config(&client.ca, &client.identity).spelled()?;
    let name = enlace::trust::tls::server_name("127.0.0.1").spelled()?;
    let (status, body) =
        enlace::node::metrics::server::scrape(config, member.metrics_addr, name, "/metrics")
            .await
            .spelled()?;
    if status != 200 {
        bail!("{id}'s metrics listener answered {status}");
    }
    let shown = [
        "enlace_peer_connected",
        "enlace_records_sent_total",
        "enlace_audit_entries",
        "enlace_certificate_days_left{certificate=\"node\"",
    ];
    Ok(body
        .lines()
        .filter(|l| shown.iter().any(|s| l.starts_with(s)))
        .collect::<Vec<_>>()
        .join("\n"))
}

struct Clock(Instant);

impl Clock {
    fn say(&self, msg: impl AsRef<str>) {
        println!(
            "[{:>7.3}s] {}",
            self.0.elapsed().as_secs_f64(),
            msg.as_ref()
        );
    }
}

/// Each member records one smuggling case, publishes its protected tables
/// for this year, and gt assembles the smuggled-migrants table of the
/// region: small cells hidden, totals over them shown as bounds.
async fn statistics(sandbox: &Sandbox, clock: &Clock) -> anyhow::Result<()> {
    use enlace::records::vocabulary::{AgeGroup, Offence, Sex};
    use enlace::stats::{MemberReport, Period, TableKind};
    let people = [
        (
            "gt",
            [
                (Sex::Female, AgeGroup::Adult, 6),
                (Sex::Male, AgeGroup::Adult, 9),
            ],
        ),
        (
            "hn",
            [
                (Sex::Female, AgeGroup::Child, 2),
                (Sex::Female, AgeGroup::Adult, 7),
            ],
        ),
        (
            "sv",
            [
                (Sex::Male, AgeGroup::Child, 5),
                (Sex::Male, AgeGroup::Adult, 12),
            ],
        ),
    ];
    let year = u16::try_from(time::OffsetDateTime::now_utc().year()).unwrap_or(2026);
    let period = Period::Year(year);
    for (id, groups) in people {
        let mut c = sandbox.client(id).await.spelled()?;
        let victims = groups
            .iter()
            .flat_map(|(sex, age, n)| {
                (0..*n).map(move |_| pb::Victim {
                    sex: sex.wire(),
                    age_group: age.wire(),
                    exploitation: Vec::new(),
                    citizenship: String::new(),
                })
            })
            .collect();
        c.register_case(pb::RegisterCaseRequest {
            case: Some(pb::LocalCase {
                case_number: format!("{}-TIM-0001", id.to_uppercase()),
                offence: Offence::Smuggling.wire(),
                victims,
                ..Default::default()
            }),
            selector_values: Vec::new(),
        })
        .await
        .map_err(status_error)?;
        c.publish_statistics(pb::PublishStatisticsRequest {
            period: period.to_string(),
            tables: Vec::new(),
            correction: 0,
            validate_only: false,
        })
        .await
        .map_err(status_error)?;
    }
    clock.say(format!(
        "gt, hn and sv each counted their local cases into the fixed tables for {period}, protected them (cells of 1 to 4 hidden, and what would give them away) and published them as signed statistical reports"
    ));
    let mut gt = sandbox.client("gt").await.spelled()?;
    let deadline = tokio::time::Instant::now() + WAIT;
    let reports = loop {
        let held = gt
            .regional_statistics(pb::StatisticsRequest {
                period: period.to_string(),
                tables: vec![TableKind::Smuggled.wire()],
            })
            .await
            .map_err(status_error)?
            .into_inner()
            .reports;
        if held.len() == 3 {
            break held;
        }
        if tokio::time::Instant::now() > deadline {
            bail!("gt did not receive the three smuggled-migrants reports within {WAIT:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let mut members = Vec::new();
    for m in reports {
        let report = super::stats::decode(m.report.context("a report gt holds is empty")?)?;
        members.push(MemberReport {
            member: m.member,
            country: m.country,
            report,
        });
    }
    let table = enlace::stats::assemble(TableKind::Smuggled, period, &members).spelled()?;
    clock.say(format!(
        "gt assembled the regional table (enlace stats regional):\n{}",
        indent(&super::stats::render::text_regional(&table))
    ));
    Ok(())
}

pub async fn run(args: DemoArgs) -> anyhow::Result<()> {
    enlace::logging::init_tracing(LogFormat::Text, "warn");
    let clock = Clock(Instant::now());
    println!(
        "enlace demo: a federation of three members on this machine — gt (Guatemala), hn (Honduras), sv (El Salvador) — that a fourth, cr (Costa Rica), joins by quorum\n"
    );

    let mut sandbox = match &args.dir {
        Some(dir) => {
            if dir.exists() {
                bail!("{} exists; name a new directory", dir.display());
            }
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            Sandbox::create_in("enlace-demo", &["gt", "hn", "sv", "cr"], dir)
                .await
                .spelled()?
        }
        None => Sandbox::create("enlace-demo", &["gt", "hn", "sv", "cr"])
            .await
            .spelled()?,
    };
    // Version 1 of the roster: the three founders, approved by all three.
    let full_roster = sandbox.found(&["gt", "hn", "sv"]).spelled()?;
    clock.say(format!(
        "made a throwaway PKI in {}: per member a federation CA, a node certificate (spiffe://enlace-demo/node/<id>), a local agency CA with one client, an Ed25519 signing key, a governance key and an OPRF key; roster version 1 (gt, hn, sv) approved by the three",
        sandbox.dir.display()
    ));

    let mut nodes = Vec::new();
    for id in ["gt", "hn", "sv"] {
        let node = sandbox.start(id).await.spelled()?;
        let m = sandbox.member(id).spelled()?;
        clock.say(format!(
            "started node {id}: peer listener {} (mTLS, federation CAs), agency listener {} (mTLS, local agency CA), metrics listener {} (Prometheus over HTTPS, agency clients)",
            m.peer_addr, m.agency_addr, m.metrics_addr
        ));
        nodes.push(node);
    }

    // hn and sv watch their own agency APIs.
    let (tx, mut arrivals) = mpsc::channel::<(&'static str, pb::RecordView)>(16);
    for id in ["hn", "sv"] {
        let mut client = sandbox.client(id).await.spelled()?;
        let mut stream = client
            .watch_records(pb::WatchRecordsRequest::default())
            .await
            .map_err(status_error)?
            .into_inner();
        let tx = tx.clone();
        tokio::spawn(async move {
            while let Ok(Some(r)) = stream.message().await {
                if tx.send((id, r)).await.is_err() {
                    break;
                }
            }
        });
    }
    clock.say("hn and sv are watching their agency APIs for new records");

    let mut gt = sandbox.client("gt").await.spelled()?;
    let summary =
        "Posible red de trata con fines de explotación sexual; ruta Tecún Umán – Tapachula";
    let first = gt
        .publish_alert(pb::PublishAlertRequest {
            alert: Some(enlace::testing::sample_alert(summary)),
            to: vec![],
            // The passport number stops at gt's node: it goes into gt's match
            // filter under gt's own OPRF key; the alert carries nothing of it.
            selector_values: vec![pb::SelectorValue {
                kind: enlace::records::vocabulary::SelectorKind::Passport.wire(),
                value: "X1234567".into(),
            }],
            validate_only: false,
            idempotency_key: String::new(),
        })
        .await
        .map_err(status_error)?
        .into_inner();
    clock.say(format!(
        "gt published alert {} (seq {}): posible víctima de trata / possible trafficking victim, TLP:AMBER; its passport number went into gt's match filter, not into the record — durable at gt before the call returned",
        first.record_id, first.seq
    ));

    let mut pending = vec!["hn", "sv"];
    let deadline = tokio::time::Instant::now() + WAIT;
    while !pending.is_empty() {
        let (who, r) = tokio::time::timeout_at(deadline, arrivals.recv())
            .await
            .map_err(|_| {
                anyhow!(
                    "the alert did not reach {} within {WAIT:?}",
                    pending.join(" and ")
                )
            })?
            .context("watch streams ended")?;
        if r.record_id == first.record_id {
            clock.say(format!(
                "{who} received {} from {} over mTLS; Ed25519 signature verified against the roster key {}",
                r.record_id, r.origin, r.key_id
            ));
            if pending.len() == 2 {
                // What an analyst at the first recipient sees: labels in
                // Spanish and English, and nothing of the passport number.
                println!("{}", indent(&super::output::record_text(&r)));
            }
            pending.retain(|p| *p != who);
        }
    }

    let second = gt
        .publish_alert(pb::PublishAlertRequest {
            alert: Some(smuggling_alert()),
            to: vec!["hn".into()],
            selector_values: vec![],
            validate_only: false,
            idempotency_key: String::new(),
        })
        .await
        .map_err(status_error)?
        .into_inner();
    clock.say(format!(
        "gt published alert {} (seq {}): persona buscada por tráfico ilícito de migrantes / wanted for smuggling of migrants, TLP:RED, to hn only",
        second.record_id, second.seq
    ));
    loop {
        let (who, r) = tokio::time::timeout_at(tokio::time::Instant::now() + WAIT, arrivals.recv())
            .await
            .map_err(|_| anyhow!("the alert to hn did not arrive within {WAIT:?}"))?
            .context("watch streams ended")?;
        if r.record_id == second.record_id {
            if who != "hn" {
                bail!("{who} received a record addressed to hn only");
            }
            clock.say(format!(
                "hn received {}; signature verified with key {}",
                r.record_id, r.key_id
            ));
            break;
        }
    }
    // sv's replicator has moved past seq 2 without receiving it.
    let mut sv = sandbox.client("sv").await.spelled()?;
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let peers = sv
            .list_peers(pb::ListPeersRequest {})
            .await
            .map_err(status_error)?
            .into_inner();
        if peers
            .peers
            .iter()
            .any(|p| p.node_id == "gt" && p.cursor >= second.seq)
        {
            break;
        }
        if tokio::time::Instant::now() > deadline {
            bail!("sv did not catch up with gt");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let held = sv
        .get_record(pb::GetRecordRequest {
            record_id: second.record_id.clone(),
        })
        .await;
    match held {
        Err(s) if s.code() == tonic::Code::NotFound => clock.say(format!(
            "sv is in sync with gt up to seq {} and does not hold {}: gt never disclosed it to sv",
            second.seq, second.record_id
        )),
        Ok(_) => bail!("sv holds a record addressed to hn only"),
        Err(s) => return Err(status_error(s)),
    }

    oblivious_query(&sandbox, &nodes, &clock).await?;
    statistics(&sandbox, &clock).await?;
    nodes.push(super::demo_roster::cr_joins(&mut sandbox, &full_roster, |m| clock.say(m)).await?);

    // What Prometheus would see at gt.
    let series = scrape_some(&sandbox, "gt").await?;
    clock.say(format!(
        "gt's metrics, scraped over TLS with its agency client certificate:\n{}",
        indent(&series)
    ));

    // The accountability log: gt signs a checkpoint, hn and sv countersign.
    let checkpoints = gt
        .audit_checkpoints(pb::AuditCheckpointsRequest {
            checkpoint_now: true,
            ..Default::default()
        })
        .await
        .map_err(status_error)?
        .into_inner();
    let coverage = enlace::audit::checkpoint::Coverage::of(&(&checkpoints).into()).spelled()?;
    let size = coverage.size;
    let witnesses = coverage.witnesses();
    clock.say(format!(
        "gt's audit log: {size} hash-chained entries (its start, each publication, each disclosure to each peer); checkpoint signed by gt, countersigned by {}",
        if witnesses.is_empty() {
            "no peer yet".to_owned()
        } else {
            witnesses.join(" and ")
        }
    ));

    // All at once, as an operator stopping the federation would.
    let mut stopping = tokio::task::JoinSet::new();
    for node in nodes {
        stopping.spawn(async move { (node.id.clone(), node.stop().await) });
    }
    while let Some(done) = stopping.join_next().await {
        let (id, result) = done.spelled()?;
        result.spelled()?;
        clock.say(format!("stopped {id}: connections drained, store flushed"));
    }
    if let Some(dir) = &args.dir {
        println!(
            "\nThe federation's files are kept in {}. Run a member again with:\n  enlace node run --config {}",
            dir.display(),
            dir.join("gt/node.toml").display()
        );
    }
    println!(
        "\ndemo complete: 1 alert reached both peers, verified; 1 alert reached only its named recipient; 3 members' statistics assembled without a case leaving its member; cr joined by quorum and received an alert"
    );
    Ok(())
}

/// hn asks every member whether it holds the passport of gt's alert,
/// obliviously: gt confirms a hit, sv learns only that it was asked.
async fn oblivious_query(
    sandbox: &Sandbox,
    nodes: &[enlace::testing::RunningNode],
    clock: &Clock,
) -> anyhow::Result<()> {
    let hn = nodes
        .iter()
        .find(|n| n.id.as_str() == "hn")
        .context("hn is running")?;
    let deadline = tokio::time::Instant::now() + WAIT;
    for peer in ["gt", "sv"] {
        let peer = enlace::records::model::NodeId::parse(peer).map_err(anyhow::Error::msg)?;
        while hn.components.cases.filter_epoch(&peer).await?.is_none()
            || (peer.as_str() == "gt" && hn.components.store.filters().peer_count(&peer)? == 0)
        {
            if tokio::time::Instant::now() > deadline {
                bail!("hn did not receive {peer}'s match filter within {WAIT:?}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    clock.say("hn holds gt's and sv's match filters: entries it cannot compute without their keys");
    let mut client = sandbox.client("hn").await.spelled()?;
    let answer = client
        .query(pb::QueryRequest {
            selector_values: vec![pb::SelectorValue {
                kind: enlace::records::vocabulary::SelectorKind::Passport.wire(),
                value: "x123 4567".into(),
            }],
            justification: "Verificación de pasaporte en investigación conjunta".into(),
            ..Default::default()
        })
        .await
        .map_err(status_error)?
        .into_inner();
    for a in &answer.answers {
        let result = pb::QueryResult::try_from(a.result)
            .map(|r| {
                r.as_str_name()
                    .trim_start_matches("QUERY_RESULT_")
                    .to_lowercase()
            })
            .unwrap_or_default();
        let contact = a
            .contact
            .as_ref()
            .map(|c| format!(" — contact: {}", c.unit));
        clock.say(format!(
            "hn asked {} obliviously (blinded, with a proof checked against the roster): {result}{}",
            a.peer,
            contact.unwrap_or_default()
        ));
    }
    clock.say("gt's audit log has the evaluation and hn's confirmation; sv's only the evaluation, with the justification: neither saw the passport number");
    Ok(())
}
