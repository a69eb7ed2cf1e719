//! The processes that keep state between values, in a feed's last value or in process state:
//! energy integration, daily totals, accumulators and rates (emoncms's rules, spec §4.4).

use chrono_tz::Tz;
use ynni_storage::query::day_start;

use super::engine::{Host, StateKind};
use super::php::map2;
use crate::batch::Value;

/// The energy a power reading adds since the feed's last update: `dt·W/3.6e6` kWh when the
/// gap is under 2 h, otherwise nothing.
fn power_increment(last_time: Option<i64>, t: i64, power: f64) -> f64 {
    let dt = t - last_time.unwrap_or(t);
    if dt > 0 && dt < 7200 {
        dt as f64 * power / 3_600_000.0
    } else {
        0.0
    }
}

pub(super) fn power_to_kwh(host: &mut dyn Host, f: u32, t: i64, v: Value) -> Value {
    let power = v?;
    let last = host.feed_last(f);
    let kwh = last.and_then(|l| l.1).unwrap_or(0.0) + power_increment(last.map(|l| l.0), t, power);
    host.feed_post(f, t, t, Some(kwh), true);
    v
}

pub(super) fn power_to_kwhd(host: &mut dyn Host, f: u32, t: i64, v: Value, tz: Tz) -> Value {
    let power = v?;
    let last = host.feed_last(f);
    let inc = power_increment(last.map(|l| l.0), t, power);
    let kwh = match last {
        Some((lt, lv)) if day_start(lt, tz) == day_start(t, tz) => lv.unwrap_or(0.0) + inc,
        _ => inc,
    };
    host.feed_post(f, t, day_start(t, tz), Some(kwh), false);
    v
}

pub(super) fn power_to_kwh_period(
    host: &mut dyn Host,
    f: u32,
    t: i64,
    v: Value,
    len: i64,
    tz: Tz,
) -> Value {
    let slot_start = |x: i64| {
        let midnight = day_start(x, tz);
        midnight + (x - midnight).div_euclid(len) * len
    };
    let last = host.feed_last(f);
    let dt = last.map_or(0, |l| t - l.0);
    let inc = if dt > 0 && dt <= len {
        dt as f64 * v.unwrap_or(0.0) / 3_600_000.0
    } else {
        0.0
    };
    let kwh = match last {
        Some((lt, lv)) if slot_start(lt) == slot_start(t) => lv.unwrap_or(0.0) + inc,
        _ => inc,
    };
    host.feed_post(f, t, slot_start(t) + len, Some(kwh), false);
    v
}

pub(super) fn whinc_to_kwhd(host: &mut dyn Host, f: u32, t: i64, v: Value, tz: Tz) -> Value {
    let inc = v.unwrap_or(0.0) / 1000.0;
    let total = match host.feed_last(f) {
        Some((lt, lv)) if day_start(lt, tz) == day_start(t, tz) => lv.unwrap_or(0.0) + inc,
        _ => inc,
    };
    host.feed_post(f, t, day_start(t, tz), Some(total), false);
    v
}

pub(super) fn input_ontime(host: &mut dyn Host, f: u32, t: i64, v: Value, tz: Tz) -> Value {
    let last = host.feed_last(f);
    let (lt, lv) = last.unwrap_or((t, Some(0.0)));
    let elapsed = if v.is_some_and(|x| x > 0.0) && t - lt < 7200 {
        t - lt
    } else {
        0
    };
    let ontime = if day_start(lt, tz) == day_start(t, tz) {
        lv.unwrap_or(0.0) + elapsed as f64
    } else {
        elapsed as f64
    };
    host.feed_post(f, t, day_start(t, tz), Some(ontime), false);
    v
}

/// The daily maximum or minimum, as `better` compares a value with the day's: written at the
/// start of the local day when the day changed or the value beats the day's.
pub(super) fn daily_extreme(
    host: &mut dyn Host,
    f: u32,
    t: i64,
    v: Value,
    tz: Tz,
    better: fn(&f64, &f64) -> bool,
) -> Value {
    let post = match host.feed_last(f) {
        None => true,
        Some((lt, lv)) => {
            day_start(lt, tz) != day_start(t, tz)
                || matches!((v, lv), (Some(x), Some(l)) if better(&x, &l))
                || lv.is_none()
        }
    };
    if post && v.is_some() {
        host.feed_post(f, t, day_start(t, tz), v, false);
    }
    v
}

pub(super) fn accumulator(host: &mut dyn Host, f: u32, t: i64, v: Value) -> Value {
    let x = v?;
    let total = host.feed_last(f).and_then(|l| l.1).unwrap_or(0.0) + x;
    host.feed_post(f, t, t, Some(total), true);
    Some(total)
}

pub(super) fn rate_change(host: &mut dyn Host, f: u32, t: i64, v: Value) -> Value {
    let prev = host.state(StateKind::RateChange, f);
    host.set_state(StateKind::RateChange, f, t, v);
    let (_, pv) = prev?;
    let delta = map2(v, pv, |a, b| a - b);
    host.feed_post(f, t, t, delta, false);
    delta
}

pub(super) fn kwh_to_power(host: &mut dyn Host, f: u32, t: i64, v: Value) -> Value {
    let prev = host.state(StateKind::KwhToPower, f);
    host.set_state(StateKind::KwhToPower, f, t, v);
    match prev {
        Some((pt, pv)) if t > pt => {
            let power = map2(v, pv, |a, b| (a - b) * 3_600_000.0 / (t - pt) as f64);
            host.feed_post(f, t, t, power, false);
            power
        }
        _ => Some(0.0),
    }
}

pub(super) fn pulse_diff(host: &mut dyn Host, f: u32, t: i64, v: Value) -> Value {
    let mut count = v?;
    if count < 0.0 {
        count += 65536.0;
    }
    if count <= 0.0 {
        return None;
    }
    let diff = match host.feed_last(f) {
        None => 0.0,
        Some((_, last)) => {
            let last = last.unwrap_or(0.0);
            if count >= last { count - last } else { count }
        }
    };
    host.feed_post(f, t, t, Some(count), false);
    Some(diff)
}

pub(super) fn kwh_to_kwhd(host: &mut dyn Host, f: u32, t: i64, v: Value, tz: Tz) -> Value {
    let Some(reading) = v else { return v };
    let prev = host.state(StateKind::KwhToKwhd, f);
    let Some((_, Some(prev_reading))) = prev else {
        host.set_state(StateKind::KwhToKwhd, f, t, v);
        return v;
    };
    // A meter reset (a reading below the previous one) adds nothing, and the previous reading
    // stays the reference, as in emoncms.
    let (inc, reference) = if reading >= prev_reading {
        (reading - prev_reading, reading)
    } else {
        (0.0, prev_reading)
    };
    let total = match host.feed_last(f) {
        Some((lt, lv)) if day_start(lt, tz) == day_start(t, tz) => lv.unwrap_or(0.0) + inc,
        _ => inc,
    };
    host.feed_post(f, t, day_start(t, tz), Some(total), false);
    host.set_state(StateKind::KwhToKwhd, f, t, Some(reference));
    // emoncms passes on the reference reading, so a reset never shows downstream.
    Some(reference)
}

/// Wh or kWh meter readings into a total that survives meter resets: an increase counts when
/// it implies less than 60 kW (`to_watts` converts units per second into watts).
pub(super) fn meter_accumulator(
    host: &mut dyn Host,
    kind: StateKind,
    f: u32,
    t: i64,
    v: Value,
    to_watts: f64,
) -> Value {
    let prev = host.state(kind, f);
    host.set_state(kind, f, t, v);
    let (Some((_, Some(prev_value))), Some(reading)) = (prev, v) else {
        return v;
    };
    let last = host.feed_last(f);
    let mut total = last.and_then(|l| l.1).unwrap_or(0.0);
    // An empty feed counts from time 0, as PHP's `$time - null` does, so the first increase
    // after the reference reading is kept.
    let dt = t - last.map_or(0, |l| l.0);
    let dv = reading - prev_value;
    if dt > 0 && dv > 0.0 && dv * to_watts / (dt as f64) < 60_000.0 {
        total += dv;
    }
    host.feed_post(f, t, t, Some(total), true);
    Some(total)
}
