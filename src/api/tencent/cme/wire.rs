//! Tencent CME (多媒体创作引擎) API 3.0 bodies for stream-connect (云转推) projects, version 2019-10-29, as they are
//! on the wire. Unknown fields are refused with their name.

use serde::{Deserialize, Serialize};

use crate::api::lenient;

#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
pub struct Entity {
    #[serde(default)]
    pub r#type: String,
    #[serde(default)]
    pub id: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
pub struct CreateProject {
    pub platform: Option<String>,
    pub name: Option<String>,
    pub owner: Option<Entity>,
    pub category: Option<String>,
    pub mode: Option<String>,
    pub aspect_ratio: Option<String>,
    pub description: Option<String>,
    pub stream_connect_project_input: Option<StreamConnectProjectInput>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
pub struct StreamConnectProjectInput {
    pub main_input: Option<StreamInputInfo>,
    pub backup_input: Option<StreamInputInfo>,
    #[serde(default)]
    pub outputs: Vec<StreamConnectOutput>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
pub struct StreamInputInfo {
    #[serde(default)]
    pub input_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vod_pull_input_info: Option<VodPullInputInfo>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub live_pull_input_info: Option<LivePullInputInfo>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rtmp_push_input_info: Option<RtmpPushInputInfo>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
pub struct LivePullInputInfo {
    #[serde(default)]
    pub input_url: String,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
pub struct RtmpPushInputInfo {
    #[serde(default, deserialize_with = "lenient::int")]
    pub expired_second: Option<i64>,
    #[serde(default)]
    pub push_url: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
pub struct VodPullInputInfo {
    #[serde(default)]
    pub input_urls: Vec<String>,
    #[serde(default, deserialize_with = "lenient::int")]
    pub loop_times: Option<i64>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
pub struct StreamConnectOutput {
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub r#type: Option<String>,
    #[serde(default)]
    pub push_url: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
pub struct HandleStreamConnectProject {
    pub platform: Option<String>,
    pub project_id: Option<String>,
    pub operation: Option<String>,
    pub input_info: Option<StreamInputInfo>,
    pub input_endpoint: Option<String>,
    pub output_info: Option<StreamConnectOutput>,
    pub current_stop_time: Option<String>,
    pub operator: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
pub struct DescribeProjects {
    pub platform: Option<String>,
    #[serde(default)]
    pub project_ids: Vec<String>,
    #[serde(default)]
    pub aspect_ratio_set: Vec<String>,
    #[serde(default)]
    pub category_set: Vec<String>,
    #[serde(default)]
    pub modes: Vec<String>,
    pub sort: Option<serde_json::Value>,
    pub owner: Option<Entity>,
    #[serde(default, deserialize_with = "lenient::int")]
    pub offset: Option<i64>,
    #[serde(default, deserialize_with = "lenient::int")]
    pub limit: Option<i64>,
    pub operator: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
pub struct DeleteProject {
    pub platform: Option<String>,
    pub project_id: Option<String>,
    pub operator: Option<String>,
}
