//! The MLflow tracking REST API as tug speaks it: request and response shapes, MLflow's
//! error codes, validation, run tokens and the artifact path rules. Pure: the server's
//! `mlflow_api` does the I/O.
//!
//! MLflow clients retry every 5xx for minutes, so a deterministic problem (a bad value, a
//! missing run) must always come back as a 4xx with MLflow's `error_code`.

pub mod artifacts;
pub mod protocol;
pub mod search;
pub mod token;

use axum::http::StatusCode;

/// The MLflow error codes tug sends (`databricks.proto`'s `ErrorCode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    InvalidParameterValue,
    ResourceDoesNotExist,
    ResourceAlreadyExists,
    EndpointNotFound,
    PermissionDenied,
    Unauthenticated,
    InvalidState,
    TemporarilyUnavailable,
    InternalError,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidParameterValue => "INVALID_PARAMETER_VALUE",
            ErrorCode::ResourceDoesNotExist => "RESOURCE_DOES_NOT_EXIST",
            ErrorCode::ResourceAlreadyExists => "RESOURCE_ALREADY_EXISTS",
            ErrorCode::EndpointNotFound => "ENDPOINT_NOT_FOUND",
            ErrorCode::PermissionDenied => "PERMISSION_DENIED",
            ErrorCode::Unauthenticated => "UNAUTHENTICATED",
            ErrorCode::InvalidState => "INVALID_STATE",
            ErrorCode::TemporarilyUnavailable => "TEMPORARILY_UNAVAILABLE",
            ErrorCode::InternalError => "INTERNAL_ERROR",
        }
    }

    /// The HTTP status MLflow pairs with the code (`mlflow.exceptions`), except that
    /// `INVALID_STATE` is a 400 here: it is deterministic, and a 5xx would be retried.
    pub fn status(self) -> StatusCode {
        match self {
            ErrorCode::InvalidParameterValue
            | ErrorCode::ResourceAlreadyExists
            | ErrorCode::InvalidState => StatusCode::BAD_REQUEST,
            ErrorCode::ResourceDoesNotExist | ErrorCode::EndpointNotFound => StatusCode::NOT_FOUND,
            ErrorCode::PermissionDenied => StatusCode::FORBIDDEN,
            ErrorCode::Unauthenticated => StatusCode::UNAUTHORIZED,
            ErrorCode::TemporarilyUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::InternalError => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// An error as an MLflow client expects it: `{"error_code": ..., "message": ...}`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{}: {message}", code.as_str())]
pub struct MlflowError {
    pub code: ErrorCode,
    pub message: String,
}

impl MlflowError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> MlflowError {
        MlflowError {
            code,
            message: message.into(),
        }
    }
    pub fn invalid(message: impl Into<String>) -> MlflowError {
        MlflowError::new(ErrorCode::InvalidParameterValue, message)
    }
    pub fn missing(message: impl Into<String>) -> MlflowError {
        MlflowError::new(ErrorCode::ResourceDoesNotExist, message)
    }
    pub fn denied(message: impl Into<String>) -> MlflowError {
        MlflowError::new(ErrorCode::PermissionDenied, message)
    }

    pub fn body(&self) -> serde_json::Value {
        serde_json::json!({ "error_code": self.code.as_str(), "message": self.message })
    }
}

impl From<crate::store::Error> for MlflowError {
    fn from(e: crate::store::Error) -> Self {
        use crate::store::Error as E;
        let code = match &e {
            E::NoRun(_) | E::NoExperiment(_) | E::NoLoggedModel(_) | E::NoModel(_) => {
                ErrorCode::ResourceDoesNotExist
            }
            E::ExperimentExists(_) | E::RunExists(_) => ErrorCode::ResourceAlreadyExists,
            E::ParamChanged { .. } => ErrorCode::InvalidParameterValue,
            E::Transition { .. } => ErrorCode::InvalidState,
            _ => ErrorCode::InternalError,
        };
        MlflowError::new(code, e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_errors_are_never_5xx() {
        for code in [
            ErrorCode::InvalidParameterValue,
            ErrorCode::ResourceDoesNotExist,
            ErrorCode::ResourceAlreadyExists,
            ErrorCode::EndpointNotFound,
            ErrorCode::PermissionDenied,
            ErrorCode::Unauthenticated,
            ErrorCode::InvalidState,
        ] {
            assert!(code.status().is_client_error(), "{code:?}");
        }
        let e: MlflowError = crate::store::Error::NoRun("r".into()).into();
        assert_eq!(e.code, ErrorCode::ResourceDoesNotExist);
        assert_eq!(e.body()["error_code"], "RESOURCE_DOES_NOT_EXIST");
    }
}
