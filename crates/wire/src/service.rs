//! The services tresor serves and the wire protocol each speaks, with their botocore
//! metadata (signing name, `X-Amz-Target` prefix, API version, XML namespace).
//!
//! A leaf module: it depends on nothing else in this crate, so `error`, `route` and `xml`
//! can all use it without importing each other.

/// The wire protocol of a service (botocore `metadata.protocol`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    /// `application/x-amz-json-1.1`, operation in `X-Amz-Target`.
    AwsJson11,
    /// `application/x-www-form-urlencoded` `Action=…&Version=…`, XML responses.
    AwsQuery,
    /// restJson1: the operation named by method and path, JSON bodies, members bound to
    /// URI labels, query parameters and headers (Lambda).
    RestJson1,
}

/// The services tresor serves, with their botocore metadata.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ServiceId {
    Ssm,
    SecretsManager,
    Kms,
    Iam,
    Sts,
    Lambda,
    /// CloudTrail's event history (`LookupEvents`), over tresor's own audit log.
    CloudTrail,
}

impl ServiceId {
    pub const ALL: [ServiceId; 7] = [
        ServiceId::Ssm,
        ServiceId::SecretsManager,
        ServiceId::Kms,
        ServiceId::Iam,
        ServiceId::Sts,
        ServiceId::Lambda,
        ServiceId::CloudTrail,
    ];

    /// The SigV4 signing name (the service part of the credential scope).
    pub fn signing_name(self) -> &'static str {
        match self {
            ServiceId::Ssm => "ssm",
            ServiceId::SecretsManager => "secretsmanager",
            ServiceId::Kms => "kms",
            ServiceId::Iam => "iam",
            ServiceId::Sts => "sts",
            ServiceId::Lambda => "lambda",
            ServiceId::CloudTrail => "cloudtrail",
        }
    }

    pub fn protocol(self) -> Protocol {
        match self {
            ServiceId::Iam | ServiceId::Sts => Protocol::AwsQuery,
            ServiceId::Lambda => Protocol::RestJson1,
            _ => Protocol::AwsJson11,
        }
    }

    /// `metadata.targetPrefix` of the awsJson1.1 services.
    pub fn target_prefix(self) -> Option<&'static str> {
        match self {
            ServiceId::Ssm => Some("AmazonSSM"),
            ServiceId::SecretsManager => Some("secretsmanager"),
            ServiceId::Kms => Some("TrentService"),
            ServiceId::CloudTrail => Some("com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101"),
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
            ServiceId::Lambda => "2015-03-31",
            ServiceId::CloudTrail => "2013-11-01",
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
