//! The edge between files and the binding core: reading manifests
//! (`load`) and turning them into a typed [`Snapshot`](crate::binding::Snapshot)
//! (`convert`). Everything that can be wrong with input is found here and
//! reported with the document, the object and the field.

pub mod convert;
mod fast;
#[cfg(test)]
mod fast_equivalence;
mod json_scan;
pub mod load;
pub mod migration;
pub mod names;
pub mod reconvert;
mod scheduling;
pub mod snapshots;

pub use convert::{InputError, Typed, to_snapshot, to_snapshot_loaded, to_snapshot_typed};
pub use load::{Document, LoadError, Loaded, load, load_paths, parse_str};
pub use reconvert::{Reconverter, Reuse, Versioned};

/// Anything that stops a plan from being computed.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error(transparent)]
    Load(#[from] LoadError),
    #[error(transparent)]
    Input(#[from] InputError),
}
