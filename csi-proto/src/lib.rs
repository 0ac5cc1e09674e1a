//! CSI v1 protocol (package `csi.v1`, spec v1.12) for berth: message types
//! plus tonic server and client stubs for the Identity, Controller, Node and
//! GroupController services. Generated at build time from `proto/csi.proto`.

/// Everything in the `csi.v1` protobuf package.
pub mod v1 {
    #![allow(clippy::all, missing_docs)]
    tonic::include_proto!("csi.v1");
}

pub use v1::*;
