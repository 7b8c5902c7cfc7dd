//! Scenes: `benches/scenes/index.toml` names, per scene, the native-API specs it runs (mix specs, or one relay
//! spec) and the picture size of every input stream. A scene can be run N times at once (capacity): copy `k`
//! pulls its own streams (`<stream>-k`) and publishes its own outputs, so no contender can share work between
//! copies that real customers' mixes would not share.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

use serde::Deserialize;
use tessera::model::{geometry, MixSpec, Source};

use crate::media::{self, Size};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Index {
    scene: BTreeMap<String, SceneDef>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SceneDef {
    about: String,
    #[serde(default)]
    mixes: Vec<String>,
    relay: Option<String>,
    streams: BTreeMap<String, String>,
}

#[derive(Clone)]
pub struct Scene {
    pub name: String,
    pub about: String,
    /// The mixes, as JSON (what is PUT to Tessera) and parsed (what the references are derived from).
    pub mixes: Vec<(serde_json::Value, MixSpec)>,
    /// A relay project instead of mixes.
    pub relay: Option<serde_json::Value>,
    /// Input stream name → picture size.
    pub streams: BTreeMap<String, Size>,
}

pub fn load_all(dir: &Path) -> Result<Vec<Scene>, String> {
    let index_path = dir.join("index.toml");
    let text = std::fs::read_to_string(&index_path)
        .map_err(|e| format!("{}: {e}", index_path.display()))?;
    let index: Index =
        toml::from_str(&text).map_err(|e| format!("{}: {e}", index_path.display()))?;
    let read = |f: &str| -> Result<serde_json::Value, String> {
        let p: PathBuf = dir.join(f);
        let t = std::fs::read_to_string(&p).map_err(|e| format!("{}: {e}", p.display()))?;
        serde_json::from_str(&t).map_err(|e| format!("{}: {e}", p.display()))
    };
    let mut scenes = Vec::new();
    for (name, def) in index.scene {
        let mut mixes = Vec::new();
        for f in &def.mixes {
            let json = read(f)?;
            let spec: MixSpec =
                serde_json::from_value(json.clone()).map_err(|e| format!("{f}: {e}"))?;
            mixes.push((json, spec));
        }
        let relay = def.relay.as_deref().map(read).transpose()?;
        if mixes.is_empty() == relay.is_none() {
            return Err(format!("scene {name}: give either mixes or a relay"));
        }
        let streams = def
            .streams
            .iter()
            .map(|(k, v)| Ok((k.clone(), v.parse()?)))
            .collect::<Result<_, String>>()?;
        scenes.push(Scene {
            name,
            about: def.about,
            mixes,
            relay,
            streams,
        });
    }
    Ok(scenes)
}

/// Copy `k`'s name of a stream.
pub fn stream_of(stream: &str, k: usize) -> String {
    format!("{stream}-{k}")
}

/// Where a stamp point of an input's source lands in an output, given the input's placement.
fn map_point(size: Size, p: &geometry::Placement, (sx, sy): (f64, f64)) -> (u32, u32) {
    let cw = f64::from(size.w - p.crop_left - p.crop_right);
    let ch = f64::from(size.h - p.crop_top - p.crop_bottom);
    let x = f64::from(p.x) + (sx - f64::from(p.crop_left)) * f64::from(p.width) / cw;
    let y = f64::from(p.y) + (sy - f64::from(p.crop_top)) * f64::from(p.height) / ch;
    (x.max(0.0) as u32, y.max(0.0) as u32)
}

/// What one mix of copy `k` needs: its spec for Tessera, the references' arguments, and where each input's
/// stamp lands in its output.
pub struct MixPlan {
    pub tessera: serde_json::Value,
    pub output_stream: String,
    /// `WxH`, `RRGGBB`, then one argument per input (bottom layer first).
    pub reference_args: Vec<String>,
    pub video_kbps: u32,
    pub stamps: Vec<StampSpot>,
}

/// Where one input's stamp is read in an output.
#[derive(Clone)]
pub struct StampSpot {
    /// The input's id in the mix (the report's name for it).
    pub input: String,
    /// The stream it is pulled from: its publisher knows when each frame was sent.
    pub stream: String,
    /// Output pixel positions of the 16 stamp blocks.
    pub points: Vec<(u32, u32)>,
}

impl Scene {
    pub fn is_relay(&self) -> bool {
        self.relay.is_some()
    }

    /// The plans of copy `k`'s mixes; `tag` names the contender in output stream names.
    pub fn mix_plans(&self, k: usize, tag: &str) -> Vec<MixPlan> {
        self.mixes
            .iter()
            .enumerate()
            .map(|(m, (json, spec))| {
                let output_stream = format!("{tag}-{}-{m}-{k}", self.name);
                let mut tessera = json.clone();
                for (i, input) in spec.inputs.iter().enumerate() {
                    if let Source::StreamId(s) = &input.source {
                        tessera["inputs"][i]["source"] =
                            serde_json::json!({ "stream_id": stream_of(s, k) });
                    }
                }
                tessera["outputs"] = serde_json::json!([{
                    "target": {"stream_id": output_stream},
                    "video": json["outputs"][0]["video"],
                    "audio": json["outputs"][0]["audio"],
                }]);
                let mut inputs: Vec<_> = spec.inputs.iter().enumerate().collect();
                // Layer order, list order among equals: what Tessera draws, bottom first.
                inputs.sort_by_key(|(i, input)| (input.layer, *i));
                let mut reference_args = vec![
                    format!("{}x{}", spec.canvas.width, spec.canvas.height),
                    format!("{:06X}", spec.canvas.background.argb() & 0xFF_FFFF),
                ];
                let mut stamps = Vec::new();
                for (_, input) in inputs {
                    let Source::StreamId(s) = &input.source else {
                        continue;
                    };
                    let size = self.streams[s];
                    let rect = input.rect.expect("bench scenes give every input a rect");
                    let mut arg = format!(
                        "{}:{},{},{},{}:{}",
                        stream_of(s, k),
                        rect.x,
                        rect.y,
                        rect.width,
                        rect.height,
                        input.volume
                    );
                    if let Some(c) = input.crop {
                        arg += &format!(
                            ":{},{},{},{},{},{}",
                            c.x, c.y, c.width, c.height, size.w, size.h
                        );
                    }
                    reference_args.push(arg);
                    let placement = geometry::place(size.w, size.h, input.crop, rect, input.fit);
                    let points = media::stamp_points(size)
                        .into_iter()
                        .map(|p| map_point(size, &placement, p))
                        .collect();
                    stamps.push(StampSpot {
                        input: input.id.clone(),
                        stream: stream_of(s, k),
                        points,
                    });
                }
                let video_kbps = spec.outputs[0]
                    .video
                    .as_ref()
                    .map_or(2500, |v| v.bitrate_kbps);
                MixPlan {
                    tessera,
                    output_stream,
                    reference_args,
                    video_kbps,
                    stamps,
                }
            })
            .collect()
    }

    /// Copy `k`'s relay: Tessera's project JSON (outputs on `base`), the input stream and the output streams.
    pub fn relay_plan(
        &self,
        k: usize,
        tag: &str,
        base: &str,
    ) -> (serde_json::Value, String, Vec<String>) {
        let mut json = self.relay.clone().expect("a relay scene");
        let main = json["main"]["push"].as_str().unwrap_or("a").to_string();
        json["main"] = serde_json::json!({ "push": stream_of(&main, k) });
        let mut outs = Vec::new();
        if let Some(list) = json["outputs"].as_array_mut() {
            for (o, out) in list.iter_mut().enumerate() {
                let stream = format!("{tag}-{}-{o}-{k}", self.name);
                out["url"] = serde_json::json!(format!("{base}/mix/{stream}"));
                outs.push(stream);
            }
        }
        (json, stream_of(&main, k), outs)
    }
}
