//! `enlace case …`, `enlace query` and `enlace mla …`: local cases,
//! hit/no-hit queries and mutual legal assistance from the command line.

use anyhow::{Context, anyhow, bail};
use clap::{Args, Subcommand};
use serde_json::{Value, json};

use super::agency::{ClientArg, connect, status_error};
use super::input::parse_time;
use super::output::{kebab, time};
use crate::failure::Spelled;
use enlace::records::vocabulary::{
    AgeGroup, CaseStage, Exploitation, MlaOutcome, Offence, SelectorKind, Sex, Urgency,
};
use enlace::wire::pb::v1 as pb;

#[derive(Debug, Subcommand)]
pub enum CaseCommand {
    /// Register a local case (never shared); prints its local case id.
    Add(CaseArgs),
    /// Replace a local case's fields (the flags given) and add selectors.
    Update {
        #[command(flatten)]
        client: ClientArg,
        case_id: String,
        #[command(flatten)]
        fields: CaseArgs2,
    },
    /// Close a local case: it no longer answers queries.
    Close {
        #[command(flatten)]
        client: ClientArg,
        case_id: String,
    },
    /// List local cases.
    List {
        #[command(flatten)]
        client: ClientArg,
        #[arg(long)]
        include_closed: bool,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Args)]
pub struct CaseArgs {
    #[command(flatten)]
    client: ClientArg,
    #[command(flatten)]
    fields: CaseArgs2,
}

#[derive(Debug, Args, Default)]
pub struct CaseArgs2 {
    /// The agency's case number.
    #[arg(long)]
    case_number: Option<String>,
    #[arg(long)]
    offence: Option<String>,
    /// intelligence, investigation (default), prosecution, trial, convicted, closed.
    #[arg(long)]
    stage: Option<String>,
    /// When the case reached its stage (YYYY-MM-DD or RFC 3339), for a case
    /// recorded after the fact: the period its statistics count in.
    /// Default: when the node sees the stage rise.
    #[arg(long)]
    stage_reached: Option<String>,
    /// An identifier KIND=VALUE, repeatable; hashed by the node.
    #[arg(long = "selector")]
    selector: Vec<String>,
    /// A victim, for statistics: sex=female,age=child,exploitation=sexual,citizenship=HN
    #[arg(long = "victim")]
    victim: Vec<String>,
    /// An offender, for statistics: sex=male,citizenship=GT
    #[arg(long = "offender")]
    offender: Vec<String>,
    #[arg(long)]
    contact_unit: Option<String>,
    #[arg(long)]
    contact_email: Option<String>,
    #[arg(long)]
    contact_phone: Option<String>,
}

#[derive(Debug, Args)]
pub struct QueryArgs {
    #[command(flatten)]
    client: ClientArg,
    /// An identifier KIND=VALUE, repeatable; only its hash leaves the node.
    #[arg(long = "selector", required = true)]
    selector: Vec<String>,
    /// Why you ask: required, recorded at both ends.
    #[arg(long)]
    justification: String,
    /// One of your local cases the query is for.
    #[arg(long)]
    case_id: Option<String>,
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Subcommand)]
pub enum MlaCommand {
    /// Send a mutual legal assistance request to one member; prints its id.
    Send {
        #[command(flatten)]
        client: ClientArg,
        /// The requested member.
        #[arg(long)]
        to: String,
        /// A case reference (record id) the request is about, repeatable.
        #[arg(long = "case-ref")]
        case_ref: Vec<String>,
        /// Or the query (hit) it follows.
        #[arg(long)]
        query_id: Option<String>,
        #[arg(long)]
        legal_basis: String,
        #[arg(long)]
        measures: String,
        /// routine (default), urgent, immediate.
        #[arg(long)]
        urgency: Option<String>,
        /// Requested answer date (YYYY-MM-DD or RFC 3339).
        #[arg(long)]
        deadline: Option<String>,
    },
    /// Requests sent and received, with their state and whether overdue.
    List {
        #[command(flatten)]
        client: ClientArg,
        #[arg(long)]
        json: bool,
    },
    /// Answer a request addressed to this member.
    Respond {
        #[command(flatten)]
        client: ClientArg,
        request_id: String,
        /// executed, partial, refused, need-info.
        #[arg(long)]
        outcome: String,
        #[arg(long)]
        text: String,
    },
}

fn selector_values(args: &[String]) -> anyhow::Result<Vec<pb::SelectorValue>> {
    args.iter()
        .map(|a| {
            let (kind, value) = a
                .split_once('=')
                .context("--selector: expected KIND=VALUE, e.g. passport=X1234567")?;
            let kind = SelectorKind::parse(kind).spelled().context("--selector")?;
            Ok(pb::SelectorValue {
                kind: kind.wire(),
                value: value.to_owned(),
            })
        })
        .collect()
}

/// `key=value,key=value` pairs.
fn pairs(s: &str, flag: &str) -> anyhow::Result<Vec<(String, String)>> {
    s.split(',')
        .filter(|p| !p.trim().is_empty())
        .map(|p| {
            p.split_once('=')
                .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
                .with_context(|| {
                    format!("{flag}: expected key=value pairs separated by commas (got {p:?})")
                })
        })
        .collect()
}

fn victim(s: &str) -> anyhow::Result<pb::Victim> {
    let mut v = pb::Victim::default();
    for (k, val) in pairs(s, "--victim")? {
        match k.as_str() {
            "sex" => v.sex = Sex::parse(&val).spelled().context("--victim sex")?.wire(),
            "age" | "age_group" => {
                v.age_group = AgeGroup::parse(&val)
                    .spelled()
                    .context("--victim age")?
                    .wire()
            }
            "exploitation" => v.exploitation.push(
                Exploitation::parse(&val)
                    .spelled()
                    .context("--victim exploitation")?
                    .wire(),
            ),
            "citizenship" => v.citizenship = val.to_ascii_uppercase(),
            other => {
                bail!(
                    "--victim: unknown key {other:?}; one of: sex, age, exploitation, citizenship"
                );
            }
        }
    }
    Ok(v)
}

fn offender(s: &str) -> anyhow::Result<pb::Offender> {
    let mut o = pb::Offender::default();
    for (k, val) in pairs(s, "--offender")? {
        match k.as_str() {
            "sex" => o.sex = Sex::parse(&val).spelled().context("--offender sex")?.wire(),
            "citizenship" => o.citizenship = val.to_ascii_uppercase(),
            other => {
                bail!("--offender: unknown key {other:?}; one of: sex, citizenship");
            }
        }
    }
    Ok(o)
}

impl CaseArgs2 {
    /// Lays the flags over `base`.
    fn apply(&self, base: &mut pb::LocalCase) -> anyhow::Result<()> {
        let mut problems = Vec::new();
        if let Some(n) = &self.case_number {
            base.case_number = n.clone();
        }
        if let Some(o) = &self.offence {
            match Offence::parse(o) {
                Ok(o) => base.offence = o.wire(),
                Err(e) => problems.push(format!("--offence: {e}")),
            }
        }
        if let Some(s) = &self.stage {
            match CaseStage::parse(s) {
                Ok(s) => base.stage = s.wire(),
                Err(e) => problems.push(format!("--stage: {e}")),
            }
        }
        if let Some(d) = &self.stage_reached {
            match parse_time(d) {
                Ok(ms) => base.stage_reached_at_ms = ms,
                Err(e) => problems.push(format!("--stage-reached: {e:#}")),
            }
        }
        for v in &self.victim {
            match victim(v) {
                Ok(v) => base.victims.push(v),
                Err(e) => problems.push(format!("{e:#}")),
            }
        }
        for o in &self.offender {
            match offender(o) {
                Ok(o) => base.offenders.push(o),
                Err(e) => problems.push(format!("{e:#}")),
            }
        }
        if let Some(unit) = &self.contact_unit {
            base.contact = Some(pb::ContactPoint {
                unit: unit.clone(),
                email: self.contact_email.clone().unwrap_or_default(),
                phone: self.contact_phone.clone().unwrap_or_default(),
            });
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(anyhow!(problems.join("; ")))
        }
    }
}

fn case_json(c: &pb::LocalCase) -> Value {
    json!({
        "case_id": c.case_id,
        "case_number": c.case_number,
        "offence": Offence::from_wire(c.offence).map(|o| kebab(o.code())),
        "stage": CaseStage::from_wire(c.stage).map(|s| kebab(s.code())),
        "highest_stage": CaseStage::from_wire(c.highest_stage).map(|s| kebab(s.code())),
        "stage_reached_at": time(c.stage_reached_at_ms),
        "selectors": c.selectors.len(),
        "victims": c.victims.len(),
        "offenders": c.offenders.len(),
        "closed": c.closed,
        "created_at": time(c.created_at_ms),
        "updated_at": time(c.updated_at_ms),
    })
}

pub async fn case(cmd: CaseCommand) -> anyhow::Result<()> {
    match cmd {
        CaseCommand::Add(a) => {
            let mut case = pb::LocalCase::default();
            a.fields.apply(&mut case)?;
            let selector_values = selector_values(&a.fields.selector)?;
            let mut c = connect(&a.client).await?;
            let given = selector_values.len();
            let case = c
                .register_case(pb::RegisterCaseRequest {
                    case: Some(case),
                    selector_values,
                })
                .await
                .map_err(status_error)?
                .into_inner();
            eprintln!(
                "registered local case {} ({given} identifiers, kept at this node: in its match filter, never sent)",
                case.case_number,
            );
            println!("{}", case.case_id);
            Ok(())
        }
        CaseCommand::Update {
            client,
            case_id,
            fields,
        } => {
            let mut c = connect(&client).await?;
            let list = c
                .list_cases(pb::ListCasesRequest {
                    include_closed: true,
                })
                .await
                .map_err(status_error)?
                .into_inner();
            let mut case = list
                .cases
                .into_iter()
                .find(|k| k.case_id == case_id)
                .with_context(|| format!("no local case {case_id}"))?;
            fields.apply(&mut case)?;
            let selector_values = selector_values(&fields.selector)?;
            let case = c
                .update_case(pb::UpdateCaseRequest {
                    case: Some(case),
                    selector_values,
                })
                .await
                .map_err(status_error)?
                .into_inner();
            println!("{}", case.case_id);
            Ok(())
        }
        CaseCommand::Close { client, case_id } => {
            let mut c = connect(&client).await?;
            c.close_case(pb::CloseCaseRequest {
                case_id: case_id.clone(),
            })
            .await
            .map_err(status_error)?;
            eprintln!("closed {case_id}: it no longer answers queries");
            Ok(())
        }
        CaseCommand::List {
            client,
            include_closed,
            json,
        } => {
            let mut c = connect(&client).await?;
            let list = c
                .list_cases(pb::ListCasesRequest { include_closed })
                .await
                .map_err(status_error)?
                .into_inner();
            for k in &list.cases {
                if json {
                    println!("{}", case_json(k));
                } else {
                    println!(
                        "{}  {}  {}  {}  selectors {}  victims {}  offenders {}{}",
                        k.case_id,
                        k.case_number,
                        Offence::from_wire(k.offence).map_or("—".into(), |o| o.label()),
                        CaseStage::from_wire(k.stage).map_or("—".into(), |s| s.label()),
                        k.selectors.len(),
                        k.victims.len(),
                        k.offenders.len(),
                        if k.closed { "  [CLOSED]" } else { "" }
                    );
                }
            }
            Ok(())
        }
    }
}

fn result_code(r: i32) -> &'static str {
    match pb::QueryResult::try_from(r) {
        Ok(pb::QueryResult::Hit) => "hit",
        Ok(pb::QueryResult::NoHit) => "no_hit",
        Ok(pb::QueryResult::Unreachable) => "unreachable",
        Ok(pb::QueryResult::Refused) => "refused",
        _ => "unknown",
    }
}

pub async fn query(a: QueryArgs) -> anyhow::Result<()> {
    let selector_values = selector_values(&a.selector)?;
    let mut c = connect(&a.client).await?;
    let r = c
        .query(pb::QueryRequest {
            selector_values,
            selectors: Vec::new(),
            justification: a.justification,
            case_id: a.case_id.unwrap_or_default(),
        })
        .await
        .map_err(status_error)?
        .into_inner();
    eprintln!("query {}", r.query_id);
    for p in &r.answers {
        let contact = p
            .contact
            .as_ref()
            .map(|c| json!({"unit": c.unit, "email": c.email, "phone": c.phone}));
        if a.json {
            println!(
                "{}",
                json!({
                    "peer": p.peer,
                    "result": kebab(result_code(p.result)),
                    "hits": p.hits,
                    "case_refs": p.case_refs,
                    "contact": contact,
                    "reason": if p.reason.is_empty() { Value::Null } else { json!(p.reason) },
                    "query_id": r.query_id,
                })
            );
        } else {
            let detail = match result_code(p.result) {
                "hit" => {
                    let who = p
                        .contact
                        .as_ref()
                        .map(|c| c.unit.clone())
                        .unwrap_or_default();
                    if p.case_refs.is_empty() {
                        format!("coincidencia / hit — contact {who}")
                    } else {
                        format!(
                            "coincidencia / hit — cases {} — contact {who}",
                            p.case_refs.join(", ")
                        )
                    }
                }
                "no_hit" => "sin coincidencia / no hit".into(),
                other => format!("{other}: {}", p.reason),
            };
            println!("{:<8} {detail}", p.peer);
        }
    }
    Ok(())
}

fn mla_json(v: &pb::MlaView) -> Value {
    json!({
        "request_id": v.request_id,
        "from": v.from,
        "to": v.to,
        "state": kebab(&v.state),
        "overdue": v.overdue,
        "deadline": if v.deadline_ms == 0 { Value::Null } else { json!(time(v.deadline_ms)) },
        "legal_basis": v.legal_basis,
        "measures": v.measures,
        "case_refs": v.case_refs,
        "query_id": v.query_id,
        "sent_at": time(v.sent_at_ms),
        "acknowledged_at": if v.acknowledged_at_ms == 0 { Value::Null } else { json!(time(v.acknowledged_at_ms)) },
        "urgency": Urgency::from_wire(v.urgency).map(|u| kebab(u.code())),
        "responses": v.responses.iter().map(|r| json!({
            "record_id": r.record_id,
            "outcome": MlaOutcome::from_wire(r.outcome).map(|o| kebab(o.code())),
            "text": r.text,
            "at": time(r.at_ms),
        })).collect::<Vec<_>>(),
    })
}

pub async fn mla(cmd: MlaCommand) -> anyhow::Result<()> {
    match cmd {
        MlaCommand::Send {
            client,
            to,
            case_ref,
            query_id,
            legal_basis,
            measures,
            urgency,
            deadline,
        } => {
            let urgency = match urgency {
                Some(u) => Urgency::parse(&u).spelled().context("--urgency")?.wire(),
                None => 0,
            };
            let deadline_ms = match deadline {
                Some(d) => parse_time(&d).context("--deadline")?,
                None => 0,
            };
            let mut c = connect(&client).await?;
            let resp = c
                .send_mla(pb::SendMlaRequest {
                    request: Some(pb::MlaRequest {
                        to,
                        case_refs: case_ref,
                        query_id: query_id.unwrap_or_default(),
                        legal_basis,
                        measures,
                        urgency,
                        deadline_ms,
                    }),
                })
                .await
                .map_err(status_error)?
                .into_inner();
            eprintln!(
                "request sent (signed, durable); the recipient's node acknowledges it on receipt"
            );
            println!("{}", resp.record_id);
            Ok(())
        }
        MlaCommand::List { client, json } => {
            let mut c = connect(&client).await?;
            let list = c
                .list_mla(pb::ListMlaRequest {})
                .await
                .map_err(status_error)?
                .into_inner();
            for v in &list.requests {
                if json {
                    println!("{}", mla_json(v));
                } else {
                    println!(
                        "{}  {} → {}  {}{}  {}",
                        v.request_id,
                        v.from,
                        v.to,
                        v.state,
                        if v.overdue {
                            "  [OVERDUE / VENCIDA]"
                        } else {
                            ""
                        },
                        v.measures
                    );
                }
            }
            Ok(())
        }
        MlaCommand::Respond {
            client,
            request_id,
            outcome,
            text,
        } => {
            let outcome = MlaOutcome::parse(&outcome).spelled().context("--outcome")?;
            let mut c = connect(&client).await?;
            let resp = c
                .respond_mla(pb::RespondMlaRequest {
                    request_id,
                    outcome: outcome.wire(),
                    text,
                })
                .await
                .map_err(status_error)?
                .into_inner();
            println!("{}", resp.record_id);
            Ok(())
        }
    }
}
