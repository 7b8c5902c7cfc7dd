//! What the operator's snapshots and live preview need from a running mix: a pad to take one frame from, and
//! the viewers of its encoded output. Taken under the mix's locks only for the lookup; the frame itself is
//! awaited with no lock held ([`crate::preview`]).

use std::sync::{Arc, Mutex};

use super::{mix::MixPipeline, Engine, Phase};
use crate::{
    error::{Error, ErrorKind},
    preview::Viewers,
};

/// What a snapshot shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Look<'a> {
    /// The composited picture, before encoding.
    Picture,
    /// One input's decoded frames as the mix receives them.
    Input(&'a str),
}

impl Engine {
    /// Mix `id`'s pipeline, if it runs.
    fn running(&self, id: &str) -> Result<Arc<Mutex<MixPipeline>>, Error> {
        let mixes = self.inner.mixes.lock().unwrap();
        let m = mixes
            .get(id)
            .ok_or_else(|| Error::new(ErrorKind::NotFound, format!("mix {id:?} does not exist")))?;
        match (&m.phase, &m.pipeline) {
            (Phase::Running, Some(p)) => Ok(p.clone()),
            _ => Err(Error::new(
                ErrorKind::State,
                format!("mix {id:?} is not running now"),
            )),
        }
    }

    /// The pad a snapshot of `look` in mix `id` is taken on.
    pub fn snapshot_pad(&self, id: &str, look: Look<'_>) -> Result<gst::Pad, Error> {
        let pipeline = self.running(id)?;
        let p = pipeline.lock().unwrap();
        match look {
            Look::Picture => p.picture_pad().ok_or_else(|| {
                Error::new(
                    ErrorKind::State,
                    format!("mix {id:?} has no picture: every output is audio only"),
                )
            }),
            Look::Input(input) => match p.input_pad(input) {
                None => Err(Error::new(
                    ErrorKind::NotFound,
                    format!("mix {id:?} has no input {input:?}"),
                )),
                Some(None) => Err(Error::new(
                    ErrorKind::State,
                    format!("input {input:?} of mix {id:?} has no picture in the mix"),
                )),
                Some(Some(pad)) => Ok(pad),
            },
        }
    }

    /// The viewers of mix `id`'s encoded output (its live preview).
    pub fn live_viewers(&self, id: &str) -> Result<Arc<Viewers>, Error> {
        let pipeline = self.running(id)?;
        let viewers = pipeline.lock().unwrap().viewers();
        viewers.ok_or_else(|| Error::new(ErrorKind::State, format!("mix {id:?} has no output")))
    }
}
