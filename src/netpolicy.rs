//! Which addresses a caller may make this node reach (`ingest.forbid_private_sources`). A multi-tenant node
//! must not become a proxy into its own network: with the option on, every URL a request gives — inputs and
//! images it pulls, outputs it publishes to, callbacks it posts to — must name, and resolve to, public addresses
//! only. Stream ids are not checked: they resolve through the operator's own `ingest.pull_url` /
//! `egress.push_url`, and neither are operator-configured pictures or presets.
//!
//! The check happens at request time. A host name that resolves differently later (DNS rebinding) or an HTTP
//! redirect is not followed here; see the known limits in docs/operations.md.

use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    time::Duration,
};

use crate::model::{MixSpec, Source, Target, Violation};

/// A resolver that does not answer in this time fails the request rather than holding it.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(3);

/// Whether `ip` is anything but a public unicast address: loopback, private, link-local, unspecified,
/// shared (carrier-grade NAT), multicast, broadcast or reserved — also when an IPv6 address carries an IPv4 one
/// (mapped, compatible, NAT64, 6to4).
pub fn is_non_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4_non_public(v4),
        IpAddr::V6(v6) => v6_non_public(v6),
    }
}

fn v4_non_public(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_broadcast()
        || ip.is_multicast()
        || a == 0 // "this network"
        || (a == 100 && (64..128).contains(&b)) // shared address space
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
        || (a == 198 && (b == 18 || b == 19)) // benchmarking
        || a >= 240 // reserved
}

fn v6_non_public(ip: Ipv6Addr) -> bool {
    if let Some(v4) = embedded_v4(ip) {
        return v4_non_public(v4);
    }
    let s = ip.segments();
    ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_multicast()
        || (s[0] & 0xfe00) == 0xfc00 // unique local
        || (s[0] & 0xffc0) == 0xfe80 // link-local
        || (s[0] & 0xffc0) == 0xfec0 // site-local (deprecated, still routed by some stacks)
        || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation
}

/// The IPv4 address an IPv6 one stands for, where a stack would reach that IPv4 address.
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = ip.segments();
    let o = ip.octets();
    let tail = Ipv4Addr::new(o[12], o[13], o[14], o[15]);
    if let Some(v4) = ip.to_ipv4_mapped() {
        return Some(v4);
    }
    // IPv4-compatible (`::a.b.c.d`, which includes `::` and `::1`: both map to 0.0.0.x, refused).
    if s[..6] == [0; 6] {
        return Some(tail);
    }
    // NAT64 well-known prefix.
    if s[0] == 0x64 && s[1] == 0xff9b && s[2..6] == [0; 4] {
        return Some(tail);
    }
    // 6to4.
    if s[0] == 0x2002 {
        return Some(Ipv4Addr::new(o[2], o[3], o[4], o[5]));
    }
    None
}

/// `Err` with a rule, in words, when `url`'s host is or resolves to a non-public address (or cannot be
/// resolved: the check fails closed).
pub async fn check_url(url: &str) -> Result<(), String> {
    const RULE: &str =
        "must not name or resolve to a loopback, private, link-local or other non-public address";
    let parsed =
        url::Url::parse(url).map_err(|_| "must be an absolute URL with a host".to_string())?;
    let host = match parsed.host() {
        Some(url::Host::Ipv4(ip)) => return public(IpAddr::V4(ip), RULE),
        Some(url::Host::Ipv6(ip)) => return public(IpAddr::V6(ip), RULE),
        Some(url::Host::Domain(d)) if !d.is_empty() => d.to_string(),
        _ => return Err("must be an absolute URL with a host".into()),
    };
    // Non-special schemes (rtmp://) keep an IPv4 literal as an opaque host name.
    if let Ok(ip) = host.parse::<IpAddr>() {
        return public(ip, RULE);
    }
    let port = parsed.port_or_known_default().unwrap_or(0);
    let lookup = tokio::net::lookup_host((host.as_str(), port));
    let addrs: Vec<_> = match tokio::time::timeout(RESOLVE_TIMEOUT, lookup).await {
        Ok(Ok(addrs)) => addrs.collect(),
        Ok(Err(_)) | Err(_) => return Err(format!("host {host:?} cannot be resolved")),
    };
    if addrs.is_empty() {
        return Err(format!("host {host:?} cannot be resolved"));
    }
    // Every address counts: the puller may pick any of them.
    match addrs.iter().any(|a| is_non_public(a.ip())) {
        true => Err(RULE.into()),
        false => Ok(()),
    }
}

fn public(ip: IpAddr, rule: &str) -> Result<(), String> {
    if is_non_public(ip) {
        Err(rule.into())
    } else {
        Ok(())
    }
}

/// Checks each `(field, url)`; every refusal is reported with its field.
pub async fn check_urls(urls: Vec<(String, String)>) -> Result<(), Vec<Violation>> {
    let checks = urls.into_iter().map(|(field, url)| async move {
        check_url(&url)
            .await
            .err()
            .map(|rule| Violation { field, rule })
    });
    let violations: Vec<Violation> = futures::future::join_all(checks)
        .await
        .into_iter()
        .flatten()
        .collect();
    if violations.is_empty() {
        Ok(())
    } else {
        Err(violations)
    }
}

/// The URLs of a mix spec that a caller chose: inputs given by URL, http(s) images and outputs given by URL.
pub fn caller_urls(spec: &MixSpec) -> Vec<(String, String)> {
    let mut urls = Vec::new();
    for (i, input) in spec.inputs.iter().enumerate() {
        if let Source::Url(u) = &input.source {
            urls.push((format!("inputs[{i}].source.url"), u.clone()));
        }
    }
    let is_http = |s: &str| s.starts_with("http://") || s.starts_with("https://");
    if let Some(image) = spec
        .canvas
        .background_image
        .as_deref()
        .filter(|s| is_http(s))
    {
        urls.push(("canvas.background_image".into(), image.to_string()));
    }
    for (i, o) in spec.overlays.iter().enumerate() {
        if is_http(&o.image) {
            urls.push((format!("overlays[{i}].image"), o.image.clone()));
        }
    }
    for (i, o) in spec.outputs.iter().enumerate() {
        if let Target::Url(u) = &o.target {
            urls.push((format!("outputs[{i}].target.url"), u.clone()));
        }
    }
    urls
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn non_public_addresses() {
        for s in [
            "127.0.0.1",
            "127.255.0.9",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "0.1.2.3",
            "100.64.0.1",
            "255.255.255.255",
            "224.0.0.1",
            "240.0.0.1",
            "::",
            "::1",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "fec0::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::127.0.0.1",
            "64:ff9b::a9fe:a9fe",
            "2002:c0a8:0101::1",
            "2001:db8::1",
        ] {
            assert!(is_non_public(ip(s)), "{s}");
        }
        for s in [
            "8.8.8.8",
            "1.1.1.1",
            "172.32.0.1",
            "100.128.0.1",
            "192.169.0.1",
            "2606:4700:4700::1111",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
            "2002:0808:0808::1",
        ] {
            assert!(!is_non_public(ip(s)), "{s}");
        }
    }

    #[tokio::test]
    async fn urls_by_literal_and_by_name() {
        for bad in [
            "rtmp://127.0.0.1/live/a",
            "rtmp://127.1/live/a",
            "rtmp://2130706433/live/a",
            "rtmps://[::1]:443/live/a",
            "http://[::ffff:192.168.0.1]/a.flv",
            "http://0x7f.0.0.1/a.flv",
            "https://user@10.0.0.1/a.flv",
            "http://localhost:8080/a.flv",
            "rtmp://localhost/live/a",
            "rtmp:///live/a",
            "not a url",
            "http://no-such-host.invalid/a.flv",
        ] {
            assert!(check_url(bad).await.is_err(), "{bad}");
        }
        for good in [
            "rtmp://8.8.8.8/live/a",
            "https://[2606:4700:4700::1111]/a.flv",
        ] {
            assert_eq!(check_url(good).await, Ok(()), "{good}");
        }
    }

    #[tokio::test]
    async fn caller_urls_are_the_callers_only() {
        let mut spec: MixSpec = serde_json::from_value(serde_json::json!({
            "canvas": {"background_image": "http://10.0.0.1/bg.png"},
            "inputs": [
                {"id": "a", "source": {"stream_id": "a"}},
                {"id": "b", "source": {"url": "rtmp://192.168.0.2/live/b"}},
                {"id": "c", "source": {"url": "rtmp://8.8.4.4/live/c"}}
            ],
            "overlays": [
                {"id": "f", "image": "/srv/logo.png", "rect": {"x": 0, "y": 0, "width": 10, "height": 10}},
                {"id": "h", "image": "http://[::1]/x.png", "rect": {"x": 0, "y": 0, "width": 10, "height": 10}}
            ],
            "outputs": [{"target": {"url": "rtmp://127.0.0.1/mix/o"}}]
        }))
        .unwrap();
        let fields: Vec<String> = check_urls(caller_urls(&spec))
            .await
            .unwrap_err()
            .into_iter()
            .map(|v| v.field)
            .collect();
        assert_eq!(
            fields,
            [
                "inputs[1].source.url",
                "canvas.background_image",
                "overlays[1].image",
                "outputs[0].target.url"
            ]
        );
        spec.canvas.background_image = None;
        spec.inputs.remove(1);
        spec.overlays.remove(1);
        spec.outputs[0].target = Target::StreamId("o".into());
        assert_eq!(check_urls(caller_urls(&spec)).await, Ok(()));
    }
}
