//! Signed webhooks: delivered in order, retried when the receiver fails, dropped (and said so) when it cannot
//! keep up, and never in the way of the API.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::{receiver::Receiver, *};

const SECRET: &str = "webhook-secret-0123456789";

/// Checks `X-Tessera-Signature` as a receiver would: the HMAC of `t + "." + body`, `t` close to now.
fn verify(signature: &str, body: &str) {
    let (t, v1) = signature
        .split_once(',')
        .and_then(|(t, v)| Some((t.strip_prefix("t=")?, v.strip_prefix("v1=")?)))
        .unwrap_or_else(|| panic!("malformed signature {signature:?}"));
    let t: i64 = t.parse().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!((now - t).abs() < 120, "t={t}, now {now}");
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(format!("{t}.{body}").as_bytes());
    let expected: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(v1, expected, "signature of {body}");
}

fn config_to(receiver: &Receiver, adjust: impl FnOnce(&mut tessera::Config)) -> tessera::Config {
    let mut c = config();
    c.webhooks.urls = vec![receiver.url.clone()];
    c.webhooks.secret = SECRET.into();
    c.webhooks.events = vec!["mix.*".into()];
    adjust(&mut c);
    c
}

#[test]
fn webhooks_are_signed_and_retried_until_delivered() {
    let receiver = Receiver::start();
    // The receiver fails twice before it takes the first delivery.
    receiver.answer(&[(500, Duration::ZERO), (503, Duration::ZERO)]);
    let tessera = Tessera::start(config_to(&receiver, |_| {}));
    assert_eq!(tessera.put("/v1/mixes/m", &mix("m-out")).0, 201);
    assert_eq!(tessera.delete("/v1/mixes/m").0, 204);
    assert!(
        wait_for(Duration::from_secs(30), || receiver
            .received()
            .iter()
            .filter(|r| r.body.contains("mix.stopped"))
            .count()
            == 1),
        "{:#?}",
        receiver.received()
    );
    let got = receiver.received();
    // Two failed attempts at the first event, then both events in order; only mix.* events (no outputs).
    let kinds: Vec<String> = got
        .iter()
        .map(|r| {
            serde_json::from_str::<Value>(&r.body).unwrap()["type"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(
        kinds,
        ["mix.started", "mix.started", "mix.started", "mix.stopped"]
    );
    for r in &got {
        verify(r.header("x-tessera-signature").expect("signed"), &r.body);
        assert_eq!(r.header("content-type"), Some("application/json"));
        assert!(r.header("x-tessera-dropped").is_none());
    }
    let event: Value = serde_json::from_str(&got[3].body).unwrap();
    assert_eq!(event["task"], json!({"kind": "mix", "id": "m"}));
    assert_eq!(event["reason"], "deleted");
}

#[test]
fn a_stuck_receiver_loses_only_its_own_events_and_is_told() {
    let receiver = Receiver::start();
    // The receiver hangs for 4 s on each of its first deliveries; its queue holds one event.
    receiver.answer(&[(200, Duration::from_secs(4)), (200, Duration::from_secs(4))]);
    let tessera = Tessera::start(config_to(&receiver, |c| c.webhooks.queue = 1));
    let http = reqwest::blocking::Client::new();
    let began = Instant::now();
    for i in 0..4 {
        let url = tessera.url(&format!("/v1/mixes/m{i}"));
        assert_eq!(
            http.put(&url)
                .json(&mix(&format!("o{i}")))
                .send()
                .unwrap()
                .status(),
            201
        );
        assert_eq!(http.delete(&url).send().unwrap().status(), 204);
    }
    // The API did not wait for the receiver.
    assert!(
        began.elapsed() < Duration::from_secs(4),
        "{:?}",
        began.elapsed()
    );
    // Eight events: one in delivery, one queued, the rest dropped; a later delivery says how many.
    assert_eq!(tessera.put("/v1/mixes/late", &mix("late-out")).0, 201);
    assert!(
        wait_for(Duration::from_secs(30), || receiver
            .received()
            .iter()
            .any(|r| r.header("x-tessera-dropped").is_some())),
        "{:#?}",
        receiver.received()
    );
    let told: u64 = receiver
        .received()
        .iter()
        .filter_map(|r| r.header("x-tessera-dropped"))
        .map(|d| d.parse::<u64>().unwrap())
        .sum();
    assert!(told >= 5, "told of {told} dropped events");
}
