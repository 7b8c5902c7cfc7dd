//! The native API's OpenAPI document (`GET /openapi.json`), derived from the wire types (`ToSchema`) and the
//! handlers' `#[utoipa::path]` attributes, so it describes what serde reads and writes. Built once, on first use.

use std::sync::OnceLock;

use utoipa::{
    openapi::{
        schema::{AdditionalProperties, Schema, Type},
        RefOr,
    },
    Modify, OpenApi, ToSchema,
};

use super::{error::RateLimited, events, native, pictures, preview, relays};
use crate::{
    model::{Source, Target},
    relay::RelayInput,
};

/// Ids of mixes, relay projects, pictures, inputs, overlays and relay outputs.
pub const ID_PATTERN: &str = "^[A-Za-z0-9._~-]{1,128}$";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Tessera native API",
        description = "Create, update, inspect and stop live mixes; relay live streams to many RTMP targets; \
            upload the pictures requests name by id. Vendor dialects (Tencent, ZEGO) share the listener and map \
            onto the same model; they are not described here: Tencent Cloud API 3.0 (`POST /` with an \
            `X-TC-Action` header), ZEGO's server API (`/?Action=...`) and Tencent's legacy CGI \
            (`POST /common_access`).\n\nEvery error of this API has the shape \
            `{\"error\": {\"code\", \"message\", \"details\"}}` (schema `ErrorBody`).",
    ),
    paths(
        super::healthz,
        super::readyz,
        super::openapi,
        native::list,
        native::create,
        native::get_one,
        native::put,
        native::delete,
        relays::list,
        relays::get_one,
        relays::put,
        relays::delete,
        relays::start,
        relays::stop,
        relays::switch,
        preview::mix_snapshot,
        preview::mix_input_snapshot,
        preview::mix_live,
        preview::relay_input_snapshot,
        preview::relay_live,
        pictures::list,
        pictures::get_one,
        pictures::put,
        pictures::delete,
        events::events,
        super::metrics::metrics,
        super::reload::reload_route,
        super::cluster::show,
        super::cluster::drain,
    ),
    components(responses(RateLimited)),
    modifiers(&ExternallyTagged, &Secured),
    tags(
        (name = "mixes", description = "Live mixes: inputs composited on a canvas, mixed and encoded, pushed to outputs."),
        (name = "relays", description = "Relay projects: one live source (main and optional backup input) pushed, without re-encoding, to up to 10 RTMP targets."),
        (name = "pictures", description = "Pictures that requests name by id (watermarks, logos): configured in [pictures] or uploaded."),
        (name = "events", description = "What happens to mixes and relays, as it happens."),
        (name = "health", description = "Liveness, readiness, metrics and this document."),
        (name = "cluster", description = "Many nodes behind one endpoint (docs/cluster.md): the nodes, who runs what, and draining a node."),
    )
)]
struct ApiDoc;

/// serde reads an externally tagged enum (`{"variant": ...}`) as an object of exactly one key, and refuses
/// unknown fields in a struct variant under `deny_unknown_fields`; utoipa's `oneOf` branches allow any other key.
/// This closes them, for the enums that are read.
struct ExternallyTagged;

impl Modify for ExternallyTagged {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let schemas = &mut doc
            .components
            .as_mut()
            .expect("the document has components")
            .schemas;
        for name in [Source::name(), Target::name(), RelayInput::name()] {
            let Some(RefOr::T(Schema::OneOf(one_of))) = schemas.get_mut(name.as_ref()) else {
                panic!("{name} is a oneOf of its variants");
            };
            for variant in &mut one_of.items {
                let RefOr::T(Schema::Object(variant)) = variant else {
                    panic!("{name}'s variants are inline objects");
                };
                variant.additional_properties =
                    Some(Box::new(AdditionalProperties::FreeForm(false)));
                for value in variant.properties.values_mut() {
                    if let RefOr::T(Schema::Object(fields)) = value {
                        if fields.schema_type == Type::Object.into() {
                            fields.additional_properties =
                                Some(Box::new(AdditionalProperties::FreeForm(false)));
                        }
                    }
                }
            }
        }
    }
}

/// Bearer tokens (`[server] api_tokens`): when the node has any, every `/v1/` operation needs one (401 without,
/// 403 for a read-only token that asks to change something).
struct Secured;

impl Modify for Secured {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::{
            security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme},
            ResponseBuilder,
        };
        let components = doc
            .components
            .as_mut()
            .expect("the document has components");
        components.add_security_scheme(
            "token",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "A token of [server] api_tokens (or read_only_tokens, for GET only); only when the node \
                         has tokens",
                    ))
                    .build(),
            ),
        );
        let error = |what: &str| {
            ResponseBuilder::new()
                .description(what)
                .content(
                    "application/json",
                    utoipa::openapi::ContentBuilder::new()
                        .schema(Some(RefOr::Ref(utoipa::openapi::Ref::from_schema_name(
                            "ErrorBody",
                        ))))
                        .build(),
                )
                .build()
        };
        for (path, item) in doc.paths.paths.iter_mut() {
            if !path.starts_with("/v1/") {
                continue;
            }
            for op in [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
            ]
            .into_iter()
            .flatten()
            {
                op.security = Some(vec![SecurityRequirement::new(
                    "token",
                    Vec::<String>::new(),
                )]);
                op.responses.responses.insert(
                    "401".into(),
                    RefOr::T(error("no token, or not one of the node's (unauthorized)")),
                );
                op.responses.responses.insert(
                    "403".into(),
                    RefOr::T(error(
                        "a read-only token asked to change something (forbidden)",
                    )),
                );
            }
        }
    }
}

/// The document as a value.
pub fn document() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

/// The document as `GET /openapi.json` serves it.
pub fn json() -> &'static str {
    static JSON: OnceLock<String> = OnceLock::new();
    JSON.get_or_init(|| {
        document()
            .to_pretty_json()
            .expect("the OpenAPI document serialises")
    })
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use crate::{
        model::{Limits, MixSpec},
        relay::RelaySpec,
    };

    fn doc() -> Value {
        serde_json::from_str(super::json()).expect("the document is JSON")
    }

    /// The schema `v` stands for: through `$ref`s, single-branch `oneOf`s and the non-null branch of a nullable
    /// `oneOf`.
    fn resolve<'a>(doc: &'a Value, mut v: &'a Value) -> &'a Value {
        loop {
            if let Some(r) = v.get("$ref").and_then(Value::as_str) {
                let name = r
                    .strip_prefix("#/components/schemas/")
                    .expect("a local ref");
                v = &doc["components"]["schemas"][name];
            } else if let Some(branches) = v.get("oneOf").and_then(Value::as_array) {
                let real: Vec<&Value> = branches.iter().filter(|b| b["type"] != "null").collect();
                if real.len() != 1 {
                    return v;
                }
                v = real[0];
            } else {
                return v;
            }
        }
    }

    /// The schema of property `key` of the object schema `v`, in whichever `oneOf` branch names it.
    fn property<'a>(doc: &'a Value, v: &'a Value, key: &str) -> Option<&'a Value> {
        let v = resolve(doc, v);
        if let Some(p) = v.get("properties").and_then(|p| p.get(key)) {
            return Some(p);
        }
        v.get("oneOf")?
            .as_array()?
            .iter()
            .find_map(|b| property(doc, b, key))
    }

    #[derive(Clone, Debug)]
    enum Step {
        Key(String),
        Index(usize),
    }

    /// Every value in `instance` with the schema that describes it and its path as violations name it
    /// (`inputs[0].rect.width`).
    fn nodes<'a>(
        doc: &'a Value,
        schema: &'a Value,
        instance: &Value,
        at: (String, Vec<Step>),
        out: &mut Vec<(String, Vec<Step>, &'a Value)>,
    ) {
        let schema = resolve(doc, schema);
        out.push((at.0.clone(), at.1.clone(), schema));
        match instance {
            Value::Object(fields) => {
                for (key, value) in fields {
                    let field = property(doc, schema, key)
                        .unwrap_or_else(|| panic!("{}: no schema for {key:?}", at.0));
                    let name = if at.0.is_empty() {
                        key.clone()
                    } else {
                        format!("{}.{key}", at.0)
                    };
                    let mut steps = at.1.clone();
                    steps.push(Step::Key(key.clone()));
                    nodes(doc, field, value, (name, steps), out);
                }
            }
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    let mut steps = at.1.clone();
                    steps.push(Step::Index(i));
                    nodes(
                        doc,
                        &schema["items"],
                        item,
                        (format!("{}[{i}]", at.0), steps),
                        out,
                    );
                }
            }
            _ => {}
        }
    }

    fn at_mut<'v>(mut v: &'v mut Value, steps: &[Step]) -> &'v mut Value {
        for step in steps {
            v = match step {
                Step::Key(k) => &mut v[k.as_str()],
                Step::Index(i) => &mut v[*i],
            };
        }
        v
    }

    /// Values at and past each bound the schema states for a node (`current` is its value in the base instance):
    /// (value, whether the schema admits it).
    fn probes(schema: &Value, current: &Value) -> Vec<(Value, bool)> {
        let int = |k: &str| schema.get(k).and_then(Value::as_i64);
        let mut out = Vec::new();
        if let Some(min) = int("minimum") {
            out.extend([(json!(min), true), (json!(min - 1), false)]);
            // Bounds are multiples where a `multipleOf` is stated, so the next value is not.
            if int("multipleOf").is_some_and(|m| m > 1) {
                out.push((json!(min + 1), false));
            }
        }
        if let Some(max) = int("maximum") {
            out.extend([(json!(max), true), (json!(max + 1), false)]);
        }
        let text = |n: i64| json!("x".repeat(n as usize));
        if let Some(min) = int("minLength") {
            out.push((text(min), true));
            if min > 0 {
                out.push((text(min - 1), false));
            }
        }
        if let Some(max) = int("maxLength") {
            out.extend([(text(max), true), (text(max + 1), false)]);
        }
        let items = |n: i64| Value::Array(vec![current[0].clone(); n as usize]);
        if let Some(min) = int("minItems") {
            out.push((items(min), true));
            if min > 0 {
                out.push((items(min - 1), false));
            }
        }
        if let Some(max) = int("maxItems") {
            out.extend([(items(max), true), (items(max + 1), false)]);
        }
        out
    }

    /// Every bound the schema of `root` states on a field of `base` is the one serde and validation enforce:
    /// the bound itself is accepted for that field, one step past it is refused (by serde or with a violation
    /// naming that field). Returns the fields checked.
    fn check_bounds(
        root: &str,
        base: Value,
        refused: impl Fn(&Value, &str) -> bool,
    ) -> Vec<String> {
        let doc = doc();
        let schema = json!({ "$ref": format!("#/components/schemas/{root}") });
        let mut all = Vec::new();
        nodes(&doc, &schema, &base, (String::new(), Vec::new()), &mut all);
        assert!(!refused(&base, ""), "the base {root} is valid");
        let mut checked = Vec::new();
        let mut wrong = Vec::new();
        for (field, steps, node) in all {
            let current = at_mut(&mut base.clone(), &steps).clone();
            let probes = probes(node, &current);
            if probes.is_empty() {
                continue;
            }
            for (value, admitted) in probes {
                let mut instance = base.clone();
                *at_mut(&mut instance, &steps) = value.clone();
                if refused(&instance, &field) == admitted {
                    let said = if admitted { "admits" } else { "refuses" };
                    wrong.push(format!(
                        "{field} = {value}: the schema {said} it, the server does not"
                    ));
                }
            }
            checked.push(field);
        }
        assert!(
            wrong.is_empty(),
            "{root}'s bounds disagree with validation:\n{}",
            wrong.join("\n")
        );
        checked
    }

    #[test]
    fn mix_spec_bounds_are_what_validation_enforces() {
        let base = json!({
            "canvas": {"width": 1280, "height": 720, "fps": 30, "background": "#000000", "background_image": "bg.png"},
            "inputs": [{
                "id": "a", "source": {"stream_id": "a"}, "content": "av", "layer": 1,
                "rect": {"x": 0, "y": 0, "width": 640, "height": 360},
                "crop": {"x": 0, "y": 0, "width": 320, "height": 180},
                "fit": "letterbox", "corner_radius": 10, "volume": 100,
                "label": {"text": "A", "font_size": 24, "color": "#FFFFFF", "opacity": 100, "x": 0, "y": 0},
                "sound_level_id": 1
            }],
            "overlays": [{"id": "logo", "color": "#FF0000", "rect": {"x": 10, "y": 10, "width": 100, "height": 50}, "layer": 100}],
            "outputs": [{
                "target": {"stream_id": "out"},
                "video": {"codec": "h264", "bitrate_kbps": 2500, "fps": 30, "gop_s": 2},
                "audio": {"codec": "aac", "bitrate_kbps": 128, "sample_rate": 48000, "channels": 2}
            }],
            "sei": {"user_data_base64": "aGVsbG8=", "sound_levels": true}
        });
        let checked = check_bounds("MixSpec", base, |v, field| {
            match serde_json::from_value::<MixSpec>(v.clone()) {
                Err(_) => true,
                Ok(spec) => spec
                    .validate(&Limits::default())
                    .is_err_and(|v| v.iter().any(|v| v.field == field)),
            }
        });
        for field in [
            "canvas.width",
            "canvas.height",
            "canvas.fps",
            "inputs[0].layer",
            "inputs[0].rect.x",
            "inputs[0].crop.width",
            "inputs[0].volume",
            "inputs[0].label.text",
            "inputs[0].label.font_size",
            "inputs[0].label.opacity",
            "overlays[0].layer",
            "outputs",
            "outputs[0].video.bitrate_kbps",
            "outputs[0].video.fps",
            "outputs[0].video.gop_s",
            "outputs[0].audio.bitrate_kbps",
            "outputs[0].audio.sample_rate",
            "outputs[0].audio.channels",
        ] {
            assert!(
                checked.iter().any(|c| c == field),
                "{field} has no bound in the schema: {checked:?}"
            );
        }
    }

    #[test]
    fn relay_spec_bounds_are_what_validation_enforces() {
        let base = json!({
            "main": {"vod": {"urls": ["http://h/a.flv"], "loop_times": 0}},
            "backup": {"push": "studio"},
            "outputs": [{"id": "a", "name": "A", "url": "rtmp://h/app/a"}],
            "failover": {"stall_ms": 2000, "return_to_main": true, "return_after_ms": 10000},
            "stop_at": null,
            "callback_url": "http://h/cb"
        });
        let checked = check_bounds("RelaySpec", base, |v, field| {
            match serde_json::from_value::<RelaySpec>(v.clone()) {
                Err(_) => true,
                Ok(spec) => spec
                    .validate()
                    .is_err_and(|v| v.iter().any(|v| v.field == field)),
            }
        });
        for field in [
            "main.vod.urls",
            "main.vod.loop_times",
            "outputs",
            "failover.stall_ms",
            "failover.return_after_ms",
        ] {
            assert!(
                checked.iter().any(|c| c == field),
                "{field} has no bound in the schema: {checked:?}"
            );
        }
    }

    /// The codes the native API's handlers name: the string right after each `StatusCode::X,`.
    fn codes_in(source: &str) -> Vec<String> {
        let mut codes = Vec::new();
        for (i, _) in source.match_indices("StatusCode::") {
            let rest = &source[i + "StatusCode::".len()..];
            let rest = rest.trim_start_matches(|c: char| c.is_ascii_uppercase() || c == '_');
            let Some(rest) = rest.strip_prefix(',') else {
                continue;
            };
            if let Some(literal) = rest.trim_start().strip_prefix('"') {
                codes.push(literal[..literal.find('"').unwrap()].to_string());
            }
        }
        codes
    }

    #[test]
    fn error_codes_are_the_ones_handlers_use() {
        let sources = [
            include_str!("error.rs"),
            include_str!("json.rs"),
            include_str!("path.rs"),
            include_str!("mod.rs"),
            include_str!("native.rs"),
            include_str!("relays.rs"),
            include_str!("pictures.rs"),
            include_str!("preview.rs"),
            include_str!("auth.rs"),
            include_str!("cluster.rs"),
        ];
        let mut used: Vec<String> = sources.iter().flat_map(|s| codes_in(s)).collect();
        used.sort();
        used.dedup();
        let doc = doc();
        let mut documented: Vec<String> = doc["components"]["schemas"]["ErrorCode"]["enum"]
            .as_array()
            .expect("ErrorCode is an enum")
            .iter()
            .map(|c| c.as_str().unwrap().to_string())
            .collect();
        documented.sort();
        assert!(used.len() >= 10, "the scan finds the codes: {used:?}");
        assert_eq!(
            documented, used,
            "ErrorCode (api/error.rs) against the handlers' codes"
        );
    }

    #[test]
    fn document_is_built_once_and_states_its_version() {
        assert!(std::ptr::eq(super::json(), super::json()));
        let doc = doc();
        assert_eq!(doc["openapi"], "3.1.0");
        assert_eq!(doc["info"]["version"], env!("CARGO_PKG_VERSION"));
        assert_eq!(doc["info"]["title"], "Tessera native API");
    }
}
