//! A block's Parquet files open in an independent reader (pyarrow) with the
//! expected row counts and schema.

use std::process::Command;

use fleetwatch_model::{Labels, Sample, STALE_NAN};
use fleetwatch_storage::block::{BlockStore, SampleLayout, ValueEncoding};

fn pyarrow_available() -> bool {
    Command::new("python3")
        .args(["-c", "import pyarrow"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

const CHECK: &str = r#"
import json, sys
import pyarrow.parquet as pq
block = sys.argv[1]
meta = json.load(open(block + "/meta.json"))
s = pq.read_table(block + "/samples.parquet")
names = s.schema.names
assert s.num_rows == meta["num_samples"], (s.num_rows, meta)
assert names[:2] == ["series_id", "timestamp"], names
assert str(s.schema.field("series_id").type) == "uint32"
assert str(s.schema.field("timestamp").type) == "int64"
if meta["value_encoding"] == "decimal":
    assert names[2:] == ["value_mantissa", "value_exponent"], names
    assert str(s.schema.field("value_mantissa").type) == "int64"
    assert str(s.schema.field("value_exponent").type) == "int8"
    m = s.column("value_mantissa").to_pylist()
    e = s.column("value_exponent").to_pylist()
    vals = [m[i] / 10 ** e[i] if e[i] != -128 else None for i in range(len(m))]
    assert vals[:3] == [1.5, 2.25, None], vals[:3]
else:
    assert names[2:] == ["value"], names
    assert str(s.schema.field("value").type) == "double"
    v = s.column("value").to_pylist()
    assert v[:2] == [1.5, 2.25] and v[2] != v[2], v[:3]
ser = pq.read_table(block + "/series.parquet")
assert ser.num_rows == meta["num_series"], ser.num_rows
assert ser.schema.names == ["series_id", "labels", "series_hash", "min_time", "max_time", "num_samples"], ser.schema.names
assert str(ser.schema.field("series_hash").type) == "uint64"
labels = ser.column("labels").to_pylist()[0]
assert labels[0] == {"name": "__name__", "value": "vm_mem"}, labels
post = pq.read_table(block + "/postings.parquet")
assert post.schema.names == ["name", "value", "series_ids"], post.schema.names
md = pq.ParquetFile(block + "/samples.parquet").metadata
assert md.row_group(0).column(0).statistics.has_min_max
print("pyarrow ok", s.num_rows, ser.num_rows)
"#;

#[tokio::test]
async fn block_files_open_in_pyarrow() {
    if !pyarrow_available() {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("pyarrow is required in CI (pip install pyarrow)");
        }
        println!("SKIPPED: python3 with pyarrow not available");
        return;
    }
    for values in [ValueEncoding::Plain, ValueEncoding::Decimal] {
        check_layout(values).await;
    }
}

async fn check_layout(values: ValueEncoding) {
    let dir = tempfile::tempdir().unwrap();
    let layout = SampleLayout {
        values,
        ..SampleLayout::default()
    };
    let bs = BlockStore::open(BlockStore::local(dir.path()).unwrap())
        .await
        .unwrap()
        .with_layout(layout);
    let series: Vec<(Labels, Vec<Sample>)> = (0..10)
        .map(|i| {
            let l = Labels::from_pairs([
                ("__name__", "vm_mem".to_string()),
                ("vm", format!("vm-{i}")),
            ]);
            let s = vec![
                Sample::new(1000, 1.5),
                Sample::new(2000, 2.25),
                Sample::new(3000, STALE_NAN),
            ];
            (l, s)
        })
        .collect();
    let meta = bs.write_block(series, 1000, 3000).await.unwrap();
    let block = dir.path().join("blocks").join(&meta.id);
    let out = Command::new("python3")
        .args(["-c", CHECK])
        .arg(&block)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "pyarrow check of the {values:?} layout failed:\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains("pyarrow ok 30 10"), "{stdout}");
}
