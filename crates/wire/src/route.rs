//! Which AWS service a request is for, and how its protocol names the operation.
//!
//! awsJson1.1 services are chosen by the `X-Amz-Target` prefix; awsQuery services (IAM, STS)
//! by the SigV4 credential scope's service name, since their bodies look alike
//! (`Action=…&Version=…`) and only the signing name tells them apart on a single endpoint.

use crate::error::AwsError;
pub use crate::service::{Protocol, ServiceId};

/// Splits `X-Amz-Target: <Prefix>.<Operation>` into service and operation.
///
/// An unknown prefix or a target without a dot is AWS's `UnknownOperationException`.
pub fn parse_target(target: &str) -> Result<(ServiceId, &str), AwsError> {
    // CloudTrail's prefix has dots of its own; operation names never do.
    let (prefix, op) = target
        .rsplit_once('.')
        .ok_or_else(|| AwsError::unknown_operation(Protocol::AwsJson11))?;
    let service = ServiceId::from_target_prefix(prefix)
        .ok_or_else(|| AwsError::unknown_operation(Protocol::AwsJson11))?;
    if op.is_empty() {
        return Err(AwsError::unknown_operation(Protocol::AwsJson11));
    }
    Ok((service, op))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_of_the_three_json_services_resolve() {
        assert_eq!(
            parse_target("AmazonSSM.GetParameter").ok(),
            Some((ServiceId::Ssm, "GetParameter"))
        );
        assert_eq!(
            parse_target("secretsmanager.GetSecretValue").ok(),
            Some((ServiceId::SecretsManager, "GetSecretValue"))
        );
        assert_eq!(
            parse_target("TrentService.Decrypt").ok(),
            Some((ServiceId::Kms, "Decrypt"))
        );
        assert_eq!(
            parse_target("com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101.LookupEvents")
                .ok(),
            Some((ServiceId::CloudTrail, "LookupEvents"))
        );
    }

    #[test]
    fn unknown_or_malformed_targets_are_unknown_operation() {
        for t in [
            "",
            "AmazonSSM",
            "Foo.Bar",
            "AmazonSSM.",
            "amazonssm.GetParameter",
        ] {
            let e = parse_target(t).err();
            assert_eq!(
                e.map(|e| e.code),
                Some("UnknownOperationException".into()),
                "{t}"
            );
        }
    }
}
