//! CloudTrail's record shape (AWS CloudTrail User Guide, "CloudTrail record contents for
//! management, data, and network activity events"; "CloudTrail userIdentity element"), built
//! from what the server knows about a request: who (the authenticated [`Caller`], or the
//! access key id of a request that failed authentication), what (service, operation, the
//! redacted input and output), the outcome, and the services' audit facts.

use std::net::IpAddr;
use std::sync::Arc;

use serde_json::{Map, Value, json};
use time::OffsetDateTime;
use tresor_cloudtrail::record::{
    ApiCall, EVENT_VERSION, HopDelta, RECORD_VERSION, Row, StoredEvent, event_time, json_string,
    json_text, micros,
};
use tresor_core::audit::{AuditResource, Facts, Hop, SecretRead, ServiceEvent, WebIdentityUser};
use tresor_core::credential::Federation;
use tresor_core::{Caller, CallerKind};
use tresor_wire::ServiceId;

/// Who made the request, as far as it is known.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Who {
    Caller {
        caller: Arc<Caller>,
        session_created: Option<OffsetDateTime>,
        /// The outside identity a role session was issued to.
        federation: Option<Federation>,
    },
    /// An unsigned `AssumeRoleWithWebIdentity` whose token checked out.
    WebIdentity(WebIdentityUser),
    /// Authentication failed: the access key id the request named, if it could be read.
    Unauthenticated { access_key_id: Option<String> },
}

/// What every event of one request shares.
#[derive(Clone, Debug)]
pub struct RequestInfo {
    pub event_id: String,
    pub request_id: String,
    pub time: OffsetDateTime,
    pub region: String,
    pub source_ip: Option<IpAddr>,
    pub user_agent: Option<String>,
    pub who: Who,
    pub service: ServiceId,
    pub event_name: String,
    pub read_only: bool,
    /// Redacted already.
    pub request_parameters: Value,
}

/// How the request ended.
pub enum Outcome<'a> {
    /// Still running (the record written with the operation's own transaction).
    Pending,
    Ok {
        response: Option<Value>,
    },
    Err {
        code: &'a str,
        message: Option<&'a str>,
    },
}

pub fn event_source(service: ServiceId) -> String {
    [service.signing_name(), ".amazonaws.com"].concat()
}

/// CloudTrail's resource type for an ARN tresor serves.
pub fn resource_type(arn: &str) -> Option<&'static str> {
    let mut parts = arn.splitn(6, ':');
    let (_, _, service, _, _, resource) = (
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
    );
    let kind = resource.split(['/', ':']).next()?;
    Some(match (service, kind) {
        ("secretsmanager", "secret") => "AWS::SecretsManager::Secret",
        ("ssm", "parameter") => "AWS::SSM::Parameter",
        ("kms", "key") => "AWS::KMS::Key",
        ("kms", "alias") => "AWS::KMS::Alias",
        ("iam", "user") => "AWS::IAM::User",
        ("iam", "role") => "AWS::IAM::Role",
        ("iam", "group") => "AWS::IAM::Group",
        ("iam", "policy") => "AWS::IAM::Policy",
        ("iam", "instance-profile") => "AWS::IAM::InstanceProfile",
        ("iam", "oidc-provider") => "AWS::IAM::OIDCProvider",
        ("sts", "assumed-role") => "AWS::STS::AssumedRole",
        ("lambda", "function") => "AWS::Lambda::Function",
        _ => return None,
    })
}

fn resources_json(resources: &[AuditResource]) -> Value {
    tresor_cloudtrail::record::resources_json(
        resources
            .iter()
            .map(|r| (r.resource_type.as_str(), r.arn.as_str())),
    )
}

fn partition_of(arn: &str) -> &str {
    arn.split(':').nth(1).unwrap_or("aws")
}

/// How many callers' `userIdentity` texts a thread keeps ([`caller_identity_json`]).
const IDENTITY_CACHE: usize = 8;

thread_local! {
    /// The last callers' `userIdentity` texts on this thread, the most recent first.
    static IDENTITIES: std::cell::RefCell<Vec<(Who, String)>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

/// `userIdentity` of a request's own event: a caller makes many requests and its identity
/// reads the same each time, so the texts of the last few callers are kept per thread —
/// found by comparing the whole [`Who`], so a caller that differs in anything (another
/// session, a changed name) is written anew.
pub fn caller_identity_json(who: &Who) -> String {
    IDENTITIES.with(|cache| {
        let Ok(mut cache) = cache.try_borrow_mut() else {
            return user_identity_json(who, None);
        };
        if let Some(i) = cache.iter().position(|(w, _)| w == who) {
            let entry = cache.remove(i);
            let text = entry.1.clone();
            cache.insert(0, entry);
            return text;
        }
        let text = user_identity_json(who, None);
        cache.truncate(IDENTITY_CACHE - 1);
        cache.insert(0, (who.clone(), text.clone()));
        text
    })
}

/// `userIdentity` as JSON text, with `invokedBy` for a call a service made on the caller's
/// behalf: members in byte order of their names, as `serde_json`'s maps write them (the
/// record's other JSON is written so; the test module keeps the map it was built as).
pub fn user_identity_json(who: &Who, invoked_by: Option<&str>) -> String {
    let mut o = Obj::new(512);
    match who {
        Who::Caller {
            caller,
            session_created,
            federation,
        } => {
            let kind = match &caller.kind {
                CallerKind::Root => "Root",
                CallerKind::User { .. } => "IAMUser",
                CallerKind::AssumedRole { .. } => "AssumedRole",
            };
            o.str("accessKeyId", &caller.access_key_id);
            o.str("accountId", &caller.account);
            o.str("arn", &caller.arn);
            o.opt("invokedBy", invoked_by);
            o.str("principalId", &caller.user_id);
            let creation = session_created.map(event_time);
            let attributes = |o: &mut Obj| {
                o.open("attributes");
                o.opt("creationDate", creation.as_deref());
                o.str("mfaAuthenticated", "false");
                o.close();
            };
            match &caller.kind {
                CallerKind::AssumedRole {
                    role_name,
                    role_path,
                    role_id,
                    ..
                } => {
                    o.open("sessionContext");
                    attributes(&mut o);
                    o.open("sessionIssuer");
                    o.str("accountId", &caller.account);
                    o.str(
                        "arn",
                        &format!(
                            "arn:{}:iam::{}:role{}{}",
                            partition_of(&caller.arn),
                            caller.account,
                            role_path,
                            role_name
                        ),
                    );
                    o.str("principalId", role_id);
                    o.str("type", "Role");
                    o.str("userName", role_name);
                    o.close();
                    if let Some(f) = federation {
                        o.open("webIdFederationData");
                        o.open("attributes");
                        // In name order, the last of equal names kept (as a map does).
                        let sorted: std::collections::BTreeMap<&str, &str> = f
                            .attributes
                            .iter()
                            .map(|(k, v)| (k.as_str(), v.as_str()))
                            .collect();
                        for (k, v) in sorted {
                            o.str(k, v);
                        }
                        o.close();
                        o.str("federatedProvider", &f.federated_provider);
                        o.close();
                    }
                    o.close();
                }
                // GetSessionToken credentials of a user or the root user.
                _ if creation.is_some() => {
                    o.open("sessionContext");
                    attributes(&mut o);
                    o.close();
                }
                _ => {}
            }
            o.str("type", kind);
            if let CallerKind::User { name, .. } = &caller.kind {
                o.str("userName", name);
            }
        }
        Who::WebIdentity(user) => {
            o.str("identityProvider", &user.identity_provider);
            o.opt("invokedBy", invoked_by);
            o.str("principalId", &user.principal_id);
            o.str("type", "WebIdentityUser");
            o.str("userName", &user.user_name);
        }
        Who::Unauthenticated { access_key_id } => {
            o.opt("accessKeyId", access_key_id.as_deref());
            o.opt("invokedBy", invoked_by);
            o.str("type", "Unknown");
        }
    }
    o.finish()
}

/// A JSON object written member by member (the caller writes them in name order).
struct Obj {
    out: String,
    /// Whether the innermost open object has a member yet.
    first: bool,
}

impl Obj {
    fn new(capacity: usize) -> Obj {
        let mut out = String::with_capacity(capacity);
        out.push('{');
        Obj { out, first: true }
    }

    fn name(&mut self, name: &str) {
        if !self.first {
            self.out.push(',');
        }
        self.first = false;
        json_string(&mut self.out, name);
        self.out.push(':');
    }

    fn str(&mut self, name: &str, value: &str) {
        self.name(name);
        json_string(&mut self.out, value);
    }

    fn opt(&mut self, name: &str, value: Option<&str>) {
        if let Some(v) = value {
            self.str(name, v);
        }
    }

    fn open(&mut self, name: &str) {
        self.name(name);
        self.out.push('{');
        self.first = true;
    }

    fn close(&mut self) {
        self.out.push('}');
        self.first = false;
    }

    fn finish(mut self) -> String {
        self.out.push('}');
        self.out
    }
}

/// The name LookupEvents' `Username` matches: the user, the role session, or `root`.
fn username(who: &Who) -> Option<String> {
    match who {
        Who::Caller { caller, .. } => Some(match &caller.kind {
            CallerKind::Root => "root".into(),
            CallerKind::User { name, .. } => name.clone(),
            CallerKind::AssumedRole { session_name, .. } => session_name.clone(),
        }),
        Who::WebIdentity(user) => Some(user.user_name.clone()),
        Who::Unauthenticated { .. } => None,
    }
}

fn caller_parts(who: &Who) -> (String, Option<String>, Option<String>) {
    match who {
        Who::Caller { caller, .. } => (
            caller.account.clone(),
            Some(caller.arn.clone()),
            Some(caller.access_key_id.clone()),
        ),
        Who::WebIdentity(user) => (user.account.clone(), None, None),
        Who::Unauthenticated { access_key_id } => (String::new(), None, access_key_id.clone()),
    }
}

/// `additionalEventData` of a request that read secret versions, as JSON text (members in
/// name order, as a map of them writes them).
fn reads_json(reads: &[SecretRead]) -> String {
    let mut out = String::with_capacity(32 + reads.len() * 160);
    out.push_str("{\"secretVersions\":[");
    for (i, r) in reads.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str("{\"secretArn\":");
        json_string(&mut out, &r.secret_arn);
        out.push_str(",\"versionId\":");
        json_string(&mut out, &r.version_id);
        out.push_str(",\"versionStages\":[");
        for (j, stage) in r.version_stages.iter().enumerate() {
            if j > 0 {
                out.push(',');
            }
            json_string(&mut out, stage);
        }
        out.push_str("]}");
    }
    out.push_str("]}");
    out
}

/// What a record without request parameters or response elements gives for them.
static NULL: Value = Value::Null;

/// The record of the request's own event (without the events made on its behalf).
pub fn main_event(info: &RequestInfo, facts: &Facts, outcome: &Outcome<'_>) -> Row {
    // An unsigned federation request is its token's outside identity once the token checked.
    let federated;
    let info = match &facts.web_identity_user {
        Some(user) => {
            federated = RequestInfo {
                who: Who::WebIdentity(user.clone()),
                ..info.clone()
            };
            &federated
        }
        None => info,
    };
    let prefix = info.service.action_prefix();
    let mut resources: Vec<AuditResource> = facts.resources.clone();
    for (action, arn) in &facts.asked {
        if action
            .strip_prefix(prefix)
            .is_some_and(|rest| rest.starts_with(':'))
            && !resources.iter().any(|r| &r.arn == arn)
            && let Some(t) = resource_type(arn)
        {
            resources.push(AuditResource {
                resource_type: t.into(),
                arn: arn.clone(),
            });
        }
    }
    let mut r = Record::new(
        info,
        &info.event_id,
        event_source(info.service),
        &info.event_name,
        None,
        resources,
    );
    r.request_parameters = &info.request_parameters;
    match outcome {
        Outcome::Pending => {}
        Outcome::Ok { response } => {
            r.response_elements = response.as_ref().unwrap_or(&NULL);
        }
        Outcome::Err { code, message } => {
            r.error_code = Some((*code).to_string());
            r.error_message = message.map(str::to_string);
        }
    }
    if !facts.reads.is_empty() {
        r.additional = Some(reads_json(&facts.reads));
        // A failed request returned nothing, whatever it read on the way.
        if r.error_code.is_none() {
            r.reads = facts.reads.clone();
        }
    }
    r.into_row()
}

/// The event of a call a service made on the caller's behalf, as stored: what differs from
/// the request's own event ([`tresor_cloudtrail::record::hop_event`] renders it in full).
pub fn hop_event(hop: &Hop, event_id: &str) -> HopDelta {
    HopDelta {
        event_id: event_id.to_string(),
        event_name: hop.event_name.clone(),
        event_source: hop.event_source.clone(),
        invoked_by: hop.invoked_by.clone(),
        read_only: hop.read_only,
        resources: pairs(&hop.resources),
        error_code: hop.error_code.clone(),
        request_parameters: hop.request_parameters.clone(),
        additional_event_data: hop.additional_event_data.clone(),
    }
}

/// A service's own event (rotation, deletion after the recovery window).
pub fn service_event(e: &ServiceEvent) -> StoredEvent {
    let event_id = tresor_crypto::ids::uuid_v4();
    let mut record = Map::new();
    record.insert("eventVersion".into(), EVENT_VERSION.into());
    record.insert(
        "userIdentity".into(),
        json!({"type": "AWSService", "invokedBy": e.event_source}),
    );
    record.insert("eventTime".into(), event_time(e.time).into());
    record.insert("eventSource".into(), e.event_source.clone().into());
    record.insert("eventName".into(), e.event_name.clone().into());
    record.insert("awsRegion".into(), e.region.clone().into());
    record.insert("sourceIPAddress".into(), e.event_source.clone().into());
    record.insert("userAgent".into(), e.event_source.clone().into());
    record.insert("requestParameters".into(), Value::Null);
    record.insert("responseElements".into(), Value::Null);
    if let Some(a) = &e.additional_event_data {
        record.insert("additionalEventData".into(), a.clone());
    }
    record.insert("eventID".into(), event_id.clone().into());
    record.insert("readOnly".into(), false.into());
    record.insert("resources".into(), resources_json(&e.resources));
    record.insert("eventType".into(), "AwsServiceEvent".into());
    record.insert("managementEvent".into(), true.into());
    record.insert("recipientAccountId".into(), e.account.clone().into());
    record.insert("eventCategory".into(), "Management".into());
    StoredEvent {
        v: RECORD_VERSION,
        event_id,
        event_name: e.event_name.clone(),
        event_source: e.event_source.clone(),
        read_only: false,
        time_us: micros(e.time),
        account: e.account.clone(),
        region: e.region.clone(),
        username: None,
        access_key_id: None,
        resources: pairs(&e.resources),
        principal: None,
        source_ip: None,
        invoked_by: Some(e.event_source.clone()),
        error_code: None,
        reads: Vec::new(),
        event: Value::Object(record).to_string(),
    }
}

fn pairs(resources: &[AuditResource]) -> Vec<(String, String)> {
    resources
        .iter()
        .map(|r| (r.resource_type.clone(), r.arn.clone()))
        .collect()
}

/// An `AwsApiCall` record being built: the CloudTrail JSON and the stored event's index
/// fields come from it together.
struct Record<'a> {
    info: &'a RequestInfo,
    event_id: &'a str,
    event_source: String,
    event_name: &'a str,
    invoked_by: Option<String>,
    request_parameters: &'a Value,
    response_elements: &'a Value,
    /// JSON text.
    additional: Option<String>,
    error_code: Option<String>,
    error_message: Option<String>,
    read_only: bool,
    resources: Vec<AuditResource>,
    reads: Vec<SecretRead>,
}

impl<'a> Record<'a> {
    /// A record of `info`'s caller; `invoked_by` names the service that made the call on the
    /// caller's behalf (CloudTrail then gives that service as source address and agent).
    fn new(
        info: &'a RequestInfo,
        event_id: &'a str,
        event_source: String,
        event_name: &'a str,
        invoked_by: Option<&str>,
        resources: Vec<AuditResource>,
    ) -> Self {
        Record {
            info,
            event_id,
            event_source,
            event_name,
            invoked_by: invoked_by.map(str::to_string),
            request_parameters: &NULL,
            response_elements: &NULL,
            additional: None,
            error_code: None,
            error_message: None,
            read_only: info.read_only,
            resources,
            reads: Vec::new(),
        }
    }

    fn into_row(self) -> Row {
        let info = self.info;
        let source_ip = match &self.invoked_by {
            Some(by) => Some(by.clone()),
            None => info.source_ip.map(tresor_core::authz::ip_text),
        };
        let user_agent = self.invoked_by.clone().or_else(|| info.user_agent.clone());
        let (account, principal, access_key_id) = caller_parts(&info.who);
        let call = ApiCall {
            request_id: info.request_id.clone(),
            user_agent,
            user_identity: match &self.invoked_by {
                None => caller_identity_json(&info.who),
                Some(by) => user_identity_json(&info.who, Some(by)),
            },
            request_parameters: json_text(self.request_parameters),
            response_elements: json_text(self.response_elements),
            error_message: self.error_message,
            additional_event_data: self.additional,
        };
        Row {
            event: StoredEvent {
                v: RECORD_VERSION,
                event_id: self.event_id.to_string(),
                event_name: self.event_name.to_string(),
                event_source: self.event_source,
                read_only: self.read_only,
                time_us: micros(info.time),
                account,
                region: info.region.clone(),
                username: username(&info.who),
                access_key_id,
                resources: pairs(&self.resources),
                principal,
                source_ip,
                invoked_by: self.invoked_by,
                error_code: self.error_code,
                reads: self.reads,
                // Rendered from `call` when the record is read.
                event: String::new(),
            },
            call: Some(call),
            hops: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_sources_are_the_services_endpoints_names() {
        // CloudTrail's eventSource: "<service>.amazonaws.com" (AWS CloudTrail User Guide,
        // "CloudTrail record contents").
        assert_eq!(event_source(ServiceId::Ssm), "ssm.amazonaws.com");
        assert_eq!(
            event_source(ServiceId::SecretsManager),
            "secretsmanager.amazonaws.com"
        );
        assert_eq!(event_source(ServiceId::Kms), "kms.amazonaws.com");
        assert_eq!(event_source(ServiceId::Sts), "sts.amazonaws.com");
    }

    /// `userIdentity` built as a map of values (as format 3 built it): the oracle of
    /// [`user_identity_json`].
    pub fn user_identity(who: &Who, invoked_by: Option<&str>) -> Value {
        let mut id = Map::new();
        match who {
            Who::Caller {
                caller,
                session_created,
                federation,
            } => {
                let kind = match &caller.kind {
                    CallerKind::Root => "Root",
                    CallerKind::User { .. } => "IAMUser",
                    CallerKind::AssumedRole { .. } => "AssumedRole",
                };
                id.insert("type".into(), kind.into());
                id.insert("principalId".into(), caller.user_id.clone().into());
                id.insert("arn".into(), caller.arn.clone().into());
                id.insert("accountId".into(), caller.account.clone().into());
                id.insert("accessKeyId".into(), caller.access_key_id.clone().into());
                if let CallerKind::User { name, .. } = &caller.kind {
                    id.insert("userName".into(), name.clone().into());
                }
                let creation = session_created.map(event_time);
                if let CallerKind::AssumedRole {
                    role_name,
                    role_path,
                    role_id,
                    ..
                } = &caller.kind
                {
                    let mut attributes = Map::new();
                    if let Some(c) = &creation {
                        attributes.insert("creationDate".into(), c.clone().into());
                    }
                    attributes.insert("mfaAuthenticated".into(), "false".into());
                    let mut session_context = json!({
                            "sessionIssuer": {
                                "type": "Role",
                                "principalId": role_id,
                                "arn": format!(
                                    "arn:{}:iam::{}:role{}{}",
                                    partition_of(&caller.arn), caller.account, role_path, role_name
                                ),
                                "accountId": caller.account,
                                "userName": role_name,
                            },
                            "attributes": attributes,
                    });
                    if let Some(f) = federation {
                        let attributes: Map<String, Value> = f
                            .attributes
                            .iter()
                            .map(|(k, v)| (k.clone(), v.clone().into()))
                            .collect();
                        session_context["webIdFederationData"] = json!({
                            "federatedProvider": f.federated_provider,
                            "attributes": attributes,
                        });
                    }
                    id.insert("sessionContext".into(), session_context);
                } else if let Some(c) = creation {
                    // GetSessionToken credentials of a user or the root user.
                    id.insert(
                        "sessionContext".into(),
                        json!({"attributes": {"creationDate": c, "mfaAuthenticated": "false"}}),
                    );
                }
            }
            Who::WebIdentity(user) => {
                id.insert("type".into(), "WebIdentityUser".into());
                id.insert("principalId".into(), user.principal_id.clone().into());
                id.insert("userName".into(), user.user_name.clone().into());
                id.insert(
                    "identityProvider".into(),
                    user.identity_provider.clone().into(),
                );
            }
            Who::Unauthenticated { access_key_id } => {
                id.insert("type".into(), "Unknown".into());
                if let Some(k) = access_key_id {
                    id.insert("accessKeyId".into(), k.clone().into());
                }
            }
        }
        if let Some(by) = invoked_by {
            id.insert("invokedBy".into(), by.into());
        }
        Value::Object(id)
    }

    /// An `AwsApiCall` event's CloudTrail JSON as serde writes it (what the records of format 3
    /// stored): the oracle of [`tresor_cloudtrail::record::render_api_call`].
    #[derive(serde::Serialize)]
    struct ApiCallJson<'a> {
        #[serde(
            rename = "additionalEventData",
            skip_serializing_if = "Option::is_none"
        )]
        additional_event_data: Option<&'a Value>,
        #[serde(rename = "awsRegion")]
        aws_region: &'a str,
        #[serde(rename = "errorCode", skip_serializing_if = "Option::is_none")]
        error_code: Option<&'a str>,
        #[serde(rename = "errorMessage", skip_serializing_if = "Option::is_none")]
        error_message: Option<&'a str>,
        #[serde(rename = "eventCategory")]
        event_category: &'a str,
        #[serde(rename = "eventID")]
        event_id: &'a str,
        #[serde(rename = "eventName")]
        event_name: &'a str,
        #[serde(rename = "eventSource")]
        event_source: &'a str,
        #[serde(rename = "eventTime")]
        event_time: String,
        #[serde(rename = "eventType")]
        event_type: &'a str,
        #[serde(rename = "eventVersion")]
        event_version: &'a str,
        #[serde(rename = "managementEvent")]
        management_event: bool,
        #[serde(rename = "readOnly")]
        read_only: bool,
        #[serde(rename = "recipientAccountId")]
        recipient_account_id: &'a str,
        #[serde(rename = "requestID")]
        request_id: &'a str,
        #[serde(rename = "requestParameters")]
        request_parameters: &'a Value,
        resources: Vec<ResourceJson<'a>>,
        #[serde(rename = "responseElements")]
        response_elements: &'a Value,
        #[serde(rename = "sourceIPAddress")]
        source_ip_address: Option<&'a str>,
        #[serde(rename = "userAgent")]
        user_agent: Option<&'a str>,
        #[serde(rename = "userIdentity")]
        user_identity: Value,
    }

    /// One of CloudTrail's `resources` (members in byte order, as [`ApiCallJson`]).
    #[derive(serde::Serialize)]
    struct ResourceJson<'a> {
        #[serde(rename = "ARN")]
        arn: &'a str,
        #[serde(rename = "accountId")]
        account_id: &'a str,
        #[serde(rename = "type")]
        kind: &'a str,
    }

    fn role_caller() -> Caller {
        Caller {
            account: "111122223333".into(),
            arn: "arn:aws:sts::111122223333:assumed-role/app/i-1".into(),
            user_id: "AROAEXAMPLE:i-1".into(),
            kind: CallerKind::AssumedRole {
                role_name: "app".into(),
                role_path: "/".into(),
                role_id: "AROAEXAMPLE".into(),
                session_name: "i-1".into(),
            },
            access_key_id: "ASIAEXAMPLE".into(),
        }
    }

    fn info() -> RequestInfo {
        RequestInfo {
            event_id: "e".into(),
            request_id: "r".into(),
            time: OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap(),
            region: "us-east-1".into(),
            source_ip: "10.0.0.1".parse().ok(),
            user_agent: Some("boto3".into()),
            who: Who::Caller {
                caller: role_caller().into(),
                session_created: OffsetDateTime::from_unix_timestamp(1_699_999_000).ok(),
                federation: None,
            },
            service: ServiceId::SecretsManager,
            event_name: "GetSecretValue".into(),
            read_only: true,
            request_parameters: json!({"secretId": "db"}),
        }
    }

    #[test]
    fn a_pending_record_prepared_ahead_is_written_as_built_or_anew_when_facts_came_after() {
        use tresor_core::audit::{AuditFacts, PendingRecord};
        use tresor_store::Store as _;
        let facts = AuditFacts::default();
        let pending = super::super::Pending {
            wrote: std::sync::atomic::AtomicBool::new(false),
            info: info(),
            facts: facts.clone(),
            hop_ids: parking_lot::Mutex::new(Vec::new()),
        };
        let store = tresor_store::MemoryStore::new();
        let write = |prepared| {
            let mut txn = store.begin_write().unwrap();
            pending.write(&mut *txn, prepared).unwrap();
            txn.commit().unwrap();
        };
        let stored = |key: &str| store.begin_read().unwrap().get(key).unwrap().unwrap();
        // Nothing noted since it was built: written as it is.
        let prepared = pending.prepare().unwrap();
        let (key, value) = (prepared.key.clone(), prepared.value.clone());
        write(prepared);
        assert_eq!(stored(&key), value);
        assert!(pending.wrote.load(std::sync::atomic::Ordering::SeqCst));
        // A resource noted inside the transaction: the record is built anew, with it.
        let kms_key = "arn:aws:kms:us-east-1:111122223333:key/k";
        let prepared = pending.prepare().unwrap();
        facts.resource("AWS::KMS::Key", kms_key);
        write(prepared);
        let again = stored(&key);
        assert_ne!(again, value);
        let events = tresor_cloudtrail::record::decode_row(&key, &again);
        assert!(events[0].resources.iter().any(|(_, arn)| arn == kms_key));
        assert_eq!(pending.prepare().unwrap().value, again);
    }

    #[test]
    fn an_assumed_role_event_has_cloudtrails_shape() {
        let info = info();
        let facts = Facts {
            reads: vec![SecretRead {
                secret_arn: "arn:aws:secretsmanager:us-east-1:111122223333:secret:db-AbCdEf".into(),
                version_id: "v1".into(),
                version_stages: vec!["AWSCURRENT".into()],
            }],
            asked: vec![(
                "secretsmanager:GetSecretValue".into(),
                "arn:aws:secretsmanager:us-east-1:111122223333:secret:db-AbCdEf".into(),
            )],
            ..Facts::default()
        };
        let row = main_event(&info, &facts, &Outcome::Ok { response: None });
        let e = row.main_event();
        let v: Value = serde_json::from_str(&e.event).unwrap();
        assert_eq!(v["eventVersion"], "1.09");
        assert_eq!(v["eventTime"], "2023-11-14T22:13:20Z");
        assert_eq!(v["userIdentity"]["type"], "AssumedRole");
        assert_eq!(
            v["userIdentity"]["sessionContext"]["sessionIssuer"]["arn"],
            "arn:aws:iam::111122223333:role/app"
        );
        assert_eq!(
            v["userIdentity"]["sessionContext"]["attributes"]["creationDate"],
            "2023-11-14T21:56:40Z"
        );
        assert_eq!(
            v["additionalEventData"]["secretVersions"][0]["versionId"],
            "v1"
        );
        assert_eq!(v["resources"].as_array().map(Vec::len), Some(1));
        assert_eq!(v["eventType"], "AwsApiCall");
        assert_eq!(v["recipientAccountId"], "111122223333");
        assert_eq!(e.username.as_deref(), Some("i-1"));
        assert_eq!(e.reads.len(), 1);
    }

    /// A hop's event built in full like the request's own (what record format 1 stored).
    fn full_hop(info: &RequestInfo, hop: &Hop, event_id: &str) -> StoredEvent {
        let request: &Value = &serde_json::from_str(&hop.request_parameters).unwrap();
        let mut r = Record::new(
            info,
            event_id,
            hop.event_source.clone(),
            &hop.event_name,
            Some(&hop.invoked_by),
            hop.resources.clone(),
        );
        r.request_parameters = request;
        r.additional = hop.additional_event_data.clone();
        r.error_code = hop.error_code.clone();
        r.read_only = hop.read_only;
        r.reads = hop
            .additional_event_data
            .as_deref()
            .map(|a| serde_json::from_str::<Value>(a).unwrap())
            .and_then(|a| a.get("secretVersions").cloned())
            .and_then(|v| serde_json::from_value(v.clone()).ok())
            .unwrap_or_default();
        r.into_row().main_event()
    }

    #[test]
    fn a_stored_hop_renders_as_the_event_built_in_full() {
        let info = info();
        let arn = "arn:aws:secretsmanager:us-east-1:111122223333:secret:db-AbCdEf";
        let read = SecretRead {
            secret_arn: arn.into(),
            version_id: "v1".into(),
            version_stages: vec!["AWSPREVIOUS".into()],
        };
        let facts = Facts {
            reads: vec![read.clone()],
            ..Facts::default()
        };
        let reference = Hop {
            event_source: "secretsmanager.amazonaws.com".into(),
            event_name: "GetSecretValue".into(),
            invoked_by: "ssm.amazonaws.com".into(),
            read_only: true,
            resources: vec![AuditResource {
                resource_type: "AWS::SecretsManager::Secret".into(),
                arn: arn.into(),
            }],
            request_parameters: json!({"secretId": arn}).to_string(),
            additional_event_data: Some(json!({ "secretVersions": [read] }).to_string()),
            error_code: None,
        };
        let decrypt = Hop {
            event_source: "kms.amazonaws.com".into(),
            event_name: "Decrypt".into(),
            invoked_by: "secretsmanager.amazonaws.com".into(),
            read_only: true,
            resources: Vec::new(),
            request_parameters: json!({"encryptionContext": {"SecretARN": arn}}).to_string(),
            additional_event_data: None,
            error_code: Some("AccessDeniedException".into()),
        };
        let outcomes = [
            Outcome::Ok {
                response: Some(json!({"name": "db"})),
            },
            Outcome::Err {
                code: "AccessDeniedException",
                message: Some("no"),
            },
            Outcome::Pending,
        ];
        for outcome in &outcomes {
            let main = main_event(&info, &facts, outcome).main_event();
            // Written straight from its parts, the event reads as serde_json's map of it
            // writes it (members in byte order), the form its hops are rendered in.
            let canonical: Value = serde_json::from_str(&main.event).unwrap();
            assert_eq!(canonical.to_string(), main.event);
            for hop in [&reference, &decrypt] {
                let full = full_hop(&info, hop, "h1");
                let rendered =
                    tresor_cloudtrail::record::hop_event(&main, &hop_event(hop, "h1")).unwrap();
                assert_eq!(rendered.event, full.event);
                assert_eq!(
                    serde_json::to_value(&rendered).unwrap(),
                    serde_json::to_value(&full).unwrap()
                );
            }
        }
    }

    /// The old serde rendering of a record's parts.
    fn serde_rendering(row: &Row) -> String {
        let e = &row.event;
        let c = row.call.as_ref().unwrap();
        let parse = |t: &str| -> Value { serde_json::from_str(t).unwrap() };
        let additional = c.additional_event_data.as_deref().map(parse);
        let (request, response) = (parse(&c.request_parameters), parse(&c.response_elements));
        let json = ApiCallJson {
            additional_event_data: additional.as_ref(),
            aws_region: &e.region,
            error_code: e.error_code.as_deref(),
            error_message: c.error_message.as_deref(),
            event_category: "Management",
            event_id: &e.event_id,
            event_name: &e.event_name,
            event_source: &e.event_source,
            event_time: event_time(e.time()),
            event_type: "AwsApiCall",
            event_version: EVENT_VERSION,
            management_event: true,
            read_only: e.read_only,
            recipient_account_id: &e.account,
            request_id: &c.request_id,
            request_parameters: &request,
            resources: e
                .resources
                .iter()
                .map(|(kind, arn)| ResourceJson {
                    arn,
                    account_id: arn.split(':').nth(4).unwrap_or(""),
                    kind,
                })
                .collect(),
            response_elements: &response,
            source_ip_address: e.source_ip.as_deref(),
            user_agent: c.user_agent.as_deref(),
            user_identity: parse(&c.user_identity),
        };
        serde_json::to_string(&json).unwrap()
    }

    #[test]
    fn events_rendered_from_their_parts_read_as_serde_wrote_them() {
        let user = Caller {
            account: "111122223333".into(),
            arn: "arn:aws:iam::111122223333:user/ci/agent".into(),
            user_id: "AIDAEXAMPLE".into(),
            kind: CallerKind::User {
                name: "agent \"quoted\"".into(),
                path: "/ci/".into(),
                unique_id: "AIDAEXAMPLE".into(),
            },
            access_key_id: "AKIAEXAMPLE".into(),
        };
        let whos = [
            Who::Caller {
                caller: role_caller().into(),
                session_created: OffsetDateTime::from_unix_timestamp(1_699_999_000).ok(),
                federation: Some(Federation {
                    federated_provider: "arn:aws:iam::111122223333:oidc-provider/x".into(),
                    attributes: vec![("x:sub".into(), "repo:a/b\n".into())],
                }),
            },
            Who::Caller {
                caller: user.into(),
                session_created: None,
                federation: None,
            },
            Who::Caller {
                caller: Caller::root("111122223333", "AKIAROOT").into(),
                session_created: OffsetDateTime::from_unix_timestamp(1_699_999_000).ok(),
                federation: None,
            },
            Who::WebIdentity(WebIdentityUser {
                identity_provider: "token.actions.githubusercontent.com".into(),
                principal_id: "p".into(),
                user_name: "u".into(),
                account: "111122223333".into(),
            }),
            Who::Unauthenticated {
                access_key_id: Some("AKIA\u{1}".into()),
            },
            Who::Unauthenticated {
                access_key_id: None,
            },
        ];
        let arn = "arn:aws:secretsmanager:us-east-1:111122223333:secret:db-AbCdEf";
        let facts = Facts {
            reads: vec![SecretRead {
                secret_arn: arn.into(),
                version_id: "v1".into(),
                version_stages: vec!["AWSCURRENT".into()],
            }],
            asked: vec![("secretsmanager:GetSecretValue".into(), arn.into())],
            ..Facts::default()
        };
        let outcomes = [
            Outcome::Ok {
                response: Some(json!({"name": "db", "tricky": "\u{7f}\\\"</"})),
            },
            Outcome::Ok { response: None },
            Outcome::Err {
                code: "AccessDeniedException",
                message: Some("User: arn:aws:iam::1:user/\"x\" is not authorized\t…"),
            },
            Outcome::Err {
                code: "InternalFailure",
                message: None,
            },
            Outcome::Pending,
        ];
        let mut n = 0;
        for who in &whos {
            for (agent, ip) in [
                (Some("aws-cli/2.0 \"q\"\u{0}"), Some("10.0.0.1")),
                (None, None),
            ] {
                let mut info = info();
                info.who = who.clone();
                info.user_agent = agent.map(str::to_string);
                info.source_ip = ip.and_then(|ip| ip.parse().ok());
                for facts in [&facts, &Facts::default()] {
                    for outcome in &outcomes {
                        let row = main_event(&info, facts, outcome);
                        assert!(row.event.event.is_empty());
                        let who = match &facts.web_identity_user {
                            Some(user) => Who::WebIdentity(user.clone()),
                            None => info.who.clone(),
                        };
                        assert_eq!(
                            row.call.as_ref().unwrap().user_identity,
                            user_identity(&who, None).to_string()
                        );
                        assert_eq!(row.main_event().event, serde_rendering(&row));
                        n += 1;
                    }
                }
            }
        }
        assert_eq!(n, 6 * 2 * 2 * 5);
        for who in &whos {
            for by in [None, Some("ssm.amazonaws.com")] {
                assert_eq!(
                    user_identity_json(who, by),
                    user_identity(who, by).to_string()
                );
            }
        }
    }

    #[test]
    fn a_callers_identity_is_kept_per_thread_and_written_anew_when_anything_differs() {
        let base = info().who;
        let mut whos = vec![base.clone()];
        // The same access key in another session, and a renamed role: other texts.
        if let Who::Caller {
            caller,
            session_created,
            federation,
        } = &base
        {
            whos.push(Who::Caller {
                caller: caller.clone(),
                session_created: session_created.map(|t| t + time::Duration::seconds(1)),
                federation: federation.clone(),
            });
            let mut renamed = Caller::clone(caller);
            if let CallerKind::AssumedRole { role_name, .. } = &mut renamed.kind {
                role_name.push('2');
            }
            whos.push(Who::Caller {
                caller: renamed.into(),
                session_created: *session_created,
                federation: federation.clone(),
            });
        }
        for i in 0..(IDENTITY_CACHE as u64) * 3 {
            whos.push(Who::Unauthenticated {
                access_key_id: Some(format!("AKIA{i}")),
            });
        }
        // Round after round, more callers than the cache holds, and each caller again at once.
        for _ in 0..3 {
            for who in &whos {
                for _ in 0..2 {
                    assert_eq!(
                        caller_identity_json(who),
                        user_identity(who, None).to_string()
                    );
                }
            }
        }
        assert_ne!(
            caller_identity_json(&whos[0]),
            caller_identity_json(&whos[1])
        );
        assert_ne!(
            caller_identity_json(&whos[0]),
            caller_identity_json(&whos[2])
        );
        IDENTITIES.with(|c| assert_eq!(c.borrow().len(), IDENTITY_CACHE));
    }

    #[test]
    fn secret_versions_read_are_written_as_a_map_of_them_writes_them() {
        let read = |arn: &str, stages: &[&str]| SecretRead {
            secret_arn: arn.into(),
            version_id: "v\"1".into(),
            version_stages: stages.iter().map(|s| s.to_string()).collect(),
        };
        for reads in [
            vec![],
            vec![read("a", &[])],
            vec![
                read("a", &["AWSCURRENT"]),
                read("b\n", &["AWSPREVIOUS", "x"]),
            ],
        ] {
            assert_eq!(
                reads_json(&reads),
                json!({ "secretVersions": reads }).to_string()
            );
        }
    }
}
