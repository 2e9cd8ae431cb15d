//! Herald's integration tests: one binary, real adapters, real payloads.

mod api_directory;
mod api_events;
mod api_scheduler;
mod api_settings;
mod auth_matrix;
mod aws_requests;
mod bad_input;
mod conformance;
mod defectdojo_sync;
mod defectdojo_webhooks;
mod lambda_payloads;
mod openapi;
mod page;
mod queue_driver;
mod queues;
mod security_headers;
mod security_oversize;
mod security_url_guard;
mod sender;
mod ses;
mod sqs_sender;
mod template_budget;
mod webhooks;
