//! The hub as Grafana's Prometheus datasource sees it: every request here
//! is shaped as Grafana (10/11) sends it (form-encoded POST for queries,
//! Unix-second `start`/`end` aligned to `step`, GET for the label, series
//! and metadata lookups of the query editor and template variables, its
//! `X-Grafana-*` headers), and each answer is checked for the JSON fields
//! Grafana reads.

use std::collections::BTreeSet;
use std::time::Duration;

use fleetwatch_model::remote_write::{encode_write_request_with_metadata, FamilyMetadata};
use reqwest::blocking::RequestBuilder;
use serde_json::Value;

use super::differential::fleet_samples;
use super::federate::now_ms;
use super::support::*;

/// Adds the headers Grafana's backend puts on datasource requests.
fn grafana(req: RequestBuilder) -> RequestBuilder {
    req.header("User-Agent", "Grafana/11.3.0")
        .header("X-Grafana-Org-Id", "1")
        .header("X-Dashboard-Uid", "fleet-overview")
        .header("X-Panel-Id", "2")
        .header("Accept", "application/json, text/plain, */*")
}

/// Sends a request and returns (status, JSON body).
fn send(req: RequestBuilder) -> (u16, Value) {
    let resp = grafana(req).send().expect("request to the hub");
    let status = resp.status().as_u16();
    let ct = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    assert!(ct.starts_with("application/json"), "content type {ct:?}");
    (status, resp.json().expect("JSON body"))
}

fn ok_data(base: &str, req: RequestBuilder, what: &str) -> Value {
    let (status, body) = send(req);
    assert_eq!(status, 200, "{what} against {base}: {body}");
    assert_eq!(body["status"], "success", "{what}: {body}");
    body["data"].clone()
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("expected a list of strings: {v}"))
        .iter()
        .map(|s| s.as_str().expect("string").to_string())
        .collect()
}

fn metadata() -> Vec<FamilyMetadata> {
    [
        (
            "kubevirt_vm_memory_usage_bytes",
            "gauge",
            "Memory in use by the VM.",
            "bytes",
        ),
        (
            "kubevirt_vmi_cpu_usage_seconds_total",
            "counter",
            "CPU time the VMI used.",
            "seconds",
        ),
        (
            "apiserver_request_duration_seconds",
            "histogram",
            "Request latency.",
            "seconds",
        ),
    ]
    .into_iter()
    .map(|(family, kind, help, unit)| FamilyMetadata {
        family: family.into(),
        kind,
        help: help.into(),
        unit: unit.into(),
    })
    .collect()
}

#[test]
fn grafana_datasource_requests_get_the_json_grafana_reads() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data_dir = tmp.path().join("hub");
    let mut hub = start_hub(&data_dir, tmp.path(), &[]);
    let now = now_ms();
    let base = now - now % 60_000 - 42 * 60_000;
    let resp = http()
        .post(format!("http://{}/api/v1/write", hub.addr))
        .header("Content-Type", "application/x-protobuf")
        .header("Content-Encoding", "snappy")
        .header("X-Prometheus-Remote-Write-Version", "0.1.0")
        .body(encode_write_request_with_metadata(
            &fleet_samples(base),
            &metadata(),
        ))
        .send()
        .expect("remote write");
    assert_eq!(resp.status().as_u16(), 204);

    let url = |path: &str| format!("http://{}{path}", hub.addr);
    let client = http();
    let (from, to) = (base / 1000 + 600, base / 1000 + 40 * 60);

    // "Save & test": buildinfo for the type and version, then `1+1`.
    let info = ok_data(
        &hub.addr,
        client.get(url("/api/v1/status/buildinfo")),
        "buildinfo",
    );
    let version = info["version"].as_str().expect("version");
    let major: u32 = version
        .split('.')
        .next()
        .and_then(|m| m.parse().ok())
        .unwrap_or_else(|| panic!("version {version:?} is not semver"));
    assert!(
        major >= 2,
        "Grafana gates label match[] on Prometheus >= 2.24: {version}"
    );
    let health = ok_data(
        &hub.addr,
        client
            .post(url("/api/v1/query"))
            .form(&[("query", "1+1"), ("time", &(now / 1000).to_string())]),
        "health query",
    );
    assert_eq!(health["resultType"], "scalar");
    assert_eq!(health["result"][1], "2");
    assert!(health["result"][0].is_number());

    // A time-series panel: range query, start/end aligned to step, the
    // rate interval as Grafana renders it.
    let step = 60;
    let (start, end) = (from - from % step, to - to % step);
    let matrix = ok_data(
        &hub.addr,
        client.post(url("/api/v1/query_range")).form(&[
            (
                "query",
                "sum by (cluster) (rate(kubevirt_vmi_cpu_usage_seconds_total[4m0s]))",
            ),
            ("start", &start.to_string()),
            ("end", &end.to_string()),
            ("step", &step.to_string()),
        ]),
        "range query",
    );
    assert_eq!(matrix["resultType"], "matrix");
    let result = matrix["result"].as_array().expect("result list");
    let clusters: BTreeSet<String> = result
        .iter()
        .map(|s| {
            s["metric"]["cluster"]
                .as_str()
                .expect("cluster")
                .to_string()
        })
        .collect();
    assert_eq!(clusters, ["c1", "c2", "c3"].map(String::from).into());
    for s in result {
        let values = s["values"].as_array().expect("values");
        assert_eq!(values.len() as i64, (end - start) / step + 1, "{s}");
        for (i, p) in values.iter().enumerate() {
            assert_eq!(p[0].as_i64(), Some(start + i as i64 * step), "{p}");
            let v = p[1].as_str().and_then(parse_float).expect("value string");
            assert!(v.is_finite() && v > 0.0, "{p}");
        }
    }

    // A table panel: instant query at a fractional time, and a time in
    // RFC 3339 (which Grafana's explore can send).
    for time in [format!("{}.250", to - 1), "2100-01-01T00:00:00Z".into()] {
        let vector = ok_data(
            &hub.addr,
            client.post(url("/api/v1/query")).form(&[
                ("query", "kubevirt_vm_memory_usage_bytes{cluster=\"c1\"}"),
                ("time", time.as_str()),
            ]),
            "instant query",
        );
        assert_eq!(vector["resultType"], "vector");
        let result = vector["result"].as_array().expect("result");
        let want = if time.starts_with("2100") { 0 } else { 4 };
        assert_eq!(result.len(), want, "at {time}: {vector}");
        for s in result {
            assert_eq!(s["metric"]["__name__"], "kubevirt_vm_memory_usage_bytes");
            assert!(
                s["value"][0].is_number() && s["value"][1].is_string(),
                "{s}"
            );
        }
    }

    // The query editor and template variables: label names, label values
    // with match[] and time bounds, the metric browser, series.
    let bounds = [("start", from.to_string()), ("end", to.to_string())];
    let names = strings(&ok_data(
        &hub.addr,
        client.get(url("/api/v1/labels")).query(&bounds),
        "labels",
    ));
    for want in [
        "__name__",
        "cluster",
        "instance",
        "job",
        "name",
        "namespace",
        "le",
    ] {
        assert!(
            names.contains(&want.to_string()),
            "labels lack {want}: {names:?}"
        );
    }
    let vm_names = strings(&ok_data(
        &hub.addr,
        client
            .get(url("/api/v1/labels"))
            .query(&[("match[]", "kubevirt_vm_memory_usage_bytes")])
            .query(&bounds),
        "labels with match[]",
    ));
    assert!(!vm_names.contains(&"le".to_string()), "{vm_names:?}");
    let values = strings(&ok_data(
        &hub.addr,
        client
            .get(url("/api/v1/label/cluster/values"))
            .query(&[("match[]", "kubevirt_vm_memory_usage_bytes")])
            .query(&bounds),
        "label values",
    ));
    assert_eq!(values, ["c1", "c2", "c3"]);
    let vms = strings(&ok_data(
        &hub.addr,
        client
            .get(url("/api/v1/label/name/values"))
            .query(&[("match[]", "kubevirt_vm_memory_usage_bytes{cluster=\"c2\"}")])
            .query(&bounds),
        "label values of one cluster",
    ));
    assert_eq!(vms, ["vm-0", "vm-1", "vm-2", "vm-3"]);
    let metrics = strings(&ok_data(
        &hub.addr,
        client
            .get(url("/api/v1/label/__name__/values"))
            .query(&bounds),
        "metric names",
    ));
    let mut sorted = metrics.clone();
    sorted.sort();
    assert_eq!(metrics, sorted, "metric names are sorted");
    assert!(metrics.contains(&"apiserver_request_duration_seconds_bucket".to_string()));
    let selector = [(
        "match[]",
        "{__name__=\"kubevirt_vm_memory_usage_bytes\", cluster=\"c1\"}",
    )];
    for req in [
        client
            .get(url("/api/v1/series"))
            .query(&selector)
            .query(&bounds),
        client.post(url("/api/v1/series")).form(&[
            selector[0],
            ("start", &bounds[0].1),
            ("end", &bounds[1].1),
        ]),
    ] {
        let series = ok_data(&hub.addr, req, "series");
        let list = series.as_array().expect("series list");
        assert_eq!(list.len(), 4, "{series}");
        for s in list {
            assert_eq!(s["cluster"], "c1");
            assert_eq!(s["__name__"], "kubevirt_vm_memory_usage_bytes");
        }
    }
    // Time bounds narrow lookups: nothing was written after `now`.
    let later = [
        ("start", (now / 1000 + 3600).to_string()),
        ("end", (now / 1000 + 7200).to_string()),
    ];
    let empty = ok_data(
        &hub.addr,
        client
            .get(url("/api/v1/series"))
            .query(&selector)
            .query(&later),
        "series after the data",
    );
    assert_eq!(empty, Value::Array(Vec::new()));

    // Metadata for the query builder's hints; exemplars for the toggle.
    let meta = ok_data(&hub.addr, client.get(url("/api/v1/metadata")), "metadata");
    let memory = &meta["kubevirt_vm_memory_usage_bytes"][0];
    assert_eq!(memory["type"], "gauge");
    assert_eq!(memory["help"], "Memory in use by the VM.");
    assert_eq!(memory["unit"], "bytes");
    assert_eq!(
        meta["apiserver_request_duration_seconds"][0]["type"],
        "histogram"
    );
    let one = ok_data(
        &hub.addr,
        client
            .get(url("/api/v1/metadata"))
            .query(&[("metric", "kubevirt_vmi_cpu_usage_seconds_total")]),
        "metadata of one metric",
    );
    assert_eq!(one.as_object().map(|m| m.len()), Some(1), "{one}");
    assert_eq!(
        one["kubevirt_vmi_cpu_usage_seconds_total"][0]["type"],
        "counter"
    );
    let limited = ok_data(
        &hub.addr,
        client.get(url("/api/v1/metadata")).query(&[("limit", "2")]),
        "metadata with limit",
    );
    assert_eq!(limited.as_object().map(|m| m.len()), Some(2), "{limited}");
    let exemplars = ok_data(
        &hub.addr,
        client.post(url("/api/v1/query_exemplars")).form(&[
            ("query", "kubevirt_vmi_cpu_usage_seconds_total"),
            ("start", &from.to_string()),
            ("end", &to.to_string()),
        ]),
        "exemplars",
    );
    assert!(exemplars.is_array());

    // Errors as Grafana shows them: status 400, errorType and error.
    let bad = [
        (
            vec![("query", "sum by (cluster (up)"), ("time", "1")],
            "/api/v1/query",
            "parse error",
        ),
        (
            vec![
                ("query", "up"),
                ("start", "100"),
                ("end", "50"),
                ("step", "15"),
            ],
            "/api/v1/query_range",
            "end timestamp must not be before start time",
        ),
        (
            vec![
                ("query", "up"),
                ("start", "0"),
                ("end", "1000000"),
                ("step", "1"),
            ],
            "/api/v1/query_range",
            "exceeded maximum resolution of 11,000 points per timeseries",
        ),
        (
            vec![("query", "up"), ("time", "yesterday")],
            "/api/v1/query",
            "invalid parameter \"time\"",
        ),
    ];
    for (form, path, want) in bad {
        let (status, body) = send(client.post(url(path)).form(&form));
        assert_eq!(status, 400, "{form:?}: {body}");
        assert_eq!(body["status"], "error");
        assert_eq!(body["errorType"], "bad_data", "{body}");
        let msg = body["error"].as_str().unwrap_or_default();
        assert!(msg.contains(want), "{form:?}: {msg:?} lacks {want:?}");
    }

    // Metadata is kept across a restart.
    assert!(
        hub.proc.terminate(Duration::from_secs(30)),
        "clean hub stop"
    );
    let hub = start_hub(&data_dir, tmp.path(), &[]);
    let again = ok_data(
        &hub.addr,
        http().get(format!("http://{}/api/v1/metadata", hub.addr)),
        "metadata after restart",
    );
    assert_eq!(again, meta);
}
