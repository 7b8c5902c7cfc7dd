//! H.265 in FLV, in and out: inputs in both forms (codec id 12 over RTMP, enhanced RTMP over HTTP-FLV, since
//! nginx-rtmp drops enhanced video) mixed with an H.264 input; H.265 outputs in both forms decoded back;
//! malformed H.265 streams that must not hurt the mix; an input that switches codec between connections.

use std::time::{Duration, Instant};

use gst::prelude::*;
use serde_json::json;

use super::*;

/// The first `n` video tags' data of what `url` plays, as an RTMP player receives it (raw FLV, no demuxer).
/// Connects again while the stream does not exist yet (rtmp2src fails then).
fn video_tags(url: &str, n: usize) -> Vec<Vec<u8>> {
    init();
    let mut tags = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while tags.len() < n && Instant::now() < deadline {
        let pipeline = gst::Pipeline::new();
        let src = gst::ElementFactory::make("rtmp2src")
            .property("location", url)
            .build()
            .unwrap();
        let sink = gst_app::AppSink::builder().sync(false).build();
        pipeline.add_many([&src, sink.upcast_ref()]).unwrap();
        src.link(&sink).unwrap();
        pipeline.set_state(gst::State::Playing).unwrap();
        let bus = pipeline.bus().unwrap();
        let mut parser = tessera::flv::Parser::new();
        while tags.len() < n && Instant::now() < deadline {
            if bus
                .pop_filtered(&[gst::MessageType::Error, gst::MessageType::Eos])
                .is_some()
            {
                break;
            }
            let Some(sample) = sink.try_pull_sample(gst::ClockTime::from_mseconds(300)) else {
                continue;
            };
            parser.push(&sample.buffer().unwrap().map_readable().unwrap());
            while let Some(item) = parser.next_item() {
                if let tessera::flv::Item::Tag(t) = item {
                    if t.kind == tessera::flv::TagKind::Video {
                        tags.push(t.data);
                    }
                }
            }
        }
        let _ = pipeline.set_state(gst::State::Null);
        std::thread::sleep(Duration::from_millis(300));
    }
    tags
}

/// Asserts that every tag is H.265 in `form`, and that both a sequence header and frames are among them.
fn assert_form(tags: &[Vec<u8>], form: HevcForm) {
    assert!(tags.len() >= 10, "only {} video tags arrived", tags.len());
    let mut config = false;
    let mut frames = false;
    for t in tags {
        match form {
            HevcForm::CodecId12 => {
                assert_eq!(t[0] & 0x0F, 12, "codec id of {:02x?}", &t[..5.min(t.len())]);
                config |= t[1] == 0;
                frames |= t[1] == 1;
            }
            HevcForm::Enhanced => {
                assert!(
                    t[0] & 0x80 != 0 && &t[1..5] == b"hvc1",
                    "{:02x?}",
                    &t[..5.min(t.len())]
                );
                config |= t[0] & 0x0F == 0;
                frames |= matches!(t[0] & 0x0F, 1 | 3);
            }
        }
    }
    assert!(
        config && frames,
        "sequence header {config}, frames {frames}"
    );
}

/// What the RTMP server of the tests does with H.265: nginx-rtmp (Debian's 1.2.2 module) relays codec id 12
/// unchanged, to players joining early or late, but drops enhanced-RTMP video altogether (it reads the first
/// byte's low nibble as a codec id). So enhanced RTMP is tested over HTTP-FLV (input) and through the muxer and
/// demuxer directly (output) below. If this test fails, nginx-rtmp changed and the others can be widened.
#[test]
fn nginx_rtmp_relays_codec_id_12_and_drops_enhanced_video() {
    let rig = Rig::start();
    for (stream, form, join_after) in [
        ("early", HevcForm::CodecId12, 0),
        ("late", HevcForm::CodecId12, 3),
        ("ex", HevcForm::Enhanced, 0),
    ] {
        let _p = HevcPublisher::start(
            &rig.nginx.rtmp_url("live", stream),
            HevcOpts {
                form,
                ..HevcOpts::default()
            },
        );
        std::thread::sleep(Duration::from_secs(join_after));
        let tags = video_tags(&rig.nginx.rtmp_url("live", stream), 40);
        match form {
            HevcForm::CodecId12 => assert_form(&tags, form),
            HevcForm::Enhanced => assert!(
                tags.is_empty(),
                "nginx-rtmp now relays enhanced RTMP: {} tags",
                tags.len()
            ),
        }
    }
}

/// Tessera's H.265 muxer → its demuxer → avdec_h265, without a server: the enhanced form (which nginx-rtmp
/// cannot carry) and codec id 12 both decode back to the picture encoded. (The audio of an H.265 output, the
/// same tags in both forms, is checked end to end in `an_h265_output_decodes_back`.)
#[test]
fn the_h265_muxer_output_decodes_back_in_both_forms() {
    use tessera::flv::codec::{VideoCodec, VideoForm};
    use tessera::flv::mux::{MuxAudio, MuxEvent, MuxTrack, Muxer};
    init();
    for form in [VideoForm::Enhanced, VideoForm::Legacy] {
        let bytes = std::sync::Arc::new(std::sync::Mutex::new(Vec::<u8>::new()));
        let out = bytes.clone();
        let muxer = Muxer::new(
            VideoCodec::H265,
            form,
            true,
            MuxAudio::Aac,
            Box::new(move |event| {
                let mut out = out.lock().unwrap();
                match event {
                    // A file takes the headers once, at its start.
                    MuxEvent::Headers(buffers) if out.is_empty() => {
                        for b in buffers {
                            out.extend_from_slice(&b.map_readable().unwrap());
                        }
                    }
                    MuxEvent::Headers(..) => {}
                    MuxEvent::Tag(b) => out.extend_from_slice(&b.map_readable().unwrap()),
                }
            }),
        );
        let enc = gst::parse::launch(
            "videotestsrc num-buffers=45 pattern=solid-color foreground-color=0xFF00FF00 \
               ! video/x-raw,format=I420,width=320,height=180,framerate=30/1 \
               ! x265enc speed-preset=ultrafast tune=zerolatency key-int-max=15 ! h265parse \
               ! video/x-h265,stream-format=hvc1,alignment=au ! queue name=v \
             audiotestsrc num-buffers=70 freq=440 volume=0.1 ! audioconvert ! avenc_aac ! queue name=a",
        )
        .unwrap()
        .downcast::<gst::Pipeline>()
        .unwrap();
        for (queue, track) in [("v", MuxTrack::Video), ("a", MuxTrack::Audio)] {
            let sink = muxer.appsink(track);
            enc.add(&sink).unwrap();
            enc.by_name(queue).unwrap().link(&sink).unwrap();
        }
        run_to_eos(&enc);
        let bytes = bytes.lock().unwrap().clone();

        // The form is the one asked for: the first video tag after the file header.
        let mut parser = tessera::flv::Parser::new();
        parser.push(&bytes);
        let first_video = std::iter::from_fn(|| parser.next_item())
            .find_map(|i| match i {
                tessera::flv::Item::Tag(t) if t.kind == tessera::flv::TagKind::Video => {
                    Some(t.data)
                }
                _ => None,
            })
            .unwrap();
        match form {
            VideoForm::Enhanced => assert_eq!(&first_video[..5], b"\x90hvc1"),
            VideoForm::Legacy => assert_eq!(&first_video[..2], &[0x1C, 0]),
        }
        // The metadata before it says what the picture and sound are, as flvmux and ffmpeg write it.
        let mut parser = tessera::flv::Parser::new();
        parser.push(&bytes);
        let meta = std::iter::from_fn(|| parser.next_item())
            .find_map(|i| match i {
                tessera::flv::Item::Tag(t) if tessera::flv::is_metadata(&t) => Some(t.data),
                _ => None,
            })
            .expect("an onMetaData tag");
        let codec_id = match form {
            VideoForm::Enhanced => u32::from_be_bytes(*b"hvc1") as f64,
            VideoForm::Legacy => 12.0,
        };
        for (name, want) in [
            ("width", 320.0),
            ("height", 180.0),
            ("framerate", 30.0),
            ("videocodecid", codec_id),
            ("audiocodecid", 10.0),
        ] {
            assert_eq!(amf_number(&meta, name), Some(want), "onMetaData {name}");
        }
        // audiotestsrc picks the rate.
        let rate = amf_number(&meta, "audiosamplerate");
        assert!(
            matches!(rate, Some(r) if r >= 8_000.0),
            "onMetaData audiosamplerate {rate:?}"
        );

        let dec = gst::Pipeline::new();
        let src = gst_app::AppSrc::builder().build();
        dec.add(&src).unwrap();
        // Not async: sinks added while the pipeline plays would send it back to PAUSED to preroll them.
        let frames = gst_app::AppSink::builder()
            .async_(false)
            .caps(
                &gst::Caps::builder("video/x-raw")
                    .field("format", "RGB")
                    .build(),
            )
            .build();
        let tone = gst_app::AppSink::builder()
            .async_(false)
            .caps(
                &gst::Caps::builder("audio/x-raw")
                    .field("format", "F32LE")
                    .field("channels", 1i32)
                    .field("rate", 48_000i32)
                    .build(),
            )
            .build();
        let (vsink, asink) = (frames.clone(), tone.clone());
        tessera::flv::demux::attach(
            &dec,
            src.upcast_ref(),
            0,
            std::sync::Arc::new(move |pipeline, pad, track| {
                let (chain, sink): (Vec<&str>, gst::Element) = match track {
                    tessera::flv::demux::Track::Video => {
                        (vec!["videoconvert"], vsink.clone().upcast())
                    }
                    tessera::flv::demux::Track::Audio => (
                        vec!["audioconvert", "audioresample"],
                        asink.clone().upcast(),
                    ),
                };
                let mut elements: Vec<gst::Element> = chain.iter().map(|f| make(f)).collect();
                elements.push(sink);
                pipeline.add_many(&elements).unwrap();
                gst::Element::link_many(&elements).unwrap();
                for e in elements.iter().rev() {
                    e.sync_state_with_parent().unwrap();
                }
                pad.link(&elements[0].static_pad("sink").unwrap()).unwrap();
            }),
        )
        .unwrap();
        dec.set_state(gst::State::Playing).unwrap();
        let bytes_len = bytes.len();
        src.push_buffer(gst::Buffer::from_slice(bytes)).unwrap();
        src.end_of_stream().unwrap();
        // The sinks join the pipeline when the demuxer reaches each track: until then a pull returns at once.
        let pull = |sink: &gst_app::AppSink| {
            let deadline = Instant::now() + Duration::from_secs(20);
            loop {
                if let Some(s) = sink.try_pull_sample(gst::ClockTime::from_mseconds(200)) {
                    return Some(s);
                }
                // `is_eos` also holds for a sink that has not started: only believe it once it runs.
                let ended = sink.current_state() == gst::State::Playing && sink.is_eos();
                if ended || Instant::now() > deadline {
                    return None;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        };
        // The last picture of the stream (the decoder's first output may be a concealment frame).
        let mut last = None;
        while let Some(s) = pull(&frames) {
            last = Some(s);
        }
        let Some(sample) = last else {
            let err = dec.bus().unwrap().pop_filtered(&[gst::MessageType::Error]);
            panic!("{form:?}: no decoded frame from {bytes_len} bytes; {err:?}");
        };
        let map = sample.buffer().unwrap().map_readable().unwrap();
        let info = gst_video::VideoInfo::from_caps(sample.caps().unwrap()).unwrap();
        let at = (90 * info.stride()[0] as usize) + 160 * 3;
        let px = [map[at], map[at + 1], map[at + 2]];
        assert!(color_close(px, GREEN, 30), "{form:?}: centre pixel {px:?}");
        let _ = dec.set_state(gst::State::Null);
    }
}

fn run_to_eos(p: &gst::Pipeline) {
    p.set_state(gst::State::Playing).unwrap();
    let msg = p.bus().unwrap().timed_pop_filtered(
        gst::ClockTime::from_seconds(60),
        &[gst::MessageType::Eos, gst::MessageType::Error],
    );
    let _ = p.set_state(gst::State::Null);
    assert!(
        matches!(
            msg.as_ref().map(|m| m.view()),
            Some(gst::MessageView::Eos(_))
        ),
        "{msg:?}"
    );
}

#[test]
fn h265_inputs_of_both_forms_are_mixed_with_an_h264_input() {
    let rig = Rig::start();
    let _a = HevcPublisher::start(
        &rig.nginx.rtmp_url("live", "a"),
        HevcOpts {
            color: RED,
            tone_hz: Some(440.0),
            form: HevcForm::CodecId12,
            ..HevcOpts::default()
        },
    );
    let _b = rig.solid("b", GREEN, Some(660.0));
    let file = hevc_flv_bytes(
        &HevcOpts {
            color: BLUE,
            tone_hz: Some(880.0),
            form: HevcForm::Enhanced,
            ..HevcOpts::default()
        },
        40,
    );
    std::fs::write(rig.nginx.http_dir().join("c.flv"), file).unwrap();
    let probe = rig.probe("out");
    rig.put(
        "m",
        &spec(
            "#FFFF00",
            vec![
                input("a", rect(0, 0, 320, 180)),
                input("b", rect(320, 0, 320, 180)),
                json!({"id": "c", "source": {"url": rig.nginx.http_url("c.flv")}, "rect": rect(0, 180, 320, 180)}),
            ],
        ),
    );
    expect_pixels(
        &probe,
        &[
            (160, 90, RED),
            (480, 90, GREEN),
            (160, 270, BLUE),
            (480, 270, YELLOW),
        ],
        Duration::from_secs(30),
    );
    wait_levels(
        &probe,
        &[440.0, 660.0, 880.0],
        Duration::from_secs(20),
        |l| l.iter().all(|&v| v > 0.02),
    );
    rig.wait_status("m", Duration::from_secs(10), |s| {
        (0..3).all(|i| s["inputs"][i]["state"] == "live")
    });
    // The frame rate is measured over 2 s: read once the mix has run longer (a mix in a spare worker gets
    // this far within a second of its creation).
    let st = rig.wait_status("m", Duration::from_secs(10), |s| {
        s["uptime_s"].as_u64() >= Some(3)
    });
    assert!(st["output_fps"].as_f64().unwrap() >= 28.0, "{st}");
}

/// An H.265 output end to end through nginx-rtmp (codec id 12: the form it carries), as ZEGO's VideoEncId 3
/// asks for it, decoded back with the tone; the enhanced form is checked without a server above.
#[test]
fn an_h265_output_decodes_back() {
    let rig = Rig::start();
    let _a = rig.solid("a", RED, Some(440.0));
    let probe = OutputProbe::start_tessera_demux(&rig.nginx.rtmp_url("mix", "c12"));
    let mut s = spec("#0000FF", vec![input("a", rect(0, 0, 320, 180))]);
    s["outputs"] = json!([
        {"target": {"stream_id": "c12"}, "video": {"codec": "h265", "bitrate_kbps": 800, "flv_form": "codec_id_12"}},
    ]);
    rig.put("m", &s);
    expect_pixels(
        &probe,
        &[(160, 90, RED), (480, 90, BLUE), (480, 270, BLUE)],
        Duration::from_secs(30),
    );
    wait_levels(&probe, &[440.0], Duration::from_secs(20), |l| l[0] > 0.02);
    assert_form(
        &video_tags(&rig.nginx.rtmp_url("mix", "c12"), 40),
        HevcForm::CodecId12,
    );
    // H.264 is always written the classic way: a form for it is refused.
    let mut bad = s.clone();
    bad["outputs"][0]["video"]["codec"] = "h264".into();
    let (status, body) = rig.tessera.put("/v1/mixes/m", &bad);
    assert!((400..500).contains(&status), "{status} {body}");
    assert!(body.to_string().contains("flv_form"), "{body}");
}

/// FLV bytes: the header, then tags.
fn flv(tags: &[Vec<u8>]) -> Vec<u8> {
    let mut out = FLV_HEADER.to_vec();
    for t in tags {
        out.extend_from_slice(t);
    }
    out
}

#[test]
fn malformed_h265_inputs_give_a_clear_error_and_the_mix_keeps_running() {
    let rig = Rig::on(Nginx::start(), |c| c.ingest.connect_timeout_ms = 3_000);
    let _a = rig.solid("a", RED, None);
    let dir = rig.nginx.http_dir();
    let mut rng = fastrand::Rng::with_seed(6);
    let garbage: Vec<u8> = (0..300_000).map(|_| rng.u8(..)).collect();
    std::fs::write(dir.join("garbage.flv"), garbage).unwrap();
    // A sequence header cut short: 10 bytes of a record that needs far more.
    let cut = hevc_video_data(
        HevcForm::Enhanced,
        true,
        true,
        0,
        &[1, 1, 0x60, 0, 0, 0, 0x90, 0, 0, 0],
    );
    std::fs::write(dir.join("cut.flv"), flv(&[flv_tag(9, 0, &cut)])).unwrap();
    // Frames and never their sequence header, for longer than the connect timeout.
    let frames: Vec<Vec<u8>> = (0..200)
        .map(|i| {
            let d = hevc_video_data(
                HevcForm::CodecId12,
                false,
                i % 30 == 0,
                0,
                &[0, 0, 0, 2, 0x26, 1],
            );
            flv_tag(9, i * 33, &d)
        })
        .collect();
    std::fs::write(dir.join("headless.flv"), flv(&frames)).unwrap();
    let probe = rig.probe("out");
    let bad = |id: &str, x: i32, y: i32| json!({"id": id, "source": {"url": rig.nginx.http_url(&format!("{id}.flv"))}, "rect": rect(x, y, 160, 90)});
    rig.put(
        "m",
        &spec(
            "#0000FF",
            vec![
                input("a", rect(0, 0, 320, 180)),
                bad("garbage", 320, 0),
                bad("cut", 480, 0),
                bad("headless", 320, 180),
            ],
        ),
    );
    expect_pixels(
        &probe,
        &[
            (160, 90, RED),
            (400, 45, BLUE),
            (560, 45, BLUE),
            (400, 225, BLUE),
        ],
        Duration::from_secs(25),
    );
    let reason = |s: &Value, i: usize| {
        s["inputs"][i]["last_error"]
            .as_str()
            .unwrap_or("")
            .to_string()
    };
    // The good input is live beside them (status is the worker's report, which may be from before the
    // picture above: wait for it rather than read once).
    rig.wait_status("m", Duration::from_secs(30), |s| {
        reason(s, 1).contains("not an FLV stream")
            && reason(s, 2).contains("H.265 sequence header")
            && reason(s, 3).contains("without a sequence header")
            && s["inputs"][0]["state"] == "live"
    });
    // The mix kept its frame rate throughout, and still shows the good input.
    // The frame rate is measured over 2 s: read once the mix has run longer (a mix in a spare worker gets
    // this far within a second of its creation).
    let st = rig.wait_status("m", Duration::from_secs(10), |s| {
        s["uptime_s"].as_u64() >= Some(3)
    });
    assert!(st["output_fps"].as_f64().unwrap() >= 28.0, "{st}");
    expect_pixels(&probe, &[(160, 90, RED)], Duration::from_secs(5));
}

#[test]
fn an_input_switches_codec_after_a_reconnect() {
    let rig = Rig::start();
    let h264 = rig.solid("a", RED, None);
    let probe = rig.probe("out");
    rig.put(
        "m",
        &spec("#0000FF", vec![input("a", rect(0, 0, 320, 180))]),
    );
    expect_pixels(&probe, &[(160, 90, RED)], Duration::from_secs(25));
    h264.stop();
    let _h265 = HevcPublisher::start(
        &rig.nginx.rtmp_url("live", "a"),
        HevcOpts {
            color: GREEN,
            form: HevcForm::CodecId12,
            ..HevcOpts::default()
        },
    );
    expect_pixels(
        &probe,
        &[(160, 90, GREEN), (480, 90, BLUE)],
        Duration::from_secs(25),
    );
}

/// The number an AMF0 name/value pair called `name` holds in `data` (an `onMetaData` body), if any.
fn amf_number(data: &[u8], name: &str) -> Option<f64> {
    let mut key = (name.len() as u16).to_be_bytes().to_vec();
    key.extend_from_slice(name.as_bytes());
    key.push(0x00);
    let at = data.windows(key.len()).position(|w| w == key)? + key.len();
    Some(f64::from_be_bytes(data.get(at..at + 8)?.try_into().ok()?))
}
