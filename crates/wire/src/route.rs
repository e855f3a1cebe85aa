//! Which AWS service a request is for, and how its protocol names the operation.
//!
//! awsJson1.1 services are chosen by the `X-Amz-Target` prefix; awsQuery services (IAM, STS)
//! by the SigV4 credential scope's service name, since their bodies look alike
//! (`Action=…&Version=…`) and only the signing name tells them apart on a single endpoint.

use crate::error::AwsError;

/// The wire protocol of a service (botocore `metadata.protocol`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    /// `application/x-amz-json-1.1`, operation in `X-Amz-Target`.
    AwsJson11,
    /// `application/x-www-form-urlencoded` `Action=…&Version=…`, XML responses.
    AwsQuery,
}

/// The services tresor serves, with their botocore metadata.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ServiceId {
    Ssm,
    SecretsManager,
    Kms,
    Iam,
    Sts,
}

impl ServiceId {
    pub const ALL: [ServiceId; 5] = [
        ServiceId::Ssm,
        ServiceId::SecretsManager,
        ServiceId::Kms,
        ServiceId::Iam,
        ServiceId::Sts,
    ];

    /// The SigV4 signing name (the service part of the credential scope).
    pub fn signing_name(self) -> &'static str {
        match self {
            ServiceId::Ssm => "ssm",
            ServiceId::SecretsManager => "secretsmanager",
            ServiceId::Kms => "kms",
            ServiceId::Iam => "iam",
            ServiceId::Sts => "sts",
        }
    }

    pub fn protocol(self) -> Protocol {
        match self {
            ServiceId::Iam | ServiceId::Sts => Protocol::AwsQuery,
            _ => Protocol::AwsJson11,
        }
    }

    /// `metadata.targetPrefix` of the awsJson1.1 services.
    pub fn target_prefix(self) -> Option<&'static str> {
        match self {
            ServiceId::Ssm => Some("AmazonSSM"),
            ServiceId::SecretsManager => Some("secretsmanager"),
            ServiceId::Kms => Some("TrentService"),
            _ => None,
        }
    }

    /// `metadata.apiVersion`; awsQuery requests carry it as `Version`.
    pub fn api_version(self) -> &'static str {
        match self {
            ServiceId::Ssm => "2014-11-06",
            ServiceId::SecretsManager => "2017-10-17",
            ServiceId::Kms => "2014-11-01",
            ServiceId::Iam => "2010-05-08",
            ServiceId::Sts => "2011-06-15",
        }
    }

    /// `metadata.xmlNamespace` of the awsQuery services.
    pub fn xml_namespace(self) -> &'static str {
        match self {
            ServiceId::Iam => "https://iam.amazonaws.com/doc/2010-05-08/",
            ServiceId::Sts => "https://sts.amazonaws.com/doc/2011-06-15/",
            _ => "",
        }
    }

    /// The IAM action prefix (`secretsmanager:GetSecretValue`).
    pub fn action_prefix(self) -> &'static str {
        self.signing_name()
    }

    pub fn from_signing_name(name: &str) -> Option<ServiceId> {
        ServiceId::ALL
            .into_iter()
            .find(|s| s.signing_name() == name)
    }

    pub fn from_target_prefix(prefix: &str) -> Option<ServiceId> {
        ServiceId::ALL
            .into_iter()
            .find(|s| s.target_prefix() == Some(prefix))
    }
}

/// Splits `X-Amz-Target: <Prefix>.<Operation>` into service and operation.
///
/// An unknown prefix or a target without a dot is AWS's `UnknownOperationException`.
pub fn parse_target(target: &str) -> Result<(ServiceId, &str), AwsError> {
    let (prefix, op) = target
        .split_once('.')
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
