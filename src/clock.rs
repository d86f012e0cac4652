//! Wall-clock time in the unit tokens and cookies use: whole seconds since the Unix epoch, and how
//! such a time is shown to people (the CLI, invitation mails).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Seconds since the Unix epoch. A clock set before 1970 reads as 0, which makes every credential
/// look expired: failing closed.
///
/// Read from `CLOCK_REALTIME_COARSE`, the kernel's time as of its last tick (1-4 ms ago): whole
/// seconds need no more, and it costs a load from the vDSO page (about 7 ns here) where the
/// precise clock reads the TSC (about 33 ns on this kind of VM), once on every guest request.
/// A credential may so outlive its expiry by one tick at most.
pub fn unix_now() -> i64 {
    i64::try_from(since_epoch().as_secs()).unwrap_or(i64::MAX)
}

/// How long to wait for [`unix_now`] to read `second` (Unix seconds): zero once it does. One
/// tick of the coarse clock longer than the time left, since the coarse clock turns only on a
/// tick, up to one after the precise one; a caller that waited the time left alone could find
/// the second not yet come and wait for nothing, again and again, until it did.
pub fn time_until(second: i64) -> Duration {
    let target = u64::try_from(second).map_or(Duration::ZERO, Duration::from_secs);
    match target.saturating_sub(since_epoch()) {
        Duration::ZERO => Duration::ZERO,
        left => left + coarse_tick(),
    }
}

/// How often the coarse clock turns (the kernel's tick); zero where it cannot say.
fn coarse_tick() -> Duration {
    ask_coarse_clock(libc::clock_getres, libc::CLOCK_REALTIME_COARSE).unwrap_or(Duration::ZERO)
}

/// The coarse wall clock since the Unix epoch (zero before it), or the precise one on a kernel
/// without it.
fn since_epoch() -> Duration {
    ask_coarse_clock(libc::clock_gettime, libc::CLOCK_REALTIME_COARSE)
        .unwrap_or_else(precise_since_epoch)
}

/// `clock_gettime` or `clock_getres` of `clock` (`CLOCK_REALTIME_COARSE` here,
/// `CLOCK_MONOTONIC_COARSE` for `coarse_clock`): `None` where the kernel refuses, zero for a time
/// before the clock's start (1970 for the wall clock).
pub(crate) fn ask_coarse_clock(
    call: unsafe extern "C" fn(libc::clockid_t, *mut libc::timespec) -> libc::c_int,
    clock: libc::clockid_t,
) -> Option<Duration> {
    let mut time = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: both calls only write the timespec they are given, a valid and writable one.
    if unsafe { call(clock, &mut time) } != 0 {
        return None;
    }
    Some(
        match (u64::try_from(time.tv_sec), u32::try_from(time.tv_nsec)) {
            (Ok(seconds), Ok(nanos)) if nanos < 1_000_000_000 => Duration::new(seconds, nanos),
            _ => Duration::ZERO,
        },
    )
}

fn precise_since_epoch() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
}

/// Unix seconds as `YYYY-MM-DD HH:MM:SS UTC` (proleptic Gregorian calendar).
pub fn format_utc(unix: i64) -> String {
    let days = unix.div_euclid(86_400);
    let second_of_day = unix.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        second_of_day / 3600,
        second_of_day % 3600 / 60,
        second_of_day % 60
    )
}

/// Days since 1970-01-01 to (year, month, day); Howard Hinnant's `civil_from_days`, exact for every
/// i64 day count a timestamp can produce.
pub(crate) fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    // Both are in range by construction (1..=31, 1..=12).
    (year, month as u32, day as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_coarse_reading_is_the_precise_one_within_a_second() {
        let precise_unix_now = || precise_since_epoch().as_secs() as i64;
        let before = precise_unix_now();
        let coarse = unix_now();
        let after = precise_unix_now();
        // The coarse clock lags by one tick at most, so it may still read the second before.
        assert!(
            (before - 1..=after).contains(&coarse),
            "coarse {coarse}, precise {before}..{after}"
        );
        assert!(
            coarse > 1_700_000_000,
            "not the Unix epoch's clock: {coarse}"
        );
    }

    #[test]
    fn after_waiting_time_until_a_second_unix_now_reads_it() {
        let next = unix_now() + 1;
        std::thread::sleep(time_until(next));
        assert!(unix_now() >= next, "woke before {next}: {}", unix_now());
        assert_eq!(time_until(next), Duration::ZERO);
    }
}
