//! What the operator's snapshots and live preview need from a running mix: one frame as JPEG, and a viewer of
//! its encoded output. In this process the pad and the viewers are looked up under the mix's locks and the
//! frame is awaited with no lock held ([`crate::preview`]); a mix in a worker process is asked for them.

use super::{mix::MixPipeline, pipe::Pipe, Engine, Phase};
use crate::{
    error::{Error, ErrorKind},
    preview::{snapshot::FRAME_WAIT, SnapshotError, ViewerStream},
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
    fn running(&self, id: &str) -> Result<Pipe, Error> {
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

    /// One frame of `look` in mix `id`, as JPEG `width` wide (never wider than the frame). The outer error:
    /// no such mix or input, or nothing to look at; the inner one: no frame came, or it could not be converted.
    pub async fn snapshot(
        &self,
        id: &str,
        look: Look<'_>,
        width: u32,
    ) -> Result<Result<Vec<u8>, SnapshotError>, Error> {
        let pad = match self.running(id)? {
            Pipe::Remote(r) => {
                let input = match look {
                    Look::Picture => None,
                    Look::Input(i) => Some(i),
                };
                return r.snapshot(input, width).await;
            }
            Pipe::Local(p) => snapshot_pad(&p.lock().unwrap(), id, look)?,
        };
        Ok(match crate::preview::grab(&pad, FRAME_WAIT).await {
            Ok(sample) => crate::preview::to_jpeg(sample, width).await,
            Err(e) => Err(e),
        })
    }

    /// A new viewer of mix `id`'s encoded output (its live preview); `None` when it has its most viewers.
    pub async fn watch_live(&self, id: &str) -> Result<Option<ViewerStream>, Error> {
        let viewers = match self.running(id)? {
            Pipe::Remote(r) => return r.watch().await,
            Pipe::Local(p) => p.lock().unwrap().viewers(),
        };
        let viewers = viewers
            .ok_or_else(|| Error::new(ErrorKind::State, format!("mix {id:?} has no output")))?;
        Ok(viewers.subscribe())
    }
}

/// The pad a snapshot of `look` in mix `id` is taken on.
pub(crate) fn snapshot_pad(p: &MixPipeline, id: &str, look: Look<'_>) -> Result<gst::Pad, Error> {
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
