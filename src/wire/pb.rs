//! Generated protobuf messages and gRPC stubs for `proto/enlace/v1`.
//!
//! Quarantined here: services convert these types to [`crate::records::model`] types
//! at the edge, and storage and logic never see them. The one exception is
//! the record wire format itself ([`crate::wire`]), whose encoding is
//! the signed contract between nodes.

#![allow(missing_docs, clippy::all, clippy::pedantic)]

/// `enlace.v1`: records, the peer-facing `Federation` service and the
/// agency-facing `Agency` service.
pub mod v1 {
    tonic::include_proto!("enlace.v1");
}

/// Encoded `FileDescriptorSet` of every enlace proto file, served by gRPC
/// reflection on the agency listener.
pub(crate) const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/enlace_descriptor.bin"));
