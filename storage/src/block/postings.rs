//! The postings index of a block: label pair -> sorted series ids, kept in
//! memory while the block is open and stored as `postings.parquet`
//! (`name: Utf8`, `value: Utf8`, `series_ids: List<UInt32>`, one row per
//! label pair, sorted by name then value).
//!
//! The same structure also answers "which labels does series N have", so an
//! open block needs no other copy of its label sets.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow_array::builder::{ListBuilder, StringBuilder, UInt32Builder};
use arrow_array::{Array, ArrayRef, ListArray, RecordBatch, StringArray, UInt32Array};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use fleetwatch_model::{Label, Labels, MatchOp, Matcher};

/// Column: label name.
pub const COL_NAME: &str = "name";
/// Column: label value.
pub const COL_VALUE: &str = "value";
/// Column: the series ids having the pair.
pub const COL_SERIES_IDS: &str = "series_ids";

/// In-memory postings of one block.
#[derive(Debug, Default)]
pub struct Postings {
    /// Unique label names, sorted, with the range of their pairs.
    names: Vec<(String, std::ops::Range<usize>)>,
    /// Pair values, sorted by (name, value); `pair_name[i]` indexes `names`.
    values: Vec<String>,
    pair_name: Vec<u32>,
    /// Series ids per pair, sorted.
    ids: Vec<Vec<u32>>,
    /// Pair indices per series, sorted (and so by label name).
    series_pairs: Vec<Vec<u32>>,
}

/// Why a postings table could not be built.
#[derive(Debug)]
pub struct PostingsError(pub String);

impl Postings {
    /// Builds postings for `labels`, whose index is the series id.
    pub fn build<'a>(labels: impl ExactSizeIterator<Item = &'a Labels>) -> Self {
        let num_series = labels.len();
        let mut map: BTreeMap<(&str, &str), Vec<u32>> = BTreeMap::new();
        for (id, ls) in labels.enumerate() {
            for l in ls.iter() {
                map.entry((l.name.as_str(), l.value.as_str()))
                    .or_default()
                    .push(id as u32);
            }
        }
        let pairs = map
            .into_iter()
            .map(|((n, v), ids)| (n.to_string(), v.to_string(), ids));
        // Ids were pushed in ascending order: already sorted.
        Self::from_pairs(pairs, num_series).unwrap_or_default()
    }

    /// Builds from `(name, value, ids)` rows sorted by name then value.
    /// Fails when rows are out of order or ids are unsorted or out of range.
    pub fn from_pairs(
        pairs: impl Iterator<Item = (String, String, Vec<u32>)>,
        num_series: usize,
    ) -> Result<Self, PostingsError> {
        let mut p = Postings {
            series_pairs: vec![Vec::new(); num_series],
            ..Default::default()
        };
        for (name, value, ids) in pairs {
            let pair = p.values.len();
            match p.names.last_mut() {
                Some((n, range)) if *n == name => {
                    if p.values.last().is_some_and(|v| *v >= value) {
                        return Err(PostingsError(format!(
                            "postings not sorted at {name}={value:?}"
                        )));
                    }
                    range.end = pair + 1;
                }
                last => {
                    if last.is_some_and(|(n, _)| *n > name) {
                        return Err(PostingsError(format!("postings not sorted at {name}")));
                    }
                    p.names.push((name, pair..pair + 1));
                }
            }
            if ids.windows(2).any(|w| w[0] >= w[1]) {
                return Err(PostingsError("postings ids not sorted".into()));
            }
            for &id in &ids {
                let sp = p.series_pairs.get_mut(id as usize).ok_or_else(|| {
                    PostingsError(format!("series id {id} out of range {num_series}"))
                })?;
                sp.push(pair as u32);
            }
            p.pair_name.push((p.names.len() - 1) as u32);
            p.values.push(value);
            p.ids.push(ids);
        }
        Ok(p)
    }

    /// Number of series covered.
    pub fn num_series(&self) -> usize {
        self.series_pairs.len()
    }

    fn name_range(&self, name: &str) -> Option<std::ops::Range<usize>> {
        self.names
            .binary_search_by(|(n, _)| n.as_str().cmp(name))
            .ok()
            .map(|i| self.names[i].1.clone())
    }

    /// The value of label `name` on series `id`, or "" when absent.
    pub fn value_of(&self, id: u32, name: &str) -> &str {
        let Some(pairs) = self.series_pairs.get(id as usize) else {
            return "";
        };
        pairs
            .iter()
            .map(|&p| p as usize)
            .find(|&p| self.names[self.pair_name[p] as usize].0 == name)
            .map_or("", |p| self.values[p].as_str())
    }

    /// The label set of series `id`.
    pub fn labels(&self, id: u32) -> Labels {
        let pairs = self
            .series_pairs
            .get(id as usize)
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        let labels: Vec<Label> = pairs
            .iter()
            .map(|&p| {
                let p = p as usize;
                Label::new(
                    self.names[self.pair_name[p] as usize].0.clone(),
                    self.values[p].clone(),
                )
            })
            .collect();
        // Pairs are sorted by name and names are unique per series.
        Labels::from_pairs(labels.into_iter().map(|l| (l.name, l.value)))
    }

    /// Label names of series `id`.
    pub fn names_of(&self, id: u32) -> impl Iterator<Item = &str> {
        self.series_pairs
            .get(id as usize)
            .into_iter()
            .flatten()
            .map(|&p| self.names[self.pair_name[p as usize] as usize].0.as_str())
    }

    /// Sorted series ids matching every matcher (a missing label matches
    /// as the empty string, as in Prometheus).
    pub fn matching(&self, matchers: &[Matcher]) -> Vec<u32> {
        let mut sets: Vec<Vec<u32>> = Vec::new();
        for m in matchers.iter().filter(|m| !m.matches_empty()) {
            let Some(range) = self.name_range(&m.name) else {
                return Vec::new();
            };
            let mut ids: Vec<u32> = match m.op {
                MatchOp::Equal => {
                    let vals = &self.values[range.clone()];
                    match vals.binary_search_by(|v| v.as_str().cmp(&m.value)) {
                        Ok(i) => self.ids[range.start + i].clone(),
                        Err(_) => Vec::new(),
                    }
                }
                _ => {
                    let mut ids: Vec<u32> = range
                        .filter(|&p| m.matches(&self.values[p]))
                        .flat_map(|p| self.ids[p].iter().copied())
                        .collect();
                    ids.sort_unstable();
                    ids.dedup();
                    ids
                }
            };
            if ids.is_empty() {
                return ids;
            }
            ids.shrink_to_fit();
            sets.push(ids);
        }
        let mut result = if sets.is_empty() {
            (0..self.num_series() as u32).collect()
        } else {
            sets.sort_by_key(Vec::len);
            let mut result = sets.swap_remove(0);
            for other in &sets {
                result.retain(|id| other.binary_search(id).is_ok());
            }
            result
        };
        let empty_matchers: Vec<&Matcher> = matchers.iter().filter(|m| m.matches_empty()).collect();
        if !empty_matchers.is_empty() {
            result.retain(|&id| {
                empty_matchers
                    .iter()
                    .all(|m| m.matches(self.value_of(id, &m.name)))
            });
        }
        result
    }

    /// The Arrow schema of `postings.parquet`.
    pub fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new(COL_NAME, DataType::Utf8, false),
            Field::new(COL_VALUE, DataType::Utf8, false),
            Field::new(
                COL_SERIES_IDS,
                DataType::List(Arc::new(Field::new("item", DataType::UInt32, false))),
                false,
            ),
        ]))
    }

    /// The postings as one record batch.
    pub fn to_batch(&self) -> Result<RecordBatch, arrow_schema::ArrowError> {
        let mut names = StringBuilder::new();
        let mut values = StringBuilder::new();
        let mut ids = ListBuilder::new(UInt32Builder::new()).with_field(Arc::new(Field::new(
            "item",
            DataType::UInt32,
            false,
        )));
        for (p, value) in self.values.iter().enumerate() {
            names.append_value(&self.names[self.pair_name[p] as usize].0);
            values.append_value(value);
            ids.values().append_slice(&self.ids[p]);
            ids.append(true);
        }
        let cols: Vec<ArrayRef> = vec![
            Arc::new(names.finish()),
            Arc::new(values.finish()),
            Arc::new(ids.finish()),
        ];
        RecordBatch::try_new(Self::schema(), cols)
    }

    /// Reads postings rows from decoded batches.
    pub fn from_batches(batches: &[RecordBatch], num_series: usize) -> Result<Self, PostingsError> {
        let mut rows = Vec::new();
        for b in batches {
            let col = |name: &str| {
                b.column_by_name(name)
                    .ok_or_else(|| PostingsError(format!("postings lacks column {name}")))
            };
            let names = col(COL_NAME)?
                .as_any()
                .downcast_ref::<StringArray>()
                .ok_or_else(|| PostingsError("postings name is not utf8".into()))?;
            let values = col(COL_VALUE)?
                .as_any()
                .downcast_ref::<StringArray>()
                .ok_or_else(|| PostingsError("postings value is not utf8".into()))?;
            let lists = col(COL_SERIES_IDS)?
                .as_any()
                .downcast_ref::<ListArray>()
                .ok_or_else(|| PostingsError("postings series_ids is not a list".into()))?;
            for i in 0..b.num_rows() {
                let inner = lists.value(i);
                let ids = inner
                    .as_any()
                    .downcast_ref::<UInt32Array>()
                    .ok_or_else(|| PostingsError("postings ids are not uint32".into()))?;
                rows.push((
                    names.value(i).to_string(),
                    values.value(i).to_string(),
                    ids.values().to_vec(),
                ));
            }
        }
        Self::from_pairs(rows.into_iter(), num_series)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> (Vec<Labels>, Postings) {
        let ls = vec![
            Labels::from_pairs([("__name__", "up"), ("job", "a"), ("env", "prod")]),
            Labels::from_pairs([("__name__", "up"), ("job", "b")]),
            Labels::from_pairs([("__name__", "mem"), ("job", "a"), ("env", "dev")]),
        ];
        let p = Postings::build(ls.iter());
        (ls, p)
    }

    #[test]
    fn matchers_like_prometheus() {
        let (ls, p) = sample();
        for (i, l) in ls.iter().enumerate() {
            assert_eq!(&p.labels(i as u32), l);
        }
        let m = |op, n: &str, v: &str| Matcher::new(op, n, v).unwrap();
        assert_eq!(p.matching(&[Matcher::equal("__name__", "up")]), vec![0, 1]);
        assert_eq!(
            p.matching(&[m(MatchOp::NotEqual, "env", "prod")]),
            vec![1, 2]
        );
        assert_eq!(p.matching(&[Matcher::equal("env", "")]), vec![1]);
        assert_eq!(
            p.matching(&[m(MatchOp::RegexMatch, "env", "p.*|d.*")]),
            vec![0, 2]
        );
        assert_eq!(p.matching(&[m(MatchOp::RegexNoMatch, "job", "a")]), vec![1]);
        assert_eq!(
            p.matching(&[m(MatchOp::RegexMatch, "env", ".*")]),
            vec![0, 1, 2]
        );
        assert!(p.matching(&[Matcher::equal("nope", "x")]).is_empty());
        assert_eq!(p.matching(&[]), vec![0, 1, 2]);
    }

    #[test]
    fn batch_round_trip() {
        let (ls, p) = sample();
        let b = p.to_batch().unwrap();
        let q = Postings::from_batches(&[b], ls.len()).unwrap();
        for (i, l) in ls.iter().enumerate() {
            assert_eq!(&q.labels(i as u32), l);
        }
        assert!(Postings::from_batches(&[p.to_batch().unwrap()], 1).is_err());
    }
}
