//! The typed form of a catalog entry: one [`Process`] variant per entry of
//! [`CATALOG`](super::catalog::CATALOG), with its arguments parsed when a list is loaded, so a
//! list that runs for every value never reads text.

use super::catalog::ProcessDef;
use crate::decode::numbers::php_numeric;

/// A process and its parsed arguments: feed and input ids, numbers, the MQTT topic. The
/// retired processes keep no argument: they only pass the value through.
#[derive(Debug, Clone, PartialEq)]
pub enum Process {
    LogToFeed(u32),
    Scale(f64),
    Offset(f64),
    PowerToKwh(u32),
    PowerToKwhd(u32),
    TimesInput(u32),
    InputOntime(u32),
    WhincToKwhd(u32),
    KwhToKwhdOld,
    UpdateFeedData(u32),
    AddInput(u32),
    DivideInput(u32),
    Phaseshift,
    Accumulator(u32),
    RateChange(u32),
    Histogram,
    Average,
    HeatFlux,
    PowerAccToKwhd,
    PulseDiff(u32),
    KwhToPower(u32),
    SubtractInput(u32),
    KwhToKwhd(u32),
    AllowPositive,
    AllowNegative,
    Signed2Unsigned,
    MaxValue(u32),
    MinValue(u32),
    AddFeed(u32),
    SubFeed(u32),
    MultiplyByFeed(u32),
    DivideByFeed(u32),
    Reset2Zero,
    WhAccumulator(u32),
    /// The topic; empty when the list gives none, and then nothing is published.
    PublishToMqtt(String),
    Reset2Null,
    Reset2Original,
    IfZeroSkip,
    IfNotZeroSkip,
    IfNullSkip,
    IfNotNullSkip,
    IfGtSkip(f64),
    IfGtEqualSkip(f64),
    IfLtSkip(f64),
    IfLtEqualSkip(f64),
    IfEqualSkip(f64),
    IfNotEqualSkip(f64),
    /// The 1-based step number as written: the engine applies emoncms's rule for low numbers.
    GotoProcess(i64),
    SourceFeedDataTime(u32),
    AddSourceFeed(u32),
    SubSourceFeed(u32),
    MultiplyBySourceFeed(u32),
    DivideBySourceFeed(u32),
    ReciprocalBySourceFeed(u32),
    ErrorFound,
    MaxValueAllowed(f64),
    MinValueAllowed(f64),
    /// emoncms ignores this process's argument, so it is not kept.
    AbsValue,
    KwhAccumulator(u32),
    LogToFeedJoin(u32),
    MaxInput(u32),
    MinInput(u32),
    MaxFeed(u32),
    MinFeed(u32),
    PowerToKwh15m(u32),
    /// `minutes` is already limited to one minute .. one day.
    PowerToKwhCustom {
        minutes: i64,
        feed: u32,
    },
}

/// A number argument as emoncms uses it: text that is not numeric (or no argument) is 0.
fn number(arg: Option<&str>) -> f64 {
    arg.and_then(php_numeric).unwrap_or(0.0)
}

/// A feed or input id: the number cut to an unsigned integer (a negative one is 0).
fn to_id(arg: Option<&str>) -> u32 {
    number(arg).max(0.0) as u32
}

impl Process {
    /// The typed form of `def` with its stored `args` (missing or extra ones are read as
    /// emoncms reads them). `None` only for an entry without a variant, which the catalog test
    /// rules out.
    pub fn from_def(def: &ProcessDef, args: &[String]) -> Option<Self> {
        let first = args.first().map(String::as_str);
        let id = to_id(first);
        let value = number(first);
        Some(match def.function {
            "log_to_feed" => Self::LogToFeed(id),
            "scale" => Self::Scale(value),
            "offset" => Self::Offset(value),
            "power_to_kwh" => Self::PowerToKwh(id),
            "power_to_kwhd" => Self::PowerToKwhd(id),
            "times_input" => Self::TimesInput(id),
            "input_ontime" => Self::InputOntime(id),
            "whinc_to_kwhd" => Self::WhincToKwhd(id),
            "kwh_to_kwhd_old" => Self::KwhToKwhdOld,
            "update_feed_data" => Self::UpdateFeedData(id),
            "add_input" => Self::AddInput(id),
            "divide_input" => Self::DivideInput(id),
            "phaseshift" => Self::Phaseshift,
            "accumulator" => Self::Accumulator(id),
            "ratechange" => Self::RateChange(id),
            "histogram" => Self::Histogram,
            "average" => Self::Average,
            "heat_flux" => Self::HeatFlux,
            "power_acc_to_kwhd" => Self::PowerAccToKwhd,
            "pulse_diff" => Self::PulseDiff(id),
            "kwh_to_power" => Self::KwhToPower(id),
            "subtract_input" => Self::SubtractInput(id),
            "kwh_to_kwhd" => Self::KwhToKwhd(id),
            "allowpositive" => Self::AllowPositive,
            "allownegative" => Self::AllowNegative,
            "signed2unsigned" => Self::Signed2Unsigned,
            "max_value" => Self::MaxValue(id),
            "min_value" => Self::MinValue(id),
            "add_feed" => Self::AddFeed(id),
            "sub_feed" => Self::SubFeed(id),
            "multiply_by_feed" => Self::MultiplyByFeed(id),
            "divide_by_feed" => Self::DivideByFeed(id),
            "reset2zero" => Self::Reset2Zero,
            "wh_accumulator" => Self::WhAccumulator(id),
            "publish_to_mqtt" => Self::PublishToMqtt(first.unwrap_or_default().to_string()),
            "reset2null" => Self::Reset2Null,
            "reset2original" => Self::Reset2Original,
            "if_zero_skip" => Self::IfZeroSkip,
            "if_not_zero_skip" => Self::IfNotZeroSkip,
            "if_null_skip" => Self::IfNullSkip,
            "if_not_null_skip" => Self::IfNotNullSkip,
            "if_gt_skip" => Self::IfGtSkip(value),
            "if_gt_equal_skip" => Self::IfGtEqualSkip(value),
            "if_lt_skip" => Self::IfLtSkip(value),
            "if_lt_equal_skip" => Self::IfLtEqualSkip(value),
            "if_equal_skip" => Self::IfEqualSkip(value),
            "if_not_equal_skip" => Self::IfNotEqualSkip(value),
            "goto_process" => Self::GotoProcess(value as i64),
            "source_feed_data_time" => Self::SourceFeedDataTime(id),
            "add_source_feed" => Self::AddSourceFeed(id),
            "sub_source_feed" => Self::SubSourceFeed(id),
            "multiply_by_source_feed" => Self::MultiplyBySourceFeed(id),
            "divide_by_source_feed" => Self::DivideBySourceFeed(id),
            "reciprocal_by_source_feed" => Self::ReciprocalBySourceFeed(id),
            "error_found" => Self::ErrorFound,
            "max_value_allowed" => Self::MaxValueAllowed(value),
            "min_value_allowed" => Self::MinValueAllowed(value),
            "abs_value" => Self::AbsValue,
            "kwh_accumulator" => Self::KwhAccumulator(id),
            "log_to_feed_join" => Self::LogToFeedJoin(id),
            "max_input" => Self::MaxInput(id),
            "min_input" => Self::MinInput(id),
            "max_feed" => Self::MaxFeed(id),
            "min_feed" => Self::MinFeed(id),
            "power_to_kwh_15m" => Self::PowerToKwh15m(id),
            "power_to_kwh_custom" => Self::PowerToKwhCustom {
                // One minute to one day: anything else cannot tile a day and could overflow.
                minutes: value.clamp(1.0, 1440.0) as i64,
                feed: to_id(args.get(1).map(String::as_str)),
            },
            _ => return None,
        })
    }

    /// The catalog function this variant runs; its key is `process__<function>`.
    pub fn function(&self) -> &'static str {
        match self {
            Self::LogToFeed(_) => "log_to_feed",
            Self::Scale(_) => "scale",
            Self::Offset(_) => "offset",
            Self::PowerToKwh(_) => "power_to_kwh",
            Self::PowerToKwhd(_) => "power_to_kwhd",
            Self::TimesInput(_) => "times_input",
            Self::InputOntime(_) => "input_ontime",
            Self::WhincToKwhd(_) => "whinc_to_kwhd",
            Self::KwhToKwhdOld => "kwh_to_kwhd_old",
            Self::UpdateFeedData(_) => "update_feed_data",
            Self::AddInput(_) => "add_input",
            Self::DivideInput(_) => "divide_input",
            Self::Phaseshift => "phaseshift",
            Self::Accumulator(_) => "accumulator",
            Self::RateChange(_) => "ratechange",
            Self::Histogram => "histogram",
            Self::Average => "average",
            Self::HeatFlux => "heat_flux",
            Self::PowerAccToKwhd => "power_acc_to_kwhd",
            Self::PulseDiff(_) => "pulse_diff",
            Self::KwhToPower(_) => "kwh_to_power",
            Self::SubtractInput(_) => "subtract_input",
            Self::KwhToKwhd(_) => "kwh_to_kwhd",
            Self::AllowPositive => "allowpositive",
            Self::AllowNegative => "allownegative",
            Self::Signed2Unsigned => "signed2unsigned",
            Self::MaxValue(_) => "max_value",
            Self::MinValue(_) => "min_value",
            Self::AddFeed(_) => "add_feed",
            Self::SubFeed(_) => "sub_feed",
            Self::MultiplyByFeed(_) => "multiply_by_feed",
            Self::DivideByFeed(_) => "divide_by_feed",
            Self::Reset2Zero => "reset2zero",
            Self::WhAccumulator(_) => "wh_accumulator",
            Self::PublishToMqtt(_) => "publish_to_mqtt",
            Self::Reset2Null => "reset2null",
            Self::Reset2Original => "reset2original",
            Self::IfZeroSkip => "if_zero_skip",
            Self::IfNotZeroSkip => "if_not_zero_skip",
            Self::IfNullSkip => "if_null_skip",
            Self::IfNotNullSkip => "if_not_null_skip",
            Self::IfGtSkip(_) => "if_gt_skip",
            Self::IfGtEqualSkip(_) => "if_gt_equal_skip",
            Self::IfLtSkip(_) => "if_lt_skip",
            Self::IfLtEqualSkip(_) => "if_lt_equal_skip",
            Self::IfEqualSkip(_) => "if_equal_skip",
            Self::IfNotEqualSkip(_) => "if_not_equal_skip",
            Self::GotoProcess(_) => "goto_process",
            Self::SourceFeedDataTime(_) => "source_feed_data_time",
            Self::AddSourceFeed(_) => "add_source_feed",
            Self::SubSourceFeed(_) => "sub_source_feed",
            Self::MultiplyBySourceFeed(_) => "multiply_by_source_feed",
            Self::DivideBySourceFeed(_) => "divide_by_source_feed",
            Self::ReciprocalBySourceFeed(_) => "reciprocal_by_source_feed",
            Self::ErrorFound => "error_found",
            Self::MaxValueAllowed(_) => "max_value_allowed",
            Self::MinValueAllowed(_) => "min_value_allowed",
            Self::AbsValue => "abs_value",
            Self::KwhAccumulator(_) => "kwh_accumulator",
            Self::LogToFeedJoin(_) => "log_to_feed_join",
            Self::MaxInput(_) => "max_input",
            Self::MinInput(_) => "min_input",
            Self::MaxFeed(_) => "max_feed",
            Self::MinFeed(_) => "min_feed",
            Self::PowerToKwh15m(_) => "power_to_kwh_15m",
            Self::PowerToKwhCustom { .. } => "power_to_kwh_custom",
        }
    }

    /// Whether the result depends on earlier values (accumulators, energy integration, daily
    /// totals, rates): running it again on an old value would count that value twice.
    pub fn is_stateful(&self) -> bool {
        matches!(
            self,
            Self::PowerToKwh(_)
                | Self::PowerToKwhd(_)
                | Self::InputOntime(_)
                | Self::WhincToKwhd(_)
                | Self::Accumulator(_)
                | Self::RateChange(_)
                | Self::PulseDiff(_)
                | Self::KwhToPower(_)
                | Self::KwhToKwhd(_)
                | Self::MaxValue(_)
                | Self::MinValue(_)
                | Self::WhAccumulator(_)
                | Self::KwhAccumulator(_)
                | Self::PowerToKwh15m(_)
                | Self::PowerToKwhCustom { .. }
        )
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::mem::discriminant;

    use super::*;
    use crate::process::catalog::{CATALOG, lookup};

    /// A stored argument for each of `def`'s: its default, or `1`.
    fn sample_args(def: &ProcessDef) -> Vec<String> {
        def.args
            .iter()
            .map(|a| a.default.unwrap_or("1").to_string())
            .collect()
    }

    #[test]
    fn every_catalog_entry_has_its_own_variant_and_back() {
        let mut variants = HashSet::new();
        for def in CATALOG {
            let args = sample_args(def);
            let Some(process) = Process::from_def(def, &args) else {
                panic!("{} has no variant", def.function);
            };
            assert_eq!(
                process.function(),
                def.function,
                "the variant names its entry"
            );
            assert!(
                variants.insert(discriminant(&process)),
                "{} shares its variant with another entry",
                def.function
            );
            let back = lookup(&format!("process__{}", process.function()));
            assert!(
                back.is_some_and(|d| std::ptr::eq(d, def)),
                "{} does not lead back to its entry",
                def.function
            );
        }
        assert_eq!(variants.len(), CATALOG.len());
    }

    #[test]
    fn stateful_variants_are_the_stateful_processes() {
        let stateful: Vec<&str> = CATALOG
            .iter()
            .filter_map(|d| Process::from_def(d, &sample_args(d)))
            .filter(Process::is_stateful)
            .map(|p| p.function())
            .collect();
        assert_eq!(
            stateful,
            [
                "power_to_kwh",
                "power_to_kwhd",
                "input_ontime",
                "whinc_to_kwhd",
                "accumulator",
                "ratechange",
                "pulse_diff",
                "kwh_to_power",
                "kwh_to_kwhd",
                "max_value",
                "min_value",
                "wh_accumulator",
                "kwh_accumulator",
                "power_to_kwh_15m",
                "power_to_kwh_custom",
            ]
        );
    }

    #[test]
    fn arguments_are_read_as_emoncms_reads_them() {
        let def = |key: &str| lookup(key).expect("in the catalog");
        let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let parse = |key: &str, a: &[&str]| Process::from_def(def(key), &args(a));
        assert_eq!(parse("1", &["5"]), Some(Process::LogToFeed(5)));
        assert_eq!(parse("1", &[" 7 "]), Some(Process::LogToFeed(7)));
        assert_eq!(parse("1", &["-3"]), Some(Process::LogToFeed(0)));
        assert_eq!(parse("1", &["abc"]), Some(Process::LogToFeed(0)));
        assert_eq!(parse("1", &[]), Some(Process::LogToFeed(0)));
        assert_eq!(parse("2", &["0.1"]), Some(Process::Scale(0.1)));
        assert_eq!(parse("2", &["x"]), Some(Process::Scale(0.0)));
        assert_eq!(parse("24", &[""]), Some(Process::AllowPositive));
        assert_eq!(parse("52", &["3.9"]), Some(Process::GotoProcess(3)));
        assert_eq!(
            parse("35", &["house/power"]),
            Some(Process::PublishToMqtt("house/power".into()))
        );
        assert_eq!(
            parse("35", &[]),
            Some(Process::PublishToMqtt(String::new()))
        );
        assert_eq!(
            parse("71", &["30", "7"]),
            Some(Process::PowerToKwhCustom {
                minutes: 30,
                feed: 7
            })
        );
        assert_eq!(
            parse("71", &["0"]),
            Some(Process::PowerToKwhCustom {
                minutes: 1,
                feed: 0
            })
        );
    }
}
