//! Which task publishes to which output: two publishers of one stream fight over it (RTMP servers refuse the
//! second or cut the first), so a mix and a relay project — or two of either — may not share an output URL.
//! One registry for the engine and the relays, checked and changed in one step.

use std::{collections::HashMap, sync::Mutex};

use crate::events::TaskRef;

/// The URL another task holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    /// The output as the caller wrote it (its index in the URLs claimed).
    pub index: usize,
    pub holder: TaskRef,
}

#[derive(Default)]
pub struct Claims {
    /// Normalised URL → the task publishing to it.
    held: Mutex<HashMap<String, TaskRef>>,
}

impl Claims {
    /// Makes `urls` the outputs of `task`, releasing what it held before; refused, changing nothing, when
    /// another task holds one of them. Returns what `task` held before (to put back with [`Claims::set`]).
    pub fn swap(&self, task: &TaskRef, urls: &[String]) -> Result<Vec<String>, Conflict> {
        let mut held = self.held.lock().unwrap();
        let wanted: Vec<String> = urls.iter().map(|u| normalize_url(u)).collect();
        for (index, url) in wanted.iter().enumerate() {
            if let Some(holder) = held.get(url).filter(|h| *h != task) {
                return Err(Conflict {
                    index,
                    holder: holder.clone(),
                });
            }
        }
        let before: Vec<String> = held
            .iter()
            .filter(|(_, t)| *t == task)
            .map(|(u, _)| u.clone())
            .collect();
        held.retain(|_, t| t != task);
        for url in wanted {
            held.insert(url, task.clone());
        }
        Ok(before)
    }

    /// Puts back what [`Claims::swap`] returned (a change that was not applied after all).
    pub fn set(&self, task: &TaskRef, urls: Vec<String>) {
        let mut held = self.held.lock().unwrap();
        held.retain(|_, t| t != task);
        for url in urls {
            held.insert(url, task.clone());
        }
    }

    /// Releases every output of `task`.
    pub fn release(&self, task: &TaskRef) {
        self.held.lock().unwrap().retain(|_, t| t != task);
    }
}

/// An RTMP or HTTP URL as a stream's identity: scheme and host in lowercase, the scheme's default port written
/// out, no user info, query or fragment (an RTMP server names the stream by application and key alone; a query
/// usually carries a token). Anything unparsable stays as it is.
pub fn normalize_url(url: &str) -> String {
    let Ok(u) = url::Url::parse(url.trim()) else {
        return url.to_string();
    };
    let scheme = u.scheme().to_ascii_lowercase();
    let port = u.port().or(match scheme.as_str() {
        "rtmp" => Some(1935),
        "rtmps" => Some(443),
        _ => u.port_or_known_default(),
    });
    let host = u.host_str().unwrap_or("").to_ascii_lowercase();
    let path = u.path().trim_end_matches('/');
    match port {
        Some(p) => format!("{scheme}://{host}:{p}{path}"),
        None => format!("{scheme}://{host}{path}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mix(id: &str) -> TaskRef {
        TaskRef::Mix(id.into())
    }

    #[test]
    fn one_publisher_per_stream_whatever_the_spelling() {
        let c = Claims::default();
        let relay = TaskRef::Relay("r".into());
        c.swap(&mix("a"), &["rtmp://Host/live/k".into()]).unwrap();
        let e = c
            .swap(
                &relay,
                &[
                    "rtmp://other/live/x".into(),
                    "rtmp://host:1935/live/k?token=1".into(),
                ],
            )
            .unwrap_err();
        assert_eq!(
            e,
            Conflict {
                index: 1,
                holder: mix("a")
            }
        );
        // The refused claim changed nothing: the relay holds nothing, "other" is free.
        c.swap(&mix("b"), &["rtmp://other/live/x".into()]).unwrap();
        // A task may keep its own outputs; what it no longer names is released.
        let before = c
            .swap(
                &mix("a"),
                &["rtmp://host/live/k".into(), "rtmp://h2/a/b".into()],
            )
            .unwrap();
        assert_eq!(before, vec!["rtmp://host:1935/live/k".to_string()]);
        c.swap(&mix("a"), &["rtmp://h2/a/b".into()]).unwrap();
        c.swap(&relay, &["rtmp://host/live/k".into()]).unwrap();
        c.release(&relay);
        c.swap(&mix("c"), &["rtmp://host/live/k".into()]).unwrap();
    }

    #[test]
    fn urls_normalise() {
        assert_eq!(
            normalize_url("RTMP://User:pw@Example.COM/App/Key/?t=1#x"),
            "rtmp://example.com:1935/App/Key"
        );
        assert_eq!(normalize_url("rtmps://e.com/a/b"), "rtmps://e.com:443/a/b");
        assert_eq!(normalize_url("not a url"), "not a url");
    }
}
