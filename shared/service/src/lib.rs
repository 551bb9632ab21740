//! The service skeleton every function shares: RFC 9457 problem responses,
//! a JSON extractor that answers in that format, `/healthz`, `/readyz` and
//! `/metrics`, the PostgreSQL pool with versioned migrations, a server
//! loop with graceful shutdown and a grace timeout, and the CORS policy.

pub mod config;
pub mod cors;
pub mod db;
pub mod health;
pub mod http_metrics;
pub mod json;
pub mod openapi;
pub mod problem;
pub mod problem_errors;
pub mod server;
pub mod surface;

pub use json::ApiJson;
pub use problem::Problem;
