//! The process catalog: every process a list may contain, with its emoncms id, key, argument
//! types and the contexts it may run in. `process/list.json` and `process/map.json` are built
//! from this table, and list validation checks against it.
//!
//! The retired ids (9, 13, 16–19) are kept, as in emoncms, as steps that pass the value through
//! so old lists still run; they can no longer be added. Left out: the optional `schedule__*`
//! and `eventp__*` modules, which need the schedule editor and e-mail delivery that ynni does
//! not have yet.

/// emoncms's `ProcessArg` codes, as `process/list.json` reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArgType {
    Value = 0,
    InputId = 1,
    FeedId = 2,
    None = 3,
    Text = 4,
    ScheduleId = 5,
}

/// Feed engine ids (emoncms's `Engine` enum).
pub mod engine {
    pub const MYSQL: u8 = 0;
    pub const PHPTIMESERIES: u8 = 2;
    pub const PHPFINA: u8 = 5;
    pub const VIRTUAL: u8 = 7;
    pub const MYSQLMEMORY: u8 = 8;
    pub const CASSANDRA: u8 = 10;
}

#[derive(Debug, Clone, Copy)]
pub struct ArgSpec {
    pub kind: ArgType,
    /// For feed arguments: the engines the UI offers (not enforced, as in emoncms).
    pub engines: &'static [u8],
    pub default: Option<&'static str>,
    pub unit: Option<&'static str>,
}

/// Where a list runs: on an input's values, or over a virtual feed's query grid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Context {
    Input,
    VirtualFeed,
}

#[derive(Debug, Clone, Copy)]
pub struct ProcessDef {
    pub id: Option<u32>,
    /// The function name; the key is `process__<function>`.
    pub function: &'static str,
    pub name: &'static str,
    pub short: &'static str,
    pub group: &'static str,
    pub args: &'static [ArgSpec],
    pub input_context: bool,
    pub virtual_context: bool,
    /// Feed-writing processes: the UI shows their feed as fixed.
    pub nochange: bool,
    pub description: &'static str,
    pub unit: Option<&'static str>,
    /// Retired: runs as a pass-through, cannot be added to a list.
    pub deleted: bool,
}

impl ProcessDef {
    pub fn key(&self) -> String {
        format!("process__{}", self.function)
    }

    pub fn allowed_in(&self, ctx: Context) -> bool {
        match ctx {
            Context::Input => self.input_context,
            Context::VirtualFeed => self.virtual_context,
        }
    }
}

use engine::*;

const LOG_ENGINES: &[u8] = &[PHPFINA, PHPTIMESERIES, MYSQL, MYSQLMEMORY, CASSANDRA];
const FINA_TS: &[u8] = &[PHPFINA, PHPTIMESERIES];
const FINA_TS_SQL: &[u8] = &[PHPFINA, PHPTIMESERIES, MYSQL, MYSQLMEMORY];
const DAILY: &[u8] = &[PHPTIMESERIES, MYSQL, MYSQLMEMORY];
const ANY: &[u8] = &[
    PHPFINA,
    PHPTIMESERIES,
    MYSQL,
    MYSQLMEMORY,
    CASSANDRA,
    VIRTUAL,
];

const fn feed(engines: &'static [u8], unit: Option<&'static str>) -> ArgSpec {
    ArgSpec {
        kind: ArgType::FeedId,
        engines,
        default: None,
        unit,
    }
}

const fn value(default: Option<&'static str>) -> ArgSpec {
    ArgSpec {
        kind: ArgType::Value,
        engines: &[],
        default,
        unit: None,
    }
}

const INPUT: ArgSpec = ArgSpec {
    kind: ArgType::InputId,
    engines: &[],
    default: None,
    unit: None,
};
const NONE: ArgSpec = ArgSpec {
    kind: ArgType::None,
    engines: &[],
    default: None,
    unit: None,
};
const TEXT: ArgSpec = ArgSpec {
    kind: ArgType::Text,
    engines: &[],
    default: None,
    unit: None,
};

#[allow(clippy::too_many_arguments)]
const fn def(
    id: u32,
    function: &'static str,
    name: &'static str,
    short: &'static str,
    group: &'static str,
    args: &'static [ArgSpec],
    input_context: bool,
    virtual_context: bool,
    nochange: bool,
    description: &'static str,
) -> ProcessDef {
    ProcessDef {
        id: Some(id),
        function,
        name,
        short,
        group,
        args,
        input_context,
        virtual_context,
        nochange,
        description,
        unit: None,
        deleted: false,
    }
}

const fn retired(id: u32, function: &'static str, args: &'static [ArgSpec]) -> ProcessDef {
    ProcessDef {
        id: Some(id),
        function,
        name: function,
        short: function,
        group: "Deleted",
        args,
        input_context: true,
        virtual_context: false,
        nochange: false,
        description: "Retired; passes the value through.",
        unit: None,
        deleted: true,
    }
}

const I: bool = true;
const V: bool = true;
const NO: bool = false;

/// The catalog, in id order.
pub static CATALOG: &[ProcessDef] = &[
    def(
        1,
        "log_to_feed",
        "Log to feed",
        "log",
        "Main",
        &[feed(LOG_ENGINES, None)],
        I,
        NO,
        true,
        "Stores the value in a feed at the packet time.",
    ),
    def(
        2,
        "scale",
        "x",
        "x",
        "Calibration",
        &[value(Some("1"))],
        I,
        V,
        false,
        "Multiplies the value by a constant.",
    ),
    def(
        3,
        "offset",
        "+",
        "+",
        "Calibration",
        &[value(Some("0"))],
        I,
        V,
        false,
        "Adds a constant to the value.",
    ),
    def(
        4,
        "power_to_kwh",
        "Power to kWh",
        "kwh",
        "Power & Energy",
        &[feed(FINA_TS_SQL, Some("kWh"))],
        I,
        NO,
        true,
        "Integrates power (W) into a cumulative kWh feed; gaps of 2 h or more add nothing.",
    ),
    def(
        5,
        "power_to_kwhd",
        "Power to kWh/d",
        "kwhd",
        "Power & Energy",
        &[feed(DAILY, Some("kWh"))],
        I,
        NO,
        true,
        "Integrates power (W) into kWh per local day.",
    ),
    def(
        6,
        "times_input",
        "x input",
        "x inp",
        "Input",
        &[INPUT],
        I,
        NO,
        false,
        "Multiplies the value by another input's last value.",
    ),
    def(
        7,
        "input_ontime",
        "Input On-time",
        "ontime",
        "Input",
        &[feed(DAILY, None)],
        I,
        NO,
        true,
        "Seconds per local day during which the value was above zero.",
    ),
    def(
        8,
        "whinc_to_kwhd",
        "Wh increments to kWh/d",
        "whinckwhd",
        "Power & Energy",
        &[feed(DAILY, Some("kWh"))],
        I,
        NO,
        true,
        "Sums Wh increments into kWh per local day.",
    ),
    retired(9, "kwh_to_kwhd_old", &[feed(ANY, None)]),
    def(
        10,
        "update_feed_data",
        "Update feed @time",
        "update",
        "Input",
        &[feed(&[MYSQL, MYSQLMEMORY], None)],
        I,
        NO,
        true,
        "Stores the value at the start of the local day.",
    ),
    def(
        11,
        "add_input",
        "+ input",
        "+ inp",
        "Input",
        &[INPUT],
        I,
        NO,
        false,
        "Adds another input's last value.",
    ),
    def(
        12,
        "divide_input",
        "/ input",
        "/ inp",
        "Input",
        &[INPUT],
        I,
        NO,
        false,
        "Divides by another input's last value (missing when it is not above zero).",
    ),
    retired(13, "phaseshift", &[value(None)]),
    def(
        14,
        "accumulator",
        "Accumulator",
        "accumulate",
        "Misc",
        &[feed(FINA_TS_SQL, None)],
        I,
        NO,
        true,
        "Adds the value to the feed's running total and passes the total on.",
    ),
    def(
        15,
        "ratechange",
        "Rate of change",
        "rate",
        "Misc",
        &[feed(FINA_TS, None)],
        I,
        NO,
        true,
        "Stores the change since the previous value.",
    ),
    retired(16, "histogram", &[feed(ANY, None)]),
    retired(17, "average", &[feed(ANY, None)]),
    retired(18, "heat_flux", &[feed(ANY, None)]),
    retired(19, "power_acc_to_kwhd", &[feed(ANY, None)]),
    def(
        20,
        "pulse_diff",
        "Total pulse count to pulse increment",
        "pulsdiff",
        "Pulse",
        &[feed(FINA_TS, None)],
        I,
        NO,
        true,
        "Stores a 16-bit pulse counter and passes on the increment.",
    ),
    def(
        21,
        "kwh_to_power",
        "kWh to Power",
        "kwhpwr",
        "Power & Energy",
        &[feed(FINA_TS, Some("W"))],
        I,
        NO,
        true,
        "Derives power (W) from a cumulative kWh value.",
    ),
    def(
        22,
        "subtract_input",
        "- input",
        "- inp",
        "Input",
        &[INPUT],
        I,
        NO,
        false,
        "Subtracts another input's last value.",
    ),
    def(
        23,
        "kwh_to_kwhd",
        "kWh to kWh/d",
        "kwhkwhd",
        "Power & Energy",
        &[feed(&[PHPTIMESERIES], Some("kWh"))],
        I,
        NO,
        true,
        "Turns a cumulative kWh meter reading into kWh per local day; resets are ignored.",
    ),
    def(
        24,
        "allowpositive",
        "Allow positive",
        "> 0",
        "Limits",
        &[NONE],
        I,
        V,
        false,
        "Negative values become 0.",
    ),
    def(
        25,
        "allownegative",
        "Allow negative",
        "< 0",
        "Limits",
        &[NONE],
        I,
        V,
        false,
        "Positive values become 0.",
    ),
    def(
        26,
        "signed2unsigned",
        "Signed to unsigned",
        "unsign",
        "Misc",
        &[NONE],
        I,
        V,
        false,
        "Adds 65536 to negative values (16-bit counters).",
    ),
    def(
        27,
        "max_value",
        "Max value",
        "max",
        "Misc",
        &[feed(DAILY, None)],
        I,
        NO,
        true,
        "Daily maximum, stored at the start of the local day.",
    ),
    def(
        28,
        "min_value",
        "Min value",
        "min",
        "Misc",
        &[feed(DAILY, None)],
        I,
        NO,
        true,
        "Daily minimum, stored at the start of the local day.",
    ),
    def(
        29,
        "add_feed",
        "+ feed",
        "+ feed",
        "Feed",
        &[feed(ANY, None)],
        I,
        NO,
        false,
        "Adds a feed's last value.",
    ),
    def(
        30,
        "sub_feed",
        "- feed",
        "- feed",
        "Feed",
        &[feed(ANY, None)],
        I,
        NO,
        false,
        "Subtracts a feed's last value.",
    ),
    def(
        31,
        "multiply_by_feed",
        "x feed",
        "x feed",
        "Feed",
        &[feed(ANY, None)],
        I,
        NO,
        false,
        "Multiplies by a feed's last value.",
    ),
    def(
        32,
        "divide_by_feed",
        "/ feed",
        "/ feed",
        "Feed",
        &[feed(ANY, None)],
        I,
        NO,
        false,
        "Divides by a feed's last value.",
    ),
    def(
        33,
        "reset2zero",
        "Reset to ZERO",
        "0",
        "Misc",
        &[NONE],
        I,
        V,
        false,
        "The value becomes 0.",
    ),
    def(
        34,
        "wh_accumulator",
        "Wh Accumulator",
        "whacc",
        "Power & Energy",
        &[feed(FINA_TS, Some("Wh"))],
        I,
        NO,
        true,
        "Keeps a Wh total from a meter reading that may reset, skipping implausible jumps.",
    ),
    def(
        35,
        "publish_to_mqtt",
        "Publish to MQTT",
        "mqtt",
        "Misc",
        &[TEXT],
        I,
        NO,
        false,
        "Publishes the value to an MQTT topic of the account.",
    ),
    def(
        36,
        "reset2null",
        "Reset to NULL",
        "null",
        "Misc",
        &[NONE],
        I,
        V,
        false,
        "The value becomes missing.",
    ),
    def(
        37,
        "reset2original",
        "Reset to Original",
        "ori",
        "Misc",
        &[NONE],
        I,
        V,
        false,
        "The value becomes the one the list started with.",
    ),
    def(
        42,
        "if_zero_skip",
        "If ZERO, skip next",
        "0? skip",
        "Conditional",
        &[NONE],
        I,
        V,
        false,
        "Skips the next step when the value is 0.",
    ),
    def(
        43,
        "if_not_zero_skip",
        "If !ZERO, skip next",
        "!0? skip",
        "Conditional",
        &[NONE],
        I,
        V,
        false,
        "Skips the next step when the value is not 0.",
    ),
    def(
        44,
        "if_null_skip",
        "If NULL, skip next",
        "null? skip",
        "Conditional",
        &[NONE],
        I,
        V,
        false,
        "Skips the next step when the value is missing.",
    ),
    def(
        45,
        "if_not_null_skip",
        "If !NULL, skip next",
        "!null? skip",
        "Conditional",
        &[NONE],
        I,
        V,
        false,
        "Skips the next step when the value is present.",
    ),
    def(
        46,
        "if_gt_skip",
        "If >, skip next",
        ">? skip",
        "Conditional - User value",
        &[value(None)],
        I,
        V,
        false,
        "Skips the next step when the value is greater.",
    ),
    def(
        47,
        "if_gt_equal_skip",
        "If >=, skip next",
        ">=? skip",
        "Conditional - User value",
        &[value(None)],
        I,
        V,
        false,
        "Skips the next step when the value is greater or equal.",
    ),
    def(
        48,
        "if_lt_skip",
        "If <, skip next",
        "<? skip",
        "Conditional - User value",
        &[value(None)],
        I,
        V,
        false,
        "Skips the next step when the value is smaller.",
    ),
    def(
        49,
        "if_lt_equal_skip",
        "If <=, skip next",
        "<=? skip",
        "Conditional - User value",
        &[value(None)],
        I,
        V,
        false,
        "Skips the next step when the value is smaller or equal.",
    ),
    def(
        50,
        "if_equal_skip",
        "If =, skip next",
        "=? skip",
        "Conditional - User value",
        &[value(None)],
        I,
        V,
        false,
        "Skips the next step when the value is equal.",
    ),
    def(
        51,
        "if_not_equal_skip",
        "If !=, skip next",
        "!=? skip",
        "Conditional - User value",
        &[value(None)],
        I,
        V,
        false,
        "Skips the next step when the value differs.",
    ),
    def(
        52,
        "goto_process",
        "GOTO",
        "GOTO",
        "Conditional - User value",
        &[value(None)],
        I,
        V,
        false,
        "Continues at the given step number.",
    ),
    def(
        53,
        "source_feed_data_time",
        "Source Feed",
        "sfeed",
        "Virtual",
        &[feed(&[PHPFINA, PHPTIMESERIES], None)],
        NO,
        V,
        false,
        "The source feed's value at this point of the query.",
    ),
    def(
        55,
        "add_source_feed",
        "+ source feed",
        "+sfeed",
        "Virtual",
        &[feed(&[PHPFINA, PHPTIMESERIES], None)],
        NO,
        V,
        false,
        "Adds the source feed's value.",
    ),
    def(
        56,
        "sub_source_feed",
        "- source feed",
        "-sfeed",
        "Virtual",
        &[feed(&[PHPFINA, PHPTIMESERIES], None)],
        NO,
        V,
        false,
        "Subtracts the source feed's value.",
    ),
    def(
        57,
        "multiply_by_source_feed",
        "x source feed",
        "xsfeed",
        "Virtual",
        &[feed(&[PHPFINA, PHPTIMESERIES], None)],
        NO,
        V,
        false,
        "Multiplies by the source feed's value.",
    ),
    def(
        58,
        "divide_by_source_feed",
        "/ source feed",
        "/sfeed",
        "Virtual",
        &[feed(&[PHPFINA, PHPTIMESERIES], None)],
        NO,
        V,
        false,
        "Divides by the source feed's value.",
    ),
    def(
        59,
        "reciprocal_by_source_feed",
        "1/ source feed",
        "1/sfeed",
        "Virtual",
        &[feed(&[PHPFINA, PHPTIMESERIES], None)],
        NO,
        V,
        false,
        "One divided by the source feed's value.",
    ),
    // emoncms has no number for it: stored as `process__error_found`. It may run anywhere and be
    // re-saved (a disabled list is sent back as it is), but is not offered in editors.
    ProcessDef {
        id: None,
        function: "error_found",
        name: "Error found",
        short: "error",
        group: "Hidden",
        args: &[NONE],
        input_context: true,
        virtual_context: true,
        nochange: false,
        description: "Stops the list (set when a list loops).",
        unit: None,
        deleted: false,
    },
    def(
        61,
        "max_value_allowed",
        "Max value allowed",
        "<max",
        "Limits",
        &[value(None)],
        I,
        V,
        false,
        "Caps the value.",
    ),
    def(
        62,
        "min_value_allowed",
        "Min value allowed",
        ">min",
        "Limits",
        &[value(None)],
        I,
        V,
        false,
        "Floors the value.",
    ),
    def(
        63,
        "abs_value",
        "Absolute value",
        "abs",
        "Calibration",
        &[value(None)],
        I,
        V,
        false,
        "The absolute value (the argument is ignored, as in emoncms).",
    ),
    def(
        64,
        "kwh_accumulator",
        "kWh Accumulator",
        "kwhacc",
        "Power & Energy",
        &[feed(FINA_TS, Some("kWh"))],
        I,
        NO,
        true,
        "Keeps a kWh total from a meter reading that may reset, skipping implausible jumps.",
    ),
    def(
        65,
        "log_to_feed_join",
        "Log to feed (Join)",
        "log join",
        "Main",
        &[feed(LOG_ENGINES, None)],
        I,
        NO,
        true,
        "Stores the value, filling a gap with a straight line.",
    ),
    def(
        66,
        "max_input",
        "Max by input",
        "max inp",
        "Input",
        &[INPUT],
        I,
        NO,
        false,
        "Caps the value at another input's last value.",
    ),
    def(
        67,
        "min_input",
        "Min by input",
        "min inp",
        "Input",
        &[INPUT],
        I,
        NO,
        false,
        "Floors the value at another input's last value.",
    ),
    def(
        68,
        "max_feed",
        "Max by feed",
        "max feed",
        "Feed",
        &[feed(ANY, None)],
        I,
        NO,
        false,
        "Caps the value at a feed's last value.",
    ),
    def(
        69,
        "min_feed",
        "Min by feed",
        "min feed",
        "Feed",
        &[feed(ANY, None)],
        I,
        NO,
        false,
        "Floors the value at a feed's last value.",
    ),
    def(
        70,
        "power_to_kwh_15m",
        "Power to kWh per 15 min",
        "kwh15m",
        "Power & Energy",
        &[feed(DAILY, Some("kWh"))],
        I,
        NO,
        true,
        "Integrates power (W) into kWh per quarter hour.",
    ),
    def(
        71,
        "power_to_kwh_custom",
        "Power to kWh per period",
        "kwhcust",
        "Power & Energy",
        &[value(Some("30")), feed(DAILY, Some("kWh"))],
        I,
        NO,
        true,
        "Integrates power (W) into kWh per period of the given minutes.",
    ),
];

/// A process by its key (`process__scale`) or its numeric id as text (`2`).
pub fn lookup(key: &str) -> Option<&'static ProcessDef> {
    if let Ok(id) = key.parse::<u32>() {
        return CATALOG.iter().find(|d| d.id == Some(id));
    }
    let function = key.strip_prefix("process__")?;
    CATALOG.iter().find(|d| d.function == function)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_keys_are_unique_and_found() {
        let mut ids: Vec<u32> = CATALOG.iter().filter_map(|d| d.id).collect();
        let n = ids.len();
        ids.dedup();
        assert_eq!(ids.len(), n);
        assert_eq!(lookup("1").map(|d| d.function), Some("log_to_feed"));
        assert_eq!(
            lookup("process__kwh_accumulator").and_then(|d| d.id),
            Some(64)
        );
        assert!(
            lookup("9").is_some_and(|d| d.deleted),
            "retired ids still run"
        );
        assert_eq!(lookup("process__error_found").map(|d| d.id), Some(None));
        assert!(lookup("process__nosuch").is_none());
        assert!(lookup("scale").is_none());
        assert_eq!(lookup("71").map(|d| d.args.len()), Some(2));
    }
}
