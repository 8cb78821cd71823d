//! Hit/no-hit queries on hashed identifiers and mutual legal assistance,
//! between real nodes.

use std::time::{Duration, Instant};

use crate::common::{self, eventually};
use common::standin::{self, StandIn};
use enlace::records::vocabulary::{MlaOutcome, Offence, SelectorKind};
use enlace::testing::Sandbox;
use enlace::wire::pb::v1 as pb;
use enlace::wire::pb::v1::agency_client::AgencyClient;
use tonic::transport::Channel;

pub(crate) type Client = AgencyClient<Channel>;

pub(crate) fn value(kind: SelectorKind, v: &str) -> pb::SelectorValue {
    pb::SelectorValue {
        kind: kind.wire(),
        value: v.into(),
    }
}

pub(crate) async fn add_case(
    c: &mut Client,
    number: &str,
    selectors: Vec<pb::SelectorValue>,
) -> pb::LocalCase {
    c.register_case(pb::RegisterCaseRequest {
        case: Some(pb::LocalCase {
            case_number: number.into(),
            offence: Offence::Trafficking.wire(),
            victims: vec![pb::Victim {
                sex: enlace::records::vocabulary::Sex::Female.wire(),
                age_group: enlace::records::vocabulary::AgeGroup::Child.wire(),
                exploitation: vec![enlace::records::vocabulary::Exploitation::Sexual.wire()],
                citizenship: "HN".into(),
            }],
            ..Default::default()
        }),
        selector_values: selectors,
    })
    .await
    .expect("register case")
    .into_inner()
}

pub(crate) async fn query(
    c: &mut Client,
    selectors: Vec<pb::SelectorValue>,
    justification: &str,
) -> Result<pb::QueryResponse, tonic::Status> {
    c.query(pb::QueryRequest {
        selector_values: selectors,
        justification: justification.into(),
        ..Default::default()
    })
    .await
    .map(tonic::Response::into_inner)
}

/// Asks about one passport, and checks that `peer` answered `expected`;
/// the whole response.
pub(crate) async fn passport_answer(
    c: &Client,
    passport: &str,
    justification: &str,
    peer: &str,
    expected: pb::QueryResult,
) -> pb::QueryResponse {
    let r = query(
        &mut c.clone(),
        vec![value(SelectorKind::Passport, passport)],
        justification,
    )
    .await
    .unwrap();
    assert_eq!(answer(&r, peer).result, expected as i32, "{r:?}");
    r
}

pub(crate) fn answer<'a>(r: &'a pb::QueryResponse, peer: &str) -> &'a pb::PeerAnswer {
    r.answers
        .iter()
        .find(|a| a.peer == peer)
        .unwrap_or_else(|| panic!("no answer from {peer}: {r:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_query_finds_the_member_that_holds_the_case_within_its_deadline() {
    common::init_tracing();
    // cr is a member whose node never runs: its listener accepts nothing.
    let mut fed = Sandbox::create("test-fed", &["gt", "hn", "sv", "cr"])
        .await
        .unwrap();
    let nodes = vec![
        fed.start("gt").await.unwrap(),
        fed.start("hn").await.unwrap(),
        fed.start("sv").await.unwrap(),
    ];
    let mut hn = fed.client("hn").await.unwrap();
    let mut sv = fed.client("sv").await.unwrap();
    let case = add_case(
        &mut hn,
        "MP-HN-2026-17",
        vec![value(SelectorKind::Passport, "X1234567")],
    )
    .await;
    assert!(case.case_id.starts_with("case-"));
    assert_eq!(case.selectors.len(), 1, "stored as a token");

    let started = Instant::now();
    // The same passport, written differently: normalisation makes it match.
    let r = query(
        &mut sv,
        vec![
            value(SelectorKind::Passport, "x 123-4567"),
            value(SelectorKind::Phone, "+502 5555 0000"),
        ],
        "Investigación de red de trata en frontera norte",
    )
    .await
    .unwrap();
    let took = started.elapsed();
    assert!(r.query_id.starts_with("q-sv-"));
    let at_hn = answer(&r, "hn");
    assert_eq!(at_hn.result, pb::QueryResult::Hit as i32, "{at_hn:?}");
    assert_eq!(at_hn.hits, vec![true, false], "per selector");
    assert_eq!(
        at_hn.case_refs,
        vec!["MP-HN-2026-17".to_string()],
        "hn's policy reveals its case reference"
    );
    assert!(
        at_hn
            .contact
            .as_ref()
            .is_some_and(|c| c.unit.contains("(hn)")),
        "{at_hn:?}"
    );
    let at_gt = answer(&r, "gt");
    assert_eq!(at_gt.result, pb::QueryResult::NoHit as i32, "{at_gt:?}");
    assert!(
        at_gt.case_refs.is_empty() && at_gt.contact.is_none(),
        "a no-hit reveals nothing"
    );
    let at_cr = answer(&r, "cr");
    assert_eq!(
        at_cr.result,
        pb::QueryResult::Unreachable as i32,
        "{at_cr:?}"
    );
    assert!(!at_cr.reason.is_empty());
    // The stopped member costs at most the deadline (3 s in the sandbox).
    assert!(
        took < Duration::from_secs(3) + Duration::from_secs(5),
        "took {took:?}"
    );

    // An MLA request may cite the query to the member that answered "hit",
    // and to no one else; a query id sv never sent is refused.
    let mla = |to: &str, query_id: &str| pb::SendMlaRequest {
        request: Some(pb::MlaRequest {
            to: to.into(),
            query_id: query_id.into(),
            legal_basis: "UNTOC art. 18".into(),
            measures: "Confirmar identidad".into(),
            ..Default::default()
        }),
    };
    for (to, query_id, rule) in [
        ("gt", r.query_id.clone(), "gt did not answer \"hit\""),
        (
            "hn",
            "q-gt-0000000000000001".to_owned(),
            "is not a query this node sent",
        ),
    ] {
        let refused = sv
            .send_mla(mla(to, &query_id))
            .await
            .expect_err("not a query with a hit from the recipient");
        assert_eq!(refused.code(), tonic::Code::InvalidArgument, "{refused:?}");
        assert!(
            refused.message().contains("mla_request.query_id") && refused.message().contains(rule),
            "{}",
            refused.message()
        );
    }
    sv.send_mla(mla("hn", &r.query_id))
        .await
        .expect("hn answered hit to this query");

    // Closing the case takes its selectors out of the index.
    hn.close_case(pb::CloseCaseRequest {
        case_id: case.case_id.clone(),
    })
    .await
    .unwrap();
    let r = query(
        &mut sv,
        vec![value(SelectorKind::Passport, "X1234567")],
        "segunda consulta",
    )
    .await
    .unwrap();
    assert_eq!(answer(&r, "hn").result, pb::QueryResult::NoHit as i32);

    for n in nodes {
        n.stop().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_query_needs_a_justification_and_the_rate_limit_refuses_the_one_too_many() {
    common::init_tracing();
    let mut fed = Sandbox::create("test-fed", &["hn", "sv"]).await.unwrap();
    // hn answers at most 3 queries a minute from any one peer.
    let hn_config = fed.member("hn").unwrap().config_path();
    let text = std::fs::read_to_string(&hn_config)
        .unwrap()
        .replace("[query]\n", "[query]\nmax_per_minute = 3\n");
    std::fs::write(&hn_config, text).unwrap();
    let nodes = vec![
        fed.start("hn").await.unwrap(),
        fed.start("sv").await.unwrap(),
    ];
    let mut sv = fed.client("sv").await.unwrap();
    let p = || vec![value(SelectorKind::Passport, "A7654321")];
    // sv asks obliviously: it holds hn's filter.
    let hn_id = enlace::records::model::NodeId::parse("hn").unwrap();
    eventually("sv holds hn's filter", || async {
        nodes[1].components.cases.filter_epoch(&hn_id).await.ok()?
    })
    .await;

    let err = query(&mut sv, p(), "  ").await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert!(
        err.message().contains("justification: is required"),
        "{}",
        err.message()
    );

    for i in 0..3 {
        let r = query(&mut sv, p(), &format!("consulta {i}")).await.unwrap();
        assert_eq!(
            answer(&r, "hn").result,
            pb::QueryResult::NoHit as i32,
            "query {i}"
        );
    }
    let r = query(&mut sv, p(), "consulta 4").await.unwrap();
    let refused = answer(&r, "hn");
    assert_eq!(
        refused.result,
        pb::QueryResult::Refused as i32,
        "{refused:?}"
    );
    assert!(
        refused
            .reason
            .contains("rate limit: at most 3 queries per minute from sv"),
        "{}",
        refused.reason
    );

    // Too many selectors is refused before anything is sent.
    let many: Vec<_> = (0..17)
        .map(|i| value(SelectorKind::Passport, &format!("P{i:07}")))
        .collect();
    let err = query(&mut sv, many, "demasiados").await.unwrap_err();
    assert!(
        err.message().contains("at most 16 selectors per query"),
        "{}",
        err.message()
    );
    // On record at both ends: hn's refusal with its reason, sv's refused
    // requests with theirs.
    let at_hn = common::audit_log(&nodes[0].components);
    let refused = at_hn
        .iter()
        .find(|e| e.action == "query_refused")
        .expect("a query_refused entry at hn");
    assert_eq!(refused.counterparts, ["sv"]);
    assert_eq!(refused.justification, "consulta 4");
    assert!(refused.result.contains("rate limit"), "{}", refused.result);
    assert!(refused.token_digests.is_empty(), "an evaluation has none");
    assert_eq!(
        at_hn
            .iter()
            .filter(|e| e.action == "query_evaluated")
            .count(),
        3
    );
    let at_sv = common::audit_log(&nodes[1].components);
    let rejected: Vec<_> = at_sv
        .iter()
        .filter(|e| e.action == "request_rejected")
        .map(|e| e.result.as_str())
        .collect();
    assert_eq!(rejected.len(), 2, "{rejected:?}");
    assert!(rejected[0].contains("justification"));
    assert!(rejected[1].contains("at most 16 selectors"));
    for n in nodes {
        n.stop().await.unwrap();
    }
}

async fn mla_view(c: &Client, id: &str) -> Option<pb::MlaView> {
    let mut c = c.clone();
    let list = c.list_mla(pb::ListMlaRequest {}).await.ok()?.into_inner();
    list.requests.into_iter().find(|r| r.request_id == id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_mla_request_is_acknowledged_automatically_and_answered_and_both_ends_agree_after_restarts()
 {
    common::init_tracing();
    let mut fed = Sandbox::create("test-fed", &["gt", "hn", "sv"])
        .await
        .unwrap();
    let gt_node = fed.start("gt").await.unwrap();
    let hn_node = fed.start("hn").await.unwrap();
    let sv_node = fed.start("sv").await.unwrap();
    let mut gt = fed.client("gt").await.unwrap();
    let hn = fed.client("hn").await.unwrap();

    // gt has published a case reference; it asks hn for assistance on it.
    let case_ref = gt
        .publish_case_reference(pb::PublishCaseReferenceRequest {
            case_reference: Some(pb::CaseReference {
                case_ref: "MP-GT-2026-0042".into(),
                offence: Offence::Trafficking.wire(),
                stage: enlace::records::vocabulary::CaseStage::Investigation.wire(),
                competent_authority: "Fiscalía contra la Trata de Personas".into(),
                handling: Some(pb::Handling {
                    code: enlace::records::vocabulary::HandlingCode::H1.wire(),
                    condition: String::new(),
                }),
                tlp: enlace::records::vocabulary::Tlp::Amber.wire(),
                ..Default::default()
            }),
            to: vec!["hn".into()],
            validate_only: false,
            idempotency_key: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    let deadline = enlace::clock::now_ms() + 3_600_000;
    let sent = gt
        .send_mla(pb::SendMlaRequest {
            request: Some(pb::MlaRequest {
                to: "hn".into(),
                case_refs: vec![case_ref.record_id.clone()],
                legal_basis: "Convención de Palermo, art. 18; Tratado Centroamericano de Asistencia Legal Mutua".into(),
                measures: "Información sobre movimientos migratorios y cuentas bancarias".into(),
                deadline_ms: deadline,
                ..Default::default()
            }),
        })
        .await
        .unwrap()
        .into_inner();
    let id = sent.record_id.clone();

    // hn's node acknowledges it by itself; the signed ack reaches gt.
    let at_gt = eventually("the acknowledgment at gt", || async {
        mla_view(&gt, &id)
            .await
            .filter(|v| v.state == "acknowledged")
    })
    .await;
    assert_eq!(
        (at_gt.from.as_str(), at_gt.to.as_str(), at_gt.overdue),
        ("gt", "hn", false)
    );
    assert!(at_gt.acknowledged_at_ms > 0);
    let at_hn = mla_view(&hn, &id).await.unwrap();
    assert_eq!(at_hn.state, "acknowledged");
    assert_eq!(at_hn.case_refs, vec![case_ref.record_id.clone()]);

    // sv is not party to it: it never holds the request.
    let sv = fed.client("sv").await.unwrap();
    assert!(mla_view(&sv, &id).await.is_none());
    assert!(
        sv_node
            .components
            .store
            .records()
            .get_by_id(&id)
            .unwrap()
            .is_none()
    );

    // Only hn can answer; gt cannot answer its own request.
    let mut gt2 = gt.clone();
    let err = gt2
        .respond_mla(pb::RespondMlaRequest {
            request_id: id.clone(),
            outcome: MlaOutcome::Executed.wire(),
            text: "x".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(
        err.code(),
        tonic::Code::InvalidArgument,
        "{}",
        err.message()
    );
    let mut hn2 = hn.clone();
    hn2.respond_mla(pb::RespondMlaRequest {
        request_id: id.clone(),
        outcome: MlaOutcome::Executed.wire(),
        text: "Ejecutada: se remiten los registros solicitados por vía diplomática".into(),
    })
    .await
    .unwrap();
    eventually("the answer at gt", || async {
        mla_view(&gt, &id).await.filter(|v| v.state == "executed")
    })
    .await;

    // Both ends restart and still agree.
    gt_node.stop().await.unwrap();
    hn_node.stop().await.unwrap();
    let gt_node = fed.start("gt").await.unwrap();
    let hn_node = fed.start("hn").await.unwrap();
    let gt = fed.client("gt").await.unwrap();
    let hn = fed.client("hn").await.unwrap();
    for (who, c) in [("gt", &gt), ("hn", &hn)] {
        let v = mla_view(c, &id)
            .await
            .unwrap_or_else(|| panic!("{who} lost the request"));
        assert_eq!(v.state, "executed", "{who}");
        assert_eq!(v.responses.len(), 1, "{who}");
        assert!(!v.overdue, "{who}");
    }
    gt_node.stop().await.unwrap();
    hn_node.stop().await.unwrap();
    sv_node.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unanswered_request_past_its_deadline_is_overdue_at_both_ends() {
    common::init_tracing();
    let mut fed = Sandbox::create("test-fed", &["gt", "hn"]).await.unwrap();
    let nodes = vec![
        fed.start("gt").await.unwrap(),
        fed.start("hn").await.unwrap(),
    ];
    let mut gt = fed.client("gt").await.unwrap();
    let mut hn = fed.client("hn").await.unwrap();
    add_case(
        &mut hn,
        "MP-HN-2026-40",
        vec![value(SelectorKind::Passport, "B7654321")],
    )
    .await;
    let asked = query(
        &mut gt,
        vec![value(SelectorKind::Passport, "B7654321")],
        "Verificación de identidad",
    )
    .await
    .unwrap();
    let sent = gt
        .send_mla(pb::SendMlaRequest {
            request: Some(pb::MlaRequest {
                to: "hn".into(),
                query_id: asked.query_id.clone(),
                legal_basis: "UNTOC art. 18".into(),
                measures: "Confirmar identidad".into(),
                deadline_ms: enlace::clock::now_ms() + 1_000,
                ..Default::default()
            }),
        })
        .await
        .unwrap()
        .into_inner();
    for (who, c) in [("gt", &gt), ("hn", &hn)] {
        eventually(&format!("overdue at {who}"), || async {
            mla_view(c, &sent.record_id).await.filter(|v| v.overdue)
        })
        .await;
    }
    for n in nodes {
        n.stop().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_clear_identifier_crosses_the_wire_or_reaches_a_store() {
    use std::sync::Arc;
    common::init_tracing();
    let mut fed = Sandbox::create("test-fed", &["hn", "sv", "rec"])
        .await
        .unwrap();
    // "rec" is a stand-in peer with rec's real identity that keeps every
    // Match request it receives, exactly as decoded from the wire.
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let (_stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let recorder = StandIn {
        matches: Some(seen.clone()),
        ..StandIn::default()
    };
    standin::serve(&mut fed, "rec", recorder, stop_rx);
    let nodes = vec![
        fed.start("hn").await.unwrap(),
        fed.start("sv").await.unwrap(),
    ];
    let mut hn = fed.client("hn").await.unwrap();
    let mut sv = fed.client("sv").await.unwrap();
    let clear = [
        ("passport", "Q7418529"),
        ("name_dob", "ESQUIVEL ZAVALA, Yolanda|1987-11-03"),
        ("phone", "+504 9988 7766"),
    ];
    let values = |_: ()| {
        clear
            .iter()
            .map(|(k, v)| value(SelectorKind::parse(k).unwrap(), v))
            .collect::<Vec<_>>()
    };
    add_case(&mut hn, "HN-TRATA-88", values(())).await;
    let r = query(
        &mut sv,
        values(()),
        "Verificación de identidad en caso de trata",
    )
    .await
    .unwrap();
    assert_eq!(answer(&r, "hn").result, pb::QueryResult::Hit as i32);
    assert_eq!(answer(&r, "rec").result, pb::QueryResult::NoHit as i32);
    let requests = seen.lock().unwrap().clone();
    assert_eq!(requests.len(), 1, "rec was asked once");
    for n in nodes {
        n.stop().await.unwrap();
    }
    let needles = [
        "Q7418529",
        "ESQUIVEL",
        "Yolanda",
        "YOLANDA",
        "ZAVALA",
        "1987-11-03",
        "99887766",
    ];
    for (what, bytes) in requests
        .iter()
        .map(|b| ("the Match request on the wire", b.clone()))
        .chain(
            ["hn", "sv"]
                .iter()
                .flat_map(|id| walk(&fed.member(id).unwrap().data_dir()))
                .map(|p| ("a data directory", std::fs::read(p).unwrap())),
        )
    {
        for n in needles {
            assert!(
                !bytes.windows(n.len()).any(|w| w == n.as_bytes()),
                "{n:?} found in {what}"
            );
        }
    }
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p))
        } else {
            out.push(p)
        }
    }
    out
}

/// Normalisation v2 (docs/selectors.md, "Versions"): `D'Angelo` and
/// `DAngelo` now match; and during the transition a query still finds a
/// case indexed with a v1 token, and a member not yet upgraded still finds
/// a case registered after the upgrade.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_with_apostrophes_match_across_the_v1_to_v2_transition() {
    use enlace::records::selector::{MatchingKey, NormalisationVersion, normalise_as};
    common::init_tracing();
    let mut fed = Sandbox::create("test-fed", &["hn", "sv"]).await.unwrap();
    let key_path = fed.member("hn").unwrap().dir.join("matching.key");
    let key = MatchingKey::load(&key_path, 1).unwrap();
    // The transition is the shared-key protocol's (version 1).
    common::shared_key_only(&fed, "hn", true);
    common::shared_key_only(&fed, "sv", true);
    let v1_token = |name: &str| {
        let v1 = normalise_as(NormalisationVersion::V1, SelectorKind::NameDob, name).unwrap();
        enlace::wire::selector_to_pb(&key.token(SelectorKind::NameDob, &v1))
    };
    let nodes = vec![
        fed.start("hn").await.unwrap(),
        fed.start("sv").await.unwrap(),
    ];
    let mut hn = fed.client("hn").await.unwrap();
    let mut sv = fed.client("sv").await.unwrap();

    // A case registered after the upgrade, with the clear name.
    add_case(
        &mut hn,
        "HN-TRATA-90",
        vec![value(SelectorKind::NameDob, "D'Angelo, Ana|1975-07-04")],
    )
    .await;
    let r = query(
        &mut sv,
        vec![
            value(SelectorKind::NameDob, "Ana|1990-05-17"),
            value(SelectorKind::NameDob, "DAngelo, Ana|1975-07-04"),
        ],
        "Verificación de identidad",
    )
    .await
    .unwrap();
    let at_hn = answer(&r, "hn");
    assert_eq!(
        at_hn.hits,
        vec![false, true],
        "ONeil-style spelling: {at_hn:?}"
    );
    // A member not yet upgraded sends the v1 token: the companion is indexed.
    let r = sv
        .query(pb::QueryRequest {
            selectors: vec![v1_token("D'Angelo, Ana|1975-07-04")],
            justification: "Consulta desde un nodo v1".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(answer(&r, "hn").hits, vec![true]);

    // A case indexed before the upgrade holds only the v1 token.
    let mut old = hn
        .register_case(pb::RegisterCaseRequest {
            case: Some(pb::LocalCase {
                case_number: "HN-TRATA-12".into(),
                offence: Offence::Trafficking.wire(),
                selectors: vec![v1_token("O'Neil, Seán|2001-01-31")],
                ..Default::default()
            }),
            selector_values: Vec::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(old.selectors.len(), 1);
    let r = query(
        &mut sv,
        vec![
            value(SelectorKind::NameDob, "O\u{2019}Neil, Seán|2001-01-31"),
            value(SelectorKind::Passport, "X7654321"),
        ],
        "Verificación de identidad (caso anterior)",
    )
    .await
    .unwrap();
    let at_hn = answer(&r, "hn");
    assert_eq!(at_hn.result, pb::QueryResult::Hit as i32, "{at_hn:?}");
    assert_eq!(
        at_hn.hits,
        vec![true, false],
        "one result per selector asked"
    );
    assert_eq!(at_hn.case_refs, vec!["HN-TRATA-12".to_string()]);

    // The v1 companions count against the limit of selectors per query
    // (16 in the sandbox), and the refusal says so.
    let mut many: Vec<_> = (0..15)
        .map(|i| value(SelectorKind::Passport, &format!("X{i:07}")))
        .collect();
    many.push(value(SelectorKind::NameDob, "O'Neil, Seán|2001-01-31"));
    let refused = query(&mut sv, many, "Verificación masiva")
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::InvalidArgument);
    assert!(
        refused.message().contains(
            "at most 16 selectors per query, counting the v1 tokens sent along for names whose normalisation changed in v2 (1 of them; got 17)"
        ),
        "{refused:?}"
    );

    // Closed, it answers no more, through its v1 token either.
    old = hn
        .close_case(pb::CloseCaseRequest {
            case_id: old.case_id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(old.closed);
    let r = query(
        &mut sv,
        vec![value(SelectorKind::NameDob, "O'Neil, Seán|2001-01-31")],
        "Verificación de identidad (caso cerrado)",
    )
    .await
    .unwrap();
    assert_eq!(answer(&r, "hn").result, pb::QueryResult::NoHit as i32);

    for n in nodes {
        n.stop().await.unwrap();
    }
}
