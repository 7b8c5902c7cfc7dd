//! ZEGO signature v2.0: `Signature = md5(AppId + SignatureNonce + ServerSecret + Timestamp)`, lowercase hex, with
//! the timestamp at most `timestamp_window_s` off. Going beyond ZEGO, a nonce seen within that window is refused
//! as a replay. Checked before the body is looked at.

use std::{collections::HashMap, time::Duration};

use md5::{Digest, Md5};

use super::codes::*;
use crate::api::constant_time_eq;
use crate::config::ZegoConfig;

/// `md5(app_id + nonce + secret + timestamp)` in lowercase hex.
pub fn signature(app_id: &str, nonce: &str, secret: &str, timestamp: &str) -> String {
    let mut h = Md5::new();
    h.update(app_id.as_bytes());
    h.update(nonce.as_bytes());
    h.update(secret.as_bytes());
    h.update(timestamp.as_bytes());
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

pub use super::nonces::NonceCache;

/// Checks the common query parameters of a request.
pub fn verify(
    query: &HashMap<String, String>,
    config: &ZegoConfig,
    nonces: &NonceCache,
    now_unix: i64,
) -> Result<(), ZegoError> {
    let get = |k: &str| query.get(k).map(String::as_str).unwrap_or("");
    let app_id = get("AppId");
    // An empty secret would verify requests signed with "": the dialect is off (configuration refuses it too).
    if config.app_id == 0
        || config.server_secret.is_empty()
        || app_id.parse::<u64>().ok() != Some(config.app_id)
    {
        return Err(ZegoError::new(
            APP_ID_INVALID,
            "AppId is missing, malformed or unknown",
        ));
    }
    let timestamp = get("Timestamp");
    if timestamp.is_empty() {
        return Err(ZegoError::new(TIMESTAMP_EMPTY, "Timestamp is empty"));
    }
    let Ok(ts) = timestamp.parse::<i64>() else {
        return Err(ZegoError::new(
            TIMESTAMP_INVALID,
            "Timestamp must be Unix seconds",
        ));
    };
    let nonce = get("SignatureNonce");
    if nonce.is_empty() {
        return Err(ZegoError::new(NONCE_EMPTY, "SignatureNonce is empty"));
    }
    let sig = get("Signature");
    if sig.is_empty() {
        return Err(ZegoError::new(SIGNATURE_EMPTY, "Signature is empty"));
    }
    match get("SignatureVersion") {
        "" => {
            return Err(ZegoError::new(
                SIGNATURE_VERSION_EMPTY,
                "SignatureVersion is empty",
            ))
        }
        "2.0" => {}
        _ => {
            return Err(ZegoError::new(
                SIGNATURE_VERSION_UNSUPPORTED,
                "SignatureVersion must be 2.0",
            ))
        }
    }
    let window = config.timestamp_window_s as i64;
    if (now_unix - ts).abs() > window {
        return Err(ZegoError::new(
            SIGNATURE_EXPIRED,
            format!("Timestamp is more than {window} s away from the server's clock"),
        ));
    }
    let expected = signature(app_id, nonce, config.server_secret.expose(), timestamp);
    if !constant_time_eq(expected.as_bytes(), sig.to_ascii_lowercase().as_bytes()) {
        return Err(ZegoError::new(SIGNATURE_WRONG, "Signature does not match"));
    }
    if !nonces.insert(nonce, Duration::from_secs(config.timestamp_window_s * 2)) {
        return Err(ZegoError::new(
            SIGNATURE_WRONG,
            "SignatureNonce was already used (replayed request)",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zego_documented_test_vector() {
        assert_eq!(
            signature(
                "12345",
                "4fd24687296dd9f3",
                "9193cc662a4c0ec135ec71fb57194b38",
                "1615186943"
            ),
            "43e5cfcca828314675f91b001390566a"
        );
    }

    fn config() -> ZegoConfig {
        ZegoConfig {
            app_id: 12345,
            server_secret: "9193cc662a4c0ec135ec71fb57194b38".into(),
            ..ZegoConfig::default()
        }
    }

    fn query(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn good() -> Vec<(&'static str, &'static str)> {
        vec![
            ("AppId", "12345"),
            ("SignatureNonce", "4fd24687296dd9f3"),
            ("Timestamp", "1615186943"),
            ("Signature", "43e5cfcca828314675f91b001390566a"),
            ("SignatureVersion", "2.0"),
        ]
    }

    fn code(pairs: &[(&str, &str)], now: i64) -> u32 {
        verify(&query(pairs), &config(), &NonceCache::default(), now)
            .map(|_| 0)
            .unwrap_or_else(|e| e.code)
    }

    #[test]
    fn each_failure_has_its_code() {
        let now = 1615186943;
        assert_eq!(code(&good(), now), 0);
        let with = |k: &'static str, v: &'static str| {
            let mut q = good();
            q.retain(|(key, _)| *key != k);
            if !v.is_empty() || k == "Timestamp" {
                q.push((k, v));
            }
            q
        };
        assert_eq!(code(&with("AppId", "x"), now), APP_ID_INVALID);
        assert_eq!(code(&with("AppId", "54321"), now), APP_ID_INVALID);
        assert_eq!(code(&with("Timestamp", ""), now), TIMESTAMP_EMPTY);
        assert_eq!(code(&with("Timestamp", "soon"), now), TIMESTAMP_INVALID);
        assert_eq!(code(&good(), now + 601), SIGNATURE_EXPIRED);
        assert_eq!(code(&good(), now - 601), SIGNATURE_EXPIRED);
        assert_eq!(
            code(&with("Signature", "00000000000000000000000000000000"), now),
            SIGNATURE_WRONG
        );
        assert_eq!(code(&with("SignatureNonce", ""), now), NONCE_EMPTY);
        assert_eq!(code(&with("Signature", ""), now), SIGNATURE_EMPTY);
        assert_eq!(
            code(&with("SignatureVersion", ""), now),
            SIGNATURE_VERSION_EMPTY
        );
        assert_eq!(
            code(&with("SignatureVersion", "1.0"), now),
            SIGNATURE_VERSION_UNSUPPORTED
        );
    }

    /// Defence in depth: even if validation were bypassed, an empty secret verifies nothing.
    #[test]
    fn an_empty_secret_verifies_nothing() {
        let config = ZegoConfig {
            app_id: 12345,
            server_secret: "".into(),
            ..ZegoConfig::default()
        };
        let sig = signature("12345", "n1", "", "1615186943");
        let q = query(&[
            ("AppId", "12345"),
            ("SignatureNonce", "n1"),
            ("Timestamp", "1615186943"),
            ("Signature", &sig),
            ("SignatureVersion", "2.0"),
        ]);
        let refused = verify(&q, &config, &NonceCache::default(), 1615186943);
        assert_eq!(refused.map_err(|e| e.code), Err(APP_ID_INVALID));
    }

    #[test]
    fn replayed_nonce_is_refused() {
        let nonces = NonceCache::default();
        let q = query(&good());
        verify(&q, &config(), &nonces, 1615186943).unwrap();
        assert_eq!(
            verify(&q, &config(), &nonces, 1615186943).unwrap_err().code,
            SIGNATURE_WRONG
        );
    }
}
