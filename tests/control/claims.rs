//! One publisher per stream: a mix may not publish where it pulls an input from, and no two tasks — mixes or
//! relay projects, whichever dialect made them — publish to one URL.

use super::*;

#[test]
fn a_mix_may_not_feed_itself() {
    let tessera = Tessera::start(config());
    let mut spec = mix("unused", None);
    spec["inputs"][0]["source"] = json!({"stream_id": "c"});
    spec["outputs"][0]["target"] = json!({"url": format!("{NOWHERE}/live/c")});
    let (status, body) = tessera.put("/v1/mixes/loop", &spec);
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["code"], "invalid_spec");
    assert_eq!(body["error"]["details"][0]["field"], "outputs[0].target");
    // Spelled differently (default port written out, a query), still the same stream.
    spec["outputs"][0]["target"] = json!({"url": "rtmp://127.0.0.1:1/live/c?token=x"});
    let (status, body) = tessera.put("/v1/mixes/loop", &spec);
    assert_eq!(status, 422, "{body}");
    assert_eq!(tessera.get("/v1/mixes/loop").0, 404);
}

#[test]
fn mixes_and_relays_never_share_an_output() {
    let tessera = Tessera::start(config());
    let shared = format!("{NOWHERE}/mix/shared");
    let relay = json!({
        "main": {"push": "cam"},
        "outputs": [{"id": "o1", "url": shared}]
    });
    assert_eq!(tessera.put("/v1/relays/r", &relay).0, 201);
    assert_eq!(tessera.post("/v1/relays/r/start", &json!({})).0, 200);

    // A native mix publishing there (by stream id, which resolves to the same URL) is refused.
    let (status, body) = tessera.put("/v1/mixes/m1", &mix("shared", None));
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["code"], "output_in_use");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("relay project \"r\""),
        "{body}"
    );
    // So is a ZEGO task, in ZEGO's code.
    let (_, zego) = tessera.post(
        &zego_path(ZEGO_APP, ZEGO_SECRET, "StartMix"),
        &json!({
            "TaskId": "z", "UserId": "u",
            "MixInput": [{"StreamId": "s1", "RectInfo": {"Top": 0, "Bottom": 90, "Left": 0, "Right": 160}}],
            "MixOutput": [{"StreamId": "shared", "Width": 320, "Height": 180, "VideoBitrate": 300000, "Fps": 15}]
        }),
    );
    assert_eq!(zego["Code"], 110200176, "{zego}");
    assert_eq!(tessera.get("/v1/mixes/zego-z").0, 404);

    // The other way round: a running mix's output cannot be taken by a relay project when it starts.
    assert_eq!(tessera.put("/v1/mixes/m2", &mix("m2-out", None)).0, 201);
    let taker = json!({
        "main": {"push": "cam2"},
        "outputs": [{"id": "o1", "url": format!("{NOWHERE}/mix/m2-out")}]
    });
    assert_eq!(tessera.put("/v1/relays/r2", &taker).0, 201);
    let (status, body) = tessera.post("/v1/relays/r2/start", &json!({}));
    assert_eq!(status, 409, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("mix \"m2\""),
        "{body}"
    );
    // Nor by a running one changing its outputs.
    let (status, body) = tessera.put(
        "/v1/relays/r",
        &json!({"main": {"push": "cam"}, "outputs": [{"id": "o1", "url": format!("{NOWHERE}/mix/m2-out")}]}),
    );
    assert_eq!(status, 409, "{body}");
    // Once the mix is gone, the output is free.
    assert_eq!(tessera.delete("/v1/mixes/m2").0, 204);
    assert_eq!(tessera.post("/v1/relays/r2/start", &json!({})).0, 200);
    // And once the relay stops, so is its output.
    assert_eq!(tessera.post("/v1/relays/r/stop", &json!({})).0, 200);
    assert_eq!(tessera.put("/v1/mixes/m1", &mix("shared", None)).0, 201);
}
