//! Timestamp encodings on the wire: HTTP `Date` (IMF-fixdate), ISO-8601 for awsQuery XML,
//! epoch seconds for awsJson1.1.

use time::OffsetDateTime;
use time::macros::format_description;

/// `Wed, 25 Nov 2026 18:07:25 GMT` — the response `Date` header SDKs use to correct skew.
pub fn http_date(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    let fmt = format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    t.format(&fmt).unwrap_or_default()
}

/// `2026-01-01T00:00:00Z` (IAM/STS XML timestamps).
pub fn iso8601(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    let fmt = format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");
    t.format(&fmt).unwrap_or_default()
}

/// Epoch seconds with millisecond fraction (`1526334434.743`).
pub fn epoch_seconds(t: OffsetDateTime) -> f64 {
    let millis = t.unix_timestamp_nanos() / 1_000_000;
    millis as f64 / 1000.0
}

pub fn from_epoch_seconds(secs: f64) -> Option<OffsetDateTime> {
    if !secs.is_finite() {
        return None;
    }
    let nanos = (secs * 1e9) as i128;
    OffsetDateTime::from_unix_timestamp_nanos(nanos).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn formats() {
        let t = datetime!(2026-11-25 18:07:25.743 UTC);
        assert_eq!(http_date(t), "Wed, 25 Nov 2026 18:07:25 GMT");
        assert_eq!(iso8601(t), "2026-11-25T18:07:25Z");
        assert!((epoch_seconds(t) - 1_795_630_045.743).abs() < 1e-6);
        assert_eq!(
            from_epoch_seconds(epoch_seconds(t)).map(|x| x.unix_timestamp()),
            Some(t.unix_timestamp())
        );
    }
}
