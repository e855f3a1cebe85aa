//! `tresor who-reads <secret-id>`: who read which version of a secret, and is it safe to
//! revoke the old value? A client of the server's CloudTrail extension `ListSecretReaders`
//! (the analysis is the server's, over its audit log), made like any AWS SDK call: the SDK's
//! credential, region and endpoint chain, SigV4 by `aws-sigv4`, HTTP or HTTPS (see
//! [`tresor_host::signed`]).
//!
//! Exit status: 0 safe to revoke, 3 some reader is still on an old version, 1 an error.

use std::process::ExitCode;

use clap::Args;
use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

const TARGET: &str = "com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101.ListSecretReaders";
/// Exit status when a reader is still on an old version.
const NOT_SAFE: u8 = 3;

#[derive(Args)]
pub struct WhoReadsArgs {
    /// The secret's name or ARN.
    secret_id: String,
    /// Only reads in this recent window, e.g. 30m, 12h, 7d [default: the whole audit log].
    #[arg(long, value_name = "DURATION", conflicts_with = "start_time")]
    since: Option<String>,
    /// Only reads at or after this time (RFC 3339).
    #[arg(long, value_name = "TIME")]
    start_time: Option<String>,
    /// Only reads at or before this time (RFC 3339) [default: now].
    #[arg(long, value_name = "TIME")]
    end_time: Option<String>,
    /// Print the API's JSON answer (for scripts) instead of the report.
    #[arg(long)]
    json: bool,
    /// tresor's endpoint [default: AWS_ENDPOINT_URL, the profile's endpoint_url, or
    /// http://127.0.0.1:4566]; https:// trusts the system roots and AWS_CA_BUNDLE.
    #[arg(long)]
    endpoint_url: Option<String>,
    /// The AWS profile to sign with [default: AWS_PROFILE or "default"].
    #[arg(long)]
    profile: Option<String>,
    /// The region [default: AWS_REGION, AWS_DEFAULT_REGION, the profile's, or us-east-1].
    #[arg(long)]
    region: Option<String>,
}

pub fn run(args: WhoReadsArgs) -> ExitCode {
    match report(&args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("tresor who-reads: {e}");
            ExitCode::FAILURE
        }
    }
}

fn report(args: &WhoReadsArgs) -> Result<ExitCode, String> {
    let client = tresor_host::source::ClientArgs {
        endpoint_url: args.endpoint_url.clone(),
        region: args.region.clone(),
        profile: args.profile.clone(),
    };
    let now = OffsetDateTime::now_utc();
    let mut input = serde_json::Map::new();
    input.insert("SecretId".into(), args.secret_id.clone().into());
    let start = match (&args.since, &args.start_time) {
        (Some(d), _) => Some(now - parse_duration(d)?),
        (None, Some(t)) => Some(parse_time(t)?),
        (None, None) => None,
    };
    if let Some(t) = start {
        input.insert("StartTime".into(), t.unix_timestamp().into());
    }
    if let Some(t) = &args.end_time {
        input.insert("EndTime".into(), parse_time(t)?.unix_timestamp().into());
    }
    let body = Value::Object(input).to_string();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start: {e}"))?;
    let answer = runtime.block_on(tresor_host::signed::json_call(
        &client,
        "cloudtrail",
        TARGET,
        &body,
    ))?;
    let answer = api_answer(answer)?;
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&answer).map_err(|e| e.to_string())?
        );
    } else {
        print_report(&answer);
    }
    Ok(if answer["SafeToRevoke"].as_bool() == Some(true) {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(NOT_SAFE)
    })
}

fn parse_duration(text: &str) -> Result<time::Duration, String> {
    let bad = || format!("'{text}' is not a duration like 30m, 12h or 7d");
    let (number, unit) = text.split_at(text.len().saturating_sub(1));
    let n: i64 = number.parse().map_err(|_| bad())?;
    match unit {
        "s" => Ok(time::Duration::seconds(n)),
        "m" => Ok(time::Duration::minutes(n)),
        "h" => Ok(time::Duration::hours(n)),
        "d" => Ok(time::Duration::days(n)),
        _ => Err(bad()),
    }
}

fn parse_time(text: &str) -> Result<OffsetDateTime, String> {
    OffsetDateTime::parse(text, &Rfc3339)
        .map_err(|_| format!("'{text}' is not an RFC 3339 time like 2026-11-26T08:00:00Z"))
}

/// The operation's answer, or its AWS error as one line.
fn api_answer(answer: tresor_host::signed::Answer) -> Result<Value, String> {
    let value: Value = serde_json::from_str(&answer.body)
        .map_err(|_| format!("unexpected answer (HTTP {})", answer.status))?;
    if answer.status != 200 {
        let code = value["__type"].as_str().unwrap_or("error");
        let message = value["Message"]
            .as_str()
            .or_else(|| value["message"].as_str())
            .unwrap_or("");
        return Err(format!("{code}: {message}"));
    }
    Ok(value)
}

fn time_of(v: &Value) -> String {
    v.as_f64()
        .and_then(|s| OffsetDateTime::from_unix_timestamp(s as i64).ok())
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| "-".into())
}

fn labels(v: &Value) -> String {
    let labels: Vec<&str> = v
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    if labels.is_empty() {
        "(no label)".into()
    } else {
        labels.join(",")
    }
}

fn reader_line(r: &Value) -> String {
    format!(
        "{} from {}: version {} ({}), last read {}",
        r["Principal"].as_str().unwrap_or("?"),
        r["SourceIPAddress"].as_str().unwrap_or("?"),
        r["VersionId"].as_str().unwrap_or("?"),
        labels(&r["VersionStages"]),
        time_of(&r["LastReadTime"])
    )
}

fn print_report(a: &Value) {
    println!(
        "secret {} ({})",
        a["Name"].as_str().unwrap_or("?"),
        a["ARN"].as_str().unwrap_or("?")
    );
    println!("versions now:");
    for v in a["Versions"].as_array().into_iter().flatten() {
        println!(
            "  {}  {:<24} created {}",
            v["VersionId"].as_str().unwrap_or("?"),
            labels(&v["VersionStages"]),
            time_of(&v["CreatedDate"])
        );
    }
    println!("last rotation: {}", time_of(&a["LastRotatedDate"]));
    let readers = a["Readers"].as_array().cloned().unwrap_or_default();
    println!("readers ({}):", readers.len());
    println!(
        "  {:<60} {:<16} {:<38} {:<24} {:<21} {:>6}  VIA",
        "PRINCIPAL", "SOURCE", "VERSION", "LABELS NOW", "LAST READ", "READS"
    );
    for r in &readers {
        let via: Vec<&str> = r["Via"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        println!(
            "  {:<60} {:<16} {:<38} {:<24} {:<21} {:>6}  {}",
            r["Principal"].as_str().unwrap_or("?"),
            r["SourceIPAddress"].as_str().unwrap_or("?"),
            r["VersionId"].as_str().unwrap_or("?"),
            labels(&r["VersionStages"]),
            time_of(&r["LastReadTime"]),
            r["ReadCount"].as_u64().unwrap_or(0),
            via.join(",")
        );
    }
    let still = a["StillOnOldVersion"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    if still.is_empty() {
        println!(
            "verdict: safe to revoke — every reader seen since the last rotation reads AWSCURRENT"
        );
    } else {
        println!(
            "verdict: NOT safe to revoke — {} reader(s) still on the old token:",
            still.len()
        );
        for r in &still {
            println!("  - {}", reader_line(r));
        }
    }
    let unseen = a["NotSeenSinceRotation"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    if !unseen.is_empty() {
        println!(
            "note: {} reader(s) have not read since the rotation and last got an old version; \
             a reader that fetches the token only at start-up (an instance at boot) still holds \
             it until it is refreshed:",
            unseen.len()
        );
        for r in &unseen {
            println!("  - {}", reader_line(r));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("7d").ok(), Some(time::Duration::days(7)));
        assert_eq!(
            parse_duration("30m").ok(),
            Some(time::Duration::minutes(30))
        );
        assert!(parse_duration("7w").is_err());
        assert!(parse_duration("d").is_err());
    }

    #[test]
    fn errors_read_as_one_line() {
        let answer = |status, body: &str| tresor_host::signed::Answer {
            status,
            body: body.into(),
        };
        let e = api_answer(answer(
            400,
            r#"{"__type":"ResourceNotFoundException","Message":"no such secret"}"#,
        ));
        assert_eq!(
            e.err().as_deref(),
            Some("ResourceNotFoundException: no such secret")
        );
        assert!(api_answer(answer(502, "<html>")).is_err());
        assert!(api_answer(answer(200, r#"{"SafeToRevoke":true}"#)).is_ok());
    }
}
