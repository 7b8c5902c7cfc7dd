//! What an operator looks at: snapshots of the composited picture and of each input, and the live preview of
//! the encoded output (HTTP-FLV), checked on real decoded pictures.

use std::{
    io::{Read, Write},
    time::{Duration, Instant},
};

use serde_json::Value;

use super::*;

fn code(body: &[u8]) -> String {
    serde_json::from_slice::<Value>(body).unwrap_or_default()["error"]["code"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[test]
fn snapshots_show_the_fresh_composited_picture_and_each_input() {
    let rig = Rig::start();
    let a = rig.solid("a", RED, None);
    let b = rig.solid("b", GREEN, None);
    let probe = rig.probe("out");
    let mut s = spec("#0000FF", side_by_side());
    // Rounded corners are drawn after the compositor: the snapshot shows them too.
    s["inputs"][0]["corner_radius"] = 40.into();
    rig.put("m", &s);
    expect_pixels(
        &probe,
        &[
            (160, 90, RED),
            (480, 90, GREEN),
            (320, 270, BLUE),
            (4, 4, BLUE),
        ],
        Duration::from_secs(25),
    );
    let url = |p: &str| rig.tessera.url(p);

    // The whole canvas (640 wide by default, never wider than the canvas), and scaled down.
    let full = snapshot(&url("/v1/mixes/m/snapshot.jpg"));
    assert_eq!((full.width, full.height), (640, 360));
    for (x, y, c) in [
        (160, 90, RED),
        (480, 90, GREEN),
        (320, 270, BLUE),
        (4, 4, BLUE),
    ] {
        assert!(
            color_close(full.pixel(x, y), c, TOL),
            "({x},{y}) {:?}",
            full.pixel(x, y)
        );
    }
    let half = snapshot(&url("/v1/mixes/m/snapshot.jpg?width=320"));
    assert_eq!((half.width, half.height), (320, 180));
    assert!(color_close(half.pixel(80, 45), RED, TOL));

    // One input as the mix receives it: the publisher's whole 320×180 picture, before its layout.
    let input = snapshot(&url("/v1/mixes/m/inputs/b/snapshot.jpg"));
    assert_eq!((input.width, input.height), (320, 180));
    assert!(color_close(input.center(), GREEN, TOL));

    // Fresh: as soon as the encoded output shows a change, the snapshot (taken before encoding) shows it too.
    a.set_color(YELLOW);
    expect_pixels(&probe, &[(160, 90, YELLOW)], Duration::from_secs(10));
    let now = snapshot(&url("/v1/mixes/m/snapshot.jpg"));
    assert!(
        color_close(now.pixel(160, 90), YELLOW, TOL),
        "{:?}",
        now.pixel(160, 90)
    );

    // Refusals in the native shape.
    for (path, status, want) in [
        ("/v1/mixes/nope/snapshot.jpg", 404, "not_found"),
        ("/v1/mixes/m/inputs/zz/snapshot.jpg", 404, "not_found"),
        ("/v1/mixes/m/snapshot.jpg?width=8", 400, "invalid_body"),
        ("/v1/mixes/m/snapshot.jpg?size=8", 400, "invalid_body"),
        ("/v1/mixes/nope/live.flv", 404, "not_found"),
    ] {
        let (s, body) = fetch(&url(path));
        assert_eq!((s, code(&body).as_str()), (status, want), "{path}");
    }

    // An input that delivers nothing has no picture to show; the mix's picture is still there.
    b.stop();
    rig.wait_status("m", Duration::from_secs(20), |s| {
        s["inputs"][1]["state"] != "live"
    });
    let (s, body) = fetch(&url("/v1/mixes/m/inputs/b/snapshot.jpg"));
    assert_eq!((s, code(&body).as_str()), (503, "no_frame"));
    let after = snapshot(&url("/v1/mixes/m/snapshot.jpg"));
    assert!(color_close(after.pixel(160, 90), YELLOW, TOL));
    // The status shows how old the input's newest frame is, and how often it was pulled again.
    let status = rig.status("m");
    let age = status["inputs"][1]["last_frame_age_ms"].as_u64().unwrap();
    assert!(age >= 500, "{status}");
    assert!(status["inputs"][0]["last_frame_age_ms"].as_u64().unwrap() < 1_000);
    assert!(status["inputs"][1]["reconnects"].as_u64().is_some());
    assert_eq!(status["outputs"][0]["reconnects"], 0);
}

/// The FLV tags of a stream: (type, first data bytes) of each, after checking the file header.
fn read_tags(stream: &mut impl Read, n: usize) -> Vec<(u8, Vec<u8>)> {
    let mut header = [0u8; 13];
    stream.read_exact(&mut header).unwrap();
    assert_eq!(&header[..3], b"FLV", "an FLV file header first");
    let mut tags = Vec::new();
    for _ in 0..n {
        let mut h = [0u8; 11];
        stream.read_exact(&mut h).unwrap();
        let size = u32::from_be_bytes([0, h[1], h[2], h[3]]) as usize;
        let mut data = vec![0u8; size + 4];
        stream.read_exact(&mut data).unwrap();
        data.truncate(size.min(2));
        tags.push((h[0], data));
    }
    tags
}

#[test]
fn live_preview_serves_the_encoded_output_from_a_keyframe_to_viewers_and_drops_a_slow_one() {
    let rig = Rig::start();
    let _a = rig.solid("a", RED, None);
    let _b = rig.solid("b", GREEN, None);
    // Noise under them at 8 Mbit/s: a stream of real size, so that a viewer who stops reading fills the
    // kernel's socket buffers (megabytes on loopback) within seconds, and then its own queue.
    let _c = rig.publish(
        "c",
        PublishOpts {
            width: 1280,
            height: 720,
            pattern: Pattern::Snow,
            ..PublishOpts::default()
        },
    );
    let probe = rig.probe("out");
    let mut s = spec("#0000FF", side_by_side());
    // Listed first: the bottom layer.
    s["inputs"]
        .as_array_mut()
        .unwrap()
        .insert(0, input("c", rect(0, 0, 640, 360)));
    s["outputs"][0]["video"]["bitrate_kbps"] = 8000.into();
    rig.put("m", &s);
    let checks = [(160, 90, RED), (480, 90, GREEN)];
    expect_pixels(&probe, &checks, Duration::from_secs(25));
    let url = rig.tessera.url("/v1/mixes/m/live.flv");

    // The stream headers come first (metadata, AVC and AAC configurations), then pictures from a keyframe on.
    let client = reqwest::blocking::Client::builder()
        .timeout(None)
        .build()
        .unwrap();
    let mut resp = client.get(&url).send().unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "video/x-flv");
    let tags = read_tags(&mut resp, 40);
    drop(resp);
    assert_eq!(tags[0].0, 18, "metadata first: {tags:?}");
    let video: Vec<&Vec<u8>> = tags.iter().filter(|t| t.0 == 9).map(|t| &t.1).collect();
    assert_eq!(video[0][..], [0x17, 0], "the AVC configuration first");
    assert_eq!(
        video[1][..],
        [0x17, 1],
        "then a keyframe: {:?}",
        &video[..4]
    );
    assert!(
        tags.iter().any(|t| t.0 == 8 && t.1 == [0xAF, 0]),
        "AAC configuration"
    );

    // ffmpeg's players read it as they read any HTTP-FLV stream.
    let probe_out = std::process::Command::new("ffprobe")
        .args(["-v", "error", "-of", "json", "-show_streams", &url])
        .args(["-read_intervals", "%+2", "-rw_timeout", "10000000"])
        .output()
        .expect("ffprobe runs");
    let streams: Value = serde_json::from_slice(&probe_out.stdout).unwrap_or_default();
    let codecs: Vec<&str> = streams["streams"]
        .as_array()
        .map(|a| a.iter().filter_map(|s| s["codec_name"].as_str()).collect())
        .unwrap_or_default();
    assert!(
        codecs.contains(&"h264") && codecs.contains(&"aac"),
        "ffprobe saw {codecs:?}: {}",
        String::from_utf8_lossy(&probe_out.stderr)
    );

    // Two viewers decode the same picture as the RTMP output, at once.
    let v1 = OutputProbe::start(&url);
    let v2 = OutputProbe::start(&url);
    expect_pixels(&v1, &checks, Duration::from_secs(20));
    expect_pixels(&v2, &checks, Duration::from_secs(20));

    // A viewer that stops reading: its queue fills, it is dropped (its response ends), and neither the RTMP
    // output nor the other viewers notice.
    let port: u16 = url
        .split("://127.0.0.1:")
        .nth(1)
        .and_then(|r| r.split('/').next())
        .and_then(|p| p.parse().ok())
        .expect("the server's port");
    let mut slow = small_window_connection(port);
    write!(
        slow,
        "GET /v1/mixes/m/live.flv HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let frames_before = (probe.frame_count(), v1.frame_count());
    std::thread::sleep(Duration::from_secs(20));
    slow.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut buf = vec![0u8; 64 * 1024];
    let mut read = 0;
    let ended = loop {
        match slow.read(&mut buf) {
            Ok(0) => break true,
            Ok(n) => read += n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(_) => break true,
        }
        if Instant::now() > deadline {
            break false;
        }
    };
    assert!(
        ended,
        "the slow viewer's response never ended ({read} bytes read after the pause)"
    );
    eprintln!("the slow viewer got {read} bytes after its pause");
    let grown = (
        probe.frame_count() - frames_before.0,
        v1.frame_count() - frames_before.1,
    );
    assert!(
        grown.0 > 300 && grown.1 > 300,
        "the output and the other viewer went on: {grown:?} frames"
    );
    assert_pts_continuous(&probe, Duration::from_millis(200));
    assert_eq!(probe.sessions(), 1, "the output was restarted");
    expect_pixels(&v1, &checks, Duration::from_secs(5));
}

/// A TCP connection to 127.0.0.1:`port` with a 4 KiB receive buffer, so that the server's writes block as soon
/// as the reader stops reading (a default loopback socket would take megabytes first).
fn small_window_connection(port: u16) -> std::net::TcpStream {
    use std::os::fd::FromRawFd;
    // SAFETY: plain socket calls on a descriptor this function owns until it is handed to the TcpStream.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0);
        assert!(fd >= 0, "socket");
        let size: libc::c_int = 4096;
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            &size as *const libc::c_int as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
        let addr = libc::sockaddr_in {
            sin_family: libc::AF_INET as libc::sa_family_t,
            sin_port: port.to_be(),
            sin_addr: libc::in_addr {
                s_addr: u32::from_be_bytes([127, 0, 0, 1]).to_be(),
            },
            sin_zero: [0; 8],
        };
        let rc = libc::connect(
            fd,
            &addr as *const libc::sockaddr_in as *const libc::sockaddr,
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        );
        assert_eq!(rc, 0, "connect");
        std::net::TcpStream::from_raw_fd(fd)
    }
}
