//! awsQuery input: the flattened form parameters of IAM and STS requests (spec §1.2).
//!
//! botocore flattens nested input as `Outer.Inner=v`, lists as `Name.member.N` (1-based),
//! lists of structures as `Tags.member.1.Key=k`, maps as `Map.entry.N.key/value`, and sends
//! an empty list as `Name=`.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::error::AwsError;
use crate::service::Protocol;
use crate::validate::member_path;

mod de;

/// The decoded parameters of one awsQuery request.
#[derive(Clone, Debug, Default)]
pub struct QueryParams {
    params: BTreeMap<String, String>,
}

impl QueryParams {
    /// Parses `application/x-www-form-urlencoded` bytes (a POST body or a GET query string).
    /// A parameter given twice is AWS's `MalformedQueryString`-style input error.
    pub fn parse(form: &[u8]) -> Result<Self, AwsError> {
        let mut params = BTreeMap::new();
        for (k, v) in form_urlencoded::parse(form) {
            if params.insert(k.to_string(), v.to_string()).is_some() {
                return Err(AwsError::client(
                    "MalformedQueryString",
                    format!("The parameter {k} is given more than once."),
                ));
            }
        }
        Ok(QueryParams { params })
    }

    /// Merges parameters of a GET query string and a POST body (presigned POSTs carry auth
    /// parameters in the URL and the operation in the body).
    pub fn extend(&mut self, other: QueryParams) -> Result<(), AwsError> {
        for (k, v) in other.params {
            if self.params.contains_key(&k) {
                return Err(AwsError::client(
                    "MalformedQueryString",
                    format!("The parameter {k} is given more than once."),
                ));
            }
            self.params.insert(k, v);
        }
        Ok(())
    }

    pub fn action(&self) -> Option<&str> {
        self.get("Action")
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.params.get(name).map(String::as_str)
    }

    /// A required member: absent is AWS's `ValidationError` "Value null at 'x' … must not be null".
    pub fn required(&self, name: &str) -> Result<&str, AwsError> {
        self.get(name).ok_or_else(|| {
            AwsError::validation(
                Protocol::AwsQuery,
                format!(
                    "1 validation error detected: Value null at '{}' failed to satisfy constraint: Member must not be null",
                    member_path(name)
                ),
            )
        })
    }

    /// An optional integer member; a non-number is a `ValidationError`.
    pub fn int(&self, name: &str) -> Result<Option<i64>, AwsError> {
        match self.get(name) {
            None => Ok(None),
            Some(v) => v.trim().parse::<i64>().map(Some).map_err(|_| {
                AwsError::validation(
                    Protocol::AwsQuery,
                    format!(
                        "Value '{v}' for parameter {name} is invalid. It should be an integer."
                    ),
                )
            }),
        }
    }

    /// An optional boolean member (`true`/`false`).
    pub fn bool(&self, name: &str) -> Result<Option<bool>, AwsError> {
        match self.get(name) {
            None => Ok(None),
            Some("true") => Ok(Some(true)),
            Some("false") => Ok(Some(false)),
            Some(v) => Err(AwsError::validation(
                Protocol::AwsQuery,
                format!("Value '{v}' for parameter {name} is invalid. It should be a boolean."),
            )),
        }
    }

    /// `Name.member.1`, `Name.member.2`, … in index order.
    pub fn list(&self, name: &str) -> Vec<&str> {
        let prefix = format!("{name}.member.");
        let mut items: Vec<(u32, &str)> = self
            .params
            .range(prefix.clone()..)
            .take_while(|(k, _)| k.starts_with(&prefix))
            .filter_map(|(k, v)| {
                k[prefix.len()..]
                    .parse::<u32>()
                    .ok()
                    .map(|i| (i, v.as_str()))
            })
            .collect();
        items.sort_by_key(|(i, _)| *i);
        items.into_iter().map(|(_, v)| v).collect()
    }

    /// `Name.member.N.Field` for each N, as maps from field to value, in index order.
    pub fn struct_list(&self, name: &str) -> Vec<BTreeMap<&str, &str>> {
        let prefix = format!("{name}.member.");
        let mut items: BTreeMap<u32, BTreeMap<&str, &str>> = BTreeMap::new();
        for (k, v) in self
            .params
            .range(prefix.clone()..)
            .take_while(|(k, _)| k.starts_with(&prefix))
        {
            if let Some((Ok(i), field)) = k[prefix.len()..]
                .split_once('.')
                .map(|(idx, f)| (idx.parse::<u32>(), f))
            {
                items.entry(i).or_default().insert(field, v.as_str());
            }
        }
        items.into_values().collect()
    }

    /// Decodes the parameters into an operation's typed input (see the table in
    /// [`decode`]).
    pub fn decode<'de, T: Deserialize<'de>>(&'de self) -> Result<T, AwsError> {
        de::decode(&self.params)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.params.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

/// Decodes awsQuery parameters into a `#[derive(Deserialize)]` input structure with
/// `#[serde(rename_all = "PascalCase")]` member names:
///
/// | Rust type                 | parameters                                                  |
/// |---------------------------|-------------------------------------------------------------|
/// | struct member `F` at `P`  | `P.F` (top level: `F`)                                      |
/// | `Vec<T>` at `P`           | `P.member.1`, `P.member.2`, … in numeric order; `P=` is `[]` |
/// | `BTreeMap<K, V>` at `P`   | `P.entry.N.key` / `P.entry.N.value`                         |
/// | `String`, `&str`          | the value as sent                                           |
/// | `bool`                    | `true` / `false`                                            |
/// | integers, `f64`           | decimal text                                                |
/// | `Option<T>`               | `None` when neither `P` nor anything below it is sent       |
/// | unit-variant enum         | the variant name                                            |
///
/// Parameters no member names (`Action`, `Version`, `X-Amz-*`) are ignored. Errors are the
/// `ValidationError`s of [`QueryParams::required`], [`QueryParams::int`] and
/// [`QueryParams::bool`], word for word.
pub fn decode<'de, T: Deserialize<'de>>(params: &'de QueryParams) -> Result<T, AwsError> {
    params.decode()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flattened_lists_and_structures_decode_in_index_order() {
        let q = QueryParams::parse(
            b"Action=AssumeRole&Version=2011-06-15&PolicyArns.member.2.arn=b&PolicyArns.member.1.arn=a&Tags.member.10.Key=k10&Tags.member.10.Value=v10&Tags.member.2.Key=k2&Tags.member.2.Value=v2&TransitiveTagKeys.member.1=x",
        )
        .unwrap_or_default();
        assert_eq!(q.action(), Some("AssumeRole"));
        let arns: Vec<_> = q
            .struct_list("PolicyArns")
            .iter()
            .map(|m| m["arn"])
            .collect();
        assert_eq!(arns, vec!["a", "b"]);
        let tags: Vec<_> = q
            .struct_list("Tags")
            .iter()
            .map(|m| (m["Key"], m["Value"]))
            .collect();
        assert_eq!(tags, vec![("k2", "v2"), ("k10", "v10")]);
        assert_eq!(q.list("TransitiveTagKeys"), vec!["x"]);
    }

    #[test]
    fn percent_and_plus_decoding() {
        let q =
            QueryParams::parse(b"PolicyDocument=%7B%22a%22%3A1%7D&Name=a+b").unwrap_or_default();
        assert_eq!(q.get("PolicyDocument"), Some("{\"a\":1}"));
        assert_eq!(q.get("Name"), Some("a b"));
    }

    #[test]
    fn errors() {
        assert_eq!(
            QueryParams::parse(b"A=1&A=2")
                .err()
                .map(|e| e.code.to_string())
                .as_deref(),
            Some("MalformedQueryString")
        );
        let q = QueryParams::parse(b"DurationSeconds=abc&Flag=yes").unwrap_or_default();
        assert_eq!(
            q.int("DurationSeconds")
                .err()
                .map(|e| e.code.to_string())
                .as_deref(),
            Some("ValidationError")
        );
        assert!(q.bool("Flag").is_err());
        let e = q
            .required("RoleArn")
            .err()
            .and_then(|e| e.message)
            .unwrap_or_default();
        assert!(e.contains("Value null at 'roleArn'"), "{e}");
    }
}
