//! GStreamer init and small measurement helpers.

use std::time::{Duration, Instant};

/// Initialises GStreamer once per test process. Idempotent, callable from any thread.
pub fn init() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        gst::init().expect("gst::init");
        // Tessera's log, when asked for (RUST_LOG=tessera=debug), in the test's captured output.
        if std::env::var_os("RUST_LOG").is_some() {
            let _ = tracing_subscriber::fmt()
                .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
                .with_test_writer()
                .try_init();
        }
    });
}

/// Whether every channel of `px` is within `tol` of the colour `rgb` (0xRRGGBB).
pub fn color_close(px: [u8; 3], rgb: u32, tol: u8) -> bool {
    let want = rgb_bytes(rgb);
    px.iter().zip(want).all(|(&a, b)| a.abs_diff(b) <= tol)
}

/// 0xRRGGBB → [r, g, b].
pub fn rgb_bytes(rgb: u32) -> [u8; 3] {
    [(rgb >> 16) as u8, (rgb >> 8) as u8, rgb as u8]
}

/// Amplitude estimate of a sine at `hz` in `samples` (Goertzel on a Hann window, corrected for the
/// window's gain): a full-scale-0.1 sine at `hz` gives ≈ 0.1, other frequencies more than a few bins away
/// (a bin is `rate / samples.len()` Hz) give ≈ 0. Returns 0 for fewer than 2 samples.
pub fn tone_level(samples: &[f32], rate: u32, hz: f64) -> f64 {
    let n = samples.len();
    if n < 2 {
        return 0.0;
    }
    let w = 2.0 * std::f64::consts::PI * hz / rate as f64;
    let coeff = 2.0 * w.cos();
    let (mut s1, mut s2) = (0.0f64, 0.0f64);
    let mut win_sum = 0.0f64;
    let denom = (n - 1) as f64;
    for (i, &x) in samples.iter().enumerate() {
        let win = 0.5 - 0.5 * (2.0 * std::f64::consts::PI * i as f64 / denom).cos();
        win_sum += win;
        let s = x as f64 * win + coeff * s1 - s2;
        s2 = s1;
        s1 = s;
    }
    let power = (s1 * s1 + s2 * s2 - coeff * s1 * s2).max(0.0);
    2.0 * power.sqrt() / win_sum
}

/// Root mean square of `samples` (0 for none).
pub fn rms(samples: &[f32]) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    (samples.iter().map(|&x| x as f64 * x as f64).sum::<f64>() / samples.len() as f64).sqrt()
}

/// Polls `cond` every 50 ms until it is true (→ true) or `timeout` passes (→ false).
pub fn wait_for(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Builds an element, panicking with the factory name if it is missing.
pub(crate) fn make(factory: &str) -> gst::Element {
    gst::ElementFactory::make(factory)
        .build()
        .unwrap_or_else(|e| panic!("cannot create GStreamer element {factory}: {e}"))
}

/// Polls `check` every `every` until it returns `Ok` (→ its value); after `timeout` panics with `what` and the
/// last `Err`, which should say what was seen (the expectation is `what`).
pub fn poll<T>(
    what: &str,
    timeout: Duration,
    every: Duration,
    mut check: impl FnMut() -> Result<T, String>,
) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        match check() {
            Ok(v) => return v,
            Err(seen) => assert!(
                Instant::now() < deadline,
                "expected {what} within {timeout:?}; last seen: {seen}"
            ),
        }
        std::thread::sleep(every);
    }
}
