//! The final label set of a scraped series: scraped labels merged with the
//! target labels (Prometheus's `honor_labels` rules), then the external
//! labels, which win unless `honor_external_labels` is set; a series' own
//! different value is kept as `exported_<name>`.

use fleetwatch_model::{Label, Labels, ModelError, METRIC_NAME};

/// Merges labels the way the collector ships them.
#[derive(Debug, Clone)]
pub struct LabelMerger<'a> {
    /// `job`, `instance` and static labels.
    pub target: &'a Labels,
    /// The collector's external labels.
    pub external: &'a Labels,
    /// The job's `honor_labels`.
    pub honor_labels: bool,
    /// The job's `honor_external_labels`.
    pub honor_external_labels: bool,
}

/// A merged label set and how many external labels replaced a different
/// value already on the series.
#[derive(Debug, Clone, PartialEq)]
pub struct Merged {
    /// The final, validated labels.
    pub labels: Labels,
    /// External labels that replaced a different value (counted in
    /// `fleetwatch_collector_external_label_overrides_total`), or, with
    /// `honor_external_labels`, that yielded to the series' value.
    pub overrides: u64,
}

impl LabelMerger<'_> {
    /// Merges a scraped series (`name` and `scraped` labels, whose values are
    /// non-empty) with the target and external labels:
    /// - `honor_labels: false`: a scraped label that clashes with a target
    ///   label is renamed `exported_<name>` (more `exported_` prefixes if that
    ///   is taken too) and the target label wins;
    /// - `honor_labels: true`: the scraped label wins;
    /// - then the external labels, see [`Self::apply_external`].
    pub fn merge(&self, name: &str, scraped: &[(String, String)]) -> Result<Merged, ModelError> {
        Ok(self.apply_external(self.merge_target(name, scraped)?))
    }

    /// The first two steps of [`Self::merge`]: scraped labels and target
    /// labels, without the external labels (metric relabeling runs here).
    pub fn merge_target(
        &self,
        name: &str,
        scraped: &[(String, String)],
    ) -> Result<Labels, ModelError> {
        let mut labels: Vec<Label> =
            Vec::with_capacity(scraped.len() + self.target.len() + self.external.len() + 1);
        labels.push(Label::new(METRIC_NAME, name));
        for (n, v) in scraped {
            if n != METRIC_NAME && !v.is_empty() {
                labels.push(Label::new(n.as_str(), v.as_str()));
            }
        }
        // Scraped label sets are not known to be free of duplicates or
        // invalid names: Labels::new checks both.
        let mut set = Labels::new(labels)?;
        if self.honor_labels {
            for l in self.target.iter() {
                if set.get(&l.name).is_none() {
                    set.set(&l.name, &l.value);
                }
            }
        } else {
            let mut conflicts: Vec<Label> = Vec::new();
            for l in self.target.iter() {
                if let Some(existing) = set.get(&l.name) {
                    conflicts.push(Label::new(l.name.as_str(), existing));
                }
                set.set(&l.name, &l.value);
            }
            // As Prometheus: shortest names first, each to the first free
            // `exported_...` name.
            conflicts.sort_by(|a, b| {
                a.name
                    .len()
                    .cmp(&b.name.len())
                    .then_with(|| a.name.cmp(&b.name))
            });
            for c in conflicts {
                set_exported(&mut set, &c.name, &c.value);
            }
        }
        Ok(set)
    }

    /// Adds the external labels to a label set built by the collector itself
    /// (target labels for `up` and the other synthetic series).
    pub fn synthetic(&self, name: &str) -> Labels {
        let mut set = self.target.clone();
        set.set(METRIC_NAME, name);
        self.apply_external(set).labels
    }

    /// Adds the external labels. Where the set already has a different
    /// value: by default the external value wins and the set's value moves
    /// to `exported_<name>` (the first free `exported_...` name); with
    /// `honor_external_labels` the set's value stays. Both count as an
    /// override.
    pub fn apply_external(&self, mut set: Labels) -> Merged {
        let mut overrides = 0;
        for l in self.external.iter() {
            let existing = set.get(&l.name).map(str::to_string);
            match existing {
                Some(v) if v == l.value => continue,
                Some(_) if self.honor_external_labels => {
                    overrides += 1;
                    continue;
                }
                Some(v) => {
                    overrides += 1;
                    set_exported(&mut set, &l.name, &v);
                }
                None => {}
            }
            set.set(&l.name, &l.value);
        }
        Merged {
            labels: set,
            overrides,
        }
    }
}

/// Stores `value` under the first free name of `exported_<name>`,
/// `exported_exported_<name>`, ... (bounded: each step lengthens the name
/// and a label set is finite).
fn set_exported(set: &mut Labels, name: &str, value: &str) {
    let mut new_name = name.to_string();
    loop {
        new_name = format!("exported_{new_name}");
        if set.get(&new_name).is_none() {
            set.set(&new_name, value);
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
        p.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    fn target() -> Labels {
        Labels::from_pairs([("job", "fed"), ("instance", "prom:9090"), ("zone", "a")])
    }

    #[test]
    fn honor_labels_false_renames_clashing_scraped_labels() {
        let t = target();
        let ext = Labels::empty();
        let m = LabelMerger {
            target: &t,
            external: &ext,
            honor_labels: false,
            honor_external_labels: false,
        };
        let got = m
            .merge(
                "x",
                &pairs(&[
                    ("job", "inner"),
                    ("instance", "vm-1:80"),
                    ("exported_job", "taken"),
                    ("a", "1"),
                ]),
            )
            .unwrap();
        assert_eq!(
            got.labels.to_string(),
            r#"x{a="1", exported_exported_job="inner", exported_instance="vm-1:80", exported_job="taken", instance="prom:9090", job="fed", zone="a"}"#
        );
        assert_eq!(got.overrides, 0);
    }

    #[test]
    fn honor_labels_true_keeps_scraped_labels() {
        let t = target();
        let ext = Labels::empty();
        let m = LabelMerger {
            target: &t,
            external: &ext,
            honor_labels: true,
            honor_external_labels: false,
        };
        let got = m
            .merge(
                "x",
                &pairs(&[("job", "kubevirt-handler"), ("instance", "node1:8443")]),
            )
            .unwrap();
        assert_eq!(
            got.labels.to_string(),
            r#"x{instance="node1:8443", job="kubevirt-handler", zone="a"}"#
        );
    }

    #[test]
    fn external_labels_win_and_keep_the_series_value_as_exported() {
        let t = target();
        let ext = Labels::from_pairs([("cluster", "app-1"), ("zone", "b")]);
        for honor in [false, true] {
            let m = LabelMerger {
                target: &t,
                external: &ext,
                honor_labels: honor,
                honor_external_labels: false,
            };
            let got = m.merge("x", &pairs(&[("cluster", "spoofed")])).unwrap();
            assert_eq!(
                got.labels.to_string(),
                r#"x{cluster="app-1", exported_cluster="spoofed", exported_zone="a", instance="prom:9090", job="fed", zone="b"}"#,
                "honor_labels={honor}"
            );
            // cluster replaced a scraped value, zone replaced a target value.
            assert_eq!(got.overrides, 2);
            let same = m.merge("x", &pairs(&[("cluster", "app-1")])).unwrap();
            assert_eq!(same.overrides, 1, "an equal value is not an override");
            assert_eq!(same.labels.get("exported_cluster"), None);
        }
        let m = LabelMerger {
            target: &t,
            external: &ext,
            honor_labels: false,
            honor_external_labels: false,
        };
        assert_eq!(
            m.synthetic("up").to_string(),
            r#"up{cluster="app-1", exported_zone="a", instance="prom:9090", job="fed", zone="b"}"#
        );
        // A taken exported_ name moves on to the next free one.
        let got = m
            .merge(
                "x",
                &pairs(&[("cluster", "c2"), ("exported_cluster", "c3")]),
            )
            .unwrap();
        assert_eq!(got.labels.get("exported_exported_cluster"), Some("c2"));
        assert_eq!(got.labels.get("exported_cluster"), Some("c3"));
    }

    #[test]
    fn honor_external_labels_keeps_the_series_value() {
        let t = target();
        let ext = Labels::from_pairs([("cluster", "app-1"), ("region", "r1")]);
        let m = LabelMerger {
            target: &t,
            external: &ext,
            honor_labels: true,
            honor_external_labels: true,
        };
        let got = m.merge("x", &pairs(&[("cluster", "app-2")])).unwrap();
        assert_eq!(
            got.labels.to_string(),
            r#"x{cluster="app-2", instance="prom:9090", job="fed", region="r1", zone="a"}"#,
            "the series' cluster stays; missing external labels are added"
        );
        assert_eq!(got.overrides, 1);
        let plain = m.merge("x", &[]).unwrap();
        assert_eq!(plain.labels.get("cluster"), Some("app-1"));
    }

    #[test]
    fn rejects_invalid_scraped_labels() {
        let t = target();
        let ext = Labels::empty();
        let m = LabelMerger {
            target: &t,
            external: &ext,
            honor_labels: false,
            honor_external_labels: false,
        };
        assert!(m.merge("x", &pairs(&[("a", "1"), ("a", "2")])).is_err());
        assert!(m.merge("bad-name", &[]).is_err());
    }
}
