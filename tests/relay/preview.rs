//! A relay's live preview (what its outputs get, as HTTP-FLV) and snapshots of its inputs (decoded on demand).

use std::time::Duration;

use super::*;

#[test]
fn relay_preview_and_input_snapshots() {
    let rig = rig();
    let _main = rig.solid("main", RED, None);
    rig.put_relay("r", &spec(&rig, false, &["o1"]));
    rig.start_relay("r");
    let out = rig.probe("o1");
    expect_colour(&out, RED, Duration::from_secs(25));

    let viewer = OutputProbe::start(&rig.tessera.url("/v1/relays/r/live.flv"));
    expect_colour(&viewer, RED, Duration::from_secs(20));
    viewer.let_frames_pass(30, Duration::from_secs(10), "the preview stalled");

    // The main input's newest keyframe, decoded for the request: the publisher's own 320×180 picture.
    let shot = snapshot(&rig.tessera.url("/v1/relays/r/inputs/main/snapshot.jpg"));
    assert_eq!((shot.width, shot.height), (320, 180));
    assert!(color_close(shot.center(), RED, TOL), "{:?}", shot.center());
    let small = snapshot(
        &rig.tessera
            .url("/v1/relays/r/inputs/main/snapshot.jpg?width=160"),
    );
    assert_eq!((small.width, small.height), (160, 90));

    for path in [
        "/v1/relays/r/inputs/backup/snapshot.jpg",
        "/v1/relays/r/inputs/side/snapshot.jpg",
        "/v1/relays/nope/inputs/main/snapshot.jpg",
        "/v1/relays/nope/live.flv",
    ] {
        let (status, _) = fetch(&rig.tessera.url(path));
        assert_eq!(status, 404, "{path}");
    }
    // The outputs never noticed.
    assert_eq!(out.sessions(), 1);
}
