//! `enlace alert …`, `enlace case-ref …` and `enlace peers`: the agency API
//! from the command line. Every command takes `--client FILE` (see
//! [`enlace::service::client`]).
//!
//! Output is for people by default (labels in Spanish and English) and for
//! programs with `--json`: one JSON object per line, so that `jq` and shell
//! loops work on it.

use std::io::BufRead;
use std::path::PathBuf;

use clap::{Args, Subcommand};
use serde_json::{Value, json};
use tonic::Status;
use tonic::transport::Channel;

use super::input::{AlertInput, CaseInput, ContactInput, ImportLine, SelectorInput, parse_time};
use super::output::{record_json, record_text, time};
use enlace::records::vocabulary::{
    AlertType, CaseStage, Exploitation, HandlingCode, InformationAccuracy, MlaStatus, Offence,
    SourceReliability, SubjectCategory, Tlp, TraffickingAct, TraffickingMeans, Urgency,
};
use enlace::service::client::ClientConfig;
use enlace::wire::pb::v1 as pb;
use enlace::wire::pb::v1::agency_client::AgencyClient;

#[derive(Debug, Args)]
pub struct ClientArg {
    /// Agency client file (endpoint, certificate, key, CA).
    #[arg(long, env = "ENLACE_CLIENT")]
    pub client: PathBuf,
}

/// The fields of an alert, as flags. Codes are those of docs/vocabulary.md
/// (kebab or snake case).
#[derive(Debug, Args, Default)]
pub struct AlertFields {
    /// Alert type: possible-victim, wanted, person-of-interest,
    /// modus-operandi, fraudulent-document, warning, criminal-assets.
    #[arg(long = "type")]
    alert_type: Option<String>,
    /// Offence: trafficking, smuggling, illegal-stay, document-fraud, undetermined.
    #[arg(long)]
    offence: Option<String>,
    /// Form of exploitation (trafficking), repeatable or comma separated.
    #[arg(long, value_delimiter = ',')]
    exploitation: Vec<String>,
    /// Trafficking act (recruitment, transportation, transfer, harbouring, receipt).
    #[arg(long, value_delimiter = ',')]
    act: Vec<String>,
    /// Trafficking means (threat, force, coercion, abduction, fraud, deception, ...).
    #[arg(long, value_delimiter = ',')]
    means: Vec<String>,
    /// The victim is a child: no means are required.
    #[arg(long)]
    child: bool,
    /// Smuggling: there was no material benefit (rarely true; see the docs).
    #[arg(long)]
    no_material_benefit: bool,
    /// Smuggling: the migrants' lives or safety were endangered.
    #[arg(long)]
    life_endangered: bool,
    /// Smuggling: inhuman or degrading treatment.
    #[arg(long)]
    inhuman_treatment: bool,
    /// Subject category: suspect, convicted, victim, witness.
    #[arg(long)]
    subject: Option<String>,
    /// Country of origin (ISO 3166-1 alpha-2), repeatable.
    #[arg(long = "origin-country", value_delimiter = ',')]
    origin_country: Vec<String>,
    /// Country of transit, repeatable.
    #[arg(long = "transit-country", value_delimiter = ',')]
    transit_country: Vec<String>,
    /// Country of destination, repeatable.
    #[arg(long = "destination-country", value_delimiter = ',')]
    destination_country: Vec<String>,
    /// 4x4 evaluation, source and information: A1 … X4.
    #[arg(long)]
    evaluation: Option<String>,
    /// Handling code: H0, H1, H2, H3.
    #[arg(long)]
    handling: Option<String>,
    /// The condition of an H3 handling code.
    #[arg(long)]
    handling_condition: Option<String>,
    /// TLP: clear, green, amber, amber+strict, red.
    #[arg(long)]
    tlp: Option<String>,
    /// Urgency: routine (default), urgent, immediate.
    #[arg(long)]
    urgency: Option<String>,
    /// When the alert expires: a date (YYYY-MM-DD) or RFC 3339 time.
    /// Default: the node's default validity.
    #[arg(long)]
    expires: Option<String>,
    /// When the origin should review it.
    #[arg(long)]
    review: Option<String>,
    /// Short text, no personal data (at most 1000 characters).
    #[arg(long)]
    summary: Option<String>,
    /// Language of the summary (BCP 47); default es.
    #[arg(long)]
    language: Option<String>,
    /// An identifier KIND=VALUE (passport, national-id, name-dob, phone,
    /// email, vehicle-plate, bank-account, imei), repeatable. The node
    /// hashes it; the clear value is never stored or sent.
    #[arg(long = "selector")]
    selector: Vec<String>,
    /// Contact unit (not a person); default: the node's configured contact.
    #[arg(long)]
    contact_unit: Option<String>,
    #[arg(long)]
    contact_email: Option<String>,
    #[arg(long)]
    contact_phone: Option<String>,
}

/// The fields of a case reference, as flags.
#[derive(Debug, Args, Default)]
pub struct CaseFields {
    /// The agency's own case reference (file number).
    #[arg(long)]
    case_ref: Option<String>,
    #[arg(long)]
    offence: Option<String>,
    /// Stage: intelligence, investigation, prosecution, trial, convicted, closed.
    #[arg(long)]
    stage: Option<String>,
    /// The authority in charge, e.g. "Fiscalía contra la Trata de Personas".
    #[arg(long)]
    authority: Option<String>,
    /// MLA status: none (default), planned, requested, in-progress, executed, ...
    #[arg(long)]
    mla_status: Option<String>,
    /// A related alert's record id, repeatable.
    #[arg(long = "link", value_delimiter = ',')]
    link: Vec<String>,
    #[arg(long, value_delimiter = ',')]
    exploitation: Vec<String>,
    #[arg(long)]
    handling: Option<String>,
    #[arg(long)]
    handling_condition: Option<String>,
    #[arg(long)]
    tlp: Option<String>,
    #[arg(long)]
    expires: Option<String>,
    #[arg(long)]
    review: Option<String>,
    #[arg(long)]
    summary: Option<String>,
    #[arg(long)]
    language: Option<String>,
    #[arg(long)]
    contact_unit: Option<String>,
    #[arg(long)]
    contact_email: Option<String>,
    #[arg(long)]
    contact_phone: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum AlertCommand {
    /// Publish an alert; prints the new record id on the last line.
    Publish {
        #[command(flatten)]
        client: ClientArg,
        #[command(flatten)]
        fields: AlertFields,
        /// Recipients by node id, comma separated; default: all members.
        #[arg(long, value_delimiter = ',')]
        to: Vec<String>,
        /// Check everything, store nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Publish a new version of one of this node's alerts: the flags given
    /// replace those fields, the rest is kept.
    Update {
        #[command(flatten)]
        client: ClientArg,
        /// Any record id of the alert's series.
        record_id: String,
        #[command(flatten)]
        fields: AlertFields,
        /// Drop the existing selectors (new --selector values are kept).
        #[arg(long)]
        clear_selectors: bool,
        #[arg(long)]
        dry_run: bool,
    },
    /// Withdraw one of this node's alerts (its whole series).
    Withdraw {
        #[command(flatten)]
        client: ClientArg,
        record_id: String,
        #[arg(long)]
        reason: String,
    },
    /// List the records this node holds: by default the current version of
    /// each series, flagging withdrawn and expired ones.
    List(ListArgs),
    /// Show one record.
    Get {
        #[command(flatten)]
        client: ClientArg,
        record_id: String,
        #[arg(long)]
        json: bool,
    },
    /// Print records as they arrive, until interrupted.
    Watch(WatchArgs),
    /// Publish alerts and case references from a JSON-lines file (one
    /// record per line, fields as in `list --json`, `"kind"` alert or
    /// case_reference). Every line is checked first; if any is bad, nothing
    /// is published.
    Import {
        #[command(flatten)]
        client: ClientArg,
        file: PathBuf,
        /// Check every line, publish nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum CaseCommand {
    /// Publish a case reference; prints the new record id on the last line.
    Publish {
        #[command(flatten)]
        client: ClientArg,
        #[command(flatten)]
        fields: CaseFields,
        #[arg(long, value_delimiter = ',')]
        to: Vec<String>,
        #[arg(long)]
        dry_run: bool,
    },
    /// Publish a new version of one of this node's case references.
    Update {
        #[command(flatten)]
        client: ClientArg,
        record_id: String,
        #[command(flatten)]
        fields: CaseFields,
        #[arg(long)]
        dry_run: bool,
    },
    /// Withdraw one of this node's case references.
    Withdraw {
        #[command(flatten)]
        client: ClientArg,
        record_id: String,
        #[arg(long)]
        reason: String,
    },
    /// List case references.
    List(ListArgs),
}

#[derive(Debug, Args)]
pub struct ListArgs {
    #[command(flatten)]
    client: ClientArg,
    /// Only records of this origin.
    #[arg(long)]
    origin: Option<String>,
    /// Only alerts of this type.
    #[arg(long = "type")]
    alert_type: Option<String>,
    #[arg(long)]
    offence: Option<String>,
    /// Only records naming this country (origin, transit or destination).
    #[arg(long)]
    country: Option<String>,
    /// active, superseded, withdrawn or expired.
    #[arg(long)]
    status: Option<String>,
    /// Only records created since this date or time.
    #[arg(long)]
    since: Option<String>,
    /// Also superseded versions and withdrawal records.
    #[arg(long)]
    all_versions: bool,
    /// alert, case_reference or withdrawal.
    #[arg(long)]
    kind: Option<String>,
    /// One JSON object per record per line.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub struct WatchArgs {
    #[command(flatten)]
    client: ClientArg,
    /// Also print the records already held, first.
    #[arg(long)]
    existing: bool,
    /// Only records of this origin.
    #[arg(long)]
    origin: Option<String>,
    #[arg(long)]
    json: bool,
}

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

type Client = AgencyClient<Channel>;

/// An agency client for `--client FILE`.
pub(super) async fn connect(arg: &ClientArg) -> Result<Client, String> {
    let cfg = ClientConfig::load(&arg.client).map_err(|e| e.to_string())?;
    cfg.connect().await.map_err(|e| e.to_string())
}

/// A gRPC status as a one-line message for the terminal.
pub fn status_message(s: &Status) -> String {
    let what = match s.code() {
        tonic::Code::InvalidArgument => "invalid request",
        tonic::Code::NotFound => "not found",
        tonic::Code::PermissionDenied => "permission denied",
        tonic::Code::Unauthenticated => "not authenticated",
        tonic::Code::Unavailable => "node unavailable",
        _ => "request failed",
    };
    let mut msg = format!("{what}: {}", s.message());
    if matches!(s.code(), tonic::Code::Unknown | tonic::Code::Unavailable)
        && let Some(src) = std::error::Error::source(s)
    {
        msg.push_str(&format!(" ({})", enlace::service::client::error_chain(src)));
    }
    msg
}

fn print_record(r: &pb::RecordView, as_json: bool) {
    if as_json {
        println!("{}", record_json(r));
    } else {
        println!("{}", record_text(r));
    }
}

fn contact(
    unit: &Option<String>,
    email: &Option<String>,
    phone: &Option<String>,
) -> Option<ContactInput> {
    unit.as_ref().map(|u| ContactInput {
        unit: u.clone(),
        email: email.clone().unwrap_or_default(),
        phone: phone.clone().unwrap_or_default(),
    })
}

fn selectors(args: &[String]) -> Result<Vec<SelectorInput>, String> {
    args.iter()
        .map(|a| {
            let (kind, value) = a.split_once('=').ok_or_else(|| {
                "--selector: expected KIND=VALUE, e.g. passport=X1234567".to_string()
            })?;
            Ok(SelectorInput {
                kind: kind.to_owned(),
                value: value.to_owned(),
            })
        })
        .collect()
}

impl AlertFields {
    /// Lays the flags that were given over `base`.
    fn apply(&self, base: &mut AlertInput) -> Result<(), String> {
        macro_rules! set {
            ($($flag:ident => $field:ident),*) => {$(
                if self.$flag.is_some() { base.$field = self.$flag.clone(); }
            )*};
        }
        set!(alert_type => alert_type, offence => offence, subject => subject_category, evaluation => evaluation,
             handling => handling, handling_condition => handling_condition, tlp => tlp, urgency => urgency,
             expires => expires_at, review => review_at, summary => summary, language => language);
        macro_rules! set_list {
            ($($flag:ident => $field:ident),*) => {$(
                if !self.$flag.is_empty() { base.$field = self.$flag.clone(); }
            )*};
        }
        set_list!(exploitation => exploitation, act => acts, means => means, origin_country => origin_countries,
                  transit_country => transit_countries, destination_country => destination_countries);
        if self.child {
            base.child_no_means_required = true;
        }
        if self.no_material_benefit {
            base.material_benefit = Some(false);
        }
        base.life_endangered |= self.life_endangered;
        base.inhuman_treatment |= self.inhuman_treatment;
        if let Some(c) = contact(&self.contact_unit, &self.contact_email, &self.contact_phone) {
            base.contact = Some(c);
        }
        base.selectors = selectors(&self.selector)?;
        Ok(())
    }
}

impl CaseFields {
    fn apply(&self, base: &mut CaseInput) {
        macro_rules! set {
            ($($flag:ident => $field:ident),*) => {$(
                if self.$flag.is_some() { base.$field = self.$flag.clone(); }
            )*};
        }
        set!(case_ref => case_ref, offence => offence, stage => stage, authority => competent_authority,
             mla_status => mla_status, handling => handling, handling_condition => handling_condition,
             tlp => tlp, expires => expires_at, review => review_at, summary => summary, language => language);
        if !self.link.is_empty() {
            base.linked_alerts = self.link.clone();
        }
        if !self.exploitation.is_empty() {
            base.exploitation = self.exploitation.clone();
        }
        if let Some(c) = contact(&self.contact_unit, &self.contact_email, &self.contact_phone) {
            base.contact = Some(c);
        }
    }
}

fn code_of<T>(
    v: i32,
    from: impl Fn(i32) -> Option<T>,
    code: impl Fn(T) -> &'static str,
) -> Option<String> {
    from(v).map(|t| code(t).to_owned())
}

fn codes_of<T>(
    vs: &[i32],
    from: impl Fn(i32) -> Option<T>,
    code: impl Fn(T) -> &'static str,
) -> Vec<String> {
    vs.iter()
        .filter_map(|v| from(*v))
        .map(|t| code(t).to_owned())
        .collect()
}

fn time_of(ms: i64) -> Option<String> {
    (ms != 0).then(|| time(ms))
}

/// The input that reproduces `a` (selectors aside: they are tokens).
fn alert_input(a: &pb::Alert) -> AlertInput {
    let t = a.trafficking.clone().unwrap_or_default();
    let s = a.smuggling;
    AlertInput {
        alert_type: code_of(a.r#type, AlertType::from_wire, |c| c.code()),
        offence: code_of(a.offence, Offence::from_wire, |c| c.code()),
        exploitation: codes_of(&t.exploitation, Exploitation::from_wire, |c| c.code()),
        acts: codes_of(&t.acts, TraffickingAct::from_wire, |c| c.code()),
        means: codes_of(&t.means, TraffickingMeans::from_wire, |c| c.code()),
        child_no_means_required: t.child_no_means_required,
        material_benefit: s.as_ref().map(|s| s.material_benefit),
        life_endangered: s.as_ref().is_some_and(|s| s.life_endangered),
        inhuman_treatment: s.as_ref().is_some_and(|s| s.inhuman_treatment),
        subject_category: code_of(a.subject_category, SubjectCategory::from_wire, |c| c.code()),
        origin_countries: a.origin_countries.clone(),
        transit_countries: a.transit_countries.clone(),
        destination_countries: a.destination_countries.clone(),
        evaluation: a.evaluation.as_ref().and_then(|e| {
            let s = SourceReliability::from_wire(e.source)?;
            let i = InformationAccuracy::from_wire(e.information)?;
            Some(format!("{}{}", s.code(), i.code()))
        }),
        handling: a
            .handling
            .as_ref()
            .and_then(|h| code_of(h.code, HandlingCode::from_wire, |c| c.code())),
        handling_condition: a
            .handling
            .as_ref()
            .map(|h| h.condition.clone())
            .filter(|c| !c.is_empty()),
        tlp: code_of(a.tlp, Tlp::from_wire, |c| c.code()),
        urgency: code_of(a.urgency, Urgency::from_wire, |c| c.code()),
        expires_at: time_of(a.expires_at_ms),
        review_at: time_of(a.review_at_ms),
        summary: Some(a.summary.clone()),
        language: Some(a.language.clone()),
        selectors: Vec::new(),
        contact: a.contact.as_ref().map(|c| ContactInput {
            unit: c.unit.clone(),
            email: c.email.clone(),
            phone: c.phone.clone(),
        }),
        to: Vec::new(),
    }
}

fn case_input(c: &pb::CaseReference) -> CaseInput {
    let t = c.trafficking.clone().unwrap_or_default();
    let s = c.smuggling;
    CaseInput {
        case_ref: Some(c.case_ref.clone()),
        offence: code_of(c.offence, Offence::from_wire, |x| x.code()),
        stage: code_of(c.stage, CaseStage::from_wire, |x| x.code()),
        competent_authority: Some(c.competent_authority.clone()),
        mla_status: code_of(c.mla_status, MlaStatus::from_wire, |x| x.code()),
        linked_alerts: c.linked_alerts.clone(),
        exploitation: codes_of(&t.exploitation, Exploitation::from_wire, |x| x.code()),
        acts: codes_of(&t.acts, TraffickingAct::from_wire, |x| x.code()),
        means: codes_of(&t.means, TraffickingMeans::from_wire, |x| x.code()),
        child_no_means_required: t.child_no_means_required,
        material_benefit: s.as_ref().map(|s| s.material_benefit),
        life_endangered: s.as_ref().is_some_and(|s| s.life_endangered),
        inhuman_treatment: s.as_ref().is_some_and(|s| s.inhuman_treatment),
        handling: c
            .handling
            .as_ref()
            .and_then(|h| code_of(h.code, HandlingCode::from_wire, |x| x.code())),
        handling_condition: c
            .handling
            .as_ref()
            .map(|h| h.condition.clone())
            .filter(|x| !x.is_empty()),
        tlp: code_of(c.tlp, Tlp::from_wire, |x| x.code()),
        expires_at: time_of(c.expires_at_ms),
        review_at: time_of(c.review_at_ms),
        summary: (!c.summary.is_empty()).then(|| c.summary.clone()),
        language: (!c.language.is_empty()).then(|| c.language.clone()),
        contact: c.contact.as_ref().map(|x| ContactInput {
            unit: x.unit.clone(),
            email: x.email.clone(),
            phone: x.phone.clone(),
        }),
        to: Vec::new(),
    }
}

fn report(resp: pb::PublishResponse) {
    if resp.validated_only {
        eprintln!("valid: nothing was published (--dry-run)");
    } else {
        eprintln!(
            "published {}#{} (series {}, version {}; durable)",
            resp.origin, resp.seq, resp.series_id, resp.version
        );
        println!("{}", resp.record_id);
    }
}

async fn current(c: &mut Client, id: &str) -> Result<pb::RecordView, String> {
    c.get_record(pb::GetRecordRequest {
        record_id: id.to_owned(),
    })
    .await
    .map(tonic::Response::into_inner)
    .map_err(|s| status_message(&s))
}

async fn list(c: &mut Client, a: &ListArgs, kind: Option<&str>) -> Result<(), String> {
    let mut problems = Vec::new();
    let mut code =
        |field: &str, v: &Option<String>, parse: &dyn Fn(&str) -> Result<i32, String>| match v {
            Some(v) => parse(v).unwrap_or_else(|e| {
                problems.push(format!("--{field}: {e}"));
                0
            }),
            None => 0,
        };
    let alert_type = code("type", &a.alert_type, &|s| {
        AlertType::parse(s).map(|t| t.wire())
    });
    let offence = code("offence", &a.offence, &|s| {
        Offence::parse(s).map(|t| t.wire())
    });
    let status = code("status", &a.status, &|s| {
        enlace::records::lifecycle::Status::parse(s).map(|st| match st {
            enlace::records::lifecycle::Status::Active => pb::RecordStatus::Active as i32,
            enlace::records::lifecycle::Status::Superseded => pb::RecordStatus::Superseded as i32,
            enlace::records::lifecycle::Status::Withdrawn => pb::RecordStatus::Withdrawn as i32,
            enlace::records::lifecycle::Status::Expired => pb::RecordStatus::Expired as i32,
        })
    });
    let since_ms = match &a.since {
        Some(s) => parse_time(s).unwrap_or_else(|e| {
            problems.push(format!("--since: {e}"));
            0
        }),
        None => 0,
    };
    if !problems.is_empty() {
        return Err(problems.join("; "));
    }
    let mut after = 0;
    loop {
        let page = c
            .list_records(pb::ListRecordsRequest {
                after_position: after,
                limit: 0,
                origin: a.origin.clone().unwrap_or_default(),
                r#type: alert_type,
                offence,
                country: a.country.clone().unwrap_or_default(),
                status,
                since_ms,
                all_versions: a.all_versions,
                kind: kind
                    .map(str::to_owned)
                    .or_else(|| a.kind.clone())
                    .unwrap_or_default(),
            })
            .await
            .map_err(|s| status_message(&s))?
            .into_inner();
        for r in &page.records {
            print_record(r, a.json);
        }
        if page.last_position == after {
            return Ok(());
        }
        after = page.last_position;
    }
}

pub async fn alert(cmd: AlertCommand) -> Result<(), String> {
    match cmd {
        AlertCommand::Publish {
            client,
            fields,
            to,
            dry_run,
        } => {
            let mut input = AlertInput::default();
            fields.apply(&mut input)?;
            let (alert, selector_values) = input.to_pb()?;
            let mut c = connect(&client).await?;
            let resp = c
                .publish_alert(pb::PublishAlertRequest {
                    alert: Some(alert),
                    to,
                    selector_values,
                    validate_only: dry_run,
                })
                .await
                .map_err(|s| status_message(&s))?
                .into_inner();
            report(resp);
            Ok(())
        }
        AlertCommand::Update {
            client,
            record_id,
            fields,
            clear_selectors,
            dry_run,
        } => {
            let mut c = connect(&client).await?;
            let now = current(&mut c, &record_id).await?;
            let Some(pb::record_view::Kind::Alert(old)) = now.kind else {
                return Err(format!(
                    "{record_id} is not an alert with content (kind {}, status {})",
                    now.kind_name,
                    record_json(&now)["status"]
                ));
            };
            let mut input = alert_input(&old);
            fields.apply(&mut input)?;
            let (mut alert, selector_values) = input.to_pb()?;
            if !clear_selectors {
                alert.selectors = old.selectors;
            }
            let resp = c
                .update_record(pb::UpdateRecordRequest {
                    record_id,
                    content: Some(pb::update_record_request::Content::Alert(alert)),
                    selector_values,
                    validate_only: dry_run,
                })
                .await
                .map_err(|s| status_message(&s))?
                .into_inner();
            report(resp);
            Ok(())
        }
        AlertCommand::Withdraw {
            client,
            record_id,
            reason,
        } => withdraw(&client, record_id, reason).await,
        AlertCommand::List(a) => {
            let mut c = connect(&a.client).await?;
            list(&mut c, &a, None).await
        }
        AlertCommand::Get {
            client,
            record_id,
            json,
        } => {
            let mut c = connect(&client).await?;
            print_record(&current(&mut c, &record_id).await?, json);
            Ok(())
        }
        AlertCommand::Watch(a) => watch(a).await,
        AlertCommand::Import {
            client,
            file,
            dry_run,
        } => import(&client, &file, dry_run).await,
    }
}

async fn withdraw(client: &ClientArg, record_id: String, reason: String) -> Result<(), String> {
    let mut c = connect(client).await?;
    let resp = c
        .withdraw_record(pb::WithdrawRecordRequest {
            record_id,
            reason,
            validate_only: false,
        })
        .await
        .map_err(|s| status_message(&s))?
        .into_inner();
    report(resp);
    Ok(())
}

pub async fn case_ref(cmd: CaseCommand) -> Result<(), String> {
    match cmd {
        CaseCommand::Publish {
            client,
            fields,
            to,
            dry_run,
        } => {
            let mut input = CaseInput::default();
            fields.apply(&mut input);
            let case = input.to_pb()?;
            let mut c = connect(&client).await?;
            let resp = c
                .publish_case_reference(pb::PublishCaseReferenceRequest {
                    case_reference: Some(case),
                    to,
                    validate_only: dry_run,
                })
                .await
                .map_err(|s| status_message(&s))?
                .into_inner();
            report(resp);
            Ok(())
        }
        CaseCommand::Update {
            client,
            record_id,
            fields,
            dry_run,
        } => {
            let mut c = connect(&client).await?;
            let now = current(&mut c, &record_id).await?;
            let Some(pb::record_view::Kind::CaseReference(old)) = now.kind else {
                return Err(format!(
                    "{record_id} is not a case reference with content (kind {})",
                    now.kind_name
                ));
            };
            let mut input = case_input(&old);
            fields.apply(&mut input);
            let case = input.to_pb()?;
            let resp = c
                .update_record(pb::UpdateRecordRequest {
                    record_id,
                    content: Some(pb::update_record_request::Content::CaseReference(case)),
                    selector_values: Vec::new(),
                    validate_only: dry_run,
                })
                .await
                .map_err(|s| status_message(&s))?
                .into_inner();
            report(resp);
            Ok(())
        }
        CaseCommand::Withdraw {
            client,
            record_id,
            reason,
        } => withdraw(&client, record_id, reason).await,
        CaseCommand::List(a) => {
            let mut c = connect(&a.client).await?;
            list(&mut c, &a, Some("case_reference")).await
        }
    }
}

async fn watch(a: WatchArgs) -> Result<(), String> {
    let mut c = connect(&a.client).await?;
    let origin = a.origin.clone().unwrap_or_default();
    let after = if a.existing {
        0
    } else {
        // Skip what is already held: find the current end.
        let mut after = 0;
        loop {
            let page = c
                .list_records(pb::ListRecordsRequest {
                    after_position: after,
                    limit: 10_000,
                    all_versions: true,
                    ..Default::default()
                })
                .await
                .map_err(|s| status_message(&s))?
                .into_inner();
            if page.last_position == after {
                break after;
            }
            after = page.last_position;
        }
    };
    let mut stream = c
        .watch_records(pb::WatchRecordsRequest {
            after_position: after,
            origin,
        })
        .await
        .map_err(|s| status_message(&s))?
        .into_inner();
    eprintln!("watching for records; interrupt to stop");
    while let Some(r) = stream.message().await.map_err(|s| status_message(&s))? {
        print_record(&r, a.json);
    }
    Err("the node closed the watch stream".into())
}

enum Prepared {
    Alert(pb::PublishAlertRequest),
    Case(pb::PublishCaseReferenceRequest),
}

/// Imports a JSON-lines file: parse every line, have the node check every
/// record (`validate_only`), and only then publish them, in order.
async fn import(client: &ClientArg, file: &PathBuf, dry_run: bool) -> Result<(), String> {
    let f =
        std::fs::File::open(file).map_err(|e| format!("cannot read {}: {e}", file.display()))?;
    let mut prepared = Vec::new();
    let mut problems = Vec::new();
    for (i, line) in std::io::BufReader::new(f).lines().enumerate() {
        let n = i + 1;
        let line = line.map_err(|e| format!("{}: line {n}: {e}", file.display()))?;
        if line.trim().is_empty() {
            continue;
        }
        let parsed: ImportLine = match serde_json::from_str(&line) {
            Ok(p) => p,
            Err(e) => {
                problems.push(format!("line {n}: {e}"));
                continue;
            }
        };
        match parsed {
            ImportLine::Alert(a) => match a.to_pb() {
                Ok((alert, values)) => prepared.push((
                    n,
                    Prepared::Alert(pb::PublishAlertRequest {
                        alert: Some(alert),
                        to: a.to.clone(),
                        selector_values: values,
                        validate_only: true,
                    }),
                )),
                Err(e) => problems.push(format!("line {n}: {e}")),
            },
            ImportLine::CaseReference(c) => match c.to_pb() {
                Ok(case) => prepared.push((
                    n,
                    Prepared::Case(pb::PublishCaseReferenceRequest {
                        case_reference: Some(case),
                        to: c.to.clone(),
                        validate_only: true,
                    }),
                )),
                Err(e) => problems.push(format!("line {n}: {e}")),
            },
        }
    }
    if !problems.is_empty() {
        return Err(format!(
            "{}: nothing was published:\n  {}",
            file.display(),
            problems.join("\n  ")
        ));
    }
    let mut c = connect(client).await?;
    for (n, p) in &prepared {
        let r = match p {
            Prepared::Alert(req) => c.publish_alert(req.clone()).await,
            Prepared::Case(req) => c.publish_case_reference(req.clone()).await,
        };
        if let Err(s) = r {
            problems.push(format!("line {n}: {}", status_message(&s)));
        }
    }
    if !problems.is_empty() {
        return Err(format!(
            "{}: nothing was published:\n  {}",
            file.display(),
            problems.join("\n  ")
        ));
    }
    if dry_run {
        eprintln!(
            "{}: {} records are valid; nothing was published (--dry-run)",
            file.display(),
            prepared.len()
        );
        return Ok(());
    }
    let mut published = 0;
    for (n, p) in prepared {
        let r = match p {
            Prepared::Alert(mut req) => {
                req.validate_only = false;
                c.publish_alert(req).await
            }
            Prepared::Case(mut req) => {
                req.validate_only = false;
                c.publish_case_reference(req).await
            }
        };
        match r {
            Ok(resp) => {
                published += 1;
                println!("{}", resp.into_inner().record_id);
            }
            Err(s) => {
                return Err(format!(
                    "line {n}: {} ({published} records before it were published)",
                    status_message(&s)
                ));
            }
        }
    }
    eprintln!("{}: {published} records published", file.display());
    Ok(())
}

async fn verify_peers(c: &mut Client, as_json: bool) -> Result<(), String> {
    let resp = c
        .verify_peers(pb::VerifyPeersRequest {})
        .await
        .map_err(|s| status_message(&s))?
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
        return Err(format!("{bad} comparison(s) differ or failed"));
    }
    Ok(())
}

pub async fn peers(a: PeersArgs) -> Result<(), String> {
    let mut c = connect(&a.client).await?;
    if a.verify {
        return verify_peers(&mut c, a.json).await;
    }
    let resp = c
        .list_peers(pb::ListPeersRequest {})
        .await
        .map_err(|s| status_message(&s))?
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
