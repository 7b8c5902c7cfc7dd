//! The core model's field paths (`inputs[0].source.stream_id`) in a StartMix request's own names
//! (`MixInput[0].StreamId`), for parameter errors: a ZEGO caller never sees the native model's paths. Inputs and
//! outputs keep their index (the translation keeps ZEGO's order); the one overlay is the watermark.

/// The StartMix field closest to the model's `path`. A path already in ZEGO's names (the private-source check
/// names them so) is kept.
pub fn zego_field(path: &str) -> String {
    if path.starts_with(|c: char| c.is_ascii_uppercase()) {
        return path.to_string();
    }
    if let Some((n, rest)) = indexed(path, "inputs") {
        let field = match rest {
            ".source.stream_id" => ".StreamId",
            ".source.url" => ".StreamUrl",
            ".volume" => ".Volume",
            ".layer" => ".RectInfo.Layer",
            ".corner_radius" => ".RectInfo.CornerRadius",
            ".label.text" => ".Label.Text",
            ".label.font_size" => ".Label.Font.FontSize",
            ".label.opacity" => ".Label.Font.Transparency",
            ".label.color" => ".Label.Font.FontColor",
            ".label.x" => ".Label.Left",
            ".label.y" => ".Label.Top",
            ".sound_level_id" => ".SoundLevelId",
            ".fit" => ".RenderMode",
            ".content" => ".ContentControl",
            r if r.starts_with(".rect") || r.starts_with(".crop") => ".RectInfo",
            r if r.starts_with(".label") => ".Label",
            _ => "",
        };
        return format!("MixInput[{n}]{field}");
    }
    if let Some((n, rest)) = indexed(path, "outputs") {
        let field = match rest {
            ".target.stream_id" => ".StreamId",
            ".target.url" => ".StreamUrl",
            ".video.bitrate_kbps" => ".VideoBitrate",
            ".video.fps" => ".Fps",
            r if r.starts_with(".video") => ".VideoEncId",
            ".audio.bitrate_kbps" => ".AudioBitrate",
            ".audio.channels" => ".SoundChannel",
            r if r.starts_with(".audio") => ".AudioCodec",
            _ => "",
        };
        return format!("MixOutput[{n}]{field}");
    }
    if let Some((_, rest)) = indexed(path, "overlays") {
        return match rest {
            ".image" => "WaterMark.Image",
            r if r.starts_with(".rect") => "WaterMark.RectInfo",
            _ => "WaterMark",
        }
        .to_string();
    }
    match path {
        "inputs" => "MixInput",
        "outputs" => "MixOutput",
        "overlays" => "WaterMark",
        "canvas.width" => "MixOutput[0].Width",
        "canvas.height" => "MixOutput[0].Height",
        "canvas.fps" => "MixOutput[0].Fps",
        "canvas.background" => "BackGroundColorHex",
        "canvas.background_image" => "BackgroundImage",
        p if p.starts_with("sei.user_data") => "UserData",
        p if p.starts_with("sei") => "SoundLevel",
        _ => "a parameter",
    }
    .to_string()
}

/// `list[N]rest` → `(N, rest)`.
fn indexed<'a>(path: &'a str, list: &str) -> Option<(usize, &'a str)> {
    let (n, rest) = path
        .strip_prefix(list)?
        .strip_prefix('[')?
        .split_once(']')?;
    Some((n.parse().ok()?, rest))
}

#[cfg(test)]
mod tests {
    use super::zego_field;

    #[test]
    fn model_paths_become_startmix_fields() {
        for (model, zego) in [
            ("inputs[0].source.stream_id", "MixInput[0].StreamId"),
            ("inputs[3].source.url", "MixInput[3].StreamUrl"),
            ("inputs[1].rect.width", "MixInput[1].RectInfo"),
            (
                "inputs[1].label.font_size",
                "MixInput[1].Label.Font.FontSize",
            ),
            ("inputs[2].id", "MixInput[2]"),
            ("inputs", "MixInput"),
            ("outputs[0].target.url", "MixOutput[0].StreamUrl"),
            ("outputs[2].target.stream_id", "MixOutput[2].StreamId"),
            ("outputs[1].video.bitrate_kbps", "MixOutput[1].VideoBitrate"),
            ("outputs[1].audio.sample_rate", "MixOutput[1].AudioCodec"),
            ("canvas.width", "MixOutput[0].Width"),
            ("canvas.background_image", "BackgroundImage"),
            ("overlays[0].image", "WaterMark.Image"),
            ("overlays[0].rect.x", "WaterMark.RectInfo"),
            ("sei.user_data_base64", "UserData"),
            ("MixInput[1].StreamUrl", "MixInput[1].StreamUrl"),
            ("something.new", "a parameter"),
        ] {
            assert_eq!(zego_field(model), zego, "{model}");
        }
    }
}
