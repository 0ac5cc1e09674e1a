//! The one result format every side-by-side comparison writes, and the
//! rules that turn its rounds into figures.
//!
//! A comparison alternates berth and the upstream engine over several
//! rounds on the same input; each [`Round`] holds one measurement of each
//! side. Ratios are taken per round (so a slow patch of the machine hits
//! both sides of that round) and the median of those ratios is the figure
//! README quotes. Comparisons write a [`Comparison`] as JSON to
//! `bench/results/<id>.json`; the entry point reads them all back to render
//! the Markdown table and the plots.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Whether a bigger or a smaller measurement is the better one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Better {
    Lower,
    Higher,
}

/// One round: the same input, measured once per side.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Round {
    pub berth: f64,
    pub upstream: f64,
}

impl Round {
    /// How many times better berth did than upstream in this round
    /// (> 1 means berth won), whichever direction is better.
    pub fn advantage(&self, better: Better) -> f64 {
        match better {
            Better::Lower => self.upstream / self.berth,
            Better::Higher => self.berth / self.upstream,
        }
    }
}

/// One row of the results table: a metric compared at one size.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    /// File stem and stable key, e.g. `matching-10000`.
    pub id: String,
    /// Which of the five comparisons: `matching`, `static-binding`,
    /// `provisioning`, `csi-driver`, `ceiling`.
    pub group: String,
    /// What is measured, as a reader sees it: "plan 10k PVs × 10k PVCs".
    pub title: String,
    /// Name of the upstream side: "FindMatchingVolume (component-helpers v0.36.3)".
    pub upstream: String,
    /// Unit of `Round` values: "s", "ms", "ops/s", "MiB".
    pub unit: String,
    pub better: Better,
    /// Size parameter the plots put on the x axis (PV count, PVC count, …).
    pub size: u64,
    pub rounds: Vec<Round>,
    /// Anything else worth printing next to the figure: mismatches, peak
    /// RSS of the other side, flags used.
    #[serde(default)]
    pub notes: Vec<String>,
}

/// The median of `values`; `None` when there are none or one is NaN.
pub fn median(values: &[f64]) -> Option<f64> {
    if values.is_empty() || values.iter().any(|v| v.is_nan()) {
        return None;
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    Some(if v.len() % 2 == 1 {
        v[mid]
    } else {
        (v[mid - 1] + v[mid]) / 2.0
    })
}

impl Comparison {
    pub fn berth_median(&self) -> Option<f64> {
        median(&self.rounds.iter().map(|r| r.berth).collect::<Vec<_>>())
    }

    pub fn upstream_median(&self) -> Option<f64> {
        median(&self.rounds.iter().map(|r| r.upstream).collect::<Vec<_>>())
    }

    /// Median of the per-round advantages (see [`Round::advantage`]).
    pub fn advantage_median(&self) -> Option<f64> {
        median(
            &self
                .rounds
                .iter()
                .map(|r| r.advantage(self.better))
                .collect::<Vec<_>>(),
        )
    }

    /// Where this comparison is written under `dir`.
    pub fn path_in(&self, dir: &Path) -> PathBuf {
        dir.join(format!("{}.json", self.id))
    }

    /// Writes the comparison as pretty JSON, atomically (temp file + rename)
    /// so an interrupted run never leaves half a result for the table.
    pub fn write(&self, dir: &Path) -> std::io::Result<PathBuf> {
        std::fs::create_dir_all(dir)?;
        let path = self.path_in(dir);
        let tmp = path.with_extension("json.tmp");
        let text = serde_json::to_string_pretty(self).map_err(std::io::Error::other)?;
        std::fs::write(&tmp, text + "\n")?;
        std::fs::rename(&tmp, &path)?;
        Ok(path)
    }

    pub fn read(path: &Path) -> std::io::Result<Comparison> {
        let text = std::fs::read_to_string(path)?;
        serde_json::from_str(&text).map_err(|e| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("{}: {e}", path.display()),
            )
        })
    }
}

/// `bench/results`, where every comparison writes.
pub fn results_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("results")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), Some(2.5));
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[1.0, f64::NAN]), None);
    }

    #[test]
    fn advantage_follows_the_better_direction() {
        let r = Round {
            berth: 2.0,
            upstream: 10.0,
        };
        assert_eq!(r.advantage(Better::Lower), 5.0);
        assert_eq!(r.advantage(Better::Higher), 0.2);
    }

    #[test]
    fn comparison_round_trips_through_its_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let c = Comparison {
            id: "matching-1000".into(),
            group: "matching".into(),
            title: "plan 1k × 1k".into(),
            upstream: "FindMatchingVolume".into(),
            unit: "s".into(),
            better: Better::Lower,
            size: 1000,
            rounds: vec![
                Round {
                    berth: 1.0,
                    upstream: 30.0,
                },
                Round {
                    berth: 2.0,
                    upstream: 20.0,
                },
                Round {
                    berth: 1.0,
                    upstream: 25.0,
                },
            ],
            notes: vec!["0 mismatches".into()],
        };
        let path = c.write(dir.path()).expect("write");
        assert_eq!(Comparison::read(&path).expect("read"), c);
        assert_eq!(c.advantage_median(), Some(25.0));
        assert_eq!(c.berth_median(), Some(1.0));
    }
}
