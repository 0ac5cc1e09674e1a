//! The API server's checks on object names, namespaces and labels, with its
//! own messages (Kubernetes v1.36: `apimachinery/pkg/api/validate/content`
//! and each kind's `Validate…Name`), so that `berth dry-run` refuses what
//! `kubectl apply` would refuse, in the same words.
//!
//! Only the first problem of an object is reported (the API server lists
//! them all); the field path and the quoted value are the API's.

/// Which rule a kind's `metadata.name` follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameRule {
    /// `NameIsDNSSubdomain`: most kinds.
    Subdomain,
    /// `NameIsDNSLabel`: Namespaces and StatefulSets (whose name becomes
    /// part of each pod's name).
    Label,
}

/// The rule for `kind`'s names, and whether the kind is namespaced; `None`
/// for kinds whose names berth does not check.
pub fn rule_for(kind: &str) -> Option<(NameRule, bool)> {
    Some(match kind {
        "Namespace" => (NameRule::Label, false),
        "StatefulSet" => (NameRule::Label, true),
        "StorageClass" | "PersistentVolume" | "Node" | "CSINode" => (NameRule::Subdomain, false),
        "PersistentVolumeClaim"
        | "Pod"
        | "LimitRange"
        | "ResourceQuota"
        | "CSIStorageCapacity"
        | "VolumeSnapshot" => (NameRule::Subdomain, true),
        // Custom resources: the API server checks every CR name as a
        // subdomain.
        "VolumeSnapshotContent" => (NameRule::Subdomain, false),
        _ => return None,
    })
}

const LABEL_FMT: &str = "[a-z0-9]([-a-z0-9]*[a-z0-9])?";
const SUBDOMAIN_FMT: &str = "[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*";
const LABEL_MSG: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character";
const SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character";
const LABEL_KEY_FMT: &str = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]";
const LABEL_KEY_MSG: &str = "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";
const LABEL_VALUE_FMT: &str = "(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?";
const LABEL_VALUE_MSG: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";

/// apimachinery's `RegexError`, examples and all (its separator has two
/// spaces: `'a',  or 'b'`).
fn regex_error(msg: &str, fmt: &str, examples: &[&str]) -> String {
    let examples: Vec<String> = examples.iter().map(|e| format!("'{e}', ")).collect();
    format!(
        "{msg} (e.g. {}regex used for validation is '{fmt}')",
        examples.join(" or ")
    )
}

fn max_len(n: usize) -> String {
    format!("must be no more than {n} characters")
}

fn lower_alnum(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit()
}

fn alnum(b: u8) -> bool {
    b.is_ascii_alphanumeric()
}

/// `[a-z0-9]([-a-z0-9]*[a-z0-9])?`
fn is_label(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && lower_alnum(b[0])
        && lower_alnum(b[b.len() - 1])
        && b.iter().all(|&c| lower_alnum(c) || c == b'-')
}

fn is_subdomain(s: &str) -> bool {
    s.split('.').all(is_label)
}

/// `([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]`
fn is_label_key_name(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && alnum(b[0])
        && alnum(b[b.len() - 1])
        && b.iter()
            .all(|&c| alnum(c) || c == b'-' || c == b'_' || c == b'.')
}

/// `IsDNS1123Label`: every problem, in upstream's order.
pub fn dns1123_label(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if value.len() > 63 {
        errs.push(max_len(63));
    }
    if !is_label(value) {
        if is_subdomain(value) {
            errs.push("must not contain dots".to_string());
        } else {
            errs.push(regex_error(LABEL_MSG, LABEL_FMT, &["my-name", "123-abc"]));
        }
    }
    errs
}

/// `IsDNS1123Subdomain`: every problem, in upstream's order.
pub fn dns1123_subdomain(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if value.len() > 253 {
        errs.push(max_len(253));
    }
    if !is_subdomain(value) {
        errs.push(regex_error(SUBDOMAIN_MSG, SUBDOMAIN_FMT, &["example.com"]));
    }
    errs
}

/// `IsLabelKey` (a qualified name with an optional subdomain prefix).
pub fn label_key(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    let parts: Vec<&str> = value.split('/').collect();
    let name = match parts.as_slice() {
        [name] => *name,
        [prefix, name] => {
            if prefix.is_empty() {
                errs.push("prefix part must be non-empty".to_string());
            } else {
                errs.extend(
                    dns1123_subdomain(prefix)
                        .into_iter()
                        .map(|m| format!("prefix part {m}")),
                );
            }
            *name
        }
        _ => {
            errs.push(format!(
                "a valid label key {} with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')",
                regex_error(LABEL_KEY_MSG, LABEL_KEY_FMT, &["MyName", "my.name", "123-abc"])
            ));
            return errs;
        }
    };
    if name.is_empty() {
        errs.push("name part must be non-empty".to_string());
    } else if name.len() > 63 {
        errs.push(format!("name part {}", max_len(63)));
    }
    if !is_label_key_name(name) {
        errs.push(format!(
            "name part {}",
            regex_error(
                LABEL_KEY_MSG,
                LABEL_KEY_FMT,
                &["MyName", "my.name", "123-abc"]
            )
        ));
    }
    errs
}

/// `IsLabelValue`.
pub fn label_value(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if value.len() > 63 {
        errs.push(max_len(63));
    }
    if !value.is_empty() && !is_label_key_name(value) {
        errs.push(regex_error(
            LABEL_VALUE_MSG,
            LABEL_VALUE_FMT,
            &["MyValue", "my_value", "12345"],
        ));
    }
    errs
}

/// One problem with an object's metadata: (field, message), the message
/// starting with the API's `Invalid value: "…": `.
pub type MetaProblem = (String, String);

/// The first problem the API server would report in `kind`'s name,
/// namespace or labels. `namespace` is the one the object names (kubectl
/// fills in the current one when it names none, so `None` is fine).
pub fn check_meta<'a>(
    kind: &str,
    name: &str,
    namespace: Option<&str>,
    labels: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Option<MetaProblem> {
    let invalid = |field: &str, value: &str, msg: String| {
        (
            field.to_string(),
            format!("Invalid value: {value:?}: {msg}"),
        )
    };
    let (rule, namespaced) = rule_for(kind)?;
    let name_errs = match rule {
        NameRule::Subdomain => dns1123_subdomain(name),
        NameRule::Label => dns1123_label(name),
    };
    if let Some(msg) = name_errs.into_iter().next() {
        return Some(invalid("metadata.name", name, msg));
    }
    // Cluster-scoped objects: the API server drops a namespace.
    if let Some(ns) = namespace.filter(|_| namespaced)
        && let Some(msg) = dns1123_label(ns).into_iter().next()
    {
        return Some(invalid("metadata.namespace", ns, msg));
    }
    let mut labels: Vec<(&str, &str)> = labels.into_iter().collect();
    // Upstream walks a Go map (random order); berth reports the first key
    // in sorted order so the same input always gives the same message.
    labels.sort_unstable();
    for (k, v) in labels {
        if let Some(msg) = label_key(k).into_iter().next() {
            return Some(invalid("metadata.labels", k, msg));
        }
        if let Some(msg) = label_value(v).into_iter().next() {
            return Some(invalid("metadata.labels", v, msg));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subdomains_and_labels() {
        for ok in ["a", "a-b", "a.b", "0", "pvc-1.data", &"a".repeat(253)] {
            assert!(dns1123_subdomain(ok).is_empty(), "{ok}");
        }
        for bad in ["", "A", "a_b", "-a", "a-", "a..b", ".a", "a.", "Bad_Name!"] {
            assert_eq!(dns1123_subdomain(bad).len(), 1, "{bad}");
        }
        assert_eq!(dns1123_subdomain(&"a".repeat(254)), vec![max_len(253)]);
        assert_eq!(
            dns1123_label("a.b"),
            vec!["must not contain dots".to_string()]
        );
        assert_eq!(dns1123_label(&"a".repeat(64)), vec![max_len(63)]);
        assert!(dns1123_label(&"a".repeat(63)).is_empty());
        assert_eq!(
            dns1123_label("My-App"),
            vec!["a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')".to_string()]
        );
    }

    #[test]
    fn label_keys_and_values() {
        for ok in [
            "app",
            "example.com/App_1",
            "a.b-c_d",
            "topology.kubernetes.io/zone",
        ] {
            assert!(label_key(ok).is_empty(), "{ok}");
        }
        assert_eq!(
            label_key("/x"),
            vec!["prefix part must be non-empty".to_string()]
        );
        assert_eq!(
            label_key("x/").len(),
            2,
            "empty name part, and not matching"
        );
        assert!(label_key("a/b/c")[0].starts_with("a valid label key must consist"));
        assert!(label_key("Bad.Prefix/x")[0].starts_with("prefix part a lowercase RFC 1123"));
        for ok in ["", "v1", "My_Value.2", &"x".repeat(63)] {
            assert!(label_value(ok).is_empty(), "{ok:?}");
        }
        assert_eq!(
            label_value("-bad"),
            vec!["a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')".to_string()]
        );
        assert_eq!(label_value(&"x".repeat(64)), vec![max_len(63)]);
    }

    #[test]
    fn meta_reports_the_first_problem_with_the_api_wording() {
        let (field, msg) =
            check_meta("PersistentVolumeClaim", "Bad_Name!", None, []).expect("rejected");
        assert_eq!(field, "metadata.name");
        assert!(
            msg.starts_with("Invalid value: \"Bad_Name!\": a lowercase RFC 1123 subdomain"),
            "{msg}"
        );
        assert_eq!(
            check_meta("StatefulSet", "web.v2", None, []),
            Some((
                "metadata.name".into(),
                "Invalid value: \"web.v2\": must not contain dots".into()
            ))
        );
        assert!(check_meta("PersistentVolume", "web.v2", None, []).is_none());
        assert_eq!(
            check_meta("Pod", "p", Some("Team_A"), []).map(|p| p.0),
            Some("metadata.namespace".into())
        );
        assert!(check_meta("StorageClass", "c", Some("Team_A"), []).is_none());
        assert_eq!(
            check_meta("Node", "n", None, [("zone", "eu west")]).map(|p| p.1),
            Some(format!(
                "Invalid value: \"eu west\": {}",
                label_value("eu west")[0]
            ))
        );
        assert!(check_meta("ConfigMap", "Anything_Goes", None, []).is_none());
    }
}
