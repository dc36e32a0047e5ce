//! The Grafana dashboard and the Prometheus alert rules of `docs/`: both parse, every metric
//! they name is one a running node exports (scraped from a real process on real redis-servers,
//! so the Redis adapter's and the relay's metrics are there), and the rules are the alerts the
//! operations guide describes, with the same metrics.

use std::collections::{BTreeSet, HashSet};
use std::path::PathBuf;
use std::time::Duration;

use poa_test_support::RedisServer;
use serde_json::Value;
use yaml_rust2::{Yaml, YamlLoader};

use crate::support::{Node, eventually, fleet_flags, reserve_addresses};

/// Generous upper bound that only catches a hang.
const HANG: Duration = Duration::from_secs(30);

/// What the dashboard must show, by the metric that shows it.
const DASHBOARD_MUST_SHOW: &[&str] = &[
    "poa_is_leader",
    "poa_block_height",
    "poa_quorum_latency_seconds_bucket",
    "poa_node_operations_total",
    "poa_promotion_success_total",
    "poa_history_gap_total",
    "poa_outstanding_publish_tasks",
    "poa_heights_below_quorum",
    "poa_node_state",
];

fn docs_file(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../docs")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|error| panic!("{}: {error}", path.display()))
}

/// Every sample name a Prometheus text exposition can hold: the names of its samples, and for
/// each declared family those its type implies (a family with no sample yet, such as a labelled
/// counter nothing has counted, is declared all the same).
fn exported_names(exposition: &str) -> HashSet<String> {
    let mut names = HashSet::new();
    for line in exposition.lines() {
        if let Some(declaration) = line.strip_prefix("# TYPE ") {
            let mut words = declaration.split_whitespace();
            let (Some(name), Some(kind)) = (words.next(), words.next()) else {
                continue;
            };
            let suffixes: &[&str] = match kind {
                "counter" => &["_total"],
                "histogram" => &["_bucket", "_sum", "_count"],
                _ => &[""],
            };
            names.extend(suffixes.iter().map(|suffix| format!("{name}{suffix}")));
        } else if !line.starts_with('#') && !line.is_empty() {
            let end = line.find(['{', ' ']).unwrap_or(line.len());
            names.insert(line[..end].to_owned());
        }
    }
    names
}

/// The `poa_*` metric names an expression (PromQL) reads.
fn metrics_in(expression: &str) -> BTreeSet<String> {
    let is_name = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':';
    let mut metrics = BTreeSet::new();
    let mut rest = expression;
    while let Some(start) = rest.find("poa_") {
        let at_boundary = rest[..start]
            .chars()
            .next_back()
            .is_none_or(|c| !is_name(c));
        let tail = &rest[start..];
        let end = tail.find(|c: char| !is_name(c)).unwrap_or(tail.len());
        if at_boundary {
            metrics.insert(tail[..end].to_owned());
        }
        rest = &tail[end..];
    }
    metrics
}

/// Whether the brackets and quotes of an expression pair up, outside quoted strings.
fn balanced(expression: &str) -> bool {
    let mut open = Vec::new();
    let mut quoted = false;
    for c in expression.chars() {
        match c {
            '"' => quoted = !quoted,
            _ if quoted => {}
            '(' | '[' | '{' => open.push(c),
            ')' | ']' | '}' => {
                let expected = match c {
                    ')' => '(',
                    ']' => '[',
                    _ => '{',
                };
                if open.pop() != Some(expected) {
                    return false;
                }
            }
            _ => {}
        }
    }
    open.is_empty() && !quoted
}

/// Asserts `expression` (of the panel or rule `what`) pairs its brackets and reads only
/// `exported` metrics, at least one; returns them.
fn assert_reads_exported(
    what: &str,
    expression: &str,
    exported: &HashSet<String>,
) -> BTreeSet<String> {
    assert!(balanced(expression), "{what}: {expression}");
    let metrics = metrics_in(expression);
    assert!(
        !metrics.is_empty(),
        "{what}: {expression} reads no poa_ metric"
    );
    for metric in &metrics {
        assert!(
            exported.contains(metric),
            "{what}: {metric} is not exported"
        );
    }
    metrics
}

/// Every panel of the dashboard, those inside rows included.
fn panels(dashboard: &Value) -> Vec<&Value> {
    let mut all = Vec::new();
    for panel in dashboard["panels"]
        .as_array()
        .expect("the dashboard has panels")
    {
        all.push(panel);
        all.extend(panel["panels"].as_array().into_iter().flatten());
    }
    all
}

/// Every rule of the alert rules file: its name and expression.
fn alert_rules(rules: &Yaml) -> Vec<(String, String)> {
    let mut all = Vec::new();
    for group in rules["groups"].as_vec().expect("the rules file has groups") {
        assert!(group["name"].as_str().is_some(), "a group without a name");
        for rule in group["rules"].as_vec().expect("a group has rules") {
            let name = rule["alert"].as_str().expect("every rule is an alert");
            let expression = rule["expr"]
                .as_str()
                .unwrap_or_else(|| panic!("{name}: no expr"));
            assert!(
                rule["labels"]["severity"].as_str().is_some(),
                "{name}: no severity"
            );
            assert!(
                rule["annotations"]["summary"].as_str().is_some(),
                "{name}: no summary"
            );
            all.push((name.to_owned(), expression.to_owned()));
        }
    }
    all
}

fn parse_rules() -> Yaml {
    let mut documents =
        YamlLoader::load_from_str(&docs_file("prometheus-alerts.yml")).expect("the rules parse");
    assert_eq!(documents.len(), 1);
    documents.remove(0)
}

/// The alerts of the operations guide's table: each name in CamelCase (as the rules name it)
/// with the metrics of its expression column.
fn alerts_in_the_guide() -> Vec<(String, BTreeSet<String>)> {
    let guide = docs_file("operations.md");
    let section = guide
        .split("### 5.7 Suggested alerts")
        .nth(1)
        .expect("the guide has its alerts section");
    let section = section.split("\n## ").next().unwrap_or(section);
    section
        .lines()
        .filter(|line| line.starts_with("| **"))
        .map(|row| {
            // Pipes inside an expression are escaped (`\|`); the columns are split on the others.
            let cells: Vec<&str> = row.split(" | ").collect();
            let name: String = cells[0]
                .trim_start_matches("| **")
                .trim_end_matches("**")
                .split_whitespace()
                .map(|word| {
                    let mut chars = word.chars();
                    chars.next().map_or_else(String::new, |first| {
                        first.to_uppercase().chain(chars).collect()
                    })
                })
                .collect();
            (name, metrics_in(cells[1]))
        })
        .collect()
}

#[test]
fn dashboard_and_alert_rules__when_checked_against_a_running_node__then_name_only_metrics_it_exports()
 {
    // given: a leader on three redis-servers with a peer, after a few blocks
    let redis: Vec<RedisServer> = (0..3).map(|_| RedisServer::start()).collect();
    let urls: Vec<String> = redis.iter().map(RedisServer::url).collect();
    let peer = format!("http://{}", reserve_addresses(1).remove(0));
    let args = fleet_flags(&urls, "100ms", "1s", &["--peer", &peer]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path(), &args);
    assert!(eventually(HANG, || node.is_leader() && node.height() >= 3));

    // when
    let (status, exposition) = node.get_text("/metrics");
    let dashboard: Value =
        serde_json::from_str(&docs_file("grafana-dashboard.json")).expect("the dashboard parses");
    let rules = parse_rules();

    // then: every metric either file reads is exported
    assert_eq!(status, 200);
    let exported = exported_names(&exposition);
    let mut shown = BTreeSet::new();
    let mut ids = HashSet::new();
    for panel in panels(&dashboard) {
        let title = panel["title"].as_str().expect("every panel has a title");
        assert!(
            ids.insert(panel["id"].as_u64().unwrap()),
            "{title}: id taken"
        );
        if panel["type"] == "row" {
            continue;
        }
        assert!(
            panel["gridPos"]["w"].as_u64().is_some(),
            "{title}: no gridPos"
        );
        assert!(
            panel["datasource"]["uid"].as_str().is_some(),
            "{title}: no datasource"
        );
        let targets = panel["targets"].as_array().expect("a panel has targets");
        assert!(!targets.is_empty(), "{title}: no query");
        for target in targets {
            let expression = target["expr"].as_str().expect("a target has an expression");
            shown.extend(assert_reads_exported(title, expression, &exported));
        }
    }
    for metric in DASHBOARD_MUST_SHOW {
        assert!(
            shown.contains(*metric),
            "the dashboard does not show {metric}"
        );
    }
    for (name, expression) in alert_rules(&rules) {
        assert_reads_exported(&name, &expression, &exported);
    }
}

#[test]
fn alert_rules__when_compared_with_the_operations_guide__then_hold_each_of_its_alerts_with_the_same_metrics()
 {
    // given
    let guide = alerts_in_the_guide();
    let rules = parse_rules();

    // when
    let rules: Vec<(String, BTreeSet<String>)> = alert_rules(&rules)
        .into_iter()
        .map(|(name, expression)| (name, metrics_in(&expression)))
        .collect();

    // then
    assert!(
        guide.len() >= 20,
        "the guide's table was not read: {guide:?}"
    );
    let guide_names: BTreeSet<&String> = guide.iter().map(|(name, _)| name).collect();
    let rule_names: BTreeSet<&String> = rules.iter().map(|(name, _)| name).collect();
    assert_eq!(
        guide_names, rule_names,
        "the guide and the rules name other alerts"
    );
    assert_eq!(rule_names.len(), rules.len(), "an alert is named twice");
    for (name, metrics) in &guide {
        let (_, in_rule) = rules.iter().find(|(rule, _)| rule == name).unwrap();
        assert_eq!(
            metrics, in_rule,
            "{name}: the guide and the rule read other metrics"
        );
    }
}
