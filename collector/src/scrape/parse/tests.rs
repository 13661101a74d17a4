use super::*;

fn find<'a>(p: &'a Parsed, name: &str, labels: &[(&str, &str)]) -> &'a ParsedSample {
    let want: Vec<(String, String)> = {
        let mut v: Vec<(String, String)> = labels
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        v.sort();
        v
    };
    p.samples
        .iter()
        .find(|s| s.name == name && s.labels == want)
        .unwrap_or_else(|| panic!("no {name}{labels:?} in {:#?}", p.samples))
}

#[test]
fn counters_gauges_untyped_and_timestamps() {
    let p = parse_exposition(
        "# HELP http_requests_total Requests.\n\
         # TYPE http_requests_total counter\n\
         http_requests_total{method=\"post\",code=\"200\"} 1027 1395066363000\n\
         # TYPE temp gauge\n\
         temp -3.5\n\
         untyped_thing{a=\"b\"} NaN\n\
         inf_thing +Inf\n",
    );
    assert_eq!(p.skipped_lines, 0);
    assert_eq!(p.samples.len(), 4);
    let c = find(
        &p,
        "http_requests_total",
        &[("code", "200"), ("method", "post")],
    );
    assert_eq!(c.value, 1027.0);
    assert_eq!(c.timestamp_ms, Some(1_395_066_363_000));
    let g = find(&p, "temp", &[]);
    assert_eq!(g.value, -3.5);
    assert_eq!(g.timestamp_ms, None);
    assert!(find(&p, "untyped_thing", &[("a", "b")]).value.is_nan());
    assert_eq!(find(&p, "inf_thing", &[]).value, f64::INFINITY);
}

#[test]
fn histograms_expand_to_bucket_sum_count() {
    let p = parse_exposition(
        "# TYPE http_request_duration_seconds histogram\n\
         http_request_duration_seconds_bucket{code=\"200\",le=\"0.05\"} 24054\n\
         http_request_duration_seconds_bucket{code=\"200\",le=\"1\"} 33444\n\
         http_request_duration_seconds_bucket{code=\"200\",le=\"1000000\"} 33450\n\
         http_request_duration_seconds_bucket{code=\"200\",le=\"+Inf\"} 144320\n\
         http_request_duration_seconds_sum{code=\"200\"} 53423\n\
         http_request_duration_seconds_count{code=\"200\"} 144320\n",
    );
    assert_eq!(p.skipped_lines, 0);
    assert_eq!(p.samples.len(), 6);
    let b = "http_request_duration_seconds_bucket";
    assert_eq!(
        find(&p, b, &[("code", "200"), ("le", "0.05")]).value,
        24054.0
    );
    // Prometheus 3 normalises le: 1 -> 1.0, 1000000 -> 1e+06.
    assert_eq!(
        find(&p, b, &[("code", "200"), ("le", "1.0")]).value,
        33444.0
    );
    assert_eq!(
        find(&p, b, &[("code", "200"), ("le", "1e+06")]).value,
        33450.0
    );
    assert_eq!(
        find(&p, b, &[("code", "200"), ("le", "+Inf")]).value,
        144320.0
    );
    assert_eq!(
        find(&p, "http_request_duration_seconds_sum", &[("code", "200")]).value,
        53423.0
    );
    assert_eq!(
        find(
            &p,
            "http_request_duration_seconds_count",
            &[("code", "200")]
        )
        .value,
        144320.0
    );
}

#[test]
fn summaries_expand_to_quantile_sum_count() {
    let p = parse_exposition(
        "# TYPE rpc_duration_seconds summary\n\
         rpc_duration_seconds{quantile=\"0.5\"} 4773\n\
         rpc_duration_seconds{quantile=\"0.99\"} 76656\n\
         rpc_duration_seconds{quantile=\"1\"} 90000\n\
         rpc_duration_seconds_sum 1.7560473e+07\n\
         rpc_duration_seconds_count 2693\n",
    );
    assert_eq!(p.skipped_lines, 0);
    assert_eq!(p.samples.len(), 5);
    assert_eq!(
        find(&p, "rpc_duration_seconds", &[("quantile", "0.5")]).value,
        4773.0
    );
    assert_eq!(
        find(&p, "rpc_duration_seconds", &[("quantile", "0.99")]).value,
        76656.0
    );
    assert_eq!(
        find(&p, "rpc_duration_seconds", &[("quantile", "1.0")]).value,
        90000.0
    );
    assert_eq!(find(&p, "rpc_duration_seconds_sum", &[]).value, 1.7560473e7);
    assert_eq!(find(&p, "rpc_duration_seconds_count", &[]).value, 2693.0);
}

#[test]
fn colon_names_and_awkward_label_values_survive() {
    let p = parse_exposition(
        "# TYPE cluster:vm_memory:ratio gauge\n\
         cluster:vm_memory:ratio{vm=\"a,b=c}\"} 0.5\n\
         msdos{path=\"C:\\\\DIR\\\\FILE.TXT\",error=\"Cannot find file:\\n\\\"FILE.TXT\\\"\"} 1.458255915e9\n\
         spaced { a = \"1\" , b=\"\" , } 2\n\
         empty_braces{} 3\n",
    );
    assert_eq!(p.skipped_lines, 0, "{:#?}", p.samples);
    assert_eq!(
        find(&p, "cluster:vm_memory:ratio", &[("vm", "a,b=c}")]).value,
        0.5
    );
    let m = find(
        &p,
        "msdos",
        &[
            ("error", "Cannot find file:\n\"FILE.TXT\""),
            ("path", "C:\\DIR\\FILE.TXT"),
        ],
    );
    assert_eq!(m.value, 1.458255915e9);
    assert_eq!(find(&p, "spaced", &[("a", "1")]).value, 2.0);
    assert_eq!(find(&p, "empty_braces", &[]).value, 3.0);
}

#[test]
fn malformed_lines_are_skipped_and_counted() {
    let p = parse_exposition(
        "good 1\n\
         bad-name 1\n\
         novalue\n\
         badvalue abc\n\
         badts 1 12.5\n\
         unterminated{a=\"1} 2\n\
         dup{a=\"1\",a=\"2\"} 2\n\
         # TYPE h histogram\n\
         h_bucket{x=\"1\"} 3\n\
         # a comment\n\
         # EOF\n",
    );
    assert_eq!(p.samples.len(), 1);
    assert_eq!(p.samples[0].name, "good");
    // 6 malformed lines, plus the bucket without `le` that prometheus-parse drops.
    assert_eq!(p.skipped_lines, 7);
}

#[test]
fn formats_like_go() {
    let cases = [
        (0.0, "0.0"),
        (1.0, "1.0"),
        (-1.0, "-1.0"),
        (0.05, "0.05"),
        (0.1, "0.1"),
        (2.5, "2.5"),
        (10.0, "10.0"),
        (100000.0, "100000.0"),
        (1e6, "1e+06"),
        (123456789.0, "1.23456789e+08"),
        (0.0001, "0.0001"),
        (0.00001, "1e-05"),
        (f64::INFINITY, "+Inf"),
        (f64::NEG_INFINITY, "-Inf"),
        (f64::NAN, "NaN"),
    ];
    for (v, want) in cases {
        assert_eq!(format_openmetrics_float(v), want, "{v}");
    }
}
