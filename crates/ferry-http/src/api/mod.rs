//! The JSON API's handlers, one file per resource.

pub(crate) mod caller;
pub(crate) mod dead_letters;
pub(crate) mod leases;
pub(crate) mod messages;
pub(crate) mod observe;
pub(crate) mod queues;
pub(crate) mod session;
pub(crate) mod topics;
