//! FLV at the tag level, for relaying without re-encoding: a streaming [`Parser`] that takes bytes in chunks of
//! any size (as `rtmp2src` or an HTTP body deliver them), a [`Writer`], and the few codec facts a relay needs
//! ([`is_video_keyframe`], [`is_sequence_header`], [`is_metadata`]). The media inside tags is in [`codec`]; the
//! GStreamer stages that decode FLV ([`demux`]) and write H.265 as FLV ([`mux`]) build on both.
//!
//! The parser never panics and never buffers more than one tag (bounded by [`Parser::with_max_tag_size`]):
//! bytes that cannot be a tag are skipped until the stream makes sense again, and an incomplete tag simply waits
//! for the next chunk.
//!
//! Layout (big endian): file header `"FLV" version flags(audio 0x04, video 0x01) header_size(u32 = 9)`, then
//! `PreviousTagSize0 (u32 = 0)`, then tags, each `type(u8) data_size(u24) timestamp(u24) timestamp_ext(u8)
//! stream_id(u24 = 0) data PreviousTagSize(u32 = 11 + data_size)`.

pub mod codec;
pub mod demux;
pub mod mux;

/// FLV tag type of audio.
pub const TAG_AUDIO: u8 = 8;
/// FLV tag type of video.
pub const TAG_VIDEO: u8 = 9;
/// FLV tag type of script data (AMF0: `onMetaData`, cue points).
pub const TAG_SCRIPT: u8 = 18;
/// Bytes of a tag header.
pub const TAG_HEADER_LEN: usize = 11;
/// Bytes of the file header with the `PreviousTagSize0` that follows it.
pub const FILE_HEADER_LEN: usize = 13;
/// Largest data size the 24-bit field can hold.
pub const MAX_DATA_SIZE: usize = 0xFF_FFFF;
/// The parser's default limit on one tag's data (a 4K intra frame is far below it).
pub const DEFAULT_MAX_TAG_SIZE: usize = 8 << 20;

/// What kind of tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TagKind {
    Audio,
    Video,
    Script,
}

impl TagKind {
    pub fn from_type(t: u8) -> Option<Self> {
        match t {
            TAG_AUDIO => Some(Self::Audio),
            TAG_VIDEO => Some(Self::Video),
            TAG_SCRIPT => Some(Self::Script),
            _ => None,
        }
    }

    pub fn type_byte(self) -> u8 {
        match self {
            Self::Audio => TAG_AUDIO,
            Self::Video => TAG_VIDEO,
            Self::Script => TAG_SCRIPT,
        }
    }
}

/// The file header's flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub version: u8,
    pub has_audio: bool,
    pub has_video: bool,
}

/// One tag: its kind, its timestamp in milliseconds (the extended byte included) and its data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tag {
    pub kind: TagKind,
    pub timestamp: u32,
    pub data: Vec<u8>,
}

impl Tag {
    pub fn new(kind: TagKind, timestamp: u32, data: Vec<u8>) -> Self {
        Self {
            kind,
            timestamp,
            data,
        }
    }

    /// The tag as it appears in a file (header, data, `PreviousTagSize`), with `timestamp` instead of its own.
    /// `None` when the data is too large for FLV.
    pub fn encode_at(&self, timestamp: u32) -> Option<Vec<u8>> {
        let mut out = Vec::with_capacity(TAG_HEADER_LEN + self.data.len() + 4);
        write_tag(&mut out, self.kind, timestamp, &self.data).ok()?;
        Some(out)
    }
}

/// What the parser found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    /// A file header (normally once, first; again where streams were concatenated).
    Header(Header),
    Tag(Tag),
}

/// Counters of what the parser had to put up with.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ParserStats {
    /// Tags returned.
    pub tags: u64,
    /// Bytes skipped because they could not be part of a tag.
    pub skipped_bytes: u64,
    /// Times the parser lost the tag boundary and searched for it.
    pub resyncs: u64,
    /// Tags whose `PreviousTagSize` did not match (accepted anyway while in sync).
    pub size_mismatches: u64,
}

/// A streaming FLV parser: [`Parser::push`] bytes as they come, then take [`Parser::next_item`] until `None`.
#[derive(Debug)]
pub struct Parser {
    buf: Vec<u8>,
    /// Start of the unread bytes in `buf`.
    pos: usize,
    /// Whether `pos` is at a boundary (a file header or a tag header); otherwise the parser searches for one.
    synced: bool,
    max_tag_size: usize,
    stats: ParserStats,
}

impl Default for Parser {
    fn default() -> Self {
        Self::new()
    }
}

fn u24(b: &[u8]) -> usize {
    ((b[0] as usize) << 16) | ((b[1] as usize) << 8) | b[2] as usize
}

fn u32be(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

/// A tag header that could be real: a known type without the filter or reserved bits, stream id 0, a size
/// within `max`. Returns the kind and the data size. `b` holds at least [`TAG_HEADER_LEN`] bytes.
fn plausible_tag_header(b: &[u8], max: usize) -> Option<(TagKind, usize)> {
    let kind = TagKind::from_type(b[0])?;
    let size = u24(&b[1..4]);
    (b[8..11] == [0, 0, 0] && size <= max).then_some((kind, size))
}

/// What the bytes at a boundary that starts with `F` are.
enum HeaderCheck {
    NeedMore,
    Bad,
    /// A file header and the bytes it takes with `PreviousTagSize0`.
    Good(Header, usize),
}

fn file_header(b: &[u8]) -> HeaderCheck {
    let sig = b"FLV\x01";
    let n = b.len().min(sig.len());
    if b[..n] != sig[..n] {
        return HeaderCheck::Bad;
    }
    if b.len() < 9 {
        return HeaderCheck::NeedMore;
    }
    let size = u32be(&b[5..9]) as usize;
    if !(9..=1024).contains(&size) {
        return HeaderCheck::Bad;
    }
    let header = Header {
        version: b[3],
        has_audio: b[4] & 0x04 != 0,
        has_video: b[4] & 0x01 != 0,
    };
    HeaderCheck::Good(header, size + 4)
}

impl Parser {
    pub fn new() -> Self {
        Self::with_max_tag_size(DEFAULT_MAX_TAG_SIZE)
    }

    /// A parser that treats a tag with more than `max` data bytes as garbage (clamped to what FLV can hold).
    pub fn with_max_tag_size(max: usize) -> Self {
        Self {
            buf: Vec::new(),
            pos: 0,
            synced: true,
            max_tag_size: max.min(MAX_DATA_SIZE),
            stats: ParserStats::default(),
        }
    }

    /// Adds a chunk of the stream.
    pub fn push(&mut self, chunk: &[u8]) {
        if self.pos == self.buf.len() {
            self.buf.clear();
            self.pos = 0;
        } else if self.pos > 64 * 1024 && self.pos * 2 > self.buf.len() {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        self.buf.extend_from_slice(chunk);
    }

    /// Bytes received but not returned yet (an incomplete tag, or bytes being searched).
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.pos
    }

    pub fn stats(&self) -> ParserStats {
        self.stats
    }

    /// Forgets buffered bytes and starts over as at the beginning of a stream (counters are kept).
    pub fn reset(&mut self) {
        self.buf.clear();
        self.pos = 0;
        self.synced = true;
    }

    fn skip(&mut self, n: usize) {
        self.pos += n;
        self.stats.skipped_bytes += n as u64;
    }

    fn lose_sync(&mut self) {
        if self.synced {
            self.synced = false;
            self.stats.resyncs += 1;
        }
    }

    /// The next header or tag, or `None` until more bytes are pushed.
    pub fn next_item(&mut self) -> Option<Item> {
        loop {
            if !self.synced && !self.resync() {
                return None;
            }
            let avail = &self.buf[self.pos..];
            let first = *avail.first()?;
            if first == b'F' {
                // Tag types are never 'F': this is a file header or garbage.
                match file_header(avail) {
                    HeaderCheck::NeedMore => return None,
                    HeaderCheck::Bad => {
                        self.lose_sync();
                        continue;
                    }
                    HeaderCheck::Good(header, len) => {
                        if avail.len() < len {
                            return None;
                        }
                        self.pos += len;
                        return Some(Item::Header(header));
                    }
                }
            }
            if avail.len() < TAG_HEADER_LEN {
                // A header this short can still be judged on its type byte.
                if TagKind::from_type(first).is_none() {
                    self.lose_sync();
                    continue;
                }
                return None;
            }
            let Some((kind, size)) = plausible_tag_header(avail, self.max_tag_size) else {
                self.lose_sync();
                continue;
            };
            let total = TAG_HEADER_LEN + size + 4;
            if avail.len() < total {
                return None;
            }
            if u32be(&avail[TAG_HEADER_LEN + size..]) as usize != TAG_HEADER_LEN + size {
                self.stats.size_mismatches += 1;
            }
            let timestamp = (u24(&avail[4..7]) as u32) | ((avail[7] as u32) << 24);
            let data = avail[TAG_HEADER_LEN..TAG_HEADER_LEN + size].to_vec();
            self.pos += total;
            self.stats.tags += 1;
            return Some(Item::Tag(Tag {
                kind,
                timestamp,
                data,
            }));
        }
    }

    /// Searches for the next boundary. While searching, a tag is only believed when its `PreviousTagSize`
    /// matches. `true` once in sync again; `false` when more bytes are needed.
    fn resync(&mut self) -> bool {
        loop {
            let avail = &self.buf[self.pos..];
            if avail.is_empty() {
                return false;
            }
            if avail[0] == b'F' {
                match file_header(avail) {
                    HeaderCheck::NeedMore => return false,
                    HeaderCheck::Good(..) => {
                        self.synced = true;
                        return true;
                    }
                    HeaderCheck::Bad => {}
                }
            } else if TagKind::from_type(avail[0]).is_some() {
                if avail.len() < TAG_HEADER_LEN {
                    return false;
                }
                if let Some((_, size)) = plausible_tag_header(avail, self.max_tag_size) {
                    let total = TAG_HEADER_LEN + size + 4;
                    if avail.len() < total {
                        return false;
                    }
                    if u32be(&avail[TAG_HEADER_LEN + size..]) as usize == TAG_HEADER_LEN + size {
                        self.synced = true;
                        return true;
                    }
                }
            }
            // Not a boundary: skip to the next byte that could start one.
            let next = avail[1..]
                .iter()
                .position(|&b| b == b'F' || TagKind::from_type(b).is_some())
                .map(|i| i + 1)
                .unwrap_or(avail.len());
            self.skip(next);
        }
    }
}

/// Why something could not be written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum WriteError {
    #[error("tag data of {0} bytes does not fit an FLV tag")]
    TooLarge(usize),
}

/// Appends a file header and `PreviousTagSize0` ([`FILE_HEADER_LEN`] bytes).
pub fn write_header(out: &mut Vec<u8>, has_audio: bool, has_video: bool) {
    let flags = if has_audio { 0x04 } else { 0 } | if has_video { 0x01 } else { 0 };
    out.extend_from_slice(&[b'F', b'L', b'V', 1, flags, 0, 0, 0, 9, 0, 0, 0, 0]);
}

/// Appends one tag with its `PreviousTagSize`.
pub fn write_tag(
    out: &mut Vec<u8>,
    kind: TagKind,
    timestamp: u32,
    data: &[u8],
) -> Result<(), WriteError> {
    let size = data.len();
    if size > MAX_DATA_SIZE {
        return Err(WriteError::TooLarge(size));
    }
    let ts = timestamp.to_be_bytes();
    let sz = (size as u32).to_be_bytes();
    out.extend_from_slice(&[
        kind.type_byte(),
        sz[1],
        sz[2],
        sz[3],
        ts[1],
        ts[2],
        ts[3],
        ts[0],
        0,
        0,
        0,
    ]);
    out.extend_from_slice(data);
    out.extend_from_slice(&((TAG_HEADER_LEN + size) as u32).to_be_bytes());
    Ok(())
}

/// Writes an FLV stream: the file header once, then tags.
#[derive(Debug, Clone)]
pub struct Writer {
    has_audio: bool,
    has_video: bool,
    header_written: bool,
}

impl Writer {
    pub fn new(has_audio: bool, has_video: bool) -> Self {
        Self {
            has_audio,
            has_video,
            header_written: false,
        }
    }

    /// The bytes of `tag`, preceded by the file header if this is the first call.
    pub fn write(&mut self, tag: &Tag) -> Result<Vec<u8>, WriteError> {
        let mut out = Vec::with_capacity(FILE_HEADER_LEN + TAG_HEADER_LEN + tag.data.len() + 4);
        if !self.header_written {
            write_header(&mut out, self.has_audio, self.has_video);
        }
        write_tag(&mut out, tag.kind, tag.timestamp, &tag.data)?;
        self.header_written = true;
        Ok(out)
    }
}

/// Whether `tag` is a video frame a decoder can start at: frame type 1 (keyframe) carrying picture data, not a
/// sequence header. Understands legacy FLV (AVC and the like) and enhanced RTMP (`hvc1`, `av01`, ...), through
/// [`codec::is_keyframe`].
pub fn is_video_keyframe(tag: &Tag) -> bool {
    tag.kind == TagKind::Video && codec::is_keyframe(&tag.data)
}

/// Whether `tag` is a decoder configuration: an AVC (or HEVC/AV1 legacy, or enhanced RTMP) sequence header,
/// or an AAC AudioSpecificConfig (AAC packet type 0). Read by [`codec`]'s parsers.
pub fn is_sequence_header(tag: &Tag) -> bool {
    match tag.kind {
        TagKind::Video => codec::is_video_config(&tag.data),
        TagKind::Audio => matches!(
            codec::parse_audio(&tag.data),
            Ok(codec::Audio::AacConfig(_))
        ),
        TagKind::Script => false,
    }
}

/// Whether `tag` is stream metadata: a script tag whose first AMF0 value is the string `onMetaData` (or
/// `@setDataFrame`, as publishers send it).
pub fn is_metadata(tag: &Tag) -> bool {
    if tag.kind != TagKind::Script {
        return false;
    }
    let d = &tag.data;
    if d.len() < 3 || d[0] != 0x02 {
        return false;
    }
    let len = ((d[1] as usize) << 8) | d[2] as usize;
    let name = d.get(3..3 + len).unwrap_or_default();
    name == b"onMetaData" || name == b"@setDataFrame"
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tag(kind: TagKind, ts: u32, data: &[u8]) -> Tag {
        Tag::new(kind, ts, data.to_vec())
    }

    /// A small stream: header, metadata, AVC + AAC sequence headers, a keyframe, audio, an inter frame.
    fn sample_tags() -> Vec<Tag> {
        let mut meta = vec![0x02, 0x00, 0x0A];
        meta.extend_from_slice(b"onMetaData");
        meta.extend_from_slice(&[0x08, 0, 0, 0, 0, 0, 0, 9]);
        vec![
            tag(TagKind::Script, 0, &meta),
            tag(TagKind::Video, 0, &[0x17, 0, 0, 0, 0, 1, 0x64, 0, 0x1f]),
            tag(TagKind::Audio, 0, &[0xAF, 0, 0x11, 0x90]),
            tag(
                TagKind::Video,
                40,
                &[0x17, 1, 0, 0, 0, 0, 0, 0, 5, 0x65, 1, 2, 3, 4],
            ),
            tag(TagKind::Audio, 42, &[0xAF, 1, 9, 9, 9]),
            tag(TagKind::Video, 0x0123_4567, &[0x27, 1, 0, 0, 0, 0x41, 7]),
        ]
    }

    fn encode_stream(tags: &[Tag]) -> Vec<u8> {
        let mut w = Writer::new(true, true);
        let mut out = Vec::new();
        for t in tags {
            out.extend(w.write(t).unwrap());
        }
        out
    }

    fn drain(p: &mut Parser) -> Vec<Item> {
        std::iter::from_fn(|| p.next_item()).collect()
    }

    fn tags_of(items: &[Item]) -> Vec<Tag> {
        items
            .iter()
            .filter_map(|i| match i {
                Item::Tag(t) => Some(t.clone()),
                Item::Header(_) => None,
            })
            .collect()
    }

    fn parse_in_chunks(bytes: &[u8], chunk: usize) -> (Vec<Item>, Parser) {
        let mut p = Parser::new();
        let mut items = Vec::new();
        for c in bytes.chunks(chunk.max(1)) {
            p.push(c);
            items.extend(drain(&mut p));
        }
        (items, p)
    }

    #[test]
    fn round_trip_whole_stream() {
        let tags = sample_tags();
        let bytes = encode_stream(&tags);
        let (items, p) = parse_in_chunks(&bytes, bytes.len());
        assert_eq!(
            items[0],
            Item::Header(Header {
                version: 1,
                has_audio: true,
                has_video: true
            })
        );
        assert_eq!(tags_of(&items), tags);
        assert_eq!(p.buffered(), 0);
        let s = p.stats();
        assert_eq!(
            (s.tags, s.skipped_bytes, s.resyncs, s.size_mismatches),
            (6, 0, 0, 0)
        );
    }

    #[test]
    fn extended_timestamp_byte() {
        let t = tag(TagKind::Video, 0xAB12_3456, &[0x27, 1, 0, 0, 0]);
        let b = t.encode_at(t.timestamp).unwrap();
        assert_eq!(&b[4..8], &[0x12, 0x34, 0x56, 0xAB]);
        let mut p = Parser::new();
        p.push(&b);
        assert_eq!(p.next_item(), Some(Item::Tag(t)));
    }

    #[test]
    fn every_split_point_and_byte_by_byte() {
        let tags = sample_tags();
        let bytes = encode_stream(&tags);
        for chunk in [1, 2, 3, 5, 7, 11, 12, 13, 14, 15, 64] {
            let (items, p) = parse_in_chunks(&bytes, chunk);
            assert_eq!(tags_of(&items), tags, "chunk size {chunk}");
            assert_eq!(p.stats().skipped_bytes, 0, "chunk size {chunk}");
        }
        for split in 0..=bytes.len() {
            let mut p = Parser::new();
            p.push(&bytes[..split]);
            let mut items = drain(&mut p);
            p.push(&bytes[split..]);
            items.extend(drain(&mut p));
            assert_eq!(tags_of(&items), tags, "split at {split}");
        }
    }

    #[test]
    fn stream_without_file_header() {
        let tags = sample_tags();
        let bytes = encode_stream(&tags);
        let (items, p) = parse_in_chunks(&bytes[FILE_HEADER_LEN..], 5);
        assert_eq!(tags_of(&items), tags);
        assert!(!items.iter().any(|i| matches!(i, Item::Header(_))));
        assert_eq!(p.stats().skipped_bytes, 0);
    }

    #[test]
    fn truncated_tag_waits_then_completes() {
        let tags = sample_tags();
        let bytes = encode_stream(&tags);
        let cut = bytes.len() - 3;
        let mut p = Parser::new();
        p.push(&bytes[..cut]);
        let items = drain(&mut p);
        assert_eq!(tags_of(&items), tags[..tags.len() - 1].to_vec());
        assert!(p.buffered() > 0);
        assert_eq!(p.next_item(), None);
        p.push(&bytes[cut..]);
        assert_eq!(p.next_item(), Some(Item::Tag(tags[tags.len() - 1].clone())));
        assert_eq!(p.buffered(), 0);
    }

    #[test]
    fn garbage_before_and_between_tags_is_skipped() {
        let tags = sample_tags();
        let body = encode_stream(&tags);
        let header = &body[..FILE_HEADER_LEN];
        let mut bytes = b"\x00\xffjunk\x09\x01FLX".to_vec();
        bytes.extend_from_slice(header);
        let first_tag_len = TAG_HEADER_LEN + tags[0].data.len() + 4;
        bytes.extend_from_slice(&body[FILE_HEADER_LEN..FILE_HEADER_LEN + first_tag_len]);
        // Garbage between tags, including bytes that look like tag types.
        bytes.extend_from_slice(&[0x08, 0x09, 0x12, 0x00, 0x33, b'F', b'L']);
        bytes.extend_from_slice(&body[FILE_HEADER_LEN + first_tag_len..]);
        for chunk in [1, 3, 9, 1000] {
            let (items, p) = parse_in_chunks(&bytes, chunk);
            assert_eq!(tags_of(&items), tags, "chunk size {chunk}");
            assert!(p.stats().skipped_bytes >= 7, "{:?}", p.stats());
            assert!(p.stats().resyncs >= 1);
        }
    }

    #[test]
    fn corrupt_tag_header_resyncs_on_next_tag() {
        let tags = sample_tags();
        let mut bytes = encode_stream(&tags);
        // Break the stream id of the second tag: it is skipped, the rest is found again.
        let second = FILE_HEADER_LEN + TAG_HEADER_LEN + tags[0].data.len() + 4;
        bytes[second + 9] = 0x55;
        let (items, p) = parse_in_chunks(&bytes, 4);
        let got = tags_of(&items);
        assert_eq!(got[0], tags[0]);
        assert_eq!(got[1..], tags[2..]);
        assert_eq!(p.stats().resyncs, 1);
    }

    #[test]
    fn oversized_tag_is_garbage() {
        let mut p = Parser::with_max_tag_size(16);
        let big = tag(TagKind::Video, 1, &[0x27; 32]).encode_at(1).unwrap();
        let small = tag(TagKind::Audio, 2, &[0xAF, 1, 2]);
        p.push(&big);
        p.push(&small.encode_at(2).unwrap());
        assert_eq!(drain(&mut p), vec![Item::Tag(small)]);
    }

    #[test]
    fn concatenated_streams_report_both_headers() {
        let tags = sample_tags();
        let mut bytes = encode_stream(&tags[..2]);
        bytes.extend(encode_stream(&tags[2..]));
        let (items, _) = parse_in_chunks(&bytes, 7);
        assert_eq!(
            items
                .iter()
                .filter(|i| matches!(i, Item::Header(_)))
                .count(),
            2
        );
        assert_eq!(tags_of(&items), tags);
    }

    #[test]
    fn mismatched_previous_tag_size_is_tolerated_in_sync() {
        let tags = sample_tags();
        let mut bytes = encode_stream(&tags);
        let end_of_first = FILE_HEADER_LEN + TAG_HEADER_LEN + tags[0].data.len() + 4;
        bytes[end_of_first - 1] ^= 0x40;
        let (items, p) = parse_in_chunks(&bytes, 100);
        assert_eq!(tags_of(&items), tags);
        assert_eq!(p.stats().size_mismatches, 1);
    }

    #[test]
    fn never_panics_on_random_input() {
        let mut rng = fastrand::Rng::with_seed(7);
        let valid = encode_stream(&sample_tags());
        for round in 0..3000 {
            let mut p = Parser::with_max_tag_size(if round % 2 == 0 { 64 } else { 1 << 20 });
            let len = rng.usize(0..400);
            let mut bytes: Vec<u8> = (0..len).map(|_| rng.u8(..)).collect();
            // Mix in pieces of real FLV and the interesting bytes.
            if round % 3 == 0 {
                let at = rng.usize(0..=bytes.len());
                let from = rng.usize(0..valid.len());
                let to = rng.usize(from..=valid.len());
                bytes.splice(at..at, valid[from..to].iter().copied());
            }
            if round % 5 == 0 {
                for b in bytes.iter_mut() {
                    *b = [0x08, 0x09, 0x12, b'F', b'L', b'V', 0x01, 0x00, 0xFF][rng.usize(0..9)];
                }
            }
            let mut pos = 0;
            while pos < bytes.len() {
                let n = rng.usize(1..=bytes.len() - pos);
                p.push(&bytes[pos..pos + n]);
                pos += n;
                let mut guard = 0;
                while let Some(item) = p.next_item() {
                    if let Item::Tag(t) = &item {
                        let _ = (is_video_keyframe(t), is_sequence_header(t), is_metadata(t));
                    }
                    guard += 1;
                    assert!(
                        guard <= bytes.len() + 1,
                        "parser returned more items than bytes"
                    );
                }
            }
            assert!(p.buffered() <= bytes.len());
        }
    }

    #[test]
    fn parser_memory_stays_bounded_by_one_tag() {
        let mut p = Parser::with_max_tag_size(1000);
        let t = tag(TagKind::Audio, 5, &[0xAF, 1, 0, 0, 0, 0, 0, 0])
            .encode_at(5)
            .unwrap();
        for _ in 0..10_000 {
            p.push(&t);
            p.push(&[0u8; 37]);
            while p.next_item().is_some() {}
            assert!(p.buffered() < 1100, "{}", p.buffered());
        }
        assert_eq!(p.stats().tags, 10_000);
    }

    #[test]
    fn keyframes_and_sequence_headers() {
        let avc_seq = tag(TagKind::Video, 0, &[0x17, 0, 0, 0, 0, 1]);
        let avc_key = tag(TagKind::Video, 0, &[0x17, 1, 0, 0, 0, 0x65]);
        let avc_inter = tag(TagKind::Video, 0, &[0x27, 1, 0, 0, 0, 0x41]);
        let avc_end = tag(TagKind::Video, 0, &[0x17, 2, 0, 0, 0]);
        let hevc_cn_key = tag(TagKind::Video, 0, &[0x1C, 1, 0, 0, 0, 0x26]);
        let vp6_key = tag(TagKind::Video, 0, &[0x14, 0x00, 0x12]);
        let ex_seq = tag(TagKind::Video, 0, &[0x90, b'h', b'v', b'c', b'1', 1]);
        let ex_key = tag(TagKind::Video, 0, &[0x93, b'h', b'v', b'c', b'1', 0x26]);
        let ex_inter = tag(
            TagKind::Video,
            0,
            &[0xA1, b'h', b'v', b'c', b'1', 0, 0, 0, 2],
        );
        let aac_seq = tag(TagKind::Audio, 0, &[0xAF, 0, 0x11, 0x90]);
        let aac_raw = tag(TagKind::Audio, 0, &[0xAF, 1, 0x21]);
        let mp3 = tag(TagKind::Audio, 0, &[0x2F, 0xFF, 0xFB]);
        let empty_video = tag(TagKind::Video, 0, &[]);
        let short_avc = tag(TagKind::Video, 0, &[0x17]);

        assert!(is_video_keyframe(&avc_key));
        assert!(is_video_keyframe(&hevc_cn_key));
        assert!(is_video_keyframe(&vp6_key));
        assert!(is_video_keyframe(&ex_key));
        for t in [
            &avc_seq,
            &avc_inter,
            &avc_end,
            &ex_seq,
            &ex_inter,
            &aac_seq,
            &aac_raw,
            &empty_video,
            &short_avc,
        ] {
            assert!(!is_video_keyframe(t), "{t:?}");
        }
        assert!(is_sequence_header(&avc_seq));
        assert!(is_sequence_header(&ex_seq));
        assert!(is_sequence_header(&aac_seq));
        for t in [
            &avc_key,
            &avc_inter,
            &ex_key,
            &aac_raw,
            &mp3,
            &empty_video,
            &short_avc,
            &vp6_key,
        ] {
            assert!(!is_sequence_header(t), "{t:?}");
        }
    }

    /// Where the relay's checks once read video tags their own way, [`codec`]'s parser now decides, as the
    /// enhanced-RTMP specification (and the legacy FLV one) read them.
    #[test]
    fn relay_checks_read_tags_as_the_codec_parser_does() {
        let video = |d: &[u8]| tag(TagKind::Video, 0, d);
        for d in [
            // Command frames (frame type 5) carry a command, not video: no sequence header, whatever follows.
            &[0x57, 0][..],
            &[0x5C, 0, 0, 0, 0, 1],
            // AVC-like tags without their packet type and composition time are cut short.
            &[0x17, 0],
            &[0x17, 1],
            &[0x1C, 1, 0, 0],
            // A keyframe needs picture data after the composition time.
            &[0x17, 1, 0, 0, 0],
            b"\x91hvc1\x00\x00\x00",
            // An enhanced tag needs its whole FourCC.
            &[0x90],
            b"\x90hv",
            b"\x91av01",
        ] {
            let t = video(d);
            assert!(
                !is_sequence_header(&t) && !is_video_keyframe(&t),
                "{d:02x?}"
            );
        }
        // AV1 and VP9 frames carry no composition time: their picture data follows the FourCC.
        assert!(is_video_keyframe(&video(b"\x91av01\x12")));
        assert!(is_video_keyframe(&video(b"\x93vp09\x12")));
        assert!(is_sequence_header(&video(b"\x95av01\x80")));
        assert!(is_video_keyframe(&video(&[0x1D, 1, 0, 0, 0, 0x12])));
    }

    #[test]
    fn metadata_detection() {
        let tags = sample_tags();
        assert!(is_metadata(&tags[0]));
        let mut sdf = vec![0x02, 0x00, 0x0D];
        sdf.extend_from_slice(b"@setDataFrame");
        assert!(is_metadata(&tag(TagKind::Script, 0, &sdf)));
        let mut cue = vec![0x02, 0x00, 0x0A];
        cue.extend_from_slice(b"onCuePoint");
        assert!(!is_metadata(&tag(TagKind::Script, 0, &cue)));
        assert!(!is_metadata(&tag(
            TagKind::Script,
            0,
            &[0x02, 0x00, 0x40, b'o']
        )));
        assert!(!is_metadata(&tag(TagKind::Audio, 0, &tags[0].data)));
    }

    #[test]
    fn writer_refuses_oversized_data_and_writes_header_once() {
        let mut out = Vec::new();
        assert_eq!(
            write_tag(&mut out, TagKind::Video, 0, &vec![0; MAX_DATA_SIZE + 1]),
            Err(WriteError::TooLarge(MAX_DATA_SIZE + 1))
        );
        assert!(out.is_empty());
        let mut w = Writer::new(true, false);
        let a = w.write(&tag(TagKind::Audio, 1, &[0xAF, 1])).unwrap();
        let b = w.write(&tag(TagKind::Audio, 2, &[0xAF, 1])).unwrap();
        assert_eq!(&a[..5], b"FLV\x01\x04");
        assert_eq!(a.len(), FILE_HEADER_LEN + b.len());
        assert_eq!(b.len(), TAG_HEADER_LEN + 2 + 4);
        assert_eq!(&b[b.len() - 4..], &13u32.to_be_bytes());
    }
}
