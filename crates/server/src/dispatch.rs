//! The one dispatch table: (service, operation name) → the typed handler that implements it,
//! wrapped in its protocol's codec, and whether it only reads.
//!
//! Every service declares each operation once — a typed input, a typed output and a handler
//! `fn(&Services, &RequestCtx, Input) -> Result<Output, ServiceError>` in its own crate; this
//! table is the only place that names them. The `wire` crate decodes the input and encodes the
//! output; the service's typed error becomes the protocol's error shape in `wire` too. An
//! operation that is not in the table answers AWS's unknown-operation error — nothing answers
//! success without doing its work. Adding an operation: an input/output pair and a handler in
//! the service crate, a row here, a test.

use std::sync::LazyLock;

use tresor_core::{RequestCtx, Services};
use tresor_wire::query::QueryParams;
use tresor_wire::rest_json::{self, Binding, Kind, Location, Payload, Router, Shape};
use tresor_wire::{AwsError, ServiceId};

/// Whether an operation only reads. Reads run inline on the request thread (SQLite readers
/// never wait for the writer); writes run on the writer threads (`crate::writes`), so that
/// waiting for the store's single writer or an fsync never holds a request thread.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    Read,
    Write,
    /// A call that runs a program (Lambda `Invoke`): off the request threads like a write, but
    /// on the runtime's blocking pool at the workers' priority, which the function's process
    /// inherits (a writer thread's lower priority could not be raised back for it).
    Run,
}

/// An awsJson1.1 operation: the body in, the encoded output out.
pub type JsonCall = fn(&Services, &RequestCtx, &[u8]) -> Result<Vec<u8>, AwsError>;

/// An awsQuery operation: the parameters in, the inner XML of `<{Action}Result>` out (`None`:
/// the response has no result element).
pub type QueryCall = fn(&Services, &RequestCtx, &QueryParams) -> Result<Option<String>, AwsError>;

#[derive(Clone, Copy)]
pub struct Operation<C> {
    pub access: Access,
    pub call: C,
}

/// Wraps a typed awsJson1.1 handler: `wire` decodes the input and encodes the output, the
/// handler's typed error becomes an `AwsError`.
macro_rules! json {
    ($access:ident, $f:path) => {
        Operation::<JsonCall> {
            access: Access::$access,
            call: |services: &Services, ctx: &RequestCtx, body: &[u8]| {
                let input = tresor_wire::json::decode(body)?;
                let output = $f(services, ctx, input).map_err(AwsError::from)?;
                tresor_wire::json::encode(&output)
            },
        }
    };
}

/// The awsJson1.1 operation `op` of `service`.
pub fn json_operation(service: ServiceId, op: &str) -> Option<Operation<JsonCall>> {
    match service {
        ServiceId::Kms => kms(op),
        ServiceId::SecretsManager => secrets_manager(op),
        ServiceId::Ssm => ssm(op),
        ServiceId::CloudTrail => cloudtrail(op),
        ServiceId::Iam | ServiceId::Sts | ServiceId::Lambda => None,
    }
}

/// Runs a typed awsQuery handler: `wire` decodes the parameters into its input and encodes
/// its output as the inner XML of `<{Action}Result>`; its typed error becomes an `AwsError`.
fn run_query<I, O, E>(
    handler: impl FnOnce(&Services, &RequestCtx, I) -> Result<O, E>,
    services: &Services,
    ctx: &RequestCtx,
    params: &QueryParams,
) -> Result<Option<String>, AwsError>
where
    I: serde::de::DeserializeOwned,
    O: serde::Serialize,
    AwsError: From<E>,
{
    let input = tresor_wire::query::decode(params)?;
    let output = handler(services, ctx, input)?;
    tresor_wire::xml::encode(&output)
}

/// A typed awsQuery operation (see [`run_query`]).
macro_rules! query {
    ($access:ident, $f:expr) => {
        Operation::<QueryCall> {
            access: Access::$access,
            call: |services: &Services, ctx: &RequestCtx, params: &QueryParams| {
                run_query($f, services, ctx, params)
            },
        }
    };
}

/// An IAM operation: as [`query!`], refused first for `GetSessionToken` credentials (no MFA,
/// no IAM calls).
macro_rules! iam {
    ($access:ident, $f:expr) => {
        Operation::<QueryCall> {
            access: Access::$access,
            call: |services: &Services, ctx: &RequestCtx, params: &QueryParams| {
                tresor_iam::api::session_may_call_iam(ctx)?;
                run_query($f, services, ctx, params)
            },
        }
    };
}

/// An IAM operation whose result element AWS sends even without members.
macro_rules! iam_empty_result {
    ($access:ident, $f:expr) => {
        Operation::<QueryCall> {
            access: Access::$access,
            call: |services: &Services, ctx: &RequestCtx, params: &QueryParams| {
                tresor_iam::api::session_may_call_iam(ctx)?;
                run_query($f, services, ctx, params).map(|_| Some(String::new()))
            },
        }
    };
}

/// An IAM operation shared by users, groups and roles: the kind's wire input is decoded and
/// converted into the generic handler's input.
macro_rules! iam_kind {
    ($access:ident, $f:expr, $input:ty) => {
        iam!($access, |s: &Services, c: &RequestCtx, i: $input| $f(
            s,
            c,
            i.into()
        ))
    };
}

/// The awsQuery operation `op` of `service` (IAM, STS).
pub fn query_operation(service: ServiceId, op: &str) -> Option<Operation<QueryCall>> {
    match service {
        ServiceId::Iam => iam(op),
        ServiceId::Sts => sts(op),
        _ => None,
    }
}

/// STS (awsQuery, 2011-06-15).
fn sts(op: &str) -> Option<Operation<QueryCall>> {
    use tresor_iam::sts;
    Some(match op {
        "GetCallerIdentity" => query!(Read, sts::get_caller_identity),
        "AssumeRole" => query!(Write, sts::assume_role),
        "GetSessionToken" => query!(Write, sts::get_session_token),
        _ => return None,
    })
}

/// STS operations AWS serves without a signature: the request carries its own credential
/// (a web identity token). They run with an anonymous caller that no policy allows.
pub fn unsigned_query_operation(service: ServiceId, op: &str) -> Option<Operation<QueryCall>> {
    match (service, op) {
        // Fetches the issuer's keys over the network: on the blocking pool.
        (ServiceId::Sts, "AssumeRoleWithWebIdentity") => Some(query!(
            Write,
            tresor_iam::web_identity::assume_role_with_web_identity
        )),
        // tresor's own: a presigned upstream sts:GetCallerIdentity, forwarded upstream.
        (ServiceId::Sts, "AssumeRoleWithCallerIdentity") => Some(query!(
            Write,
            tresor_iam::upstream::assume_role_with_caller_identity
        )),
        _ => None,
    }
}

/// IAM (awsQuery, 2010-05-08). The policy simulator only reads, but a page of it may take up
/// to a second of CPU: it runs on the blocking pool with the writes, so that it never holds a
/// request thread.
fn iam(op: &str) -> Option<Operation<QueryCall>> {
    use tresor_iam::api::{
        access_keys, attached, entities, groups, inline, instance_profiles, oidc_providers,
        policies, roles, simulate, users,
    };
    use tresor_iam::identity::UserRecord as U;
    use tresor_iam::records::GroupRecord as G;
    use tresor_iam::records::RoleRecord as R;
    Some(match op {
        // users
        "CreateUser" => iam!(Write, users::create_user),
        "GetUser" => iam!(Read, users::get_user),
        "DeleteUser" => iam!(Write, users::delete_user),
        "ListUsers" => iam!(Read, users::list_users),
        "UpdateUser" => iam!(Write, users::update_user),
        "TagUser" => iam_kind!(Write, entities::tag::<U>, entities::TagUserInput),
        "UntagUser" => iam_kind!(Write, entities::untag::<U>, entities::UntagUserInput),
        "ListUserTags" => iam_kind!(Read, entities::list_tags::<U>, entities::ListUserTagsInput),
        // access keys
        "CreateAccessKey" => iam!(Write, access_keys::create_access_key),
        "DeleteAccessKey" => iam!(Write, access_keys::delete_access_key),
        "UpdateAccessKey" => iam!(Write, access_keys::update_access_key),
        "ListAccessKeys" => iam!(Read, access_keys::list_access_keys),
        "GetAccessKeyLastUsed" => iam!(Read, access_keys::get_access_key_last_used),
        // groups
        "CreateGroup" => iam!(Write, groups::create_group),
        "GetGroup" => iam!(Read, groups::get_group),
        "DeleteGroup" => iam!(Write, groups::delete_group),
        "ListGroups" => iam!(Read, groups::list_groups),
        "AddUserToGroup" => iam!(Write, groups::add_user_to_group),
        "RemoveUserFromGroup" => iam!(Write, groups::remove_user_from_group),
        "ListGroupsForUser" => iam!(Read, groups::list_groups_for_user),
        // roles
        "CreateRole" => iam!(Write, roles::create_role),
        "GetRole" => iam!(Read, roles::get_role),
        "DeleteRole" => iam!(Write, roles::delete_role),
        "ListRoles" => iam!(Read, roles::list_roles),
        "UpdateRole" => iam_empty_result!(Write, roles::update_role),
        "UpdateRoleDescription" => iam!(Write, roles::update_role_description),
        "UpdateAssumeRolePolicy" => iam!(Write, roles::update_assume_role_policy),
        "TagRole" => iam_kind!(Write, entities::tag::<R>, entities::TagRoleInput),
        "UntagRole" => iam_kind!(Write, entities::untag::<R>, entities::UntagRoleInput),
        "ListRoleTags" => iam_kind!(Read, entities::list_tags::<R>, entities::ListRoleTagsInput),
        // inline policies
        "PutUserPolicy" => iam_kind!(Write, inline::put_policy::<U>, inline::PutUserPolicyInput),
        "PutGroupPolicy" => iam_kind!(Write, inline::put_policy::<G>, inline::PutGroupPolicyInput),
        "PutRolePolicy" => iam_kind!(Write, inline::put_policy::<R>, inline::PutRolePolicyInput),
        "GetUserPolicy" => iam_kind!(Read, inline::get_policy::<U>, inline::UserPolicyNameInput),
        "GetGroupPolicy" => iam_kind!(Read, inline::get_policy::<G>, inline::GroupPolicyNameInput),
        "GetRolePolicy" => iam_kind!(Read, inline::get_policy::<R>, inline::RolePolicyNameInput),
        "DeleteUserPolicy" => iam_kind!(
            Write,
            inline::delete_policy::<U>,
            inline::UserPolicyNameInput
        ),
        "DeleteGroupPolicy" => iam_kind!(
            Write,
            inline::delete_policy::<G>,
            inline::GroupPolicyNameInput
        ),
        "DeleteRolePolicy" => iam_kind!(
            Write,
            inline::delete_policy::<R>,
            inline::RolePolicyNameInput
        ),
        "ListUserPolicies" => iam_kind!(
            Read,
            inline::list_policies::<U>,
            inline::ListUserPoliciesInput
        ),
        "ListGroupPolicies" => iam_kind!(
            Read,
            inline::list_policies::<G>,
            inline::ListGroupPoliciesInput
        ),
        "ListRolePolicies" => iam_kind!(
            Read,
            inline::list_policies::<R>,
            inline::ListRolePoliciesInput
        ),
        // managed policy attachments and permissions boundaries
        "AttachUserPolicy" => iam_kind!(Write, attached::attach::<U>, attached::UserPolicyArnInput),
        "AttachGroupPolicy" => {
            iam_kind!(Write, attached::attach::<G>, attached::GroupPolicyArnInput)
        }
        "AttachRolePolicy" => iam_kind!(Write, attached::attach::<R>, attached::RolePolicyArnInput),
        "DetachUserPolicy" => iam_kind!(Write, attached::detach::<U>, attached::UserPolicyArnInput),
        "DetachGroupPolicy" => {
            iam_kind!(Write, attached::detach::<G>, attached::GroupPolicyArnInput)
        }
        "DetachRolePolicy" => iam_kind!(Write, attached::detach::<R>, attached::RolePolicyArnInput),
        "ListAttachedUserPolicies" => iam_kind!(
            Read,
            attached::list_attached::<U>,
            attached::ListAttachedUserPoliciesInput
        ),
        "ListAttachedGroupPolicies" => iam_kind!(
            Read,
            attached::list_attached::<G>,
            attached::ListAttachedGroupPoliciesInput
        ),
        "ListAttachedRolePolicies" => iam_kind!(
            Read,
            attached::list_attached::<R>,
            attached::ListAttachedRolePoliciesInput
        ),
        "PutUserPermissionsBoundary" => iam_kind!(
            Write,
            attached::put_boundary::<U>,
            attached::PutUserPermissionsBoundaryInput
        ),
        "PutRolePermissionsBoundary" => iam_kind!(
            Write,
            attached::put_boundary::<R>,
            attached::PutRolePermissionsBoundaryInput
        ),
        "DeleteUserPermissionsBoundary" => iam_kind!(
            Write,
            attached::delete_boundary::<U>,
            attached::DeleteUserPermissionsBoundaryInput
        ),
        "DeleteRolePermissionsBoundary" => iam_kind!(
            Write,
            attached::delete_boundary::<R>,
            attached::DeleteRolePermissionsBoundaryInput
        ),
        // managed policies and versions
        "CreatePolicy" => iam!(Write, policies::create_policy),
        "GetPolicy" => iam!(Read, policies::get_policy),
        "DeletePolicy" => iam!(Write, policies::delete_policy),
        "ListPolicies" => iam!(Read, policies::list_policies),
        "CreatePolicyVersion" => iam!(Write, policies::create_policy_version),
        "GetPolicyVersion" => iam!(Read, policies::get_policy_version),
        "ListPolicyVersions" => iam!(Read, policies::list_policy_versions),
        "DeletePolicyVersion" => iam!(Write, policies::delete_policy_version),
        "SetDefaultPolicyVersion" => iam!(Write, policies::set_default_policy_version),
        "ListEntitiesForPolicy" => iam!(Read, policies::list_entities_for_policy),
        // instance profiles
        "CreateInstanceProfile" => iam!(Write, instance_profiles::create_instance_profile),
        "GetInstanceProfile" => iam!(Read, instance_profiles::get_instance_profile),
        "DeleteInstanceProfile" => iam!(Write, instance_profiles::delete_instance_profile),
        "ListInstanceProfiles" => iam!(Read, instance_profiles::list_instance_profiles),
        "AddRoleToInstanceProfile" => iam!(Write, instance_profiles::add_role_to_instance_profile),
        "RemoveRoleFromInstanceProfile" => {
            iam!(Write, instance_profiles::remove_role_from_instance_profile)
        }
        "ListInstanceProfilesForRole" => {
            iam!(Read, instance_profiles::list_instance_profiles_for_role)
        }
        // OpenID Connect providers
        "CreateOpenIDConnectProvider" => {
            iam!(Write, oidc_providers::create_open_id_connect_provider)
        }
        "GetOpenIDConnectProvider" => iam!(Read, oidc_providers::get_open_id_connect_provider),
        "ListOpenIDConnectProviders" => {
            iam!(Read, oidc_providers::list_open_id_connect_providers)
        }
        "DeleteOpenIDConnectProvider" => {
            iam!(Write, oidc_providers::delete_open_id_connect_provider)
        }
        "AddClientIDToOpenIDConnectProvider" => {
            iam!(
                Write,
                oidc_providers::add_client_id_to_open_id_connect_provider
            )
        }
        "RemoveClientIDFromOpenIDConnectProvider" => iam!(
            Write,
            oidc_providers::remove_client_id_from_open_id_connect_provider
        ),
        "UpdateOpenIDConnectProviderThumbprint" => iam!(
            Write,
            oidc_providers::update_open_id_connect_provider_thumbprint
        ),
        "TagOpenIDConnectProvider" => iam!(Write, oidc_providers::tag_open_id_connect_provider),
        "UntagOpenIDConnectProvider" => {
            iam!(Write, oidc_providers::untag_open_id_connect_provider)
        }
        "ListOpenIDConnectProviderTags" => {
            iam!(Read, oidc_providers::list_open_id_connect_provider_tags)
        }
        // the policy simulator
        "SimulatePrincipalPolicy" => iam!(Write, simulate::simulate_principal_policy),
        "SimulateCustomPolicy" => iam!(Write, simulate::simulate_custom_policy),
        _ => return None,
    })
}

/// KMS (target prefix `TrentService`).
fn kms(op: &str) -> Option<Operation<JsonCall>> {
    use tresor_kms::ops::{aliases, crypto, keys, policy, rotation, tags};
    Some(match op {
        "CreateKey" => json!(Write, keys::create_key),
        "DescribeKey" => json!(Read, keys::describe_key),
        "ListKeys" => json!(Read, keys::list_keys),
        "EnableKey" => json!(Write, keys::enable_key),
        "DisableKey" => json!(Write, keys::disable_key),
        "ScheduleKeyDeletion" => json!(Write, keys::schedule_key_deletion),
        "CancelKeyDeletion" => json!(Write, keys::cancel_key_deletion),
        "UpdateKeyDescription" => json!(Write, keys::update_key_description),
        "CreateAlias" => json!(Write, aliases::create_alias),
        "UpdateAlias" => json!(Write, aliases::update_alias),
        "DeleteAlias" => json!(Write, aliases::delete_alias),
        "ListAliases" => json!(Read, aliases::list_aliases),
        "Encrypt" => json!(Read, crypto::encrypt),
        "Decrypt" => json!(Read, crypto::decrypt),
        "ReEncrypt" => json!(Read, crypto::re_encrypt),
        "GenerateDataKey" => json!(Read, crypto::generate_data_key),
        "GenerateDataKeyWithoutPlaintext" => {
            json!(Read, crypto::generate_data_key_without_plaintext)
        }
        "GenerateRandom" => json!(Read, crypto::generate_random),
        "GetKeyPolicy" => json!(Read, policy::get_key_policy),
        "PutKeyPolicy" => json!(Write, policy::put_key_policy),
        "ListKeyPolicies" => json!(Read, policy::list_key_policies),
        "EnableKeyRotation" => json!(Write, rotation::enable_key_rotation),
        "DisableKeyRotation" => json!(Write, rotation::disable_key_rotation),
        "GetKeyRotationStatus" => json!(Read, rotation::get_key_rotation_status),
        "RotateKeyOnDemand" => json!(Write, rotation::rotate_key_on_demand),
        "ListKeyRotations" => json!(Read, rotation::list_key_rotations),
        "TagResource" => json!(Write, tags::tag_resource),
        "UntagResource" => json!(Write, tags::untag_resource),
        "ListResourceTags" => json!(Read, tags::list_resource_tags),
        _ => return None,
    })
}

/// Secrets Manager (target prefix `secretsmanager`).
fn secrets_manager(op: &str) -> Option<Operation<JsonCall>> {
    use tresor_secretsmanager::{
        deletion, listing, password, policy, replication, replication_sync, rotation, secrets,
        tags, versions,
    };
    Some(match op {
        "CreateSecret" => json!(Write, secrets::create_secret),
        "DescribeSecret" => json!(Read, secrets::describe_secret),
        "UpdateSecret" => json!(Write, secrets::update_secret),
        "DeleteSecret" => json!(Write, deletion::delete_secret),
        "RestoreSecret" => json!(Write, deletion::restore_secret),
        "ListSecrets" => json!(Read, listing::list_secrets),
        "TagResource" => json!(Write, tags::tag_resource),
        "UntagResource" => json!(Write, tags::untag_resource),
        // Reads; the first read of a day defers its LastAccessedDate write.
        "GetSecretValue" => json!(Read, versions::get_secret_value),
        "BatchGetSecretValue" => json!(Read, versions::batch_get_secret_value),
        "PutSecretValue" => json!(Write, versions::put_secret_value),
        "UpdateSecretVersionStage" => json!(Write, versions::update_secret_version_stage),
        "ListSecretVersionIds" => json!(Read, versions::list_secret_version_ids),
        "PutResourcePolicy" => json!(Write, policy::put_resource_policy),
        "GetResourcePolicy" => json!(Read, policy::get_resource_policy),
        "DeleteResourcePolicy" => json!(Write, policy::delete_resource_policy),
        "ValidateResourcePolicy" => json!(Read, policy::validate_resource_policy),
        "GetRandomPassword" => json!(Read, password::get_random_password),
        // The steps run in the background (the rotation worker, `jobs.rs`).
        "RotateSecret" => json!(Write, rotation::rotate_secret),
        "CancelRotateSecret" => json!(Write, rotation::cancel_rotate_secret),
        // Replicas are written by the replication worker (`jobs.rs`).
        "ReplicateSecretToRegions" => json!(Write, replication::replicate_secret_to_regions),
        "RemoveRegionsFromReplication" => {
            json!(Write, replication::remove_regions_from_replication)
        }
        "StopReplicationToReplica" => json!(Write, replication::stop_replication_to_replica),
        // tresor's own: a peer deployment updating a replica it serves (not an AWS operation).
        "TresorApplyReplicaUpdate" => json!(Write, replication_sync::apply_peer_update),
        _ => return None,
    })
}

/// CloudTrail (target prefix `com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101`): the
/// event history of the audit log, and tresor's `ListSecretReaders` extension.
fn cloudtrail(op: &str) -> Option<Operation<JsonCall>> {
    use tresor_cloudtrail::{lookup, readers};
    Some(match op {
        "LookupEvents" => json!(Read, lookup::lookup_events),
        "ListSecretReaders" => json!(Read, readers::list_secret_readers),
        _ => return None,
    })
}

/// Parameter Store (target prefix `AmazonSSM`).
fn ssm(op: &str) -> Option<Operation<JsonCall>> {
    use tresor_ssm::{labels, listing, params, tags};
    Some(match op {
        "PutParameter" => json!(Write, params::put_parameter),
        "GetParameter" => json!(Read, params::get_parameter),
        "GetParameters" => json!(Read, params::get_parameters),
        "DeleteParameter" => json!(Write, params::delete_parameter),
        "DeleteParameters" => json!(Write, params::delete_parameters),
        "GetParametersByPath" => json!(Read, listing::get_parameters_by_path),
        "DescribeParameters" => json!(Read, listing::describe_parameters),
        "GetParameterHistory" => json!(Read, listing::get_parameter_history),
        "LabelParameterVersion" => json!(Write, labels::label_parameter_version),
        "UnlabelParameterVersion" => json!(Write, labels::unlabel_parameter_version),
        "AddTagsToResource" => json!(Write, tags::add_tags_to_resource),
        "RemoveTagsFromResource" => json!(Write, tags::remove_tags_from_resource),
        "ListTagsForResource" => json!(Read, tags::list_tags_for_resource),
        _ => return None,
    })
}

/// A restJson1 operation: the request (as plain data) and its URI labels in, the encoded
/// response out.
pub type RestCall = fn(
    &Services,
    &RequestCtx,
    &rest_json::Request<'_>,
    &[(String, String)],
) -> Result<rest_json::Response, AwsError>;

/// Wraps a typed restJson1 handler with its input shape, output shape and success status.
macro_rules! rest {
    ($access:ident, $f:path, $input:expr, $output:expr, $status:expr) => {
        Operation::<RestCall> {
            access: Access::$access,
            call: |services: &Services,
                   ctx: &RequestCtx,
                   req: &rest_json::Request<'_>,
                   labels: &[(String, String)]| {
                let input = rest_json::decode(req, labels, &$input)?;
                let output = $f(services, ctx, input).map_err(AwsError::from)?;
                rest_json::encode($status, &output, &$output)
            },
        }
    };
}

const fn query(member: &'static str) -> Binding {
    Binding {
        member,
        location: Location::Query(member),
        kind: Kind::String,
    }
}

const QUALIFIER: Shape = Shape {
    bindings: &[query("Qualifier")],
    payload: Payload::Members,
};

const LIST_FUNCTIONS_IN: Shape = Shape {
    bindings: &[
        query("MasterRegion"),
        query("FunctionVersion"),
        query("Marker"),
        Binding {
            member: "MaxItems",
            location: Location::Query("MaxItems"),
            kind: Kind::Integer,
        },
    ],
    payload: Payload::Members,
};

const REMOVE_PERMISSION_IN: Shape = Shape {
    bindings: &[query("Qualifier"), query("RevisionId")],
    payload: Payload::Members,
};

const INVOKE_IN: Shape = Shape {
    bindings: &[
        Binding {
            member: "InvocationType",
            location: Location::Header("X-Amz-Invocation-Type"),
            kind: Kind::String,
        },
        Binding {
            member: "LogType",
            location: Location::Header("X-Amz-Log-Type"),
            kind: Kind::String,
        },
        Binding {
            member: "ClientContext",
            location: Location::Header("X-Amz-Client-Context"),
            kind: Kind::String,
        },
        query("Qualifier"),
    ],
    payload: Payload::Blob("Payload"),
};

const INVOKE_OUT: Shape = Shape {
    bindings: &[
        Binding {
            member: "StatusCode",
            location: Location::StatusCode,
            kind: Kind::Integer,
        },
        Binding {
            member: "FunctionError",
            location: Location::Header("X-Amz-Function-Error"),
            kind: Kind::String,
        },
        Binding {
            member: "LogResult",
            location: Location::Header("X-Amz-Log-Result"),
            kind: Kind::String,
        },
        Binding {
            member: "ExecutedVersion",
            location: Location::Header("X-Amz-Executed-Version"),
            kind: Kind::String,
        },
    ],
    payload: Payload::Blob("Payload"),
};

/// The Lambda operations (botocore model `lambda` 2015-03-31: `http.method`,
/// `http.requestUri`, `http.responseCode`; DeleteFunction and RemovePermission answer 204 as
/// the API reference documents).
fn lambda_routes() -> Result<Router<Operation<RestCall>>, rest_json::TemplateError> {
    use tresor_lambda::{functions as f, invoke, permissions as p};
    const BODY: Shape = Shape::BODY;
    Router::new()
        .route(
            "POST /2015-03-31/functions",
            rest!(Write, f::create_function, BODY, BODY, 201),
        )?
        .route(
            "GET /2015-03-31/functions/",
            rest!(Read, f::list_functions, LIST_FUNCTIONS_IN, BODY, 200),
        )?
        .route(
            "GET /2015-03-31/functions/{FunctionName}",
            rest!(Read, f::get_function, QUALIFIER, BODY, 200),
        )?
        .route(
            "GET /2015-03-31/functions/{FunctionName}/configuration",
            rest!(Read, f::get_function_configuration, QUALIFIER, BODY, 200),
        )?
        .route(
            "PUT /2015-03-31/functions/{FunctionName}/code",
            rest!(Write, f::update_function_code, BODY, BODY, 200),
        )?
        .route(
            "PUT /2015-03-31/functions/{FunctionName}/configuration",
            rest!(Write, f::update_function_configuration, BODY, BODY, 200),
        )?
        .route(
            "DELETE /2015-03-31/functions/{FunctionName}",
            rest!(Write, f::delete_function, QUALIFIER, BODY, 204),
        )?
        .route(
            "POST /2015-03-31/functions/{FunctionName}/policy",
            rest!(Write, p::add_permission, QUALIFIER, BODY, 201),
        )?
        .route(
            "GET /2015-03-31/functions/{FunctionName}/policy",
            rest!(Read, p::get_policy, QUALIFIER, BODY, 200),
        )?
        .route(
            "DELETE /2015-03-31/functions/{FunctionName}/policy/{StatementId}",
            rest!(Write, p::remove_permission, REMOVE_PERMISSION_IN, BODY, 204),
        )?
        // Invoke runs the function for up to its timeout: on the blocking pool.
        .route(
            "POST /2015-03-31/functions/{FunctionName}/invocations",
            rest!(Run, invoke::invoke, INVOKE_IN, INVOKE_OUT, 200),
        )
}

static LAMBDA: LazyLock<Router<Operation<RestCall>>> = LazyLock::new(|| {
    lambda_routes().unwrap_or_else(|e| {
        tracing::error!(error = %e, "the Lambda route table is invalid");
        Router::new()
    })
});

/// The restJson1 service a request path belongs to.
pub fn rest_service(path: &str) -> Option<ServiceId> {
    path.starts_with("/2015-03-31/")
        .then_some(ServiceId::Lambda)
}

/// The percent-decoded URI labels of a routed restJson1 request.
pub type Labels = Vec<(String, String)>;

/// The restJson1 operation of `service` for a request, with its URI labels.
pub fn rest_operation(
    service: ServiceId,
    method: &str,
    path: &str,
    query: &str,
) -> Result<(Operation<RestCall>, Labels), AwsError> {
    match service {
        ServiceId::Lambda => LAMBDA
            .find(method, path, query)
            .map(|r| (*r.operation, r.labels)),
        _ => Err(AwsError::unknown_operation(service.protocol())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_lambda_route_is_in_the_table() {
        assert!(lambda_routes().is_ok());
        for (m, p) in [
            ("POST", "/2015-03-31/functions"),
            ("GET", "/2015-03-31/functions/"),
            ("GET", "/2015-03-31/functions/f"),
            ("GET", "/2015-03-31/functions/f/configuration"),
            ("PUT", "/2015-03-31/functions/f/code"),
            ("PUT", "/2015-03-31/functions/f/configuration"),
            ("DELETE", "/2015-03-31/functions/f"),
            ("POST", "/2015-03-31/functions/f/policy"),
            ("GET", "/2015-03-31/functions/f/policy"),
            ("DELETE", "/2015-03-31/functions/f/policy/sid"),
            ("POST", "/2015-03-31/functions/f/invocations"),
        ] {
            assert!(
                rest_operation(ServiceId::Lambda, m, p, "").is_ok(),
                "{m} {p}"
            );
        }
        for (m, p, expected) in [
            ("GET", "/2015-03-31/functions/f", Access::Read),
            ("PUT", "/2015-03-31/functions/f/code", Access::Write),
            ("POST", "/2015-03-31/functions/f/invocations", Access::Run),
        ] {
            let access = rest_operation(ServiceId::Lambda, m, p, "").map(|(o, _)| o.access);
            assert_eq!(access.ok(), Some(expected), "{m} {p}");
        }
        assert!(rest_operation(ServiceId::Lambda, "PATCH", "/2015-03-31/functions/f", "").is_err());
    }
}
