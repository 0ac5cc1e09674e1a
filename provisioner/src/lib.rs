//! berth: a Kubernetes storage engine.
//!
//! - [`binding`]: the pure binding core (`plan(&Snapshot) -> Plan`);
//! - [`manifest`]: reading manifests into a typed [`binding::Snapshot`];
//! - [`cluster`]: a live cluster read into the same snapshot;
//! - [`cli`]: the `berth` command line;
//! - [`csi`]: the CSI driver; [`controller`]: the cluster-wide controller;
//!   [`agent`]: the node agent (driver, kubelet registration, provisioning
//!   for its node, storage capacity).

pub mod agent;
pub mod binding;
pub mod cli;
pub mod cluster;
pub mod controller;
pub mod csi;
pub mod manifest;
pub mod model;
pub mod quantity;
