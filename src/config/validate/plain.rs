//! The sections that name no file (`node.cache_mb`, `[records]`,
//! `[audit]`, `[agency]`, `[query]`, `[log]`) and the data directory. Its
//! own file because these are checked as plain values, with nothing for
//! the trust floor's loader to open between them: it runs them in one
//! call.

use std::time::Duration;

use super::Validation;
use crate::config::schema::{
    RawAgency, RawAudit, RawConfig, RawNode, RawQuery, RawRecords, RawStatistics,
};
use crate::config::{ClientRole, RecordsConfig, Reveal};
use crate::records::model::{ContactPoint, Errors, check_contact};

impl Validation<'_> {
    /// The sections that name no file: `node.cache_mb`, `[records]`,
    /// `[audit]`, `[agency]`, `[query]`, `[log]`, and the data directory.
    pub(crate) fn plain_sections(&mut self, raw: &RawConfig) {
        self.cache(&raw.node);
        self.records(&raw.records);
        self.audit(&raw.audit);
        self.agency(&raw.agency);
        self.query(&raw.query);
        self.statistics(&raw.statistics);
        self.log_format = raw.log.format;
    }

    /// `node.cache_mb`: 1..=65536.
    fn cache(&mut self, raw: &RawNode) {
        let mb = raw.cache_mb;
        if (1..=65_536).contains(&mb) {
            self.cache_bytes = mb * 1024 * 1024;
        } else {
            self.problem(format!(
                "node.cache_mb: must be between 1 and 65536 (got {mb})"
            ));
        }
    }

    /// `[records]`.
    fn records(&mut self, raw: &RawRecords) {
        let records = RecordsConfig {
            default_validity: Duration::from_secs(u64::from(raw.default_validity_days) * 86_400),
            max_validity: Duration::from_secs(u64::from(raw.max_validity_days) * 86_400),
            expiry_check: Duration::from_millis(raw.expiry_check_ms),
        };
        if records.default_validity.is_zero() || records.default_validity > records.max_validity {
            self.problem(
                "records.default_validity_days: must be at least 1 and at most records.max_validity_days",
            );
        }
        if records.expiry_check < Duration::from_millis(10) {
            self.problem("records.expiry_check_ms: must be at least 10");
        }
        self.records = records;
    }

    /// `[audit]`.
    fn audit(&mut self, raw: &RawAudit) {
        let ms = raw.checkpoint_interval_ms;
        if (100..=86_400_000).contains(&ms) {
            self.audit.checkpoint_interval = Duration::from_millis(ms);
        } else {
            self.problem(format!(
                "audit.checkpoint_interval_ms: must be between 100 and 86400000 (got {ms})"
            ));
        }
        match raw.retention_days {
            0 => {}
            d if d < crate::limits::MIN_AUDIT_RETENTION_DAYS => self.problem(format!(
                "audit.retention_days: must be 0 (keep everything) or at least {} (got {d})",
                crate::limits::MIN_AUDIT_RETENTION_DAYS
            )),
            d => self.audit.retention = Some(Duration::from_secs(u64::from(d) * 86_400)),
        }
    }

    /// `[agency]`: roles and the contact point.
    fn agency(&mut self, raw: &RawAgency) {
        if let Some(r) = &raw.default_role {
            match ClientRole::parse(r) {
                Ok(role) => self.agency.default_role = role,
                Err(e) => self.problem(format!("agency.default_role: {e}")),
            }
        }
        for (i, c) in raw.clients.iter().enumerate() {
            match ClientRole::parse(&c.role) {
                Ok(role) => {
                    if self.agency.clients.insert(c.name.clone(), role).is_some() {
                        self.problem(format!(
                            "agency.clients[{i}].name: {:?} is listed twice",
                            c.name
                        ));
                    }
                }
                Err(e) => self.problem(format!("agency.clients[{i}].role: {e}")),
            }
        }
        if let Some(c) = &raw.contact {
            let contact = ContactPoint {
                unit: c.unit.clone(),
                email: c.email.clone(),
                phone: c.phone.clone(),
            };
            let mut errors = Errors::default();
            check_contact(&mut errors, "agency", &contact);
            for e in errors.0 {
                self.problem(e.to_string());
            }
            self.agency.contact = Some(contact);
        }
    }

    /// `[query]`.
    fn query(&mut self, raw: &RawQuery) {
        let n = raw.max_selectors;
        if (1..=256).contains(&n) {
            self.query.max_selectors = n;
        } else {
            self.problem(format!(
                "query.max_selectors: must be between 1 and 256 (got {n})"
            ));
        }
        if raw.max_per_minute >= 1 {
            self.query.max_per_minute = raw.max_per_minute;
        } else {
            self.problem("query.max_per_minute: must be at least 1");
        }
        let max = u32::try_from(self.query.max_selectors).unwrap_or(u32::MAX);
        if raw.evaluations_per_minute >= max {
            self.query.evaluations_per_minute = raw.evaluations_per_minute;
        } else {
            self.problem(format!(
                "query.evaluations_per_minute: must be at least query.max_selectors ({max}), or a query of that many identifiers could never be evaluated (got {})",
                raw.evaluations_per_minute
            ));
        }
        let ms = raw.deadline_ms;
        if (100..=120_000).contains(&ms) {
            self.query.deadline = Duration::from_millis(ms);
        } else {
            self.problem(format!(
                "query.deadline_ms: must be between 100 and 120000 (got {ms})"
            ));
        }
        match raw.reveal.as_deref() {
            None => {}
            Some("case_refs") => self.query.reveal = Reveal::CaseRefs,
            Some("contact") => self.query.reveal = Reveal::ContactOnly,
            Some(other) => self.problem(format!(
                "query.reveal: {other:?} is not a policy; one of: case_refs (name the matching cases), contact (only \"hit, contact us\")"
            )),
        }
    }

    /// `[statistics]`.
    fn statistics(&mut self, raw: &RawStatistics) {
        use crate::records::stats::{MIN_ROUNDING_BASE, MIN_THRESHOLD, Method, Population};
        let threshold = raw.threshold.unwrap_or(5);
        if threshold < MIN_THRESHOLD {
            self.problem(format!(
                "statistics.threshold: must be at least {MIN_THRESHOLD}: smaller counts identify people (got {threshold})"
            ));
        }
        let base = raw.rounding_base.unwrap_or(5);
        if base < MIN_ROUNDING_BASE {
            self.problem(format!(
                "statistics.rounding_base: must be at least {MIN_ROUNDING_BASE} (got {base})"
            ));
        }
        match raw.method.as_deref() {
            None | Some("suppression") => {
                self.statistics.method = Method::Suppression { threshold };
            }
            Some("rounding") => self.statistics.method = Method::Rounding { base },
            Some(other) => self.problem(format!(
                "statistics.method: {other:?} is not a method; one of: suppression (suppress small cells and what would reveal them), rounding (round every cell to the base)"
            )),
        }
        if let Some(days) = raw.validity_days {
            if days == 0 {
                self.problem("statistics.validity_days: must be at least 1");
            } else {
                self.statistics.validity = Duration::from_secs(u64::from(days) * 86_400);
            }
        }
        if self.statistics.validity > self.records.max_validity {
            self.problem(format!(
                "statistics.validity_days: must not exceed records.max_validity_days ({} days)",
                self.records.max_validity.as_secs() / 86_400
            ));
        }
        for (i, p) in raw.population.iter().enumerate() {
            let at = format!("statistics.population[{i}]");
            let mut errors = Errors::default();
            errors.check(
                (1900..=2999).contains(&p.year),
                format!("{at}.year"),
                format!("must be a year between 1900 and 2999 (got {})", p.year),
            );
            errors.check(p.count > 0, format!("{at}.count"), "must be positive");
            crate::records::model::check_text(
                &mut errors,
                &format!("{at}.source"),
                &p.source,
                crate::records::stats::MAX_POPULATION_SOURCE,
                true,
            );
            let year = u16::try_from(p.year).unwrap_or(u16::MAX);
            if self.statistics.population.contains_key(&year) {
                errors.push(format!("{at}.year"), format!("{year} is given twice"));
            }
            if errors.0.is_empty() {
                self.statistics.population.insert(
                    year,
                    Population {
                        count: p.count,
                        year,
                        source: p.source.trim().to_owned(),
                    },
                );
            }
            for e in errors.0 {
                self.problem(e.to_string());
            }
        }
    }
}
