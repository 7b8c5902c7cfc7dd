//! Layout maths: from an input picture's size, its crop, its destination and its fit mode to what the
//! engine's crop, scale and compositor stages must do. Pure functions, so every mode is unit-tested.

use super::{Fit, Rect};

/// What to do with one input picture of a known size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placement {
    /// Pixels removed from each side of the source picture.
    pub crop_left: u32,
    pub crop_right: u32,
    pub crop_top: u32,
    pub crop_bottom: u32,
    /// Size the cropped picture is scaled to.
    pub width: u32,
    pub height: u32,
    /// Where the scaled picture's top-left corner lands on the canvas.
    pub x: i32,
    pub y: i32,
}

/// The crop region clamped to the source picture (at least 1×1), or the whole picture.
pub fn clamp_crop(src_w: u32, src_h: u32, crop: Option<Rect>) -> Rect {
    let Some(c) = crop else {
        return Rect::new(0, 0, src_w, src_h);
    };
    let x = (c.x.max(0) as u32).min(src_w.saturating_sub(1));
    let y = (c.y.max(0) as u32).min(src_h.saturating_sub(1));
    let w = c.width.min(src_w - x).max(1);
    let h = c.height.min(src_h - y).max(1);
    Rect::new(x as i32, y as i32, w, h)
}

/// Computes the crop, scale and position of a `src_w`×`src_h` picture shown in `dest`.
pub fn place(src_w: u32, src_h: u32, crop: Option<Rect>, dest: Rect, fit: Fit) -> Placement {
    let src_w = src_w.max(1);
    let src_h = src_h.max(1);
    let mut region = clamp_crop(src_w, src_h, crop);
    let (mut width, mut height, mut x, mut y) = (dest.width, dest.height, dest.x, dest.y);
    match fit {
        Fit::Stretch => {}
        Fit::CropToFill => {
            // Cut the region down to the destination's aspect ratio, keeping its centre.
            let (rw, rh) = (u64::from(region.width), u64::from(region.height));
            let (dw, dh) = (u64::from(dest.width), u64::from(dest.height));
            if rw * dh > rh * dw {
                let new_w = ((rh * dw + dh / 2) / dh).clamp(1, rw) as u32;
                region.x += ((region.width - new_w) / 2) as i32;
                region.width = new_w;
            } else if rw * dh < rh * dw {
                let new_h = ((rw * dh + dw / 2) / dw).clamp(1, rh) as u32;
                region.y += ((region.height - new_h) / 2) as i32;
                region.height = new_h;
            }
        }
        Fit::Letterbox => {
            let (rw, rh) = (u64::from(region.width), u64::from(region.height));
            let (dw, dh) = (u64::from(dest.width), u64::from(dest.height));
            if rw * dh > rh * dw {
                height = ((dw * rh + rw / 2) / rw).clamp(1, dh) as u32;
            } else {
                width = ((dh * rw + rh / 2) / rh).clamp(1, dw) as u32;
            }
        }
    }
    // 4:2:0 pictures need even sizes; rounding down keeps the picture inside its rectangle.
    width = (width & !1).max(2);
    height = (height & !1).max(2);
    if fit == Fit::Letterbox {
        x += (dest.width.saturating_sub(width) / 2) as i32;
        y += (dest.height.saturating_sub(height) / 2) as i32;
    }
    Placement {
        crop_left: region.x as u32,
        crop_top: region.y as u32,
        crop_right: src_w - region.x as u32 - region.width,
        crop_bottom: src_h - region.y as u32 - region.height,
        width,
        height,
        x,
        y,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stretch_fills_rect_without_crop() {
        let p = place(640, 360, None, Rect::new(10, 20, 300, 300), Fit::Stretch);
        assert_eq!(
            (p.crop_left, p.crop_right, p.crop_top, p.crop_bottom),
            (0, 0, 0, 0)
        );
        assert_eq!((p.width, p.height, p.x, p.y), (300, 300, 10, 20));
    }

    #[test]
    fn crop_to_fill_cuts_sides_of_wide_picture() {
        // 16:9 into a square: keep the central 360×360.
        let p = place(640, 360, None, Rect::new(0, 0, 200, 200), Fit::CropToFill);
        assert_eq!(
            (p.crop_left, p.crop_right, p.crop_top, p.crop_bottom),
            (140, 140, 0, 0)
        );
        assert_eq!((p.width, p.height), (200, 200));
    }

    #[test]
    fn crop_to_fill_cuts_top_and_bottom_of_tall_picture() {
        let p = place(360, 640, None, Rect::new(0, 0, 320, 180), Fit::CropToFill);
        assert_eq!(p.crop_left + p.crop_right, 0);
        // 360 wide → 202.5 tall region kept, centred.
        assert_eq!(640 - p.crop_top - p.crop_bottom, 203);
        assert!(p.crop_top.abs_diff(p.crop_bottom) <= 1);
    }

    #[test]
    fn letterbox_centres_whole_picture() {
        let p = place(
            640,
            360,
            None,
            Rect::new(100, 100, 400, 400),
            Fit::Letterbox,
        );
        assert_eq!((p.width, p.height), (400, 224));
        assert_eq!((p.x, p.y), (100, 188));
        let p = place(360, 640, None, Rect::new(0, 0, 640, 360), Fit::Letterbox);
        assert_eq!((p.width, p.height), (202, 360));
        assert_eq!(p.x, 219);
    }

    #[test]
    fn crop_then_fit_uses_the_crop_region() {
        // The top-left quadrant of a 640×360 picture stretched over 320×180.
        let p = place(
            640,
            360,
            Some(Rect::new(0, 0, 320, 180)),
            Rect::new(0, 0, 320, 180),
            Fit::Stretch,
        );
        assert_eq!(
            (p.crop_left, p.crop_right, p.crop_top, p.crop_bottom),
            (0, 320, 0, 180)
        );
    }

    #[test]
    fn crop_outside_the_picture_is_clamped() {
        let r = clamp_crop(320, 180, Some(Rect::new(300, 170, 100, 100)));
        assert_eq!(r, Rect::new(300, 170, 20, 10));
        let r = clamp_crop(320, 180, Some(Rect::new(-5, 500, 10, 10)));
        assert_eq!(r, Rect::new(0, 179, 10, 1));
    }

    #[test]
    fn sizes_stay_even() {
        let p = place(640, 360, None, Rect::new(0, 0, 301, 201), Fit::Stretch);
        assert_eq!((p.width, p.height), (300, 200));
    }
}
