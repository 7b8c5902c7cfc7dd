//! How each vendor's client signs a request: ZEGO's signature v2.0, Tencent's legacy CGI `sign` and Tencent Cloud API
//! 3.0's TC3-HMAC-SHA256. Written from the vendors' documentation, independently of Tessera's own signing code (a test
//! that signs with the code it tests cannot catch a signing bug); `tests/harness.rs` checks each against the vendor's
//! published example. The vendors' own clients sign too: ZEGO's Python sample (`tests/zego/start_mix_sample.py`) and
//! Tencent's Python SDK (`tests/tencent/sdk_client.py`).
//!
//! Self-contained (no tessera crate), so `tests/harness.rs` and `tests/inproc/mod.rs` include it as well.

use std::time::{SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use md5::{Digest, Md5};
use sha2::Sha256;

/// The ZEGO credentials the tests configure (`[zego] app_id`, `server_secret`).
pub const ZEGO_APP: u64 = 1234567890;
pub const ZEGO_SECRET: &str = "0123456789abcdef0123456789abcdef";
/// The legacy CGI credentials the tests configure (`[tencent] appid`, `key`).
pub const CGI_APPID: u64 = 1252500000;
pub const CGI_KEY: &str = "40328529ca4381a80c6ecf2e6aa57438";

/// Unix time now, in seconds.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Lowercase hex MD5 of the parts, concatenated.
fn md5_hex(parts: &[&str]) -> String {
    let mut h = Md5::new();
    for p in parts {
        h.update(p.as_bytes());
    }
    hex(&h.finalize())
}

// ZEGO

/// ZEGO's signature v2.0: `md5(AppId + SignatureNonce + ServerSecret + Timestamp)`, lowercase hex.
pub fn zego_signature(app_id: u64, nonce: &str, secret: &str, timestamp: &str) -> String {
    md5_hex(&[&app_id.to_string(), nonce, secret, timestamp])
}

/// A fresh `SignatureNonce` (16 hex digits, as ZEGO's samples make them).
pub fn zego_nonce() -> String {
    format!("{:016x}", fastrand::u64(..))
}

/// ZEGO's signed common query for `action` (no leading `?`) with `nonce` and the time now.
pub fn zego_query_with(app_id: u64, secret: &str, action: &str, nonce: &str) -> String {
    let ts = unix_now().to_string();
    let sig = zego_signature(app_id, nonce, secret, &ts);
    format!(
        "Action={action}&AppId={app_id}&SignatureNonce={nonce}&Timestamp={ts}&Signature={sig}&SignatureVersion=2.0"
    )
}

/// ZEGO's signed common query for `action` (no leading `?`), with a fresh nonce and the time now.
pub fn zego_query(app_id: u64, secret: &str, action: &str) -> String {
    zego_query_with(app_id, secret, action, &zego_nonce())
}

/// The path and query of a ZEGO request for `action` (`/?Action=…`), signed with a fresh nonce and the time now.
pub fn zego_path(app_id: u64, secret: &str, action: &str) -> String {
    format!("/?{}", zego_query(app_id, secret, action))
}

// Tencent's legacy CGI

/// The CGI's `sign`: `md5(key + t)`, lowercase hex.
pub fn cgi_sign(key: &str, t: &str) -> String {
    md5_hex(&[key, t])
}

/// The CGI's query for `t` (the request's expiry time, Unix seconds), signed with `key`.
pub fn cgi_query_at(appid: u64, key: &str, t: &str) -> String {
    let sign = cgi_sign(key, t);
    format!("appid={appid}&interface=Mix_StreamV2&t={t}&sign={sign}")
}

/// The CGI's signed query, valid for a minute.
pub fn cgi_query(appid: u64, key: &str) -> String {
    cgi_query_at(appid, key, &(unix_now() + 60).to_string())
}

// Tencent Cloud API 3.0

/// `YYYY-MM-DD` of a Unix time, in UTC (Howard Hinnant's `civil_from_days`).
fn utc_date(unix: i64) -> String {
    let z = unix.div_euclid(86_400) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

fn hmac_sha256(key: &[u8], data: &str) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key");
    mac.update(data.as_bytes());
    mac.finalize().into_bytes().to_vec()
}

fn sha256_hex(data: &[u8]) -> String {
    hex(&Sha256::digest(data))
}

/// The `Authorization` value of TC3-HMAC-SHA256 ("签名方法 v3") for a request: the canonical request
/// (`METHOD\nPATH\nQUERY\n` + `name:lowercase(trim(value))\n` for each of `signed_headers` + `\nSIGNED\nhex(sha256(body))`),
/// the string to sign (`TC3-HMAC-SHA256\nTIMESTAMP\nDATE/SERVICE/tc3_request\nhex(sha256(canonical))`), signed with
/// the key `HMAC(HMAC(HMAC("TC3" + key, DATE), SERVICE), "tc3_request")`.
///
/// `headers` are the request's (names matched case-insensitively), `signed_headers` the lowercase names to sign, in
/// order; `timestamp` is `X-TC-Timestamp`.
#[allow(clippy::too_many_arguments)]
pub fn tc3_authorization(
    method: &str,
    path: &str,
    query: &str,
    headers: &[(&str, &str)],
    signed_headers: &[&str],
    body: &[u8],
    secret_id: &str,
    secret_key: &str,
    timestamp: i64,
    service: &str,
) -> String {
    let canonical_headers: String = signed_headers
        .iter()
        .map(|name| {
            let value = headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.trim().to_ascii_lowercase())
                .unwrap_or_else(|| panic!("signed header {name:?} is not among the headers"));
            format!("{name}:{value}\n")
        })
        .collect();
    let signed = signed_headers.join(";");
    let canonical = format!(
        "{method}\n{path}\n{query}\n{canonical_headers}\n{signed}\n{}",
        sha256_hex(body)
    );
    let date = utc_date(timestamp);
    let scope = format!("{date}/{service}/tc3_request");
    let to_sign = format!(
        "TC3-HMAC-SHA256\n{timestamp}\n{scope}\n{}",
        sha256_hex(canonical.as_bytes())
    );
    let key = hmac_sha256(format!("TC3{secret_key}").as_bytes(), &date);
    let key = hmac_sha256(&key, service);
    let key = hmac_sha256(&key, "tc3_request");
    let signature = hex(&hmac_sha256(&key, &to_sign));
    format!(
        "TC3-HMAC-SHA256 Credential={secret_id}/{scope}, SignedHeaders={signed}, Signature={signature}"
    )
}

/// The headers of an API 3.0 `POST /` to `host`, as the official SDK sends them (`content-type` and `host` signed),
/// `Authorization` last, signed over `body` at the time now.
pub fn tc3_headers(
    secret_id: &str,
    secret_key: &str,
    host: &str,
    action: &str,
    service: &str,
    version: &str,
    body: &[u8],
) -> Vec<(String, String)> {
    let ts = unix_now() as i64;
    let ts_s = ts.to_string();
    let headers = [
        ("Content-Type", "application/json"),
        ("Host", host),
        ("X-TC-Action", action),
        ("X-TC-Version", version),
        ("X-TC-Timestamp", ts_s.as_str()),
    ];
    let auth = tc3_authorization(
        "POST",
        "/",
        "",
        &headers,
        &["content-type", "host"],
        body,
        secret_id,
        secret_key,
        ts,
        service,
    );
    let mut out: Vec<(String, String)> = headers
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    out.push(("Authorization".into(), auth));
    out
}
