//! Lambda's stored records, their keys, and the parsing of names, ARNs, runtimes and
//! handlers.
//!
//! Key layout: `acct/<account>/region/<region>/lambda/function/<name>` holds the
//! [`FunctionRecord`] (configuration and resource policy), `…/lambda/code/<name>` the
//! [`CodeRecord`]: the deployment package sealed under the root key (AES-256-GCM, AAD: the
//! function ARN and the code's SHA-256), never plaintext.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::errors::{LambdaError, function_not_found, invalid_parameter};

/// The service principal Lambda assumes execution roles as.
pub const LAMBDA_PRINCIPAL: &str = "lambda.amazonaws.com";

/// Lambda's answer to a package that is not a zip archive (observed behavior).
pub const UNZIP_MESSAGE: &str =
    "Could not unzip uploaded file. Please check your file, then try to upload again.";

pub const RECORD_VERSION: u32 = 1;

/// The runtimes tresor runs (a subset of the model's `Runtime` enum).
pub const PYTHON_RUNTIMES: &[&str] = &[
    "python3.9",
    "python3.10",
    "python3.11",
    "python3.12",
    "python3.13",
];
pub const NODE_RUNTIMES: &[&str] = &["nodejs18.x", "nodejs20.x", "nodejs22.x"];

/// Which host interpreter runs a runtime.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RuntimeFamily {
    Python,
    Node,
}

pub fn runtime_family(runtime: &str) -> Option<RuntimeFamily> {
    if PYTHON_RUNTIMES.contains(&runtime) {
        Some(RuntimeFamily::Python)
    } else if NODE_RUNTIMES.contains(&runtime) {
        Some(RuntimeFamily::Node)
    } else {
        None
    }
}

/// `Timeout` default and maximum in seconds (CreateFunction API reference).
pub const DEFAULT_TIMEOUT: i64 = 3;
pub const MAX_TIMEOUT: i64 = 900;
pub const DEFAULT_MEMORY: i64 = 128;

/// One function's configuration and resource policy (`$LATEST`; tresor publishes no
/// versions). `Debug` leaves the environment variables' values out.
#[derive(Clone, Serialize, Deserialize)]
pub struct FunctionRecord {
    pub v: u32,
    pub name: String,
    pub arn: String,
    pub account: String,
    pub region: String,
    pub runtime: String,
    pub handler: String,
    pub role: String,
    #[serde(default)]
    pub description: String,
    pub timeout: i64,
    pub memory_size: i64,
    /// `Environment.Variables`. The values may be secrets: never logged.
    #[serde(default)]
    pub environment: Option<BTreeMap<String, String>>,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    pub code_sha256: String,
    pub code_size: u64,
    pub last_modified: String,
    pub revision_id: String,
    /// The statements of the resource policy, in AWS's JSON form, in order of addition.
    #[serde(default)]
    pub policy: Vec<serde_json::Value>,
}

impl std::fmt::Debug for FunctionRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let variables: Vec<&String> = self.environment.iter().flat_map(|e| e.keys()).collect();
        f.debug_struct("FunctionRecord")
            .field("arn", &self.arn)
            .field("runtime", &self.runtime)
            .field("handler", &self.handler)
            .field("role", &self.role)
            .field("timeout", &self.timeout)
            .field("environment", &variables)
            .field("code_sha256", &self.code_sha256)
            .field("revision_id", &self.revision_id)
            .finish_non_exhaustive()
    }
}

/// The sealed deployment package.
#[derive(Serialize, Deserialize)]
pub struct CodeRecord {
    pub v: u32,
    pub code_sha256: String,
    #[serde(with = "tresor_wire::blob")]
    pub sealed: Vec<u8>,
}

pub fn code_aad(arn: &str, sha256: &str) -> Vec<u8> {
    format!("tresor/lambda/code|{arn}|{sha256}").into_bytes()
}

pub mod keys {
    fn base(account: &str, region: &str) -> String {
        format!("acct/{account}/region/{region}/lambda/")
    }

    pub fn function(account: &str, region: &str, name: &str) -> String {
        format!("{}function/{name}", base(account, region))
    }

    pub fn function_prefix(account: &str, region: &str) -> String {
        format!("{}function/", base(account, region))
    }

    pub fn code(account: &str, region: &str, name: &str) -> String {
        format!("{}code/{name}", base(account, region))
    }
}

pub fn function_arn(region: &str, account: &str, name: &str) -> String {
    format!(
        "arn:{}:lambda:{region}:{account}:function:{name}",
        tresor_policy::arn::partition_of_region(region)
    )
}

/// `CodeSha256`: the base64 of the package's SHA-256, as Lambda reports it.
pub fn code_sha256(zip: &[u8]) -> String {
    STANDARD.encode(ring::digest::digest(&ring::digest::SHA256, zip).as_ref())
}

/// `LastModified`: `2019-09-24T18:20:40.198+0000` (ISO 8601 with milliseconds and a
/// numeric offset, as Lambda returns it).
pub fn last_modified(now: OffsetDateTime) -> String {
    let t = now.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}+0000",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond()
    )
}

/// A function as a request names it: by name, full ARN or partial ARN
/// (`123456789012:function:name`), with an optional `:qualifier`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FunctionRef {
    pub account: String,
    pub region: String,
    pub name: String,
    pub qualifier: Option<String>,
}

impl FunctionRef {
    pub fn arn(&self) -> String {
        function_arn(&self.region, &self.account, &self.name)
    }

    /// The ARN as the request named it (with its qualifier), for not-found messages.
    pub fn qualified_arn(&self) -> String {
        match &self.qualifier {
            Some(q) => format!("{}:{q}", self.arn()),
            None => self.arn(),
        }
    }
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn valid_qualifier(q: &str) -> bool {
    !q.is_empty()
        && q.len() <= 128
        && q.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'$')
}

/// Parses a `FunctionName` the way Lambda accepts it (model pattern of
/// `NamespacedFunctionName`): `name`, `name:qualifier`, `account:function:name[:q]`,
/// `arn:aws:lambda:region:account:function:name[:q]`. The caller's account and region fill
/// in what a short form leaves out.
pub fn parse_function_name(
    input: &str,
    account: &str,
    region: &str,
) -> Result<FunctionRef, LambdaError> {
    let bad = || pattern_error("functionName", input);
    if input.is_empty() || input.len() > 256 {
        return Err(bad());
    }
    let parts: Vec<&str> = input.split(':').collect();
    let (acct, reg, name, qualifier) = match parts.as_slice() {
        [name] => (account, region, *name, None),
        [name, q] => (account, region, *name, Some(*q)),
        [acct, "function", name] => (*acct, region, *name, None),
        [acct, "function", name, q] => (*acct, region, *name, Some(*q)),
        ["arn", partition, "lambda", reg, acct, "function", name]
            if partition.starts_with("aws") =>
        {
            (*acct, *reg, *name, None)
        }
        ["arn", partition, "lambda", reg, acct, "function", name, q]
            if partition.starts_with("aws") =>
        {
            (*acct, *reg, *name, Some(*q))
        }
        _ => return Err(bad()),
    };
    if !valid_name(name)
        || acct.len() != 12
        || !acct.bytes().all(|b| b.is_ascii_digit())
        || reg.is_empty()
        || qualifier.is_some_and(|q| !valid_qualifier(q))
    {
        return Err(bad());
    }
    Ok(FunctionRef {
        account: acct.to_string(),
        region: reg.to_string(),
        name: name.to_string(),
        qualifier: qualifier.map(str::to_string),
    })
}

/// Only `$LATEST` exists: any other qualifier names a version or alias tresor does not have.
pub fn check_qualifier(f: &FunctionRef, explicit: Option<&str>) -> Result<(), LambdaError> {
    for q in [f.qualifier.as_deref(), explicit].into_iter().flatten() {
        if q != "$LATEST" {
            return Err(function_not_found(&format!("{}:{q}", f.arn())));
        }
    }
    if let (Some(a), Some(b)) = (f.qualifier.as_deref(), explicit)
        && a != b
    {
        return Err(invalid_parameter(
            "The derived qualifier from the function name does not match the specified qualifier.",
        ));
    }
    Ok(())
}

/// AWS's constraint wording for a value failing its pattern.
pub fn pattern_error(member: &str, value: &str) -> LambdaError {
    let shown: String = value.chars().take(256).collect();
    LambdaError::Validation(format!(
        "1 validation error detected: Value '{shown}' at '{member}' failed to satisfy constraint: Member must satisfy regular expression pattern: {}",
        match member {
            "functionName" => {
                r"(arn:(aws[a-zA-Z-]*)?:lambda:)?([a-z]{2}((-gov)|(-iso([a-z]?)))?-[a-z]+-\d{1}:)?(\d{12}:)?(function:)?([a-zA-Z0-9-_\.]+)(:(\$LATEST(\.PUBLISHED)?|[a-zA-Z0-9-_]+))?"
            }
            "role" => r"arn:(aws[a-zA-Z-]*)?:iam::\d{12}:role/?[a-zA-Z_0-9+=,.@\-_/]+",
            "statementId" => r"([a-zA-Z0-9-_]+)",
            "action" => r"(lambda:[*]|lambda:[a-zA-Z]+|[*])",
            "handler" => r"[^\s]+",
            _ => ".*",
        }
    ))
}

/// A handler split into module path and attribute: `dir/file.function` → (`dir/file`,
/// `function`). Python takes the module from the last dot; Node the same
/// (`index.handler` → `index.js`/`index.mjs`, export `handler`).
pub fn parse_handler(handler: &str) -> Option<(&str, &str)> {
    let (module, function) = handler.rsplit_once('.')?;
    if module.is_empty() || function.is_empty() || handler.chars().any(char::is_whitespace) {
        return None;
    }
    Some((module, function))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn function_names_in_every_form_resolve() {
        let r = |s: &str| parse_function_name(s, "111122223333", "us-east-1").ok();
        let plain = FunctionRef {
            account: "111122223333".into(),
            region: "us-east-1".into(),
            name: "my-fn".into(),
            qualifier: None,
        };
        assert_eq!(r("my-fn"), Some(plain.clone()));
        assert_eq!(r("111122223333:function:my-fn"), Some(plain.clone()));
        assert_eq!(
            r("arn:aws:lambda:us-east-1:111122223333:function:my-fn"),
            Some(plain.clone())
        );
        let q = r("arn:aws:lambda:eu-west-1:444455556666:function:f_1:$LATEST");
        assert_eq!(q.as_ref().map(|f| f.region.as_str()), Some("eu-west-1"));
        assert_eq!(q.as_ref().map(|f| f.account.as_str()), Some("444455556666"));
        assert_eq!(q.and_then(|f| f.qualifier), Some("$LATEST".to_string()));
        for bad in [
            "",
            "a b",
            "arn:aws:s3:::bucket",
            "x:y:z",
            "f/g",
            &"a".repeat(65),
        ] {
            assert!(r(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn qualifiers_other_than_latest_are_not_found() {
        let f = parse_function_name("f:live", "111122223333", "us-east-1").ok();
        let e = f.map(|f| check_qualifier(&f, None));
        assert!(
            matches!(e, Some(Err(LambdaError::ResourceNotFound(m))) if m.ends_with("function:f:live"))
        );
        let f = parse_function_name("f", "111122223333", "us-east-1").ok();
        assert!(f.is_some_and(|f| check_qualifier(&f, Some("$LATEST")).is_ok()));
    }

    #[test]
    fn handlers_split_at_the_last_dot() {
        assert_eq!(parse_handler("index.handler"), Some(("index", "handler")));
        assert_eq!(
            parse_handler("src/app.main.run"),
            Some(("src/app.main", "run"))
        );
        for bad in ["handler", ".x", "x.", "a b.c", ""] {
            assert_eq!(parse_handler(bad), None, "{bad}");
        }
    }

    #[test]
    fn sha_and_dates_look_like_lambdas() {
        assert_eq!(
            code_sha256(b""),
            "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="
        );
        let t = time::macros::datetime!(2019-09-24 18:20:40.198 UTC);
        assert_eq!(last_modified(t), "2019-09-24T18:20:40.198+0000");
    }
}
