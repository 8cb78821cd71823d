//! The certificates of a configuration, as a reload reports them: the node
//! certificate it swapped (for the log and the audit trail) and the expiry
//! of every certificate in use (for the daily warning, `doctor` and the
//! metrics), read from the same loaded files as the TLS configurations.

use time::OffsetDateTime;

use crate::trust::load::LoadedSettings;
use crate::trust::pki::CertInfo;
use crate::trust::tls::TlsError;

/// The node certificate in use, as a log or an auditor identifies it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertSummary {
    pub subject: String,
    /// Colon-separated hex.
    pub serial: String,
    /// SHA-256 of the DER, colon-separated upper-case hex.
    pub sha256: String,
    pub not_after: OffsetDateTime,
}

impl CertSummary {
    pub(super) fn of(settings: &LoadedSettings) -> Result<Self, TlsError> {
        let leaf = settings
            .tls
            .chain
            .first()
            .ok_or_else(|| TlsError::BadCertificate("tls.cert holds no certificate".into()))?;
        let info = CertInfo::parse(leaf).map_err(|e| TlsError::BadCertificate(e.to_string()))?;
        Ok(Self {
            subject: info.subject,
            serial: info.serial,
            sha256: info.sha256,
            not_after: info.not_after,
        })
    }
}

/// Certificates expiring within this many days are warned about, at start
/// and once a day.
pub const EXPIRY_WARNING_DAYS: i64 = 30;

/// A certificate the node relies on and when it expires: what the daily
/// expiry warning and the `enlace_certificate_*` metrics read, so that
/// both follow a reload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertExpiry {
    /// A stable name, used as the metrics label: `node` (the leaf),
    /// `node/1`, `node/2`… (the intermediates sent with it), `agency_ca`
    /// (`agency_ca/2`… for further ones), `roster_ca/<member>`
    /// (`roster_ca/<member>/2`…).
    pub name: String,
    /// What it is, for people: `node certificate`, `agency CA`, `roster CA`.
    pub kind: &'static str,
    pub subject: String,
    pub not_after: OffsetDateTime,
}

impl CertExpiry {
    /// Whole days left at `now` (negative once expired), as `enlace cert
    /// inspect` counts them.
    pub fn days_left(&self, now: OffsetDateTime) -> i64 {
        (self.not_after - now).whole_days()
    }

    /// `"<kind> <subject>"`, as the expiry warning names it.
    pub fn describe(&self) -> String {
        format!("{} {}", self.kind, self.subject)
    }
}

/// Every certificate of `settings` that the node relies on: its own chain,
/// its agency CA and every roster CA. One that does not parse is left out
/// (the configuration check refuses those before anything runs).
pub(super) fn certificates(settings: &LoadedSettings) -> Vec<CertExpiry> {
    fn numbered(base: &str, i: usize, first: usize) -> String {
        if i == 0 {
            base.to_owned()
        } else {
            format!("{base}/{}", i + first)
        }
    }
    let own = settings
        .tls
        .chain
        .iter()
        .enumerate()
        .map(|(i, c)| (numbered("node", i, 0), "node certificate", c));
    let agency = settings
        .agency_ca
        .iter()
        .enumerate()
        .map(|(i, c)| (numbered("agency_ca", i, 1), "agency CA", c));
    let roster = settings.roster.members().flat_map(|m| {
        m.ca_certs.iter().enumerate().map(move |(i, c)| {
            (
                numbered(&format!("roster_ca/{}", m.id), i, 1),
                "roster CA",
                c,
            )
        })
    });
    own.chain(agency)
        .chain(roster)
        .filter_map(|(name, kind, der)| {
            let info = CertInfo::parse(der).ok()?;
            Some(CertExpiry {
                name,
                kind,
                subject: info.subject,
                not_after: info.not_after,
            })
        })
        .collect()
}

/// The certificates of `all` that expire within `days`, described, with
/// the days left (negative once expired).
pub(super) fn expiring(all: &[CertExpiry], days: i64) -> Vec<(String, i64)> {
    let now = time::OffsetDateTime::now_utc();
    all.iter()
        .map(|c| (c.describe(), c.days_left(now)))
        .filter(|(_, left)| *left <= days)
        .collect()
}

/// Logs a warning for every certificate of `all` that expires within
/// [`EXPIRY_WARNING_DAYS`], an error for every one that has expired.
pub(super) fn warn_expiring(all: &[CertExpiry]) {
    for (which, days_left) in expiring(all, EXPIRY_WARNING_DAYS) {
        if days_left < 0 {
            tracing::error!(certificate = %which, days_left, "certificate has expired");
        } else {
            tracing::warn!(certificate = %which, days_left, "certificate expires soon; renew it");
        }
    }
}
