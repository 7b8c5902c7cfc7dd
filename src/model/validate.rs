//! Validation of a [`MixSpec`]: every violated rule is reported with the path of the field, so a caller can fix
//! a request in one go.

use std::collections::HashSet;

use serde::Serialize;

use super::{ImageOverlay, InputSpec, MixSpec, OutputSpec, Rect, Source, Target};

/// One broken rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Violation {
    /// Path of the field, e.g. `inputs[2].rect.width`.
    pub field: String,
    /// The rule it breaks, in words.
    pub rule: String,
}

/// Node limits that depend on configuration.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_inputs: usize,
    pub max_overlays: usize,
    pub max_outputs: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_inputs: 16,
            max_overlays: 8,
            max_outputs: 8,
        }
    }
}

const MAX_ID_LEN: usize = 128;
const MAX_URL_LEN: usize = 2048;
const MAX_LABEL_LEN: usize = 256;
const MAX_DIMENSION: u32 = 4096;
/// The sample rates AAC (and so FLV) carries.
const AAC_RATES: [u32; 12] = [
    8_000, 11_025, 12_000, 16_000, 22_050, 24_000, 32_000, 44_100, 48_000, 64_000, 88_200, 96_000,
];
const MAX_SEI_BYTES: usize = 4096;

/// Whether `id` can name a mix, relay project, picture, input, output or stream: 1 to 128 characters of
/// `A-Z a-z 0-9 - _ . ~` (safe in URLs, file names and logs), and not `.` or `..`, which HTTP clients resolve
/// away in a path.
pub fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_ID_LEN
        && id != "."
        && id != ".."
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.~".contains(&b))
}

/// [`valid_id`] in words.
pub const ID_RULE: &str = "must be 1 to 128 characters of A-Z a-z 0-9 - _ . ~, and not . or ..";

/// Whether `s` holds a control character (C0, DEL or C1): URL parsing silently drops tabs and line breaks, so a
/// URL that parses may still carry one into stream names and log lines.
pub fn has_control(s: &str) -> bool {
    s.chars().any(char::is_control)
}

/// Whether an image location is a well-formed file path (not an http(s) URL): what [`MixSpec::validate`] takes
/// as one. Where the file may be is the API's to judge (the native API confines it to `engine.pictures_dir`).
pub fn is_file_path(image: &str) -> bool {
    !image.starts_with("http://")
        && !image.starts_with("https://")
        && !has_control(image)
        && !image.is_empty()
        && image.len() <= MAX_URL_LEN
        && !image.contains("://")
}

const NO_CONTROL: &str = "must not contain control characters (line breaks, tabs, …)";

struct Checker(Vec<Violation>);

impl Checker {
    fn check(&mut self, ok: bool, field: impl FnOnce() -> String, rule: impl Into<String>) {
        if !ok {
            self.0.push(Violation {
                field: field(),
                rule: rule.into(),
            });
        }
    }

    fn id(&mut self, field: &str, id: &str) {
        self.check(valid_id(id), || field.to_string(), ID_RULE);
    }

    fn url(&mut self, field: &str, url: &str, schemes: &[&str]) {
        if url.len() > MAX_URL_LEN {
            self.check(
                false,
                || field.to_string(),
                format!("must be at most {MAX_URL_LEN} characters"),
            );
            return;
        }
        if has_control(url) {
            self.check(false, || field.to_string(), NO_CONTROL);
            return;
        }
        match url::Url::parse(url) {
            Ok(u)
                if schemes.contains(&u.scheme()) && u.host_str().is_some_and(|h| !h.is_empty()) => {
            }
            Ok(u) if !schemes.contains(&u.scheme()) => self.check(
                false,
                || field.to_string(),
                format!(
                    "scheme {:?} is not supported; use one of {}",
                    u.scheme(),
                    schemes.join(", ")
                ),
            ),
            _ => self.check(
                false,
                || field.to_string(),
                "must be an absolute URL with a host",
            ),
        }
    }

    fn rect_within(&mut self, field: &str, r: &Rect, canvas_w: u32, canvas_h: u32) {
        self.check(
            r.width >= 2,
            || format!("{field}.width"),
            "must be at least 2",
        );
        self.check(
            r.height >= 2,
            || format!("{field}.height"),
            "must be at least 2",
        );
        self.check(r.x >= 0, || format!("{field}.x"), "must not be negative");
        self.check(r.y >= 0, || format!("{field}.y"), "must not be negative");
        if r.x >= 0 && r.width >= 2 {
            self.check(
                r.x as u64 + u64::from(r.width) <= u64::from(canvas_w),
                || format!("{field}.width"),
                format!("x + width must be at most the canvas width {canvas_w}"),
            );
        }
        if r.y >= 0 && r.height >= 2 {
            self.check(
                r.y as u64 + u64::from(r.height) <= u64::from(canvas_h),
                || format!("{field}.height"),
                format!("y + height must be at most the canvas height {canvas_h}"),
            );
        }
    }

    fn image_location(&mut self, field: &str, image: &str) {
        if image.starts_with("http://") || image.starts_with("https://") {
            self.url(field, image, &["http", "https"]);
        } else if has_control(image) {
            self.check(false, || field.to_string(), NO_CONTROL);
        } else {
            self.check(
                is_file_path(image),
                || field.to_string(),
                "must be a file path or an http(s) URL",
            );
        }
    }
}

impl MixSpec {
    /// Returns every violated rule, or `Ok` when the spec can be run.
    pub fn validate(&self, limits: &Limits) -> Result<(), Vec<Violation>> {
        let mut c = Checker(Vec::new());
        let cv = &self.canvas;
        for (name, v) in [("width", cv.width), ("height", cv.height)] {
            c.check(
                (16..=MAX_DIMENSION).contains(&v) && v % 2 == 0,
                || format!("canvas.{name}"),
                format!("must be an even number from 16 to {MAX_DIMENSION}"),
            );
        }
        c.check(
            (1..=60).contains(&cv.fps),
            || "canvas.fps".into(),
            "must be from 1 to 60",
        );
        if let Some(image) = &cv.background_image {
            c.image_location("canvas.background_image", image);
        }

        c.check(
            self.inputs.len() <= limits.max_inputs,
            || "inputs".into(),
            format!("at most {} inputs per mix", limits.max_inputs),
        );
        let mut ids = HashSet::new();
        for (i, input) in self.inputs.iter().enumerate() {
            self.validate_input(&mut c, &format!("inputs[{i}]"), input);
            c.check(
                ids.insert(input.id.as_str()),
                || format!("inputs[{i}].id"),
                "must be unique within the mix",
            );
        }

        c.check(
            self.overlays.len() <= limits.max_overlays,
            || "overlays".into(),
            format!("at most {} overlays per mix", limits.max_overlays),
        );
        let mut ids = HashSet::new();
        for (i, o) in self.overlays.iter().enumerate() {
            self.validate_overlay(&mut c, &format!("overlays[{i}]"), o);
            c.check(
                ids.insert(o.id.as_str()),
                || format!("overlays[{i}].id"),
                "must be unique within the mix",
            );
        }

        if self.sei.user_data_base64.is_some() {
            c.check(
                self.sei
                    .user_data()
                    .is_some_and(|d| (1..=MAX_SEI_BYTES).contains(&d.len())),
                || "sei.user_data_base64".into(),
                format!("must be base64 of 1 to {MAX_SEI_BYTES} bytes"),
            );
        }
        c.check(
            (1..=limits.max_outputs).contains(&self.outputs.len()),
            || "outputs".into(),
            format!("must list 1 to {} outputs", limits.max_outputs),
        );
        let mut targets = HashSet::new();
        for (i, o) in self.outputs.iter().enumerate() {
            validate_output(&mut c, &format!("outputs[{i}]"), o);
            c.check(
                targets.insert(&o.target),
                || format!("outputs[{i}].target"),
                "must be unique within the mix",
            );
        }

        if c.0.is_empty() {
            Ok(())
        } else {
            Err(c.0)
        }
    }

    fn validate_input(&self, c: &mut Checker, path: &str, input: &InputSpec) {
        c.id(&format!("{path}.id"), &input.id);
        match &input.source {
            Source::StreamId(id) => c.id(&format!("{path}.source.stream_id"), id),
            Source::Url(u) => c.url(
                &format!("{path}.source.url"),
                u,
                &["rtmp", "rtmps", "http", "https"],
            ),
        }
        c.check(
            input.layer <= 1000,
            || format!("{path}.layer"),
            "must be from 0 to 1000",
        );
        if let Some(r) = &input.rect {
            c.rect_within(
                &format!("{path}.rect"),
                r,
                self.canvas.width,
                self.canvas.height,
            );
        }
        if let Some(r) = &input.crop {
            c.check(
                r.x >= 0,
                || format!("{path}.crop.x"),
                "must not be negative",
            );
            c.check(
                r.y >= 0,
                || format!("{path}.crop.y"),
                "must not be negative",
            );
            c.check(
                r.width >= 2,
                || format!("{path}.crop.width"),
                "must be at least 2",
            );
            c.check(
                r.height >= 2,
                || format!("{path}.crop.height"),
                "must be at least 2",
            );
        }
        let rect = self.input_rect(input);
        c.check(
            input.corner_radius <= rect.width.min(rect.height) / 2,
            || format!("{path}.corner_radius"),
            "must be at most half the rectangle's shorter side",
        );
        c.check(
            input.volume <= 200,
            || format!("{path}.volume"),
            "must be between 0 and 200",
        );
        if let Some(l) = &input.label {
            c.check(
                !l.text.is_empty()
                    && l.text.chars().count() <= MAX_LABEL_LEN
                    && !l.text.contains(['\n', '\r']),
                || format!("{path}.label.text"),
                format!("must be one line of 1 to {MAX_LABEL_LEN} characters"),
            );
            c.check(
                (6..=200).contains(&l.font_size),
                || format!("{path}.label.font_size"),
                "must be from 6 to 200",
            );
            c.check(
                l.opacity <= 100,
                || format!("{path}.label.opacity"),
                "must be between 0 and 100",
            );
            c.check(
                l.x >= 0 && (l.x as u32) < rect.width,
                || format!("{path}.label.x"),
                "must lie inside the input's rectangle",
            );
            c.check(
                l.y >= 0 && (l.y as u32) < rect.height,
                || format!("{path}.label.y"),
                "must lie inside the input's rectangle",
            );
        }
    }

    fn validate_overlay(&self, c: &mut Checker, path: &str, o: &ImageOverlay) {
        c.id(&format!("{path}.id"), &o.id);
        match (&o.color, o.image.is_empty()) {
            (None, false) => c.image_location(&format!("{path}.image"), &o.image),
            (Some(_), true) => {}
            _ => c.check(
                false,
                || format!("{path}.image"),
                "exactly one of image and color must be given",
            ),
        }
        c.rect_within(
            &format!("{path}.rect"),
            &o.rect,
            self.canvas.width,
            self.canvas.height,
        );
        c.check(
            o.layer <= 1000,
            || format!("{path}.layer"),
            "must be from 0 to 1000",
        );
    }
}

fn validate_output(c: &mut Checker, path: &str, o: &OutputSpec) {
    match &o.target {
        Target::StreamId(id) => c.id(&format!("{path}.target.stream_id"), id),
        Target::Url(u) => c.url(&format!("{path}.target.url"), u, &["rtmp", "rtmps"]),
    }
    // An audio-only output (`video: None`) has no video rules; its mix may still have inputs of any content.
    if let Some(v) = &o.video {
        c.check(
            (100..=50_000).contains(&v.bitrate_kbps),
            || format!("{path}.video.bitrate_kbps"),
            "must be from 100 to 50000",
        );
        if let Some(fps) = v.fps {
            c.check(
                (1..=60).contains(&fps),
                || format!("{path}.video.fps"),
                "must be from 1 to 60",
            );
        }
        c.check(
            (1..=10).contains(&v.gop_s),
            || format!("{path}.video.gop_s"),
            "must be from 1 to 10",
        );
        c.check(
            v.codec == crate::model::VideoCodec::H265
                || v.flv_form == crate::model::FlvVideoForm::default(),
            || format!("{path}.video.flv_form"),
            "applies to h265 outputs only (H.264 is always written with codec id 7)",
        );
    }
    let a = &o.audio;
    c.check(
        (16..=320).contains(&a.bitrate_kbps),
        || format!("{path}.audio.bitrate_kbps"),
        "must be from 16 to 320",
    );
    c.check(
        AAC_RATES.contains(&a.sample_rate),
        || format!("{path}.audio.sample_rate"),
        "must be one of 8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000, 64000, 88200, 96000",
    );
    c.check(
        (1..=2).contains(&a.channels),
        || format!("{path}.audio.channels"),
        "must be 1 or 2",
    );
    if a.codec == crate::model::AudioCodec::Mp3 {
        c.check(
            [11_025, 22_050, 44_100].contains(&a.sample_rate),
            || format!("{path}.audio.sample_rate"),
            "MP3 over FLV must be 11025, 22050 or 44100",
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Label, OutputSpec};

    fn base() -> MixSpec {
        MixSpec {
            canvas: Default::default(),
            inputs: vec![InputSpec::new("a", Source::StreamId("a".into()))],
            overlays: vec![],
            outputs: vec![OutputSpec::new(Target::StreamId("out".into()))],
            sei: Default::default(),
        }
    }

    fn fields(spec: &MixSpec) -> Vec<String> {
        spec.validate(&Limits::default())
            .unwrap_err()
            .into_iter()
            .map(|v| v.field)
            .collect()
    }

    #[test]
    fn base_spec_is_valid() {
        base().validate(&Limits::default()).unwrap();
    }

    #[test]
    fn reports_every_violation_with_its_path() {
        let mut s = base();
        s.canvas.width = 641;
        s.inputs[0].volume = 201;
        s.inputs[0].rect = Some(Rect::new(1200, 0, 200, 100));
        s.inputs
            .push(InputSpec::new("a", Source::Url("ftp://x/y".into())));
        s.outputs[0].audio.channels = 3;
        let f = fields(&s);
        for want in [
            "canvas.width",
            "inputs[0].volume",
            "inputs[0].rect.width",
            "inputs[1].source.url",
            "inputs[1].id",
            "outputs[0].audio.channels",
        ] {
            assert!(f.contains(&want.to_string()), "missing {want} in {f:?}");
        }
    }

    /// Control characters survive in the string the engine uses (URL parsing drops tabs and line breaks, so a
    /// parsed URL looks fine): refused in URLs and file paths.
    #[test]
    fn control_characters_are_refused() {
        let mut s = base();
        s.inputs[0].source = Source::Url("rtmp://h/live/a\nb".into());
        s.outputs[0].target = Target::Url("rtmp://h/mix/o\r".into());
        s.canvas.background_image = Some("/srv/bg\u{1}.png".into());
        assert_eq!(
            fields(&s),
            [
                "canvas.background_image",
                "inputs[0].source.url",
                "outputs[0].target.url"
            ]
        );
    }

    /// `.` and `..` are refused as ids: ordinary HTTP clients cannot name them in a path.
    #[test]
    fn dot_ids_are_refused() {
        for id in [".", ".."] {
            let mut s = base();
            s.inputs[0].id = id.into();
            s.outputs[0].target = Target::StreamId(id.into());
            assert_eq!(fields(&s), ["inputs[0].id", "outputs[0].target.stream_id"]);
        }
        let mut s = base();
        s.inputs[0].id = "a..b".into();
        s.validate(&Limits::default()).unwrap();
    }

    #[test]
    fn unsupported_scheme_is_named() {
        let mut s = base();
        s.inputs[0].source = Source::Url("file:///etc/passwd".into());
        let v = s.validate(&Limits::default()).unwrap_err();
        assert!(v[0].rule.contains("\"file\""), "{v:?}");
    }

    #[test]
    fn limits_and_labels() {
        let mut s = base();
        s.outputs.clear();
        s.inputs[0].corner_radius = 400;
        s.inputs[0].label = Some(Label {
            text: "x".repeat(300),
            font_size: 2,
            color: crate::model::Color::WHITE,
            opacity: 101,
            x: -1,
            y: 0,
        });
        let f = fields(&s);
        for want in [
            "outputs",
            "inputs[0].corner_radius",
            "inputs[0].label.text",
            "inputs[0].label.font_size",
            "inputs[0].label.opacity",
            "inputs[0].label.x",
        ] {
            assert!(f.contains(&want.to_string()), "missing {want} in {f:?}");
        }
        let limits = Limits {
            max_inputs: 0,
            ..Limits::default()
        };
        assert!(base().validate(&limits).unwrap_err()[0].field == "inputs");
    }

    #[test]
    fn absent_video_is_the_default_encoding_and_null_is_audio_only() {
        let absent: OutputSpec = serde_json::from_str(r#"{"target": {"stream_id": "o"}}"#).unwrap();
        assert_eq!(absent.video, Some(crate::model::VideoEncoding::default()));
        assert_eq!(absent, OutputSpec::new(Target::StreamId("o".into())));
        let null: OutputSpec =
            serde_json::from_str(r#"{"target": {"stream_id": "o"}, "video": null}"#).unwrap();
        assert_eq!(null.video, None);
        assert_eq!(null, OutputSpec::audio_only(Target::StreamId("o".into())));
        let given: OutputSpec = serde_json::from_str(
            r#"{"target": {"stream_id": "o"}, "video": {"bitrate_kbps": 800}}"#,
        )
        .unwrap();
        assert_eq!(given.video.as_ref().map(|v| v.bitrate_kbps), Some(800));
        // An audio-only output is written back as an explicit null, so it reads back as audio only.
        let json = serde_json::to_value(&null).unwrap();
        assert_eq!(json["video"], serde_json::Value::Null);
        assert_eq!(serde_json::from_value::<OutputSpec>(json).unwrap(), null);
        let json = serde_json::to_value(&absent).unwrap();
        assert_eq!(serde_json::from_value::<OutputSpec>(json).unwrap(), absent);
    }

    #[test]
    fn audio_only_outputs() {
        // Every output audio-only: inputs of any content are fine.
        let mut s = base();
        s.outputs = vec![
            OutputSpec::audio_only(Target::StreamId("o1".into())),
            OutputSpec::audio_only(Target::StreamId("o2".into())),
        ];
        s.inputs[0].content = crate::model::Content::Video;
        for (id, content) in [
            ("b", crate::model::Content::Audio),
            ("c", crate::model::Content::Av),
        ] {
            let mut i = InputSpec::new(id, Source::StreamId(id.into()));
            i.content = content;
            s.inputs.push(i);
        }
        assert!(!s.has_video_output());
        s.validate(&Limits::default()).unwrap();
        // Next to a video output: the video rules apply to it alone, the audio rules to both.
        s.outputs[0] = OutputSpec::new(Target::StreamId("o1".into()));
        assert!(s.has_video_output());
        if let Some(v) = s.outputs[0].video.as_mut() {
            v.bitrate_kbps = 10;
        }
        s.outputs[1].audio.channels = 3;
        assert_eq!(
            s.validate(&Limits::default()).unwrap_err(),
            vec![
                Violation {
                    field: "outputs[0].video.bitrate_kbps".into(),
                    rule: "must be from 100 to 50000".into(),
                },
                Violation {
                    field: "outputs[1].audio.channels".into(),
                    rule: "must be 1 or 2".into(),
                },
            ]
        );
    }
}
