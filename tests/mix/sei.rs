//! The inputs' own SEI messages carried into the output (`sei.pass_input`).

use std::time::Duration;

use serde_json::json;

use super::*;

const FROM_A: &[u8; 16] = b"input-a-sei-uuid";
const FROM_B: &[u8; 16] = b"input-b-sei-uuid";
const LEVELS: &[u8; 16] = b"tessera-soundlvl";

/// The number of input-`a` messages on each output frame of `seen`. With sound levels on, every output frame
/// carries exactly one sound-level message, first (Tessera's own messages come before the passed ones).
fn per_frame(seen: &[SeiMessage]) -> Vec<usize> {
    let mut frames: Vec<usize> = Vec::new();
    for (uuid, _) in seen {
        if uuid == LEVELS {
            frames.push(0);
        } else if uuid == FROM_A {
            if let Some(n) = frames.last_mut() {
                *n += 1;
            }
        }
    }
    frames
}

#[test]
fn input_sei_is_passed_on_only_when_asked() {
    let rig = Rig::start();
    let sei_of = |uuid: &[u8; 16], text: &[u8]| PublishOpts {
        pattern: Pattern::Solid(RED),
        sei: Some((*uuid, text.to_vec())),
        ..PublishOpts::default()
    };
    let _a = rig.publish("a", sei_of(FROM_A, b"hello from a"));
    // b is heard, not seen: its SEI stays out.
    let _b = rig.publish("b", sei_of(FROM_B, b"hello from b"));
    let mix = |pass: bool| {
        let mut s = spec(
            "#000000",
            vec![
                input("a", rect(0, 0, 320, 180)),
                json!({"id": "b", "source": {"stream_id": "b"}, "content": "audio"}),
            ],
        );
        s["sei"] = json!({"pass_input": pass, "sound_levels": true});
        s
    };
    rig.put("m", &mix(true));
    let url = rig.nginx.rtmp_url("mix", "out");
    let a_count = |m: &[SeiMessage]| m.iter().filter(|(u, _)| u == FROM_A).count();
    let seen = collect_sei(&url, Duration::from_secs(30), |m| a_count(m) >= 90);
    let from_a: Vec<&Vec<u8>> = seen
        .iter()
        .filter(|(u, _)| u == FROM_A)
        .map(|(_, d)| d)
        .collect();
    assert!(
        from_a.len() >= 90,
        "input a's SEI seen {} times in {} messages",
        from_a.len(),
        seen.len()
    );
    assert!(from_a.iter().all(|d| d.as_slice() == b"hello from a"));
    assert!(
        !seen.iter().any(|(u, _)| u == FROM_B),
        "the audio-only input's SEI reached the output"
    );
    // Each input frame's message once, on one output frame: both run at 30 fps.
    let frames = per_frame(&seen);
    let first = frames.iter().position(|&n| n > 0).unwrap();
    let frames = &frames[first..];
    let total: usize = frames.iter().sum();
    let ratio = total as f64 / frames.len() as f64;
    assert!(
        (0.6..=1.4).contains(&ratio) && frames.iter().all(|&n| n <= 3),
        "{total} messages on {} frames: {frames:?}",
        frames.len()
    );

    // Off (a live update): gone, while the output goes on (its sound-level messages).
    rig.put("m", &mix(false));
    std::thread::sleep(Duration::from_secs(1));
    let levels = |m: &[SeiMessage]| m.iter().filter(|(u, _)| u == LEVELS).count();
    let seen = collect_sei(&url, Duration::from_secs(30), |m| levels(m) >= 90);
    assert!(
        levels(&seen) >= 90,
        "output stalled: {} messages",
        seen.len()
    );
    assert_eq!(
        a_count(&seen),
        0,
        "input SEI still passed after turning it off"
    );
}
