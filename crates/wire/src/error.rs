//! AWS's error shapes for both protocols, rendered at one point.
//!
//! Handlers return `AwsError { code, message, status }`; this module turns it into the
//! awsJson1.1 body (`{"__type": …, "message"|"Message": …}`) or the awsQuery
//! `<ErrorResponse>` document. Which key casing a JSON error uses is the botocore model's
//! (spec §1.1): every KMS error uses `message`, every Secrets Manager error `Message`, SSM
//! varies by shape.

use std::borrow::Cow;

use crate::escape::escape;
use crate::service::{Protocol, ServiceId};

/// An error as AWS puts it on the wire. `message: None` omits the message entirely, as
/// SSM's `ParameterNotFound` does on `GetParameter` (spec §9.2).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AwsError {
    pub code: Cow<'static, str>,
    pub message: Option<String>,
    pub status: u16,
}

/// Which key a JSON error body uses for its message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MessageCase {
    Lower,
    Upper,
}

impl AwsError {
    pub fn new(
        code: impl Into<Cow<'static, str>>,
        status: u16,
        message: impl Into<String>,
    ) -> Self {
        AwsError {
            code: code.into(),
            message: Some(message.into()),
            status,
        }
    }

    /// A client-fault error (HTTP 400) — every modeled error of the JSON services (spec §1.1).
    pub fn client(code: impl Into<Cow<'static, str>>, message: impl Into<String>) -> Self {
        Self::new(code, 400, message)
    }

    /// An error with no message member at all.
    pub fn bare(code: impl Into<Cow<'static, str>>, status: u16) -> Self {
        AwsError {
            code: code.into(),
            message: None,
            status,
        }
    }

    pub fn with_status(mut self, status: u16) -> Self {
        self.status = status;
        self
    }

    /// The operation named does not exist, or is not implemented: nothing may answer success
    /// without doing its work.
    pub fn unknown_operation(protocol: Protocol) -> Self {
        match protocol {
            Protocol::AwsJson11 => Self::bare("UnknownOperationException", 400),
            Protocol::AwsQuery => Self::client(
                "InvalidAction",
                "Could not find operation for this web service.",
            ),
        }
    }

    /// awsQuery: `The action X is not valid for this web service.`
    pub fn invalid_action(action: &str) -> Self {
        Self::client(
            "InvalidAction",
            format!("The action {action} is not valid for this web service."),
        )
    }

    pub fn serialization(message: impl Into<String>) -> Self {
        Self::client("SerializationException", message)
    }

    /// `ValidationException` (JSON) / `ValidationError` (query), AWS's constraint wording.
    pub fn validation(protocol: Protocol, message: impl Into<String>) -> Self {
        match protocol {
            Protocol::AwsJson11 => Self::client("ValidationException", message),
            Protocol::AwsQuery => Self::client("ValidationError", message),
        }
    }

    /// awsQuery: a required parameter is absent.
    pub fn missing_parameter(name: &str) -> Self {
        Self::client(
            "MissingParameter",
            format!("The request must contain the parameter {name}"),
        )
    }

    /// `AccessDeniedException` 400 (JSON) / `AccessDenied` 403 (query).
    pub fn access_denied(protocol: Protocol, message: impl Into<String>) -> Self {
        match protocol {
            Protocol::AwsJson11 => Self::client("AccessDeniedException", message),
            Protocol::AwsQuery => Self::new("AccessDenied", 403, message),
        }
    }

    /// An internal failure. The message is generic on purpose: details of storage or crypto
    /// failures go to the server log, never to the client.
    pub fn internal(protocol: Protocol) -> Self {
        let _ = protocol;
        Self::new(
            "InternalFailure",
            500,
            "The request processing has failed because of an unknown error, exception or failure.",
        )
    }

    pub fn request_entity_too_large(limit: usize) -> Self {
        Self::new(
            "RequestEntityTooLarge",
            413,
            format!("Request body exceeds the maximum allowed size of {limit} bytes."),
        )
    }

    pub fn is_server_fault(&self) -> bool {
        self.status >= 500
    }
}

impl std::fmt::Display for AwsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.message {
            Some(m) => write!(f, "{}: {}", self.code, m),
            None => f.write_str(&self.code),
        }
    }
}

impl std::error::Error for AwsError {}

/// The message key casing the botocore model gives `code` in `service` (spec §1.1).
pub fn message_case(service: ServiceId, code: &str) -> MessageCase {
    match service {
        ServiceId::SecretsManager => MessageCase::Upper,
        ServiceId::Kms => MessageCase::Lower,
        ServiceId::Ssm => match code {
            "ValidationException"
            | "AccessDeniedException"
            | "TooManyUpdates"
            | "InternalServerError"
            | "ThrottlingException" => MessageCase::Upper,
            _ => MessageCase::Lower,
        },
        ServiceId::Iam | ServiceId::Sts => MessageCase::Upper,
    }
}

/// The awsJson1.1 error body.
pub fn render_json(service: Option<ServiceId>, err: &AwsError) -> Vec<u8> {
    let mut body = serde_json::Map::new();
    body.insert(
        "__type".into(),
        serde_json::Value::String(err.code.to_string()),
    );
    if let Some(m) = &err.message {
        let key = match service.map(|s| message_case(s, &err.code)) {
            Some(MessageCase::Upper) => "Message",
            _ => "message",
        };
        body.insert(key.into(), serde_json::Value::String(m.clone()));
    }
    serde_json::to_vec(&serde_json::Value::Object(body)).unwrap_or_else(|_| b"{}".to_vec())
}

/// The awsQuery `<ErrorResponse>` document (spec §1.2): `Type` is `Sender` for client faults
/// and `Receiver` for server faults.
pub fn render_xml(service: ServiceId, err: &AwsError, request_id: &str) -> String {
    let kind = if err.is_server_fault() {
        "Receiver"
    } else {
        "Sender"
    };
    let mut out = String::with_capacity(256);
    out.push_str("<ErrorResponse xmlns=\"");
    out.push_str(service.xml_namespace());
    out.push_str("\">\n  <Error>\n    <Type>");
    out.push_str(kind);
    out.push_str("</Type>\n    <Code>");
    out.push_str(&escape(&err.code));
    out.push_str("</Code>\n");
    if let Some(m) = &err.message {
        out.push_str("    <Message>");
        out.push_str(&escape(m));
        out.push_str("</Message>\n");
    }
    out.push_str("  </Error>\n  <RequestId>");
    out.push_str(&escape(request_id));
    out.push_str("</RequestId>\n</ErrorResponse>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_error_uses_the_models_message_casing() {
        let e = AwsError::client(
            "ResourceNotFoundException",
            "Secrets Manager can't find the specified secret.",
        );
        let v: serde_json::Value =
            serde_json::from_slice(&render_json(Some(ServiceId::SecretsManager), &e))
                .unwrap_or_default();
        assert_eq!(v["__type"], "ResourceNotFoundException");
        assert_eq!(
            v["Message"],
            "Secrets Manager can't find the specified secret."
        );
        let k = AwsError::client("NotFoundException", "x");
        let v: serde_json::Value =
            serde_json::from_slice(&render_json(Some(ServiceId::Kms), &k)).unwrap_or_default();
        assert_eq!(v["message"], "x");
        assert!(v.get("Message").is_none());
    }

    #[test]
    fn bare_error_has_no_message_member() {
        let e = AwsError::bare("ParameterNotFound", 400);
        let v: serde_json::Value =
            serde_json::from_slice(&render_json(Some(ServiceId::Ssm), &e)).unwrap_or_default();
        assert_eq!(v, serde_json::json!({"__type": "ParameterNotFound"}));
    }

    #[test]
    fn xml_error_is_sender_or_receiver_and_escaped() {
        let e = AwsError::new(
            "NoSuchEntity",
            404,
            "The role with name <a&b> cannot be found.",
        );
        let x = render_xml(ServiceId::Iam, &e, "rid");
        assert!(x.contains("<Type>Sender</Type>"));
        assert!(x.contains("<Code>NoSuchEntity</Code>"));
        assert!(x.contains("&lt;a&amp;b&gt;"));
        assert!(x.contains("<RequestId>rid</RequestId>"));
        assert!(x.contains("xmlns=\"https://iam.amazonaws.com/doc/2010-05-08/\""));
        let s = AwsError::internal(Protocol::AwsQuery);
        assert!(render_xml(ServiceId::Sts, &s, "r").contains("<Type>Receiver</Type>"));
    }
}
