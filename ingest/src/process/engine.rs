//! Runs a process list over one value, as emoncms's `Process::input` does: each step's result
//! is the next step's input; conditionals skip the next step; `goto` jumps; an unknown key or
//! a step not allowed in the context stops the whole list; a list that runs more than twice
//! its length of steps is stopped and reported (the shard worker then disables it).
//!
//! Everything the processes touch (feeds, other inputs, process state, MQTT) goes through
//! [`Host`], so the engine is pure and deterministic: the same inputs and state give the same
//! writes, which WAL replay relies on.

use chrono_tz::Tz;
use ynni_storage::query::day_start;

use super::catalog::Context;
use super::energy;
use super::parsed::ProcessList;
use super::php::{arg_cmp, loose_cmp, loose_gt, map2};
use super::typed::Process;
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

/// Runs the stored list `list` on `value` at packet time `time`. It parses the text first: a
/// list that runs for many values is parsed once and given to [`run_list`].
pub fn run(list: &str, time: i64, value: Value, ctx: Context, host: &mut dyn Host) -> Outcome {
    run_list(&ProcessList::parse(list), time, value, ctx, host)
}

/// Runs a parsed list on `value` at packet time `time`.
pub fn run_list(
    list: &ProcessList,
    time: i64,
    value: Value,
    ctx: Context,
    host: &mut dyn Host,
) -> Outcome {
    let steps = list.steps();
    let initial = value;
    let mut v = value;
    let mut i = 0;
    let mut executed = 0;
    while i < steps.len() {
        let step = &steps[i];
        let Some(process) = step.runnable_in(ctx) else {
            return Outcome::Aborted {
                step: i,
                key: step.key().to_string(),
            };
        };
        i += 1;
        executed += 1;
        let mut skip_next = false;
        let t = time;
        let tz = host.tz();
        v = match *process {
            // Retired: they pass the value through so that old lists still run.
            Process::KwhToKwhdOld
            | Process::Phaseshift
            | Process::Histogram
            | Process::Average
            | Process::HeatFlux
            | Process::PowerAccToKwhd => v,
            Process::LogToFeed(f) => {
                host.feed_post(f, t, t, v, false);
                v
            }
            Process::LogToFeedJoin(f) => {
                host.feed_post(f, t, t, v, true);
                v
            }
            Process::Scale(x) => v.map(|a| a * x),
            Process::Offset(x) => v.map(|a| a + x),
            Process::PowerToKwh(f) => energy::power_to_kwh(host, f, t, v),
            Process::PowerToKwhd(f) => energy::power_to_kwhd(host, f, t, v, tz),
            Process::TimesInput(n) => map2(v, host.input_last(n).flatten(), |a, b| a * b),
            Process::AddInput(n) => map2(v, host.input_last(n).flatten(), |a, b| a + b),
            Process::SubtractInput(n) => map2(v, host.input_last(n).flatten(), |a, b| a - b),
            Process::DivideInput(n) => match host.input_last(n).flatten() {
                Some(last) if last > 0.0 => v.map(|x| x / last),
                _ => None,
            },
            Process::InputOntime(f) => energy::input_ontime(host, f, t, v, tz),
            Process::WhincToKwhd(f) => energy::whinc_to_kwhd(host, f, t, v, tz),
            Process::UpdateFeedData(f) => {
                host.feed_post(f, t, day_start(t, tz), v, false);
                v
            }
            Process::Accumulator(f) => energy::accumulator(host, f, t, v),
            Process::RateChange(f) => energy::rate_change(host, f, t, v),
            Process::PulseDiff(f) => energy::pulse_diff(host, f, t, v),
            Process::KwhToPower(f) => energy::kwh_to_power(host, f, t, v),
            Process::KwhToKwhd(f) => energy::kwh_to_kwhd(host, f, t, v, tz),
            Process::AllowPositive => match v {
                Some(x) if x < 0.0 => Some(0.0),
                other => other,
            },
            Process::AllowNegative => match v {
                Some(x) if x > 0.0 => Some(0.0),
                other => other,
            },
            Process::Signed2Unsigned => match v {
                Some(x) if x < 0.0 => Some(x + 65536.0),
                other => other,
            },
            Process::MaxValue(f) => energy::daily_extreme(host, f, t, v, tz, f64::gt),
            Process::MinValue(f) => energy::daily_extreme(host, f, t, v, tz, f64::lt),
            Process::AddFeed(f) => feed_operand(host, f, v, Operand::Add),
            Process::SubFeed(f) => feed_operand(host, f, v, Operand::Sub),
            Process::MultiplyByFeed(f) => feed_operand(host, f, v, Operand::Mul),
            Process::DivideByFeed(f) => feed_operand(host, f, v, Operand::Div),
            Process::MaxFeed(f) => feed_operand(host, f, v, Operand::Max),
            Process::MinFeed(f) => feed_operand(host, f, v, Operand::Min),
            Process::MaxInput(n) => input_operand(host, n, v, Operand::Max),
            Process::MinInput(n) => input_operand(host, n, v, Operand::Min),
            Process::Reset2Zero => Some(0.0),
            Process::Reset2Null => None,
            Process::Reset2Original => initial,
            Process::WhAccumulator(f) => {
                energy::meter_accumulator(host, StateKind::WhAccumulator, f, t, v, 3600.0)
            }
            Process::KwhAccumulator(f) => {
                energy::meter_accumulator(host, StateKind::KwhAccumulator, f, t, v, 3_600_000.0)
            }
            Process::PublishToMqtt(ref topic) => {
                if !topic.is_empty() {
                    host.publish(topic, v);
                }
                v
            }
            Process::IfZeroSkip => {
                skip_next = loose_cmp(v, 0.0).is_eq();
                v
            }
            Process::IfNotZeroSkip => {
                skip_next = !loose_cmp(v, 0.0).is_eq();
                v
            }
            Process::IfNullSkip => {
                skip_next = v.is_none();
                v
            }
            Process::IfNotNullSkip => {
                skip_next = v.is_some();
                v
            }
            Process::IfGtSkip(x) => {
                skip_next = arg_cmp(v, x).is_gt();
                v
            }
            Process::IfGtEqualSkip(x) => {
                skip_next = arg_cmp(v, x).is_ge();
                v
            }
            Process::IfLtSkip(x) => {
                skip_next = arg_cmp(v, x).is_lt();
                v
            }
            Process::IfLtEqualSkip(x) => {
                skip_next = arg_cmp(v, x).is_le();
                v
            }
            Process::IfEqualSkip(x) => {
                skip_next = arg_cmp(v, x).is_eq();
                v
            }
            Process::IfNotEqualSkip(x) => {
                skip_next = !arg_cmp(v, x).is_eq();
                v
            }
            Process::GotoProcess(n) => {
                // emoncms: step n (1-based) for n >= 2; anything lower lands on step 2.
                i = if n >= 2 { (n - 1) as usize } else { 1 };
                v
            }
            Process::SourceFeedDataTime(f) => host.source_value(f),
            Process::AddSourceFeed(f) => map2(v, host.source_value(f), |a, b| a + b),
            Process::SubSourceFeed(f) => map2(v, host.source_value(f), |a, b| a - b),
            Process::MultiplyBySourceFeed(f) => map2(v, host.source_value(f), |a, b| a * b),
            Process::DivideBySourceFeed(f) => match host.source_value(f) {
                Some(s) if s != 0.0 => v.map(|x| x / s),
                _ => None,
            },
            Process::ReciprocalBySourceFeed(f) => match (v, host.source_value(f)) {
                // emoncms: a loose-null (missing or 0) value or source gives null.
                (Some(x), Some(s)) if x != 0.0 && s != 0.0 => Some(1.0 / s),
                _ => None,
            },
            Process::ErrorFound => return Outcome::Done(v),
            Process::MaxValueAllowed(m) => match v {
                Some(x) if x > m => Some(m),
                other => other,
            },
            Process::MinValueAllowed(m) => {
                if arg_cmp(v, m).is_lt() {
                    Some(m)
                } else {
                    v
                }
            }
            Process::AbsValue => v.map(f64::abs),
            Process::PowerToKwh15m(f) => energy::power_to_kwh_period(host, f, t, v, 15 * 60, tz),
            Process::PowerToKwhCustom { minutes, feed } => {
                energy::power_to_kwh_period(host, feed, t, v, minutes * 60, tz)
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

/// The arithmetic of the processes that take a feed's or another input's last value.
#[derive(Debug, Clone, Copy)]
enum Operand {
    Add,
    Sub,
    Mul,
    Div,
    Max,
    Min,
}

impl Operand {
    fn apply(self, v: Value, last: Value) -> Value {
        match self {
            Self::Add => map2(v, last, |a, b| a + b),
            Self::Sub => map2(v, last, |a, b| a - b),
            Self::Mul => map2(v, last, |a, b| a * b),
            Self::Div => match last {
                Some(l) if l != 0.0 => v.map(|x| x / l),
                _ => None,
            },
            // PHP's loose `>`/`<` with null on either side (null compares as false).
            Self::Max => {
                if loose_gt(v, last) {
                    last
                } else {
                    v
                }
            }
            Self::Min => {
                if loose_gt(last, v) {
                    last
                } else {
                    v
                }
            }
        }
    }
}

/// A missing feed passes the value through; an existing one without data is a missing
/// operand, as in emoncms, except as a limit: emoncms's `max_feed`/`min_feed` multiply the
/// feed's value by 1 first, which makes a missing one 0.
fn feed_operand(host: &mut dyn Host, f: u32, v: Value, op: Operand) -> Value {
    if host.feed_exists(f) {
        let last = host.feed_last(f).and_then(|l| l.1);
        let last = match op {
            Operand::Max | Operand::Min => Some(last.unwrap_or(0.0)),
            _ => last,
        };
        op.apply(v, last)
    } else {
        v
    }
}

/// A missing input passes the value through; one without a value is a missing operand.
fn input_operand(host: &mut dyn Host, n: u32, v: Value, op: Operand) -> Value {
    match host.input_last(n) {
        None => v,
        Some(last) => op.apply(v, last),
    }
}
