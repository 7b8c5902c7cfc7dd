//! Tencent Cloud API 3.0: `CreateCommonMixStream` / `CancelCommonMixStream` (version 2018-08-01).

pub mod tc3;
