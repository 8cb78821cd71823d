//! Who is on the other end of a connection, as its verified certificate
//! says: the key of every per-identity budget (connections here, refusals
//! in the audit log).

use crate::records::model::NodeId;

/// Who is on the other end of an accepted connection, as its verified
/// certificate says.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Identity {
    /// A federation peer.
    Peer(NodeId),
    /// An agency client, by its certificate's common name.
    Client(String),
}

impl Identity {
    /// The name it is written under: a peer's node id, a client's name.
    pub fn name(&self) -> &str {
        match self {
            Self::Peer(id) => id.as_str(),
            Self::Client(name) => name,
        }
    }
}
