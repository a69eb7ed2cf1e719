//! Feeds and bytes done, rate and time left: one rewritten line on a terminal, a plain log
//! line every few seconds otherwise.

use std::io::IsTerminal;
use std::time::Instant;

pub struct Progress {
    feeds: usize,
    bytes: u64,
    done_feeds: usize,
    done_bytes: u64,
    started: Instant,
    printed: Instant,
    tty: bool,
}

impl Progress {
    pub fn new(feeds: usize, bytes: u64) -> Self {
        let now = Instant::now();
        Self {
            feeds,
            bytes,
            done_feeds: 0,
            done_bytes: 0,
            started: now,
            printed: now,
            tty: std::io::stderr().is_terminal(),
        }
    }

    pub fn feed_done(&mut self, user: &str, bytes: u64) {
        self.done_feeds += 1;
        self.done_bytes += bytes;
        let every = if self.tty { 0.2 } else { 5.0 };
        let last = self.done_feeds == self.feeds;
        if self.printed.elapsed().as_secs_f64() < every && !last {
            return;
        }
        self.printed = Instant::now();
        let secs = self.started.elapsed().as_secs_f64().max(1e-3);
        let rate = self.done_bytes as f64 / secs;
        let left = if rate > 0.0 {
            format!(
                "{:.0} s left",
                self.bytes.saturating_sub(self.done_bytes) as f64 / rate
            )
        } else {
            "time left unknown".into()
        };
        let line = format!(
            "{user}: feeds {}/{}, {:.1}/{:.1} MiB, {:.1} MiB/s, {left}",
            self.done_feeds,
            self.feeds,
            self.done_bytes as f64 / 1048576.0,
            self.bytes as f64 / 1048576.0,
            rate / 1048576.0
        );
        if self.tty {
            eprint!("\r{line}   ");
            if last {
                eprintln!();
            }
        } else {
            eprintln!("{line}");
        }
    }
}
