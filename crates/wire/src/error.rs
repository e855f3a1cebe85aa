//! AWS's error shapes for both protocols, rendered at one point.
//!
//! Handlers return `AwsError { code, message, status }`; this module turns it into the
//! awsJson1.1 body (`{"__type": …, "message"|"Message": …}`) or the awsQuery
//! `<ErrorResponse>` document. Which key casing a JSON error uses is the botocore model's
//! (the `message`/`Message` member of each error shape): every KMS error uses `message`, every Secrets Manager error `Message`, SSM
//! varies by shape.

use std::borrow::Cow;

use crate::escape::escape;
use crate::service::{Protocol, ServiceId};

/// An error as AWS puts it on the wire. `message: None` omits the message entirely, as
/// SSM's `ParameterNotFound` does on `GetParameter` (observed behavior).
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

    /// A client-fault error (HTTP 400) — every modeled error of the JSON services (botocore `error.httpStatusCode`).
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
            Protocol::RestJson1 => Self::bare("UnknownOperationException", 404),
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
            Protocol::AwsJson11 | Protocol::RestJson1 => {
                Self::client("ValidationException", message)
            }
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
            // Lambda's AccessDeniedException is modeled with HTTP status 403.
            Protocol::RestJson1 => Self::new("AccessDeniedException", 403, message),
            Protocol::AwsQuery => Self::new("AccessDenied", 403, message),
        }
    }

    /// An internal failure. The message is generic on purpose: details of storage or crypto
    /// failures go to the server log, never to the client.
    pub fn internal(protocol: Protocol) -> Self {
        let _ = protocol;
        Self::new("InternalFailure", 500, INTERNAL_MESSAGE)
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

/// The message AWS sends with an internal failure; details stay in the server log.
pub const INTERNAL_MESSAGE: &str =
    "The request processing has failed because of an unknown error, exception or failure.";

/// What every service's typed error (one `thiserror` enum per service, variants named after
/// AWS's error codes) tells the wire layer. [`to_aws_error`] turns any of them into the
/// [`AwsError`] that [`render_json`] and [`render_xml`] render.
///
/// `Display` is for the server log; what the client reads is [`message`](Self::message).
/// An internal failure (storage, crypto, a corrupt record) keeps its details out of the
/// response: its default message is [`INTERNAL_MESSAGE`] and its `Display`, with the chain of
/// `source()`s, is logged instead.
pub trait ServiceError: std::error::Error {
    /// AWS's error code (`ResourceNotFoundException`, `NoSuchEntity`, …).
    fn code(&self) -> &str;

    /// The HTTP status: 400 unless the model says otherwise.
    fn http_status(&self) -> u16 {
        400
    }

    /// The message the client reads, `None` for an error without a message member.
    fn message(&self) -> Option<Cow<'_, str>> {
        if self.is_internal() {
            Some(Cow::Borrowed(INTERNAL_MESSAGE))
        } else {
            Some(Cow::Owned(self.to_string()))
        }
    }

    /// Whether this is the server's fault, with details for the log only.
    fn is_internal(&self) -> bool {
        false
    }
}

/// The wire error for a service error. An internal one is logged here, with its `source()`
/// chain, and reaches the client only as code, status and [`ServiceError::message`].
pub fn to_aws_error<E: ServiceError + ?Sized>(e: &E) -> AwsError {
    if e.is_internal() {
        let mut causes = String::new();
        let mut source = e.source();
        while let Some(s) = source {
            causes.push_str(": ");
            causes.push_str(&s.to_string());
            source = s.source();
        }
        tracing::error!(code = e.code(), error = %e, causes = %causes, "internal failure");
    }
    AwsError {
        code: Cow::Owned(e.code().to_string()),
        message: e.message().map(Cow::into_owned),
        status: e.http_status(),
    }
}

impl ServiceError for AwsError {
    fn code(&self) -> &str {
        &self.code
    }

    fn http_status(&self) -> u16 {
        self.status
    }

    fn message(&self) -> Option<Cow<'_, str>> {
        self.message.as_deref().map(Cow::Borrowed)
    }
}

/// The message key casing the botocore model gives `code` in `service`.
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
        ServiceId::Iam | ServiceId::Sts | ServiceId::CloudTrail => MessageCase::Upper,
        ServiceId::Lambda => lambda_message_case(code),
    }
}

/// Lambda's message casing by error code, from the botocore model `lambda/2015-03-31`:
/// these error shapes name the member `message`, every other Lambda error `Message`.
pub fn lambda_message_case(code: &str) -> MessageCase {
    const LOWER: [&str; 21] = [
        "AliasLimitExceededException",
        "CapacityProviderLimitExceededException",
        "CodeArtifactUserDeletedException",
        "CodeArtifactUserFailedException",
        "CodeArtifactUserPendingException",
        "CodeStorageExceededException",
        "FunctionVersionsPerCapacityProviderLimitExceededException",
        "InvalidParameterValueException",
        "InvalidRequestContentException",
        "ModeNotSupportedException",
        "PolicyLengthExceededException",
        "PreconditionFailedException",
        "ProvisionedConcurrencyConfigNotFoundException",
        "RequestTooLargeException",
        "ResourceConflictException",
        "ResourceNotReadyException",
        "RuntimeAliasDeletedException",
        "RuntimeVersionDeletedException",
        "SerializedRequestEntityTooLargeException",
        "TooManyRequestsException",
        "UnsupportedMediaTypeException",
    ];
    if LOWER.contains(&code) {
        MessageCase::Lower
    } else {
        MessageCase::Upper
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

/// The awsQuery `<ErrorResponse>` document (AWS Query API reference, "Query API error responses"): `Type` is `Sender` for client faults
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

    /// A storage failure whose text must never reach the client.
    #[derive(Debug, thiserror::Error)]
    #[error("disk full at /var/lib/tresor/secret-name-hunter2")]
    struct DiskFull;

    #[derive(Debug, thiserror::Error)]
    enum SecretsError {
        #[error("Secrets Manager can't find the specified secret.")]
        ResourceNotFoundException,
        #[error(
            "You can't perform this operation on the secret because it was marked for deletion."
        )]
        InvalidRequestException,
        #[error("ParameterNotFound")]
        ParameterNotFound,
        #[error("storage failed")]
        Store(#[source] DiskFull),
    }

    impl ServiceError for SecretsError {
        fn code(&self) -> &str {
            match self {
                SecretsError::ResourceNotFoundException => "ResourceNotFoundException",
                SecretsError::InvalidRequestException => "InvalidRequestException",
                SecretsError::ParameterNotFound => "ParameterNotFound",
                SecretsError::Store(_) => "InternalServiceError",
            }
        }

        fn http_status(&self) -> u16 {
            if self.is_internal() { 500 } else { 400 }
        }

        fn message(&self) -> Option<Cow<'_, str>> {
            match self {
                SecretsError::ParameterNotFound => None,
                SecretsError::Store(_) => Some(Cow::Borrowed(INTERNAL_MESSAGE)),
                other => Some(Cow::Owned(other.to_string())),
            }
        }

        fn is_internal(&self) -> bool {
            matches!(self, SecretsError::Store(_))
        }
    }

    /// Captures what is logged while `f` runs.
    fn logged(f: impl FnOnce()) -> String {
        use std::sync::{Arc, Mutex};
        #[derive(Clone, Default)]
        struct Buf(Arc<Mutex<Vec<u8>>>);
        impl std::io::Write for Buf {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                if let Ok(mut v) = self.0.lock() {
                    v.extend_from_slice(b);
                }
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let buf = Buf::default();
        let writer = buf.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish();
        tracing::subscriber::with_default(subscriber, f);
        let bytes = buf.0.lock().map(|v| v.clone()).unwrap_or_default();
        String::from_utf8_lossy(&bytes).into_owned()
    }

    #[test]
    fn typed_errors_render_with_their_code_status_and_message() {
        let e = to_aws_error(&SecretsError::ResourceNotFoundException);
        assert_eq!(
            e,
            AwsError::client(
                "ResourceNotFoundException",
                "Secrets Manager can't find the specified secret."
            )
        );
        let v: serde_json::Value =
            serde_json::from_slice(&render_json(Some(ServiceId::SecretsManager), &e))
                .unwrap_or_default();
        assert_eq!(
            v,
            serde_json::json!({
                "__type": "ResourceNotFoundException",
                "Message": "Secrets Manager can't find the specified secret."
            })
        );
        let bare = to_aws_error(&SecretsError::ParameterNotFound);
        assert_eq!(bare, AwsError::bare("ParameterNotFound", 400));
        let x = render_xml(
            ServiceId::Iam,
            &to_aws_error(&SecretsError::InvalidRequestException),
            "r",
        );
        assert!(x.contains("<Code>InvalidRequestException</Code>"), "{x}");
        assert!(x.contains("<Type>Sender</Type>"), "{x}");
    }

    #[test]
    fn internal_details_are_logged_never_rendered() {
        let mut e = None;
        let log = logged(|| e = Some(to_aws_error(&SecretsError::Store(DiskFull))));
        let e = e.unwrap_or_else(|| AwsError::bare("none", 0));
        assert_eq!(e.code, "InternalServiceError");
        assert_eq!(e.status, 500);
        assert_eq!(e.message.as_deref(), Some(INTERNAL_MESSAGE));
        let json =
            String::from_utf8_lossy(&render_json(Some(ServiceId::SecretsManager), &e)).into_owned();
        let xml = render_xml(ServiceId::Sts, &e, "r");
        for out in [&json, &xml] {
            assert!(!out.contains("hunter2"), "{out}");
            assert!(!out.contains("storage failed"), "{out}");
        }
        assert!(xml.contains("<Type>Receiver</Type>"));
        assert!(log.contains("storage failed"), "{log}");
        assert!(log.contains("disk full"), "{log}");
        assert!(log.contains("InternalServiceError"), "{log}");
        // Client faults are not logged.
        let quiet = logged(|| {
            let _ = to_aws_error(&SecretsError::ResourceNotFoundException);
        });
        assert!(quiet.is_empty(), "{quiet}");
    }

    #[test]
    fn aws_error_is_a_service_error_that_converts_to_itself() {
        for e in [
            AwsError::client("ValidationError", "m"),
            AwsError::bare("ParameterNotFound", 400),
            AwsError::internal(Protocol::AwsJson11),
        ] {
            assert_eq!(to_aws_error(&e), e);
        }
    }

    #[test]
    fn default_message_hides_internal_display() {
        #[derive(Debug, thiserror::Error)]
        #[error("db at /secret/path is locked")]
        struct Locked;
        impl ServiceError for Locked {
            fn code(&self) -> &str {
                "InternalFailure"
            }
            fn http_status(&self) -> u16 {
                500
            }
            fn is_internal(&self) -> bool {
                true
            }
        }
        let e = logged_quietly(&Locked);
        assert_eq!(e.message.as_deref(), Some(INTERNAL_MESSAGE));
    }

    fn logged_quietly<E: ServiceError>(e: &E) -> AwsError {
        let mut out = None;
        let _ = logged(|| out = Some(to_aws_error(e)));
        out.unwrap_or_else(|| AwsError::bare("none", 0))
    }
}
