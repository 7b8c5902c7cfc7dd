//! Reading single values of a request: ids, colours, sizes and positions, crop pixels, 0/1 flags, ranged numbers.

use super::{refuse, Len};
use crate::api::tencent::{
    codes::{Reason, Refusal},
    request::Dialect,
};
use crate::model::Color;

const MAX_ID_BYTES: usize = 80;

/// `[A-Za-z0-9_]{1,80}`: Tencent's rule for session and stream ids.
pub fn valid_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_ID_BYTES
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// `0xRRGGBB` (also `#RRGGBB`).
pub fn parse_color(s: &str) -> Option<Color> {
    let hex = s
        .strip_prefix("0x")
        .or_else(|| s.strip_prefix("0X"))
        .or_else(|| s.strip_prefix('#'))?;
    if hex.len() != 6 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u32::from_str_radix(hex, 16).ok().map(Color::from_rgb_u32)
}

/// A size or position as sent: absent or 0 = not given; (0, 1) a fraction, which must lie in [0.01, 0.99];
/// otherwise pixels up to the dialect's maximum.
pub(super) fn len(
    v: Option<f64>,
    field: &str,
    layer: i64,
    dialect: Dialect,
) -> Result<Option<Len>, Refusal> {
    let Some(v) = v else { return Ok(None) };
    let max = dialect.max_pixels();
    if !v.is_finite() || v < 0.0 || v > max {
        return Err(refuse(
            Reason::StreamParameter,
            format!("{field} of layer {layer} is {v}; it must be pixels from 0 to {max} or a fraction from 0.01 to 0.99"),
        ));
    }
    if v == 0.0 {
        return Ok(None);
    }
    if v < 1.0 {
        if !(0.01..=0.99).contains(&v) {
            return Err(refuse(
                Reason::StreamParameter,
                format!("{field} of layer {layer} is {v}; a fraction must be from 0.01 to 0.99"),
            ));
        }
        return Ok(Some(Len::Frac(v)));
    }
    Ok(Some(Len::Px(v)))
}

pub(super) fn crop_px(
    v: Option<f64>,
    field: &str,
    layer: i64,
    dialect: Dialect,
) -> Result<Option<u32>, Refusal> {
    let Some(v) = v else { return Ok(None) };
    let max = dialect.max_pixels();
    if !v.is_finite() || v < 0.0 || v > max {
        return Err(refuse(
            Reason::Crop,
            format!("{field} of layer {layer} is {v}; it must be pixels from 0 to {max}"),
        ));
    }
    Ok(Some(v.round() as u32))
}

pub(super) fn flag(v: Option<i64>, field: &str) -> Result<bool, Refusal> {
    match v {
        None | Some(0) => Ok(false),
        Some(1) => Ok(true),
        Some(other) => Err(refuse(
            Reason::Parameter,
            format!("{field} is {other}; it must be 0 or 1"),
        )),
    }
}

pub(super) fn ranged(
    v: Option<i64>,
    range: std::ops::RangeInclusive<i64>,
    field: &str,
) -> Result<Option<u32>, Refusal> {
    match v {
        None => Ok(None),
        Some(v) if range.contains(&v) => Ok(Some(v as u32)),
        Some(v) => Err(refuse(
            Reason::Parameter,
            format!(
                "{field} is {v}; it must be from {} to {}",
                range.start(),
                range.end()
            ),
        )),
    }
}
