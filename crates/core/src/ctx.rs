//! Who is calling and in what circumstances: the authenticated caller and the request's
//! region, time and transport, handed to every operation by the server.

use time::OffsetDateTime;

/// The authenticated principal of a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    pub account: String,
    /// The ARN AWS reports for the caller: user ARN, assumed-role session ARN or `:root`.
    pub arn: String,
    /// `aws:userid`: `AIDA…`, `AROA…:<session>`, or the account id for root.
    pub user_id: String,
    pub kind: CallerKind,
    pub access_key_id: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CallerKind {
    Root,
    User {
        name: String,
        path: String,
        unique_id: String,
    },
    AssumedRole {
        role_name: String,
        role_path: String,
        role_id: String,
        session_name: String,
    },
}

impl Caller {
    pub fn root(account: &str, access_key_id: &str) -> Caller {
        Caller {
            account: account.to_string(),
            arn: format!("arn:aws:iam::{account}:root"),
            user_id: account.to_string(),
            kind: CallerKind::Root,
            access_key_id: access_key_id.to_string(),
        }
    }
}

/// Everything about the request that is not its input.
#[derive(Clone, Debug)]
pub struct RequestCtx {
    pub request_id: String,
    /// The region from the SigV4 credential scope (the SigV4 credential scope names it).
    pub region: String,
    pub now: OffsetDateTime,
    pub source_ip: Option<std::net::IpAddr>,
    pub secure_transport: bool,
    pub caller: Caller,
}
