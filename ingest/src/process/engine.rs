//! Runs a process list over one value, as emoncms's `Process::input` does: each step's result
//! is the next step's input; conditionals skip the next step; `goto` jumps; an unknown key or
//! a step not allowed in the context stops the whole list; a list that runs more than twice
//! its length of steps is stopped and reported (the caller disables it).
//!
//! Everything the processes touch (feeds, other inputs, process state, MQTT) goes through
//! [`Host`], so the engine is pure and deterministic: the same inputs and state give the same
//! writes, which WAL replay relies on.

use chrono_tz::Tz;
use ynni_storage::query::day_start;

use super::catalog::{Context, lookup};
use super::list::parse_stored;
use crate::batch::Value;

/// Which stateful process a piece of state belongs to (keyed with its feed id).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub enum StateKind {
    KwhToKwhd,
    RateChange,
    KwhToPower,
    WhAccumulator,
    KwhAccumulator,
}

/// The world a list runs in.
pub trait Host {
    /// The user's time zone, for day boundaries.
    fn tz(&self) -> Tz;
    /// Writes a point: `feed_time` is where it lands, `update_time` what the feed's last value
    /// records (they differ for the daily processes).
    fn feed_post(&mut self, feed: u32, update_time: i64, feed_time: i64, value: Value, join: bool);
    /// The feed's last update (time, value), or `None` for a feed with no data or no feed.
    fn feed_last(&mut self, feed: u32) -> Option<(i64, Value)>;
    /// Whether the feed exists (with or without data): the feed operand processes pass the
    /// value through for a missing feed but treat an empty one as `null`, as emoncms does.
    fn feed_exists(&mut self, feed: u32) -> bool;
    /// Another input's last value; `None` when the input does not exist.
    fn input_last(&mut self, input: u32) -> Option<Value>;
    fn state(&self, kind: StateKind, feed: u32) -> Option<(i64, Value)>;
    fn set_state(&mut self, kind: StateKind, feed: u32, time: i64, value: Value);
    /// Hands a value to the outputs (MQTT) under the account's `topic`.
    fn publish(&mut self, topic: &str, value: Value);
    /// Virtual feeds: the source feed's value at the point being computed.
    fn source_value(&mut self, feed: u32) -> Value;
}

#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// The list ran to its end (or to `error_found`); the final value.
    Done(Value),
    /// A key is unknown or not allowed here: nothing after it ran (emoncms returns false).
    Aborted { step: usize, key: String },
    /// More than twice the list's length of steps ran: the list loops and must be disabled.
    LoopGuard,
}

/// The prefix emoncms puts in front of a looping list to disable it.
pub const DISABLED_PREFIX: &str = "process__error_found:0,";

/// PHP's loose comparison of a value with the literal number `b`: a missing value compares as
/// `false` (so it equals 0 and is below any non-zero number).
fn loose_cmp(a: Value, b: f64) -> std::cmp::Ordering {
    match a {
        Some(x) => x.partial_cmp(&b).unwrap_or(std::cmp::Ordering::Equal),
        None => false.cmp(&(b != 0.0)),
    }
}

/// PHP 8's comparison of a value with a user argument, which arrives as a numeric *string*: a
/// missing value compares as `""`, below every argument and equal to none.
fn arg_cmp(a: Value, b: f64) -> std::cmp::Ordering {
    match a {
        Some(x) => x.partial_cmp(&b).unwrap_or(std::cmp::Ordering::Equal),
        None => std::cmp::Ordering::Less,
    }
}

/// PHP's loose `a > b` for two nullable numbers: null compares as `false`, a number as
/// `!= 0` when the other side is null.
fn loose_gt(a: Value, b: Value) -> bool {
    match (a, b) {
        (Some(x), Some(y)) => x > y,
        (Some(x), None) => x != 0.0,
        (None, _) => false,
    }
}

fn num(arg: Option<&String>) -> f64 {
    arg.and_then(|a| crate::decode::numbers::php_numeric(a))
        .unwrap_or(0.0)
}

fn id(arg: Option<&String>) -> u32 {
    num(arg).max(0.0) as u32
}

fn map2(a: Value, b: Value, f: impl Fn(f64, f64) -> f64) -> Value {
    Some(f(a?, b?)).filter(|v| v.is_finite())
}

/// Runs `list` on `value` at packet time `time`.
pub fn run(list: &str, time: i64, value: Value, ctx: Context, host: &mut dyn Host) -> Outcome {
    let steps = parse_stored(list);
    let initial = value;
    let mut v = value;
    let mut i = 0;
    let mut executed = 0;
    while i < steps.len() {
        let step = &steps[i];
        let Some(def) = lookup(&step.key).filter(|d| d.allowed_in(ctx)) else {
            return Outcome::Aborted {
                step: i,
                key: step.key.clone(),
            };
        };
        i += 1;
        executed += 1;
        let mut skip_next = false;
        let a0 = step.args.first();
        let t = time;
        let tz = host.tz();
        v = match def.function {
            _ if def.deleted => v,
            "log_to_feed" => {
                host.feed_post(id(a0), t, t, v, false);
                v
            }
            "log_to_feed_join" => {
                host.feed_post(id(a0), t, t, v, true);
                v
            }
            "scale" => v.map(|x| x * num(a0)),
            "offset" => v.map(|x| x + num(a0)),
            "power_to_kwh" => power_to_kwh(host, id(a0), t, v),
            "power_to_kwhd" => power_to_kwhd(host, id(a0), t, v, tz),
            "times_input" => map2(v, host.input_last(id(a0)).flatten(), |a, b| a * b),
            "add_input" => map2(v, host.input_last(id(a0)).flatten(), |a, b| a + b),
            "subtract_input" => map2(v, host.input_last(id(a0)).flatten(), |a, b| a - b),
            "divide_input" => match host.input_last(id(a0)).flatten() {
                Some(last) if last > 0.0 => v.map(|x| x / last),
                _ => None,
            },
            "input_ontime" => input_ontime(host, id(a0), t, v, tz),
            "whinc_to_kwhd" => {
                let f = id(a0);
                let inc = v.unwrap_or(0.0) / 1000.0;
                let total = match host.feed_last(f) {
                    Some((lt, lv)) if day_start(lt, tz) == day_start(t, tz) => {
                        lv.unwrap_or(0.0) + inc
                    }
                    _ => inc,
                };
                host.feed_post(f, t, day_start(t, tz), Some(total), false);
                v
            }
            "update_feed_data" => {
                host.feed_post(id(a0), t, day_start(t, tz), v, false);
                v
            }
            "accumulator" => {
                let f = id(a0);
                match v {
                    None => None,
                    Some(x) => {
                        let total = host.feed_last(f).and_then(|l| l.1).unwrap_or(0.0) + x;
                        host.feed_post(f, t, t, Some(total), true);
                        Some(total)
                    }
                }
            }
            "ratechange" => {
                let f = id(a0);
                let prev = host.state(StateKind::RateChange, f);
                host.set_state(StateKind::RateChange, f, t, v);
                match prev {
                    Some((_, pv)) => {
                        let delta = map2(v, pv, |a, b| a - b);
                        host.feed_post(f, t, t, delta, false);
                        delta
                    }
                    None => None,
                }
            }
            "pulse_diff" => pulse_diff(host, id(a0), t, v),
            "kwh_to_power" => {
                let f = id(a0);
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
            "kwh_to_kwhd" => kwh_to_kwhd(host, id(a0), t, v, tz),
            "allowpositive" => match v {
                Some(x) if x < 0.0 => Some(0.0),
                other => other,
            },
            "allownegative" => match v {
                Some(x) if x > 0.0 => Some(0.0),
                other => other,
            },
            "signed2unsigned" => match v {
                Some(x) if x < 0.0 => Some(x + 65536.0),
                other => other,
            },
            "max_value" | "min_value" => {
                let f = id(a0);
                let better = |x: f64, last: f64| {
                    if def.function == "max_value" {
                        x > last
                    } else {
                        x < last
                    }
                };
                let post = match host.feed_last(f) {
                    None => true,
                    Some((lt, lv)) => {
                        day_start(lt, tz) != day_start(t, tz)
                            || matches!((v, lv), (Some(x), Some(l)) if better(x, l))
                            || lv.is_none()
                    }
                };
                if post && v.is_some() {
                    host.feed_post(f, t, day_start(t, tz), v, false);
                }
                v
            }
            "add_feed" | "sub_feed" | "multiply_by_feed" | "divide_by_feed" | "max_feed"
            | "min_feed" => {
                let f = id(a0);
                if host.feed_exists(f) {
                    feed_op(def.function, v, host.feed_last(f).and_then(|l| l.1))
                } else {
                    v
                }
            }
            "max_input" | "min_input" => match host.input_last(id(a0)) {
                None => v,
                Some(last) => feed_op(
                    if def.function == "max_input" {
                        "max_feed"
                    } else {
                        "min_feed"
                    },
                    v,
                    last,
                ),
            },
            "reset2zero" => Some(0.0),
            "reset2null" => None,
            "reset2original" => initial,
            "wh_accumulator" => {
                meter_accumulator(host, StateKind::WhAccumulator, id(a0), t, v, 3600.0)
            }
            "kwh_accumulator" => {
                meter_accumulator(host, StateKind::KwhAccumulator, id(a0), t, v, 3_600_000.0)
            }
            "publish_to_mqtt" => {
                if let Some(topic) = a0.filter(|s| !s.is_empty()) {
                    host.publish(topic, v);
                }
                v
            }
            "if_zero_skip" => {
                skip_next = loose_cmp(v, 0.0).is_eq();
                v
            }
            "if_not_zero_skip" => {
                skip_next = !loose_cmp(v, 0.0).is_eq();
                v
            }
            "if_null_skip" => {
                skip_next = v.is_none();
                v
            }
            "if_not_null_skip" => {
                skip_next = v.is_some();
                v
            }
            "if_gt_skip" => {
                skip_next = arg_cmp(v, num(a0)).is_gt();
                v
            }
            "if_gt_equal_skip" => {
                skip_next = arg_cmp(v, num(a0)).is_ge();
                v
            }
            "if_lt_skip" => {
                skip_next = arg_cmp(v, num(a0)).is_lt();
                v
            }
            "if_lt_equal_skip" => {
                skip_next = arg_cmp(v, num(a0)).is_le();
                v
            }
            "if_equal_skip" => {
                skip_next = arg_cmp(v, num(a0)).is_eq();
                v
            }
            "if_not_equal_skip" => {
                skip_next = !arg_cmp(v, num(a0)).is_eq();
                v
            }
            "goto_process" => {
                // emoncms: step n (1-based) for n >= 2; anything lower lands on step 2.
                let n = num(a0) as i64;
                i = if n >= 2 { (n - 1) as usize } else { 1 };
                v
            }
            "source_feed_data_time" => host.source_value(id(a0)),
            "add_source_feed" => map2(v, host.source_value(id(a0)), |a, b| a + b),
            "sub_source_feed" => map2(v, host.source_value(id(a0)), |a, b| a - b),
            "multiply_by_source_feed" => map2(v, host.source_value(id(a0)), |a, b| a * b),
            "divide_by_source_feed" => match host.source_value(id(a0)) {
                Some(s) if s != 0.0 => v.map(|x| x / s),
                _ => None,
            },
            "reciprocal_by_source_feed" => match (v, host.source_value(id(a0))) {
                // emoncms: a loose-null (missing or 0) value or source gives null.
                (Some(x), Some(s)) if x != 0.0 && s != 0.0 => Some(1.0 / s),
                _ => None,
            },
            "error_found" => return Outcome::Done(v),
            "max_value_allowed" => match v {
                Some(x) if x > num(a0) => Some(num(a0)),
                other => other,
            },
            "min_value_allowed" => {
                let m = num(a0);
                if arg_cmp(v, m).is_lt() { Some(m) } else { v }
            }
            "abs_value" => v.map(f64::abs),
            "power_to_kwh_15m" => power_to_kwh_period(host, id(a0), t, v, 15 * 60, tz),
            "power_to_kwh_custom" => {
                // One minute to one day: anything else cannot tile a day and could overflow.
                let minutes = num(a0).clamp(1.0, 1440.0) as i64;
                power_to_kwh_period(host, id(step.args.get(1)), t, v, minutes * 60, tz)
            }
            other => {
                return Outcome::Aborted {
                    step: i - 1,
                    key: other.to_string(),
                };
            }
        };
        if skip_next {
            // As in emoncms, the skipped step is neither looked up nor counted.
            i += 1;
        }
        if executed > 2 * steps.len() {
            return Outcome::LoopGuard;
        }
    }
    Outcome::Done(v)
}

fn feed_op(function: &str, v: Value, last: Value) -> Value {
    match function {
        "add_feed" => map2(v, last, |a, b| a + b),
        "sub_feed" => map2(v, last, |a, b| a - b),
        "multiply_by_feed" => map2(v, last, |a, b| a * b),
        "divide_by_feed" => match last {
            Some(l) if l != 0.0 => v.map(|x| x / l),
            _ => None,
        },
        // PHP's loose `>`/`<` with null on either side (null compares as false).
        "max_feed" => {
            if loose_gt(v, last) {
                last
            } else {
                v
            }
        }
        "min_feed" => {
            if loose_gt(last, v) {
                last
            } else {
                v
            }
        }
        _ => v,
    }
}

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

fn power_to_kwh(host: &mut dyn Host, f: u32, t: i64, v: Value) -> Value {
    let power = v?;
    let last = host.feed_last(f);
    let kwh = last.and_then(|l| l.1).unwrap_or(0.0) + power_increment(last.map(|l| l.0), t, power);
    host.feed_post(f, t, t, Some(kwh), true);
    v
}

fn power_to_kwhd(host: &mut dyn Host, f: u32, t: i64, v: Value, tz: Tz) -> Value {
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

fn power_to_kwh_period(host: &mut dyn Host, f: u32, t: i64, v: Value, len: i64, tz: Tz) -> Value {
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

fn input_ontime(host: &mut dyn Host, f: u32, t: i64, v: Value, tz: Tz) -> Value {
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

fn pulse_diff(host: &mut dyn Host, f: u32, t: i64, v: Value) -> Value {
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

fn kwh_to_kwhd(host: &mut dyn Host, f: u32, t: i64, v: Value, tz: Tz) -> Value {
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
fn meter_accumulator(
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
