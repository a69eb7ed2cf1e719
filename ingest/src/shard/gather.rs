//! When a shard's thread starts on the jobs it has: at once, or after waiting a moment for
//! more, so that messages arriving close together share one log sync.
//!
//! Waiting pays only for arrivals that do not depend on the answers: a thousand devices each
//! publishing once a second arrive about every millisecond whatever the shard does, and a
//! wait of a millisecond or two lets two or three of them share a sync instead of each paying
//! for its own. Clients that send their next request only once the last was answered (a
//! script posting in a loop, `wrk`, a device catching up) come back within a round trip of
//! each answer; a wait only slows them down, and by spacing their requests it would feed the
//! very gap average that set it.
//!
//! So two averages are kept: of the gaps between arrivals, and of the time from an answer to
//! the next arrival, sampled only when nothing was waiting at the answer (a backlog says
//! nothing about the clients). The thread waits, up to twice the arrival gap and at most
//! [`CAP`], only when arrivals are closer than [`CAP`] and do not follow the answers; the wait
//! also ends as soon as as many jobs are in as the last group had.
//!
//! Device messages ([`Pace::Published`]) wait longer: when they arrive closer than
//! [`CAP_PUBLISHED`], up to eight gaps and at most that, and the thread sleeps through the
//! whole wait and then takes what came, rather than being woken by each arrival to count it
//! (at a thousand devices a second, a wake-up per message). A device publishes on its own
//! clock and its broker connection is answered
//! (PUBACK) without anyone waiting on the reply to send the next reading, so a few
//! milliseconds cost it nothing, while each sync saved is kernel time: with a thousand
//! devices a second, syncs of two or three messages took a quarter of the server's CPU
//! (`benches/mqtt.sh`). HTTP posts ([`Pace::Posted`]) keep the short wait: the next request of
//! a script or a page often waits for the answer, and a wrong guess there costs it the whole
//! wait.
//!
//! Only jobs that go to the log count: a read has no sync to share, so a group of reads
//! starts at once, and reads neither shorten the gap average nor fill a group.

use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::worker::{MAX_GROUP, TICK};

/// The longest a first job waits for company.
pub(super) const CAP: Duration = Duration::from_millis(2);

/// The longest a group with a device message waits for company.
pub(super) const CAP_PUBLISHED: Duration = Duration::from_millis(16);

/// Arrivals this soon after an answer are taken as its client's next request.
const FOLLOWS: Duration = Duration::from_micros(300);

#[derive(Debug)]
pub(super) struct Gather {
    last_arrival: Option<Instant>,
    /// Seconds between arrivals (a decaying average).
    gap: f64,
    /// When the last group was answered with nothing waiting behind it.
    answered_idle: Option<Instant>,
    /// Seconds from such an answer to the next arrival (a decaying average).
    after_answer: f64,
    last_group: usize,
}

impl Default for Gather {
    fn default() -> Self {
        Self {
            last_arrival: None,
            gap: 1.0,
            answered_idle: None,
            after_answer: 0.0,
            last_group: 1,
        }
    }
}

impl Gather {
    /// A job arrived (or was taken) at `now`.
    pub(super) fn arrived(&mut self, now: Instant) {
        if let Some(last) = self.last_arrival {
            let gap = now.saturating_duration_since(last).as_secs_f64();
            self.gap = 0.8 * self.gap + 0.2 * gap;
        }
        self.last_arrival = Some(now);
        if let Some(answered) = self.answered_idle.take() {
            let after = now.saturating_duration_since(answered).as_secs_f64();
            self.after_answer = 0.8 * self.after_answer + 0.2 * after;
        }
    }

    /// `n` jobs were found together at `now`, having come since the last arrival: counted
    /// as if evenly spread over that time, which keeps the gap average what it would have
    /// been had each been seen as it came.
    pub(super) fn arrived_spread(&mut self, now: Instant, n: usize) {
        let Some(last) = self.last_arrival else {
            for _ in 0..n {
                self.arrived(now);
            }
            return;
        };
        let step =
            now.saturating_duration_since(last) / u32::try_from(n.max(1)).unwrap_or(u32::MAX);
        for i in 1..=n {
            let at = last + step * u32::try_from(i).unwrap_or(u32::MAX);
            self.arrived(at);
        }
    }

    /// How long the first job of a group waits for more.
    pub(super) fn window(&self, pace: Pace) -> Duration {
        let (gaps, cap) = match pace {
            Pace::Posted => (2.0, CAP),
            Pace::Published => (8.0, CAP_PUBLISHED),
        };
        if self.gap >= cap.as_secs_f64() || self.after_answer < FOLLOWS.as_secs_f64() {
            return Duration::ZERO;
        }
        Duration::from_secs_f64((gaps * self.gap).min(cap.as_secs_f64()))
    }

    /// How many posts end the wait early: as many as the last group had, and at least two.
    pub(super) fn enough(&self) -> usize {
        self.last_group.max(2)
    }

    /// A group of `jobs` was answered at `now`; `idle` says nothing was waiting then.
    pub(super) fn answered(&mut self, now: Instant, jobs: usize, idle: bool) {
        if jobs > 0 {
            self.last_group = jobs;
        }
        self.answered_idle = idle.then_some(now);
    }
}

/// How a job logged with others arrives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Pace {
    /// An HTTP post: its client may be waiting for the answer to send the next.
    Posted,
    /// A device's MQTT message: sent on the device's own clock.
    Published,
}

/// Whether a job is written to the shard's log (and so shares its sync with others), and how
/// it arrives.
pub(super) trait SharesSync {
    fn shares_sync(&self) -> Option<Pace>;
}

/// A shard thread's queue as groups of jobs: one [`Gather`], and the job found behind a group
/// when it was answered (taken first next time).
pub(super) struct Intake<T> {
    gather: Gather,
    queued: Option<T>,
    /// How many of the last group's jobs were logged.
    logged: usize,
    /// The slowest-paced of them ([`Pace::Published`] if any was).
    pace: Pace,
}

impl<T> Default for Intake<T> {
    fn default() -> Self {
        Self {
            gather: Gather::default(),
            queued: None,
            logged: 0,
            pace: Pace::Posted,
        }
    }
}

impl<T: SharesSync> Intake<T> {
    /// The next group to start on: the first job (waiting up to [`TICK`] for one; an empty
    /// group if none came, so the thread can do its periodic work), whatever is queued behind
    /// it, and, when [`Gather`] says arrivals are close and independent of the answers, those
    /// that come within its window (until as many are in as the last group had). `None` once
    /// every sender is gone.
    pub(super) fn next(&mut self, rx: &mpsc::Receiver<T>) -> Option<Vec<T>> {
        self.logged = 0;
        self.pace = Pace::Posted;
        let first = match self.queued.take() {
            Some(job) => job,
            None => match rx.recv_timeout(TICK) {
                Ok(job) => job,
                Err(mpsc::RecvTimeoutError::Timeout) => return Some(Vec::new()),
                Err(mpsc::RecvTimeoutError::Disconnected) => return None,
            },
        };
        self.take(&first);
        let mut jobs = vec![first];
        while jobs.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(j) => {
                    self.take(&j);
                    jobs.push(j);
                }
                Err(_) => break,
            }
        }
        let window = self.window();
        if window.is_zero() || jobs.len() >= MAX_GROUP {
            // Nothing to wait for, or a backlog already filled the group.
            return Some(jobs);
        }
        if self.pace == Pace::Published {
            // Device messages arrive on their own clocks: the thread sleeps through the window
            // and takes what came, instead of being woken by each arrival only to wait again
            // (at a thousand devices a second that was a wake-up per message).
            std::thread::sleep(window);
            let mut logged = 0;
            while jobs.len() < MAX_GROUP {
                let Ok(j) = rx.try_recv() else { break };
                if j.shares_sync().is_some() {
                    logged += 1;
                }
                jobs.push(j);
            }
            self.gather.arrived_spread(Instant::now(), logged);
            self.logged += logged;
            return Some(jobs);
        }
        let deadline = Instant::now() + window;
        let enough = self.gather.enough();
        while self.logged < enough && jobs.len() < MAX_GROUP {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            match rx.recv_timeout(deadline - now) {
                Ok(j) => {
                    self.take(&j);
                    jobs.push(j);
                }
                Err(_) => break,
            }
        }
        Some(jobs)
    }

    /// How long the group being gathered waits for company: not at all without a job to log.
    fn window(&self) -> Duration {
        if self.logged == 0 {
            Duration::ZERO
        } else {
            self.gather.window(self.pace)
        }
    }

    /// Counts a job of the group being gathered.
    fn take(&mut self, job: &T) {
        if let Some(pace) = job.shares_sync() {
            self.gather.arrived(Instant::now());
            self.logged += 1;
            self.pace = self.pace.max(pace);
        }
    }

    /// The last group has been answered: notes whether anything waited behind it.
    pub(super) fn answered(&mut self, rx: &mpsc::Receiver<T>) {
        self.queued = rx.try_recv().ok();
        if self.logged > 0 {
            self.gather
                .answered(Instant::now(), self.logged, self.queued.is_none());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(t0: Instant, us: u64) -> Instant {
        t0 + Duration::from_micros(us)
    }

    #[test]
    fn a_client_waiting_for_each_answer_is_never_held() {
        let mut g = Gather::default();
        let t0 = Instant::now();
        // Each request 100 µs after the answer to the last, answers 300 µs later.
        let mut t = 0;
        for _ in 0..50 {
            t += 100;
            g.arrived(at(t0, t));
            assert!(g.window(Pace::Posted) <= CAP);
            t += 300;
            g.answered(at(t0, t), 1, true);
        }
        assert_eq!(g.window(Pace::Posted), Duration::ZERO);
        assert_eq!(g.window(Pace::Published), Duration::ZERO);
    }

    #[test]
    fn devices_arriving_on_their_own_about_every_millisecond_wait_for_company() {
        let mut g = Gather::default();
        let t0 = Instant::now();
        // Arrivals every 800 µs; answered 300 µs after each, with nothing waiting.
        for i in 0..50 {
            let t = 800 * i;
            g.arrived(at(t0, t));
            g.answered(at(t0, t + 300), 1, true);
        }
        let w = g.window(Pace::Posted);
        assert!(
            w > Duration::from_micros(1400) && w <= Duration::from_micros(1700),
            "about twice the gap: {w:?}"
        );
        assert_eq!(g.enough(), 2);
        // Device messages wait up to eight gaps.
        let w = g.window(Pace::Published);
        assert!(
            w > Duration::from_micros(5600) && w <= CAP_PUBLISHED,
            "about eight gaps: {w:?}"
        );
        g.answered(at(t0, 50 * 800), 5, true);
        assert_eq!(g.enough(), 5);
    }

    struct J(Option<Pace>);
    impl SharesSync for J {
        fn shares_sync(&self) -> Option<Pace> {
            self.0
        }
    }

    #[test]
    fn reads_never_wait_for_company_nor_count_as_arrivals() {
        let mut intake = Intake::<J>::default();
        let t0 = Instant::now();
        for i in 0..50 {
            let t = 800 * i;
            intake.gather.arrived(at(t0, t));
            intake.gather.answered(at(t0, t + 300), 1, true);
        }
        let gap = intake.gather.gap;
        intake.take(&J(None));
        intake.take(&J(None));
        assert_eq!(
            intake.window(),
            Duration::ZERO,
            "a group of reads starts at once"
        );
        assert_eq!(intake.gather.gap, gap, "reads leave the arrival gaps alone");
        intake.take(&J(Some(Pace::Posted)));
        let posted = intake.window();
        assert!(posted > Duration::ZERO, "a submission still waits");
        intake.take(&J(Some(Pace::Published)));
        assert!(
            intake.window() > posted,
            "a group with a device message waits longer"
        );
        let (tx, rx) = mpsc::channel();
        tx.send(J(None)).expect("send");
        let group = intake.next(&rx).expect("a group");
        assert_eq!(group.len(), 1);
        assert_eq!(intake.logged, 0, "a read-only group logs nothing");
        assert_eq!(
            intake.pace,
            Pace::Posted,
            "each group starts at the short wait"
        );
    }

    #[test]
    fn device_messages_found_together_keep_the_gap_they_came_at() {
        let mut g = Gather::default();
        let t0 = Instant::now();
        for i in 0..50 {
            g.arrived(at(t0, 1_000 * i));
        }
        // Eight messages found at once 8 ms after the last one seen.
        g.arrived_spread(at(t0, 49_000 + 8_000), 8);
        assert!((g.gap - 0.001).abs() < 1e-4, "about 1 ms: {}", g.gap);
        // Nothing found leaves the average alone.
        g.arrived_spread(at(t0, 60_000), 0);
        assert!((g.gap - 0.001).abs() < 1e-4, "{}", g.gap);
    }

    #[test]
    fn a_device_group_sleeps_through_its_window_and_takes_what_came() {
        let mut intake = Intake::<J>::default();
        // Arrivals 800 µs apart until about a gap ago.
        let t0 = Instant::now()
            .checked_sub(Duration::from_micros(800 * 50))
            .expect("an instant 40 ms ago");
        for i in 0..50 {
            let t = 800 * i;
            intake.gather.arrived(at(t0, t));
            intake.gather.answered(at(t0, t + 300), 1, true);
        }
        // The first job's own arrival shortens the average gap a little: at least this.
        let window = intake.gather.window(Pace::Published) / 2;
        assert!(window > Duration::ZERO);
        let (tx, rx) = mpsc::channel();
        tx.send(J(Some(Pace::Published))).expect("send");
        let sender = std::thread::spawn(move || {
            for job in [
                Some(Pace::Published),
                None,
                Some(Pace::Posted),
                Some(Pace::Published),
            ] {
                tx.send(J(job)).expect("send");
            }
        });
        sender.join().expect("sender");
        let started = Instant::now();
        let group = intake.next(&rx).expect("a group");
        assert!(started.elapsed() >= window, "the group waited its window");
        assert_eq!(group.len(), 5);
        assert_eq!(intake.logged, 4, "the read is not logged");
        assert_eq!(intake.pace, Pace::Published);
    }

    #[test]
    fn sparse_arrivals_never_wait() {
        let mut g = Gather::default();
        let t0 = Instant::now();
        for i in 0..50 {
            let t = 20_000 * i;
            g.arrived(at(t0, t));
            g.answered(at(t0, t + 300), 1, true);
        }
        assert_eq!(g.window(Pace::Published), Duration::ZERO);
        assert_eq!(g.window(Pace::Posted), Duration::ZERO);
        // 4 ms apart: too far for posts to wait, close enough for device messages.
        let mut g = Gather::default();
        for i in 0..50 {
            let t = 4_000 * i;
            g.arrived(at(t0, t));
            g.answered(at(t0, t + 300), 1, true);
        }
        assert_eq!(g.window(Pace::Posted), Duration::ZERO);
        assert_eq!(g.window(Pace::Published), CAP_PUBLISHED);
    }
}
