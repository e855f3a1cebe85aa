//! The AWS managed policies tresor knows, under their real ARNs
//! (`arn:aws:iam::aws:policy/<name>`). They are readable and attachable in every account and
//! can be neither changed nor deleted. Documents follow the published policies (AWS Managed
//! Policy Reference Guide), restricted to statements about services tresor serves where the
//! originals are very long (ReadOnlyAccess lists hundreds of services).

use time::OffsetDateTime;
use time::macros::datetime;

/// One AWS managed policy.
pub struct AwsManagedPolicy {
    pub name: &'static str,
    pub path: &'static str,
    pub policy_id: &'static str,
    pub description: &'static str,
    pub default_version: &'static str,
    pub document: &'static str,
    pub created: OffsetDateTime,
    pub updated: OffsetDateTime,
}

impl AwsManagedPolicy {
    pub fn arn(&self) -> String {
        format!(
            "arn:{}:iam::aws:policy{}{}",
            tresor_policy::arn::partition(),
            self.path,
            self.name
        )
    }
}

pub static AWS_MANAGED_POLICIES: &[AwsManagedPolicy] = &[
    AwsManagedPolicy {
        name: "AdministratorAccess",
        path: "/",
        policy_id: "ANPAIWMBCKSKIEE64ZLYK",
        description: "Provides full access to AWS services and resources.",
        default_version: "v1",
        document: r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#,
        created: datetime!(2015-02-06 18:39:46 UTC),
        updated: datetime!(2015-02-06 18:39:46 UTC),
    },
    AwsManagedPolicy {
        name: "ReadOnlyAccess",
        path: "/",
        policy_id: "ANPAILL3HVNFSB6DCOWYQ",
        description: "Provides read-only access to AWS services and resources.",
        default_version: "v1",
        document: r#"{"Version":"2012-10-17","Statement":[{"Sid":"ReadOnlyActions","Effect":"Allow","Action":["iam:Generate*","iam:Get*","iam:List*","iam:Simulate*","kms:Describe*","kms:Get*","kms:List*","secretsmanager:DescribeSecret","secretsmanager:GetResourcePolicy","secretsmanager:ListResourcePolicies","secretsmanager:ListSecrets","secretsmanager:ListSecretVersionIds","ssm:Describe*","ssm:Get*","ssm:List*","sts:GetCallerIdentity"],"Resource":"*"}]}"#,
        created: datetime!(2015-02-06 18:39:48 UTC),
        updated: datetime!(2015-02-06 18:39:48 UTC),
    },
    AwsManagedPolicy {
        name: "SecretsManagerReadWrite",
        path: "/",
        policy_id: "ANPAJTXIYT4TSXWMOVBEK",
        description: "Provides read/write access to AWS Secrets Manager via the AWS Management Console. Note: this exludes IAM actions, so combine with IAMFullAccess if rotation configuration is required.",
        default_version: "v1",
        document: r#"{"Version":"2012-10-17","Statement":[{"Sid":"BasePermissions","Effect":"Allow","Action":["secretsmanager:*","cloudformation:CreateChangeSet","cloudformation:DescribeChangeSet","cloudformation:DescribeStackResource","cloudformation:DescribeStacks","cloudformation:ExecuteChangeSet","docdb-elastic:GetCluster","docdb-elastic:ListClusters","ec2:DescribeSecurityGroups","ec2:DescribeSubnets","ec2:DescribeVpcs","kms:DescribeKey","kms:ListAliases","kms:ListKeys","lambda:ListFunctions","rds:DescribeDBClusters","rds:DescribeDBInstances","redshift:DescribeClusters","redshift-serverless:ListWorkgroups","redshift-serverless:GetNamespace","tag:GetResources"],"Resource":"*"},{"Sid":"LambdaPermissions","Effect":"Allow","Action":["lambda:AddPermission","lambda:CreateFunction","lambda:GetFunction","lambda:InvokeFunction","lambda:UpdateFunctionConfiguration"],"Resource":"arn:aws:lambda:*:*:function:SecretsManager*"},{"Sid":"SARPermissions","Effect":"Allow","Action":["serverlessrepo:CreateCloudFormationChangeSet","serverlessrepo:GetApplication"],"Resource":"arn:aws:serverlessrepo:*:*:applications/SecretsManager*"},{"Sid":"S3Permissions","Effect":"Allow","Action":["s3:GetObject"],"Resource":["arn:aws:s3:::awsserverlessrepo-changesets*","arn:aws:s3:::secrets-manager-rotation-apps-*/*"]}]}"#,
        created: datetime!(2018-04-04 18:05:29 UTC),
        updated: datetime!(2018-04-04 18:05:29 UTC),
    },
    AwsManagedPolicy {
        name: "AmazonSSMReadOnlyAccess",
        path: "/",
        policy_id: "ANPAJODSKQGGJTHRYZ5FC",
        description: "Provides read only access to Amazon SSM.",
        default_version: "v1",
        document: r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["ssm:Describe*","ssm:Get*","ssm:List*"],"Resource":"*"}]}"#,
        created: datetime!(2015-05-29 17:44:19 UTC),
        updated: datetime!(2015-05-29 17:44:19 UTC),
    },
    AwsManagedPolicy {
        name: "AWSKeyManagementServicePowerUser",
        path: "/",
        policy_id: "ANPAJNPP7PPPPMJRV2SA4",
        description: "Provides access to AWS Key Management Service (KMS).",
        default_version: "v1",
        document: r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["kms:CreateAlias","kms:CreateKey","kms:DeleteAlias","kms:Describe*","kms:GenerateRandom","kms:Get*","kms:List*","kms:TagResource","kms:UntagResource","iam:ListGroups","iam:ListRoles","iam:ListUsers"],"Resource":"*"}]}"#,
        created: datetime!(2015-02-06 18:40:40 UTC),
        updated: datetime!(2015-02-06 18:40:40 UTC),
    },
    AwsManagedPolicy {
        name: "IAMFullAccess",
        path: "/",
        policy_id: "ANPAI7XKCFMBPM3QQRRVQ",
        description: "Provides full access to IAM via the AWS Management Console.",
        default_version: "v1",
        document: r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["iam:*","organizations:DescribeAccount","organizations:DescribeOrganization","organizations:DescribeOrganizationalUnit","organizations:DescribePolicy","organizations:ListChildren","organizations:ListParents","organizations:ListPoliciesForTarget","organizations:ListRoots","organizations:ListPolicies","organizations:ListTargetsForPolicy"],"Resource":"*"}]}"#,
        created: datetime!(2015-02-06 18:40:38 UTC),
        updated: datetime!(2015-02-06 18:40:38 UTC),
    },
    AwsManagedPolicy {
        name: "PowerUserAccess",
        path: "/",
        policy_id: "ANPAJYRXTHIB4FOVS3ZXS",
        description: "Provides full access to AWS services and resources, but does not allow management of Users and groups.",
        default_version: "v1",
        document: r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","NotAction":["iam:*","organizations:*","account:*"],"Resource":"*"},{"Effect":"Allow","Action":["account:GetAccountInformation","account:GetPrimaryEmail","account:ListRegions","iam:CreateServiceLinkedRole","iam:DeleteServiceLinkedRole","iam:ListRoles","organizations:DescribeOrganization"],"Resource":"*"}]}"#,
        created: datetime!(2015-02-06 18:39:47 UTC),
        updated: datetime!(2015-02-06 18:39:47 UTC),
    },
];

/// The AWS managed policy named `name` (exact name and path, as ARNs are matched).
pub fn find(path: &str, name: &str) -> Option<&'static AwsManagedPolicy> {
    AWS_MANAGED_POLICIES
        .iter()
        .find(|p| p.name == name && p.path == path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tresor_policy::{Policy, PolicyKind};

    #[test]
    fn every_aws_managed_policy_is_a_valid_identity_policy_with_an_aws_id() {
        for p in AWS_MANAGED_POLICIES {
            assert!(
                Policy::parse(p.document, PolicyKind::Identity).is_ok(),
                "{}",
                p.name
            );
            assert!(
                p.policy_id.starts_with("ANPA") && p.policy_id.len() == 21,
                "{}",
                p.name
            );
            assert!(
                p.policy_id[4..]
                    .chars()
                    .all(|c| c.is_ascii_uppercase() || ('2'..='7').contains(&c)),
                "{}",
                p.name
            );
        }
        assert_eq!(
            find("/", "AdministratorAccess")
                .map(AwsManagedPolicy::arn)
                .as_deref(),
            Some("arn:aws:iam::aws:policy/AdministratorAccess")
        );
    }
}
