//! Herald's integration tests: one binary, real adapters, real payloads.

mod api_directory;
mod api_settings;
mod auth_matrix;
mod lambda_payloads;
mod openapi;
mod store_conformance;
