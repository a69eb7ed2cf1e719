//! Binding the listener and serving until shutdown.

use std::future::Future;
use std::io;
use std::net::SocketAddr;

use tokio::net::TcpListener;

use crate::api;
use crate::state::AppState;

#[derive(Debug, thiserror::Error)]
pub enum WebError {
    #[error("HTTP address {0} is already in use (is another server running?)")]
    AddrInUse(SocketAddr),
    #[error("cannot listen for HTTP on {addr}: {source}")]
    Bind { addr: SocketAddr, source: io::Error },
    #[error("HTTP server failed: {0}")]
    Serve(io::Error),
}

/// Binds the HTTP listener; an address already in use is reported as such.
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, WebError> {
    TcpListener::bind(addr).await.map_err(|source| {
        if source.kind() == io::ErrorKind::AddrInUse {
            WebError::AddrInUse(addr)
        } else {
            WebError::Bind { addr, source }
        }
    })
}

/// Serves the API on `listener` until `shutdown` completes, then lets in-flight requests
/// finish.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), WebError> {
    let app = crate::ui::routes()
        .fallback(api::dispatch)
        .layer(axum::middleware::map_response(nosniff))
        .with_state(state);
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
    .map_err(WebError::Serve)
}

/// No reply may be read as another type than it says (a JSON or text reply sniffed as HTML
/// could run script).
async fn nosniff(mut r: axum::response::Response) -> axum::response::Response {
    r.headers_mut().insert(
        axum::http::header::X_CONTENT_TYPE_OPTIONS,
        axum::http::HeaderValue::from_static("nosniff"),
    );
    r
}
