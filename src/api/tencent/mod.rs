//! The Tencent Cloud dialects: the legacy `Mix_StreamV2` CGI (`POST /common_access`), Cloud API 3.0
//! (`POST /` with `X-TC-Action`) and push-URL auto-mix. Both request forms become one [`request::MixRequest`],
//! which one shared mapping turns into the core model.

pub mod cloud;
pub mod templates;
