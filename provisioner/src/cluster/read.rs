//! Reading a live cluster through a kubeconfig: one LIST per kind the
//! planner uses.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use kube::api::{Api, ListParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config, Resource};
use serde::de::DeserializeOwned;

use super::LiveObjects;
use super::objects::{pod_is_unfinished, pod_uses_volumes};

#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("reading kubeconfig {path}: {message}")]
    Kubeconfig { path: PathBuf, message: String },
    /// `--context` names a context the kubeconfig does not have; the
    /// message lists the ones it has, as a user then wants to pick one.
    #[error("kubeconfig {path}: no context {context:?} (its contexts: {known})")]
    UnknownContext {
        path: PathBuf,
        context: String,
        known: String,
    },
    #[error("Kubernetes client: {0}")]
    Client(String),
    #[error("listing {kind}: {source}")]
    List {
        kind: &'static str,
        #[source]
        source: kube::Error,
    },
}

/// Client configuration from `kubeconfig`, or inferred (`$KUBECONFIG`,
/// `~/.kube/config`, then in-cluster) when absent.
pub async fn config(kubeconfig: Option<&Path>) -> Result<Config, ReadError> {
    config_for(kubeconfig, None).await
}

/// Client configuration as kubectl finds it: `kubeconfig` if given, else
/// `$KUBECONFIG` (its files merged) or `~/.kube/config`, else in-cluster;
/// with `context`, that context of the kubeconfig rather than its
/// current-context. Nothing here talks to the server, so the context's
/// namespace (`Config::default_namespace`) is known before any request.
pub async fn config_for(
    kubeconfig: Option<&Path>,
    context: Option<&str>,
) -> Result<Config, ReadError> {
    let (kc, path) = match (kubeconfig, context) {
        // kube's inference already falls back to in-cluster the way
        // client-go does; only an explicit file or context needs more.
        (None, None) => {
            return Config::infer()
                .await
                .map_err(|e| ReadError::Client(e.to_string()));
        }
        (Some(path), _) => (
            Kubeconfig::read_from(path).map_err(|e| ReadError::Kubeconfig {
                path: path.to_path_buf(),
                message: e.to_string(),
            })?,
            path.to_path_buf(),
        ),
        // A context lives in a kubeconfig: in-cluster has none to pick.
        (None, Some(_)) => {
            let path = default_kubeconfig_path();
            (
                Kubeconfig::read().map_err(|e| ReadError::Kubeconfig {
                    path: path.clone(),
                    message: e.to_string(),
                })?,
                path,
            )
        }
    };
    if let Some(name) = context
        && !kc.contexts.iter().any(|c| c.name == name)
    {
        let known: Vec<&str> = kc.contexts.iter().map(|c| c.name.as_str()).collect();
        return Err(ReadError::UnknownContext {
            path,
            context: name.to_string(),
            known: if known.is_empty() {
                "none".into()
            } else {
                known.join(", ")
            },
        });
    }
    let options = KubeConfigOptions {
        context: context.map(str::to_string),
        ..KubeConfigOptions::default()
    };
    Config::from_custom_kubeconfig(kc, &options)
        .await
        .map_err(|e| ReadError::Kubeconfig {
            path,
            message: e.to_string(),
        })
}

/// What an error about the implicit kubeconfig names: `$KUBECONFIG` as
/// given (it may list several files), else `~/.kube/config`.
fn default_kubeconfig_path() -> PathBuf {
    match std::env::var_os("KUBECONFIG").filter(|v| !v.is_empty()) {
        Some(v) => PathBuf::from(v),
        None => std::env::var_os("HOME")
            .map(PathBuf::from)
            .unwrap_or_default()
            .join(".kube/config"),
    }
}

/// A client for `kubeconfig` (see [`config`]).
pub async fn connect(kubeconfig: Option<&Path>) -> Result<Client, ReadError> {
    let config = config(kubeconfig).await?;
    Client::try_from(config).map_err(|e| ReadError::Client(e.to_string()))
}

async fn list_all<K>(client: &Client, kind: &'static str) -> Result<Vec<Arc<K>>, ReadError>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug,
{
    let api: Api<K> = Api::all(client.clone());
    list(api, kind).await
}

async fn list<K>(api: Api<K>, kind: &'static str) -> Result<Vec<Arc<K>>, ReadError>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug,
{
    // Pages keep one response small on big clusters; the continue token
    // makes the pages one consistent list.
    let mut out = Vec::new();
    let mut params = ListParams::default().limit(500);
    loop {
        let page = api
            .list(&params)
            .await
            .map_err(|source| ReadError::List { kind, source })?;
        out.extend(page.items.into_iter().map(Arc::new));
        match page.metadata.continue_ {
            Some(token) if !token.is_empty() => params = params.continue_token(&token),
            _ => break,
        }
    }
    Ok(out)
}

/// Lists every kind the planner uses. StatefulSets are read only when
/// `with_stateful_sets`: a prediction wants the claims still to come, the
/// binder only the claims that exist. A prediction also schedules pods, so
/// it keeps every unfinished pod (their requests fill nodes); otherwise
/// only pods with volumes matter.
pub async fn read(client: &Client, with_stateful_sets: bool) -> Result<LiveObjects, ReadError> {
    let mut pods = list_all(client, "Pod").await?;
    pods.retain(|p| pod_uses_volumes(p) || (with_stateful_sets && pod_is_unfinished(p)));
    Ok(LiveObjects {
        namespaces: list_all(client, "Namespace").await?,
        classes: list_all(client, "StorageClass").await?,
        nodes: list_all(client, "Node").await?,
        csi_nodes: list_all(client, "CSINode").await?,
        csi_drivers: list_all(client, "CSIDriver").await?,
        capacities: list_all(client, "CSIStorageCapacity").await?,
        volumes: list_all(client, "PersistentVolume").await?,
        claims: list_all(client, "PersistentVolumeClaim").await?,
        pods,
        stateful_sets: if with_stateful_sets {
            list_all(client, "StatefulSet").await?
        } else {
            Vec::new()
        },
        limit_ranges: list_all(client, "LimitRange").await?,
        quotas: list_all(client, "ResourceQuota").await?,
        snapshots: super::snapshots::list(client)
            .await
            .map_err(|source| ReadError::List {
                kind: "VolumeSnapshot",
                source,
            })?,
    })
}
