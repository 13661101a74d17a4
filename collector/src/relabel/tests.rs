//! Every action against Prometheus's documented semantics (cases modelled
//! on Prometheus's `model/relabel` tests).

use super::*;

fn l(pairs: &[(&str, &str)]) -> Labels {
    Labels::from_pairs(pairs.iter().copied())
}

fn rule(yaml: &str) -> RelabelConfig {
    serde_yaml::from_str(yaml).unwrap_or_else(|e| panic!("{yaml}: {e}"))
}

struct Case {
    name: &'static str,
    input: &'static [(&'static str, &'static str)],
    rules: &'static [&'static str],
    /// `None` = dropped.
    output: Option<&'static [(&'static str, &'static str)]>,
}

const ABC: &[(&str, &str)] = &[("a", "foo"), ("b", "bar"), ("c", "baz")];

const CASES: &[Case] = &[
    Case {
        name: "replace with a capture and braces",
        input: ABC,
        rules: &["{source_labels: [a], regex: 'f(.*)', target_label: d, replacement: 'ch${1}-ch${1}'}"],
        output: Some(&[("a", "foo"), ("b", "bar"), ("c", "baz"), ("d", "choo-choo")]),
    },
    Case {
        name: "replace joins sources with the separator",
        input: ABC,
        rules: &["{source_labels: [a, b], regex: 'f(.*);(.*)r', target_label: a, replacement: 'b${1}${2}m'}"],
        output: Some(&[("a", "boobam"), ("b", "bar"), ("c", "baz")]),
    },
    Case {
        name: "replace with a custom separator",
        input: ABC,
        rules: &["{source_labels: [a, b], separator: '-', target_label: d}"],
        output: Some(&[("a", "foo"), ("b", "bar"), ("c", "baz"), ("d", "foo-bar")]),
    },
    Case {
        name: "regexes are anchored: a partial match does nothing",
        input: ABC,
        rules: &["{source_labels: [a], regex: 'o', target_label: d, replacement: x}"],
        output: Some(ABC),
    },
    Case {
        name: "no match, no change",
        input: ABC,
        rules: &["{source_labels: [a], regex: 'nomatch(.*)', target_label: d}"],
        output: Some(ABC),
    },
    Case {
        name: "an empty result deletes the target label",
        input: ABC,
        rules: &["{source_labels: [a], regex: '(f).*', target_label: b, replacement: '$2'}"],
        output: Some(&[("a", "foo"), ("c", "baz")]),
    },
    Case {
        name: "$1x names group 1x (empty), as in Go",
        input: ABC,
        rules: &["{source_labels: [a], target_label: b, replacement: '$1x'}"],
        output: Some(&[("a", "foo"), ("c", "baz")]),
    },
    Case {
        name: "$$ is a literal dollar",
        input: ABC,
        rules: &["{source_labels: [a], target_label: d, replacement: '$$${1}'}"],
        output: Some(&[("a", "foo"), ("b", "bar"), ("c", "baz"), ("d", "$foo")]),
    },
    Case {
        name: "defaults: missing source, static replacement (fast path)",
        input: ABC,
        rules: &["{target_label: d, replacement: static}"],
        output: Some(&[("a", "foo"), ("b", "bar"), ("c", "baz"), ("d", "static")]),
    },
    Case {
        name: "defaults: regex (.*) and replacement $1 copy a label",
        input: ABC,
        rules: &["{source_labels: [c], target_label: d}"],
        output: Some(&[("a", "foo"), ("b", "bar"), ("c", "baz"), ("d", "baz")]),
    },
    Case {
        name: "target label from a capture group",
        input: ABC,
        rules: &["{source_labels: [a], regex: '(.*)', target_label: '${1}_x', replacement: v}"],
        output: Some(&[("a", "foo"), ("b", "bar"), ("c", "baz"), ("foo_x", "v")]),
    },
    Case {
        name: "an invalid expanded target label is skipped",
        input: &[("a", "1bad")],
        rules: &["{source_labels: [a], target_label: '$1', replacement: v}"],
        output: Some(&[("a", "1bad")]),
    },
    Case {
        name: "keep: matching kept",
        input: ABC,
        rules: &["{source_labels: [a], regex: 'f.*', action: keep}"],
        output: Some(ABC),
    },
    Case {
        name: "keep: not matching dropped (anchored)",
        input: ABC,
        rules: &["{source_labels: [a], regex: 'o', action: keep}"],
        output: None,
    },
    Case {
        name: "drop: matching dropped",
        input: ABC,
        rules: &["{source_labels: [a, b], regex: 'foo;bar', action: drop}"],
        output: None,
    },
    Case {
        name: "drop: a missing label is the empty string",
        input: ABC,
        rules: &["{source_labels: [missing], regex: '', action: drop}"],
        output: None,
    },
    Case {
        name: "drop: not matching kept",
        input: ABC,
        rules: &["{source_labels: [a], regex: 'bar', action: drop}"],
        output: Some(ABC),
    },
    Case {
        name: "keepequal: equal kept",
        input: &[("a", "x"), ("b", "x")],
        rules: &["{source_labels: [a], target_label: b, action: keepequal}"],
        output: Some(&[("a", "x"), ("b", "x")]),
    },
    Case {
        name: "keepequal: different dropped",
        input: ABC,
        rules: &["{source_labels: [a], target_label: b, action: keepequal}"],
        output: None,
    },
    Case {
        name: "dropequal: equal dropped",
        input: &[("a", "x"), ("b", "x")],
        rules: &["{source_labels: [a], target_label: b, action: dropequal}"],
        output: None,
    },
    Case {
        name: "dropequal: different kept",
        input: ABC,
        rules: &["{source_labels: [a], target_label: b, action: dropequal}"],
        output: Some(ABC),
    },
    Case {
        name: "hashmod: md5, last 8 bytes big-endian, mod (Prometheus gives 976)",
        input: ABC,
        rules: &["{source_labels: [c], target_label: d, modulus: 1000, action: hashmod}"],
        output: Some(&[("a", "foo"), ("b", "bar"), ("c", "baz"), ("d", "976")]),
    },
    Case {
        name: "hashmod over joined sources",
        input: ABC,
        rules: &["{source_labels: [a, b], target_label: d, modulus: 1000, action: hashmod}"],
        output: Some(&[("a", "foo"), ("b", "bar"), ("c", "baz"), ("d", "750")]),
    },
    Case {
        name: "labelmap copies matching names",
        input: &[("__meta_zone", "z1"), ("__meta_rack", "r2"), ("a", "foo")],
        rules: &["{regex: '__meta_(.+)', action: labelmap}"],
        output: Some(&[
            ("__meta_rack", "r2"),
            ("__meta_zone", "z1"),
            ("a", "foo"),
            ("rack", "r2"),
            ("zone", "z1"),
        ]),
    },
    Case {
        name: "labelmap with a replacement template",
        input: ABC,
        rules: &["{regex: '(b|c)', replacement: '${1}_copy', action: labelmap}"],
        output: Some(&[
            ("a", "foo"),
            ("b", "bar"),
            ("b_copy", "bar"),
            ("c", "baz"),
            ("c_copy", "baz"),
        ]),
    },
    Case {
        name: "labeldrop removes matching names (anchored)",
        input: &[("a", "foo"), ("ab", "x"), ("b", "bar")],
        rules: &["{regex: 'a|b', action: labeldrop}"],
        output: Some(&[("ab", "x")]),
    },
    Case {
        name: "labelkeep keeps only matching names",
        input: &[("a", "foo"), ("ab", "x"), ("b", "bar")],
        rules: &["{regex: 'a.*', action: labelkeep}"],
        output: Some(&[("a", "foo"), ("ab", "x")]),
    },
    Case {
        name: "lowercase",
        input: &[("a", "FoO"), ("b", "BaR")],
        rules: &["{source_labels: [a, b], target_label: l, action: lowercase}"],
        output: Some(&[("a", "FoO"), ("b", "BaR"), ("l", "foo;bar")]),
    },
    Case {
        name: "uppercase",
        input: &[("a", "FoO")],
        rules: &["{source_labels: [a], target_label: a, action: uppercase}"],
        output: Some(&[("a", "FOO")]),
    },
    Case {
        name: "rules apply in order; a drop stops the rest",
        input: ABC,
        rules: &[
            "{source_labels: [a], target_label: d, replacement: dropme}",
            "{source_labels: [d], regex: dropme, action: drop}",
        ],
        output: None,
    },
    Case {
        name: "action names are case-insensitive",
        input: ABC,
        rules: &["{regex: 'c', action: LabelDrop}"],
        output: Some(&[("a", "foo"), ("b", "bar")]),
    },
];

#[test]
fn every_action_behaves_as_in_prometheus() {
    for case in CASES {
        let cfgs: Vec<RelabelConfig> = case.rules.iter().map(|r| rule(r)).collect();
        let r = Relabeler::new(&cfgs).unwrap_or_else(|e| panic!("{}: {e:?}", case.name));
        let got = r.process(l(case.input));
        assert_eq!(got, case.output.map(l), "{}", case.name);
    }
    // Every action has at least one case.
    for a in RelabelAction::ALL {
        assert!(
            CASES
                .iter()
                .any(|c| c.rules.iter().any(|r| rule(r).action == a)),
            "no case for {a}"
        );
    }
}

#[test]
fn defaults_are_prometheus_defaults() {
    let r = rule("{target_label: x}");
    assert_eq!(r.separator, ";");
    assert_eq!(r.regex, "(.*)");
    assert_eq!(r.replacement, "$1");
    assert_eq!(r.action, RelabelAction::Replace);
}

#[test]
fn invalid_rules_are_rejected_as_prometheus_does() {
    for (yaml, want) in [
        (
            "{action: hashmod, source_labels: [a], target_label: b}",
            "non-zero modulus",
        ),
        ("{source_labels: [a]}", "requires 'target_label'"),
        (
            "{source_labels: [a], target_label: '1x'}",
            "invalid 'target_label'",
        ),
        (
            "{action: lowercase, source_labels: [a], target_label: b, replacement: x}",
            "'replacement' can not be set",
        ),
        (
            "{action: keepequal, source_labels: [a], target_label: b, regex: x}",
            "only 'source_labels' and 'target_label'",
        ),
        (
            "{action: labeldrop, regex: a, source_labels: [a]}",
            "only 'regex'",
        ),
        (
            "{action: labelmap, regex: a, replacement: '1-x'}",
            "invalid 'replacement'",
        ),
        (
            "{source_labels: [a], target_label: b, regex: '('}",
            "invalid regex",
        ),
    ] {
        let err = RelabelRule::compile(&rule(yaml))
            .expect_err(yaml)
            .to_string();
        assert!(err.contains(want), "{yaml}: {err}");
    }
    assert!(serde_yaml::from_str::<RelabelConfig>("{action: explode}").is_err());
    assert!(serde_yaml::from_str::<RelabelConfig>("{sourcelabels: [a]}").is_err());
}

#[test]
fn unquoted_scalars_are_text_as_in_prometheus() {
    // `regex: true` as the classic kubernetes-pods job writes it.
    let r = rule("{source_labels: [a], regex: true, action: keep}");
    assert_eq!(r.regex, "true");
    assert_eq!(rule("{target_label: n, replacement: 42}").replacement, "42");
    let err = serde_yaml::from_str::<RelabelConfig>("{regex: [x]}").unwrap_err();
    assert!(
        err.to_string()
            .contains("a string (or a number or boolean)"),
        "{err}"
    );
}
