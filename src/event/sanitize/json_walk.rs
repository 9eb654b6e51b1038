//! The walk over a raw JSON value (the client's `context`): serde visitors that copy the value,
//! pass every key and string through the text rules and replace the values of sensitive keys
//! with the marker. Escaping and key decoding come from [`crate::json`].

use std::fmt;
use std::fmt::Write as _;

use crate::json;
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::{cards, Sanitizer, REDACTED};

impl Sanitizer {
    /// Walks the JSON value `raw`, writing the redacted copy into `out` if given. Returns
    /// whether anything is redacted, or `None` if `raw` does not parse. `builtin: false` (no
    /// trigger anywhere in `raw`) checks only the user patterns.
    pub(super) fn walk_json(
        &self,
        raw: &str,
        builtin: bool,
        out: Option<&mut String>,
    ) -> Option<bool> {
        let mut w = JsonWriter {
            san: self,
            builtin,
            out,
            changed: false,
        };
        let mut de = serde_json::Deserializer::from_str(raw);
        let seed = ValueSeed {
            w: &mut w,
            comma: false,
            names_secret: None,
        };
        seed.deserialize(&mut de).and_then(|()| de.end()).ok()?;
        Some(w.changed)
    }
}

/// State of a JSON walk: redacts, and writes the result if it has somewhere to write it.
struct JsonWriter<'s, 'o> {
    san: &'s Sanitizer,
    /// The raw JSON has a trigger, so the built-in rules and key checks apply.
    builtin: bool,
    out: Option<&'o mut String>,
    changed: bool,
}

impl JsonWriter<'_, '_> {
    fn push(&mut self, s: &str) {
        if let Some(out) = self.out.as_deref_mut() {
            out.push_str(s);
        }
    }

    fn push_fmt(&mut self, args: fmt::Arguments<'_>) {
        if let Some(out) = self.out.as_deref_mut() {
            let _ = out.write_fmt(args); // writing to a String cannot fail
        }
    }

    /// A key or string value: quoted, after [`Sanitizer::redact_text`].
    fn push_text(&mut self, s: &str) {
        let redacted = self.san.redact_text_with(s, self.builtin);
        self.changed |= redacted.is_some();
        if let Some(out) = self.out.as_deref_mut() {
            out.push('"');
            json::push_escaped(out, redacted.as_deref().unwrap_or(s));
            out.push('"');
        }
    }

    /// A JSON integer that is a card number (`"card": 4111111111111111`); it becomes the marker
    /// string. Only when the raw JSON had a trigger (a card's digits are one).
    fn is_card(&self, n: u64) -> bool {
        self.builtin && cards::is_card_number(n)
    }

    /// `"[REDACTED]"` in place of a value; `was_marker`: the value already was that string.
    fn push_redacted(&mut self, was_marker: bool) {
        self.changed |= !was_marker;
        self.push("\"");
        self.push(REDACTED);
        self.push("\"");
    }
}

/// Copies one JSON value (after a `,` if `comma`), redacting keys, strings and the values of
/// sensitive keys.
struct ValueSeed<'a, 's, 'o> {
    w: &'a mut JsonWriter<'s, 'o>,
    comma: bool,
    /// Set when this value is a string naming a sensitive key: the value of a `"key"` member,
    /// as in OpenTelemetry's attribute lists (`{"key":"db.password","value":{…}}`).
    names_secret: Option<&'a mut bool>,
}

impl<'de> DeserializeSeed<'de> for ValueSeed<'_, '_, '_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        if self.comma {
            self.w.push(",");
        }
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ValueSeed<'_, '_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.w.push("null");
        Ok(())
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<(), E> {
        self.w.push(if v { "true" } else { "false" });
        Ok(())
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<(), E> {
        if self.w.is_card(v.unsigned_abs()) {
            self.w.push_redacted(false);
        } else {
            self.w.push_fmt(format_args!("{v}"));
        }
        Ok(())
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<(), E> {
        if self.w.is_card(v) {
            self.w.push_redacted(false);
        } else {
            self.w.push_fmt(format_args!("{v}"));
        }
        Ok(())
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<(), E> {
        // Finite (JSON has no NaN/inf), so this is always `Some`; shortest round-trip form.
        match serde_json::Number::from_f64(v) {
            Some(n) => self.w.push_fmt(format_args!("{n}")),
            None => self.w.push("null"),
        }
        Ok(())
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        if let Some(flag) = self.names_secret {
            *flag = self.w.san.is_sensitive_key(v);
        }
        self.w.push_text(v);
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        self.w.push("[");
        let mut comma = false;
        while seq
            .next_element_seed(ValueSeed {
                w: &mut *self.w,
                comma,
                names_secret: None,
            })?
            .is_some()
        {
            comma = true;
        }
        self.w.push("]");
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        self.w.push("{");
        let mut comma = false;
        // A key/value pair spelled as members (`{"key":"api_key","value":…}`, OpenTelemetry's
        // attributes): the `value` after a `key` that names a secret is one.
        let mut pair_names_secret = false;
        while let Some(json::Key(key)) = map.next_key()? {
            if comma {
                self.w.push(",");
            }
            comma = true;
            self.w.push_text(&key);
            self.w.push(":");
            let builtin = self.w.builtin;
            if builtin
                && (self.w.san.is_sensitive_key(&key) || (pair_names_secret && key == "value"))
            {
                map.next_value_seed(MaskSeed(&mut *self.w))?;
            } else if builtin && key == "key" {
                let w = &mut *self.w;
                map.next_value_seed(ValueSeed {
                    w,
                    comma: false,
                    names_secret: Some(&mut pair_names_secret),
                })?;
            } else {
                let w = &mut *self.w;
                map.next_value_seed(ValueSeed {
                    w,
                    comma: false,
                    names_secret: None,
                })?;
            }
        }
        self.w.push("}");
        Ok(())
    }
}

/// Consumes the value of a sensitive key and writes `"[REDACTED]"` in its place (`null` and
/// booleans, which cannot hold a secret, are kept).
struct MaskSeed<'a, 's, 'o>(&'a mut JsonWriter<'s, 'o>);

impl<'de> DeserializeSeed<'de> for MaskSeed<'_, '_, '_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for MaskSeed<'_, '_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.0.push("null");
        Ok(())
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<(), E> {
        self.0.push(if v { "true" } else { "false" });
        Ok(())
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        self.0.push_redacted(false);
        Ok(())
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        self.0.push_redacted(false);
        Ok(())
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        self.0.push_redacted(false);
        Ok(())
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        // Already the marker: unchanged, so a second pass returns `None`.
        self.0.push_redacted(v == REDACTED);
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        self.0.push_redacted(false);
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        self.0.push_redacted(false);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::event::sanitize::tests::san;

    #[test]
    fn json_key_value_pairs_spelled_as_members() {
        // OpenTelemetry's attribute lists: the key is a value, the secret in the next member.
        let s = san();
        let raw = r#"[{"key":"db.password","value":{"stringValue":"hunter2x"}},{"key":"code.line","value":{"intValue":"7"}}]"#;
        let mut out = String::new();
        assert_eq!(s.walk_json(raw, true, Some(&mut out)), Some(true));
        assert_eq!(
            out,
            r#"[{"key":"db.password","value":"[REDACTED]"},{"key":"code.line","value":{"intValue":"7"}}]"#
        );
        // a `value` with no sensitive `key` before it is kept
        let raw = r#"{"value":"plain","key":"name"}"#;
        let mut out = String::new();
        assert_eq!(s.walk_json(raw, true, Some(&mut out)), Some(false));
        assert_eq!(out, raw);
    }

    #[test]
    fn json_nested_objects_and_arrays() {
        let s = san();
        let raw = r#"{"user":{"password":"x","name":"bob"},"headers":{"Authorization":"Bearer abc"},"list":[{"token":"t1"},"Bearer zzz",3]}"#;
        assert_eq!(
            s.redact_json(raw).as_deref(),
            Some(
                r#"{"user":{"password":"[REDACTED]","name":"bob"},"headers":{"Authorization":"[REDACTED]"},"list":[{"token":"[REDACTED]"},"Bearer [REDACTED]",3]}"#
            )
        );
    }

    #[test]
    fn json_non_string_values_under_sensitive_keys() {
        let s = san();
        let raw = r#"{"pin_token":1234,"secret":{"a":[1,{"b":2}]},"apiKeys":["k1","k2"],"password":null,"has_token":true,"n":-1.5,"ok":[]}"#;
        assert_eq!(
            s.redact_json(raw).as_deref(),
            Some(
                r#"{"pin_token":"[REDACTED]","secret":"[REDACTED]","apiKeys":"[REDACTED]","password":null,"has_token":true,"n":-1.5,"ok":[]}"#
            )
        );
    }

    #[test]
    fn json_card_numbers_as_numbers_and_strings() {
        let s = san();
        assert_eq!(
            s.redact_json(r#"{"card":4111111111111111,"neg":-5555555555554444,"order":48151623,"ts":1764345943123,"s":"4111 1111 1111 1111"}"#)
                .as_deref(),
            Some(r#"{"card":"[REDACTED]","neg":"[REDACTED]","order":48151623,"ts":1764345943123,"s":"[REDACTED]"}"#)
        );
        // A number that fails Luhn is a number.
        assert_eq!(s.redact_json(r#"{"id":4111111111111112}"#), None);
    }

    #[test]
    fn json_escaped_keys_values_and_key_text() {
        let s = san();
        // `pass\u0077ord` is "password".
        assert_eq!(
            s.redact_json(r#"{"pass\u0077ord":"x","msg":"db_password=y"}"#)
                .as_deref(),
            Some(r#"{"password":"[REDACTED]","msg":"db_password=[REDACTED]"}"#)
        );
        // A secret used as a key.
        assert_eq!(
            s.redact_json(r#"{"postgres://u:p@h/db":1}"#).as_deref(),
            Some(r#"{"postgres://[REDACTED]@h/db":1}"#)
        );
        // Scalars and unchanged input.
        assert_eq!(
            s.redact_json(r#""Bearer abc""#).as_deref(),
            Some(r#""Bearer [REDACTED]""#)
        );
        assert_eq!(s.redact_json(r#"{"path":"/cart","n":3}"#), None);
        assert_eq!(
            s.redact_json(r#"{"word":"tokenize","e":"caf\u00e9"}"#),
            None
        );
    }

    #[test]
    fn json_unparseable_is_redacted_as_text() {
        let s = san();
        let out = s.redact_json(r#"{"password": "x", broken"#).unwrap();
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v.as_str(), Some(r#"{"password": "[REDACTED]", broken"#));
        // Deeper than serde_json's recursion limit.
        let deep = format!("{}\"token=abc\"{}", "[".repeat(200), "]".repeat(200));
        let out = s.redact_json(&deep).unwrap();
        assert!(!out.contains("abc"));
        assert!(serde_json::from_str::<serde_json::Value>(&out).is_ok());
    }
}
