//! Where ramsecrets meets the operating system: [`signals`], process
//! [`harden`]ing and locked [`memory`], each command's [`process`] (its async
//! runtime and stdout), the `exec` child it [`supervise`]s,
//! the `on_change` [`actions`] it runs, the files it [`watch`]es, and the
//! [`trust`] rule for every file it reads.

pub mod actions;
pub mod harden;
pub mod memory;
pub mod process;
pub mod signals;
pub mod supervise;
pub mod trust;
pub mod watch;
