//! A relay project as the engine sees it: one live source (a main and an optional backup input) pushed, without
//! re-encoding, to up to ten RTMP targets. Dialects (native API, Tencent CME) translate into [`RelaySpec`].

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::model::Violation;

/// Most outputs per project.
pub const MAX_OUTPUTS: usize = 10;
/// Most files in the playlist of a `vod` input.
pub const MAX_VOD_URLS: usize = 20;

/// One relay project.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RelaySpec {
    /// The preferred input.
    pub main: RelayInput,
    /// Taken over when the main input stalls or ends.
    #[serde(default)]
    pub backup: Option<RelayInput>,
    /// Where the stream is pushed; up to 10, ids unique (none: the project only pulls, e.g. while being set up).
    #[serde(default)]
    #[schema(max_items = 10)]
    pub outputs: Vec<RelayOutput>,
    #[serde(default)]
    #[schema(default = Failover::default)]
    pub failover: Failover,
    /// When set (Unix seconds), the project stops by itself at that time.
    #[serde(default)]
    pub stop_at: Option<i64>,
    /// An http(s):// URL where state changes are POSTed as JSON events (project started / stopped / failed
    /// over, output state).
    #[serde(default)]
    pub callback_url: Option<String>,
}

/// Where an input comes from: exactly one of `url`, `push` and `vod`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum RelayInput {
    /// Pulled live: an rtmp(s):// or http(s):// FLV URL.
    Url(String),
    /// Published by the broadcaster to the ingest server as this stream id (pulled through `ingest.pull_url`);
    /// the project's status shows the URL to push to.
    Push(String),
    /// A playlist of FLV files (http(s):// URLs) played in order at real speed as one live input, timestamps
    /// continuing from file to file. The list is played `1 + loop_times` times (`-1`: until the project
    /// stops); then the input ends (`absent`), and the other input takes over if it is live.
    Vod {
        /// http(s):// URLs of FLV files.
        #[schema(min_items = 1, max_items = 20)]
        urls: Vec<String>,
        /// The list is played `1 + loop_times` times; -1: until the project stops.
        #[serde(default)]
        #[schema(default = 0, minimum = -1)]
        loop_times: i64,
    },
}

/// One target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RelayOutput {
    /// Identifies the output within the project (updates match by id).
    #[schema(pattern = "^[A-Za-z0-9._~-]{1,128}$")]
    pub id: String,
    /// A label for people, at most 256 bytes.
    #[serde(default)]
    #[schema(default = "")]
    pub name: String,
    /// rtmp:// or rtmps:// URL.
    pub url: String,
}

/// When to change inputs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, default)]
#[schema(default)]
pub struct Failover {
    /// The active input is declared stalled after this long without media, and the other one takes over.
    #[schema(minimum = 200, maximum = 60000)]
    pub stall_ms: u64,
    /// Whether to go back to the main input once it has been healthy for `return_after_ms`.
    pub return_to_main: bool,
    /// How long the main input must have been healthy before the project goes back to it.
    #[schema(maximum = 3600000)]
    pub return_after_ms: u64,
}

impl Default for Failover {
    fn default() -> Self {
        Self {
            stall_ms: 2_000,
            return_to_main: true,
            return_after_ms: 10_000,
        }
    }
}

/// Ids of projects and outputs: the model's ids (1 to 128 characters of `A-Z a-z 0-9 - _ . ~`, not `.` or `..`).
pub(crate) use crate::model::valid_id;

/// Longest URL accepted anywhere in a project (the mix model's limit).
const MAX_URL_LEN: usize = 2048;

fn url_with(u: &str, schemes: &[&str]) -> bool {
    u.len() <= MAX_URL_LEN
        && !crate::model::has_control(u)
        && url::Url::parse(u)
            .map(|p| schemes.contains(&p.scheme()) && p.host_str().is_some_and(|h| !h.is_empty()))
            .unwrap_or(false)
}

impl RelaySpec {
    /// Every violated rule, with its field path.
    pub fn validate(&self) -> Result<(), Vec<Violation>> {
        let mut v = Vec::new();
        let mut check = |ok: bool, field: String, rule: &str| {
            if !ok {
                v.push(Violation {
                    field,
                    rule: rule.to_string(),
                });
            }
        };
        for (name, input) in [("main", Some(&self.main)), ("backup", self.backup.as_ref())] {
            match input {
                Some(RelayInput::Url(u)) => check(
                    url_with(u, &["rtmp", "rtmps", "http", "https"]),
                    format!("{name}.url"),
                    "must be an rtmp(s):// or http(s):// URL of at most 2048 bytes, without control characters",
                ),
                Some(RelayInput::Push(id)) => check(
                    valid_id(id),
                    format!("{name}.push"),
                    crate::model::ID_RULE,
                ),
                Some(RelayInput::Vod { urls, loop_times }) => {
                    check(
                        (1..=MAX_VOD_URLS).contains(&urls.len()),
                        format!("{name}.vod.urls"),
                        "must hold 1 to 20 URLs",
                    );
                    for (i, u) in urls.iter().enumerate() {
                        check(
                            url_with(u, &["http", "https"]),
                            format!("{name}.vod.urls[{i}]"),
                            "must be an http(s):// URL of an FLV file, at most 2048 bytes, without control characters",
                        );
                    }
                    check(
                        *loop_times >= -1,
                        format!("{name}.vod.loop_times"),
                        "must be -1 (loop until stopped), 0 (play once) or more",
                    );
                }
                None => {}
            }
        }
        if let (Some(b), m) = (&self.backup, &self.main) {
            check(b != m, "backup".into(), "must differ from main");
        }
        check(
            self.outputs.len() <= MAX_OUTPUTS,
            "outputs".into(),
            "at most 10 outputs",
        );
        let mut ids = std::collections::HashSet::new();
        let mut urls = std::collections::HashSet::new();
        for (i, o) in self.outputs.iter().enumerate() {
            check(
                valid_id(&o.id),
                format!("outputs[{i}].id"),
                crate::model::ID_RULE,
            );
            check(
                ids.insert(o.id.as_str()),
                format!("outputs[{i}].id"),
                "must be unique within the project",
            );
            check(
                url_with(&o.url, &["rtmp", "rtmps"]),
                format!("outputs[{i}].url"),
                "must be an rtmp:// or rtmps:// URL of at most 2048 bytes, without control characters",
            );
            check(
                urls.insert(o.url.as_str()),
                format!("outputs[{i}].url"),
                "must differ from the other outputs' URLs",
            );
            check(
                o.name.len() <= 256,
                format!("outputs[{i}].name"),
                "at most 256 bytes",
            );
        }
        check(
            (200..=60_000).contains(&self.failover.stall_ms),
            "failover.stall_ms".into(),
            "must be from 200 to 60000",
        );
        check(
            self.failover.return_after_ms <= 3_600_000,
            "failover.return_after_ms".into(),
            "must be at most 3600000",
        );
        if let Some(u) = &self.callback_url {
            check(
                url_with(u, &["http", "https"]),
                "callback_url".into(),
                "must be an http(s):// URL of at most 2048 bytes, without control characters",
            );
        }
        if v.is_empty() {
            Ok(())
        } else {
            Err(v)
        }
    }
}

impl RelaySpec {
    /// The URLs the caller chose that the node reaches (`ingest.forbid_private_sources` checks them): main and
    /// backup URLs, VOD files, outputs and the status callback. Push inputs are the node's own ingest.
    pub fn caller_urls(&self) -> Vec<(String, String)> {
        let mut urls = Vec::new();
        for (name, input) in [("main", Some(&self.main)), ("backup", self.backup.as_ref())] {
            match input {
                Some(RelayInput::Url(u)) => urls.push((format!("{name}.url"), u.clone())),
                Some(RelayInput::Vod { urls: files, .. }) => {
                    for (i, u) in files.iter().enumerate() {
                        urls.push((format!("{name}.vod.urls[{i}]"), u.clone()));
                    }
                }
                Some(RelayInput::Push(_)) | None => {}
            }
        }
        for (i, o) in self.outputs.iter().enumerate() {
            urls.push((format!("outputs[{i}].url"), o.url.clone()));
        }
        if let Some(u) = &self.callback_url {
            urls.push(("callback_url".into(), u.clone()));
        }
        urls
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(main: serde_json::Value) -> Result<RelaySpec, serde_json::Error> {
        serde_json::from_value(serde_json::json!({ "main": main }))
    }

    #[test]
    fn vod_inputs_parse_and_validate() {
        let s = spec(serde_json::json!({"vod": {"urls": ["http://h/a.flv", "https://h/b.flv"], "loop_times": -1}}))
            .unwrap();
        assert_eq!(
            s.main,
            RelayInput::Vod {
                urls: vec!["http://h/a.flv".into(), "https://h/b.flv".into()],
                loop_times: -1
            }
        );
        assert!(s.validate().is_ok());
        assert_eq!(
            serde_json::to_value(&s.main).unwrap(),
            serde_json::json!({"vod": {"urls": ["http://h/a.flv", "https://h/b.flv"], "loop_times": -1}})
        );
        // loop_times defaults to 0 (play once); unknown fields are refused.
        let once = spec(serde_json::json!({"vod": {"urls": ["http://h/a.flv"]}})).unwrap();
        assert!(matches!(once.main, RelayInput::Vod { loop_times: 0, .. }));
        assert!(spec(serde_json::json!({"vod": {"urls": [], "loops": 1}})).is_err());

        let fields = |main: serde_json::Value| -> Vec<String> {
            spec(main)
                .unwrap()
                .validate()
                .err()
                .unwrap_or_default()
                .into_iter()
                .map(|v| v.field)
                .collect()
        };
        assert_eq!(
            fields(serde_json::json!({"vod": {"urls": []}})),
            ["main.vod.urls"]
        );
        let long = format!("http://h/{}.flv", "a".repeat(2040));
        assert_eq!(
            fields(serde_json::json!({"vod": {"urls": [long]}})),
            ["main.vod.urls[0]"]
        );
        assert_eq!(fields(serde_json::json!({"url": long})), ["main.url"]);
        assert_eq!(
            fields(
                serde_json::json!({"vod": {"urls": ["http://h/a.flv", "rtmp://h/a/b"], "loop_times": -2}})
            ),
            ["main.vod.urls[1]", "main.vod.loop_times"]
        );
        let many: Vec<String> = (0..21).map(|i| format!("http://h/{i}.flv")).collect();
        assert_eq!(
            fields(serde_json::json!({"vod": {"urls": many}})),
            ["main.vod.urls"]
        );
    }
}
