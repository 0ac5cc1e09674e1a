//! API requests per claim, counted on the API server's side: the
//! `apiserver_request_total` counters of `/metrics` read before the clock
//! starts and after the last claim is Bound. The difference is what every
//! client made in that window (the processes under test, kube-controller-
//! manager's other controllers, the bench's own creates), so it is honest
//! whichever client library a side uses; the bench's creates are taken out.

use std::collections::BTreeMap;

/// Requests by `VERB resource[/subresource]` (`POST persistentvolumes`,
/// `PUT persistentvolumeclaims/status`), summed over codes and scopes.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Counts(pub BTreeMap<String, f64>);

impl Counts {
    /// Reads the `apiserver_request_total` samples of a Prometheus text page.
    pub fn parse(page: &str) -> Counts {
        let mut out = BTreeMap::new();
        for line in page.lines() {
            let Some(rest) = line.strip_prefix("apiserver_request_total{") else {
                continue;
            };
            let Some((labels, value)) = rest.rsplit_once("} ") else {
                continue;
            };
            let Ok(value) = value.trim().parse::<f64>() else {
                continue;
            };
            let label = |name: &str| -> &str {
                labels
                    .split(',')
                    .find_map(|kv| kv.strip_prefix(name)?.strip_prefix("=\""))
                    .and_then(|v| v.strip_suffix('"'))
                    .unwrap_or("")
            };
            let (verb, resource, sub) = (label("verb"), label("resource"), label("subresource"));
            if resource.is_empty() {
                // /metrics, /readyz, discovery: not about any object.
                continue;
            }
            let key = if sub.is_empty() {
                format!("{verb} {resource}")
            } else {
                format!("{verb} {resource}/{sub}")
            };
            *out.entry(key).or_insert(0.0) += value;
        }
        Counts(out)
    }

    /// What happened between `before` and `self`, without the zero rows.
    pub fn since(&self, before: &Counts) -> Counts {
        Counts(
            self.0
                .iter()
                .map(|(k, v)| (k.clone(), v - before.0.get(k).copied().unwrap_or(0.0)))
                .filter(|(_, v)| *v > 0.0)
                .collect(),
        )
    }

    /// Takes `n` requests of `key` out (the bench's own).
    pub fn without(mut self, key: &str, n: f64) -> Counts {
        if let Some(v) = self.0.get_mut(key) {
            *v -= n;
            if *v <= 0.0 {
                self.0.remove(key);
            }
        }
        self
    }

    pub fn total(&self) -> f64 {
        self.0.values().sum()
    }

    /// Requests per claim, the largest first: `POST persistentvolumes 1.00, …`.
    pub fn per_claim(&self, claims: usize) -> String {
        let n = claims.max(1) as f64;
        let mut rows: Vec<(&String, &f64)> = self.0.iter().collect();
        rows.sort_by(|a, b| b.1.total_cmp(a.1).then(a.0.cmp(b.0)));
        rows.iter()
            .filter(|(_, v)| **v / n >= 0.005)
            .map(|(k, v)| format!("{k} {:.2}", **v / n))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAGE: &str = r#"# HELP apiserver_request_total [STABLE] Counter of apiserver requests
# TYPE apiserver_request_total counter
apiserver_request_total{code="201",component="apiserver",dry_run="",group="",resource="persistentvolumes",scope="cluster",subresource="",verb="POST",version="v1"} 7
apiserver_request_total{code="409",component="apiserver",dry_run="",group="",resource="persistentvolumes",scope="cluster",subresource="",verb="POST",version="v1"} 1
apiserver_request_total{code="200",component="apiserver",dry_run="",group="",resource="persistentvolumeclaims",scope="resource",subresource="status",verb="PUT",version="v1"} 3
apiserver_request_total{code="200",component="apiserver",dry_run="",group="",resource="",scope="",subresource="/readyz",verb="GET",version=""} 40
apiserver_request_duration_seconds_bucket{verb="POST",le="0.1"} 9
"#;

    #[test]
    fn codes_are_summed_and_non_object_paths_left_out() {
        let c = Counts::parse(PAGE);
        assert_eq!(c.0.get("POST persistentvolumes"), Some(&8.0));
        assert_eq!(c.0.get("PUT persistentvolumeclaims/status"), Some(&3.0));
        assert_eq!(c.0.len(), 2);
    }

    #[test]
    fn a_window_subtracts_the_bench_and_prints_per_claim() {
        let before = Counts::parse(PAGE);
        let after = Counts(BTreeMap::from([
            ("POST persistentvolumes".to_string(), 12.0),
            ("PUT persistentvolumeclaims/status".to_string(), 3.0),
            ("POST persistentvolumeclaims".to_string(), 4.0),
        ]));
        let window = after
            .since(&before)
            .without("POST persistentvolumeclaims", 4.0);
        assert_eq!(window.total(), 4.0);
        assert_eq!(window.per_claim(4), "POST persistentvolumes 1.00");
    }
}
