//! The settings and directory HTTP API: one axum `Router`, hosted by `lambda_http` on Lambda,
//! by `axum::serve` in `herald-local`, and by `oneshot` in tests. The OpenAPI document is
//! generated from the same route list, so the two cannot drift apart.

use crate::routes;
use crate::state::AppState;
use herald_http::error::ErrorBody;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Herald",
        description = "Notifications for application-security platforms: settings, directory, events and alerts.",
        license(name = "Apache-2.0")
    ),
    modifiers(&BearerAuth),
    components(schemas(ErrorBody))
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

/// Every route with its OpenAPI description, before the state is attached.
pub fn api() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(routes::catalogue::routes())
        .merge(routes::settings::routes())
        .merge(routes::directory::routes())
        .merge(routes::alerts::routes())
        .merge(routes::webhooks::routes())
        .merge(routes::records::routes())
        .merge(routes::defectdojo::routes())
}

/// The OpenAPI 3.1 document of every route.
pub fn openapi() -> utoipa::openapi::OpenApi {
    herald_http::document(api().split_for_parts().1)
}

/// The API and the page with their state, the API's OpenAPI document, JSON errors and
/// request tracing.
pub fn router(state: AppState) -> axum::Router {
    let (api_routes, doc) = api().split_for_parts();
    herald_http::app(api_routes.merge(page()).with_state(state), doc)
}

/// The page's routes (`/` and `/ui/...`), which the OpenAPI document leaves out.
pub fn page() -> axum::Router<AppState> {
    routes::page::routes()
}
