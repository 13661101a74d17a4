use super::*;

struct FakeQuery;

impl TemplateQuerier for FakeQuery {
    fn query(&self, expr: &str) -> Result<Vec<(Labels, f64)>, String> {
        match expr {
            "up" => Ok(vec![
                (
                    Labels::from_pairs([("__name__", "up"), ("instance", "b:9100")]),
                    0.0,
                ),
                (
                    Labels::from_pairs([("__name__", "up"), ("instance", "a:9100")]),
                    1.0,
                ),
            ]),
            "none" => Ok(vec![]),
            _ => Err(format!("bad query {expr}")),
        }
    }
}

fn data() -> AlertData {
    AlertData {
        labels: [
            ("cluster", "prod-1"),
            ("name", "vm-7"),
            ("alertname", "VMHighMemory"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect(),
        value: 0.9512,
        external_labels: [("hub".to_string(), "central".to_string())].into(),
        external_url: "http://hub:9190".into(),
    }
}

fn run(src: &str) -> String {
    expand("t", src, &data(), Some(&FakeQuery)).unwrap_or_else(|e| panic!("{src}: {e}"))
}

#[test]
fn labels_value_and_external_labels() {
    assert_eq!(
        run("VM {{ $labels.name }} high memory usage"),
        "VM vm-7 high memory usage"
    );
    assert_eq!(
        run("{{ .Labels.cluster }}/{{ $externalLabels.hub }}"),
        "prod-1/central"
    );
    assert_eq!(run("{{ $value }}"), "0.9512");
    assert_eq!(run("{{ $labels.missing }}."), ".");
    assert_eq!(run("no template"), "no template");
    assert_eq!(run("{{ $externalURL }}"), "http://hub:9190");
}

#[test]
fn functions_and_pipelines() {
    assert_eq!(run("{{ $value | humanizePercentage }}"), "95.12%");
    assert_eq!(run("{{ humanize 1234567 }}"), "1.235M");
    assert_eq!(run("{{ 2048 | humanize1024 }}"), "2ki");
    assert_eq!(run("{{ humanizeDuration 90 }}"), "1m 30s");
    assert_eq!(run("{{ printf \"%.2f\" $value }}"), "0.95");
    assert_eq!(run("{{ $labels.name | toUpper }}"), "VM-7");
    assert_eq!(run("{{ \"HELLO\" | toLower | title }}"), "Hello");
    assert_eq!(
        run("{{ reReplaceAll \"prod-(.*)\" \"p$1\" $labels.cluster }}"),
        "p1"
    );
    assert_eq!(run("{{ query \"up\" | first | value }}"), "0");
    assert_eq!(
        run("{{ query \"up\" | first | label \"instance\" }}"),
        "b:9100"
    );
    assert_eq!(
        run("{{ range query \"up\" | sortByLabel \"instance\" }}{{ .Labels.instance }}={{ .Value }};{{ end }}"),
        "a:9100=1;b:9100=0;"
    );
    assert_eq!(
        run("{{ with query \"none\" }}x{{ else }}empty{{ end }}"),
        "empty"
    );
    assert_eq!(run("{{ (query \"up\" | first).Value }}"), "0");
}

#[test]
fn control_flow_and_whitespace() {
    assert_eq!(
        run("{{ if gt $value 0.9 }}high{{ else }}low{{ end }}"),
        "high"
    );
    assert_eq!(
        run("{{ if eq $labels.cluster \"x\" }}x{{ else if eq $labels.cluster \"prod-1\" }}p{{ else }}o{{ end }}"),
        "p"
    );
    assert_eq!(run("a  {{- \"b\" -}}  c"), "abc");
    assert_eq!(run("{{/* comment */}}ok"), "ok");
    assert_eq!(
        run("{{ range $k, $v := $labels }}{{ $k }}={{ $v }},{{ end }}"),
        "alertname=VMHighMemory,cluster=prod-1,name=vm-7,"
    );
    assert_eq!(run("{{ $x := 3 }}{{ $x }}"), "3");
    assert_eq!(
        run("{{ if and $labels.name (not $labels.none) }}y{{ end }}"),
        "y"
    );
}

#[test]
fn errors_are_reported() {
    assert!(expand("t", "{{ if }}", &data(), None).is_err());
    assert!(expand("t", "{{ .Labels.x", &data(), None).is_err());
    let e = Template::parse("t", "{{ $value | humanise }}").unwrap_err();
    assert!(e.reason.contains("\"humanise\" not defined"), "{e}");
    assert!(expand("t", "{{ query \"up\" }}", &data(), None).is_err());
    let e = expand(
        "t",
        "{{ query \"none\" | first }}",
        &data(),
        Some(&FakeQuery),
    )
    .unwrap_err();
    assert!(e.reason.contains("no elements"), "{e}");
    assert!(expand("t", "{{ if 1 }}x", &data(), None).is_err());
}
