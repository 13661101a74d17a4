//! Reading the log store: stream selection by label matchers, then per
//! partition an index search narrowed by stream id, time range and literal
//! substring prefilters, merged with the in-memory head; entries come out
//! in time order (either direction), lazily, so a `limit` stops the work.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use tantivy::collector::{Collector, SegmentCollector};
use tantivy::columnar::Column;
use tantivy::query::{AllQuery, BooleanQuery, Occur, Query, RangeQuery, TermSetQuery};
use tantivy::schema::Value;
use tantivy::{
    DocAddress, DocId, Score, Searcher, SegmentOrdinal, SegmentReader, TantivyDocument, Term,
};

use fleetwatch_model::matcher::matches_all;
use fleetwatch_model::Matcher;

use super::partition::Partition;
use super::{filter, Batch, LogError, LogStore, StreamInfo};

/// Order of entries returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Direction {
    /// Oldest first.
    Forward,
    /// Newest first (Loki's default).
    #[default]
    Backward,
}

/// What to read.
#[derive(Debug, Clone)]
pub struct Selection<'a> {
    /// Stream selector.
    pub matchers: &'a [Matcher],
    /// Case-sensitive substrings every line must contain (the literal `|=`
    /// filters before any parser stage); used to prefilter in the index.
    pub contains: &'a [String],
    /// Start, Unix ns, inclusive.
    pub start_ns: i64,
    /// End, Unix ns, exclusive.
    pub end_ns: i64,
}

/// Work done by a read.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SelectStats {
    /// Candidate entries examined (after the index prefilter).
    pub lines_examined: u64,
    /// Bytes of the lines examined.
    pub bytes_examined: u64,
    /// Entries passed to the caller.
    pub lines_matched: u64,
    /// Streams selected by the matchers.
    pub streams: u64,
    /// Partitions searched.
    pub partitions: u64,
}

/// A consistent view of the store for one read.
struct Snapshot {
    matched: HashMap<u64, Arc<StreamInfo>>,
    all_streams: bool,
    parts: Vec<(Arc<Partition>, Searcher)>,
    head: Vec<Arc<Batch>>,
}

#[derive(Clone, Copy)]
enum Source {
    Doc { part: u32, seg: u32, doc: DocId },
    Head { batch: u32, stream: u32, entry: u32 },
}

#[derive(Clone, Copy)]
struct Cand {
    ts: i64,
    stream: u64,
    tie: u64,
    src: Source,
}

impl LogStore {
    fn snapshot(&self, matchers: &[Matcher], start_ns: i64, end_ns: i64) -> Snapshot {
        let st = self.inner.state.read();
        let matched: HashMap<u64, Arc<StreamInfo>> = st
            .streams
            .iter()
            .filter(|(_, s)| matches_all(matchers, &s.labels))
            .map(|(id, s)| (*id, Arc::clone(s)))
            .collect();
        let all_streams = matched.len() == st.streams.len();
        let parts = st
            .partitions
            .values()
            .filter(|p| p.end_ns > start_ns && p.start_ns < end_ns)
            .filter_map(|p| {
                st.searchers
                    .get(&p.start_ns)
                    .map(|s| (Arc::clone(p), s.clone()))
            })
            .collect();
        let mut head: Vec<Arc<Batch>> = st.frozen.iter().flat_map(|f| f.iter().cloned()).collect();
        head.extend(st.head.iter().cloned());
        Snapshot {
            matched,
            all_streams,
            parts,
            head,
        }
    }

    /// Calls `visit(stream, ts, line, metadata)` for each entry matching
    /// `sel`, in `dir` order, until it returns false.
    pub fn select(
        &self,
        sel: &Selection<'_>,
        dir: Direction,
        mut visit: impl FnMut(&StreamInfo, i64, &str, &[(String, String)]) -> bool,
    ) -> Result<SelectStats, LogError> {
        let snap = self.snapshot(sel.matchers, sel.start_ns, sel.end_ns);
        let mut stats = SelectStats {
            streams: snap.matched.len() as u64,
            ..SelectStats::default()
        };
        if snap.matched.is_empty() || sel.start_ns >= sel.end_ns {
            return Ok(stats);
        }
        let pns = self.inner.opts.partition_ns;
        // Candidates per partition key, from the index and from the head.
        let mut buckets: BTreeMap<i64, Vec<Cand>> = BTreeMap::new();
        for (i, (p, searcher)) in snap.parts.iter().enumerate() {
            stats.partitions += 1;
            let docs = search_partition(&snap, p, searcher, sel, false)?;
            buckets
                .entry(p.start_ns)
                .or_default()
                .extend(docs.into_iter().map(|d| Cand {
                    ts: d.ts,
                    stream: d.stream,
                    tie: (u64::from(d.seg) << 32) | u64::from(d.doc),
                    src: Source::Doc {
                        part: i as u32,
                        seg: d.seg,
                        doc: d.doc,
                    },
                }));
        }
        for (bi, b) in snap.head.iter().enumerate() {
            for (si, (info, entries)) in b.streams.iter().enumerate() {
                if !snap.matched.contains_key(&info.id) {
                    continue;
                }
                for (ei, e) in entries.iter().enumerate() {
                    if e.timestamp_ns < sel.start_ns || e.timestamp_ns >= sel.end_ns {
                        continue;
                    }
                    let key = e.timestamp_ns.div_euclid(pns) * pns;
                    buckets.entry(key).or_default().push(Cand {
                        ts: e.timestamp_ns,
                        stream: info.id,
                        tie: (1u64 << 63) | (b.seq << 20) | ei as u64,
                        src: Source::Head {
                            batch: bi as u32,
                            stream: si as u32,
                            entry: ei as u32,
                        },
                    });
                }
            }
        }
        let keys: Vec<i64> = match dir {
            Direction::Forward => buckets.keys().copied().collect(),
            Direction::Backward => buckets.keys().rev().copied().collect(),
        };
        for key in keys {
            let Some(cands) = buckets.remove(&key) else {
                continue;
            };
            let mut go = true;
            for_each_sorted(cands, dir, |c| {
                let Some(info) = snap.matched.get(&c.stream) else {
                    return true;
                };
                let ok = match c.src {
                    Source::Doc { part, seg, doc } => {
                        let Some((p, searcher)) = snap.parts.get(part as usize) else {
                            return true;
                        };
                        let d: TantivyDocument =
                            match searcher.doc(DocAddress::new(seg as SegmentOrdinal, doc)) {
                                Ok(d) => d,
                                Err(e) => {
                                    tracing::warn!(error = %e, "cannot load log entry");
                                    return true;
                                }
                            };
                        let line = d
                            .get_first(p.fields.line)
                            .and_then(|v| v.as_str())
                            .unwrap_or("");
                        stats.lines_examined += 1;
                        stats.bytes_examined += line.len() as u64;
                        if !sel.contains.iter().all(|s| line.contains(s.as_str())) {
                            return true;
                        }
                        let meta = parse_meta(d.get_first(p.fields.meta).and_then(|v| v.as_str()));
                        stats.lines_matched += 1;
                        go = visit(info, c.ts, line, &meta);
                        true
                    }
                    Source::Head {
                        batch,
                        stream,
                        entry,
                    } => {
                        let e =
                            &snap.head[batch as usize].streams[stream as usize].1[entry as usize];
                        stats.lines_examined += 1;
                        stats.bytes_examined += e.line.len() as u64;
                        if !sel.contains.iter().all(|s| e.line.contains(s.as_str())) {
                            return true;
                        }
                        stats.lines_matched += 1;
                        go = visit(info, c.ts, &e.line, &e.metadata);
                        true
                    }
                };
                ok && go
            });
            if !go {
                break;
            }
        }
        Ok(stats)
    }

    /// Calls `visit(stream, ts, line_bytes)` for each entry matching `sel`,
    /// in no particular order. Reads only the index's fast fields unless
    /// `sel.contains` needs lines verified.
    pub fn select_meta(
        &self,
        sel: &Selection<'_>,
        mut visit: impl FnMut(&StreamInfo, i64, u64),
    ) -> Result<SelectStats, LogError> {
        if !sel.contains.is_empty() {
            return self.select(sel, Direction::Forward, |s, ts, line, _| {
                visit(s, ts, line.len() as u64);
                true
            });
        }
        let snap = self.snapshot(sel.matchers, sel.start_ns, sel.end_ns);
        let mut stats = SelectStats {
            streams: snap.matched.len() as u64,
            ..SelectStats::default()
        };
        if snap.matched.is_empty() || sel.start_ns >= sel.end_ns {
            return Ok(stats);
        }
        for (p, searcher) in &snap.parts {
            stats.partitions += 1;
            for d in search_partition(&snap, p, searcher, sel, true)? {
                if let Some(info) = snap.matched.get(&d.stream) {
                    stats.lines_examined += 1;
                    stats.bytes_examined += d.len;
                    stats.lines_matched += 1;
                    visit(info, d.ts, d.len);
                }
            }
        }
        for b in &snap.head {
            for (info, entries) in &b.streams {
                if !snap.matched.contains_key(&info.id) {
                    continue;
                }
                for e in entries {
                    if e.timestamp_ns >= sel.start_ns && e.timestamp_ns < sel.end_ns {
                        stats.lines_examined += 1;
                        stats.bytes_examined += e.line.len() as u64;
                        stats.lines_matched += 1;
                        visit(info, e.timestamp_ns, e.line.len() as u64);
                    }
                }
            }
        }
        Ok(stats)
    }

    /// Streams matching `matchers` with entries in partitions (or the head)
    /// overlapping `[start_ns, end_ns)`, sorted by labels.
    pub fn streams(
        &self,
        matchers: &[Matcher],
        start_ns: i64,
        end_ns: i64,
    ) -> Vec<Arc<StreamInfo>> {
        let snap = self.snapshot(matchers, start_ns, end_ns);
        let mut ids: BTreeSet<u64> = BTreeSet::new();
        for (p, _) in &snap.parts {
            let s = p.streams.read();
            ids.extend(s.iter().filter(|id| snap.matched.contains_key(id)));
        }
        for b in &snap.head {
            for (info, entries) in &b.streams {
                if snap.matched.contains_key(&info.id)
                    && entries
                        .iter()
                        .any(|e| e.timestamp_ns >= start_ns && e.timestamp_ns < end_ns)
                {
                    ids.insert(info.id);
                }
            }
        }
        let mut out: Vec<Arc<StreamInfo>> = ids
            .iter()
            .filter_map(|id| snap.matched.get(id).cloned())
            .collect();
        out.sort_by(|a, b| a.labels.cmp(&b.labels));
        out
    }

    /// Sorted label names of the streams [`LogStore::streams`] returns.
    pub fn label_names(&self, matchers: &[Matcher], start_ns: i64, end_ns: i64) -> Vec<String> {
        let names: BTreeSet<String> = self
            .streams(matchers, start_ns, end_ns)
            .iter()
            .flat_map(|s| s.labels.iter().map(|l| l.name.clone()).collect::<Vec<_>>())
            .collect();
        names.into_iter().collect()
    }

    /// Sorted values of label `name` among those streams.
    pub fn label_values(
        &self,
        name: &str,
        matchers: &[Matcher],
        start_ns: i64,
        end_ns: i64,
    ) -> Vec<String> {
        let values: BTreeSet<String> = self
            .streams(matchers, start_ns, end_ns)
            .iter()
            .filter_map(|s| s.labels.get(name).map(str::to_string))
            .collect();
        values.into_iter().collect()
    }
}

fn parse_meta(s: Option<&str>) -> Vec<(String, String)> {
    let Some(s) = s else { return Vec::new() };
    match serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(s) {
        Ok(m) => m
            .into_iter()
            .map(|(k, v)| (k, v.as_str().unwrap_or_default().to_string()))
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// Visits `v` in time order (per `dir`), sorting lazily in growing chunks
/// so an early stop does not pay for a full sort.
fn for_each_sorted(mut v: Vec<Cand>, dir: Direction, mut f: impl FnMut(&Cand) -> bool) {
    let key = |c: &Cand| match dir {
        Direction::Forward => (c.ts, c.tie),
        Direction::Backward => (i64::MAX - c.ts, u64::MAX - c.tie),
    };
    let mut start = 0;
    let mut chunk = 512;
    while start < v.len() {
        let rest = &mut v[start..];
        let n = if rest.len() > chunk {
            rest.select_nth_unstable_by_key(chunk, key);
            chunk
        } else {
            rest.len()
        };
        rest[..n].sort_unstable_by_key(key);
        for c in &rest[..n] {
            if !f(c) {
                return;
            }
        }
        start += n;
        chunk = chunk.saturating_mul(4);
    }
}

/// One matching document.
struct Hit {
    ts: i64,
    stream: u64,
    len: u64,
    seg: u32,
    doc: DocId,
}

fn search_partition(
    snap: &Snapshot,
    p: &Partition,
    searcher: &Searcher,
    sel: &Selection<'_>,
    with_len: bool,
) -> Result<Vec<Hit>, LogError> {
    let f = p.fields;
    let mut must: Vec<(Occur, Box<dyn Query>)> = Vec::new();
    if !snap.all_streams {
        let ids: Vec<Term> = {
            let here = p.streams.read();
            snap.matched
                .keys()
                .filter(|id| here.contains(id))
                .map(|id| Term::from_field_u64(f.stream, *id))
                .collect()
        };
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        must.push((Occur::Must, Box::new(TermSetQuery::new(ids))));
    }
    if sel.start_ns > p.start_ns || sel.end_ns < p.end_ns {
        must.push((
            Occur::Must,
            Box::new(RangeQuery::new(
                std::ops::Bound::Included(Term::from_field_i64(f.ts, sel.start_ns)),
                std::ops::Bound::Excluded(Term::from_field_i64(f.ts, sel.end_ns)),
            )),
        ));
    }
    if let Some(q) = filter::prefilter(&f, sel.contains) {
        must.push((Occur::Must, q));
    }
    let query: Box<dyn Query> = match must.len() {
        0 => Box::new(AllQuery),
        1 => must
            .pop()
            .map(|(_, q)| q)
            .unwrap_or_else(|| Box::new(AllQuery)),
        _ => Box::new(BooleanQuery::new(must)),
    };
    let collector = HitCollector {
        start_ns: sel.start_ns,
        end_ns: sel.end_ns,
        with_len,
    };
    searcher
        .search(&*query, &collector)
        .map_err(|source| LogError::Tantivy {
            context: format!("searching log partition {}", p.dir.display()),
            source,
        })
}

struct HitCollector {
    start_ns: i64,
    end_ns: i64,
    with_len: bool,
}

struct HitSegment {
    seg: u32,
    ts: Column<i64>,
    stream: Column<u64>,
    len: Option<Column<u64>>,
    start_ns: i64,
    end_ns: i64,
    hits: Vec<Hit>,
    buf_ts: Vec<Option<i64>>,
    buf_stream: Vec<Option<u64>>,
    buf_len: Vec<Option<u64>>,
}

impl Collector for HitCollector {
    type Fruit = Vec<Hit>;
    type Child = HitSegment;

    fn for_segment(
        &self,
        seg: SegmentOrdinal,
        reader: &SegmentReader,
    ) -> tantivy::Result<HitSegment> {
        let ff = reader.fast_fields();
        Ok(HitSegment {
            seg,
            ts: ff.i64("ts")?,
            stream: ff.u64("stream")?,
            len: if self.with_len {
                Some(ff.u64("len")?)
            } else {
                None
            },
            start_ns: self.start_ns,
            end_ns: self.end_ns,
            hits: Vec::new(),
            buf_ts: Vec::new(),
            buf_stream: Vec::new(),
            buf_len: Vec::new(),
        })
    }

    fn requires_scoring(&self) -> bool {
        false
    }

    fn merge_fruits(&self, fruits: Vec<Vec<Hit>>) -> tantivy::Result<Vec<Hit>> {
        Ok(fruits.into_iter().flatten().collect())
    }
}

impl SegmentCollector for HitSegment {
    type Fruit = Vec<Hit>;

    fn collect(&mut self, doc: DocId, _score: Score) {
        let Some(ts) = self.ts.first(doc) else { return };
        if ts < self.start_ns || ts >= self.end_ns {
            return;
        }
        let stream = self.stream.first(doc).unwrap_or(0);
        let len = self.len.as_ref().and_then(|c| c.first(doc)).unwrap_or(0);
        self.hits.push(Hit {
            ts,
            stream,
            len,
            seg: self.seg,
            doc,
        });
    }

    fn collect_block(&mut self, docs: &[DocId]) {
        // Columnar reads of a whole block are cheaper than one per doc.
        let n = docs.len();
        self.buf_ts.clear();
        self.buf_ts.resize(n, None);
        self.ts.first_vals(docs, &mut self.buf_ts);
        self.buf_stream.clear();
        self.buf_stream.resize(n, None);
        self.stream.first_vals(docs, &mut self.buf_stream);
        self.buf_len.clear();
        self.buf_len.resize(n, None);
        if let Some(len) = &self.len {
            len.first_vals(docs, &mut self.buf_len);
        }
        for (i, &doc) in docs.iter().enumerate() {
            let Some(ts) = self.buf_ts[i] else { continue };
            if ts < self.start_ns || ts >= self.end_ns {
                continue;
            }
            self.hits.push(Hit {
                ts,
                stream: self.buf_stream[i].unwrap_or(0),
                len: self.buf_len[i].unwrap_or(0),
                seg: self.seg,
                doc,
            });
        }
    }

    fn harvest(self) -> Vec<Hit> {
        self.hits
    }
}
