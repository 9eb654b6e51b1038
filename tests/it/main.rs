//! Integration tests: each test starts its own `qerrorsd` (see `util`) and talks to it over its
//! Unix socket like an application would.

mod activation;
mod bad_input;
mod control;
mod ctl;
mod fingerprint;
mod ingest;
mod notify;
mod overload;
mod reload;
mod sanitize;
mod shutdown;
mod sink;
mod startup;
mod stdout;
mod util;
