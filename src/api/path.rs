//! A path-parameter extractor whose rejections (an id that is not UTF-8 once percent-decoded) come back in the
//! native error shape instead of axum's plain text.

use axum::{
    extract::{FromRequestParts, Path as AxumPath},
    http::{request::Parts, StatusCode},
};
use serde::de::DeserializeOwned;

use super::ApiError;

pub struct Path<T>(pub T);

impl<S, T> FromRequestParts<S> for Path<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match AxumPath::<T>::from_request_parts(parts, state).await {
            Ok(AxumPath(v)) => Ok(Path(v)),
            Err(_) => Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_id",
                "ids are 1 to 128 characters of A-Z a-z 0-9 - _ . ~, and not . or ..",
            )),
        }
    }
}
