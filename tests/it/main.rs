//! Integration tests: each test starts its own `qerrorsd` (see `util`) and talks to it over its
//! Unix socket like an application would.

// Test code: a failed setup step should stop the test loudly, and tests call libc directly to
// drive the daemon like an operator would (signals, rlimits, uids).
#![allow(clippy::unwrap_used, clippy::expect_used, unsafe_code)]

mod activation;
mod analysis;
mod bad_input;
mod control;
mod control_guard;
mod control_socket;
mod ctl;
mod dashboard;
mod display;
mod fingerprint;
mod first_hour;
mod fleet;
mod formats;
mod getting_started;
mod hardening_crash;
mod hardening_disk;
mod hardening_hostile;
mod hardening_random;
mod hardening_reopen;
mod hardening_support;
mod idle;
mod ingest;
mod lag;
mod limit;
mod limit_redis;
mod limit_support;
mod line_safety;
mod llm_server;
mod llm_transport;
mod memory;
mod notify;
mod overload;
mod props;
mod reload;
mod sanitize;
mod shutdown;
mod sink;
mod skip;
mod startup;
mod stdout;
mod tail;
mod tls_support;
mod util;
