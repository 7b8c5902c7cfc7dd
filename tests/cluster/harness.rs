//! The rig's pieces on their own, without Tessera: etcd (start, leader, kill, pause, the JSON gateway) and the
//! publish recorder behind nginx-rtmp (sessions, a refused second publisher, a frozen publisher dropped).

use std::{
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use crate::common::*;

#[test]
fn harness_etcd_reports_its_leader_elects_another_and_pauses() {
    let mut etcd = Etcd::start(3);
    assert_eq!(etcd.endpoints().len(), 3);
    etcd.put("/tessera/a", "1");
    etcd.put("/tessera/b", "two");
    etcd.put("/tesserb", "outside");
    let kv = |v: &[(&str, &str)]| -> Vec<(String, String)> {
        v.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    assert_eq!(
        etcd.get_prefix("/tessera/"),
        kv(&[("/tessera/a", "1"), ("/tessera/b", "two")])
    );

    let old = etcd.leader();
    etcd.kill(old);
    let new = etcd.leader();
    assert_ne!(new, old, "a new leader after the old one was killed");
    // Two of three still make a quorum.
    etcd.put("/tessera/c", "3");
    assert_eq!(etcd.get_prefix("/tessera/").len(), 3);

    etcd.pause();
    let live: Vec<usize> = (0..3).filter(|&i| i != old).collect();
    for &i in &live {
        assert!(!etcd.healthy(i), "m{i} answers while paused");
    }
    etcd.resume();
    for &i in &live {
        assert!(
            wait_for(Duration::from_secs(10), || etcd.healthy(i)),
            "m{i} healthy again after SIGCONT"
        );
    }
}

/// An ffmpeg publisher of a small test picture (a separate process, so it can be frozen).
fn ffmpeg_publisher(url: &str) -> Child {
    Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-re"])
        .args(["-f", "lavfi", "-i", "testsrc=size=160x90:rate=15"])
        .args([
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-tune",
            "zerolatency",
            "-g",
            "15",
        ])
        .args(["-f", "flv", url])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("run ffmpeg")
}

fn small(rgb: u32) -> PublishOpts {
    PublishOpts {
        width: W,
        height: H,
        fps: FPS,
        pattern: Pattern::Solid(rgb),
        ..PublishOpts::default()
    }
}

#[test]
fn harness_recorder_sees_sessions_refused_publishers_and_idle_drops() {
    init();
    let recorder = PublishRecorder::start();
    let nginx = Nginx::start_with_publish_log_idle(recorder.port(), 1);
    let url = nginx.rtmp_url(OUT_APP, "h1");

    // One publisher: one open session.
    let first = Publisher::start(&url, small(RED));
    let s1 = recorder.wait_publishing(OUT_APP, "h1", Duration::from_secs(20));
    assert!(nginx.is_publishing(OUT_APP, "h1"));

    // A second one on the same stream: nginx-rtmp calls on_publish, then refuses it (and never calls
    // on_publish_done for it).
    let second = Publisher::start(&url, small(GREEN));
    assert!(
        wait_for(Duration::from_secs(10), || recorder
            .attempts(OUT_APP, "h1")
            .len()
            == 2),
        "expected the second publisher's on_publish; history {}",
        recorder.describe(OUT_APP, "h1")
    );
    std::thread::sleep(Duration::from_secs(2));
    eprintln!(
        "recorder: a second publisher on h1: {} (events {:?})",
        recorder.describe(OUT_APP, "h1"),
        recorder.events()
    );
    assert!(
        recorder.refused(OUT_APP, "h1").len() == 1 && recorder.overlaps(OUT_APP, "h1").len() == 1,
        "a refused second publisher shows as refused, and as an overlap; history {}",
        recorder.describe(OUT_APP, "h1")
    );
    assert_eq!(recorder.open_sessions(OUT_APP, "h1"), vec![s1.clone()]);
    drop(second);
    drop(first);
    assert!(
        wait_for(Duration::from_secs(10), || !recorder
            .is_publishing(OUT_APP, "h1")),
        "expected every session of h1 closed once both publishers stopped; history {}",
        recorder.describe(OUT_APP, "h1")
    );
    assert_eq!(recorder.sessions(OUT_APP, "h1")[0].start, s1.start);

    // Publishers one after the other: no overlap.
    let p = Publisher::start(&nginx.rtmp_url(OUT_APP, "h2"), small(BLUE));
    recorder.wait_publishing(OUT_APP, "h2", Duration::from_secs(20));
    let stopped = Instant::now();
    drop(p);
    let p = Publisher::start(&nginx.rtmp_url(OUT_APP, "h2"), small(BLUE));
    let next = recorder
        .wait_session_after(OUT_APP, "h2", stopped, Duration::from_secs(20))
        .expect("the second publisher of h2");
    assert!(next.end.is_none());
    recorder.assert_no_overlap(OUT_APP, "h2");
    assert_eq!(recorder.sessions(OUT_APP, "h2").len(), 2);
    drop(p);

    // A frozen publisher is dropped after the idle time (1 s here), and its session ends.
    let mut ff = ffmpeg_publisher(&nginx.rtmp_url(OUT_APP, "h3"));
    recorder.wait_publishing(OUT_APP, "h3", Duration::from_secs(20));
    std::thread::sleep(Duration::from_secs(1));
    // SAFETY: signalling our own child.
    unsafe { libc::kill(ff.id() as i32, libc::SIGSTOP) };
    let frozen = Instant::now();
    assert!(
        wait_for(Duration::from_secs(5), || !recorder
            .is_publishing(OUT_APP, "h3")),
        "expected nginx to drop the frozen publisher; history {}",
        recorder.describe(OUT_APP, "h3")
    );
    let end = recorder.sessions(OUT_APP, "h3")[0].end.unwrap();
    eprintln!(
        "recorder: a frozen publisher was dropped {:?} after SIGSTOP",
        end.duration_since(frozen)
    );
    let _ = ff.kill();
    let _ = ff.wait();
    assert!(recorder.garbage().is_empty(), "{:?}", recorder.garbage());
}
