//! berth's StorageClass catalog: the volume plugins Kubernetes knows, which access
//! modes each can serve, the provisioner names of the in-tree ones with their known
//! parameters, and public per-node volume attach limits by instance family.
//!
//! The binding core consults this catalog; it never holds plugin facts of its own.
//! Everything here is static data plus small pure look-ups, so the crate has no
//! dependencies and can be used from the CLI, the controller and the tests alike.

mod access;
mod limits;
mod parameters;
mod plugins;

pub use access::{AccessMode, Support};
pub use limits::{InstanceLimit, default_volume_limit, instance_limits};
pub use parameters::{ParameterIssue, ParameterSpec, check_parameters};
pub use plugins::{
    NO_PROVISIONER, Provisioner, VolumePlugin, plugin_by_name, plugin_for_provisioner,
    plugin_for_source_field, plugins, provisioner, provisioners,
};
