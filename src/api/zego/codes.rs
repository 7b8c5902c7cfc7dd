//! ZEGO return codes, and the error type every ZEGO handler returns.

/// A refusal in ZEGO's terms: its numeric code and a message for the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZegoError {
    pub code: u32,
    pub message: String,
}

impl ZegoError {
    pub fn new(code: u32, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

/// ZEGO's public return code for "requests per second over the API's limit" (its global return code table).
pub const RATE_LIMITED: u32 = 7;
pub const APP_ID_INVALID: u32 = 100000001;
pub const TIMESTAMP_EMPTY: u32 = 100000002;
pub const TIMESTAMP_INVALID: u32 = 100000003;
pub const SIGNATURE_EXPIRED: u32 = 100000004;
pub const SIGNATURE_WRONG: u32 = 100000005;
pub const ACTION_EMPTY: u32 = 100000006;
pub const ACTION_UNSUPPORTED: u32 = 100000007;
pub const NONCE_EMPTY: u32 = 100000008;
pub const SIGNATURE_EMPTY: u32 = 100000009;
pub const SIGNATURE_VERSION_EMPTY: u32 = 100000013;
pub const SIGNATURE_VERSION_UNSUPPORTED: u32 = 100000014;
pub const PARAMETER: u32 = 110200002;
pub const BODY_UNPARSABLE: u32 = 110200004;
pub const INPUT_IS_OUTPUT: u32 = 110200140;
pub const IMAGE_SCHEME: u32 = 110200141;
pub const IMAGE_FETCH: u32 = 110200142;
pub const INPUT_NOT_FOUND: u32 = 110200150;
pub const TASK_FAILED: u32 = 110200151;
pub const CODEC_UNSUPPORTED: u32 = 110200156;
pub const TOO_MANY_INPUTS: u32 = 110200158;
pub const NOT_OWNER: u32 = 110200160;
pub const SIZE_INVALID: u32 = 110200161;
pub const WATERMARK_IMAGE: u32 = 110200170;
pub const WATERMARK_RECT: u32 = 110200171;
pub const DUPLICATE_INPUT: u32 = 110200175;
pub const DUPLICATE_OUTPUT: u32 = 110200176;
pub const TOO_MANY_OUTPUTS: u32 = 110200178;
pub const LABEL_TOO_LONG: u32 = 110200179;
pub const TASK_NOT_FOUND: u32 = 110209001;
