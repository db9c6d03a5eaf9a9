//! One module per command group.

pub(crate) mod alerts;
pub(crate) mod audit;
pub(crate) mod drill;
pub(crate) mod init;
pub(crate) mod inventory;
pub(crate) mod policy;
pub(crate) mod report;
pub(crate) mod rotate;
pub(crate) mod run;
pub(crate) mod scan;
pub(crate) mod secrets;
pub(crate) mod serve;
pub(crate) mod tokens;
