//! Integers in request bodies as JSON (and JSON Schema, and so the OpenAPI
//! document) count them: a number with a zero fraction, `52.0` or `5.2e1`,
//! is the integer 52. serde_json alone refuses `52.0` for an `i64`, so a
//! client whose JSON library writes whole numbers that way (JavaScript's
//! does for some, Python's for floats) would be told 422 for valid input.
//!
//! Use it on every integer field a handler deserializes:
//! `#[serde(deserialize_with = "crate::integer::i64")]`. Fractions and
//! numbers outside the 64-bit range are still refused, with serde's own
//! message, so the handler answers 422 as for any other wrong type.
//!
//! A number written with a fraction or an exponent reaches us as an `f64`,
//! and so does an integer too large for 64 bits (serde_json's fallback):
//! `-9223372036854775809` arrives as -2^63, which *is* an `i64`; and
//! serde_json's float parsing may be off in the last bit. So a float is
//! taken only below 2^52 in magnitude, where the gap between doubles is
//! at most 0.5: what arrives whole is what was written (a last-bit error
//! makes it a fraction, refused, never another whole number). Larger
//! values must be written as integers, and are then read exactly.

use serde::de::{self, Deserializer, Unexpected, Visitor};

/// An `i64` from a JSON integer, or from a JSON number whose fraction is zero.
pub fn i64<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    d.deserialize_any(Whole)
}

struct Whole;

/// 2^52: below it, a whole `f64` is exactly the number that was written.
const EXACT: f64 = 4_503_599_627_370_496.0;

impl Visitor<'_> for Whole {
    type Value = i64;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a 64-bit integer")
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<i64, E> {
        Ok(v)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<i64, E> {
        i64::try_from(v).map_err(|_| E::invalid_value(Unexpected::Unsigned(v), &self))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<i64, E> {
        if v.fract() == 0.0 && v.abs() < EXACT {
            // Whole and well inside the range, so the cast is exact.
            Ok(v as i64)
        } else {
            Err(E::invalid_value(Unexpected::Float(v), &self))
        }
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    struct N {
        #[serde(deserialize_with = "super::i64")]
        n: i64,
    }

    fn parse(json: &str) -> Result<i64, String> {
        serde_json::from_str::<N>(json)
            .map(|v| v.n)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn whole_numbers_are_integers_however_they_are_written() {
        assert_eq!(parse(r#"{"n": 52}"#), Ok(52));
        assert_eq!(parse(r#"{"n": 52.0}"#), Ok(52));
        assert_eq!(parse(r#"{"n": 5.2e1}"#), Ok(52));
        assert_eq!(parse(r#"{"n": -0.0}"#), Ok(0));
        assert_eq!(parse(r#"{"n": -9223372036854775808}"#), Ok(i64::MIN));
        assert_eq!(parse(r#"{"n": 9223372036854775807}"#), Ok(i64::MAX));
        assert_eq!(parse(r#"{"n": 123456789012.0}"#), Ok(123_456_789_012));
        assert_eq!(parse(r#"{"n": -1e15}"#), Ok(-1_000_000_000_000_000));
    }

    #[test]
    fn fractions_out_of_range_and_other_types_are_refused() {
        for json in [
            r#"{"n": 52.5}"#,
            r#"{"n": 9223372036854775808}"#,
            r#"{"n": 9223372036854775808.0}"#,
            // Past i64, parsed as a float that rounds to i64::MIN.
            r#"{"n": -9223372036854775809}"#,
            // 2^53 + 1 written as a float: it would be read as 2^53.
            r#"{"n": 9007199254740993.0}"#,
            r#"{"n": 4503599627370496.0}"#,
            r#"{"n": 1e300}"#,
            r#"{"n": "52"}"#,
            r#"{"n": null}"#,
            r#"{"n": true}"#,
        ] {
            let e = parse(json).expect_err(json);
            assert!(
                e.contains("64-bit integer") || e.contains("invalid type"),
                "{json}: {e}"
            );
        }
    }
}
