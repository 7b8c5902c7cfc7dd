//! Layout templates: each input lands in its template cell (Tessera's definitions, docs/tencent-templates.md).

use serde_json::{json, Value};
use tessera::api::tencent::templates;

use super::*;

const COLORS: [u32; 6] = [RED, GREEN, BLUE, YELLOW, MAGENTA, CYAN];

/// One session, every template in turn: the layout changes in place, and the centre of each input's cell shows
/// that input's colour (inputs keep their aspect ratio, so a cell's centre is always covered by its input).
#[test]
fn every_template_places_each_input_in_its_cell() {
    let rig = rig();
    // The background is 640×360; the others are 16:9 too but smaller, to be scaled.
    let _publishers: Vec<Publisher> = COLORS
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let (w, h) = if i == 0 { (640, 360) } else { (320, 180) };
            rig.live_sized(&format!("t{i}"), *c, None, w, h)
        })
        .collect();
    let probe = rig.probe("t_out");
    let mut failures = Vec::new();
    for id in templates::IDS {
        let n = templates::input_count(id).unwrap();
        let inputs: Vec<Value> = (0..n)
            .map(|i| {
                // Positions in the request are ignored under a template.
                json!({"input_stream_id": format!("t{i}"), "layout_params": {
                    "image_layer": i + 1, "image_width": 10, "image_height": 10, "location_x": 5, "location_y": 5}})
            })
            .collect();
        let mut para = start_para("tpl", "t_out", json!(inputs));
        para["mix_stream_template_id"] = json!(id);
        para["output_stream_type"] = json!(1);
        let answer = rig.cgi(&cgi_body(para));
        assert_eq!(code(&answer), 0, "template {id}: {answer}");
        let cells = templates::place(id, 640, 360).unwrap();
        let checks: Vec<(u32, u32, u32)> = cells
            .iter()
            .enumerate()
            .map(|(i, r)| {
                (
                    r.x as u32 + r.width / 2,
                    r.y as u32 + r.height / 2,
                    COLORS[i],
                )
            })
            .collect();
        let ok = probe.wait_until(T, |f| {
            (f.width, f.height) == (640, 360)
                && checks
                    .iter()
                    .all(|(x, y, c)| color_close(f.pixel(*x, *y), *c, TOL))
        });
        if ok.is_none() {
            let f = probe.latest();
            failures.push(format!(
                "template {id}: wanted {checks:?}, saw {:?}",
                f.map(|f| (f.width, f.height))
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // One session throughout: the output was never restarted by a layout change.
    assert_eq!(rig.nginx.publish_count_of("mix", "t_out"), 1);
}
