//! One time partition of the log store: a tantivy index in its own
//! directory (`<logs>/index/<start unix seconds>`), the streams it holds
//! (persisted in a `streams` file, fsynced before the index commit that
//! refers to them), and the WAL sequence number of its last commit (the
//! commit payload).

use std::collections::HashSet;
use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};

use parking_lot::{Mutex, RwLock};
use tantivy::schema::{
    Field, IndexRecordOption, NumericOptions, Schema, TextFieldIndexing, TextOptions, FAST,
    INDEXED, STORED, STRING,
};
use tantivy::tokenizer::{
    LowerCaser, RemoveLongFilter, SimpleTokenizer, TextAnalyzer, Token, TokenFilter, TokenStream,
    Tokenizer,
};
use tantivy::{Index, IndexReader, IndexWriter, ReloadPolicy, TantivyDocument};

use fleetwatch_model::loki::parse_stream_labels;
use fleetwatch_model::Labels;

use super::LogError;

/// Name of the line field's tokenizer.
pub const LINE_TOKENIZER: &str = "fw_line";
/// Longest token indexed; lines with a longer alphanumeric run are flagged
/// so substring prefilters never miss them.
pub const MAX_TOKEN_BYTES: usize = 255;
/// The `flags` term marking a line with an over-long token.
pub const FLAG_LONG_TOKEN: &str = "longtok";

/// The index fields.
#[derive(Debug, Clone, Copy)]
pub struct Fields {
    /// Unix nanoseconds (i64, indexed + fast).
    pub ts: Field,
    /// Stream id (u64, indexed + fast).
    pub stream: Field,
    /// Line length in bytes (u64, fast).
    pub len: Field,
    /// The line: tokenized for prefiltering, stored.
    pub line: Field,
    /// Structured metadata as a JSON object, stored.
    pub meta: Field,
    /// Raw terms marking special lines (see [`FLAG_LONG_TOKEN`]).
    pub flags: Field,
}

/// Builds the schema and its field handles.
pub fn schema() -> (Schema, Fields) {
    let mut b = Schema::builder();
    let ts = b.add_i64_field("ts", NumericOptions::default().set_indexed().set_fast());
    let stream = b.add_u64_field("stream", INDEXED | FAST);
    let len = b.add_u64_field("len", FAST);
    let line_opts = TextOptions::default()
        .set_indexing_options(
            TextFieldIndexing::default()
                .set_tokenizer(LINE_TOKENIZER)
                .set_index_option(IndexRecordOption::Basic)
                .set_fieldnorms(false),
        )
        .set_stored();
    let line = b.add_text_field("line", line_opts);
    let meta = b.add_text_field("meta", STORED);
    let flags = b.add_text_field("flags", STRING);
    (
        b.build(),
        Fields {
            ts,
            stream,
            len,
            line,
            meta,
            flags,
        },
    )
}

/// The analyzer of the line field (and of filter strings at query time):
/// alphanumeric runs, lowercased, without over-long and all-digit tokens.
/// All-digit tokens (timestamps, counters, durations) are most of a log's
/// distinct terms and the costliest to index; a filter token that is a
/// substring of one is all digits too, so it is dropped at query time as
/// well and the prefilter stays a superset.
pub fn line_analyzer() -> TextAnalyzer {
    TextAnalyzer::builder(SimpleTokenizer::default())
        .filter(RemoveLongFilter::limit(MAX_TOKEN_BYTES + 1))
        .filter(DropNumbers)
        .filter(LowerCaser)
        .build()
}

/// Token filter dropping tokens made only of ASCII digits.
#[derive(Clone, Copy)]
pub struct DropNumbers;

impl TokenFilter for DropNumbers {
    type Tokenizer<T: Tokenizer> = DropNumbersWrapper<T>;

    fn transform<T: Tokenizer>(self, tokenizer: T) -> DropNumbersWrapper<T> {
        DropNumbersWrapper(tokenizer)
    }
}

/// [`DropNumbers`] around a tokenizer.
#[derive(Clone)]
pub struct DropNumbersWrapper<T>(T);

impl<T: Tokenizer> Tokenizer for DropNumbersWrapper<T> {
    type TokenStream<'a> = DropNumbersStream<T::TokenStream<'a>>;

    fn token_stream<'a>(&'a mut self, text: &'a str) -> Self::TokenStream<'a> {
        DropNumbersStream(self.0.token_stream(text))
    }
}

/// The token stream of [`DropNumbers`].
pub struct DropNumbersStream<T>(T);

impl<T: TokenStream> TokenStream for DropNumbersStream<T> {
    fn advance(&mut self) -> bool {
        while self.0.advance() {
            if !self.0.token().text.bytes().all(|b| b.is_ascii_digit()) {
                return true;
            }
        }
        false
    }

    fn token(&self) -> &Token {
        self.0.token()
    }

    fn token_mut(&mut self) -> &mut Token {
        self.0.token_mut()
    }
}

/// True when `line` has an alphanumeric run longer than the indexed token
/// limit (non-ASCII bytes count as alphanumeric: a conservative test).
pub fn has_long_token(line: &str) -> bool {
    if line.len() <= MAX_TOKEN_BYTES {
        return false;
    }
    let mut run = 0usize;
    for &b in line.as_bytes() {
        if b.is_ascii_alphanumeric() || b >= 0x80 {
            run += 1;
            if run > MAX_TOKEN_BYTES {
                return true;
            }
        } else {
            run = 0;
        }
    }
    false
}

fn tantivy_err(context: String) -> impl FnOnce(tantivy::TantivyError) -> LogError {
    move |source| LogError::Tantivy { context, source }
}

/// One partition.
pub struct Partition {
    /// Start of the partition's time range (Unix ns, inclusive).
    pub start_ns: i64,
    /// End of the range (exclusive).
    pub end_ns: i64,
    /// The partition's directory.
    pub dir: PathBuf,
    /// The tantivy index.
    pub index: Index,
    /// Its reader (reloaded by the store after each commit).
    pub reader: IndexReader,
    /// Field handles.
    pub fields: Fields,
    /// The writer while the partition takes writes.
    pub writer: Mutex<Option<IndexWriter<TantivyDocument>>>,
    /// Ids of the streams with entries here (committed or being committed).
    pub streams: RwLock<HashSet<u64>>,
    /// The WAL sequence number of the last commit (0: none).
    pub committed_seq: Mutex<u64>,
}

impl Partition {
    /// Opens the partition in `dir` or creates it; returns it with the
    /// label sets of its streams.
    pub fn open(dir: &Path, start_ns: i64, end_ns: i64) -> Result<(Self, Vec<Labels>), LogError> {
        let io = |source| LogError::Io {
            path: dir.display().to_string(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(io)?;
        let (schema, fields) = schema();
        let ctx = || format!("opening log index {}", dir.display());
        let index = if dir.join("meta.json").exists() {
            Index::open_in_dir(dir).map_err(tantivy_err(ctx()))?
        } else {
            Index::create_in_dir(dir, schema).map_err(tantivy_err(ctx()))?
        };
        index.tokenizers().register(LINE_TOKENIZER, line_analyzer());
        let committed_seq = index
            .load_metas()
            .map_err(tantivy_err(ctx()))?
            .payload
            .and_then(|p| p.parse::<u64>().ok())
            .unwrap_or(0);
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .doc_store_cache_num_blocks(64)
            .try_into()
            .map_err(tantivy_err(ctx()))?;
        let labels = read_streams(&dir.join("streams"))?;
        let ids = labels.iter().map(|l| l.series_hash().0).collect();
        Ok((
            Self {
                start_ns,
                end_ns,
                dir: dir.to_path_buf(),
                index,
                reader,
                fields,
                writer: Mutex::new(None),
                streams: RwLock::new(ids),
                committed_seq: Mutex::new(committed_seq),
            },
            labels,
        ))
    }

    /// Appends the canonical label strings of new streams to the streams
    /// file and fsyncs it.
    pub fn persist_streams(&self, new: &[&Labels]) -> Result<(), LogError> {
        if new.is_empty() {
            return Ok(());
        }
        let path = self.dir.join("streams");
        let io = |source| LogError::Io {
            path: path.display().to_string(),
            source,
        };
        let mut text = String::new();
        for l in new {
            text.push_str(&l.to_string());
            text.push('\n');
        }
        let mut f = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(io)?;
        f.write_all(text.as_bytes()).map_err(io)?;
        f.sync_data().map_err(io)?;
        Ok(())
    }

    /// Bytes the partition takes on disk.
    pub fn disk_bytes(&self) -> u64 {
        dir_size(&self.dir)
    }
}

fn read_streams(path: &Path) -> Result<Vec<Labels>, LogError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(LogError::Io {
                path: path.display().to_string(),
                source,
            })
        }
    };
    let mut out = Vec::new();
    for line in text.lines() {
        match parse_stream_labels(line) {
            Ok(l) => out.push(l),
            // A torn last line: its streams are re-registered by WAL replay.
            Err(e) => tracing::warn!(path = %path.display(), error = %e, "skipping stream entry"),
        }
    }
    Ok(out)
}

/// Total size of the files under `dir` (bounded depth 2).
pub fn dir_size(dir: &Path) -> u64 {
    let mut total = 0;
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            if let Ok(m) = e.metadata() {
                if m.is_file() {
                    total += m.len();
                } else if m.is_dir() {
                    if let Ok(rd2) = std::fs::read_dir(e.path()) {
                        total += rd2
                            .flatten()
                            .filter_map(|e| e.metadata().ok())
                            .filter(|m| m.is_file())
                            .map(|m| m.len())
                            .sum::<u64>();
                    }
                }
            }
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_tokens_flagged() {
        assert!(!has_long_token("short line"));
        assert!(has_long_token(&format!("x {}", "a".repeat(300))));
        assert!(!has_long_token(&"ab ".repeat(200)));
    }
}
