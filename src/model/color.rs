//! Colours as users write them: `#RRGGBB`, `#RRGGBBAA`, `0xRRGGBB` or `0xRRGGBBAA`.

use std::{fmt, str::FromStr};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An RGBA colour; alpha 255 is opaque.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Color {
    pub r: u8,
    pub g: u8,
    pub b: u8,
    pub a: u8,
}

impl Color {
    pub const BLACK: Color = Color::rgb(0, 0, 0);
    pub const WHITE: Color = Color::rgb(255, 255, 255);

    pub const fn rgb(r: u8, g: u8, b: u8) -> Self {
        Self { r, g, b, a: 255 }
    }

    /// `0xRRGGBB` as an opaque colour.
    pub const fn from_rgb_u32(v: u32) -> Self {
        Self::rgb((v >> 16) as u8, (v >> 8) as u8, v as u8)
    }

    /// The `0xAARRGGBB` form GStreamer's colour properties take.
    pub fn argb(self) -> u32 {
        (u32::from(self.a) << 24)
            | (u32::from(self.r) << 16)
            | (u32::from(self.g) << 8)
            | u32::from(self.b)
    }
}

impl FromStr for Color {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let hex = s
            .strip_prefix('#')
            .or_else(|| s.strip_prefix("0x"))
            .or_else(|| s.strip_prefix("0X"))
            .ok_or_else(|| format!("colour {s:?} must look like #RRGGBB or #RRGGBBAA"))?;
        if !(hex.len() == 6 || hex.len() == 8) || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(format!("colour {s:?} must look like #RRGGBB or #RRGGBBAA"));
        }
        let byte = |i: usize| u8::from_str_radix(&hex[i..i + 2], 16).expect("checked hex");
        Ok(Color {
            r: byte(0),
            g: byte(2),
            b: byte(4),
            a: if hex.len() == 8 { byte(6) } else { 255 },
        })
    }
}

impl fmt::Display for Color {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{:02X}{:02X}{:02X}", self.r, self.g, self.b)?;
        if self.a != 255 {
            write!(f, "{:02X}", self.a)?;
        }
        Ok(())
    }
}

impl Serialize for Color {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Color {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// On the wire a colour is the string [`FromStr`] reads and [`fmt::Display`] writes.
impl utoipa::PartialSchema for Color {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, Type};
        ObjectBuilder::new()
            .schema_type(Type::String)
            .pattern(Some("^(#|0x|0X)([0-9A-Fa-f]{6}|[0-9A-Fa-f]{8})$"))
            .description(Some(
                "An RGB colour, `#RRGGBB`, or with alpha (00 transparent, FF opaque) `#RRGGBBAA`; \
                 `0x` or `0X` may stand for `#`. Answers write the `#` form, with the alpha only when it is not FF.",
            ))
            .examples(["#202040"])
            .into()
    }
}

impl utoipa::ToSchema for Color {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_all_forms() {
        assert_eq!("#FF8000".parse::<Color>().unwrap(), Color::rgb(255, 128, 0));
        assert_eq!("0x10203040".parse::<Color>().unwrap().a, 0x40);
        assert!("red".parse::<Color>().is_err());
        assert!("#12345".parse::<Color>().is_err());
        assert_eq!(Color::rgb(1, 2, 3).argb(), 0xFF010203);
        assert_eq!(Color::from_rgb_u32(0x00FF00), Color::rgb(0, 255, 0));
        assert_eq!(Color::rgb(255, 0, 16).to_string(), "#FF0010");
    }
}
