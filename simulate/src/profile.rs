//! What a simulated device measures: the input names of real hardware (an emonTx4 through
//! emonhub, a heat pump monitor, a solar PV monitor) and values with the shape of a real day
//! (night base load, morning and evening peaks, sunshine at noon), counters that only grow,
//! and a little noise. Values depend only on (seed, device, input, reading number), so two
//! runs with the same seed send the same data whatever the timing.

use clap::ValueEnum;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Profile {
    /// emonTx4 on USB through emonhub: MSG, Vrms, P1..P6, E1..E6 (Wh), T1..T3, pulse.
    Emontx4,
    /// A heat pump monitor: electric and heat power, flow/return/outside temperatures, kWh.
    Heatpump,
    /// Solar PV with import/export: generation, use, import, and their kWh counters.
    Solar,
}

const EMONTX4: &[&str] = &[
    "MSG", "Vrms", "P1", "P2", "P3", "P4", "P5", "P6", "E1", "E2", "E3", "E4", "E5", "E6", "T1",
    "T2", "T3", "pulse",
];
const HEATPUMP: &[&str] = &[
    "heatpump_elec",
    "heatpump_heat",
    "heatpump_flowT",
    "heatpump_returnT",
    "heatpump_outsideT",
    "heatpump_elec_kwh",
    "heatpump_heat_kwh",
];
const SOLAR: &[&str] = &[
    "solar",
    "use",
    "import",
    "solar_kwh",
    "use_kwh",
    "import_kwh",
];

impl Profile {
    /// The node name of device `n`, as emonhub would name it.
    pub fn node(self, n: usize) -> String {
        match self {
            Profile::Emontx4 => format!("emonTx4_{n}"),
            Profile::Heatpump => format!("heatpump_{n}"),
            Profile::Solar => format!("solarpv_{n}"),
        }
    }

    fn names(self) -> &'static [&'static str] {
        match self {
            Profile::Emontx4 => EMONTX4,
            Profile::Heatpump => HEATPUMP,
            Profile::Solar => SOLAR,
        }
    }

    /// The first `k` input names (the profile's own set when `None`); beyond the profile's
    /// names, extra power-like channels `X<n>` follow.
    pub fn inputs(self, k: Option<usize>) -> Vec<String> {
        let own = self.names();
        let k = k.unwrap_or(own.len());
        (0..k)
            .map(|i| match own.get(i) {
                Some(name) => (*name).to_string(),
                None => format!("X{}", i + 1),
            })
            .collect()
    }
}

/// One device's readings over time: counters (energy, pulses) accumulate between readings.
pub struct Device {
    profile: Profile,
    seed: u64,
    device: u64,
    names: Vec<String>,
    reading: u64,
    counters: Vec<f64>,
}

impl Device {
    pub fn new(profile: Profile, seed: u64, device: u64, names: Vec<String>) -> Self {
        let counters = vec![0.0; names.len()];
        Self {
            profile,
            seed,
            device,
            names,
            reading: 0,
            counters,
        }
    }

    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// The next reading at Unix time `t`, `interval` seconds after the previous one.
    pub fn read(&mut self, t: f64, interval: f64) -> Vec<f64> {
        self.reading += 1;
        let hour = (t.rem_euclid(86_400.0)) / 3600.0;
        let mut out = Vec::with_capacity(self.names.len());
        for i in 0..self.names.len() {
            let v = self.value(i, hour, interval);
            out.push(v);
        }
        out
    }

    /// Noise in [-1, 1], a pure function of the seed, device, input and reading.
    fn noise(&self, input: usize) -> f64 {
        let h = mix(self.seed ^ mix(self.device ^ mix(input as u64 ^ mix(self.reading))));
        (h >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
    }

    fn value(&mut self, i: usize, hour: f64, interval: f64) -> f64 {
        let n = self.noise(i);
        let name = self.names[i].as_str();
        let house = house_load(hour, self.device);
        let v = match (self.profile, name) {
            (Profile::Emontx4, "MSG") => return self.reading as f64,
            (Profile::Emontx4, "Vrms") => {
                240.0 + 3.0 * (hour / 24.0 * std::f64::consts::TAU).sin() + n
            }
            (Profile::Emontx4, p) if p.starts_with('P') => {
                let share = channel_share(p);
                (house * share + 15.0 * n).max(0.0)
            }
            (Profile::Emontx4, e) if e.starts_with('E') => {
                let share = channel_share(e);
                return self.accumulate(i, house * share * interval / 3600.0, 1.0);
            }
            (Profile::Emontx4, t) if t.starts_with('T') => indoor(hour) + 0.2 * n,
            (Profile::Emontx4, "pulse") => {
                // 1 pulse per Wh of the whole house; the fraction carries to the next reading.
                self.counters[i] += house * interval / 3600.0;
                return self.counters[i].floor();
            }
            (Profile::Heatpump, "heatpump_outsideT") => outside(hour) + 0.3 * n,
            (Profile::Heatpump, "heatpump_flowT") => 35.0 + 0.8 * (18.0 - outside(hour)) + 0.3 * n,
            (Profile::Heatpump, "heatpump_returnT") => {
                31.0 + 0.6 * (18.0 - outside(hour)) + 0.3 * n
            }
            (Profile::Heatpump, "heatpump_elec") => heatpump_elec(hour) + 20.0 * n,
            (Profile::Heatpump, "heatpump_heat") => heatpump_elec(hour) * cop(hour) + 60.0 * n,
            (Profile::Heatpump, "heatpump_elec_kwh") => {
                return self.accumulate(i, heatpump_elec(hour) * interval / 3.6e6, 1000.0);
            }
            (Profile::Heatpump, "heatpump_heat_kwh") => {
                let w = heatpump_elec(hour) * cop(hour);
                return self.accumulate(i, w * interval / 3.6e6, 1000.0);
            }
            (Profile::Solar, "solar") => solar(hour, self.device) * (1.0 + 0.05 * n),
            (Profile::Solar, "use") => house + 15.0 * n,
            (Profile::Solar, "import") => (house - solar(hour, self.device)).max(0.0),
            (Profile::Solar, "solar_kwh") => {
                return self.accumulate(i, solar(hour, self.device) * interval / 3.6e6, 1000.0);
            }
            (Profile::Solar, "use_kwh") => {
                return self.accumulate(i, house * interval / 3.6e6, 1000.0);
            }
            (Profile::Solar, "import_kwh") => {
                let w = (house - solar(hour, self.device)).max(0.0);
                return self.accumulate(i, w * interval / 3.6e6, 1000.0);
            }
            // Extra channels beyond the profile's own: more power readings.
            _ => (house * 0.1 + 5.0 * n).max(0.0),
        };
        round(v, 100.0)
    }

    /// Adds `step` to counter `i` and returns it rounded to 1/`scale`.
    fn accumulate(&mut self, i: usize, step: f64, scale: f64) -> f64 {
        self.counters[i] += step;
        round(self.counters[i], scale)
    }
}

fn round(v: f64, scale: f64) -> f64 {
    (v * scale).round() / scale
}

/// splitmix64's finaliser: a well-spread 64-bit hash.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn bump(hour: f64, centre: f64, width: f64) -> f64 {
    (-((hour - centre) / width).powi(2)).exp()
}

/// A home's demand in W: a night base, a morning and a bigger evening peak; each device's
/// home a little different.
fn house_load(hour: f64, device: u64) -> f64 {
    let size = 0.8 + (device % 5) as f64 * 0.1;
    size * (180.0
        + 900.0 * bump(hour, 7.5, 1.2)
        + 1600.0 * bump(hour, 18.5, 1.8)
        + 300.0 * bump(hour, 13.0, 2.5))
}

/// How much of the house each CT sees: P1 the whole supply, the others circuits.
fn channel_share(name: &str) -> f64 {
    match name[1..].parse::<u32>().unwrap_or(1) {
        1 => 1.0,
        2 => 0.35,
        3 => 0.2,
        4 => 0.15,
        5 => 0.1,
        _ => 0.05,
    }
}

fn indoor(hour: f64) -> f64 {
    18.5 + 2.0 * bump(hour, 19.0, 3.0) + 1.0 * bump(hour, 8.0, 2.0)
}

fn outside(hour: f64) -> f64 {
    4.0 + 5.0 * bump(hour, 14.0, 4.0)
}

fn cop(hour: f64) -> f64 {
    2.6 + 0.12 * outside(hour)
}

fn heatpump_elec(hour: f64) -> f64 {
    (250.0 + 90.0 * (18.0 - outside(hour))).max(0.0) * (0.6 + 0.6 * bump(hour, 6.5, 1.5))
}

fn solar(hour: f64, device: u64) -> f64 {
    let peak = 2500.0 + (device % 4) as f64 * 500.0;
    if (6.0..20.0).contains(&hour) {
        peak * bump(hour, 13.0, 3.0)
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_readings() {
        let names = Profile::Emontx4.inputs(None);
        let mut a = Device::new(Profile::Emontx4, 7, 3, names.clone());
        let mut b = Device::new(Profile::Emontx4, 7, 3, names.clone());
        let mut c = Device::new(Profile::Emontx4, 8, 3, names);
        let t = 1_795_800_000.0;
        let (ra, rb, rc) = (a.read(t, 10.0), b.read(t, 10.0), c.read(t, 10.0));
        assert_eq!(ra, rb);
        assert_ne!(ra, rc);
        assert_eq!(ra.len(), 18);
    }

    #[test]
    fn counters_only_grow_and_days_have_a_shape() {
        let names = Profile::Solar.inputs(None);
        let mut d = Device::new(Profile::Solar, 1, 0, names.clone());
        let solar_kwh = names
            .iter()
            .position(|n| n == "solar_kwh")
            .expect("solar_kwh");
        let solar = names.iter().position(|n| n == "solar").expect("solar");
        let midnight = 1_795_824_000.0; // 2026-11-28 00:00 UTC
        let mut last = 0.0;
        let mut noon = 0.0;
        for k in 0..8640 {
            let r = d.read(midnight + f64::from(k) * 10.0, 10.0);
            assert!(r[solar_kwh] >= last, "counter went back");
            last = r[solar_kwh];
            if k == 4680 {
                noon = r[solar];
            }
            if k == 100 {
                assert_eq!(r[solar], 0.0, "no sun at night");
            }
        }
        assert!(noon > 1500.0, "sunny at 13:00: {noon}");
        assert!(last > 5.0, "a day of sun makes kWh: {last}");
    }

    #[test]
    fn input_names_follow_the_hardware_then_extend() {
        assert_eq!(Profile::Emontx4.inputs(Some(3)), ["MSG", "Vrms", "P1"]);
        let many = Profile::Solar.inputs(Some(8));
        assert_eq!(&many[6..], ["X7", "X8"]);
        assert_eq!(Profile::Heatpump.node(4), "heatpump_4");
    }
}
