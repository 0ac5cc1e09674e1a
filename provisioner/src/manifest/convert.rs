//! Documents → typed [`Snapshot`]: each object is deserialized into its
//! `k8s-openapi` type, then every field the core uses is parsed into a typed
//! value. Errors name the document, the object and the field.
//!
//! Kinds the core does not use are skipped with a warning. When the same
//! object appears twice, the later one wins (as `kubectl apply` would) and a
//! warning says so.

use k8s_openapi::api::apps::v1 as apps;
use k8s_openapi::api::core::v1 as core;
use k8s_openapi::api::storage::v1 as storage;
use k8s_openapi::apimachinery::pkg::apis::meta::v1 as meta;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use thiserror::Error;

use super::load::{At, Document, Entry, Loaded};
use super::names;
use crate::binding::snapshot::*;
use crate::model::{
    AccessMode, AccessModes, BindingMode, ClaimKey, ClaimPhase, LabelRequirement, LabelSelector,
    NodeRequirement, NodeSelector, ObjectKey, ReclaimPolicy, VolumeMode, VolumePhase,
};
use crate::quantity::Quantity;

pub const ANN_BETA_CLASS: &str = "volume.beta.kubernetes.io/storage-class";
pub const ANN_SELECTED_NODE: &str = "volume.kubernetes.io/selected-node";
pub const ANN_PROVISIONED_BY: &str = "pv.kubernetes.io/provisioned-by";
/// Set by the binder on the volumes (and claims) it chose; upstream only
/// checks that it is present.
pub const ANN_BOUND_BY_CONTROLLER: &str = "pv.kubernetes.io/bound-by-controller";
/// Set by the binder on a claim it finished binding.
pub const ANN_BIND_COMPLETED: &str = "pv.kubernetes.io/bind-completed";
pub const ANN_DEFAULT_CLASS: &str = "storageclass.kubernetes.io/is-default-class";
pub const ANN_BETA_DEFAULT_CLASS: &str = "storageclass.beta.kubernetes.io/is-default-class";

/// A bad value in an object, with everything needed to find it.
#[derive(Debug, Clone, Error)]
#[error("{place} ({kind} {name}): {field}: {message}")]
pub struct InputError {
    pub place: String,
    pub kind: String,
    pub name: String,
    pub field: String,
    pub message: String,
}

/// Error context for one document.
pub(super) struct Ctx<'a> {
    at: At<'a>,
    kind: &'a str,
    name: String,
}

impl Ctx<'_> {
    pub(super) fn err(&self, field: impl Into<String>, message: impl Into<String>) -> InputError {
        InputError {
            place: self.at.place(),
            kind: self.kind.to_string(),
            name: self.name.clone(),
            field: field.into(),
            message: message.into(),
        }
    }

    pub(super) fn quantity(&self, field: &str, q: &str) -> Result<Quantity, InputError> {
        Quantity::parse(q).map_err(|e| self.err(field, e.to_string()))
    }

    fn origin(&self) -> Origin {
        Origin {
            source: self.at.source.to_string(),
            document: self.at.index,
        }
    }
}

/// Keys whose maps hold quantities: YAML lets authors write `pods: 4`, which
/// the API accepts, so bare numbers there are turned into strings first.
const QUANTITY_MAPS: &[&str] = &[
    "capacity",
    "requests",
    "limits",
    "hard",
    "used",
    "min",
    "max",
    "default",
    "defaultRequest",
    "maxLimitRequestRatio",
    "allocatable",
];

fn stringify_quantities(v: &mut Value, in_quantity_map: bool) {
    match v {
        Value::Object(map) => {
            for (k, child) in map.iter_mut() {
                if in_quantity_map && let Value::Number(n) = child {
                    *child = Value::String(n.to_string());
                    continue;
                }
                stringify_quantities(child, QUANTITY_MAPS.contains(&k.as_str()));
            }
        }
        Value::Array(items) => items
            .iter_mut()
            .for_each(|i| stringify_quantities(i, false)),
        _ => {}
    }
}

/// Deserializes into the API type; fields the type does not know (usually
/// mis-indented YAML, which `kubectl` rejects under strict validation) are
/// reported as warnings.
fn decode<T: DeserializeOwned + Serialize>(
    ctx: &Ctx<'_>,
    mut value: Value,
    warnings: &mut Vec<String>,
) -> Result<T, InputError> {
    if ctx.kind != "CSINode" {
        stringify_quantities(&mut value, false);
    }
    let typed: T = serde_path_to_error::deserialize(&value).map_err(|e| {
        let path = e.path().to_string();
        ctx.err(
            if path == "." { "<root>".into() } else { path },
            e.into_inner().to_string(),
        )
    })?;
    if let Ok(round_trip) = serde_json::to_value(&typed) {
        let mut unknown = Vec::new();
        unknown_fields(&value, &round_trip, "", &mut unknown);
        for field in unknown {
            warnings.push(format!(
                "{} ({} {}): unknown field {field:?} is ignored (kubectl's strict validation rejects it)",
                ctx.at.place(),
                ctx.kind,
                ctx.name
            ));
        }
    }
    Ok(typed)
}

/// Deserializes the fields berth reads of a kind k8s-openapi does not have
/// (the snapshot CRDs); other fields are not berth's to judge.
fn decode_known<T: DeserializeOwned>(ctx: &Ctx<'_>, value: Value) -> Result<T, InputError> {
    serde_path_to_error::deserialize(&value).map_err(|e| {
        let path = e.path().to_string();
        ctx.err(
            if path == "." { "<root>".into() } else { path },
            e.into_inner().to_string(),
        )
    })
}

/// Paths present (and non-null) in `input` but absent from `known`.
fn unknown_fields(input: &Value, known: &Value, path: &str, out: &mut Vec<String>) {
    match (input, known) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in a {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                match b.get(k) {
                    Some(kv) => unknown_fields(v, kv, &p, out),
                    None if !v.is_null() => out.push(p),
                    None => {}
                }
            }
        }
        (Value::Array(a), Value::Array(b)) => {
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                unknown_fields(x, y, &format!("{path}[{i}]"), out);
            }
        }
        _ => {}
    }
}

/// Builds the snapshot; documents are in creation order.
pub fn to_snapshot(docs: Vec<Document>) -> Result<Snapshot, InputError> {
    let mut b = Builder::default();
    for (seq, mut doc) in docs.into_iter().enumerate() {
        let c = convert_document(seq, &mut doc)?;
        b.insert(doc.at(), c);
    }
    Ok(b.finish())
}

/// Builds the snapshot of `docs` (e.g. a cluster's objects) followed by
/// what [`load`](super::load::load) read, in that order; the same snapshot,
/// warnings and errors as [`to_snapshot`] of all of them as documents.
///
/// Objects are converted on up to `threads` threads (contiguous runs of the
/// input each) and gathered in input order, so the first error in input
/// order is the one reported. Each object's text or tree is dropped as soon
/// as it is converted.
pub fn to_snapshot_loaded(
    docs: Vec<Document>,
    loaded: Loaded,
    threads: usize,
) -> Result<Snapshot, InputError> {
    // Small inputs are not worth a thread.
    build(docs, loaded, threads, 2_000)
}

/// [`to_snapshot_loaded`] with at least `per_thread` objects per thread.
pub(super) fn build(
    docs: Vec<Document>,
    loaded: Loaded,
    threads: usize,
    per_thread: usize,
) -> Result<Snapshot, InputError> {
    let mut b = Builder::default();
    let first = docs.len();
    for (seq, mut doc) in docs.into_iter().enumerate() {
        let c = convert_document(seq, &mut doc)?;
        b.insert(doc.at(), c);
    }
    let Loaded {
        sources,
        mut entries,
    } = loaded;
    let sources = &sources;
    let threads = threads.clamp(1, entries.len() / per_thread.max(1) + 1);
    let mut runs = Vec::with_capacity(threads);
    let per = entries.len().div_ceil(threads);
    while entries.len() > per {
        runs.push(entries.split_off(entries.len() - per));
    }
    runs.push(entries);
    runs.reverse();
    if threads == 1 {
        // Straight into the snapshot: nothing converted waits in a buffer.
        for (seq, mut entry) in runs.into_iter().flatten().enumerate() {
            let c = convert_entry(sources, first + seq, &mut entry)?;
            b.insert(entry_at(sources, &entry), c);
        }
        return Ok(b.finish());
    }
    let converted: Vec<Vec<Result<(Entry, Converted), InputError>>> = {
        let mut start = first;
        std::thread::scope(|scope| {
            let handles: Vec<_> = runs
                .into_iter()
                .map(|run| {
                    let at = start;
                    start += run.len();
                    scope.spawn(move || convert_run(sources, at, run))
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
                .collect()
        })
    };
    for result in converted.into_iter().flatten() {
        let (entry, c) = result?;
        b.insert(entry_at(sources, &entry), c);
    }
    Ok(b.finish())
}

/// Converts `run` (whose first entry is object number `seq`), stopping at
/// the first error. Entries come back emptied of their tree, for `at`.
fn convert_run(
    sources: &[super::load::Source],
    mut seq: usize,
    run: Vec<Entry>,
) -> Vec<Result<(Entry, Converted), InputError>> {
    let mut out = Vec::with_capacity(run.len());
    for mut entry in run {
        let result = convert_entry(sources, seq, &mut entry);
        let failed = result.is_err();
        out.push(result.map(|c| (entry, c)));
        if failed {
            break;
        }
        seq += 1;
    }
    out
}

/// Converts one entry (object number `seq`); a tree is taken out of it.
fn convert_entry(
    sources: &[super::load::Source],
    seq: usize,
    entry: &mut Entry,
) -> Result<Converted, InputError> {
    match entry {
        Entry::Parsed(doc) => convert_document(seq, doc),
        Entry::Json(j) => {
            let s = &sources[j.source];
            let at = At {
                source: &s.name,
                index: j.index,
                item: j.item,
            };
            convert_json(seq, at, &s.text[j.span.clone()], j.has_number)
        }
    }
}

fn entry_at<'a>(sources: &'a [super::load::Source], entry: &'a Entry) -> At<'a> {
    match entry {
        Entry::Parsed(doc) => doc.at(),
        Entry::Json(j) => At {
            source: &sources[j.source].name,
            index: j.index,
            item: j.item,
        },
    }
}

/// One input object converted: its warnings, and the object unless its
/// kind is one berth does not use.
pub(super) struct Converted {
    pub(super) warnings: Vec<String>,
    pub(super) object: Option<Object>,
}

/// The kinds the converter reads.
const KNOWN: &[&str] = &[
    "StorageClass",
    "PersistentVolume",
    "PersistentVolumeClaim",
    "Node",
    "CSINode",
    "CSIDriver",
    "CSIStorageCapacity",
    "Pod",
    "StatefulSet",
    "Namespace",
    "LimitRange",
    "ResourceQuota",
    "VolumeSnapshot",
    "VolumeSnapshotContent",
];

/// An object as its API type. Each lives only from decoding (or cloning
/// out of a watch cache) to conversion, so its variants are not boxed.
#[allow(clippy::large_enum_variant)]
#[derive(Clone)]
pub enum Typed {
    StorageClass(storage::StorageClass),
    PersistentVolume(core::PersistentVolume),
    PersistentVolumeClaim(core::PersistentVolumeClaim),
    Node(core::Node),
    CsiNode(storage::CSINode),
    CsiDriver(storage::CSIDriver),
    CsiStorageCapacity(storage::CSIStorageCapacity),
    Pod(core::Pod),
    StatefulSet(apps::StatefulSet),
    Namespace(core::Namespace),
    LimitRange(core::LimitRange),
    ResourceQuota(core::ResourceQuota),
    VolumeSnapshot(super::snapshots::VolumeSnapshotDoc),
    VolumeSnapshotContent(super::snapshots::SnapshotContentDoc),
}

impl Typed {
    /// The kind the API server calls it.
    pub fn kind(&self) -> &'static str {
        match self {
            Typed::StorageClass(_) => "StorageClass",
            Typed::PersistentVolume(_) => "PersistentVolume",
            Typed::PersistentVolumeClaim(_) => "PersistentVolumeClaim",
            Typed::Node(_) => "Node",
            Typed::CsiNode(_) => "CSINode",
            Typed::CsiDriver(_) => "CSIDriver",
            Typed::CsiStorageCapacity(_) => "CSIStorageCapacity",
            Typed::Pod(_) => "Pod",
            Typed::StatefulSet(_) => "StatefulSet",
            Typed::Namespace(_) => "Namespace",
            Typed::LimitRange(_) => "LimitRange",
            Typed::ResourceQuota(_) => "ResourceQuota",
            Typed::VolumeSnapshot(_) => "VolumeSnapshot",
            Typed::VolumeSnapshotContent(_) => "VolumeSnapshotContent",
        }
    }

    pub fn metadata(&self) -> &meta::ObjectMeta {
        match self {
            Typed::StorageClass(o) => &o.metadata,
            Typed::PersistentVolume(o) => &o.metadata,
            Typed::PersistentVolumeClaim(o) => &o.metadata,
            Typed::Node(o) => &o.metadata,
            Typed::CsiNode(o) => &o.metadata,
            Typed::CsiDriver(o) => &o.metadata,
            Typed::CsiStorageCapacity(o) => &o.metadata,
            Typed::Pod(o) => &o.metadata,
            Typed::StatefulSet(o) => &o.metadata,
            Typed::Namespace(o) => &o.metadata,
            Typed::LimitRange(o) => &o.metadata,
            Typed::ResourceQuota(o) => &o.metadata,
            Typed::VolumeSnapshot(o) => &o.metadata,
            Typed::VolumeSnapshotContent(o) => &o.metadata,
        }
    }
}

/// An object as the snapshot holds it.
pub(super) enum Object {
    Class(StorageClass),
    Volume(Volume),
    Claim(Claim),
    Node(Node),
    CsiNode(CsiNode),
    CsiDriver(CsiDriver),
    Capacity(StorageCapacity),
    Pod(Pod),
    StatefulSet(StatefulSet),
    Namespace(Namespace),
    LimitRange(LimitRange),
    Quota(ResourceQuota),
    Snapshot(VolumeSnapshot),
    SnapshotContent(SnapshotContent),
}

impl Object {
    /// Gives a converted object the place of object number `seq` at `at`
    /// in another input. These are the only parts of a conversion that come
    /// from where the object is rather than from the object (admission
    /// order and the document an origin names): a field added to the
    /// snapshot that depends on the place must be set here too, or the
    /// binder's reused objects (`reconvert`) would keep an old one.
    pub(super) fn restamp(&mut self, at: At<'_>, seq: usize) {
        let origin = |o: &mut Origin| {
            if o.source != at.source {
                o.source = at.source.to_string();
            }
            o.document = at.index;
        };
        match self {
            Object::Class(c) => origin(&mut c.origin),
            Object::Volume(v) => origin(&mut v.origin),
            Object::Claim(c) => {
                origin(&mut c.origin);
                c.seq = seq;
            }
            Object::Pod(p) => {
                origin(&mut p.origin);
                p.seq = seq;
            }
            Object::StatefulSet(st) => {
                origin(&mut st.origin);
                st.seq = seq;
            }
            Object::Namespace(n) => n.seq = seq,
            Object::LimitRange(l) => l.seq = seq,
            Object::Quota(q) => q.seq = seq,
            Object::Node(_)
            | Object::CsiNode(_)
            | Object::CsiDriver(_)
            | Object::Capacity(_)
            | Object::Snapshot(_)
            | Object::SnapshotContent(_) => {}
        }
    }
}

/// A JSON object from its text: straight into its API type when the fast
/// path takes it (see `fast`), else as [`convert_document`] does.
fn convert_json(
    seq: usize,
    at: At<'_>,
    text: &str,
    has_number: bool,
) -> Result<Converted, InputError> {
    let Some((kind, typed)) = super::fast::decode(text, has_number) else {
        let mut doc = Document {
            source: at.source.to_string(),
            index: at.index,
            item: at.item,
            // The loader checked that the text parses as a Value.
            value: serde_json::from_str(text).unwrap_or(Value::Null),
        };
        return convert_document(seq, &mut doc);
    };
    Ok(Converted {
        warnings: Vec::new(),
        object: Some(convert_typed(seq, at, kind, typed)?),
    })
}

/// An object already in its API type: the checks `convert_document` makes
/// on the generic tree (decoding found no problem, so the order of the
/// checks is the same), then the conversion.
pub(super) fn convert_typed(
    seq: usize,
    at: At<'_>,
    kind: &str,
    typed: Typed,
) -> Result<Object, InputError> {
    let m = typed.metadata();
    let ctx = Ctx {
        at,
        kind,
        name: m.name.clone().unwrap_or_default(),
    };
    if ctx.name.is_empty() {
        return Err(ctx.err("metadata.name", "Required value"));
    }
    let labels = m
        .labels
        .iter()
        .flatten()
        .map(|(k, v)| (k.as_str(), v.as_str()));
    if let Some((field, message)) =
        names::check_meta(kind, &ctx.name, m.namespace.as_deref(), labels)
    {
        return Err(ctx.err(field, message));
    }
    convert(&ctx, seq, typed)
}

/// Builds the snapshot of objects already in their API types (a live
/// cluster's, as its watch caches hold them), in the order given (creation
/// order), each named `source: document N` counting from 1: the snapshot
/// [`to_snapshot`] builds from their documents, without encoding any object
/// to JSON. Each object is converted and dropped before the next is taken.
pub fn to_snapshot_typed(
    source: &str,
    objects: impl IntoIterator<Item = Typed>,
) -> Result<Snapshot, InputError> {
    let mut b = Builder::default();
    for (seq, typed) in objects.into_iter().enumerate() {
        let at = At {
            source,
            index: seq + 1,
            item: None,
        };
        let object = convert_typed(seq, at, typed.kind(), typed)?;
        b.insert(
            at,
            Converted {
                warnings: Vec::new(),
                object: Some(object),
            },
        );
    }
    Ok(b.finish())
}

/// A document from its generic tree: the checks on kind, name, namespace
/// and labels, decoding into the API type (unknown fields are warnings),
/// then the conversion. The tree is taken out of `doc`.
fn convert_document(seq: usize, doc: &mut Document) -> Result<Converted, InputError> {
    let value = std::mem::take(&mut doc.value);
    let doc = &*doc;
    let kind = value
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let name = value
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let ctx = Ctx {
        at: doc.at(),
        kind: &kind,
        name: name.clone(),
    };
    if kind.is_empty() {
        return Err(ctx.err("kind", "Required value"));
    }
    let mut warnings = Vec::new();
    if !KNOWN.contains(&kind.as_str()) {
        warnings.push(format!(
            "{}: ignoring {kind} {name:?}: berth does not use this kind",
            doc.place()
        ));
        return Ok(Converted {
            warnings,
            object: None,
        });
    }
    if name.is_empty() {
        return Err(ctx.err("metadata.name", "Required value"));
    }
    let labels = value
        .pointer("/metadata/labels")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .filter_map(|(k, v)| Some((k.as_str(), v.as_str()?)));
    let namespace = value.pointer("/metadata/namespace").and_then(Value::as_str);
    if let Some((field, message)) = names::check_meta(&kind, &name, namespace, labels) {
        return Err(ctx.err(field, message));
    }
    let w = &mut warnings;
    let typed = match kind.as_str() {
        "StorageClass" => Typed::StorageClass(decode(&ctx, value, w)?),
        "PersistentVolume" => Typed::PersistentVolume(decode(&ctx, value, w)?),
        "PersistentVolumeClaim" => Typed::PersistentVolumeClaim(decode(&ctx, value, w)?),
        "Node" => Typed::Node(decode(&ctx, value, w)?),
        "CSINode" => Typed::CsiNode(decode(&ctx, value, w)?),
        "CSIDriver" => Typed::CsiDriver(decode(&ctx, value, w)?),
        "CSIStorageCapacity" => {
            let mut value = value;
            // `capacity: 100` is a valid quantity written as a number.
            for field in ["capacity", "maximumVolumeSize"] {
                if let Some(n) = value.get(field).filter(|v| v.is_number()) {
                    let text = n.to_string();
                    value[field] = Value::String(text);
                }
            }
            Typed::CsiStorageCapacity(decode(&ctx, value, w)?)
        }
        "Pod" => Typed::Pod(decode(&ctx, value, w)?),
        "StatefulSet" => Typed::StatefulSet(decode(&ctx, value, w)?),
        "Namespace" => Typed::Namespace(decode(&ctx, value, w)?),
        "LimitRange" => Typed::LimitRange(decode(&ctx, value, w)?),
        "ResourceQuota" => Typed::ResourceQuota(decode(&ctx, value, w)?),
        "VolumeSnapshot" => Typed::VolumeSnapshot(decode_known(&ctx, value)?),
        "VolumeSnapshotContent" => Typed::VolumeSnapshotContent(decode_known(&ctx, value)?),
        _ => unreachable!("every known kind has a type"),
    };
    let object = convert(&ctx, seq, typed)?;
    Ok(Converted {
        warnings,
        object: Some(object),
    })
}

/// Every field the core uses, parsed into typed values.
fn convert(ctx: &Ctx<'_>, seq: usize, typed: Typed) -> Result<Object, InputError> {
    let name = &ctx.name;
    let ns = |m: &meta::ObjectMeta| m.namespace.clone().unwrap_or_else(|| "default".into());
    Ok(match typed {
        Typed::StorageClass(o) => Object::Class(storage_class(ctx, o)?),
        Typed::PersistentVolume(o) => Object::Volume(volume(ctx, o)?),
        Typed::PersistentVolumeClaim(o) => Object::Claim(claim(ctx, o, seq)?),
        Typed::Node(o) => {
            let (unschedulable, taints, allocatable) = super::scheduling::node(ctx, &o)?;
            Object::Node(Node {
                name: name.clone(),
                labels: o.metadata.labels.unwrap_or_default(),
                unschedulable,
                taints,
                allocatable,
            })
        }
        Typed::CsiNode(o) => {
            let mut drivers = Vec::new();
            for (i, d) in o.spec.drivers.into_iter().enumerate() {
                let count = match d.allocatable.and_then(|a| a.count) {
                    Some(c) if c < 0 => {
                        return Err(ctx.err(
                            format!("spec.drivers[{i}].allocatable.count"),
                            format!("Invalid value: {c}: must be greater than or equal to 0"),
                        ));
                    }
                    Some(c) => Some(c as u32),
                    None => None,
                };
                drivers.push((d.name, count));
            }
            Object::CsiNode(CsiNode {
                name: name.clone(),
                drivers,
            })
        }
        Typed::CsiDriver(o) => Object::CsiDriver(CsiDriver {
            name: name.clone(),
            storage_capacity: o.spec.storage_capacity.unwrap_or(false),
        }),
        Typed::CsiStorageCapacity(o) => {
            let key = ObjectKey::new(ns(&o.metadata), name.clone());
            if o.storage_class_name.is_empty() {
                return Err(ctx.err("storageClassName", "Required value"));
            }
            let node_topology = o
                .node_topology
                .as_ref()
                .map(|t| label_selector(ctx, "nodeTopology", t))
                .transpose()?;
            Object::Capacity(StorageCapacity {
                key,
                class: o.storage_class_name,
                node_topology,
                capacity: o
                    .capacity
                    .as_ref()
                    .map(|q| ctx.quantity("capacity", &q.0))
                    .transpose()?,
                maximum_volume_size: o
                    .maximum_volume_size
                    .as_ref()
                    .map(|q| ctx.quantity("maximumVolumeSize", &q.0))
                    .transpose()?,
                volume_bytes: annotation(&o.metadata, ANN_VOLUME_BYTES)
                    .map(|q| ctx.quantity(&format!("metadata.annotations[{ANN_VOLUME_BYTES}]"), q))
                    .transpose()?,
            })
        }
        Typed::Pod(o) => Object::Pod(pod(ctx, o, seq)?),
        Typed::StatefulSet(o) => Object::StatefulSet(stateful_set(ctx, o, seq)?),
        Typed::Namespace(o) => {
            let terminating = o.metadata.deletion_timestamp.is_some()
                || o.status.and_then(|s| s.phase).as_deref() == Some("Terminating");
            Object::Namespace(Namespace {
                name: name.clone(),
                terminating,
                seq,
            })
        }
        Typed::LimitRange(o) => {
            let key = ObjectKey::new(ns(&o.metadata), name.clone());
            let mut claim_limits = Vec::new();
            for (i, item) in o
                .spec
                .map(|s| s.limits)
                .unwrap_or_default()
                .iter()
                .enumerate()
            {
                if !matches!(
                    item.type_.as_str(),
                    "Pod" | "Container" | "PersistentVolumeClaim"
                ) {
                    return Err(ctx.err(
                        format!("spec.limits[{i}].type"),
                        format!("Unsupported value: {:?}: supported values: \"Container\", \"PersistentVolumeClaim\", \"Pod\"", item.type_),
                    ));
                }
                if item.type_ != "PersistentVolumeClaim" {
                    continue;
                }
                let get = |m: &Option<
                    std::collections::BTreeMap<
                        String,
                        k8s_openapi::apimachinery::pkg::api::resource::Quantity,
                    >,
                >,
                           which: &str|
                 -> Result<Option<Quantity>, InputError> {
                    match m.as_ref().and_then(|m| m.get("storage")) {
                        Some(q) => ctx
                            .quantity(&format!("spec.limits[{i}].{which}.storage"), &q.0)
                            .map(Some),
                        None => Ok(None),
                    }
                };
                claim_limits.push((get(&item.min, "min")?, get(&item.max, "max")?));
            }
            Object::LimitRange(LimitRange {
                key,
                claim_limits,
                seq,
            })
        }
        Typed::ResourceQuota(o) => {
            let key = ObjectKey::new(ns(&o.metadata), name.clone());
            let spec = o.spec.unwrap_or_default();
            let scoped = spec.scopes.as_ref().is_some_and(|s| !s.is_empty())
                || spec.scope_selector.is_some();
            let mut hard = Vec::new();
            for (k, q) in spec.hard.unwrap_or_default() {
                let Some(res) = quota_resource(&k) else {
                    continue;
                };
                hard.push((res, ctx.quantity(&format!("spec.hard[{k}]"), &q.0)?));
            }
            Object::Quota(ResourceQuota {
                key,
                hard,
                scoped,
                seq,
            })
        }
        Typed::VolumeSnapshot(o) => {
            let key = ObjectKey::new(ns(&o.metadata), name.clone());
            let status = o.status.unwrap_or_default();
            Object::Snapshot(VolumeSnapshot {
                key,
                uid: o.metadata.uid.clone().filter(|u| !u.is_empty()),
                deleting: o.metadata.deletion_timestamp.is_some(),
                protected: o
                    .metadata
                    .finalizers
                    .iter()
                    .flatten()
                    .any(|f| f == super::snapshots::SOURCE_PROTECTION_FINALIZER),
                content: status.bound_volume_snapshot_content_name,
                ready: status.ready_to_use.unwrap_or(false),
                restore_size: status
                    .restore_size
                    .as_ref()
                    .map(|q| ctx.quantity("status.restoreSize", &q.text()))
                    .transpose()?,
            })
        }
        Typed::VolumeSnapshotContent(o) => {
            let spec = o.spec;
            if spec.driver.is_empty() {
                return Err(ctx.err("spec.driver", "Required value"));
            }
            let r = spec.volume_snapshot_ref;
            Object::SnapshotContent(SnapshotContent {
                name: name.clone(),
                driver: spec.driver,
                snapshot: match (r.namespace, r.name) {
                    (Some(ns), Some(n)) => Some((ObjectKey::new(ns, n), r.uid)),
                    _ => None,
                },
                handle: o.status.and_then(|s| s.snapshot_handle),
                source_volume: spec.source.volume_handle,
            })
        }
    })
}

#[derive(Default)]
pub(super) struct Builder {
    snap: Snapshot,
    seen: Seen,
}

/// The objects added so far, to find a later one of the same identity
/// (kind, namespace, name). Keyed by the kind and a hash of the namespace
/// and name, so no names are copied; objects whose hash another identity
/// of their kind already holds are kept by name in `collided`.
#[derive(Default)]
struct Seen {
    by_hash: rustc_hash::FxHashMap<(u8, u64), usize>,
    collided: std::collections::HashMap<(u8, String, String), usize>,
}

/// Replaces an earlier object of the same identity, or appends. `id`
/// gives an object's namespace (empty when cluster-scoped) and name.
#[allow(clippy::too_many_arguments)]
fn upsert<T>(
    list: &mut Vec<T>,
    seen: &mut Seen,
    warnings: &mut Vec<String>,
    (kind_no, kind): (u8, &str),
    id: fn(&T) -> (&str, &str),
    at: At<'_>,
    item: T,
) {
    let (ns, name) = id(&item);
    let key = (kind_no, identity_hash(ns, name));
    let earlier = match seen.by_hash.get(&key) {
        Some(&i) if id(&list[i]) == (ns, name) => Some(i),
        Some(_) => {
            let exact = (kind_no, ns.to_string(), name.to_string());
            match seen.collided.get(&exact) {
                Some(&i) => Some(i),
                None => {
                    seen.collided.insert(exact, list.len());
                    None
                }
            }
        }
        None => {
            seen.by_hash.insert(key, list.len());
            None
        }
    };
    match earlier {
        Some(i) => {
            warnings.push(format!(
                "{}: {kind} {} appears again; the later definition wins",
                at.place(),
                if ns.is_empty() {
                    name.to_string()
                } else {
                    format!("{ns}/{name}")
                }
            ));
            list[i] = item;
        }
        None => list.push(item),
    }
}

fn identity_hash(ns: &str, name: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = rustc_hash::FxHasher::default();
    (ns, name).hash(&mut h);
    h.finish()
}

impl Builder {
    /// Adds one converted object (and its warnings) at its place in the
    /// input.
    pub(super) fn insert(&mut self, at: At<'_>, c: Converted) {
        let s = &mut self.snap;
        s.warnings.extend(c.warnings);
        let Some(object) = c.object else {
            return;
        };
        let seen = &mut self.seen;
        let w = &mut s.warnings;
        match object {
            Object::Class(c) => upsert(
                &mut s.classes,
                seen,
                w,
                (0, "StorageClass"),
                |c| ("", &c.name),
                at,
                c,
            ),
            Object::Volume(v) => upsert(
                &mut s.volumes,
                seen,
                w,
                (1, "PersistentVolume"),
                |v| ("", &v.name),
                at,
                v,
            ),
            Object::Claim(c) => upsert(
                &mut s.claims,
                seen,
                w,
                (2, "PersistentVolumeClaim"),
                |c| (&c.key.namespace, &c.key.name),
                at,
                c,
            ),
            Object::Node(n) => upsert(&mut s.nodes, seen, w, (3, "Node"), |n| ("", &n.name), at, n),
            Object::CsiNode(n) => upsert(
                &mut s.csi_nodes,
                seen,
                w,
                (4, "CSINode"),
                |n| ("", &n.name),
                at,
                n,
            ),
            Object::CsiDriver(d) => upsert(
                &mut s.csi_drivers,
                seen,
                w,
                (5, "CSIDriver"),
                |d| ("", &d.name),
                at,
                d,
            ),
            Object::Capacity(c) => upsert(
                &mut s.capacities,
                seen,
                w,
                (6, "CSIStorageCapacity"),
                |c| (&c.key.namespace, &c.key.name),
                at,
                c,
            ),
            Object::Pod(p) => upsert(
                &mut s.pods,
                seen,
                w,
                (7, "Pod"),
                |p| (&p.key.namespace, &p.key.name),
                at,
                p,
            ),
            Object::StatefulSet(st) => upsert(
                &mut s.stateful_sets,
                seen,
                w,
                (8, "StatefulSet"),
                |st| (&st.key.namespace, &st.key.name),
                at,
                st,
            ),
            Object::Namespace(n) => upsert(
                &mut s.namespaces,
                seen,
                w,
                (9, "Namespace"),
                |n| ("", &n.name),
                at,
                n,
            ),
            Object::LimitRange(l) => upsert(
                &mut s.limit_ranges,
                seen,
                w,
                (10, "LimitRange"),
                |l| (&l.key.namespace, &l.key.name),
                at,
                l,
            ),
            Object::Quota(q) => upsert(
                &mut s.quotas,
                seen,
                w,
                (11, "ResourceQuota"),
                |q| (&q.key.namespace, &q.key.name),
                at,
                q,
            ),
            Object::Snapshot(v) => upsert(
                &mut s.snapshots,
                seen,
                w,
                (12, "VolumeSnapshot"),
                |v| (&v.key.namespace, &v.key.name),
                at,
                v,
            ),
            Object::SnapshotContent(c) => upsert(
                &mut s.snapshot_contents,
                seen,
                w,
                (13, "VolumeSnapshotContent"),
                |c| ("", &c.name),
                at,
                c,
            ),
        }
    }

    pub(super) fn finish(self) -> Snapshot {
        self.snap
    }
}

fn quota_resource(key: &str) -> Option<QuotaResource> {
    match key {
        "requests.storage" => Some(QuotaResource::RequestsStorage),
        "persistentvolumeclaims" | "count/persistentvolumeclaims" => Some(QuotaResource::Claims),
        _ => {
            let (class, res) = key.split_once(".storageclass.storage.k8s.io/")?;
            match res {
                "requests.storage" => Some(QuotaResource::ClassRequestsStorage(class.to_string())),
                "persistentvolumeclaims" => Some(QuotaResource::ClassClaims(class.to_string())),
                _ => None,
            }
        }
    }
}

fn created(m: &meta::ObjectMeta) -> Created {
    m.creation_timestamp.as_ref().map(|t| t.0.as_second())
}

fn annotation<'a>(m: &'a meta::ObjectMeta, key: &str) -> Option<&'a str> {
    m.annotations.as_ref()?.get(key).map(String::as_str)
}

fn access_modes(ctx: &Ctx<'_>, field: &str, modes: &[String]) -> Result<AccessModes, InputError> {
    let mut set = AccessModes::EMPTY;
    for (i, m) in modes.iter().enumerate() {
        match AccessMode::parse(m) {
            Some(mode) => set.insert(mode),
            None => {
                return Err(ctx.err(
                    format!("{field}[{i}]"),
                    format!("Unsupported value: {m:?}: supported values: \"ReadOnlyMany\", \"ReadWriteMany\", \"ReadWriteOnce\", \"ReadWriteOncePod\""),
                ));
            }
        }
    }
    Ok(set)
}

fn volume_mode(ctx: &Ctx<'_>, field: &str, m: Option<&str>) -> Result<VolumeMode, InputError> {
    match m {
        None | Some("Filesystem") => Ok(VolumeMode::Filesystem),
        Some("Block") => Ok(VolumeMode::Block),
        Some(other) => Err(ctx.err(
            field,
            format!("Unsupported value: {other:?}: supported values: \"Block\", \"Filesystem\""),
        )),
    }
}

fn reclaim_policy(p: Option<&str>, default: ReclaimPolicy) -> ReclaimPolicy {
    match p {
        None => default,
        Some("Retain") => ReclaimPolicy::Retain,
        Some("Delete") => ReclaimPolicy::Delete,
        Some("Recycle") => ReclaimPolicy::Recycle,
        Some(other) => ReclaimPolicy::Unknown(other.to_string()),
    }
}

fn label_selector(
    ctx: &Ctx<'_>,
    field: &str,
    s: &meta::LabelSelector,
) -> Result<LabelSelector, InputError> {
    let mut requirements = Vec::new();
    for (k, v) in s.match_labels.iter().flatten() {
        requirements.push(LabelRequirement::In(k.clone(), vec![v.clone()]));
    }
    for (i, e) in s.match_expressions.iter().flatten().enumerate() {
        let values = e.values.clone().unwrap_or_default();
        let f = format!("{field}.matchExpressions[{i}]");
        let r = match e.operator.as_str() {
            "In" | "NotIn" if values.is_empty() => {
                return Err(ctx.err(
                    format!("{f}.values"),
                    "Required value: must be specified when `operator` is 'In' or 'NotIn'",
                ));
            }
            "In" => LabelRequirement::In(e.key.clone(), values),
            "NotIn" => LabelRequirement::NotIn(e.key.clone(), values),
            "Exists" | "DoesNotExist" if !values.is_empty() => {
                return Err(ctx.err(
                    format!("{f}.values"),
                    "Forbidden: may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
                ));
            }
            "Exists" => LabelRequirement::Exists(e.key.clone()),
            "DoesNotExist" => LabelRequirement::DoesNotExist(e.key.clone()),
            other => {
                return Err(ctx.err(
                    format!("{f}.operator"),
                    format!("Invalid value: {other:?}: not a valid selector operator (In, NotIn, Exists, DoesNotExist)"),
                ));
            }
        };
        requirements.push(r);
    }
    Ok(LabelSelector { requirements })
}

pub(super) fn node_selector(
    ctx: &Ctx<'_>,
    field: &str,
    s: &core::NodeSelector,
) -> Result<NodeSelector, InputError> {
    let mut terms = Vec::new();
    for (t, term) in s.node_selector_terms.iter().enumerate() {
        let mut reqs = Vec::new();
        for (i, e) in term.match_expressions.iter().flatten().enumerate() {
            let f = format!("{field}.nodeSelectorTerms[{t}].matchExpressions[{i}]");
            let values = e.values.clone().unwrap_or_default();
            let int = |v: &[String]| -> Result<i64, InputError> {
                match v {
                    [one] => one.parse::<i64>().map_err(|_| {
                        ctx.err(format!("{f}.values[0]"), format!("Invalid value: {one:?}: must be an integer"))
                    }),
                    _ => Err(ctx.err(format!("{f}.values"), "Required value: must be specified single value when `operator` is 'Lt' or 'Gt'")),
                }
            };
            reqs.push(match e.operator.as_str() {
                "In" => NodeRequirement::Label(LabelRequirement::In(e.key.clone(), values)),
                "NotIn" => NodeRequirement::Label(LabelRequirement::NotIn(e.key.clone(), values)),
                "Exists" => NodeRequirement::Label(LabelRequirement::Exists(e.key.clone())),
                "DoesNotExist" => {
                    NodeRequirement::Label(LabelRequirement::DoesNotExist(e.key.clone()))
                }
                "Gt" => NodeRequirement::Gt(e.key.clone(), int(&values)?),
                "Lt" => NodeRequirement::Lt(e.key.clone(), int(&values)?),
                other => {
                    return Err(ctx.err(
                        format!("{f}.operator"),
                        format!("Unsupported value: {other:?}: supported values: In, NotIn, Exists, DoesNotExist, Gt, Lt"),
                    ));
                }
            });
        }
        for (i, e) in term.match_fields.iter().flatten().enumerate() {
            let f = format!("{field}.nodeSelectorTerms[{t}].matchFields[{i}]");
            if e.key != "metadata.name" {
                return Err(ctx.err(
                    format!("{f}.key"),
                    format!(
                        "Invalid value: {:?}: only metadata.name is supported",
                        e.key
                    ),
                ));
            }
            let values = e.values.clone().unwrap_or_default();
            reqs.push(match e.operator.as_str() {
                "In" => NodeRequirement::NameIn(values),
                "NotIn" => NodeRequirement::NameNotIn(values),
                other => {
                    return Err(ctx.err(
                        format!("{f}.operator"),
                        format!("Unsupported value: {other:?}: supported values: In, NotIn"),
                    ));
                }
            });
        }
        terms.push(reqs);
    }
    Ok(NodeSelector { terms })
}

fn storage_class(ctx: &Ctx<'_>, o: storage::StorageClass) -> Result<StorageClass, InputError> {
    let m = &o.metadata;
    let is_default = annotation(m, ANN_DEFAULT_CLASS) == Some("true")
        || annotation(m, ANN_BETA_DEFAULT_CLASS) == Some("true");
    let binding_mode = match o.volume_binding_mode.as_deref() {
        None | Some("Immediate") => BindingMode::Immediate,
        Some("WaitForFirstConsumer") => BindingMode::WaitForFirstConsumer,
        Some(other) => {
            return Err(ctx.err(
                "volumeBindingMode",
                format!("Unsupported value: {other:?}: supported values: \"Immediate\", \"WaitForFirstConsumer\""),
            ));
        }
    };
    let allowed_topologies = o.allowed_topologies.as_ref().map(|terms| NodeSelector {
        terms: terms
            .iter()
            .map(|t| {
                t.match_label_expressions
                    .iter()
                    .flatten()
                    .map(|e| {
                        NodeRequirement::Label(LabelRequirement::In(
                            e.key.clone(),
                            e.values.clone(),
                        ))
                    })
                    .collect()
            })
            .collect(),
    });
    Ok(StorageClass {
        name: ctx.name.clone(),
        provisioner: o.provisioner,
        parameters: o.parameters.unwrap_or_default().into_iter().collect(),
        reclaim_policy: reclaim_policy(o.reclaim_policy.as_deref(), ReclaimPolicy::Delete),
        binding_mode,
        is_default,
        created: created(m),
        allowed_topologies,
        origin: ctx.origin(),
    })
}

/// Which source field a PV uses, and the CSI driver that serves it.
fn volume_source(spec: &core::PersistentVolumeSpec, labels: &crate::model::Labels) -> VolumeSource {
    if let Some(csi) = &spec.csi {
        return VolumeSource {
            field: Some("csi".into()),
            csi_driver: Some(csi.driver.clone()),
            csi_handle: Some(csi.volume_handle.clone()),
            migrated: None,
            provisioned_by: None,
        };
    }
    let set: &[(&str, bool)] = &[
        (
            "awsElasticBlockStore",
            spec.aws_elastic_block_store.is_some(),
        ),
        ("azureDisk", spec.azure_disk.is_some()),
        ("azureFile", spec.azure_file.is_some()),
        ("cephfs", spec.cephfs.is_some()),
        ("cinder", spec.cinder.is_some()),
        ("fc", spec.fc.is_some()),
        ("flexVolume", spec.flex_volume.is_some()),
        ("flocker", spec.flocker.is_some()),
        ("gcePersistentDisk", spec.gce_persistent_disk.is_some()),
        ("glusterfs", spec.glusterfs.is_some()),
        ("hostPath", spec.host_path.is_some()),
        ("iscsi", spec.iscsi.is_some()),
        ("local", spec.local.is_some()),
        ("nfs", spec.nfs.is_some()),
        (
            "photonPersistentDisk",
            spec.photon_persistent_disk.is_some(),
        ),
        ("portworxVolume", spec.portworx_volume.is_some()),
        ("quobyte", spec.quobyte.is_some()),
        ("rbd", spec.rbd.is_some()),
        ("scaleIO", spec.scale_io.is_some()),
        ("storageos", spec.storageos.is_some()),
        ("vsphereVolume", spec.vsphere_volume.is_some()),
    ];
    let field = set.iter().find(|(_, on)| *on).map(|(f, _)| f.to_string());
    let csi_driver = field
        .as_deref()
        .and_then(storage_classes::plugin_for_source_field)
        .and_then(|p| p.csi_migration_driver)
        .map(str::to_string);
    VolumeSource {
        field,
        csi_driver,
        csi_handle: None,
        migrated: super::migration::pv_source(spec, labels),
        provisioned_by: None,
    }
}

fn volume(ctx: &Ctx<'_>, o: core::PersistentVolume) -> Result<Volume, InputError> {
    let m = &o.metadata;
    let spec = o.spec.unwrap_or_default();
    let capacity = match spec.capacity.as_ref().and_then(|c| c.get("storage")) {
        Some(q) => Some(ctx.quantity("spec.capacity.storage", &q.0)?),
        None => None,
    };
    let class = annotation(m, ANN_BETA_CLASS)
        .map(str::to_string)
        .or_else(|| spec.storage_class_name.clone())
        .unwrap_or_default();
    // Any claimRef reserves the volume, even one naming no claim (the API
    // accepts `claimRef: {}`); upstream compares name and namespace as
    // written, so a missing namespace matches no claim.
    let claim_ref = spec.claim_ref.as_ref().map(|r| ClaimRef {
        key: ClaimKey::new(
            r.namespace.clone().unwrap_or_default(),
            r.name.clone().unwrap_or_default(),
        ),
        uid: r.uid.clone().filter(|u| !u.is_empty()),
    });
    let phase = match o.status.and_then(|s| s.phase).as_deref() {
        None => None,
        Some("Pending") => Some(VolumePhase::Pending),
        Some("Available") => Some(VolumePhase::Available),
        Some("Bound") => Some(VolumePhase::Bound),
        Some("Released") => Some(VolumePhase::Released),
        Some("Failed") => Some(VolumePhase::Failed),
        Some(other) => {
            return Err(ctx.err("status.phase", format!("Unsupported value: {other:?}")));
        }
    };
    let node_affinity = match spec
        .node_affinity
        .as_ref()
        .and_then(|a| a.required.as_ref())
    {
        Some(sel) => Some(node_selector(ctx, "spec.nodeAffinity.required", sel)?),
        None => None,
    };
    let no_labels = crate::model::Labels::new();
    let mut source = volume_source(&spec, m.labels.as_ref().unwrap_or(&no_labels));
    source.provisioned_by = annotation(m, ANN_PROVISIONED_BY).map(str::to_string);
    let bound_by_controller = annotation(m, ANN_BOUND_BY_CONTROLLER).is_some();
    let deleting = m.deletion_timestamp.is_some();
    Ok(Volume {
        name: ctx.name.clone(),
        capacity,
        access_modes: access_modes(
            ctx,
            "spec.accessModes",
            spec.access_modes.as_deref().unwrap_or(&[]),
        )?,
        volume_mode: volume_mode(ctx, "spec.volumeMode", spec.volume_mode.as_deref())?,
        class,
        attributes_class: spec
            .volume_attributes_class_name
            .clone()
            .unwrap_or_default(),
        labels: o.metadata.labels.unwrap_or_default(),
        claim_ref,
        bound_by_controller,
        phase,
        // The API defaults a PV's policy to Retain.
        reclaim_policy: reclaim_policy(
            spec.persistent_volume_reclaim_policy.as_deref(),
            ReclaimPolicy::Retain,
        ),
        deleting,
        node_affinity,
        source,
        origin: ctx.origin(),
    })
}

/// The typed parts of a claim spec, shared by claims and StatefulSet templates.
struct ClaimSpecParts {
    class: ClaimClass,
    request: Option<Quantity>,
    access_modes: AccessModes,
    volume_mode: VolumeMode,
    selector: Option<LabelSelector>,
    attributes_class: String,
}

fn claim_spec(
    ctx: &Ctx<'_>,
    prefix: &str,
    m: &meta::ObjectMeta,
    spec: &core::PersistentVolumeClaimSpec,
) -> Result<ClaimSpecParts, InputError> {
    // The beta annotation wins over the field, as upstream's helpers read it.
    let class = match (annotation(m, ANN_BETA_CLASS), &spec.storage_class_name) {
        (Some(a), _) => ClaimClass::Named(a.to_string()),
        (None, Some(n)) => ClaimClass::Named(n.clone()),
        (None, None) => ClaimClass::Unset,
    };
    let request = match spec
        .resources
        .as_ref()
        .and_then(|r| r.requests.as_ref())
        .and_then(|r| r.get("storage"))
    {
        Some(q) => Some(ctx.quantity(&format!("{prefix}.resources.requests.storage"), &q.0)?),
        None => None,
    };
    let selector = match &spec.selector {
        Some(s) => Some(label_selector(ctx, &format!("{prefix}.selector"), s)?),
        None => None,
    };
    Ok(ClaimSpecParts {
        class,
        request,
        access_modes: access_modes(
            ctx,
            &format!("{prefix}.accessModes"),
            spec.access_modes.as_deref().unwrap_or(&[]),
        )?,
        volume_mode: volume_mode(
            ctx,
            &format!("{prefix}.volumeMode"),
            spec.volume_mode.as_deref(),
        )?,
        selector,
        attributes_class: spec
            .volume_attributes_class_name
            .clone()
            .unwrap_or_default(),
    })
}

fn claim(ctx: &Ctx<'_>, o: core::PersistentVolumeClaim, seq: usize) -> Result<Claim, InputError> {
    let m = &o.metadata;
    let spec = o.spec.unwrap_or_default();
    let parts = claim_spec(ctx, "spec", m, &spec)?;
    Ok(Claim {
        key: ClaimKey::new(
            m.namespace.clone().unwrap_or_else(|| "default".into()),
            ctx.name.clone(),
        ),
        uid: m.uid.clone().filter(|u| !u.is_empty()),
        class: parts.class,
        request: parts.request,
        access_modes: parts.access_modes,
        volume_mode: parts.volume_mode,
        selector: parts.selector,
        attributes_class: spec
            .volume_attributes_class_name
            .clone()
            .unwrap_or_default(),
        volume_name: spec.volume_name.clone().filter(|v| !v.is_empty()),
        selected_node: annotation(m, ANN_SELECTED_NODE).map(str::to_string),
        // The API server keeps any phase a client writes; an unknown one is
        // read as Pending, as upstream's binder reads it.
        phase: match o.status.and_then(|s| s.phase).as_deref() {
            Some("Bound") => ClaimPhase::Bound,
            Some("Lost") => ClaimPhase::Lost,
            _ => ClaimPhase::Pending,
        },
        bind_completed: annotation(m, ANN_BIND_COMPLETED).is_some(),
        deleting: m.deletion_timestamp.is_some(),
        data_source: data_source(ctx, &spec)?,
        source: ClaimSource::Manifest,
        origin: ctx.origin(),
        seq,
    })
}

/// `spec.dataSource`, else `spec.dataSourceRef`, as the external-provisioner
/// reads them; what the API server's validation refuses is an input error.
fn data_source(
    ctx: &Ctx<'_>,
    spec: &core::PersistentVolumeClaimSpec,
) -> Result<Option<DataSource>, InputError> {
    use crate::binding::data_source::Problem;
    let plain = spec.data_source.as_ref().map(|d| {
        (
            "spec.dataSource",
            d.api_group.as_deref().unwrap_or(""),
            d.kind.as_str(),
            d.name.as_str(),
            None,
        )
    });
    let by_ref = spec.data_source_ref.as_ref().map(|d| {
        (
            "spec.dataSourceRef",
            d.api_group.as_deref().unwrap_or(""),
            d.kind.as_str(),
            d.name.as_str(),
            d.namespace.as_deref().filter(|n| !n.is_empty()),
        )
    });
    for (field, group, kind, name, _) in plain.iter().chain(by_ref.iter()) {
        if kind.is_empty() {
            return Err(ctx.err(format!("{field}.kind"), "Required value"));
        }
        if name.is_empty() {
            return Err(ctx.err(format!("{field}.name"), "Required value"));
        }
        if group.is_empty() && *kind != "PersistentVolumeClaim" {
            return Err(ctx.err(
                format!("{field}.kind"),
                format!(
                    "Invalid value: {kind:?}: must be 'PersistentVolumeClaim' when referencing the default apiGroup"
                ),
            ));
        }
    }
    if let (Some(a), Some(b)) = (&plain, &by_ref)
        && b.4.is_none()
        && (a.1, a.2, a.3) != (b.1, b.2, b.3)
    {
        return Err(ctx.err("spec.dataSource", "Invalid value: must match dataSourceRef"));
    }
    let Some((_, group, kind, name, namespace)) = plain.or(by_ref) else {
        return Ok(None);
    };
    let refused = |problem| {
        Some(DataSource::Refused {
            kind: kind.to_string(),
            name: name.to_string(),
            problem,
        })
    };
    Ok(if namespace.is_some() {
        refused(Problem::OtherNamespace)
    } else if kind == "PersistentVolumeClaim" {
        Some(DataSource::Claim(name.to_string()))
    } else if kind == "VolumeSnapshot" && group == SNAPSHOT_GROUP {
        Some(DataSource::Snapshot(name.to_string()))
    } else if kind == "VolumeSnapshot" {
        refused(Problem::WrongSnapshotGroup(group.to_string()))
    } else {
        Some(DataSource::Populator {
            group: group.to_string(),
            kind: kind.to_string(),
            name: name.to_string(),
        })
    })
}

/// The API group of VolumeSnapshots and VolumeSnapshotContents.
pub const SNAPSHOT_GROUP: &str = "snapshot.storage.k8s.io";

fn pod(ctx: &Ctx<'_>, o: core::Pod, seq: usize) -> Result<Pod, InputError> {
    let m = &o.metadata;
    let key = ObjectKey::new(
        m.namespace.clone().unwrap_or_else(|| "default".into()),
        ctx.name.clone(),
    );
    let spec = o.spec.unwrap_or_default();
    let mut volumes = Vec::new();
    let mut ephemeral = Vec::new();
    for (i, v) in spec.volumes.iter().flatten().enumerate() {
        if let Some(pvc) = &v.persistent_volume_claim {
            volumes.push(PodVolume::Claim(pvc.claim_name.clone()));
        } else if let Some(e) = &v.ephemeral {
            // Generic ephemeral volumes are claims named <pod>-<volume>.
            let name = format!("{}-{}", key.name, v.name);
            let Some(t) = &e.volume_claim_template else {
                return Err(ctx.err(
                    format!("spec.volumes[{i}].ephemeral.volumeClaimTemplate"),
                    "Required value",
                ));
            };
            let prefix = format!("spec.volumes[{i}].ephemeral.volumeClaimTemplate.spec");
            let meta = t.metadata.clone().unwrap_or_default();
            let parts = claim_spec(ctx, &prefix, &meta, &t.spec)?;
            ephemeral.push(ClaimTemplate {
                name: name.clone(),
                class: parts.class,
                request: parts.request,
                access_modes: parts.access_modes,
                volume_mode: parts.volume_mode,
                selector: parts.selector,
                attributes_class: parts.attributes_class,
            });
            volumes.push(PodVolume::Claim(name));
        } else if let Some(csi) = &v.csi {
            volumes.push(PodVolume::InlineCsi {
                driver: csi.driver.clone(),
                handle: v.name.clone(),
            });
        } else if let Some(migrated) = super::migration::inline_source(v) {
            volumes.push(PodVolume::InlineMigrated(migrated));
        }
    }
    let scheduling = super::scheduling::pod(ctx, "spec", &spec)?;
    let phase = o.status.and_then(|s| s.phase);
    Ok(Pod {
        key,
        node_name: spec.node_name.filter(|n| !n.is_empty()),
        volumes,
        terminated: matches!(phase.as_deref(), Some("Succeeded" | "Failed")),
        ephemeral,
        scheduling,
        origin: ctx.origin(),
        seq,
    })
}

fn stateful_set(
    ctx: &Ctx<'_>,
    o: apps::StatefulSet,
    seq: usize,
) -> Result<StatefulSet, InputError> {
    let m = &o.metadata;
    let key = ObjectKey::new(
        m.namespace.clone().unwrap_or_else(|| "default".into()),
        ctx.name.clone(),
    );
    let spec = o.spec.unwrap_or_default();
    let replicas = match spec.replicas {
        None => 1,
        Some(r) if r < 0 => {
            return Err(ctx.err(
                "spec.replicas",
                format!("Invalid value: {r}: must be greater than or equal to 0"),
            ));
        }
        Some(r) => r as u32,
    };
    let mut templates = Vec::new();
    for (i, t) in spec.volume_claim_templates.iter().flatten().enumerate() {
        let prefix = format!("spec.volumeClaimTemplates[{i}].spec");
        let Some(name) = t.metadata.name.clone() else {
            return Err(ctx.err(
                format!("spec.volumeClaimTemplates[{i}].metadata.name"),
                "Required value",
            ));
        };
        let tspec = t.spec.clone().unwrap_or_default();
        let parts = claim_spec(ctx, &prefix, &t.metadata, &tspec)?;
        templates.push(ClaimTemplate {
            name,
            class: parts.class,
            request: parts.request,
            access_modes: parts.access_modes,
            volume_mode: parts.volume_mode,
            selector: parts.selector,
            attributes_class: parts.attributes_class,
        });
    }
    let pod_spec = spec.template.spec.clone().unwrap_or_default();
    let scheduling = super::scheduling::pod(ctx, "spec.template.spec", &pod_spec)?;
    Ok(StatefulSet {
        key,
        replicas,
        templates,
        scheduling,
        origin: ctx.origin(),
        seq,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ns(name: &str, seq: usize) -> Namespace {
        Namespace {
            name: name.into(),
            terminating: false,
            seq,
        }
    }

    #[test]
    fn duplicates_are_found_when_hashes_collide() {
        let at = At {
            source: "f",
            index: 1,
            item: None,
        };
        let id: fn(&Namespace) -> (&str, &str) = |n| ("", &n.name);
        let mut list = vec![ns("a", 0)];
        let mut seen = Seen::default();
        seen.by_hash.insert((9, identity_hash("", "a")), 0);
        // Pretend "b" hashes like "a".
        seen.by_hash.insert((9, identity_hash("", "b")), 0);
        let mut w = Vec::new();
        let kind = (9, "Namespace");
        upsert(&mut list, &mut seen, &mut w, kind, id, at, ns("b", 1));
        assert_eq!(list.len(), 2);
        assert!(w.is_empty());
        upsert(&mut list, &mut seen, &mut w, kind, id, at, ns("b", 2));
        upsert(&mut list, &mut seen, &mut w, kind, id, at, ns("a", 3));
        let seqs: Vec<_> = list.iter().map(|n| (n.name.as_str(), n.seq)).collect();
        assert_eq!(seqs, [("a", 3), ("b", 2)]);
        assert_eq!(
            w,
            [
                "f: document 1: Namespace b appears again; the later definition wins",
                "f: document 1: Namespace a appears again; the later definition wins"
            ]
        );
    }
}
