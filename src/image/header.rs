//! What a picture's header says, read without decoding anything: its format (by signature) and its size (PNG
//! `IHDR`, JPEG frame header). Decoders trust these sizes when they allocate, so a picture is judged by them.

/// Which image format the bytes are, by their signature: `"png"` or `"jpg"`.
pub fn sniff(bytes: &[u8]) -> Option<&'static str> {
    if bytes.starts_with(PNG_SIGNATURE) {
        Some("png")
    } else if bytes.starts_with(&[0xff, 0xd8, 0xff]) {
        Some("jpg")
    } else {
        None
    }
}

const PNG_SIGNATURE: &[u8] = b"\x89PNG\r\n\x1a\n";

/// Width and height as the header of a PNG or JPEG gives them; `None` for other bytes, a header cut short, or a
/// zero size.
pub fn dimensions(bytes: &[u8]) -> Option<(u32, u32)> {
    let size = match sniff(bytes)? {
        "png" => png(bytes)?,
        _ => jpeg(bytes)?,
    };
    (size.0 > 0 && size.1 > 0).then_some(size)
}

/// The `IHDR` chunk comes first: length 13, type, then width and height (big-endian).
fn png(b: &[u8]) -> Option<(u32, u32)> {
    if b.get(12..16)? != b"IHDR" {
        return None;
    }
    let be = |at: usize| -> Option<u32> {
        Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
    };
    let (width, height) = (be(16)?, be(20)?);
    // The PNG specification caps both at 2^31 - 1.
    (width <= i32::MAX as u32 && height <= i32::MAX as u32).then_some((width, height))
}

/// Walks the marker segments up to the first frame header (SOF0–SOF15 but DHT C4, JPG C8 and DAC CC), whose
/// payload is precision (1 byte), height and width (2 bytes each, big-endian).
fn jpeg(b: &[u8]) -> Option<(u32, u32)> {
    let mut i = 2;
    loop {
        if *b.get(i)? != 0xff {
            return None;
        }
        let marker = *b.get(i + 1)?;
        match marker {
            // Fill bytes before a marker.
            0xff => {
                i += 1;
                continue;
            }
            // Markers without a payload.
            0x01 | 0xd0..=0xd8 => {
                i += 2;
                continue;
            }
            // End of image, or the scan started, before any frame header.
            0xd9 | 0xda => return None,
            _ => {}
        }
        let len = usize::from(u16::from_be_bytes([*b.get(i + 2)?, *b.get(i + 3)?]));
        if len < 2 {
            return None;
        }
        if matches!(marker, 0xc0..=0xcf) && !matches!(marker, 0xc4 | 0xc8 | 0xcc) {
            let p = b.get(i + 4..i + 9)?;
            let height = u32::from(u16::from_be_bytes([p[1], p[2]]));
            let width = u32::from(u16::from_be_bytes([p[3], p[4]]));
            return Some((width, height));
        }
        i += 2 + len;
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A real 3×2 PNG (RGBA) and a real 10×6 JPEG (baseline, DHT after the frame header), made by GStreamer.
    pub const TINY_PNG: &[u8] = include_bytes!("testdata/tiny.png");
    pub const TINY_JPEG: &[u8] = include_bytes!("testdata/tiny.jpg");

    fn crc32(data: &[u8]) -> u32 {
        let mut c = 0xffff_ffffu32;
        for &b in data {
            c ^= u32::from(b);
            for _ in 0..8 {
                c = if c & 1 != 0 {
                    0xedb8_8320 ^ (c >> 1)
                } else {
                    c >> 1
                };
            }
        }
        !c
    }

    /// A PNG whose header claims `width`×`height` (1-bit grey), with 4 bytes of picture data: a decompression
    /// bomb as a header reader sees it.
    pub fn png_claiming(width: u32, height: u32) -> Vec<u8> {
        fn chunk(png: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
            png.extend((data.len() as u32).to_be_bytes());
            let mut body = kind.to_vec();
            body.extend(data);
            png.extend(&body);
            png.extend(crc32(&body).to_be_bytes());
        }
        let mut png = PNG_SIGNATURE.to_vec();
        let mut ihdr = width.to_be_bytes().to_vec();
        ihdr.extend(height.to_be_bytes());
        ihdr.extend([1, 0, 0, 0, 0]);
        chunk(&mut png, b"IHDR", &ihdr);
        let idat = [
            0x78, 0x01, 0x01, 0x04, 0x00, 0xfb, 0xff, 0, 0, 0, 0, 0x00, 0x04, 0x00, 0x01,
        ];
        chunk(&mut png, b"IDAT", &idat);
        chunk(&mut png, b"IEND", &[]);
        png
    }

    /// A JPEG whose frame header (SOF2, progressive) claims `width`×`height`, behind an APP0 and a DHT segment.
    pub fn jpeg_claiming(width: u16, height: u16) -> Vec<u8> {
        let mut j = vec![0xff, 0xd8];
        j.extend([0xff, 0xe0, 0x00, 0x07, b'J', b'F', b'I', b'F', 0]);
        // A DHT segment (C4) first: it is no frame header, whatever its payload.
        j.extend([0xff, 0xc4, 0x00, 0x07, 0x00, 0x10, 0x10, 0x10, 0x10]);
        j.extend([0xff, 0xff]); // a fill byte
        j.extend([0xff, 0xc2, 0x00, 0x0b, 8]);
        j.extend(height.to_be_bytes());
        j.extend(width.to_be_bytes());
        j.extend([1, 1, 0x11, 0]);
        j.extend([0xff, 0xda, 0x00, 0x08, 1, 1, 0, 0, 0x3f, 0]);
        j.extend([0xff, 0xd9]);
        j
    }

    #[test]
    fn sniffs_png_and_jpeg_only() {
        assert_eq!(sniff(b"\x89PNG\r\n\x1a\n...."), Some("png"));
        assert_eq!(sniff(&[0xff, 0xd8, 0xff, 0xe0]), Some("jpg"));
        assert_eq!(sniff(b"GIF89a"), None);
    }

    #[test]
    fn real_pictures_give_their_size() {
        assert_eq!(dimensions(TINY_PNG), Some((3, 2)));
        assert_eq!(dimensions(TINY_JPEG), Some((10, 6)));
    }

    #[test]
    fn crafted_headers_give_the_size_they_claim() {
        assert_eq!(
            dimensions(&png_claiming(20_000, 20_000)),
            Some((20_000, 20_000))
        );
        assert_eq!(
            dimensions(&jpeg_claiming(20_000, 20_000)),
            Some((20_000, 20_000))
        );
        assert_eq!(dimensions(&jpeg_claiming(640, 360)), Some((640, 360)));
    }

    #[test]
    fn cut_short_odd_or_empty_headers_give_nothing() {
        assert_eq!(dimensions(b"GIF89a\x01\x00\x01\x00"), None);
        assert_eq!(dimensions(&TINY_PNG[..20]), None);
        assert_eq!(dimensions(&png_claiming(0, 10)), None);
        assert_eq!(dimensions(&png_claiming(u32::MAX, 10)), None);
        let jpeg = jpeg_claiming(640, 360);
        assert_eq!(dimensions(&jpeg[..jpeg.len() - 30]), None);
        assert_eq!(dimensions(&jpeg_claiming(0, 360)), None);
        // A scan before any frame header.
        assert_eq!(
            dimensions(&[0xff, 0xd8, 0xff, 0xda, 0x00, 0x02, 0xff, 0xd9]),
            None
        );
        // A segment length that points past the end.
        assert_eq!(dimensions(&[0xff, 0xd8, 0xff, 0xe0, 0xff, 0xff]), None);
        assert_eq!(dimensions(&[0xff, 0xd8, 0xff, 0xe0, 0x00, 0x00]), None);
    }
}
