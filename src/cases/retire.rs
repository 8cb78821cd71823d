//! Epochs the roster retired (`crate::store`'s filters, "retired"): what
//! this node kept for them goes, its own entries of its own retired
//! epochs and its views' entries of the members' retired epochs. The
//! node then purges the filter records of those epochs
//! (`crate::node`'s filter duty).

use super::CaseIndex;
use crate::records::model::NodeId;
use crate::store::StoreError;
use crate::trust::roster::Member;

/// Whether the roster retired `member`'s `epoch`: it lists a later epoch
/// of the member and not this one. The roster chain never lists such an
/// epoch again (`docs/roster.md`), so what was kept for it can go.
pub(crate) fn retired(member: &Member, epoch: u32) -> bool {
    member.oprf_key(epoch).is_none() && member.oprf_keys.iter().any(|k| k.epoch > epoch)
}

impl CaseIndex {
    /// Drops what this node holds of epochs the roster retired: its own
    /// entries of its own, and its views' entries of the other members'.
    /// Returns the (member, epoch) pairs it dropped something of. An
    /// epoch is held until it is wholly dropped, so a pass cut short is
    /// finished by the next.
    pub async fn retire_epochs(&self) -> Result<Vec<(NodeId, u32)>, StoreError> {
        let roster = self.trust.roster();
        let filters = self.store.filters();
        let mut out = Vec::new();
        for m in roster.members() {
            let own = m.id == self.id;
            let held = if own {
                filters.own_built_epochs()?
            } else {
                filters.peer_epochs(&m.id)?
            };
            for epoch in held.into_iter().filter(|e| retired(m, *e)) {
                if own {
                    // A write that read the roster before the epoch was
                    // retired would add entries of it after they are
                    // dropped: none is in flight while they are.
                    let _writes = self.all_own_locks().await;
                    filters.retire_own_epoch(&self.id, epoch).await?;
                } else {
                    filters.retire_peer_epoch(&m.id, epoch).await?;
                }
                out.push((m.id.clone(), epoch));
            }
        }
        Ok(out)
    }
}
