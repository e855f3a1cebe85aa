//! `tresor who-reads <secret-id>`: who read which version of a secret, and is it safe to
//! revoke the old value? A client of the server's CloudTrail extension `ListSecretReaders`
//! (the analysis is the server's, over its audit log), signed with SigV4 like any AWS client,
//! with credentials found the AWS CLI's way: `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`
//! (`AWS_SESSION_TOKEN`), else the shared credentials file's profile.
//!
//! Exit status: 0 safe to revoke, 3 some reader is still on an old version, 1 an error.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use ring::{digest, hmac};
use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

const TARGET: &str = "com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101.ListSecretReaders";
const DEFAULT_ENDPOINT: &str = "http://127.0.0.1:4566";
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
    /// http://127.0.0.1:4566]. Plain HTTP only.
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
    let profile = args
        .profile
        .clone()
        .or_else(|| env("AWS_PROFILE"))
        .unwrap_or_else(|| "default".into());
    let config = profile_settings(&config_file(), &config_section(&profile));
    let creds = credentials(&profile)?;
    let endpoint = args
        .endpoint_url
        .clone()
        .or_else(|| env("AWS_ENDPOINT_URL"))
        .or_else(|| setting(&config, "endpoint_url"))
        .unwrap_or_else(|| DEFAULT_ENDPOINT.into());
    let region = args
        .region
        .clone()
        .or_else(|| env("AWS_REGION"))
        .or_else(|| env("AWS_DEFAULT_REGION"))
        .or_else(|| setting(&config, "region"))
        .unwrap_or_else(|| "us-east-1".into());
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
    let answer = call(&endpoint, &region, &creds, &body, now)?;
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

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
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

struct Credentials {
    access_key_id: String,
    secret_access_key: String,
    session_token: Option<String>,
}

fn home_file(var: &str, default: &str) -> PathBuf {
    env(var)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env("HOME").unwrap_or_default()).join(default))
}

fn config_file() -> PathBuf {
    home_file("AWS_CONFIG_FILE", ".aws/config")
}

fn config_section(profile: &str) -> String {
    if profile == "default" {
        "default".into()
    } else {
        format!("profile {profile}")
    }
}

/// The `key = value` lines of `[section]` in an INI-style AWS file.
fn profile_settings(path: &PathBuf, section: &str) -> Vec<(String, String)> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Vec::new();
    };
    let mut inside = false;
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            inside = name.trim() == section;
        } else if inside && let Some((k, v)) = line.split_once('=') {
            out.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    out
}

fn setting(settings: &[(String, String)], key: &str) -> Option<String> {
    settings
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.clone())
}

fn credentials(profile: &str) -> Result<Credentials, String> {
    if let (Some(id), Some(secret)) = (env("AWS_ACCESS_KEY_ID"), env("AWS_SECRET_ACCESS_KEY")) {
        return Ok(Credentials {
            access_key_id: id,
            secret_access_key: secret,
            session_token: env("AWS_SESSION_TOKEN"),
        });
    }
    let path = home_file("AWS_SHARED_CREDENTIALS_FILE", ".aws/credentials");
    let s = profile_settings(&path, profile);
    match (
        setting(&s, "aws_access_key_id"),
        setting(&s, "aws_secret_access_key"),
    ) {
        (Some(id), Some(secret)) => Ok(Credentials {
            access_key_id: id,
            secret_access_key: secret,
            session_token: setting(&s, "aws_session_token"),
        }),
        _ => Err(format!(
            "no credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or put profile '{profile}' in {}",
            path.display()
        )),
    }
}

fn hex_sha256(data: &[u8]) -> String {
    hex(digest::digest(&digest::SHA256, data).as_ref())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn hmac_sha256(key: &[u8], data: &str) -> Vec<u8> {
    hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), data.as_bytes())
        .as_ref()
        .to_vec()
}

/// The headers of a SigV4-signed awsJson1.1 POST to `/` (AWS General Reference, "Create a
/// signed AWS API request").
fn signed_headers(
    host: &str,
    region: &str,
    creds: &Credentials,
    body: &str,
    now: OffsetDateTime,
) -> Vec<(String, String)> {
    let amz_date = format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        now.year(),
        u8::from(now.month()),
        now.day(),
        now.hour(),
        now.minute(),
        now.second()
    );
    let date = &amz_date[..8];
    let mut headers = vec![
        (
            "content-type".to_string(),
            "application/x-amz-json-1.1".to_string(),
        ),
        ("host".to_string(), host.to_string()),
        ("x-amz-date".to_string(), amz_date.clone()),
    ];
    if let Some(token) = &creds.session_token {
        headers.push(("x-amz-security-token".to_string(), token.clone()));
    }
    headers.push(("x-amz-target".to_string(), TARGET.to_string()));
    let names: Vec<&str> = headers.iter().map(|(k, _)| k.as_str()).collect();
    let signed = names.join(";");
    let canonical_headers: String = headers.iter().map(|(k, v)| format!("{k}:{v}\n")).collect();
    let canonical = format!(
        "POST\n/\n\n{canonical_headers}\n{signed}\n{}",
        hex_sha256(body.as_bytes())
    );
    let scope = format!("{date}/{region}/cloudtrail/aws4_request");
    let to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
        hex_sha256(canonical.as_bytes())
    );
    let mut key = hmac_sha256(format!("AWS4{}", creds.secret_access_key).as_bytes(), date);
    for part in [region, "cloudtrail", "aws4_request"] {
        key = hmac_sha256(&key, part);
    }
    let signature = hex(&hmac_sha256(&key, &to_sign));
    headers.push((
        "authorization".to_string(),
        format!(
            "AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders={signed}, Signature={signature}",
            creds.access_key_id
        ),
    ));
    headers
}

fn call(
    endpoint: &str,
    region: &str,
    creds: &Credentials,
    body: &str,
    now: OffsetDateTime,
) -> Result<Value, String> {
    let Some(host) = endpoint.strip_prefix("http://") else {
        return Err(format!(
            "endpoint {endpoint}: only http:// endpoints are supported by this command"
        ));
    };
    let host = host.trim_end_matches('/');
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(std::time::Duration::from_secs(60)))
        .http_status_as_error(false)
        .build()
        .into();
    let mut request = agent.post(format!("http://{host}/"));
    for (k, v) in signed_headers(host, region, creds, body, now) {
        if k != "host" {
            request = request.header(k, v);
        }
    }
    let mut response = request
        .send(body.as_bytes())
        .map_err(|e| format!("cannot reach {endpoint}: {e}"))?;
    let status = response.status().as_u16();
    let text = response
        .body_mut()
        .read_to_string()
        .map_err(|e| format!("reading the answer: {e}"))?;
    let value: Value =
        serde_json::from_str(&text).map_err(|_| format!("unexpected answer (HTTP {status})"))?;
    if status != 200 {
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
    fn durations_and_signatures() {
        assert_eq!(parse_duration("7d").ok(), Some(time::Duration::days(7)));
        assert!(parse_duration("7w").is_err());
        assert!(parse_duration("d").is_err());
        // AWS General Reference's example key derivation (secret, 20150830, us-east-1, iam).
        let mut key = hmac_sha256(b"AWS4wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "20150830");
        for part in ["us-east-1", "iam", "aws4_request"] {
            key = hmac_sha256(&key, part);
        }
        assert_eq!(
            hex(&key),
            "c4afb1cc5771d871763a393e44b703571b55cc28424d1a5e86da6ed3c154a4b9"
        );
    }
}
