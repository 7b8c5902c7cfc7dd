//! What the output picture shows: placement, z-order, canvas colour, crop, fit modes, rounded corners, images.

use std::time::Duration;

use serde_json::json;

use super::*;

const T: Duration = Duration::from_secs(25);

/// A rig whose pictures folder (`engine.pictures_dir`) is nginx's file folder: local image files must lie there.
fn rig_with_pictures() -> Rig {
    init();
    let nginx = Nginx::start();
    let folder = nginx.http_dir().display().to_string();
    Rig::on(nginx, |c| c.engine.pictures_dir = folder)
}

#[test]
fn rects_zorder_and_canvas_colour() {
    let rig = Rig::start();
    let _a = rig.solid("a", RED, None);
    let _b = rig.solid("b", GREEN, None);
    let probe = rig.probe("out");
    let inputs = |la: u32, lb: u32| {
        vec![
            json!({"id": "a", "source": {"stream_id": "a"}, "rect": rect(0, 0, 320, 180), "layer": la}),
            json!({"id": "b", "source": {"stream_id": "b"}, "rect": rect(160, 90, 320, 180), "layer": lb}),
        ]
    };
    rig.put("m", &spec("#0000FF", inputs(1, 2)));
    // A alone, B alone, the overlap (B above), and the canvas outside both.
    expect_pixels(
        &probe,
        &[
            (60, 40, RED),
            (420, 230, GREEN),
            (240, 135, GREEN),
            (600, 330, BLUE),
            (600, 20, BLUE),
        ],
        T,
    );
    // Swapping layers live puts A on top in the overlap.
    rig.put("m", &spec("#0000FF", inputs(3, 2)));
    expect_pixels(
        &probe,
        &[(240, 135, RED), (420, 230, GREEN), (600, 330, BLUE)],
        Duration::from_secs(5),
    );
}

#[test]
fn crop_shows_only_the_chosen_quadrant() {
    let rig = Rig::start();
    let _q = rig.quadrants("q");
    let probe = rig.probe("out");
    // The publisher is 320×180: the top-right quadrant is x 160..320, y 0..90, all green.
    rig.put(
        "m",
        &spec(
            "#000000",
            vec![json!({"id": "q", "source": {"stream_id": "q"}, "rect": rect(0, 0, 320, 180), "crop": rect(160, 0, 160, 90)})],
        ),
    );
    let points: Vec<(u32, u32, u32)> = [(10, 10), (310, 10), (10, 170), (310, 170), (160, 90)]
        .iter()
        .map(|&(x, y)| (x, y, GREEN))
        .collect();
    expect_pixels(&probe, &points, T);
}

#[test]
fn fit_modes_stretch_crop_to_fill_and_letterbox() {
    let rig = Rig::start();
    let _q = rig.quadrants("q");
    let probe = rig.probe("out");
    // The crop keeps the top band x 0..240, y 0..90: red up to x 160, green after — an asymmetric picture, so
    // each fit mode puts the red/green edge somewhere else.
    let input = |id: &str, r: serde_json::Value, fit: &str| json!({"id": id, "source": {"stream_id": "q"}, "rect": r, "crop": rect(0, 0, 240, 90), "fit": fit});
    rig.put(
        "m",
        &spec(
            "#0000FF",
            vec![
                // 240×90 → 120×90: edge at x = 80.
                input("stretch", rect(0, 0, 120, 90), "stretch"),
                // Centre 90×90 of the band (x 75..165): red for the first 85 columns.
                input("fill", rect(200, 0, 90, 90), "crop_to_fill"),
                // Whole band in 90×90: 90×32 high, centred vertically; canvas above and below.
                input("letterbox", rect(400, 0, 90, 90), "letterbox"),
            ],
        ),
    );
    expect_pixels(
        &probe,
        &[
            (20, 45, RED),
            (110, 45, GREEN),
            (205, 45, RED),
            // x = 270 is source column 145 when filled (red) but 186 when stretched (green).
            (270, 45, RED),
            (445, 10, BLUE),
            (420, 45, RED),
            (445, 80, BLUE),
        ],
        T,
    );
}

#[test]
fn rounded_corners_show_what_is_beneath() {
    let rig = Rig::start();
    let _a = rig.solid("a", RED, None);
    let probe = rig.probe("out");
    rig.put(
        "m",
        &spec(
            "#0000FF",
            vec![json!({"id": "a", "source": {"stream_id": "a"}, "rect": rect(100, 100, 200, 120), "corner_radius": 40})],
        ),
    );
    // Corner pixels of the rect show the canvas; the centre and the middle of an edge show the input.
    expect_pixels(
        &probe,
        &[
            (103, 103, BLUE),
            (296, 216, BLUE),
            (200, 160, RED),
            (200, 103, RED),
            (103, 160, RED),
        ],
        T,
    );
    // Square corners once the radius goes to 0, live.
    let mut s = spec("#0000FF", vec![input("a", rect(100, 100, 200, 120))]);
    rig.put("m", &s);
    expect_pixels(
        &probe,
        &[(103, 103, RED), (296, 216, RED)],
        Duration::from_secs(5),
    );
    s["inputs"][0]["corner_radius"] = json!(40);
    rig.put("m", &s);
    expect_pixels(&probe, &[(103, 103, BLUE)], Duration::from_secs(5));
}

#[test]
fn transparent_watermark_shows_what_is_beneath_and_corners_stay_round() {
    let rig = rig_with_pictures();
    let _a = rig.solid("a", RED, None);
    let probe = rig.probe("out");
    // Fully transparent magenta: only what lies beneath may show.
    let glass = rig.nginx.http_dir().join("glass.png");
    write_png(&glass, 0x00FF00FF, 32, 32);
    let mut s = spec(
        "#0000FF",
        vec![
            json!({"id": "a", "source": {"stream_id": "a"}, "rect": rect(100, 100, 200, 120), "corner_radius": 40}),
        ],
    );
    s["overlays"] = json!([{"id": "glass", "image": glass.display().to_string(), "rect": rect(180, 140, 80, 80), "layer": 100}]);
    rig.put("m", &s);
    // The canvas blends with alpha while the picture is there; corners are drawn all the same.
    expect_pixels(
        &probe,
        &[
            (220, 180, RED),
            (200, 130, RED),
            (103, 103, BLUE),
            (296, 216, BLUE),
        ],
        T,
    );
    // Without it the canvas goes back to opaque blending, live: same picture.
    s["overlays"] = json!([]);
    rig.put("m", &s);
    expect_pixels(
        &probe,
        &[(220, 180, RED), (103, 103, BLUE), (296, 216, BLUE)],
        Duration::from_secs(5),
    );
    // And back to alpha blending with a half-transparent green picture: a blend of green and red.
    let half = rig.nginx.http_dir().join("half.png");
    write_png(&half, 0x8000FF00, 32, 32);
    s["overlays"] = json!([{"id": "half", "image": half.display().to_string(), "rect": rect(180, 140, 80, 80), "layer": 100}]);
    rig.put("m", &s);
    let blend = |p: [u8; 3]| (60..200).contains(&p[0]) && (60..200).contains(&p[1]);
    let seen = probe.wait_until(Duration::from_secs(10), |f| blend(f.pixel(220, 180)));
    assert!(
        seen.is_some(),
        "no red/green blend under the half-transparent picture: {:?}",
        probe.latest().map(|f| f.pixel(220, 180))
    );
    expect_pixels(&probe, &[(103, 103, BLUE)], Duration::from_secs(5));
}

#[test]
fn background_image_and_watermark_from_file_and_http() {
    let rig = rig_with_pictures();
    let _a = rig.solid("a", RED, None);
    let probe = rig.probe("out");
    let bg = rig.nginx.http_dir().join("bg.png");
    write_png(&bg, 0xFF00FFFF, 64, 36);
    let logo = rig.nginx.http_dir().join("logo.png");
    write_png(&logo, 0xFFFF00FF, 32, 32);
    let mut s = spec("#000000", vec![input("a", rect(0, 0, 320, 180))]);
    // A path relative to the pictures folder.
    assert!(bg.ends_with("bg.png"));
    s["canvas"]["background_image"] = json!("bg.png");
    s["overlays"] = json!([{"id": "logo", "image": rig.nginx.http_url("logo.png"), "rect": rect(280, 140, 80, 80), "layer": 100}]);
    rig.put("m", &s);
    // Canvas covered by the (cyan) background image; the (magenta) watermark lies over the input's corner.
    expect_pixels(
        &probe,
        &[
            (500, 300, CYAN),
            (100, 100, RED),
            (300, 160, MAGENTA),
            (350, 210, MAGENTA),
        ],
        T,
    );
    // Moving the watermark live.
    s["overlays"][0]["rect"] = rect(500, 20, 80, 80);
    rig.put("m", &s);
    expect_pixels(
        &probe,
        &[(300, 160, RED), (540, 60, MAGENTA)],
        Duration::from_secs(5),
    );
}

#[test]
fn http_flv_input_is_shown() {
    let rig = Rig::start();
    let file = rig.nginx.http_dir().join("clip.flv");
    write_flv(
        &file,
        &PublishOpts {
            pattern: Pattern::Solid(YELLOW),
            ..PublishOpts::default()
        },
        20,
    );
    let probe = rig.probe("out");
    rig.put(
        "m",
        &spec(
            "#0000FF",
            vec![json!({"id": "f", "source": {"url": rig.nginx.http_url("clip.flv")}, "rect": rect(0, 0, 320, 180)})],
        ),
    );
    expect_pixels(&probe, &[(100, 100, YELLOW), (500, 300, BLUE)], T);
    // A file plays at its own pace, not as fast as it downloads: output keeps its frame rate.
    rig.wait_status("m", Duration::from_secs(5), |s| {
        s["output_fps"].as_f64().unwrap() >= 28.0 && s["inputs"][0]["state"] == "live"
    });
}
