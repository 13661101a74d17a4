//! Object-store access for blocks: paths, error mapping, and a Parquet
//! [`AsyncFileReader`] that serves cached metadata and reads byte ranges.

use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::FutureExt;
use object_store::path::Path as ObjPath;
use object_store::{ObjectStore, ObjectStoreExt};
use parquet::arrow::arrow_reader::ArrowReaderOptions;
use parquet::arrow::async_reader::AsyncFileReader;
use parquet::errors::ParquetError;
use parquet::file::metadata::ParquetMetaData;

use crate::StorageError;

/// The prefix under which every block lives.
pub const BLOCKS_PREFIX: &str = "blocks";

/// A storage error for a malformed or unexpected object.
pub fn invalid(path: impl Into<String>, msg: impl std::fmt::Display) -> StorageError {
    StorageError::Io {
        path: path.into(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidData, msg.to_string()),
    }
}

/// Maps an object-store error to a storage error.
pub fn store_err(path: &ObjPath, e: object_store::Error) -> StorageError {
    let kind = match e {
        object_store::Error::NotFound { .. } => std::io::ErrorKind::NotFound,
        _ => std::io::ErrorKind::Other,
    };
    StorageError::Io {
        path: path.to_string(),
        source: std::io::Error::new(kind, e.to_string()),
    }
}

/// Maps a Parquet or Arrow error on `path` to a storage error.
pub fn parquet_err(path: &ObjPath, e: impl std::fmt::Display) -> StorageError {
    invalid(path.to_string(), e)
}

/// The object path of file `name` in block `id`.
pub fn block_file(id: &str, name: &str) -> ObjPath {
    ObjPath::from(format!("{BLOCKS_PREFIX}/{id}/{name}"))
}

/// The object prefix of block `id`.
pub fn block_prefix(id: &str) -> ObjPath {
    ObjPath::from(format!("{BLOCKS_PREFIX}/{id}"))
}

/// Reads a whole object.
pub async fn get_all(store: &dyn ObjectStore, path: &ObjPath) -> Result<Bytes, StorageError> {
    let res = store.get(path).await.map_err(|e| store_err(path, e))?;
    res.bytes().await.map_err(|e| store_err(path, e))
}

/// Writes a whole object.
pub async fn put_all(
    store: &dyn ObjectStore,
    path: &ObjPath,
    body: Vec<u8>,
) -> Result<(), StorageError> {
    store
        .put(path, Bytes::from(body).into())
        .await
        .map(|_| ())
        .map_err(|e| store_err(path, e))
}

/// Reads a Parquet file through ranged `get_range` calls, returning the
/// metadata loaded when the block was opened, and counting bytes read.
pub struct RangeReader {
    store: Arc<dyn ObjectStore>,
    path: ObjPath,
    size: u64,
    metadata: Option<Arc<ParquetMetaData>>,
    bytes_read: Arc<AtomicU64>,
}

impl RangeReader {
    /// A reader of `path` (of `size` bytes); `metadata` is served from
    /// memory when given.
    pub fn new(
        store: Arc<dyn ObjectStore>,
        path: ObjPath,
        size: u64,
        metadata: Option<Arc<ParquetMetaData>>,
        bytes_read: Arc<AtomicU64>,
    ) -> Self {
        Self {
            store,
            path,
            size,
            metadata,
            bytes_read,
        }
    }

    fn check(&self, range: &Range<u64>) -> parquet::errors::Result<()> {
        if range.start > range.end || range.end > self.size {
            return Err(ParquetError::EOF(format!(
                "range {range:?} outside {} of {} bytes",
                self.path, self.size
            )));
        }
        Ok(())
    }
}

fn to_parquet(e: object_store::Error) -> ParquetError {
    ParquetError::External(Box::new(e))
}

impl AsyncFileReader for RangeReader {
    fn get_bytes(&mut self, range: Range<u64>) -> BoxFuture<'_, parquet::errors::Result<Bytes>> {
        async move {
            self.check(&range)?;
            let b = self
                .store
                .get_range(&self.path, range)
                .await
                .map_err(to_parquet)?;
            self.bytes_read.fetch_add(b.len() as u64, Ordering::Relaxed);
            Ok(b)
        }
        .boxed()
    }

    fn get_byte_ranges(
        &mut self,
        ranges: Vec<Range<u64>>,
    ) -> BoxFuture<'_, parquet::errors::Result<Vec<Bytes>>> {
        async move {
            for r in &ranges {
                self.check(r)?;
            }
            let out = self
                .store
                .get_ranges(&self.path, &ranges)
                .await
                .map_err(to_parquet)?;
            let n: usize = out.iter().map(Bytes::len).sum();
            self.bytes_read.fetch_add(n as u64, Ordering::Relaxed);
            Ok(out)
        }
        .boxed()
    }

    fn get_metadata<'a>(
        &'a mut self,
        _options: Option<&'a ArrowReaderOptions>,
    ) -> BoxFuture<'a, parquet::errors::Result<Arc<ParquetMetaData>>> {
        async move {
            if let Some(m) = &self.metadata {
                return Ok(m.clone());
            }
            let size = self.size;
            let m = parquet::file::metadata::ParquetMetaDataReader::new()
                .with_page_index_policy(parquet::file::metadata::PageIndexPolicy::Optional)
                .load_and_finish(&mut *self, size)
                .await?;
            let m = Arc::new(m);
            self.metadata = Some(m.clone());
            Ok(m)
        }
        .boxed()
    }
}
