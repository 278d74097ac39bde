//! Keycloak's realm representation.
