//! Wall-clock time as the wire formats carry it.

/// Unix seconds now (0 on a clock before 1970, which no request's time check passes).
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}
