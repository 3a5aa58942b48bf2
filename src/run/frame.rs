//! Metric records framed inside a container's log stream.
//!
//! The Python helper (`images/python/tug`) writes each record as one line:
//! `\x1e` `tug:` NONCE ` ` JSON `\n`, where NONCE is a per-run secret in the container's
//! `TUG_LOG_NONCE`. A line of user output can only be taken for a record if it carries
//! that nonce, which the user's program never prints by accident. Text before the frame
//! on the same line (user output without a trailing newline) stays user output.

use std::collections::BTreeMap;

use serde::Deserialize;

/// One record from the helper.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "k", rename_all = "snake_case")]
pub enum Record {
    Metric {
        name: String,
        value: MetricValue,
        step: Option<i64>,
        ts: Option<f64>,
    },
    Params {
        values: BTreeMap<String, String>,
    },
    Tags {
        values: BTreeMap<String, String>,
    },
}

/// A metric value; the helper sends NaN and infinities as strings since JSON can't.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum MetricValue {
    Number(f64),
    Special(String),
}

impl MetricValue {
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            MetricValue::Number(v) => Some(*v),
            MetricValue::Special(s) => match s.as_str() {
                "NaN" => Some(f64::NAN),
                "Infinity" => Some(f64::INFINITY),
                "-Infinity" => Some(f64::NEG_INFINITY),
                _ => None,
            },
        }
    }
}

/// A log line split into what the user printed and the record it carried, if any.
#[derive(Debug, PartialEq)]
pub struct SplitLine<'a> {
    /// User text; `None` when the line was only a frame.
    pub text: Option<&'a str>,
    pub record: Option<Result<Record, String>>,
}

/// Splits one log line (without its trailing newline) for the run whose nonce is `nonce`.
pub fn split_line<'a>(line: &'a str, nonce: &str) -> SplitLine<'a> {
    let marker = format!("\x1etug:{nonce} ");
    let Some(at) = line.find(&marker) else {
        return SplitLine {
            text: Some(line),
            record: None,
        };
    };
    let json = &line[at + marker.len()..];
    let record = serde_json::from_str::<Record>(json).map_err(|e| format!("{e}: {json}"));
    SplitLine {
        text: (at > 0).then(|| &line[..at]),
        record: Some(record),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const N: &str = "abc123";

    #[test]
    fn plain_line_is_user_text() {
        let s = split_line("epoch 1 accuracy 0.5", N);
        assert_eq!(s.text, Some("epoch 1 accuracy 0.5"));
        assert!(s.record.is_none());
    }

    #[test]
    fn frame_parses_metric() {
        let line = "\x1etug:abc123 {\"k\":\"metric\",\"name\":\"accuracy\",\"value\":0.97,\"step\":null,\"ts\":1.5}";
        let s = split_line(line, N);
        assert_eq!(s.text, None);
        assert_eq!(
            s.record.unwrap().unwrap(),
            Record::Metric {
                name: "accuracy".into(),
                value: MetricValue::Number(0.97),
                step: None,
                ts: Some(1.5)
            }
        );
    }

    #[test]
    fn user_text_before_frame_is_kept() {
        let line = "progress...\x1etug:abc123 {\"k\":\"tags\",\"values\":{\"a\":\"b\"}}";
        let s = split_line(line, N);
        assert_eq!(s.text, Some("progress..."));
        assert!(matches!(s.record, Some(Ok(Record::Tags { .. }))));
    }

    #[test]
    fn wrong_nonce_is_user_text() {
        let line = "\x1etug:guess {\"k\":\"metric\",\"name\":\"x\",\"value\":1}";
        let s = split_line(line, N);
        assert_eq!(s.text, Some(line));
        assert!(s.record.is_none());
    }

    #[test]
    fn special_values_and_bad_json() {
        let line =
            "\x1etug:abc123 {\"k\":\"metric\",\"name\":\"loss\",\"value\":\"NaN\",\"step\":3}";
        let Some(Ok(Record::Metric { value, step, .. })) = split_line(line, N).record else {
            panic!()
        };
        assert!(value.as_f64().unwrap().is_nan());
        assert_eq!(step, Some(3));
        assert!(matches!(
            split_line("\x1etug:abc123 {oops", N).record,
            Some(Err(_))
        ));
    }
}
