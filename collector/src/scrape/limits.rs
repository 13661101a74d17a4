//! The scrape limits of a job (Prometheus's `sample_limit`, `label_limit`,
//! `label_name_length_limit`, `label_value_length_limit`,
//! `body_size_limit`): a scrape that breaks one fails whole.

use fleetwatch_model::Labels;

use crate::config::ScrapeConfig;

/// The largest body the collector reads, whatever `body_size_limit` says
/// (it guards memory when the limit is 0, i.e. unlimited).
pub const HARD_MAX_BODY_BYTES: u64 = 256 << 20;

/// A job's scrape limits; 0 means no limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ScrapeLimits {
    /// Samples per scrape after metric relabeling.
    pub sample_limit: u64,
    /// Labels per series.
    pub label_limit: u64,
    /// Bytes per label name.
    pub label_name_length_limit: u64,
    /// Bytes per label value.
    pub label_value_length_limit: u64,
    /// Bytes of a decompressed body.
    pub body_size_limit: u64,
}

impl ScrapeLimits {
    /// The limits of a scrape config.
    pub fn from_config(sc: &ScrapeConfig) -> Self {
        Self {
            sample_limit: sc.sample_limit,
            label_limit: sc.label_limit,
            label_name_length_limit: sc.label_name_length_limit,
            label_value_length_limit: sc.label_value_length_limit,
            body_size_limit: sc.body_size_limit.0,
        }
    }

    /// The most body bytes read: `body_size_limit`, capped by
    /// [`HARD_MAX_BODY_BYTES`].
    pub fn max_body_bytes(&self) -> u64 {
        match self.body_size_limit {
            0 => HARD_MAX_BODY_BYTES,
            n => n.min(HARD_MAX_BODY_BYTES),
        }
    }

    /// Whether any label limit is set.
    pub fn has_label_limits(&self) -> bool {
        self.label_limit > 0
            || self.label_name_length_limit > 0
            || self.label_value_length_limit > 0
    }

    /// Checks a series' labels (after metric relabeling, before the
    /// external labels, as Prometheus) against the label limits; the reason
    /// when one is broken.
    pub fn check_labels(&self, labels: &Labels) -> Result<(), String> {
        let over = |len: usize, limit: u64| limit > 0 && len as u64 > limit;
        if over(labels.len(), self.label_limit) {
            return Err(format!(
                "label_limit exceeded (metric: {labels}, number of labels: {}, limit: {})",
                labels.len(),
                self.label_limit
            ));
        }
        for l in labels.iter() {
            if over(l.name.len(), self.label_name_length_limit) {
                return Err(format!(
                    "label_name_length_limit exceeded (metric: {labels}, label name: {}, length: {}, limit: {})",
                    l.name,
                    l.name.len(),
                    self.label_name_length_limit
                ));
            }
            if over(l.value.len(), self.label_value_length_limit) {
                return Err(format!(
                    "label_value_length_limit exceeded (metric: {labels}, label name: {}, value length: {}, limit: {})",
                    l.name,
                    l.value.len(),
                    self.label_value_length_limit
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_limits_name_the_broken_limit() {
        let l = Labels::from_pairs([("__name__", "m"), ("a", "12345"), ("long_name", "x")]);
        assert!(ScrapeLimits::default().check_labels(&l).is_ok());
        let lim = |f: fn(&mut ScrapeLimits)| {
            let mut s = ScrapeLimits::default();
            f(&mut s);
            s.check_labels(&l)
        };
        assert!(lim(|s| s.label_limit = 3).is_ok());
        assert!(lim(|s| s.label_limit = 2)
            .unwrap_err()
            .starts_with("label_limit exceeded"));
        assert!(lim(|s| s.label_name_length_limit = 9).is_ok());
        assert!(lim(|s| s.label_name_length_limit = 8)
            .unwrap_err()
            .contains("label name: long_name"));
        assert!(lim(|s| s.label_value_length_limit = 4)
            .unwrap_err()
            .starts_with("label_value_length_limit exceeded"));
    }

    #[test]
    fn the_body_limit_is_capped() {
        let mut s = ScrapeLimits::default();
        assert_eq!(s.max_body_bytes(), HARD_MAX_BODY_BYTES);
        s.body_size_limit = 1000;
        assert_eq!(s.max_body_bytes(), 1000);
        s.body_size_limit = u64::MAX;
        assert_eq!(s.max_body_bytes(), HARD_MAX_BODY_BYTES);
    }
}
