//! `GET /metrics` as Prometheus reads it: every scrape goes through the Prometheus client library's own strict
//! OpenMetrics parser (Debian's `python3-prometheus-client`, installed by `scripts/setup`), which refuses what a
//! Prometheus server would (a counter without `_total`, a unit its name does not end in, a missing `# EOF`).

use std::{
    collections::BTreeMap,
    io::Write,
    process::{Command, Stdio},
};

/// One scrape's samples: (name, labels, value).
#[derive(Debug, Clone)]
pub struct Metrics {
    pub samples: Vec<(String, BTreeMap<String, String>, f64)>,
    /// The exposition as served.
    pub text: String,
}

const PARSE: &str = r#"
import json, sys
from prometheus_client.openmetrics.parser import text_string_to_metric_families
out = []
for family in text_string_to_metric_families(sys.stdin.read()):
    for s in family.samples:
        out.append([s.name, s.labels, s.value])
print(json.dumps(out))
"#;

impl Metrics {
    /// Scrapes `url` (with a bearer `token` if given); panics unless it answers 200 with text the parser takes.
    pub fn scrape(url: &str, token: Option<&str>) -> Metrics {
        let mut req = reqwest::blocking::Client::new().get(url);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().expect("GET /metrics");
        assert_eq!(resp.status(), 200, "GET {url}");
        let kind = resp.headers()["content-type"].to_str().unwrap().to_string();
        assert!(kind.starts_with("application/openmetrics-text"), "{kind}");
        Metrics::parse(&resp.text().unwrap())
    }

    /// Parses an exposition; panics with the parser's complaint and the text when it is refused.
    pub fn parse(text: &str) -> Metrics {
        let mut child = Command::new("/usr/bin/python3")
            .args(["-c", PARSE])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("python3 (scripts/setup installs it)");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !stderr.contains("No module named 'prometheus_client'"),
            "python3-prometheus-client is missing: run `bash scripts/setup`"
        );
        assert!(
            out.status.success(),
            "the OpenMetrics parser refused the scrape: {stderr}\n{text}"
        );
        let rows: Vec<(String, BTreeMap<String, String>, f64)> =
            serde_json::from_slice(&out.stdout).expect("parser output");
        Metrics {
            samples: rows,
            text: text.to_string(),
        }
    }

    /// The value of the sample `name` whose labels include all of `labels`, if exactly one matches.
    pub fn get(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let found: Vec<f64> = self.matching(name, labels).map(|(_, v)| v).collect();
        match found.as_slice() {
            [v] => Some(*v),
            [] => None,
            _ => panic!("{name} {labels:?} matches {} samples", found.len()),
        }
    }

    /// Like [`Metrics::get`], panicking when there is no such sample.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.get(name, labels)
            .unwrap_or_else(|| panic!("no sample {name} {labels:?} in\n{}", self.text))
    }

    /// Every sample `name` whose labels include all of `labels`: (labels, value).
    pub fn matching<'a>(
        &'a self,
        name: &'a str,
        labels: &'a [(&'a str, &'a str)],
    ) -> impl Iterator<Item = (&'a BTreeMap<String, String>, f64)> + 'a {
        self.samples.iter().filter_map(move |(n, l, v)| {
            (n == name
                && labels
                    .iter()
                    .all(|(k, want)| l.get(*k).map(String::as_str) == Some(*want)))
            .then_some((l, *v))
        })
    }

    /// The sum of every sample `name` (all labels).
    pub fn sum(&self, name: &str) -> f64 {
        self.matching(name, &[]).map(|(_, v)| v).sum()
    }
}
