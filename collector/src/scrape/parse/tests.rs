use super::*;

fn text(body: &str) -> Parsed {
    parse_exposition(body, Format::Text).unwrap_or_else(|e| panic!("{e}: {body}"))
}

fn om(body: &str) -> Parsed {
    parse_exposition(body, Format::OpenMetrics).unwrap_or_else(|e| panic!("{e}: {body}"))
}

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
    let p = text(
        "# HELP http_requests_total Requests.\n\
         # TYPE http_requests_total counter\n\
         http_requests_total{method=\"post\",code=\"200\"} 1027 1395066363000\n\
         # TYPE temp gauge\n\
         temp -3.5\n\
         untyped_thing{a=\"b\"} NaN\n\
         inf_thing +Inf\n",
    );
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
    let p = text(
        "# TYPE http_request_duration_seconds histogram\n\
         http_request_duration_seconds_bucket{code=\"200\",le=\"0.05\"} 24054\n\
         http_request_duration_seconds_bucket{code=\"200\",le=\"1\"} 33444\n\
         http_request_duration_seconds_bucket{code=\"200\",le=\"1000000\"} 33450\n\
         http_request_duration_seconds_bucket{code=\"200\",le=\"+Inf\"} 144320\n\
         http_request_duration_seconds_sum{code=\"200\"} 53423\n\
         http_request_duration_seconds_count{code=\"200\"} 144320\n",
    );
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
    let p = text(
        "# TYPE rpc_duration_seconds summary\n\
         rpc_duration_seconds{quantile=\"0.5\"} 4773\n\
         rpc_duration_seconds{quantile=\"0.99\"} 76656\n\
         rpc_duration_seconds{quantile=\"1\"} 90000\n\
         rpc_duration_seconds_sum 1.7560473e+07\n\
         rpc_duration_seconds_count 2693\n",
    );
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
    let p = text(
        "# TYPE cluster:vm_memory:ratio gauge\n\
         cluster:vm_memory:ratio{vm=\"a,b=c}\"} 0.5\n\
         msdos{path=\"C:\\\\DIR\\\\FILE.TXT\",error=\"Cannot find file:\\n\\\"FILE.TXT\\\"\"} 1.458255915e9\n\
         spaced { a = \"1\" , b=\"\" , } 2\n\
         empty_braces{} 3\n",
    );
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

#[test]
fn malformed_text_fails_with_the_line_and_reason() {
    let cases = [
        ("good 1\nbad-name 1\n", 2, "unexpected character '-'"),
        ("novalue\n", 1, "no value"),
        ("badvalue abc\n", 1, "invalid value \"abc\""),
        ("badts 1 12.5\n", 1, "invalid timestamp \"12.5\""),
        ("unterminated{a=\"1} 2\n", 1, "unterminated label set"),
        (
            "dup{a=\"1\",a=\"2\"} 2\n",
            1,
            "label name \"a\" is not unique",
        ),
        ("x{1a=\"1\"} 2\n", 1, "invalid label name"),
        ("x{a=1} 2\n", 1, "expected a quoted value"),
        ("x{a=\"1\" b=\"2\"} 2\n", 1, "expected `,` or `}`"),
        ("x 1 2 3\n", 1, "unexpected text"),
        ("1x 2\n", 1, "invalid metric name"),
        ("# TYPE x bogus\nx 1\n", 1, "invalid metric type"),
        ("# TYPE x gaugehistogram\n", 1, "invalid metric type"),
        ("{a=\"1\"} 2\n", 1, "missing metric name"),
    ];
    for (body, line, reason) in cases {
        let e = parse_exposition(body, Format::Text).expect_err(body);
        assert_eq!(e.line, line, "{body:?}: {e}");
        assert!(e.reason.contains(reason), "{body:?}: {e}");
    }
}

#[test]
fn text_ignores_other_comments_and_blank_lines() {
    let p = text("# a comment\n\n#\n  spaced 1  \r\n# EOF\nafter 2\n");
    assert_eq!(p.samples.len(), 2);
    assert_eq!(find(&p, "after", &[]).value, 2.0);
}

#[test]
fn garbage_never_panics() {
    let inputs = [
        "",
        "{",
        "x{",
        "x{a",
        "x{a=",
        "x{a=\"",
        "x{a=\"\\",
        "x{a=\"\\\"",
        "x{} ",
        "x{}1",
        "#",
        "# TYPE",
        "# HELP",
        "\u{0}\u{1}\u{ffff}",
        "é 1",
        "x{é=\"1\"} 1",
        "x{a=\"é\"} 1e400",
    ];
    for s in inputs {
        for format in [Format::Text, Format::OpenMetrics] {
            let _ = parse_exposition(s, format);
            let _ = parse_series(s, MetricKind::Unknown);
        }
    }
    // Every prefix of a valid OpenMetrics body parses or fails cleanly.
    let body = "# TYPE a counter\na_total{x=\"1\\\"\"} 1 1.5 # {t=\"1\"} 2\n# EOF\n";
    for i in 0..body.len() {
        if body.is_char_boundary(i) {
            let _ = parse_exposition(&body[..i], Format::OpenMetrics);
            let _ = parse_exposition(&body[..i], Format::Text);
        }
    }
}

#[test]
fn openmetrics_types_units_timestamps_and_exemplars() {
    let p = om("# TYPE acme_http_router_request_seconds summary\n\
         # UNIT acme_http_router_request_seconds seconds\n\
         # HELP acme_http_router_request_seconds Latency though all of ACME's HTTP request router.\n\
         acme_http_router_request_seconds_sum{path=\"/api/v1\",method=\"GET\"} 9036.32\n\
         acme_http_router_request_seconds_count{path=\"/api/v1\",method=\"GET\"} 807283.0\n\
         acme_http_router_request_seconds_created{path=\"/api/v1\",method=\"GET\"} 1605281325.0\n\
         # TYPE go_goroutines gauge\n\
         go_goroutines 69 1520879607.789\n\
         # TYPE foo counter\n\
         foo_total 17.0 1520879607.789 # {trace_id=\"KOO5S4vxi0o\"} 0.67\n\
         foo_created 1520430000.123\n\
         # TYPE h histogram\n\
         h_bucket{le=\"1\"} 0 # {trace_id=\"x\"} 0.5 123\n\
         h_bucket{le=\"+Inf\"} 2\n\
         h_count 2\n\
         h_sum -Inf\n\
         h_created 1\n\
         # TYPE gh gaugehistogram\n\
         gh_bucket{le=\"10\"} 1\n\
         gh_gcount 1\n\
         gh_gsum NaN\n\
         # TYPE build info\n\
         build_info{version=\"1.2\\n\\\"x\\\\\"} 1\n\
         # TYPE state stateset\n\
         state{state=\"a\"} 1\n\
         state{state=\"b\"} 0\n\
         # TYPE other unknown\n\
         other 1\n\
         other_created 5\n\
         # EOF\n");
    let names: Vec<&str> = p.samples.iter().map(|s| s.name.as_str()).collect();
    assert!(
        !names
            .iter()
            .any(|n| n.ends_with("_created") && *n != "other_created"),
        "_created series of counters, summaries and histograms are dropped: {names:?}"
    );
    assert!(
        names.contains(&"other_created"),
        "unknown-typed _created stays"
    );
    assert_eq!(p.samples.len(), 16, "{names:?}");
    let g = find(&p, "go_goroutines", &[]);
    assert_eq!(
        g.timestamp_ms,
        Some(1_520_879_607_789),
        "seconds with a fraction"
    );
    let f = find(&p, "foo_total", &[]);
    assert_eq!((f.value, f.timestamp_ms), (17.0, Some(1_520_879_607_789)));
    assert_eq!(find(&p, "h_bucket", &[("le", "1.0")]).value, 0.0);
    assert_eq!(find(&p, "h_bucket", &[("le", "+Inf")]).value, 2.0);
    assert_eq!(find(&p, "h_sum", &[]).value, f64::NEG_INFINITY);
    assert_eq!(find(&p, "gh_bucket", &[("le", "10.0")]).value, 1.0);
    assert!(find(&p, "gh_gsum", &[]).value.is_nan());
    assert_eq!(
        find(&p, "build_info", &[("version", "1.2\n\"x\\")]).value,
        1.0
    );
    assert_eq!(find(&p, "state", &[("state", "b")]).value, 0.0);
}

#[test]
fn openmetrics_needs_eof_and_nothing_after_it() {
    let cases = [
        ("a 1\n", "without # EOF"),
        ("a 1\n# EOF\nb 2\n", "data after # EOF"),
        ("a 1\n\n# EOF\n", "empty line"),
        ("# a comment\n# EOF\n", "invalid comment keyword"),
        ("#TYPE a gauge\n# EOF\n", "invalid comment"),
        ("# TYPE a untyped\n# EOF\n", "invalid metric type"),
        ("a 1 abc\n# EOF\n", "invalid timestamp"),
        ("a 1 NaN\n# EOF\n", "invalid timestamp"),
        ("a{b=\"1\"}2\n# EOF\n", "unexpected character"),
    ];
    for (body, reason) in cases {
        let e = parse_exposition(body, Format::OpenMetrics).expect_err(body);
        assert!(e.reason.contains(reason), "{body:?}: {e}");
    }
    assert_eq!(om("# EOF\n").samples.len(), 0);
    assert_eq!(
        om("a 1\n# EOF").samples.len(),
        1,
        "the last newline is optional"
    );
}

#[test]
fn the_content_type_picks_the_format() {
    for (ct, want) in [
        (None, Format::Text),
        (
            Some("text/plain; version=0.0.4; charset=utf-8"),
            Format::Text,
        ),
        (
            Some("application/openmetrics-text; version=1.0.0; charset=utf-8"),
            Format::OpenMetrics,
        ),
        (Some("Application/OpenMetrics-Text"), Format::OpenMetrics),
        (Some("application/json"), Format::Text),
    ] {
        assert_eq!(Format::from_content_type(ct), want, "{ct:?}");
    }
}

#[test]
fn the_parser_yields_raw_series_text_without_parsing_labels() {
    let body = "# TYPE h histogram\nh_bucket{le=\"1\", a=\"x}\\\"y\"} 3 1000\nplain 2\n";
    let entries: Vec<Entry> = Parser::new(body, Format::Text)
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[0].series, "h_bucket{le=\"1\", a=\"x}\\\"y\"}");
    assert_eq!(entries[0].kind, MetricKind::Histogram);
    assert_eq!(entries[0].timestamp_ms, Some(1000));
    assert_eq!(entries[1].series, "plain");
    let (name, labels) = parse_series(entries[0].series, entries[0].kind).unwrap();
    assert_eq!(name, "h_bucket");
    assert_eq!(
        labels,
        [
            ("a".to_string(), "x}\"y".to_string()),
            ("le".to_string(), "1.0".to_string())
        ]
    );
}
