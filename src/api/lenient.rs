//! Vendor numbers as clients really send them: a JSON number, or a string of digits (vendor samples do both).
//! Used with `#[serde(default, deserialize_with = "…")]` on `Option` fields.

use serde::{Deserialize, Deserializer};

#[derive(Deserialize)]
#[serde(untagged)]
enum Number {
    I(i64),
    F(f64),
    S(String),
}

/// An integer: `5`, `5.0` or `"5"`; `""` or `null` = absent.
pub fn int<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    Ok(match Option::<Number>::deserialize(d)? {
        None => None,
        Some(Number::I(i)) => Some(i),
        Some(Number::F(f)) if f.fract() == 0.0 => Some(f as i64),
        Some(Number::F(_)) => return Err(serde::de::Error::custom("expected an integer")),
        Some(Number::S(s)) if s.trim().is_empty() => None,
        Some(Number::S(s)) => Some(s.trim().parse().map_err(serde::de::Error::custom)?),
    })
}

/// A number: `5`, `0.25` or `"0.25"`; `""` or `null` = absent.
pub fn float<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    Ok(match Option::<Number>::deserialize(d)? {
        None => None,
        Some(Number::I(i)) => Some(i as f64),
        Some(Number::F(f)) => Some(f),
        Some(Number::S(s)) if s.trim().is_empty() => None,
        Some(Number::S(s)) => Some(s.trim().parse().map_err(serde::de::Error::custom)?),
    })
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    #[derive(Deserialize)]
    struct T {
        #[serde(default, deserialize_with = "super::int")]
        i: Option<i64>,
        #[serde(default, deserialize_with = "super::float")]
        f: Option<f64>,
    }

    fn t(json: &str) -> Result<T, serde_json::Error> {
        serde_json::from_str(json)
    }

    #[test]
    fn numbers_and_digit_strings() {
        let v = t(r#"{"i":"7","f":"0.25"}"#).unwrap();
        assert_eq!((v.i, v.f), (Some(7), Some(0.25)));
        let v = t(r#"{"i":7.0,"f":3}"#).unwrap();
        assert_eq!((v.i, v.f), (Some(7), Some(3.0)));
        let v = t(r#"{"i":"","f":null}"#).unwrap();
        assert_eq!((v.i, v.f), (None, None));
        let v = t("{}").unwrap();
        assert_eq!((v.i, v.f), (None, None));
        assert!(t(r#"{"i":1.5}"#).is_err());
        assert!(t(r#"{"i":"x"}"#).is_err());
    }
}
