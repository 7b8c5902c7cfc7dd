//! Why a Tencent request was refused, once, and how each dialect says it: the legacy CGI's negative integers
//! (the reference's error table) and API 3.0's dotted codes.

/// A refusal: what went wrong plus a clear message (never internal detail).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub reason: Reason,
    pub message: String,
}

impl Refusal {
    pub fn new(reason: Reason, message: impl Into<String>) -> Self {
        Self {
            reason,
            message: message.into(),
        }
    }
}

/// Each variant is one row of the CGI reference's error table (plus authentication and the few API 3.0-only
/// conditions).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// -1: the body is not JSON of the expected shape, the interface name is wrong, the input list is empty.
    Parse,
    /// A required parameter is absent (API 3.0 `MissingParameter`; the CGI says -1).
    Missing,
    /// -2: appid / eventId missing or 0, a session id that is not 1–80 letters, digits or `_`, an output
    /// parameter out of range.
    Parameter,
    /// -2: a layer that does not lie inside the background.
    Overflow,
    /// -3: more than 16 inputs.
    StreamCount,
    /// -4: an input without layout, an unknown input type, a size out of range, a malformed stream id.
    StreamParameter,
    /// -4: a malformed output stream id.
    OutputId,
    /// -11: a layer missing, repeated or outside 1–16; no background (layer 1).
    Layer,
    /// -20: the template does not exist or takes another number of inputs.
    Template,
    /// -20: a colour that is not `0xRRGGBB`.
    Color,
    /// -21: fewer than two inputs for a new session.
    TooFewInputs,
    /// -28: the background's size cannot be known (a canvas without size, a stream without video).
    BackgroundSize,
    /// -29: a crop outside the source picture.
    Crop,
    /// -33: a picture input without a picture id.
    PictureIdMissing,
    /// -34: no picture with that id, or it cannot be read.
    PictureNotFound,
    /// -111: output type 0 whose output is not an input, or type 1 whose output is one.
    OutputType,
    /// -300: the output stream is already the output of another session (or mix).
    OutputInUse,
    /// -505: an input stream cannot be found.
    InputNotFound,
    /// -508: the session exists with another output stream id.
    SessionOutput,
    /// -30300: cancel of a session that does not exist.
    SessionNotFound,
    /// -31003: cancel naming another output stream than the session's.
    CancelOutput,
    /// -31004: output bitrate outside the allowed range.
    Bitrate,
    /// The node is full (most mixes reached).
    Limit,
    /// The credential sent more requests per second than allowed.
    RateLimited,
    /// Anything else; logged, never detailed to the caller.
    Internal,
    /// Legacy CGI authentication.
    AuthMissing,
    AuthUnknownApp,
    AuthExpired,
    AuthSignature,
}

impl Reason {
    /// The legacy CGI's `code`.
    pub fn legacy_code(self) -> i64 {
        match self {
            Reason::Parse | Reason::Missing => -1,
            Reason::Parameter | Reason::Overflow => -2,
            Reason::StreamCount => -3,
            Reason::StreamParameter | Reason::OutputId => -4,
            Reason::Layer => -11,
            Reason::Template | Reason::Color => -20,
            Reason::TooFewInputs => -21,
            Reason::BackgroundSize => -28,
            Reason::Crop => -29,
            Reason::PictureIdMissing => -33,
            Reason::PictureNotFound => -34,
            Reason::OutputType => -111,
            Reason::OutputInUse => -300,
            Reason::InputNotFound => -505,
            Reason::SessionOutput => -508,
            // The table's "trigger failed, retry later" row: the CGI documents no quota or frequency code.
            Reason::Limit | Reason::RateLimited | Reason::Internal => -10031,
            Reason::SessionNotFound => -30300,
            Reason::CancelOutput => -31003,
            Reason::Bitrate => -31004,
            // Not in Tencent's table (its CGI answers auth failures without documenting codes): Tessera's own,
            // listed in docs/tencent.md.
            Reason::AuthMissing => -40000,
            Reason::AuthUnknownApp => -40001,
            Reason::AuthExpired => -40002,
            Reason::AuthSignature => -40003,
        }
    }

    /// API 3.0's `Error.Code`.
    pub fn cloud_code(self) -> &'static str {
        match self {
            Reason::Parse | Reason::Parameter => "InvalidParameter",
            Reason::Missing => "MissingParameter",
            Reason::Overflow | Reason::StreamParameter | Reason::Layer => {
                "InvalidParameter.InvalidLayerParam"
            }
            Reason::StreamCount | Reason::TooFewInputs => "InvalidParameter.InputNumLimitExceeded",
            Reason::Template => "InvalidParameter.TemplateNotMatchInputNum",
            Reason::Color => "InvalidParameter.InvalidLayerParam",
            Reason::BackgroundSize => "InvalidParameter.InvalidBackgroudResolution",
            Reason::Crop => "InvalidParameter.InvalidCropParam",
            Reason::PictureIdMissing => "InvalidParameter.InvalidPictureID",
            Reason::PictureNotFound => "FailedOperation.GetPictureUrlError",
            Reason::OutputType => "InvalidParameter.InvalidOutputType",
            Reason::OutputInUse | Reason::OutputId | Reason::CancelOutput => {
                "InvalidParameter.InvalidOutputStreamID"
            }
            Reason::SessionOutput => "InvalidParameter.SessionOutputStreamChanged",
            Reason::InputNotFound => "FailedOperation.StreamNotExist",
            Reason::SessionNotFound => "FailedOperation.CancelSessionNotExist",
            Reason::Bitrate => "InvalidParameter.InvalidBitrate",
            Reason::Limit => "LimitExceeded",
            Reason::RateLimited => "RequestLimitExceeded",
            Reason::Internal => "InternalError",
            Reason::AuthMissing => "AuthFailure.InvalidAuthorization",
            Reason::AuthUnknownApp => "AuthFailure.SecretIdNotFound",
            Reason::AuthExpired => "AuthFailure.SignatureExpire",
            Reason::AuthSignature => "AuthFailure.SignatureFailure",
        }
    }
}
