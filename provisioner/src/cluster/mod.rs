//! A live cluster as input to the binding core: the objects the planner
//! needs, read through a kubeconfig ([`read`]) or kept current by the
//! controller's reflectors, and turned into the same documents the manifest
//! path produces ([`objects`]), so the live path and `berth dry-run -f` share
//! one converter and one planner.

pub mod objects;
pub mod read;
pub mod snapshots;

pub use objects::LiveObjects;
pub use read::{ReadError, connect, read};
