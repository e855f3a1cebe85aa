//! Structures shared by the inputs and outputs of IAM and STS operations, with the member
//! names of the botocore models. A leaf module: serde only.

use serde::{Deserialize, Serialize};

/// A tag as a request sends it (`Tags.member.N.Key` / `.Value`). Both members are optional
/// here so that a missing one is reported with the other constraints of the list, in AWS's
/// order; a missing `Value` is the empty value, as IAM treats it.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TagInput {
    pub key: Option<String>,
    #[serde(default)]
    pub value: String,
}

/// A tag as a response carries it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Tag {
    pub key: String,
    pub value: String,
}

impl Tag {
    /// The stored `(key, value)` pairs as response tags.
    pub fn list(tags: &[(String, String)]) -> Vec<Tag> {
        tags.iter()
            .map(|(k, v)| Tag {
                key: k.clone(),
                value: v.clone(),
            })
            .collect()
    }
}

/// `AttachedPermissionsBoundary`: the managed policy that bounds a user or role.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct AttachedPermissionsBoundary {
    pub permissions_boundary_type: String,
    pub permissions_boundary_arn: String,
}

impl AttachedPermissionsBoundary {
    pub fn of(arn: Option<&str>) -> Option<AttachedPermissionsBoundary> {
        arn.map(|a| AttachedPermissionsBoundary {
            permissions_boundary_type: "PermissionsBoundaryPolicy".to_string(),
            permissions_boundary_arn: a.to_string(),
        })
    }
}

/// The input of the listings filtered by path: `ListUsers`, `ListRoles`, `ListGroups`,
/// `ListInstanceProfiles` (the same three members in each botocore shape).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PathListInput {
    pub path_prefix: Option<String>,
    pub marker: Option<String>,
    pub max_items: Option<i64>,
}
