use super::*;
use crate::api::tencent::request::{
    ControlParams, CropParams, Dialect, InputParam, LayoutParams, MixRequest, OutputParams,
};
use crate::model::{Fit, MixSpec, Rect};

fn input(id: &str, layer: i64) -> InputParam {
    InputParam {
        stream_id: id.into(),
        layout: Some(LayoutParams {
            layer: Some(layer),
            ..Default::default()
        }),
        crop: None,
    }
}

fn at(mut i: InputParam, w: f64, h: f64, x: f64, y: f64) -> InputParam {
    let l = i.layout.as_mut().unwrap();
    (l.width, l.height, l.x, l.y) = (Some(w), Some(h), Some(x), Some(y));
    i
}

fn req(inputs: Vec<InputParam>) -> MixRequest {
    MixRequest {
        session_id: "s".into(),
        template_id: None,
        output: OutputParams {
            stream_id: "out".into(),
            stream_type: Some(1),
            ..Default::default()
        },
        inputs,
        control: ControlParams::default(),
    }
}

fn facts() -> Facts {
    let mut f = Facts::default();
    f.streams.insert("big".into(), Some((640, 360)));
    f.streams.insert("small".into(), Some((320, 180)));
    f.streams.insert("voice".into(), None);
    f.pictures.insert(5, ("/p/5.png".into(), (100, 50)));
    f
}

fn spec(r: &MixRequest, d: Dialect) -> Result<MixSpec, Reason> {
    check(r, d)
        .and_then(|c| build(&c, &facts()))
        .map_err(|e| e.reason)
}

#[test]
fn background_size_is_the_canvas_and_fractions_are_of_it() {
    let s = spec(
        &req(vec![
            input("big", 1),
            at(input("small", 2), 0.25, 0.5, 0.5, 0.25),
        ]),
        Dialect::Legacy,
    )
    .unwrap();
    assert_eq!((s.canvas.width, s.canvas.height), (640, 360));
    assert_eq!(s.inputs[0].rect, Some(Rect::new(0, 0, 640, 360)));
    assert_eq!(s.inputs[1].rect, Some(Rect::new(320, 90, 160, 180)));
    // No size given: the stream's own.
    let s = spec(
        &req(vec![input("big", 1), input("small", 2)]),
        Dialect::Legacy,
    )
    .unwrap();
    assert_eq!(s.inputs[1].rect, Some(Rect::new(0, 0, 320, 180)));
    // Auto bitrate by canvas size.
    assert_eq!(s.outputs[0].video.as_ref().unwrap().bitrate_kbps, 800);
}

#[test]
fn crops_default_the_layer_size_and_must_fit_the_source() {
    let mut small = input("small", 2);
    small.crop = Some(CropParams {
        width: Some(100.0),
        height: Some(50.0),
        x: Some(10.0),
        y: Some(20.0),
    });
    let s = spec(&req(vec![input("big", 1), small.clone()]), Dialect::Legacy).unwrap();
    assert_eq!(s.inputs[1].crop, Some(Rect::new(10, 20, 100, 50)));
    assert_eq!(s.inputs[1].rect, Some(Rect::new(0, 0, 100, 50)));
    small.crop.as_mut().unwrap().x = Some(300.0);
    assert_eq!(
        spec(&req(vec![input("big", 1), small]), Dialect::Legacy),
        Err(Reason::Crop)
    );
}

#[test]
fn ranges_differ_between_the_dialects() {
    let wide = req(vec![
        input("big", 1),
        at(input("small", 2), 2500.0, 10.0, 0.0, 0.0),
    ]);
    assert_eq!(spec(&wide, Dialect::Cloud), Err(Reason::StreamParameter));
    // Legal for the CGI, but it does not fit the 640-wide background.
    assert_eq!(spec(&wide, Dialect::Legacy), Err(Reason::Overflow));
    let mut r = req(vec![input("big", 1), input("small", 2)]);
    r.output.bitrate_kbps = Some(20_000);
    assert_eq!(spec(&r, Dialect::Cloud), Err(Reason::Bitrate));
    let s = spec(&r, Dialect::Legacy).unwrap();
    assert_eq!(s.outputs[0].video.as_ref().unwrap().bitrate_kbps, 20_000);
    r.output.bitrate_kbps = Some(5);
    let s = spec(&r, Dialect::Legacy).unwrap();
    assert_eq!(s.outputs[0].video.as_ref().unwrap().bitrate_kbps, 100);
}

#[test]
fn pictures_canvases_and_templates() {
    let mut canvas = input("c1", 1);
    {
        let l = canvas.layout.as_mut().unwrap();
        (l.input_type, l.width, l.height, l.color) =
            (Some(3), Some(800.0), Some(600.0), Some("0x00FF00".into()));
    }
    let mut pic = at(input("logo", 3), 0.0, 0.0, 10.0, 10.0);
    {
        let l = pic.layout.as_mut().unwrap();
        (l.input_type, l.picture_id) = (Some(2), Some(5));
    }
    let r = req(vec![canvas, input("big", 2), pic]);
    let s = spec(&r, Dialect::Cloud).unwrap();
    assert_eq!((s.canvas.width, s.canvas.height), (800, 600));
    assert_eq!(s.canvas.background, Color::from_rgb_u32(0x00FF00));
    assert_eq!(s.overlays[0].rect, Rect::new(10, 10, 100, 50));
    // API 3.0 draws pictures opaque unless UsePictureTransparent; the CGI keeps their alpha.
    assert!(s.overlays[0].opaque);
    assert!(!spec(&r, Dialect::Legacy).unwrap().overlays[0].opaque);

    let mut t = req(vec![
        at(input("big", 1), 10.0, 10.0, 5.0, 5.0),
        input("small", 2),
    ]);
    t.template_id = Some(30);
    let s = spec(&t, Dialect::Legacy).unwrap();
    assert_eq!((s.canvas.width, s.canvas.height), (640, 360));
    assert_eq!(s.inputs[1].rect, Some(Rect::new(320, 0, 320, 360)));
    assert_eq!(s.inputs[1].fit, Fit::Letterbox);
}

#[test]
fn sound_only_mixes_have_no_video_output() {
    let voice = |id: &str, layer| {
        let mut i = input(id, layer);
        i.layout.as_mut().unwrap().input_type = Some(4);
        i
    };
    let mut r = req(vec![voice("voice", 1), voice("big", 2)]);
    r.output.sei = Some("hi".into());
    let s = spec(&r, Dialect::Legacy).unwrap();
    assert!(s.outputs[0].video.is_none());
    assert_eq!(s.sei.user_data_base64.as_deref(), Some("aGk="));
    // A sound-only background under pictured inputs has no size to give.
    let r = req(vec![voice("voice", 1), input("big", 2)]);
    assert_eq!(spec(&r, Dialect::Legacy), Err(Reason::BackgroundSize));
}

#[test]
fn pass_input_sei_carries_the_inputs_sei() {
    let mut r = req(vec![input("big", 1), input("small", 2)]);
    assert!(!spec(&r, Dialect::Cloud).unwrap().sei.pass_input);
    r.control.pass_input_sei = Some(1);
    assert!(spec(&r, Dialect::Cloud).unwrap().sei.pass_input);
    r.control.pass_input_sei = Some(2);
    assert_eq!(spec(&r, Dialect::Cloud), Err(Reason::Parameter));
}
