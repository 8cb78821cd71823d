//! The node's defaults for what an agency client leaves out of an alert
//! or a case reference (urgency, validity, subject category, contact
//! point, MLA status), applied before the content is converted and
//! checked; clear identifiers become selectors here.

use tonic::Status;

use super::{AgencyService, invalid, invalid_all};
use crate::cases::Identifier;
use crate::records::model::{Alert, CaseReference, Errors};
use crate::records::vocabulary::{AlertType, SubjectCategory, Urgency};
use crate::wire;
use crate::wire::pb::v1 as pb;

impl AgencyService {
    /// When content published now expires, if the client says nothing:
    /// `records.default_validity` from now.
    fn default_expiry(&self) -> i64 {
        let validity = i64::try_from(self.node().publisher.records.default_validity.as_millis())
            .unwrap_or(i64::MAX);
        self.node().clock.now_ms().saturating_add(validity)
    }

    /// Applies the node's defaults to a wire alert, converts and checks it,
    /// and normalises its clear identifiers: for this node's match filter
    /// if it has an OPRF key (the alert then carries no selector), else
    /// hashed into the alert's selectors with the shared matching key.
    pub(super) fn alert(
        &self,
        mut a: pb::Alert,
        values: Vec<pb::SelectorValue>,
        at: &str,
    ) -> Result<(Alert, Vec<Identifier>), Status> {
        if a.urgency == 0 {
            a.urgency = Urgency::Routine.wire();
        }
        if a.expires_at_ms == 0 {
            a.expires_at_ms = self.default_expiry();
        }
        if a.subject_category == 0 {
            a.subject_category = match AlertType::from_wire(a.r#type) {
                Some(AlertType::PossibleVictim) => SubjectCategory::Victim.wire(),
                Some(AlertType::Wanted) => SubjectCategory::Suspect.wire(),
                _ => 0,
            };
        }
        let policy = self.node().trust.policy();
        if a.contact.is_none()
            && let Some(c) = &policy.agency.contact
        {
            a.contact = Some(wire::contact_to_pb(c));
        }
        let mut errors = Errors::default();
        // NOTE: the clear values stop here.
        let values = self.identifiers(values, "selector_values", &mut errors);
        let ids = if self.node().cases.oprf.is_some() {
            // NOTE: a token anyone with the shared key can test offline
            // must not go out in a signed record that peers keep.
            errors.check(
                a.selectors.is_empty(),
                format!("{at}.selectors"),
                "this node has per-member OPRF keys: an alert carries no selector token; send the identifiers as selector_values (they go into this node's match filter)",
            );
            values.ids
        } else {
            // NOTE: a record carries the current (v2) tokens only: it is
            // signed and kept, and the v1 companions are for matching what
            // is older.
            a.selectors
                .extend(values.hashed.iter().map(|h| wire::selector_to_pb(&h.token)));
            Vec::new()
        };
        let alert = wire::alert_from_pb(a, at, &mut errors);
        if let Some(alert) = &alert {
            alert.check(at, &mut errors);
        }
        errors.finish().map_err(invalid_all)?;
        Ok((alert.ok_or_else(|| invalid(at, "is invalid"))?, ids))
    }

    pub(super) fn case_reference(
        &self,
        mut c: pb::CaseReference,
        at: &str,
    ) -> Result<CaseReference, Status> {
        if c.expires_at_ms == 0 {
            c.expires_at_ms = self.default_expiry();
        }
        if c.mla_status == 0 {
            c.mla_status = crate::records::vocabulary::MlaStatus::NoRequest.wire();
        }
        let policy = self.node().trust.policy();
        if c.contact.is_none()
            && let Some(contact) = &policy.agency.contact
        {
            c.contact = Some(wire::contact_to_pb(contact));
        }
        let mut errors = Errors::default();
        let case = wire::case_ref_from_pb(c, at, &mut errors);
        if let Some(case) = &case {
            case.check(at, &mut errors);
        }
        errors.finish().map_err(invalid_all)?;
        case.ok_or_else(|| invalid(at, "is invalid"))
    }
}
