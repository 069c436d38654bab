//! The engine that keeps secrets: one [`cycle`] fetches every secret and
//! writes all or none, through the one fetch path ([`fetch`]: limiter,
//! deadlines, render); [`rotation`] keeps them fresh afterwards, paced by
//! [`crate::backoff`], and publishes [`snapshot`]s for the proxy; [`handoff`] is the
//! state `init` leaves for the sidecar.

pub mod cycle;
pub mod fetch;
pub mod handoff;
pub mod rotation;
pub mod snapshot;
