//! What an operator looks at: snapshots (one frame as JPEG) and the live preview (the encoded output as HTTP-FLV).
//!
//! # Layout
//! - `snapshot`: one frame of a pad, taken when asked by a probe that removes itself after that frame (nothing
//!   runs per frame while nobody asks), turned into a JPEG off the streaming threads; and one keyframe of an
//!   encoded FLV stream decoded on demand (relay inputs, which are never decoded otherwise).
//! - `viewers`: the live preview's viewers of one encoded stream. Each gets the stream headers, then the stream
//!   from a keyframe on, through its own bounded queue; a viewer that falls behind is dropped, never waited for.
//!
//! Neither knows mixes or relays: the engine and the relays hand them a pad, FLV bytes or tags.

pub mod snapshot;
pub mod viewers;

pub use snapshot::{decode_flv_keyframe, grab, to_jpeg, SnapshotError};
pub use viewers::{ViewerStream, Viewers};
