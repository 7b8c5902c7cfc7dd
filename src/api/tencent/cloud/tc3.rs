//! TC3-HMAC-SHA256, the request signature of Tencent Cloud API 3.0 ("签名方法 v3"), verified as Tencent defines it.
//!
//! A client signs a *canonical request*:
//!
//! ```text
//! METHOD \n CANONICAL_URI \n CANONICAL_QUERY \n CANONICAL_HEADERS \n SIGNED_HEADERS \n hex(sha256(body))
//! ```
//!
//! where `CANONICAL_HEADERS` is `lowercase(name):lowercase(trim(value))\n` for each header named in `SignedHeaders`
//! (in that order). Then
//!
//! ```text
//! StringToSign = "TC3-HMAC-SHA256\n" + X-TC-Timestamp + "\n" + date/service/tc3_request + "\n" + hex(sha256(canonical))
//! key          = HMAC("TC3" + SecretKey, date) → HMAC(·, service) → HMAC(·, "tc3_request")
//! Signature    = hex(HMAC(key, StringToSign))
//! Authorization: TC3-HMAC-SHA256 Credential=SecretId/date/service/tc3_request, SignedHeaders=a;b, Signature=…
//! ```
//!
//! `date` is the UTC date (`YYYY-MM-DD`) of `X-TC-Timestamp`.
//!
//! What the official Python SDK (tencentcloud-sdk-python 3.1.195, the default `ClientProfile`) sends: `POST /` with
//! a JSON body (`json.dumps`, ASCII-escaped), `Content-Type: application/json` (no charset), `Host:` the configured
//! endpoint verbatim (with its port, e.g. `127.0.0.1:8080`), `SignedHeaders=content-type;host`, plus unsigned
//! `X-TC-Action`, `X-TC-Version`, `X-TC-Timestamp`, `X-TC-Region`, `X-TC-Language`, `X-TC-RequestClient` and
//! `X-TC-TraceId`.

use axum::http::HeaderMap;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

type HmacSha256 = Hmac<Sha256>;

/// The only algorithm of Tencent Cloud API 3.0 signature v3.
pub const ALGORITHM: &str = "TC3-HMAC-SHA256";

/// Why a request's signature was refused. Each maps to one Tencent error code (see [`Tc3Error::code`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tc3Error {
    /// Authorization header (or X-TC-Timestamp) missing or not in TC3 form → `AuthFailure.InvalidAuthorization`.
    /// The text says what is wrong (never a secret).
    InvalidAuthorization(String),
    /// The SecretId is not configured → `AuthFailure.SecretIdNotFound`.
    SecretIdNotFound,
    /// X-TC-Timestamp more than `max_skew_s` from now, or the credential date is not the timestamp's UTC date →
    /// `AuthFailure.SignatureExpire`.
    SignatureExpire,
    /// Signature mismatch (including a signed header that is absent) → `AuthFailure.SignatureFailure`.
    SignatureFailure,
}

impl Tc3Error {
    /// The Tencent Cloud error code (`Response.Error.Code`).
    pub fn code(&self) -> &'static str {
        match self {
            Tc3Error::InvalidAuthorization(_) => "AuthFailure.InvalidAuthorization",
            Tc3Error::SecretIdNotFound => "AuthFailure.SecretIdNotFound",
            Tc3Error::SignatureExpire => "AuthFailure.SignatureExpire",
            Tc3Error::SignatureFailure => "AuthFailure.SignatureFailure",
        }
    }

    /// A clear English message (`Response.Error.Message`); never contains a secret.
    pub fn message(&self) -> String {
        match self {
            Tc3Error::InvalidAuthorization(why) => format!("Invalid TC3-HMAC-SHA256 authorization: {why}."),
            Tc3Error::SecretIdNotFound => {
                "The SecretId is not found; make sure the SecretId is correct and configured on this server.".into()
            }
            Tc3Error::SignatureExpire => "The signature has expired: X-TC-Timestamp is too far from the server's \
                 time, or the date in the credential scope is not the UTC date of X-TC-Timestamp. Check the \
                 client's clock."
                .into(),
            Tc3Error::SignatureFailure => "The signature does not match: check the SecretKey and that the signed \
                 headers and body are sent exactly as they were signed."
                .into(),
        }
    }
}

impl std::fmt::Display for Tc3Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code(), self.message())
    }
}

impl std::error::Error for Tc3Error {}

/// What a verified request was signed for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub secret_id: String,
    /// The service of the credential scope (`live` for the Live API). The caller decides whether it is acceptable.
    pub service: String,
}

/// The parts of a TC3 `Authorization` header.
struct Authorization<'a> {
    secret_id: &'a str,
    date: &'a str,
    service: &'a str,
    signed_headers: &'a str,
    signature: &'a str,
}

fn invalid(why: &str) -> Tc3Error {
    Tc3Error::InvalidAuthorization(why.to_owned())
}

/// Parses `TC3-HMAC-SHA256 Credential=ID/DATE/SERVICE/tc3_request, SignedHeaders=a;b, Signature=HEX`.
fn parse_authorization(value: &str) -> Result<Authorization<'_>, Tc3Error> {
    const FORM: &str = "expected `TC3-HMAC-SHA256 Credential=SecretId/Date/Service/tc3_request, \
                        SignedHeaders=content-type;host, Signature=...`";
    let rest = value
        .trim()
        .strip_prefix(ALGORITHM)
        .filter(|rest| rest.starts_with([' ', '\t']))
        .ok_or_else(|| invalid(FORM))?;
    let (mut credential, mut signed_headers, mut signature) = (None, None, None);
    for part in rest.split(',') {
        let (key, value) = part.trim().split_once('=').ok_or_else(|| invalid(FORM))?;
        let slot = match key.trim() {
            "Credential" => &mut credential,
            "SignedHeaders" => &mut signed_headers,
            "Signature" => &mut signature,
            _ => return Err(invalid(FORM)),
        };
        if slot.replace(value.trim()).is_some() {
            return Err(invalid(FORM));
        }
    }
    let (Some(credential), Some(signed_headers), Some(signature)) =
        (credential, signed_headers, signature)
    else {
        return Err(invalid(FORM));
    };
    // From the right: SecretId is everything before the date.
    let mut scope = credential.rsplitn(4, '/');
    let (Some("tc3_request"), Some(service), Some(date), Some(secret_id)) =
        (scope.next(), scope.next(), scope.next(), scope.next())
    else {
        return Err(invalid(
            "the Credential must be SecretId/Date/Service/tc3_request",
        ));
    };
    if secret_id.is_empty() || service.is_empty() {
        return Err(invalid(
            "the Credential must be SecretId/Date/Service/tc3_request",
        ));
    }
    let is_date = date.len() == 10
        && date.bytes().enumerate().all(|(i, b)| {
            if i == 4 || i == 7 {
                b == b'-'
            } else {
                b.is_ascii_digit()
            }
        });
    if !is_date {
        return Err(invalid("the date of the Credential must be YYYY-MM-DD"));
    }
    if signed_headers.is_empty() || signed_headers.split(';').any(str::is_empty) {
        return Err(invalid(
            "SignedHeaders must be header names separated by `;`",
        ));
    }
    Ok(Authorization {
        secret_id,
        date,
        service,
        signed_headers,
        signature,
    })
}

/// Verifies a request exactly as Tencent Cloud defines TC3-HMAC-SHA256
/// (<https://cloud.tencent.com/document/api/267/20459>, "签名方法 v3").
///
/// `path` is the request path (the canonical URI, `/` for API 3.0), `query` the raw query string without `?` (empty
/// for POST), `body` the raw body bytes. The canonical headers are, for each name of `SignedHeaders` in the order
/// given (Tencent requires them sorted; not enforced), `lowercase(name):lowercase(trim(value))\n`; a signed header
/// absent from the request makes the signature fail. `lookup` gives the SecretKey of a SecretId.
///
/// Checks, in order: the `Authorization` and `X-TC-Timestamp` headers are well formed
/// ([`Tc3Error::InvalidAuthorization`]); the SecretId is known ([`Tc3Error::SecretIdNotFound`]); the timestamp is
/// within `max_skew_s` seconds of `now_unix` (either way) and the credential date is its UTC date
/// ([`Tc3Error::SignatureExpire`]); the signature matches, compared in constant time
/// ([`Tc3Error::SignatureFailure`]).
#[allow(clippy::too_many_arguments)]
pub fn verify(
    method: &str,
    path: &str,
    query: &str,
    headers: &HeaderMap,
    body: &[u8],
    lookup: impl Fn(&str) -> Option<String>,
    now_unix: i64,
    max_skew_s: i64,
) -> Result<Verified, Tc3Error> {
    let auth_value = headers
        .get(axum::http::header::AUTHORIZATION)
        .ok_or_else(|| invalid("the Authorization header is missing"))?
        .to_str()
        .map_err(|_| invalid("the Authorization header is not ASCII"))?;
    let auth = parse_authorization(auth_value)?;

    let timestamp_str = headers
        .get("x-tc-timestamp")
        .ok_or_else(|| invalid("the X-TC-Timestamp header is missing"))?
        .to_str()
        .map_err(|_| invalid("X-TC-Timestamp must be a Unix time in seconds"))?
        .trim();
    let timestamp = parse_timestamp(timestamp_str)?;

    // An empty SecretKey would make the signature computable by anyone: such a SecretId is not configured.
    let secret_key = lookup(auth.secret_id)
        .filter(|k| !k.is_empty())
        .ok_or(Tc3Error::SecretIdNotFound)?;

    if (i128::from(now_unix) - i128::from(timestamp)).abs() > i128::from(max_skew_s) {
        return Err(Tc3Error::SignatureExpire);
    }
    if auth.date != utc_date(timestamp) {
        return Err(Tc3Error::SignatureExpire);
    }

    let mut canonical_headers = Vec::new();
    for name in auth.signed_headers.split(';') {
        let name = name.trim().to_ascii_lowercase();
        let value = headers
            .get(name.as_str())
            .ok_or(Tc3Error::SignatureFailure)?;
        push_canonical_header(&mut canonical_headers, &name, value.as_bytes());
    }
    let canonical = canonical_request(
        method,
        path,
        query,
        &canonical_headers,
        auth.signed_headers,
        body,
    );
    let string_to_sign = string_to_sign(timestamp_str, auth.date, auth.service, &canonical);

    let provided = decode_hex(auth.signature).ok_or(Tc3Error::SignatureFailure)?;
    signature_mac(&secret_key, auth.date, auth.service, &string_to_sign)
        .verify_slice(&provided)
        .map_err(|_| Tc3Error::SignatureFailure)?;

    Ok(Verified {
        secret_id: auth.secret_id.to_owned(),
        service: auth.service.to_owned(),
    })
}

/// Builds the `Authorization` header value a client would send for this request.
///
/// `headers` are the request's headers (names matched case-insensitively); `signed_headers` the names to sign, in
/// order (Tencent wants them lowercase and sorted; at least `content-type` and `host`). `timestamp` is the value of
/// `X-TC-Timestamp`, which the caller sends too.
///
/// # Panics
///
/// If a name of `signed_headers` is not in `headers`.
#[allow(clippy::too_many_arguments)]
pub fn authorization(
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
    let mut canonical_headers = Vec::new();
    for name in signed_headers {
        let (_, value) = headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .unwrap_or_else(|| panic!("signed header {name:?} is not among the headers"));
        push_canonical_header(
            &mut canonical_headers,
            &name.to_ascii_lowercase(),
            value.as_bytes(),
        );
    }
    let signed = signed_headers.join(";");
    let date = utc_date(timestamp);
    let canonical = canonical_request(method, path, query, &canonical_headers, &signed, body);
    let string_to_sign = string_to_sign(&timestamp.to_string(), &date, service, &canonical);
    let signature = hex(&signature_mac(secret_key, &date, service, &string_to_sign)
        .finalize()
        .into_bytes());
    format!("{ALGORITHM} Credential={secret_id}/{date}/{service}/tc3_request, SignedHeaders={signed}, Signature={signature}")
}

/// `X-TC-Timestamp`: decimal Unix seconds, digits only.
fn parse_timestamp(s: &str) -> Result<i64, Tc3Error> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid("X-TC-Timestamp must be a Unix time in seconds"));
    }
    s.parse()
        .map_err(|_| invalid("X-TC-Timestamp must be a Unix time in seconds"))
}

/// Appends `name:lowercase(trim(value))\n` (`name` already lowercase).
fn push_canonical_header(out: &mut Vec<u8>, name: &str, value: &[u8]) {
    out.extend_from_slice(name.as_bytes());
    out.push(b':');
    out.extend(value.trim_ascii().iter().map(u8::to_ascii_lowercase));
    out.push(b'\n');
}

fn canonical_request(
    method: &str,
    path: &str,
    query: &str,
    canonical_headers: &[u8],
    signed_headers: &str,
    body: &[u8],
) -> Vec<u8> {
    let mut out = Vec::with_capacity(canonical_headers.len() + 128);
    for part in [
        method.as_bytes(),
        path.as_bytes(),
        query.as_bytes(),
        canonical_headers,
        signed_headers.as_bytes(),
    ] {
        out.extend_from_slice(part);
        out.push(b'\n');
    }
    out.extend_from_slice(hex(&Sha256::digest(body)).as_bytes());
    out
}

fn string_to_sign(timestamp: &str, date: &str, service: &str, canonical_request: &[u8]) -> String {
    format!(
        "{ALGORITHM}\n{timestamp}\n{date}/{service}/tc3_request\n{}",
        hex(&Sha256::digest(canonical_request))
    )
}

fn hmac_sha256(key: &[u8], data: &[u8]) -> HmacSha256 {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(data);
    mac
}

/// The HMAC of the string to sign under the derived key, not yet finalised (to verify in constant time).
fn signature_mac(secret_key: &str, date: &str, service: &str, string_to_sign: &str) -> HmacSha256 {
    let secret_date = hmac_sha256(format!("TC3{secret_key}").as_bytes(), date.as_bytes())
        .finalize()
        .into_bytes();
    let secret_service = hmac_sha256(&secret_date, service.as_bytes())
        .finalize()
        .into_bytes();
    let secret_signing = hmac_sha256(&secret_service, b"tc3_request")
        .finalize()
        .into_bytes();
    hmac_sha256(&secret_signing, string_to_sign.as_bytes())
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 0x0f)] as char);
    }
    out
}

/// Hex (either case) to bytes; `None` if not an even number of hex digits.
fn decode_hex(s: &str) -> Option<Vec<u8>> {
    fn digit(c: u8) -> Option<u8> {
        (c as char).to_digit(16).map(|d| d as u8)
    }
    let s = s.as_bytes();
    if !s.len().is_multiple_of(2) {
        return None;
    }
    s.chunks_exact(2)
        .map(|pair| Some(digit(pair[0])? << 4 | digit(pair[1])?))
        .collect()
}

/// The UTC calendar date `YYYY-MM-DD` of a Unix time (proleptic Gregorian; Howard Hinnant's `civil_from_days`).
fn utc_date(unix: i64) -> String {
    super::super::isotime::date(unix)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::{HeaderName, HeaderValue};

    fn header_map(headers: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            map.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        map
    }

    /// A request captured from the official Python SDK (tencentcloud-sdk-python-common/-live 3.1.195,
    /// `LiveClient(Credential(SECRET_ID, SECRET_KEY), "ap-guangzhou", ClientProfile(httpProfile=
    /// HttpProfile(protocol="http", endpoint="127.0.0.1:18931")))`, `CreateCommonMixStream` with the SDK's clock
    /// pinned at 1735689599.75, i.e. 2024-12-31T23:59:59Z, one second before a UTC date change), as received by
    /// a plain Python HTTP server. All headers as sent, in order; the Authorization is the SDK's.
    mod sdk {
        pub const SECRET_ID: &str = "AKIDTesseraKnownAnswer0001";
        pub const SECRET_KEY: &str = "TesseraKnownAnswerSecretKey0001";
        pub const TIMESTAMP: i64 = 1735689599;
        pub const BODY: &str = r#"{"MixStreamSessionId": "\u6df7\u6d411", "InputStreamList": [{"InputStreamName": "a", "LayoutParams": {"ImageLayer": 1}}], "OutputParams": {"OutputStreamName": "out"}}"#;
        pub const AUTHORIZATION: &str =
            "TC3-HMAC-SHA256 Credential=AKIDTesseraKnownAnswer0001/2024-12-31/live/\
            tc3_request, SignedHeaders=content-type;host, \
            Signature=5a49304e285ff6eb250001e20da07930502a22e9218383951afd163b517e0318";
        pub const HEADERS: &[(&str, &str)] = &[
            ("User-Agent", "python-requests/2.34.2"),
            ("Accept-Encoding", "gzip, deflate"),
            ("Accept", "*/*"),
            ("Connection", "keep-alive"),
            ("X-TC-TraceId", "a0fd839b-3f0a-4e37-97c3-608ab46bc5bf"),
            ("Content-Type", "application/json"),
            ("Host", "127.0.0.1:18931"),
            ("X-TC-Action", "CreateCommonMixStream"),
            ("X-TC-RequestClient", "SDK_PYTHON_3.1.195"),
            ("X-TC-Timestamp", "1735689599"),
            ("X-TC-Version", "2018-08-01"),
            ("X-TC-Region", "ap-guangzhou"),
            ("X-TC-Language", "zh-CN"),
            ("Authorization", AUTHORIZATION),
            ("Content-Length", "166"),
        ];
    }

    fn sdk_lookup(id: &str) -> Option<String> {
        (id == sdk::SECRET_ID).then(|| sdk::SECRET_KEY.to_owned())
    }

    #[test]
    fn tc3_accepts_the_official_python_sdks_request() {
        let headers = header_map(sdk::HEADERS);
        assert_eq!(sdk::BODY.len(), 166);
        let verified = verify(
            "POST",
            "/",
            "",
            &headers,
            sdk::BODY.as_bytes(),
            sdk_lookup,
            sdk::TIMESTAMP + 7,
            300,
        )
        .unwrap();
        assert_eq!(
            verified,
            Verified {
                secret_id: sdk::SECRET_ID.into(),
                service: "live".into()
            }
        );
    }

    #[test]
    fn tc3_authorization_reproduces_the_official_python_sdks_header() {
        let auth = authorization(
            "POST",
            "/",
            "",
            sdk::HEADERS,
            &["content-type", "host"],
            sdk::BODY.as_bytes(),
            sdk::SECRET_ID,
            sdk::SECRET_KEY,
            sdk::TIMESTAMP,
            "live",
        );
        assert_eq!(auth, sdk::AUTHORIZATION);
    }

    /// The worked example of Tencent's "Signature v3" document (CVM `DescribeInstances`, X-TC-Timestamp 1551113065,
    /// SecretKey `Gu5t9xGARNpq86cd98joQYCN3EXAMPLE`; the document masks the SecretId, which is not part of the
    /// signature), with its published CanonicalRequest hash and Signature.
    #[test]
    fn tc3_matches_tencents_documented_example() {
        const KEY: &str = "Gu5t9xGARNpq86cd98joQYCN3EXAMPLE";
        const ID: &str = "AKID**********************0123456789EXAMPLE";
        const BODY: &str = r#"{"Limit": 1, "Filters": [{"Values": ["\u672a\u547d\u540d"], "Name": "instance-name"}]}"#;
        const SIGNATURE: &str = "72e494ea809ad7a8c8f7a4507b9bddcbaa8e581f516e8da2f66e2c5a96525168";
        let request_headers = [
            ("Content-Type", "application/json; charset=utf-8"),
            ("Host", "cvm.tencentcloudapi.com"),
            ("X-TC-Action", "DescribeInstances"),
            ("X-TC-Timestamp", "1551113065"),
            ("X-TC-Version", "2017-03-12"),
            ("X-TC-Region", "ap-guangzhou"),
        ];

        // Intermediate values published by the document.
        let mut canonical_headers = Vec::new();
        push_canonical_header(
            &mut canonical_headers,
            "content-type",
            b"application/json; charset=utf-8",
        );
        push_canonical_header(&mut canonical_headers, "host", b"cvm.tencentcloudapi.com");
        let canonical = canonical_request(
            "POST",
            "/",
            "",
            &canonical_headers,
            "content-type;host",
            BODY.as_bytes(),
        );
        assert_eq!(
            String::from_utf8(canonical.clone()).unwrap(),
            "POST\n/\n\ncontent-type:application/json; charset=utf-8\nhost:cvm.tencentcloudapi.com\n\n\
             content-type;host\n35e9c5b0e3ae67532d3c9f17ead6c90222632e5b1ff7f6e89887f1398934f064"
        );
        assert_eq!(
            string_to_sign("1551113065", "2019-02-25", "cvm", &canonical),
            "TC3-HMAC-SHA256\n1551113065\n2019-02-25/cvm/tc3_request\n\
             5ffe6a04c0664d6b969fab9a13bdab201d63ee709638e2749d62a09ca18d7031"
        );

        let expected = format!(
            "TC3-HMAC-SHA256 Credential={ID}/2019-02-25/cvm/tc3_request, SignedHeaders=content-type;host, \
             Signature={SIGNATURE}"
        );
        let auth = authorization(
            "POST",
            "/",
            "",
            &request_headers,
            &["content-type", "host"],
            BODY.as_bytes(),
            ID,
            KEY,
            1551113065,
            "cvm",
        );
        assert_eq!(auth, expected);

        let mut headers = header_map(&request_headers);
        headers.insert("authorization", HeaderValue::from_str(&expected).unwrap());
        let lookup = |id: &str| (id == ID).then(|| KEY.to_owned());
        let verified = verify(
            "POST",
            "/",
            "",
            &headers,
            BODY.as_bytes(),
            lookup,
            1551113065,
            300,
        )
        .unwrap();
        assert_eq!(
            verified,
            Verified {
                secret_id: ID.into(),
                service: "cvm".into()
            }
        );
    }

    const ID: &str = "AKIDroundtrip";
    const KEY: &str = "roundtrip-secret-key";
    const NOW: i64 = 1_700_000_000; // 2023-11-14T22:13:20Z
    const BODY: &[u8] = br#"{"MixStreamSessionId": "s1"}"#;

    fn lookup(id: &str) -> Option<String> {
        (id == ID).then(|| KEY.to_owned())
    }

    /// A request as the SDK would send it, signed by [`authorization`] with `key` at `timestamp`.
    fn signed(key: &str, timestamp: i64) -> HeaderMap {
        let ts = timestamp.to_string();
        let mut headers = vec![
            ("Content-Type", "application/json"),
            ("Host", "127.0.0.1:8080"),
            ("X-TC-Action", "CancelCommonMixStream"),
            ("X-TC-Version", "2018-08-01"),
            ("X-TC-Timestamp", ts.as_str()),
        ];
        let auth = authorization(
            "POST",
            "/",
            "",
            &headers,
            &["content-type", "host"],
            BODY,
            ID,
            key,
            timestamp,
            "live",
        );
        headers.push(("Authorization", &auth));
        header_map(&headers)
    }

    fn check(headers: &HeaderMap, body: &[u8]) -> Result<Verified, Tc3Error> {
        verify("POST", "/", "", headers, body, lookup, NOW, 300)
    }

    fn set(headers: &mut HeaderMap, name: &'static str, value: &str) {
        headers.insert(name, HeaderValue::from_str(value).unwrap());
    }

    fn auth_of(headers: &HeaderMap) -> String {
        headers["authorization"].to_str().unwrap().to_owned()
    }

    #[test]
    fn tc3_round_trip() {
        let verified = check(&signed(KEY, NOW), BODY).unwrap();
        assert_eq!(
            verified,
            Verified {
                secret_id: ID.into(),
                service: "live".into()
            }
        );
    }

    #[test]
    fn tc3_tampering_is_a_signature_failure() {
        let ok = signed(KEY, NOW);

        let mut body = BODY.to_vec();
        body[5] ^= 1;
        assert_eq!(check(&ok, &body), Err(Tc3Error::SignatureFailure));
        assert_eq!(check(&ok, b""), Err(Tc3Error::SignatureFailure));

        let mut headers = ok.clone();
        set(
            &mut headers,
            "content-type",
            "application/json; charset=utf-8",
        );
        assert_eq!(check(&headers, BODY), Err(Tc3Error::SignatureFailure));

        let mut headers = ok.clone();
        set(&mut headers, "host", "127.0.0.1:8081");
        assert_eq!(check(&headers, BODY), Err(Tc3Error::SignatureFailure));

        // Same UTC date, well within the skew: only the signature can tell.
        let mut headers = ok.clone();
        set(&mut headers, "x-tc-timestamp", &(NOW + 1).to_string());
        assert_eq!(check(&headers, BODY), Err(Tc3Error::SignatureFailure));

        assert_eq!(
            check(&signed("another-key", NOW), BODY),
            Err(Tc3Error::SignatureFailure)
        );

        assert_eq!(
            verify("GET", "/", "", &ok, BODY, lookup, NOW, 300),
            Err(Tc3Error::SignatureFailure)
        );
        assert_eq!(
            verify("POST", "/x", "", &ok, BODY, lookup, NOW, 300),
            Err(Tc3Error::SignatureFailure)
        );
        assert_eq!(
            verify("POST", "/", "a=1", &ok, BODY, lookup, NOW, 300),
            Err(Tc3Error::SignatureFailure)
        );

        // The signature itself: one digit changed, truncated, not hex.
        let auth = auth_of(&ok);
        let last = auth.chars().last().unwrap();
        let flipped = format!(
            "{}{}",
            &auth[..auth.len() - 1],
            if last == '0' { '1' } else { '0' }
        );
        for bad in [
            flipped,
            auth[..auth.len() - 2].to_owned(),
            format!("{}zz", &auth[..auth.len() - 2]),
        ] {
            let mut headers = ok.clone();
            set(&mut headers, "authorization", &bad);
            assert_eq!(
                check(&headers, BODY),
                Err(Tc3Error::SignatureFailure),
                "{bad}"
            );
        }
        // Upper-case hex is the same signature.
        let mut headers = ok.clone();
        let (head, sig) = auth.split_once("Signature=").unwrap();
        set(
            &mut headers,
            "authorization",
            &format!("{head}Signature={}", sig.to_ascii_uppercase()),
        );
        assert!(check(&headers, BODY).is_ok());
    }

    #[test]
    fn tc3_signed_header_missing_is_a_signature_failure() {
        let mut headers = signed(KEY, NOW);
        headers.remove("host");
        assert_eq!(check(&headers, BODY), Err(Tc3Error::SignatureFailure));

        // Signing a header the request does not carry.
        let mut headers = signed(KEY, NOW);
        let auth = auth_of(&headers).replace(
            "SignedHeaders=content-type;host",
            "SignedHeaders=content-type;host;x-tc-region",
        );
        set(&mut headers, "authorization", &auth);
        assert_eq!(check(&headers, BODY), Err(Tc3Error::SignatureFailure));
    }

    #[test]
    fn tc3_header_values_are_trimmed_and_lowercased() {
        let ts = NOW.to_string();
        let mut headers = vec![
            ("Content-Type", "  Application/JSON\t"),
            ("Host", "LIVE.TencentCloudAPI.com"),
            ("X-TC-Action", "CreateCommonMixStream"),
            ("X-TC-Timestamp", ts.as_str()),
        ];
        let auth = authorization(
            "POST",
            "/",
            "",
            &headers,
            &["content-type", "host", "x-tc-action"],
            BODY,
            ID,
            KEY,
            NOW,
            "live",
        );
        headers.push(("Authorization", &auth));
        let mut map = header_map(&headers);
        assert!(check(&map, BODY).is_ok());
        // The same header, lower-cased and untrimmed by a proxy, still verifies.
        set(&mut map, "content-type", "application/json");
        set(&mut map, "x-tc-action", "createcommonmixstream");
        assert!(check(&map, BODY).is_ok());
    }

    #[test]
    fn tc3_unknown_secret_id() {
        let mut headers = signed(KEY, NOW);
        let auth = auth_of(&headers).replace(ID, "AKIDsomeoneelse");
        set(&mut headers, "authorization", &auth);
        assert_eq!(check(&headers, BODY), Err(Tc3Error::SecretIdNotFound));
    }

    /// Defence in depth: even if validation were bypassed, an empty SecretKey verifies nothing.
    #[test]
    fn tc3_an_empty_secret_key_verifies_nothing() {
        let headers = signed("", NOW);
        let empty = |id: &str| (id == ID).then(String::new);
        assert_eq!(
            verify("POST", "/", "", &headers, BODY, empty, NOW, 300),
            Err(Tc3Error::SecretIdNotFound)
        );
    }

    #[test]
    fn tc3_skew_beyond_the_limit_expires() {
        for skew in [-300, 300] {
            assert!(check(&signed(KEY, NOW + skew), BODY).is_ok(), "{skew}");
        }
        for skew in [-301, 301, -86_400] {
            assert_eq!(
                check(&signed(KEY, NOW + skew), BODY),
                Err(Tc3Error::SignatureExpire),
                "{skew}"
            );
        }
        // A far-future or huge timestamp is just expired, not an overflow.
        let mut headers = signed(KEY, NOW);
        set(&mut headers, "x-tc-timestamp", &i64::MAX.to_string());
        assert_eq!(check(&headers, BODY), Err(Tc3Error::SignatureExpire));
        assert_eq!(
            verify(
                "POST",
                "/",
                "",
                &signed(KEY, NOW),
                BODY,
                lookup,
                i64::MIN,
                300
            ),
            Err(Tc3Error::SignatureExpire)
        );
    }

    #[test]
    fn tc3_scope_date_must_be_the_timestamps_utc_date() {
        let mut headers = signed(KEY, NOW);
        let auth = auth_of(&headers).replace("/2023-11-14/", "/2023-11-15/");
        set(&mut headers, "authorization", &auth);
        assert_eq!(check(&headers, BODY), Err(Tc3Error::SignatureExpire));

        // Across midnight UTC: signed at 23:59:59 (date D), verified a few seconds later (date D+1) is fine...
        let midnight = 1_700_006_400; // 2023-11-15T00:00:00Z
        let headers = signed(KEY, midnight - 1);
        assert!(auth_of(&headers).contains("/2023-11-14/live/"));
        assert!(verify("POST", "/", "", &headers, BODY, lookup, midnight + 5, 300).is_ok());
        // ...but a client that dates the scope in local time (UTC+8) is refused.
        let mut headers = signed(KEY, midnight - 1);
        let auth = auth_of(&headers).replace("/2023-11-14/", "/2023-11-15/");
        set(&mut headers, "authorization", &auth);
        assert_eq!(
            verify("POST", "/", "", &headers, BODY, lookup, midnight + 5, 300),
            Err(Tc3Error::SignatureExpire)
        );
    }

    #[test]
    fn tc3_garbage_authorization_is_invalid() {
        let ok = signed(KEY, NOW);
        let good = auth_of(&ok);
        let garbage = [
            "".to_owned(),
            "garbage".to_owned(),
            "Bearer abc".to_owned(),
            good.replacen("TC3-HMAC-SHA256 ", "TC3-HMAC-SHA1 ", 1),
            good.replacen("TC3-HMAC-SHA256 ", "TC3-HMAC-SHA256", 1),
            good.replace("/tc3_request", "/aws4_request"),
            good.replace(&format!("Credential={ID}/"), "Credential=/"),
            good.replace("/2023-11-14/", "/20231114/"),
            good.replace("/2023-11-14/live/", "/2023-11-14/"),
            good.replace("SignedHeaders=content-type;host, ", ""),
            good.replace("SignedHeaders=content-type;host", "SignedHeaders="),
            good.replace(
                "SignedHeaders=content-type;host",
                "SignedHeaders=content-type;;host",
            ),
            good.replace("Signature=", "Sig="),
            format!("{good}, Signature=00"),
            format!("{good}, Extra=1"),
        ];
        for bad in garbage {
            let mut headers = ok.clone();
            set(&mut headers, "authorization", &bad);
            let err = check(&headers, BODY).unwrap_err();
            assert!(
                matches!(err, Tc3Error::InvalidAuthorization(_)),
                "{bad:?} gave {err:?}"
            );
        }

        let mut headers = ok.clone();
        headers.remove("authorization");
        assert!(matches!(
            check(&headers, BODY),
            Err(Tc3Error::InvalidAuthorization(_))
        ));

        let mut headers = ok.clone();
        headers.remove("x-tc-timestamp");
        assert!(matches!(
            check(&headers, BODY),
            Err(Tc3Error::InvalidAuthorization(_))
        ));

        for bad in [
            "",
            "abc",
            "-1",
            "+1700000000",
            "1700000000.5",
            "99999999999999999999",
        ] {
            let mut headers = ok.clone();
            set(&mut headers, "x-tc-timestamp", bad);
            assert!(
                matches!(
                    check(&headers, BODY),
                    Err(Tc3Error::InvalidAuthorization(_))
                ),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn tc3_lenient_spacing_in_authorization() {
        let ok = signed(KEY, NOW);
        let spaced = auth_of(&ok).replace(", ", " ,  ").replacen(
            "TC3-HMAC-SHA256 ",
            "TC3-HMAC-SHA256   ",
            1,
        );
        let mut headers = ok.clone();
        set(&mut headers, "authorization", &format!(" {spaced} "));
        assert!(check(&headers, BODY).is_ok());
    }

    #[test]
    fn tc3_error_codes_and_messages() {
        let cases = [
            (
                Tc3Error::InvalidAuthorization("x".into()),
                "AuthFailure.InvalidAuthorization",
            ),
            (Tc3Error::SecretIdNotFound, "AuthFailure.SecretIdNotFound"),
            (Tc3Error::SignatureExpire, "AuthFailure.SignatureExpire"),
            (Tc3Error::SignatureFailure, "AuthFailure.SignatureFailure"),
        ];
        for (err, code) in cases {
            assert_eq!(err.code(), code);
            assert!(!err.message().is_empty());
            assert!(err.to_string().starts_with(code));
        }
        // No secret ever appears in what a client is told.
        let mut headers = signed(KEY, NOW);
        set(&mut headers, "authorization", "TC3-HMAC-SHA256 nonsense");
        let err = check(&headers, BODY).unwrap_err();
        assert!(!err.message().contains(KEY));
    }

    #[test]
    fn tc3_utc_dates() {
        for (unix, date) in [
            (0, "1970-01-01"),
            (86_399, "1970-01-01"),
            (86_400, "1970-01-02"),
            (951_782_400, "2000-02-29"),
            (951_868_800, "2000-03-01"),
            (1_551_113_065, "2019-02-25"),
            (1_735_689_599, "2024-12-31"),
            (1_735_689_600, "2025-01-01"),
            (4_107_542_400, "2100-03-01"),
            (-1, "1969-12-31"),
        ] {
            assert_eq!(utc_date(unix), date, "{unix}");
        }
    }

    #[test]
    fn tc3_hex() {
        assert_eq!(hex(&[0x00, 0x0f, 0xa5, 0xff]), "000fa5ff");
        assert_eq!(decode_hex("000fA5ff"), Some(vec![0x00, 0x0f, 0xa5, 0xff]));
        assert_eq!(decode_hex("abc"), None);
        assert_eq!(decode_hex("zz"), None);
        assert_eq!(decode_hex("+1"), None);
    }
}
