//! HTTPS: certificates and the TLS listener.

pub mod acme;
