//! Fuzz-style robustness tests of the awsJson1.1 and awsQuery input decoders, on stable Rust
//! with proptest: arbitrary bytes and structurally plausible (but hostile) inputs must never
//! panic, must finish in bounded time, and an error must never echo a value it rejected.
//!
//! A normal `cargo test` runs 2,000 cases per property; `PROPTEST_CASES=200000 cargo test -p
//! tresor-wire --test fuzz_decode` is the long mode (see docs/robustness.md).

#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use serde::Deserialize;
use time::OffsetDateTime;
use tresor_wire::json;
use tresor_wire::query::{self, QueryParams};

/// Per-case wall-time bound: generous for a debug build on a loaded 2-core machine.
const CASE_BUDGET: Duration = Duration::from_secs(5);

/// A marker a hostile client might send in a wrong member; no error may repeat it.
const MARKER: &str = "ZQXJ7robustMARKER";

/// Any Unicode text up to `max` characters (cheaper to generate than a `\\PC*` regex).
fn any_text(max: usize) -> impl Strategy<Value = String> {
    prop::collection::vec(any::<char>(), 0..=max).prop_map(String::from_iter)
}

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(2_000),
        max_shrink_iters: 256,
        // No regression files: the suite must not write into the source tree.
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

#[derive(Deserialize, Debug)]
#[serde(rename_all = "PascalCase")]
struct Tag {
    key: String,
    #[serde(default)]
    value: String,
}

#[derive(Deserialize, Debug)]
enum Status {
    Active,
    Inactive,
}

#[derive(Deserialize, Debug)]
#[serde(rename_all = "PascalCase")]
struct Inner {
    name: Option<String>,
    depth: Option<i64>,
    inner: Option<Box<Inner>>,
}

/// An input shaped like the operations' inputs: every member type the decoders support.
#[derive(Deserialize, Debug)]
#[serde(rename_all = "PascalCase")]
struct JsonInput {
    name: String,
    secret_string: Option<String>,
    #[serde(default, with = "tresor_wire::blob::option")]
    secret_binary: Option<Vec<u8>>,
    max_results: Option<i32>,
    duration_seconds: Option<u64>,
    ratio: Option<f64>,
    force: Option<bool>,
    #[serde(default)]
    tags: Vec<Tag>,
    #[serde(default)]
    context: BTreeMap<String, String>,
    #[serde(default, with = "tresor_wire::json::epoch_seconds::option")]
    when: Option<OffsetDateTime>,
    status: Option<Status>,
    outer: Option<Inner>,
    #[serde(default)]
    filters: Vec<BTreeMap<String, Vec<String>>>,
}

#[derive(Deserialize, Debug)]
#[serde(rename_all = "PascalCase")]
struct QueryInput {
    user_name: String,
    path: Option<String>,
    max_items: Option<i32>,
    duration_seconds: Option<u32>,
    ratio: Option<f64>,
    set_as_default: Option<bool>,
    #[serde(default)]
    tags: Vec<Tag>,
    #[serde(default)]
    transitive_tag_keys: Vec<String>,
    #[serde(default)]
    context: BTreeMap<String, String>,
    status: Option<Status>,
    outer: Option<Inner>,
}

fn timed<R>(what: &str, f: impl FnOnce() -> R) -> R {
    let started = Instant::now();
    let out = f();
    let took = started.elapsed();
    assert!(took < CASE_BUDGET, "{what} took {took:?}");
    out
}

fn check_json(body: &[u8]) {
    let what = format!(
        "json::decode of {} bytes starting {:?}",
        body.len(),
        String::from_utf8_lossy(&body[..body.len().min(40)])
    );
    timed(&what, || {
        for r in [
            json::decode::<JsonInput>(body).err(),
            json::decode::<serde_json::Value>(body).err(),
            json::decode::<BTreeMap<String, String>>(body).err(),
        ]
        .into_iter()
        .flatten()
        {
            let text = format!("{:?} {:?}", r.code, r.message);
            // A value outside an enum's set is the one echo allowed: AWS's own validation
            // message quotes it ("Value 'x' at 'type' failed to satisfy constraint: Member must
            // satisfy enum value set", observed behavior), and the services answer the same.
            if !text.contains("unknown variant") {
                assert!(!text.contains(MARKER), "an error echoes the input: {text}");
            }
        }
    });
}

fn check_query(form: &[u8]) {
    let what = format!(
        "query decode of {} bytes starting {:?}",
        form.len(),
        String::from_utf8_lossy(&form[..form.len().min(60)])
    );
    timed(&what, || match QueryParams::parse(form) {
        Ok(params) => {
            let _ = params.action();
            let _ = params.list("Tags");
            let _ = params.struct_list("Tags");
            let _ = params.int("MaxItems");
            let _ = params.bool("SetAsDefault");
            let _ = params.required("UserName");
            for r in [
                query::decode::<QueryInput>(&params).err(),
                query::decode::<BTreeMap<String, String>>(&params).err(),
                params.decode::<Tag>().err(),
            ]
            .into_iter()
            .flatten()
            {
                let _ = format!("{:?} {:?}", r.code, r.message);
            }
        }
        Err(e) => {
            let _ = format!("{:?} {:?}", e.code, e.message);
        }
    });
}

/// A JSON value, possibly of the wrong type for the member it lands in.
fn json_value() -> impl Strategy<Value = serde_json::Value> {
    use serde_json::Value;
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        Just(Value::from(1e308)),
        Just(Value::from(-0.0)),
        any_text(20).prop_map(Value::from),
        Just(Value::from(MARKER)),
        Just(Value::from("Active")),
        Just(Value::from("aGVsbG8=")),
        Just(Value::from("!!notbase64==")),
    ];
    leaf.prop_recursive(2, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(serde_json::Value::Array),
            prop::collection::btree_map(member_name(), inner, 0..8)
                .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}

fn member_name() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "Name",
            "SecretString",
            "SecretBinary",
            "MaxResults",
            "DurationSeconds",
            "Ratio",
            "Force",
            "Tags",
            "Key",
            "Value",
            "Context",
            "When",
            "Status",
            "Outer",
            "Inner",
            "Depth",
            "Filters",
            "",
        ])
        .prop_map(str::to_owned),
        "[A-Za-z]{1,12}",
    ]
}

/// Objects whose members have the right names and any (often wrong) values.
fn json_object() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::btree_map(member_name(), json_value(), 0..8).prop_map(|m| {
        serde_json::to_vec(&serde_json::Value::Object(m.into_iter().collect())).unwrap()
    })
}

/// Valid JSON text mangled by a few byte edits: truncation, insertion, replacement.
fn mangled_json() -> impl Strategy<Value = Vec<u8>> {
    (
        json_object(),
        prop::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..3), 0..4),
    )
        .prop_map(|(mut body, edits)| {
            for (at, byte, op) in edits {
                if body.is_empty() {
                    break;
                }
                let i = at.index(body.len());
                match op {
                    0 => body.truncate(i),
                    1 => body.insert(i, byte),
                    _ => body[i] = byte,
                }
            }
            body
        })
}

fn query_name() -> impl Strategy<Value = String> {
    let seg = prop_oneof![
        prop::sample::select(vec![
            "Action",
            "UserName",
            "Path",
            "MaxItems",
            "DurationSeconds",
            "Ratio",
            "SetAsDefault",
            "Tags",
            "TransitiveTagKeys",
            "Context",
            "Status",
            "Outer",
            "Inner",
            "Name",
            "Depth",
            "member",
            "entry",
            "key",
            "value",
            "Key",
            "Value",
            "0",
            "1",
            "2",
            "10",
            "-1",
            "4294967295",
            "4294967296",
            "99999999999999999999",
            "",
        ])
        .prop_map(str::to_owned),
        "[A-Za-z0-9]{1,8}",
    ];
    prop::collection::vec(seg, 1..7).prop_map(|s| s.join("."))
}

fn query_value() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        Just("true".to_owned()),
        Just("TRUE".to_owned()),
        Just("Active".to_owned()),
        Just("+900".to_owned()),
        Just("-9223372036854775809".to_owned()),
        Just("NaN".to_owned()),
        Just("1e999".to_owned()),
        Just(MARKER.to_owned()),
        "[ -~]{0,20}",
        any_text(10),
    ]
}

fn query_form() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec((query_name(), query_value()), 0..16).prop_map(|pairs| {
        form_urlencoded::Serializer::new(String::new())
            .extend_pairs(pairs)
            .finish()
            .into_bytes()
    })
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn json_arbitrary_bytes(body in prop::collection::vec(any::<u8>(), 0..512)) {
        check_json(&body);
    }

    #[test]
    fn json_structured(body in json_object()) {
        check_json(&body);
    }

    #[test]
    fn json_mangled(body in mangled_json()) {
        check_json(&body);
    }

    #[test]
    fn query_arbitrary_bytes(form in prop::collection::vec(any::<u8>(), 0..512)) {
        check_query(&form);
    }

    #[test]
    fn query_structured(form in query_form()) {
        check_query(&form);
    }

    #[test]
    fn query_raw_text(form in "[A-Za-z0-9.=&%+-]{0,200}") {
        check_query(form.as_bytes());
    }
}

/// Extremes the generators reach only rarely: deep nesting, huge strings, huge lists and
/// sparse huge indices, each about as large as the server's default 1 MiB body limit admits
/// (decoding time grows linearly with the input; a debug build decodes ~1 MiB well within the
/// case budget).
#[test]
fn json_extremes_are_bounded() {
    let deep_array = format!("{{\"Name\":{}{}}}", "[".repeat(10_000), "]".repeat(10_000));
    let deep_object = format!(
        "{{\"Name\":\"n\",\"Outer\":{}{{}}{}}}",
        "{\"Inner\":".repeat(10_000),
        "}".repeat(10_000)
    );
    let unclosed = "{\"Outer\":".repeat(100_000);
    let huge_string = format!("{{\"Name\":\"{}\"}}", "a".repeat(1 << 20));
    let escapes = format!("{{\"Name\":\"{}\"}}", "\\u0000".repeat(200_000));
    let bad_surrogates = format!("{{\"Name\":\"{}\"}}", "\\ud800".repeat(100_000));
    let many_tags = format!(
        "{{\"Name\":\"n\",\"Tags\":[{}]}}",
        (0..20_000)
            .map(|i| format!("{{\"Key\":\"k{i}\",\"Value\":\"v\"}}"))
            .collect::<Vec<_>>()
            .join(",")
    );
    let many_keys = format!(
        "{{\"Name\":\"n\",\"Context\":{{{}}}}}",
        (0..50_000)
            .map(|i| format!("\"k{i}\":\"v\""))
            .collect::<Vec<_>>()
            .join(",")
    );
    let duplicate_members = format!("{{{}\"Name\":\"n\"}}", "\"Name\":\"x\",".repeat(50_000));
    let big_number = format!("{{\"Name\":\"n\",\"MaxResults\":1{}}}", "0".repeat(100_000));
    for body in [
        deep_array,
        deep_object,
        unclosed,
        huge_string,
        escapes,
        bad_surrogates,
        many_tags,
        many_keys,
        duplicate_members,
        big_number,
    ] {
        check_json(body.as_bytes());
    }
    let mut invalid_utf8 = b"{\"Name\":\"".to_vec();
    invalid_utf8.extend_from_slice(&[0xff, 0xfe, 0xc3, 0x28, 0xed, 0xa0, 0x80]);
    invalid_utf8.extend_from_slice(b"\"}");
    check_json(&invalid_utf8);
}

#[test]
fn query_extremes_are_bounded() {
    let many_tags = (0..10_000)
        .map(|i| format!("Tags.member.{i}.Key=k{i}&Tags.member.{i}.Value=v"))
        .collect::<Vec<_>>()
        .join("&");
    let sparse = "UserName=u&Tags.member.4294967295.Key=a&Tags.member.1.Key=b&TransitiveTagKeys.member.4000000000=x".to_owned();
    // The decoder recurses as deep as the *type* does: a 10,000-segment path into a
    // non-recursive input is harmless, while only a recursive input type (no operation has one)
    // would follow it all the way down (this one overflows a 2 MiB test-thread stack past a few
    // thousand levels), so the recursive type gets a moderate depth.
    let deep = format!("UserName=u&Outer{}=x", ".Inner".repeat(200));
    let deep_flat = format!("UserName=u&Tags{}.Key=x", ".member.1".repeat(10_000));
    let deep_unknown = format!("UserName=u&Nope{}=x", ".Inner".repeat(10_000));
    let long_name = format!("{}=v", "A".repeat(1 << 20));
    let long_value = format!("UserName={}", "%41".repeat(1 << 18));
    let duplicate = "UserName=a&UserName=b".to_owned();
    let bad_percent = "UserName=%&%zz=%C3%28&%FF%FE=1".to_owned();
    let separators = "&".repeat(1 << 20);
    for form in [
        format!("UserName=u&{many_tags}"),
        sparse,
        deep,
        deep_flat,
        deep_unknown,
        long_name,
        long_value,
        duplicate,
        bad_percent,
        separators,
    ] {
        check_query(form.as_bytes());
    }
}
