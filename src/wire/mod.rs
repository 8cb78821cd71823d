//! The record wire format: protobuf `RecordBody` inside a `SignedRecord`.
//!
//! The encoded body bytes are what the origin signs and what every node
//! stores and forwards unchanged, so this is the only place outside the
//! service edge that touches generated types. Decoding is strict: a body
//! that decodes but breaks a rule ([`RecordBody::validate`](crate::records::model::RecordBody::validate)) is rejected.

//!
//! This folder is the federation's contract with the generated code: the
//! `pb` module is named here, in [`crate::service`] and in the binary,
//! nowhere else. Everything below the edge (the store, the exchange, the
//! features) works with the domain types of [`crate::records`].

pub mod pb;

mod checkpoint;
mod convert;
mod peer;
mod record;
#[cfg(test)]
mod rules_tests;
mod statistics;

pub use checkpoint::{
    AuditRecovery, CheckpointBody, CheckpointsAnswer, MemberKey, PeerWitnesses, RecoveryBody,
    RecoveryWitness, ResumeCause, SignedCheckpoint, SignedRecovery, Witness,
};
pub use convert::*;
pub use peer::{
    ConfirmRequest, EvaluateRequest, MatchAnswer, MatchRequest, OriginDigest, PeerClient,
    PeerResult, PullBatch, PullRequest, PullStream, Reach,
};
pub use record::*;
pub use statistics::{report_from_pb, report_to_pb};
