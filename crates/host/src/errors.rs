//! What an SDK call's failure was, in the terms the host commands act on: a service's
//! answer (code, message, HTTP status) or a transport failure. No request or credential
//! appears in any of it.

use aws_sdk_ssm::config::http::HttpResponse;
use aws_sdk_ssm::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};

/// A failed call.
#[derive(Debug, Clone)]
pub enum Failure {
    /// The service answered with an error.
    Service {
        status: u16,
        code: String,
        message: String,
    },
    /// No answer in time.
    Timeout,
    /// The connection failed (refused, reset, DNS).
    Io(String),
    /// An answer that could not be read.
    Response(String),
    /// Anything else, e.g. no credentials could be found.
    Other(String),
}

impl Failure {
    /// Whether trying again may help: transport failures, throttling, 5xx.
    pub fn is_transient(&self) -> bool {
        match self {
            Failure::Service { status, code, .. } => {
                *status >= 500
                    || *status == 429
                    || matches!(
                        code.as_str(),
                        "ThrottlingException" | "Throttling" | "TooManyRequestsException"
                    )
            }
            Failure::Timeout | Failure::Io(_) | Failure::Response(_) | Failure::Other(_) => true,
        }
    }

    /// One line for a log or an error message.
    pub fn summary(&self) -> String {
        match self {
            Failure::Service { code, message, .. } => format!("{code}: {message}"),
            Failure::Timeout => "timed out".to_string(),
            Failure::Io(m) | Failure::Response(m) | Failure::Other(m) => m.clone(),
        }
    }
}

/// Classifies an SDK error.
pub fn classify<E>(e: &SdkError<E, HttpResponse>) -> Failure
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    match e {
        SdkError::ServiceError(ctx) => Failure::Service {
            status: ctx.raw().status().as_u16(),
            code: ctx.err().code().unwrap_or("Unknown").to_string(),
            message: ctx.err().message().unwrap_or_default().to_string(),
        },
        SdkError::TimeoutError(_) => Failure::Timeout,
        SdkError::DispatchFailure(d) if d.is_timeout() => Failure::Timeout,
        SdkError::DispatchFailure(d) if d.is_io() => {
            Failure::Io(one_line(&DisplayErrorContext(e).to_string()))
        }
        SdkError::ResponseError(_) => {
            Failure::Response(one_line(&DisplayErrorContext(e).to_string()))
        }
        _ => Failure::Other(one_line(&DisplayErrorContext(e).to_string())),
    }
}

/// (code, message) of an SDK error, for a log line.
pub fn describe<E>(e: &SdkError<E, HttpResponse>) -> (String, String)
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    match classify(e) {
        Failure::Service { code, message, .. } => (code, message),
        Failure::Timeout => ("Timeout".into(), "no answer in time".into()),
        Failure::Io(m) => ("ConnectionError".into(), m),
        Failure::Response(m) => ("ResponseError".into(), m),
        Failure::Other(m) => ("Error".into(), m),
    }
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}
