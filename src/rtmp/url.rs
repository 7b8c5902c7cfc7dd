//! `rtmp://` and `rtmps://` URLs: where to connect, which application, which stream key.

use super::RtmpError;

/// A parsed RTMP URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtmpUrl {
    /// `true` for `rtmps://` (TLS).
    pub tls: bool,
    /// Host name or IP address, without IPv6 brackets.
    pub host: String,
    /// Port to connect to (1935 for `rtmp://`, 443 for `rtmps://` unless given).
    pub port: u16,
    /// The application: the first path segment.
    pub app: String,
    /// The stream key: the rest of the path, with the query string (`?...`) if there is one.
    pub stream: String,
    /// `scheme://host[:port]/app`, as sent in `connect` (the port only where the URL names one).
    pub tc_url: String,
}

/// Parses `rtmp[s]://host[:port]/app[/more]/stream[?query]`. As ffmpeg does, the application is the first path
/// segment and the stream key is everything after it (so `/app/inst/name` plays `inst/name` on `app`); the
/// query string stays part of the stream key, where nginx-rtmp and vendors read credentials.
pub fn parse_url(url: &str) -> Result<RtmpUrl, RtmpError> {
    let parsed = url::Url::parse(url.trim()).map_err(|e| RtmpError::Url(format!("{e}")))?;
    let (tls, default_port) = match parsed.scheme() {
        "rtmp" => (false, 1935),
        "rtmps" => (true, 443),
        other => {
            return Err(RtmpError::Url(format!(
                "unsupported scheme {}",
                super::printable(other)
            )))
        }
    };
    let host = match parsed.host() {
        Some(url::Host::Domain(d)) if !d.is_empty() => d.to_string(),
        Some(url::Host::Ipv4(a)) => a.to_string(),
        Some(url::Host::Ipv6(a)) => a.to_string(),
        _ => return Err(RtmpError::Url("no host".into())),
    };
    let host_in_url = parsed.host_str().unwrap_or_default();
    let port = parsed.port().unwrap_or(default_port);
    let path = parsed.path().trim_start_matches('/');
    let (app, rest) = path.split_once('/').unwrap_or((path, ""));
    if app.is_empty() {
        return Err(RtmpError::Url("no application in path".into()));
    }
    let mut stream = rest.to_string();
    if stream.is_empty() {
        return Err(RtmpError::Url("no stream key in path".into()));
    }
    if let Some(q) = parsed.query() {
        stream.push('?');
        stream.push_str(q);
    }
    let tc_url = match parsed.port() {
        Some(p) => format!("{}://{host_in_url}:{p}/{app}", parsed.scheme()),
        None => format!("{}://{host_in_url}/{app}", parsed.scheme()),
    };
    Ok(RtmpUrl {
        tls,
        host,
        port,
        app: app.to_string(),
        stream,
        tc_url,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(u: &str) -> RtmpUrl {
        parse_url(u).unwrap_or_else(|e| panic!("{u}: {e}"))
    }

    #[test]
    fn plain_and_default_ports() {
        let u = ok("rtmp://example.com/live/abc");
        assert!(!u.tls);
        assert_eq!(
            (u.host.as_str(), u.port, u.app.as_str(), u.stream.as_str()),
            ("example.com", 1935, "live", "abc")
        );
        assert_eq!(u.tc_url, "rtmp://example.com/live");
        let u = ok("rtmps://live-api-s.facebook.com/rtmp/KEY");
        assert!(u.tls);
        assert_eq!(u.port, 443);
        assert_eq!(u.tc_url, "rtmps://live-api-s.facebook.com/rtmp");
        assert_eq!(u.stream, "KEY");
    }

    #[test]
    fn explicit_port_query_and_ipv6() {
        let u = ok("rtmp://127.0.0.1:19350/live/cam1?token=a%20b&x=1");
        assert_eq!(u.port, 19350);
        assert_eq!(u.host, "127.0.0.1");
        assert_eq!(u.stream, "cam1?token=a%20b&x=1");
        assert_eq!(u.tc_url, "rtmp://127.0.0.1:19350/live");
        let u = ok("rtmp://[::1]:1936/app/s");
        assert_eq!(u.host, "::1");
        assert_eq!(u.port, 1936);
        assert_eq!(u.tc_url, "rtmp://[::1]:1936/app");
        let u = ok("RTMP://Host.Example/app/s");
        // Non-special scheme: the host is kept as written (DNS does not care).
        assert_eq!(u.host, "Host.Example");
    }

    #[test]
    fn several_path_parts_keep_the_rest_as_stream_key() {
        let u = ok("rtmp://h/app/inst/name");
        assert_eq!((u.app.as_str(), u.stream.as_str()), ("app", "inst/name"));
        assert_eq!(u.tc_url, "rtmp://h/app");
        let u = ok("rtmp://h/app/_definst_/mp4:file.mp4?a=b");
        assert_eq!(u.stream, "_definst_/mp4:file.mp4?a=b");
    }

    #[test]
    fn refuses_what_cannot_be_played() {
        for bad in [
            "http://h/app/s",
            "rtmp://h",
            "rtmp://h/",
            "rtmp://h/app",
            "rtmp://h/app/",
            "rtmp://h/app?x=1",
            "rtmp:///app/s",
            "not a url",
            "rtmp://h:99999/app/s",
        ] {
            assert!(
                matches!(parse_url(bad), Err(RtmpError::Url(_))),
                "{bad}: {:?}",
                parse_url(bad)
            );
        }
    }
}
