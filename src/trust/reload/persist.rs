//! Persisting the chain a configuration loaded before anything uses it
//! (C2SP tlog-witness: persist, then act), and keeping the evidence of a
//! conflict.

use super::ReloadError;
use crate::trust::load::LoadedSettings;

/// Writes every version of the loaded chain that the node's own chain
/// directory lacks (versions handed to the operator's directory), and
/// keeps the evidence of a conflict. Logs a conflict as an ERROR: adoption
/// halts before it until the federation resolves it.
pub(super) fn persist_chain(settings: &LoadedSettings) -> Result<(), ReloadError> {
    use crate::trust::chain::{self, dir};
    let own = dir::adopted_dir(&settings.data_dir);
    for signed in &settings.chain.chain {
        let n = signed.version.number();
        let held = std::fs::read(own.join(dir::file_name(n)))
            .ok()
            .and_then(|b| chain::Signed::decode(&b).ok());
        if held.is_some_and(|h| {
            h.version.hash() == signed.version.hash() && h.approvals.len() >= signed.approvals.len()
        }) {
            continue;
        }
        dir::write(&own, signed, dir::Access::OwnerOnly)
            .map_err(|reason| ReloadError::RosterPersist { version: n, reason })?;
        tracing::info!(
            version = n,
            hash = %chain::hex(&signed.version.hash()),
            "roster version persisted"
        );
    }
    if let Some((version, refusal)) = &settings.chain.stopped {
        for signed in &settings.chain.conflict {
            if let Err(reason) = dir::keep_evidence(&own, signed) {
                tracing::error!(version, %reason, "cannot keep the evidence of a roster conflict");
            }
        }
        tracing::error!(
            version,
            reason = refusal.reason(),
            %refusal,
            "roster chain halted: the node stays on the version before it"
        );
    }
    Ok(())
}
