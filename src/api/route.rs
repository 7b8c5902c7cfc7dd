//! Which task a request is about, read from its method, path, headers and body without handling it: what a
//! cluster node needs to send it to the task's owner (`crate::cluster::route`). Each dialect reads its own wire
//! fields here and nowhere else in the cluster; a request this cannot read (a bad body) is served where it
//! arrived, so its caller gets the dialect's own error.

use axum::http::{HeaderMap, Method, Uri};
use serde_json::Value;

use crate::{events::TaskRef, model::Source};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Addressed {
    /// About no single task (health, lists, events, metrics, the console, pictures, the cluster itself):
    /// served where it arrives.
    Node,
    /// About one task; `creates`: it may create it.
    Task { task: TaskRef, creates: bool },
    /// Creates a task whose id the serving node chooses (`POST /v1/mixes`, CME `CreateProject`).
    New(TaskRef),
}

pub fn address(method: &Method, uri: &Uri, headers: &HeaderMap, body: &[u8]) -> Addressed {
    let path = uri.path();
    let json = || serde_json::from_slice::<Value>(body).ok();
    if path == "/" {
        if let Some(action) = headers.get("x-tc-action").and_then(|v| v.to_str().ok()) {
            return tencent_cloud(action, json());
        }
        let query: Vec<(String, String)> =
            url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
                .into_owned()
                .collect();
        let get = |k: &str| query.iter().find(|(q, _)| q == k).map(|(_, v)| v.clone());
        return match get("Action") {
            Some(action) => zego(&action, get("TaskId"), json()),
            None => Addressed::Node,
        };
    }
    if path == "/common_access" {
        return tencent_legacy(json());
    }
    native(method, path)
}

/// The sources a create names (what placement puts with the tasks that already decode them: a PK battle's two
/// mixes on one node). Best effort: what cannot be read is left out.
pub fn sources(uri: &Uri, headers: &HeaderMap, body: &[u8]) -> Vec<Source> {
    let Ok(body) = serde_json::from_slice::<Value>(body) else {
        return Vec::new();
    };
    let list = |v: Option<&Value>| v.and_then(Value::as_array).cloned().unwrap_or_default();
    let id = |s: Option<&Value>| {
        s.and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(|s| Source::StreamId(s.to_string()))
    };
    let url = |s: Option<&Value>| {
        s.and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(|s| Source::Url(s.to_string()))
    };
    // Tencent's pictures (2) and canvases (3) are not streams.
    let stream_type = |t: Option<&Value>| !matches!(t.and_then(Value::as_i64), Some(2 | 3));
    let path = uri.path();
    if path == "/" && headers.contains_key("x-tc-action") {
        return list(body.get("InputStreamList"))
            .iter()
            .filter(|i| stream_type(i.pointer("/LayoutParams/InputType")))
            .filter_map(|i| id(i.get("InputStreamName")))
            .collect();
    }
    if path == "/" {
        return list(body.get("MixInput"))
            .iter()
            .filter_map(|i| url(i.get("StreamUrl")).or_else(|| id(i.get("StreamId"))))
            .collect();
    }
    if path == "/common_access" {
        return list(body.pointer("/interface/para/input_stream_list"))
            .iter()
            .filter(|i| stream_type(i.pointer("/layout_params/input_type")))
            .filter_map(|i| id(i.get("input_stream_id")))
            .collect();
    }
    list(body.get("inputs"))
        .iter()
        .filter_map(|i| {
            let s = i.get("source")?;
            id(s.get("stream_id")).or_else(|| url(s.get("url")))
        })
        .collect()
}

fn task(task: TaskRef, creates: bool) -> Addressed {
    if task.id().is_empty() {
        return Addressed::Node;
    }
    Addressed::Task { task, creates }
}

fn text(v: &Option<Value>, field: &str) -> Option<String> {
    v.as_ref()?.get(field)?.as_str().map(str::to_string)
}

/// ZEGO: `StartMix` / `StopMix` name the task in the body, `GetMixTaskInfo` in the query.
fn zego(action: &str, query_task: Option<String>, body: Option<Value>) -> Addressed {
    let id = match action {
        "StartMix" | "StopMix" => text(&body, "TaskId"),
        "GetMixTaskInfo" => query_task,
        _ => None,
    };
    match id {
        Some(id) if !id.is_empty() => task(
            TaskRef::Mix(crate::api::zego::tasks::mix_id(&id)),
            action == "StartMix",
        ),
        _ => Addressed::Node,
    }
}

/// Tencent Cloud API 3.0: live mixes by `MixStreamSessionId`, CME projects by `ProjectId`.
fn tencent_cloud(action: &str, body: Option<Value>) -> Addressed {
    match action {
        "CreateCommonMixStream" | "CancelCommonMixStream" => {
            match text(&body, "MixStreamSessionId") {
                Some(s) if !s.is_empty() => task(
                    TaskRef::Mix(crate::api::tencent::sessions::mix_id(&s)),
                    action == "CreateCommonMixStream",
                ),
                _ => Addressed::Node,
            }
        }
        "CreateProject" => Addressed::New(TaskRef::Relay(String::new())),
        _ => match text(&body, "ProjectId") {
            Some(p) if !p.is_empty() => task(TaskRef::Relay(p), false),
            _ => Addressed::Node,
        },
    }
}

/// Tencent's legacy CGI: `interface.para.mix_stream_session_id`.
fn tencent_legacy(body: Option<Value>) -> Addressed {
    let para = body
        .as_ref()
        .and_then(|b| b.get("interface"))
        .and_then(|i| i.get("para"));
    let Some(para) = para else {
        return Addressed::Node;
    };
    let session = para.get("mix_stream_session_id").and_then(Value::as_str);
    let cancels =
        para.get("interface").and_then(Value::as_str) == Some("mix_streamv2.cancel_mix_stream");
    match session {
        Some(s) if !s.is_empty() => task(
            TaskRef::Mix(crate::api::tencent::sessions::mix_id(s)),
            !cancels,
        ),
        _ => Addressed::Node,
    }
}

/// The native API: `/v1/mixes/{id}…` and `/v1/relays/{id}…`; a PUT of the resource itself may create it.
fn native(method: &Method, path: &str) -> Addressed {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let creates = |n: usize| method == Method::PUT && n == 3;
    match segments.as_slice() {
        ["v1", "mixes"] if method == Method::POST => Addressed::New(TaskRef::Mix(String::new())),
        ["v1", "mixes", id, ..] => task(TaskRef::Mix(decode(id)), creates(segments.len())),
        ["v1", "relays", id, ..] => task(TaskRef::Relay(decode(id)), creates(segments.len())),
        _ => Addressed::Node,
    }
}

fn decode(segment: &str) -> String {
    percent_decode(segment)
}

/// `%XX` escapes of a path segment, as the router decodes them.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Ok(b) = u8::from_str_radix(s.get(i + 1..i + 3).unwrap_or(""), 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(method: Method, uri: &str, headers: &[(&str, &str)], body: &str) -> Addressed {
        let mut h = HeaderMap::new();
        for (k, v) in headers {
            h.insert(
                axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        address(&method, &uri.parse().unwrap(), &h, body.as_bytes())
    }

    fn mix(id: &str, creates: bool) -> Addressed {
        Addressed::Task {
            task: TaskRef::Mix(id.into()),
            creates,
        }
    }

    #[test]
    fn creates_name_their_sources() {
        let h = |action: Option<&str>| {
            let mut h = HeaderMap::new();
            if let Some(a) = action {
                h.insert("x-tc-action", a.parse().unwrap());
            }
            h
        };
        let id = |s: &str| Source::StreamId(s.into());
        assert_eq!(
            sources(
                &"/?Action=StartMix".parse().unwrap(),
                &h(None),
                br#"{"MixInput":[{"StreamId":"a"},{"StreamUrl":"rtmp://h/l/b"}]}"#
            ),
            [id("a"), Source::Url("rtmp://h/l/b".into())]
        );
        assert_eq!(
            sources(
                &"/".parse().unwrap(),
                &h(Some("CreateCommonMixStream")),
                br#"{"InputStreamList":[{"InputStreamName":"bg","LayoutParams":{"InputType":3}},{"InputStreamName":"a"}]}"#
            ),
            [id("a")]
        );
        assert_eq!(
            sources(
                &"/common_access".parse().unwrap(),
                &h(None),
                br#"{"interface":{"para":{"input_stream_list":[{"input_stream_id":"a"},{"input_stream_id":"p","layout_params":{"input_type":2}}]}}}"#
            ),
            [id("a")]
        );
        assert_eq!(
            sources(
                &"/v1/mixes/m".parse().unwrap(),
                &h(None),
                br#"{"inputs":[{"source":{"stream_id":"a"}},{"source":{"url":"rtmp://h/l/b"}}]}"#
            ),
            [id("a"), Source::Url("rtmp://h/l/b".into())]
        );
    }

    #[test]
    fn every_dialect_names_its_task() {
        assert_eq!(
            addr(
                Method::POST,
                "/?Action=StartMix&AppId=1",
                &[],
                r#"{"TaskId":"t1"}"#
            ),
            mix("zego-t1", true)
        );
        assert_eq!(
            addr(Method::POST, "/?Action=StopMix", &[], r#"{"TaskId":"t1"}"#),
            mix("zego-t1", false)
        );
        assert_eq!(
            addr(Method::GET, "/?Action=GetMixTaskInfo&TaskId=t1", &[], ""),
            mix("zego-t1", false)
        );
        assert_eq!(
            addr(
                Method::POST,
                "/",
                &[("x-tc-action", "CreateCommonMixStream")],
                r#"{"MixStreamSessionId":"s1"}"#
            ),
            mix("tencent-s1", true)
        );
        assert_eq!(
            addr(
                Method::POST,
                "/",
                &[("x-tc-action", "DescribeProjectInfo")],
                r#"{"ProjectId":"cmepid_1"}"#
            ),
            Addressed::Task {
                task: TaskRef::Relay("cmepid_1".into()),
                creates: false
            }
        );
        assert_eq!(
            addr(
                Method::POST,
                "/common_access",
                &[],
                r#"{"interface":{"interfaceName":"Mix_StreamV2","para":{"interface":"mix_streamv2.cancel_mix_stream","mix_stream_session_id":"s2"}}}"#
            ),
            mix("tencent-s2", false)
        );
        assert_eq!(
            addr(Method::PUT, "/v1/mixes/m%2D1", &[], "{}"),
            mix("m-1", true)
        );
        assert_eq!(
            addr(Method::GET, "/v1/mixes/m1/snapshot.jpg", &[], ""),
            mix("m1", false)
        );
        assert_eq!(
            addr(Method::POST, "/v1/mixes", &[], "{}"),
            Addressed::New(TaskRef::Mix(String::new()))
        );
        assert_eq!(addr(Method::GET, "/v1/mixes", &[], ""), Addressed::Node);
        assert_eq!(addr(Method::GET, "/metrics", &[], ""), Addressed::Node);
        // Unreadable bodies are served where they arrive (the dialect says what is wrong).
        assert_eq!(
            addr(Method::POST, "/?Action=StartMix", &[], "not json"),
            Addressed::Node
        );
    }
}
