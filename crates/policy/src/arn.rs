//! A small ARN parser (`arn:partition:service:region:account:resource`), shared with the
//! services. It only splits and validates the shape; it knows nothing of any service's
//! resource syntax. Source for the format: AWS General Reference, "Amazon Resource Names (ARNs)"
//! — six colon-separated fields, the last one may itself contain `:` and `/`.

use std::fmt;
use std::str::FromStr;
use std::sync::OnceLock;

/// The partition of a region: `aws-cn` for `cn-*`, `aws-us-gov` for `us-gov-*`, `aws`
/// otherwise (AWS General Reference, "Amazon Resource Names (ARNs)", partition).
pub fn partition_of_region(region: &str) -> &'static str {
    if region.starts_with("cn-") {
        "aws-cn"
    } else if region.starts_with("us-gov-") {
        "aws-us-gov"
    } else {
        "aws"
    }
}

static PARTITION: OnceLock<&'static str> = OnceLock::new();

/// The deployment's partition: every ARN tresor makes starts with `arn:<partition>:`. One
/// deployment serves one partition, as an AWS account lives in one; the server sets it once at
/// start from its configured regions. `aws` until then.
pub fn partition() -> &'static str {
    PARTITION.get().copied().unwrap_or("aws")
}

/// Sets the deployment's partition (once; a later call with another partition is refused).
pub fn set_partition(partition: &'static str) -> Result<(), &'static str> {
    let set = PARTITION.get_or_init(|| partition);
    if *set == partition { Ok(()) } else { Err(set) }
}

/// The rest of `arn` after `arn:<partition>:<service>:` in the deployment's partition.
pub fn strip_service_prefix<'a>(arn: &'a str, service: &str) -> Option<&'a str> {
    arn.strip_prefix("arn:")?
        .strip_prefix(partition())?
        .strip_prefix(':')?
        .strip_prefix(service)?
        .strip_prefix(':')
}

/// A parsed ARN. `region` and `account` may be empty (IAM and S3 ARNs leave them so).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Arn {
    pub partition: String,
    pub service: String,
    pub region: String,
    pub account: String,
    pub resource: String,
}

/// The text is not an ARN.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid ARN: {0}")]
pub struct ArnError(pub String);

impl Arn {
    /// Parse `arn:partition:service:region:account:resource`. Partition, service and resource
    /// must be non-empty.
    pub fn parse(text: &str) -> Result<Arn, ArnError> {
        let [prefix, partition, service, region, account, resource] =
            split_arn(text).ok_or_else(|| ArnError(text.to_owned()))?;
        if prefix != "arn" || partition.is_empty() || service.is_empty() || resource.is_empty() {
            return Err(ArnError(text.to_owned()));
        }
        Ok(Arn {
            partition: partition.to_owned(),
            service: service.to_owned(),
            region: region.to_owned(),
            account: account.to_owned(),
            resource: resource.to_owned(),
        })
    }

    /// The resource type: the part of `resource` before the first `/` or `:`
    /// (`secret` for `secret:name-AbCdEf`, `role` for `role/path/name`).
    pub fn resource_type(&self) -> &str {
        let end = self
            .resource
            .find(['/', ':'])
            .unwrap_or(self.resource.len());
        &self.resource[..end]
    }

    /// The resource id: everything after the resource type and its separator
    /// (empty when there is no separator).
    pub fn resource_id(&self) -> &str {
        match self.resource.find(['/', ':']) {
            Some(i) => &self.resource[i + 1..],
            None => "",
        }
    }
}

impl FromStr for Arn {
    type Err = ArnError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Arn::parse(s)
    }
}

impl fmt::Display for Arn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "arn:{}:{}:{}:{}:{}",
            self.partition, self.service, self.region, self.account, self.resource
        )
    }
}

/// Split into the six ARN fields without allocating; `None` if there are fewer than six.
pub(crate) fn split_arn(text: &str) -> Option<[&str; 6]> {
    let mut it = text.splitn(6, ':');
    Some([
        it.next()?,
        it.next()?,
        it.next()?,
        it.next()?,
        it.next()?,
        it.next()?,
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_secret_arn_with_colons_in_resource() {
        let arn =
            Arn::parse("arn:aws:secretsmanager:eu-west-1:123456789012:secret:ci/token-AbCdEf")
                .unwrap();
        assert_eq!(arn.service, "secretsmanager");
        assert_eq!(arn.region, "eu-west-1");
        assert_eq!(arn.account, "123456789012");
        assert_eq!(arn.resource, "secret:ci/token-AbCdEf");
        assert_eq!(arn.resource_type(), "secret");
        assert_eq!(arn.resource_id(), "ci/token-AbCdEf");
        assert_eq!(
            arn.to_string(),
            "arn:aws:secretsmanager:eu-west-1:123456789012:secret:ci/token-AbCdEf"
        );
    }

    #[test]
    fn parses_iam_arn_with_empty_region() {
        let arn: Arn = "arn:aws:iam::123456789012:role/path/name".parse().unwrap();
        assert_eq!(arn.region, "");
        assert_eq!(arn.resource_type(), "role");
        assert_eq!(arn.resource_id(), "path/name");
    }

    #[test]
    fn rejects_non_arns() {
        assert!(Arn::parse("*").is_err());
        assert!(Arn::parse("arn:aws:iam::123").is_err());
        assert!(Arn::parse("urn:aws:iam::1:root").is_err());
        assert!(Arn::parse("arn:aws:iam::1:").is_err());
    }
}
