//! Tessera: a self-hosted, real-time media mixing engine.
//!
//! # Layout
//! - [`config`]: the strict TOML configuration with working defaults.
//! - [`model`]: the canonical, vendor-independent [`model::MixSpec`], its validation (every violated rule with its
//!   field path) and the layout maths (crop, fit modes) shared by every dialect.
//! - [`media`]: supervised media links, free of mixes and vendors: the one loop that keeps an input pulled or an
//!   output published (sessions, attempts, retry policy, liveness), the RTMP push target every output is, backoff
//!   and rate meters; one bus watch per pipeline (`media::bus`), which also attributes streaming threads' CPU to
//!   their task (`media::cpu`).
//! - [`engine`]: GStreamer. Inputs are pulled and decoded once by an input hub (`engine::input`) and fanned out
//!   to every mix that uses them; each mix is one pipeline (`engine::mix`) that composites, mixes audio and
//!   encodes; each output target is its own supervised push so one dead target never stalls another. How a
//!   request changes a mix (prepared without locks, applied under the mix's own lock, recorded, rolled back when
//!   refused; restore and recovery) is `engine::control`. The engine never sees a vendor field name.
//! - [`control`]: per-task locks, request tickets (arrival order) and output claims, shared by the engine, the
//!   relays and the dialects.
//! - [`events`]: the typed event stream (mix started/updated/stopped/failed, inputs, outputs, relay failover)
//!   the dialects' task registries, the event API and webhooks consume; [`webhooks`] delivers it, signed.
//! - [`node`]: what the engine, the relays and the dialects of one node share (store, events, claims).
//! - [`api`]: the HTTP listener. Each dialect is one module that translates wire types into the model and maps
//!   core error kinds into its own codes; `api::native` is Tessera's own JSON API, `api::zego` ZEGO's server API,
//!   `api::tencent` Tencent's legacy CGI, Cloud API 3.0 and push-URL auto-mix (both request forms share one
//!   mapping, `api::tencent::translate`). Dialects keep their tasks in one shape (`api::registry`), which follows
//!   the event stream (idle rules, tasks removed elsewhere). Every request runs detached from its client.
//!   `api::metrics` is `/metrics`, `api::events` `/v1/events`, `api::auth` the bearer tokens.
//! - [`relay`]: restreaming: one live source to many RTMP targets without re-encoding, with main/backup
//!   failover, per-target supervision and status callbacks; [`flv`] is the tag parser/writer it forwards with.
//! - [`rtmp`]: Tessera's own RTMP client on tokio (play and publish FLV tags; rtmps over rustls), which every
//!   RTMP input and output uses: each connection is owned by one handle and closes when it is dropped.
//! - [`store`]: durable records of accepted tasks, asynchronous (SQLite on a thread of its own by default), each
//!   owner under its own kinds; read back at start.
//! - [`cluster`]: many nodes behind one endpoint on etcd (`[cluster]`): membership on a lease and the fence that
//!   stops outputs before it can end, task records in etcd, the reconcile loop (takeover, letting go), drain, and
//!   the pure pieces (a task's cost, placement, its simulation); `api::cluster` routes each request to its
//!   task's owner.
//! - [`clock`]: wall-clock seconds as the wire formats carry them.
//! - [`netpolicy`]: which addresses a caller may make the node pull from (`ingest.forbid_private_sources`).
//! - [`pictures`]: pictures requests name by id (configured or uploaded), resolved to a location and size.
//! - [`preview`]: what an operator looks at: snapshots (one frame of a pad, taken by a probe that removes itself;
//!   a relay input's keyframe decoded on demand) and the live preview's viewers of an encoded stream;
//!   `api::preview` serves them and `api::console` the web console.
//! - [`image`]: PNG / JPEG bytes from a file or URL, loaded under limits (bytes, header pixels, deadline) before
//!   anything decodes them.
//! - [`worker`]: the worker processes mixes run in (`tessera worker`), supervised by the serving process: a
//!   crash in one mix's decoders ends one worker, whose mixes the engine's recovery starts again.
//! - [`server`]: opens the store, wires the node (engine, relays, dialects, webhooks) and serves it; takes its
//!   listener and shutdown future as arguments so tests bind port 0.
//! - [`error`]: core errors, which carry a kind; only the HTTP layer maps kinds to status codes.
//! - [`logging`]: the process's log (`[log]`: text or JSON lines), the handle that changes its level while the
//!   node runs, and GStreamer's warnings and errors forwarded into it (`media::gstlog`). Lines about one task carry
//!   its id as `mix` or `relay`.

pub mod api;
pub mod clock;
pub mod cluster;
pub mod config;
pub mod control;
pub mod engine;
pub mod error;
pub mod events;
pub mod flv;
pub mod image;
pub mod live;
pub mod logging;
pub mod media;
pub mod model;
pub mod netpolicy;
pub mod node;
pub mod pictures;
pub mod preview;
pub mod relay;
pub mod rtmp;
pub mod server;
pub mod store;
pub mod webhooks;
pub mod worker;

pub use config::Config;
pub use error::{Error, ErrorKind};
