//! Keycloak's realm representation: the JSON that realm files, exports and the admin API
//! speak, and its mapping onto pforte's records.
//!
//! Import is three pure steps, so that nothing is written unless all of a file is valid:
//! 1. [`parse_realm`]: JSON syntax and types. Anything pforte will not import (unknown
//!    fields, Keycloak's built-in clients, OTP credentials, …) becomes a warning naming
//!    its JSON path; nothing is dropped silently.
//! 2. [`validate`]: every rule, every violation reported with its path and a fix.
//! 3. [`to_import`]: validation again (against the stored realm), then the records to
//!    write as one [`RealmImport`](crate::store::RealmImport). Idempotent: converting the
//!    same file against its own previous result yields the same records.
//!
//! [`export_realm`] goes the other way and never exports secrets or password hashes.

mod convert;
mod error;
mod export;
mod keycloak;
mod parse;
mod path;
mod types;
mod uri;
mod validate;

#[cfg(test)]
mod tests;

pub use convert::{link_service_accounts, to_import};
pub use error::{ImportError, Problem};
pub use export::{export_client, export_realm, export_user};
pub use parse::{ParsedRealm, parse_realm};
pub use types::{
    ClientRepresentation, CredentialRepresentation, ProtocolMapperRepresentation,
    RealmRepresentation, RoleRepresentation, RolesRepresentation, UserRepresentation,
};
pub use validate::validate;
