//! Request timestamps: the ISO 8601 basic format of `X-Amz-Date` and the RFC 1123 `Date` header.
//!
//! Owns parsing and formatting of the two timestamp forms SigV4 uses ("Elements of an AWS
//! API request signature", IAM User Guide: the `x-amz-date` or `date` header). It must not
//! decide whether a time is acceptable — that is the verifier's skew check.

use time::{Date, Month, OffsetDateTime, PrimitiveDateTime, Time, UtcOffset};

/// Parses `YYYYMMDD'T'HHMMSS'Z'` exactly (16 bytes, UTC), as SigV4 requires ("Elements of
/// an AWS API request signature", IAM User Guide).
pub(crate) fn parse_amz_date(value: &str) -> Option<OffsetDateTime> {
    let bytes = value.as_bytes();
    if bytes.len() != 16 || bytes[8] != b'T' || bytes[15] != b'Z' {
        return None;
    }
    let number = |range: std::ops::Range<usize>| -> Option<u32> {
        bytes[range].iter().try_fold(0u32, |acc, &b| {
            b.is_ascii_digit().then(|| acc * 10 + u32::from(b - b'0'))
        })
    };
    let year = i32::try_from(number(0..4)?).ok()?;
    let month = Month::try_from(u8::try_from(number(4..6)?).ok()?).ok()?;
    let day = u8::try_from(number(6..8)?).ok()?;
    let hour = u8::try_from(number(9..11)?).ok()?;
    let minute = u8::try_from(number(11..13)?).ok()?;
    let second = u8::try_from(number(13..15)?).ok()?;
    let date = Date::from_calendar_date(year, month, day).ok()?;
    let time = Time::from_hms(hour, minute, second).ok()?;
    Some(PrimitiveDateTime::new(date, time).assume_utc())
}

/// Formats a time as `YYYYMMDD'T'HHMMSS'Z'` in UTC, dropping sub-second precision — the form of
/// `X-Amz-Date` and of the times in AWS's skew messages.
pub fn format_amz_date(at: OffsetDateTime) -> String {
    let at = at.to_offset(UtcOffset::UTC);
    format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute(),
        at.second()
    )
}

/// Parses an RFC 1123 `Date` header (`Sun, 30 Aug 2015 12:36:00 GMT`). botocore keeps a caller's
/// `Date` header and signs with its time when there is no `X-Amz-Date`.
pub(crate) fn parse_http_date(value: &str) -> Option<OffsetDateTime> {
    let format = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    PrimitiveDateTime::parse(value.trim(), format)
        .ok()
        .map(PrimitiveDateTime::assume_utc)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn amz_date_round_trips() {
        let at = parse_amz_date("20150830T123600Z").unwrap();
        assert_eq!(format_amz_date(at), "20150830T123600Z");
    }

    #[test]
    fn amz_date_rejects_other_forms() {
        for bad in [
            "2015-08-30T12:36:00Z",
            "20150830T123600",
            "20150830T123600+0000",
            "20151330T123600Z",
            "20150830T253600Z",
            "2015083OT123600Z",
            "",
        ] {
            assert_eq!(parse_amz_date(bad), None, "{bad}");
        }
    }

    #[test]
    fn http_date_is_rfc_1123() {
        let at = parse_http_date("Sun, 30 Aug 2015 12:36:00 GMT").unwrap();
        assert_eq!(format_amz_date(at), "20150830T123600Z");
        assert_eq!(parse_http_date("30 Aug 2015 12:36:00"), None);
    }
}
