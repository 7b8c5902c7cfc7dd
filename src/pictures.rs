//! Pictures known by id (watermarks, logos): configured ones (`[pictures]`, a file path or URL each) and
//! uploaded ones (`PUT /v1/pictures/{id}`, kept as files in a private directory for the process's lifetime).
//! Dialects resolve vendor picture ids (Tencent `picture_id` / `WatermarkId`) here into an image location the
//! core model understands, plus the picture's natural size.

use std::{
    collections::{BTreeMap, HashMap},
    path::PathBuf,
    sync::Mutex,
};

use serde::Serialize;

use crate::{
    error::{Error, ErrorKind},
    image::{ImageLimits, Refused},
};

/// Where a picture is (file path or URL) and its natural size.
pub type Resolved = (String, (u32, u32));

/// What the API shows of a picture.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct PictureInfo {
    pub id: String,
    /// `config` (from the `[pictures]` section, read-only) or `upload`.
    #[schema(value_type = PictureOrigin)]
    pub origin: &'static str,
    /// Natural size, once decoded; null for a configured picture until it is first used.
    #[schema(required = true)]
    pub width: Option<u32>,
    #[schema(required = true)]
    pub height: Option<u32>,
}

/// Where a picture comes from: `config` (the `[pictures]` section, read-only) or `upload`
/// (`PUT /v1/pictures/{id}`).
// Schema only, the values of `PictureInfo::origin`.
#[derive(utoipa::ToSchema)]
#[schema(rename_all = "snake_case")]
#[allow(dead_code)]
pub enum PictureOrigin {
    Config,
    Upload,
}

#[derive(Clone)]
struct Entry {
    /// File path or URL handed to the still renderer.
    location: String,
    origin: &'static str,
    /// Learnt on upload, or on first use for configured pictures.
    size: Option<(u32, u32)>,
}

/// The registry. Cheap to share behind an `Arc`.
pub struct Pictures {
    entries: Mutex<HashMap<String, Entry>>,
    /// Where uploads are written; created on first upload, removed on drop.
    dir: Mutex<Option<PathBuf>>,
    /// Largest picture accepted, in bytes and pixels (`engine.max_image_bytes`, `engine.max_image_pixels`); a
    /// reload replaces them.
    limits: Mutex<ImageLimits>,
}

impl Pictures {
    pub fn new(configured: &BTreeMap<String, String>, limits: ImageLimits) -> Self {
        let pictures = Self {
            entries: Mutex::new(HashMap::new()),
            dir: Mutex::new(None),
            limits: Mutex::new(limits.clone()),
        };
        pictures.reconfigure(configured, limits);
        pictures
    }

    /// A reload: the configured pictures become `configured` (uploads stay, unless the configuration now names
    /// their id, which it then owns), under new limits.
    pub fn reconfigure(&self, configured: &BTreeMap<String, String>, limits: ImageLimits) {
        let mut entries = self.entries.lock().unwrap();
        entries.retain(|id, e| e.origin != "config" && !configured.contains_key(id));
        for (id, location) in configured {
            entries.insert(
                id.clone(),
                Entry {
                    location: crate::image::operator_location(location),
                    origin: "config",
                    size: None,
                },
            );
        }
        *self.limits.lock().unwrap() = limits;
    }

    fn limits(&self) -> ImageLimits {
        self.limits.lock().unwrap().clone()
    }

    pub fn max_bytes(&self) -> u64 {
        self.limits().max_bytes
    }

    /// Stores an uploaded PNG or JPEG under `id` (replacing an earlier upload). Its header is checked first (a
    /// picture claiming more than `engine.max_image_pixels` is refused undecoded); then it is decoded once, to
    /// know it can be. Blocking.
    pub fn put(&self, id: &str, bytes: &[u8]) -> Result<PictureInfo, Error> {
        if let Some(e) = self.entries.lock().unwrap().get(id) {
            if e.origin == "config" {
                return Err(Error::new(
                    ErrorKind::Conflict,
                    format!(
                        "picture {id:?} is defined in the configuration and cannot be replaced"
                    ),
                ));
            }
        }
        let not_a_picture =
            || Error::new(ErrorKind::Invalid, "the picture must be a PNG or a JPEG");
        let ext = crate::image::sniff(bytes).ok_or_else(not_a_picture)?;
        let limits = self.limits();
        if bytes.len() as u64 > limits.max_bytes {
            return Err(Error::new(
                ErrorKind::TooLarge,
                format!("the picture is larger than {} bytes", limits.max_bytes),
            ));
        }
        match crate::image::size_within(bytes, limits.max_pixels) {
            Ok(_) => {}
            Err(Refused::NotAPicture) => return Err(not_a_picture()),
            Err(Refused::TooManyPixels { width, height }) => {
                return Err(Error::new(
                    ErrorKind::TooLarge,
                    format!(
                        "the picture {}",
                        crate::image::too_many_pixels(width, height, limits.max_pixels)
                    ),
                ))
            }
        }
        let size = crate::engine::image_size(bytes)
            .map_err(|_| Error::new(ErrorKind::Invalid, "the picture cannot be decoded"))?;
        let dir = self.dir()?;
        // A fresh name per upload: a mix still rendering the old file is not disturbed.
        let path = dir.join(format!("{id}-{:016x}.{ext}", fastrand::u64(..)));
        std::fs::write(&path, bytes).map_err(Error::internal)?;
        let location = path.display().to_string();
        let old = self.entries.lock().unwrap().insert(
            id.to_string(),
            Entry {
                location,
                origin: "upload",
                size: Some(size),
            },
        );
        // The old file may still be read by a mix being built; it goes with the directory at exit.
        drop(old);
        Ok(PictureInfo {
            id: id.to_string(),
            origin: "upload",
            width: Some(size.0),
            height: Some(size.1),
        })
    }

    /// Removes an uploaded picture. Running mixes keep the picture they rendered.
    pub fn remove(&self, id: &str) -> Result<(), Error> {
        let mut entries = self.entries.lock().unwrap();
        match entries.get(id) {
            None => Err(Error::new(
                ErrorKind::NotFound,
                format!("picture {id:?} does not exist"),
            )),
            Some(e) if e.origin == "config" => Err(Error::new(
                ErrorKind::Conflict,
                format!("picture {id:?} is defined in the configuration and cannot be removed"),
            )),
            Some(_) => {
                entries.remove(id);
                Ok(())
            }
        }
    }

    pub fn list(&self) -> Vec<PictureInfo> {
        let entries = self.entries.lock().unwrap();
        let mut list: Vec<PictureInfo> = entries.iter().map(|(id, e)| info(id, e)).collect();
        list.sort_by(|a, b| a.id.cmp(&b.id));
        list
    }

    pub fn get(&self, id: &str) -> Option<PictureInfo> {
        self.entries.lock().unwrap().get(id).map(|e| info(id, e))
    }

    /// The location and natural size of picture `id`; `None` when no such picture exists. A configured picture
    /// is loaded on first use ([`crate::image::load`], under the node's limits) and its size read from its
    /// header. `Err` when it exists but cannot be read, or is too large.
    pub async fn resolve(&self, id: &str) -> Option<Result<Resolved, Error>> {
        let entry = self.entries.lock().unwrap().get(id).cloned()?;
        if let Some(size) = entry.size {
            return Some(Ok((entry.location, size)));
        }
        let limits = self.limits();
        let size = match crate::image::load(&entry.location, &limits).await {
            // `load` checked the header.
            Ok(bytes) => crate::image::dimensions(&bytes)
                .ok_or_else(|| Error::internal("a loaded picture without a size")),
            Err(e) => Err(e),
        };
        Some(size.map(|size| {
            if let Some(e) = self.entries.lock().unwrap().get_mut(id) {
                if e.location == entry.location {
                    e.size = Some(size);
                }
            }
            (entry.location, size)
        }))
    }

    fn dir(&self) -> Result<PathBuf, Error> {
        let mut dir = self.dir.lock().unwrap();
        if let Some(d) = dir.as_ref() {
            return Ok(d.clone());
        }
        let d = std::env::temp_dir().join(format!(
            "tessera-pictures-{}-{:08x}",
            std::process::id(),
            fastrand::u32(..)
        ));
        std::fs::create_dir_all(&d).map_err(Error::internal)?;
        *dir = Some(d.clone());
        Ok(d)
    }
}

fn info(id: &str, e: &Entry) -> PictureInfo {
    PictureInfo {
        id: id.to_string(),
        origin: e.origin,
        width: e.size.map(|s| s.0),
        height: e.size.map(|s| s.1),
    }
}

impl Drop for Pictures {
    fn drop(&mut self) {
        if let Some(d) = self.dir.lock().unwrap().take() {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(max_bytes: u64) -> ImageLimits {
        ImageLimits {
            max_bytes,
            max_pixels: 4096 * 4096,
            timeout: std::time::Duration::from_secs(5),
            pictures_dir: None,
        }
    }

    #[tokio::test]
    async fn configured_pictures_are_listed_and_read_only() {
        let mut c = BTreeMap::new();
        c.insert("7".to_string(), "/nonexistent/logo.png".to_string());
        let p = Pictures::new(&c, limits(1024));
        assert_eq!(p.list().len(), 1);
        assert_eq!(p.remove("7").unwrap_err().kind, ErrorKind::Conflict);
        assert_eq!(
            p.put("7", b"\x89PNG\r\n\x1a\n").unwrap_err().kind,
            ErrorKind::Conflict
        );
        assert!(p.resolve("8").await.is_none());
        assert!(p.resolve("7").await.unwrap().is_err());
    }

    #[test]
    fn refuses_what_is_not_a_picture_or_too_large() {
        let p = Pictures::new(&BTreeMap::new(), limits(16));
        assert_eq!(p.put("a", b"hello").unwrap_err().kind, ErrorKind::Invalid);
        assert_eq!(p.put("a", &[0u8; 17]).unwrap_err().kind, ErrorKind::Invalid);
        let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
        png.resize(17, 0);
        assert_eq!(p.put("a", &png).unwrap_err().kind, ErrorKind::TooLarge);
        assert!(p.list().is_empty());
    }

    /// A picture whose header claims more than `max_pixels` is refused before it is decoded, uploaded or
    /// configured.
    #[tokio::test]
    async fn bombs_are_refused_from_their_header() {
        crate::engine::init().unwrap();
        let bomb = crate::image::header_tests::png_claiming(20_000, 20_000);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bomb.png");
        std::fs::write(&path, &bomb).unwrap();
        let mut c = BTreeMap::new();
        c.insert("9".to_string(), path.display().to_string());
        let p = Pictures::new(&c, limits(1 << 20));
        let e = p.put("b", &bomb).unwrap_err();
        assert_eq!(e.kind, ErrorKind::TooLarge);
        assert!(e.message.contains("20000×20000"), "{}", e.message);
        let e = p.resolve("9").await.unwrap().unwrap_err();
        assert_eq!(e.kind, ErrorKind::TooLarge);
        let info = p.put("ok", crate::image::header_tests::TINY_PNG).unwrap();
        assert_eq!((info.width, info.height), (Some(3), Some(2)));
        assert_eq!(p.resolve("ok").await.unwrap().unwrap().1, (3, 2));
    }
}
