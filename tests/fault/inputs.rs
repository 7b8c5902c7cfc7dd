//! Inputs that misbehave: garbage bytes, a stall in the middle of a tag with the connection held open, and a
//! picture size that changes mid-stream. The faulty input is an HTTP-FLV source whose every byte the test decides
//! ([`FlvServer`]); beside it a healthy RTMP input. Whatever the faulty one does, the output keeps its frame rate,
//! the healthy input's rect keeps its colour, and the faulty input shows what the engine shows for a lost input
//! (nothing before its first frame, its last frame after) until good media returns.

use std::{
    path::Path,
    sync::{
        atomic::{AtomicBool, AtomicU8, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use super::{
    flv_server::{random_bytes, Flv, FlvServer, Reply, Tag},
    *,
};

/// Left rect centre (the healthy RTMP input, red) and right rect centre (the faulty HTTP-FLV input).
const LEFT: (u32, u32) = (160, 90);
const RIGHT: (u32, u32) = (480, 90);

/// A rig whose inputs are declared stalled after 3 s without media and retried quickly.
fn rig() -> Rig {
    quick_rig(|c| {
        c.ingest.stall_timeout_ms = 3_000;
        c.ingest.connect_timeout_ms = 3_000;
    })
}

/// An FLV file of a solid colour (H.264 + AAC, one keyframe a second), parsed.
fn clip(dir: &Path, name: &str, rgb: u32, width: u32, height: u32, secs: u32) -> Flv {
    let path = dir.join(format!("{name}.flv"));
    write_flv(
        &path,
        &PublishOpts {
            pattern: Pattern::Solid(rgb),
            width,
            height,
            ..PublishOpts::default()
        },
        secs,
    );
    Flv::read(&path)
}

fn input_state(status: &Value, i: usize) -> String {
    status["inputs"][i]["state"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[test]
fn garbage_input_never_disturbs_the_mix_and_good_media_recovers_it() {
    let rig = rig();
    let dir = tempfile::tempdir().unwrap();
    let good = clip(dir.path(), "good", YELLOW, 320, 180, 20).bytes();
    // Valid container and codec headers, then the first seconds' tags with their payloads replaced by noise:
    // the demuxer is happy, the decoders get garbage.
    let codec_garbage = {
        let flv = clip(dir.path(), "short", GREEN, 320, 180, 4);
        let mut rng = fastrand::Rng::with_seed(8);
        let mut out = flv.header.clone();
        for t in &flv.tags {
            let mut t = t.clone();
            let configs = t.kind == 18 || t.is_video_config() || (t.kind == 8 && t.bytes[12] == 0);
            if !configs {
                // Keep the tag header and the codec bytes in front of the payload (video: frame type, packet type,
                // composition time; audio: sound format, packet type).
                let keep = if t.kind == 9 { 11 + 5 } else { 11 + 2 };
                let end = t.bytes.len() - 4;
                for b in &mut t.bytes[keep..end] {
                    *b = rng.u8(..);
                }
            }
            out.extend_from_slice(&t.bytes);
        }
        out
    };
    let header_then_noise = {
        let mut b = good[..13].to_vec();
        b.extend(random_bytes(200_000));
        b
    };
    // 0: container garbage (noise; an FLV header then noise), 1: codec garbage, 2: good media.
    let phase = Arc::new(AtomicU8::new(0));
    let server = {
        let phase = phase.clone();
        FlvServer::start(move |n| match phase.load(Ordering::SeqCst) {
            0 if n % 2 == 0 => Reply::Bytes(random_bytes(200_000)),
            0 => Reply::Bytes(header_then_noise.clone()),
            1 => Reply::Bytes(codec_garbage.clone()),
            _ => Reply::Bytes(good.clone()),
        })
    };
    let probe = rig.probe("out");
    rig.put(
        "m",
        &two_up(
            json!({"stream_id": "a"}),
            json!({"url": server.url("bad")}),
            "out",
        ),
    );
    let _a = rig.solid("a", RED, None);
    // The bad input never delivered a picture: its rect shows the canvas.
    expect_pixels(
        &probe,
        &[(LEFT.0, LEFT.1, RED), (RIGHT.0, RIGHT.1, BLUE)],
        T,
    );

    // Container garbage, several attempts.
    let since = Instant::now();
    probe.watch(&[LEFT, RIGHT]);
    let first = server.requests();
    assert!(
        wait_for(T, || server.requests() >= first + 3),
        "the garbage input was not retried: {} requests",
        server.requests()
    );
    Window::since(&probe, since).assert_kept_rate("container garbage");
    assert_watched(&probe, &[RED, BLUE], "container garbage");
    let s = rig.status("m");
    assert_eq!(input_state(&s, 0), "live", "{s}");
    assert_ne!(input_state(&s, 1), "live", "{s}");

    // Codec garbage: valid FLV carrying noise instead of H.264 and AAC. What the decoder makes of it may show in
    // the bad rect; nothing else may change.
    phase.store(1, Ordering::SeqCst);
    let since = Instant::now();
    probe.watch(&[LEFT]);
    let first = server.requests();
    assert!(
        wait_for(T, || server.requests() >= first + 2),
        "the codec-garbage input was not retried: {} requests",
        server.requests()
    );
    Window::since(&probe, since).assert_kept_rate("codec garbage");
    assert_watched(&probe, &[RED], "codec garbage");

    // Good media: the input comes back by itself.
    phase.store(2, Ordering::SeqCst);
    expect_pixels(
        &probe,
        &[(LEFT.0, LEFT.1, RED), (RIGHT.0, RIGHT.1, YELLOW)],
        T,
    );
    let s = rig.wait_status("m", T, |s| input_state(s, 1) == "live");
    assert_eq!(s["state"], "running", "{s}");
    assert_eq!(probe.sessions(), 1, "the output was interrupted");
}

#[test]
fn input_stalled_mid_tag_keeps_its_last_frame_and_comes_back() {
    let rig = rig();
    let dir = tempfile::tempdir().unwrap();
    // 2.5 s of green, then half of the next video tag, then silence on an open connection.
    let stalled = {
        let flv = clip(dir.path(), "green", GREEN, 320, 180, 4);
        let mut out = flv.header.clone();
        let mut cut = false;
        for t in &flv.tags {
            if t.timestamp_ms() >= 2_500 && t.kind == 9 {
                out.extend_from_slice(&t.bytes[..t.bytes.len() / 2]);
                cut = true;
                break;
            }
            out.extend_from_slice(&t.bytes);
        }
        assert!(cut, "no video tag after 2.5 s");
        out
    };
    let good = clip(dir.path(), "yellow", YELLOW, 320, 180, 20).bytes();
    let reopen = Arc::new(AtomicBool::new(false));
    let server = {
        let reopen = reopen.clone();
        FlvServer::start(move |n| {
            if n == 0 {
                Reply::Stall(stalled.clone())
            } else if reopen.load(Ordering::SeqCst) {
                Reply::Bytes(good.clone())
            } else {
                Reply::Status(503)
            }
        })
    };
    let _a = rig.solid("a", RED, None);
    let probe = rig.probe("out");
    rig.put(
        "m",
        &two_up(
            json!({"stream_id": "a"}),
            json!({"url": server.url("bad")}),
            "out",
        ),
    );
    expect_pixels(
        &probe,
        &[(LEFT.0, LEFT.1, RED), (RIGHT.0, RIGHT.1, GREEN)],
        T,
    );
    let since = Instant::now();
    probe.watch(&[LEFT, RIGHT]);
    // The stall is noticed (3 s without media, about 5.5 s after green showed; 11 s allows for a loaded machine
    // and is well before souphttpsrc's own 15 s read timeout would end the session), the held connection is let
    // go, and the source is retried (answered 503 for now).
    rig.wait_status("m", Duration::from_secs(11), |s| {
        input_state(s, 1) != "live"
    });
    assert!(
        wait_for(T, || server.stalls_closed() == 1),
        "the stalled connection was never closed"
    );
    let retried = server.requests();
    assert!(
        wait_for(T, || server.requests() >= retried + 2),
        "the stalled input was not retried"
    );
    // All along, the output kept its rate, and the stalled input its last (green) frame.
    Window::since(&probe, since).assert_kept_rate("stall");
    assert_watched(&probe, &[RED, GREEN], "stall");
    let s = rig.status("m");
    assert_eq!(input_state(&s, 0), "live", "{s}");
    assert_ne!(input_state(&s, 1), "live", "{s}");

    reopen.store(true, Ordering::SeqCst);
    expect_pixels(
        &probe,
        &[(LEFT.0, LEFT.1, RED), (RIGHT.0, RIGHT.1, YELLOW)],
        T,
    );
    rig.wait_status("m", T, |s| input_state(s, 1) == "live");
    assert_eq!(probe.sessions(), 1, "the output was interrupted");
}

#[test]
fn resolution_change_mid_stream_keeps_the_rect_filled() {
    let rig = rig();
    let dir = tempfile::tempdir().unwrap();
    // 4 s of green at 320×180, then the same stream goes on at 640×360 in yellow: new metadata, new sequence
    // headers, timestamps continuing, as an encoder that changes its size sends it.
    let small = clip(dir.path(), "small", GREEN, 320, 180, 4);
    let big = clip(dir.path(), "big", YELLOW, 640, 360, 20);
    let changing = {
        let offset = small.duration_ms() + 33;
        let mut tags: Vec<Tag> = small.tags.clone();
        tags.extend(big.tags.iter().map(|t| {
            let mut t = t.clone();
            t.set_timestamp_ms(t.timestamp_ms() + offset);
            t
        }));
        Flv {
            header: small.header.clone(),
            tags,
        }
        .bytes()
    };
    let big = big.bytes();
    let server = FlvServer::start(move |n| {
        Reply::Bytes(if n == 0 {
            changing.clone()
        } else {
            big.clone()
        })
    });
    let _a = rig.solid("a", RED, None);
    let probe = rig.probe("out");
    rig.put(
        "m",
        &two_up(
            json!({"stream_id": "a"}),
            json!({"url": server.url("bad")}),
            "out",
        ),
    );
    expect_pixels(
        &probe,
        &[(LEFT.0, LEFT.1, RED), (RIGHT.0, RIGHT.1, GREEN)],
        T,
    );
    let since = Instant::now();
    probe.watch(&[LEFT, RIGHT]);
    // The bigger picture fills the same rect exactly: its corners are yellow, just outside it is the canvas.
    expect_pixels(
        &probe,
        &[
            (LEFT.0, LEFT.1, RED),
            (323, 3, YELLOW),
            (636, 176, YELLOW),
            (480, 184, BLUE),
            (316, 90, RED),
        ],
        T,
    );
    std::thread::sleep(Duration::from_secs(1));
    Window::since(&probe, since).assert_kept_rate("resolution change");
    // The left rect never changed, and the right one went from green to yellow without a frame of anything else
    // (no empty rect while the input renegotiates).
    let frames = probe.watched();
    assert!(!frames.is_empty());
    for (pts, px) in &frames {
        assert!(
            color_close(px[0], RED, TOL)
                && (color_close(px[1], GREEN, TOL) || color_close(px[1], YELLOW, TOL)),
            "frame at {pts:?}: left {:?}, right {:?}",
            px[0],
            px[1]
        );
    }
    let s = rig.status("m");
    assert_eq!(s["inputs"][1]["video_size"], json!([640, 360]), "{s}");
    assert_eq!(server.requests(), 1, "the size change cost a reconnect");
    assert_eq!(probe.sessions(), 1, "the output was interrupted");
}
