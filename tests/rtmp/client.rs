//! The RTMP client against a real nginx-rtmp on loopback.

use std::collections::HashSet;
use std::process::Stdio;
use std::time::{Duration, Instant};

use super::server::{established_to, silent_server, temp_dir, Nginx};
use tessera::flv::{self, Item, Tag, TagKind};
use tessera::rtmp::{play, publish, Options, RtmpError};

fn opts() -> Options {
    Options::default()
}

/// A real stream: 5 s of H.264 (keyframe every second) and AAC, as FLV tags.
fn ffmpeg_tags(seconds: u32) -> Vec<Tag> {
    let dir = temp_dir("rtmp-dev-flv");
    let path = dir.join("in.flv");
    let st = std::process::Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-y"])
        .args(["-f", "lavfi", "-i", "testsrc=size=320x240:rate=25"])
        .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100"])
        .args(["-t", &seconds.to_string()])
        .args([
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-g",
            "25",
            "-pix_fmt",
            "yuv420p",
        ])
        .args(["-c:a", "aac", "-b:a", "64k", "-f", "flv"])
        .arg(&path)
        .status()
        .expect("run ffmpeg");
    assert!(st.success());
    let bytes = std::fs::read(&path).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let mut p = flv::Parser::new();
    p.push(&bytes);
    let mut tags = Vec::new();
    while let Some(item) = p.next_item() {
        if let Item::Tag(t) = item {
            tags.push(t);
        }
    }
    tags
}

fn is_avc_config(t: &Tag) -> bool {
    t.kind == TagKind::Video && t.data.len() > 2 && t.data[0] == 0x17 && t.data[1] == 0
}
fn is_avc_key(t: &Tag) -> bool {
    t.kind == TagKind::Video && t.data.len() > 2 && t.data[0] == 0x17 && t.data[1] == 1
}
fn is_aac_config(t: &Tag) -> bool {
    t.kind == TagKind::Audio && t.data.len() > 2 && t.data[0] >> 4 == 10 && t.data[1] == 0
}

/// What a player saw.
#[derive(Default, Debug)]
struct Seen {
    metadata: usize,
    avc_config: usize,
    keyframes: usize,
    aac_config: usize,
    audio: usize,
    video: usize,
    first_ts: Option<u32>,
    last_ts: u32,
    backwards: usize,
}

impl Seen {
    fn add(&mut self, t: &Tag, last: &mut [Option<u32>; 2]) {
        match t.kind {
            TagKind::Script => {
                if flv::is_metadata(t) {
                    assert!(
                        t.data.starts_with(b"\x02\x00\x0aonMetaData"),
                        "metadata as in a file"
                    );
                    self.metadata += 1;
                }
                return;
            }
            TagKind::Audio => {
                self.audio += 1;
                if is_aac_config(t) {
                    self.aac_config += 1;
                }
            }
            TagKind::Video => {
                self.video += 1;
                if is_avc_config(t) {
                    self.avc_config += 1;
                }
                if is_avc_key(t) {
                    self.keyframes += 1;
                }
            }
        }
        let slot = (t.kind == TagKind::Video) as usize;
        if last[slot].is_some_and(|l| t.timestamp < l) {
            self.backwards += 1;
        }
        last[slot] = Some(t.timestamp);
        self.first_ts.get_or_insert(t.timestamp);
        self.last_ts = self.last_ts.max(t.timestamp);
    }

    fn assert_good_av(&self, min_span_ms: u32) {
        assert!(self.metadata >= 1, "{self:?}");
        assert!(self.avc_config >= 1, "{self:?}");
        assert!(self.keyframes >= 1, "{self:?}");
        assert!(self.aac_config >= 1, "{self:?}");
        assert!(self.audio > 10 && self.video > 10, "{self:?}");
        assert_eq!(self.backwards, 0, "{self:?}");
        assert!(
            self.last_ts - self.first_ts.unwrap() >= min_span_ms,
            "{self:?}"
        );
    }
}

/// 1. Publish real tags with the Publisher while the Player and ffmpeg play them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_and_play_back_real_stream() {
    let nginx = Nginx::start();
    // strict: nginx hangs up on players when the publisher leaves (EOF).
    let url = nginx.url("strict", "t1");
    let tags = ffmpeg_tags(5);
    let published_video: HashSet<Vec<u8>> = tags
        .iter()
        .filter(|t| t.kind == TagKind::Video)
        .map(|t| t.data.clone())
        .collect();

    let mut publisher = publish(&url, &opts()).await.expect("publish");
    let mut player = play(&url, &opts()).await.expect("play");
    // ffmpeg decodes 2 s of what nginx relays.
    let ffmpeg = tokio::process::Command::new("ffmpeg")
        .args([
            "-hide_banner",
            "-nostats",
            "-rw_timeout",
            "15000000",
            "-i",
            &url,
        ])
        .args(["-t", "2", "-f", "null", "-"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;

    let reader = tokio::spawn(async move {
        let sent_at_start = player.bytes_sent();
        let mut received = 0usize;
        let mut seen = Seen::default();
        let mut last = [None, None];
        let mut video_bytes_match = true;
        let end = loop {
            match player.next_tag().await {
                Ok(t) => {
                    if t.kind == TagKind::Video && !published_video.contains(&t.data) {
                        video_bytes_match = false;
                    }
                    received += t.data.len();
                    seen.add(&t, &mut last);
                }
                Err(e) => break e,
            }
        };
        // nginx's ack_window is 20000: the player acknowledged as it received (5+ bytes each: rml_rtmp's serializer
        // compresses the chunk header of repeated Acknowledgements down to 1 byte).
        let acks_bytes = player.bytes_sent() - sent_at_start;
        eprintln!("player received {received} bytes of tags, wrote {acks_bytes} bytes since play");
        assert!(received > 100_000, "{received}");
        assert!(
            acks_bytes as usize >= 5 * (received / 20_000 - 1),
            "{acks_bytes}"
        );
        (seen, video_bytes_match, end)
    });

    let start = Instant::now();
    for t in &tags {
        tokio::time::sleep_until((start + Duration::from_millis(t.timestamp as u64)).into()).await;
        publisher.send(t).await.expect("send");
    }
    assert!(publisher.bytes_sent() > tags.iter().map(|t| t.data.len() as u64).sum::<u64>());
    let output = ffmpeg.wait_with_output().await.unwrap();
    let close_started = Instant::now();
    publisher.close().await;
    assert!(close_started.elapsed() < Duration::from_millis(1500));

    let (seen, bytes_match, end) = tokio::time::timeout(Duration::from_secs(5), reader)
        .await
        .expect("player sees the end")
        .unwrap();
    eprintln!("player saw {seen:?}, ended with {end:?}");
    assert!(matches!(end, RtmpError::Closed), "{end:?}");
    assert!(bytes_match, "video bytes changed on the way");
    seen.assert_good_av(3000);

    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "ffmpeg failed: {stderr}");
    assert!(
        stderr.contains("Video: h264") && stderr.contains("Audio: aac"),
        "{stderr}"
    );
}

/// 2. Play a stream published by GStreamer's rtmp2sink.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn play_stream_published_by_gstreamer() {
    let nginx = Nginx::start();
    let url = nginx.url("notify", "t2");
    // Play starts before anyone publishes; notify: the player is told with NetStream.Play.UnpublishNotify.
    let mut player = play(&url, &opts()).await.expect("play");
    let mut gst = tokio::process::Command::new("gst-launch-1.0")
        .arg("-q")
        .args("videotestsrc is-live=true ! video/x-raw,width=320,height=240,framerate=25/1 ! x264enc tune=zerolatency key-int-max=25 speed-preset=ultrafast ! flvmux streamable=true name=m ! rtmp2sink".split(' '))
        .arg(format!("location={url}"))
        .args("audiotestsrc is-live=true ! avenc_aac ! m.".split(' '))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut seen = Seen::default();
    let mut last = [None, None];
    let deadline = Instant::now() + Duration::from_secs(15);
    while seen.first_ts.is_none_or(|f| seen.last_ts - f < 2500) {
        assert!(Instant::now() < deadline, "{seen:?}");
        let t = tokio::time::timeout(Duration::from_secs(10), player.next_tag())
            .await
            .expect("tags flow")
            .expect("tag");
        seen.add(&t, &mut last);
    }
    eprintln!("player saw {seen:?}");
    seen.assert_good_av(2500);
    // The publisher goes away: the player is told (UnpublishNotify) and ends with Closed.
    gst.kill().await.unwrap();
    let end = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            if let Err(e) = player.next_tag().await {
                break e;
            }
        }
    })
    .await
    .expect("end seen");
    assert!(matches!(end, RtmpError::Closed), "{end:?}");
}

/// 3. Refused publishing ends promptly, whether the server says so or hangs up.
#[tokio::test]
async fn refused_publish() {
    let nginx = Nginx::start();
    // on_publish answered 403: nginx hangs up before answering publish.
    let t = Instant::now();
    let r = publish(&nginx.url("refused", "x"), &opts()).await;
    eprintln!("refused: {:?} after {:?}", r.as_ref().err(), t.elapsed());
    assert!(
        matches!(r, Err(RtmpError::Rejected(_)) | Err(RtmpError::Closed)),
        "{:?}",
        r.as_ref().err()
    );
    assert!(t.elapsed() < Duration::from_secs(2));
    // `deny publish`: nginx-rtmp answers NetStream.Publish.Start first and then hangs up, so the refusal
    // surfaces either from publish() or from the first send().
    let t = Instant::now();
    let tag = Tag::new(TagKind::Audio, 0, vec![0xaf, 0, 0x12, 0x10]);
    let r = match publish(&nginx.url("denied", "x"), &opts()).await {
        Ok(mut p) => {
            let mut r = Ok(());
            for i in 0..50 {
                r = p
                    .send(&Tag::new(TagKind::Audio, i * 20, tag.data.clone()))
                    .await;
                if r.is_err() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            r
        }
        Err(e) => Err(e),
    };
    eprintln!("denied: {:?} after {:?}", r.as_ref().err(), t.elapsed());
    assert!(
        matches!(r, Err(RtmpError::Rejected(_)) | Err(RtmpError::Closed)),
        "{:?}",
        r.err()
    );
    assert!(t.elapsed() < Duration::from_secs(2));
    // A name already being published: nginx answers NetStream.Publish.BadName.
    let first = publish(&nginx.url("live", "dup"), &opts()).await.unwrap();
    let second = publish(&nginx.url("live", "dup"), &opts()).await;
    match second {
        Err(RtmpError::Rejected(code)) => assert_eq!(code, "NetStream.Publish.BadName"),
        other => panic!("{:?}", other.err()),
    }
    drop(first);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(established_to(nginx.rtmp_port), 0);
}

/// 4. Playing a name nobody publishes: play resolves, next_tag waits, drop closes the socket.
#[tokio::test]
async fn play_unpublished_waits_and_drop_closes() {
    let nginx = Nginx::start();
    let mut player = play(&nginx.url("live", "nobody"), &opts())
        .await
        .expect("play");
    // 2.5 s: nginx (ping 1s, ping_timeout 1s) pings the quiet player; it answers and stays connected.
    let before = player.bytes_sent();
    assert!(
        tokio::time::timeout(Duration::from_millis(2500), player.next_tag())
            .await
            .is_err(),
        "next_tag should wait"
    );
    assert!(player.bytes_sent() > before, "ping answered");
    assert_eq!(established_to(nginx.rtmp_port), 1);
    drop(player);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(established_to(nginx.rtmp_port), 0);
    // Default nginx-rtmp says nothing on unpublish but a user control Stream EOF: the player ends on it.
    let url = nginx.url("live", "ends");
    let mut publisher = publish(&url, &opts()).await.unwrap();
    let mut player = play(&url, &opts()).await.unwrap();
    publisher
        .send(&Tag::new(TagKind::Audio, 0, vec![0xaf, 1, 0x21]))
        .await
        .unwrap();
    assert_eq!(player.next_tag().await.unwrap().data, vec![0xaf, 1, 0x21]);
    publisher.close().await;
    let end = tokio::time::timeout(Duration::from_secs(2), player.next_tag()).await;
    assert!(matches!(end, Ok(Err(RtmpError::Closed))), "{end:?}");
    drop(player);
    // With `idle_streams off` nginx answers NetStream.Play.StreamNotFound instead.
    let r = play(&nginx.url("strict", "nobody"), &opts()).await;
    match r {
        Err(RtmpError::Rejected(code)) => assert_eq!(code, "NetStream.Play.StreamNotFound"),
        other => panic!("{:?}", other.err()),
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(established_to(nginx.rtmp_port), 0);
}

/// 5. A server that accepts TCP and never answers the handshake: Err(Timeout) within connect_timeout.
#[tokio::test]
async fn silent_server_times_out() {
    let (port, closed) = silent_server().await;
    let o = Options {
        connect_timeout: Duration::from_millis(300),
        ..Options::default()
    };
    let url = format!("rtmp://127.0.0.1:{port}/live/x");
    let t = Instant::now();
    let r = play(&url, &o).await;
    assert!(
        matches!(r, Err(RtmpError::Timeout("handshake"))),
        "{:?}",
        r.err()
    );
    assert!(t.elapsed() >= Duration::from_millis(290) && t.elapsed() < Duration::from_millis(800));
    let r = publish(&url, &o).await;
    assert!(matches!(r, Err(RtmpError::Timeout(_))), "{:?}", r.err());
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        closed.load(std::sync::atomic::Ordering::SeqCst),
        2,
        "both sockets closed"
    );
    assert_eq!(established_to(port), 0);
    // Nothing listening: Connect error, quickly.
    let dead = format!("rtmp://127.0.0.1:{}/live/x", super::server::free_port());
    assert!(matches!(play(&dead, &o).await, Err(RtmpError::Connect(_))));
}

/// Enhanced RTMP / H.265 tags pass through byte for byte, both directions.
#[tokio::test]
async fn hevc_and_enhanced_rtmp_pass_through() {
    let nginx = Nginx::start();
    let url = nginx.url("live", "hevc");
    let mut publisher = publish(&url, &opts()).await.unwrap();
    let mut player = play(&url, &opts()).await.unwrap();
    let mut meta = b"\x02\x00\x0aonMetaData\x08\x00\x00\x00\x01\x00\x0cvideocodecid\x00".to_vec();
    meta.extend_from_slice(&12f64.to_be_bytes());
    meta.extend_from_slice(&[0, 0, 9]);
    let mut sent = vec![Tag::new(TagKind::Script, 0, meta)];
    // Legacy codec id 12 (sequence header, keyframe), enhanced RTMP 'hvc1' (SequenceStart, CodedFrames key,
    // CodedFramesX inter), then big frames that span many chunks, with a timestamp beyond 24 bits.
    sent.push(Tag::new(TagKind::Video, 0, vec![0x1c, 0, 0, 0, 0, 1, 2, 3]));
    sent.push(Tag::new(
        TagKind::Video,
        0,
        vec![0x1c, 1, 0, 0, 0, 0x26, 1, 0xaf],
    ));
    sent.push(Tag::new(
        TagKind::Video,
        40,
        b"\x90hvc1\x01\x02\x03".to_vec(),
    ));
    sent.push(Tag::new(
        TagKind::Video,
        40,
        b"\x91hvc1\x00\x00\x00\x26\x01".to_vec(),
    ));
    sent.push(Tag::new(TagKind::Video, 80, b"\x23hvc1\x02\x01".to_vec()));
    let big: Vec<u8> = (0..50_000u32).map(|i| (i * 7) as u8).collect();
    let mut ex_big = b"\x93hvc1".to_vec();
    ex_big.extend_from_slice(&big);
    sent.push(Tag::new(TagKind::Video, 120, ex_big));
    sent.push(Tag::new(
        TagKind::Video,
        0x0100_0000,
        [&[0x2c, 1, 0, 0, 0][..], &big].concat(),
    ));
    sent.push(Tag::new(
        TagKind::Video,
        0x0100_0028,
        vec![0x2c, 1, 0, 0, 0, 9],
    ));
    for t in &sent {
        publisher.send(t).await.unwrap();
    }
    let mut got = Vec::new();
    while got.len() < sent.len() {
        let t = tokio::time::timeout(Duration::from_secs(5), player.next_tag())
            .await
            .expect("tag in time")
            .unwrap();
        got.push(t);
    }
    assert!(flv::is_metadata(&got[0]));
    let sent_video: Vec<_> = sent.iter().filter(|t| t.kind == TagKind::Video).collect();
    let got_video: Vec<_> = got.iter().filter(|t| t.kind == TagKind::Video).collect();
    assert_eq!(sent_video.len(), got_video.len());
    for (s, g) in sent_video.iter().zip(&got_video) {
        assert_eq!(s.data, g.data);
        assert_eq!(s.timestamp, g.timestamp);
    }
    publisher.close().await;
}

/// rtmps:// through nginx's TLS proxy (self-signed: tls_verify off; with verification on it is refused).
#[tokio::test]
async fn rtmps_publish_and_play() {
    let nginx = Nginx::start_with_rtmps();
    let url = nginx.rtmps_url("notify", "tls");
    let verified = publish(&url, &opts()).await;
    assert!(
        matches!(verified, Err(RtmpError::Handshake(_))),
        "{:?}",
        verified.err()
    );
    let o = Options {
        tls_verify: false,
        ..Options::default()
    };
    let mut publisher = publish(&url, &o).await.expect("publish over TLS");
    let mut player = play(&url, &o).await.expect("play over TLS");
    // nginx holds an AVC sequence header back until a frame follows, then sends both.
    let sent = [
        Tag::new(TagKind::Video, 5, vec![0x17, 0, 0, 0, 0, 1, 0x64, 0, 0x1f]),
        Tag::new(TagKind::Video, 5, vec![0x17, 1, 0, 0, 0, 0, 0, 0, 1, 0x65]),
    ];
    for t in &sent {
        publisher.send(t).await.unwrap();
    }
    for t in &sent {
        let got = tokio::time::timeout(Duration::from_secs(5), player.next_tag())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(&got, t);
    }
    publisher.close().await;
    assert!(matches!(
        tokio::time::timeout(Duration::from_secs(5), player.next_tag()).await,
        Ok(Err(RtmpError::Closed))
    ));
}
