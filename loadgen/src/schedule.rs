//! The open model's arrival schedule: when the k-th journey is due.
//!
//! The rate is piecewise linear in time (a warm-up hold, then the stages,
//! each ramping from the previous rate to its target), so the arrivals due
//! by time `t`, `N(t)`, the integral of the rate, is piecewise quadratic.
//! Arrival `k` is due at the `t` where `N(t) = k`: a closed form, so every
//! user can compute any slot's time with no shared state but the counter.

use std::time::Duration;

use crate::config::Stage;

/// A piece of the schedule over which the rate changes linearly.
#[derive(Debug, Clone, Copy)]
struct Segment {
    /// Seconds from the schedule's start.
    start: f64,
    duration: f64,
    /// Rate at the segment's start and end, per second.
    from: f64,
    to: f64,
    /// Arrivals due before the segment starts.
    before: f64,
}

impl Segment {
    fn arrivals(&self) -> f64 {
        (self.from + self.to) / 2.0 * self.duration
    }
    /// Arrivals due `tau` seconds into the segment.
    fn arrivals_at(&self, tau: f64) -> f64 {
        self.from * tau + (self.to - self.from) * tau * tau / (2.0 * self.duration)
    }
    /// Seconds into the segment at which `x` arrivals are due: the root of
    /// `a tau^2 + b tau = x`, written to stay exact when `a` is 0 or small.
    fn time_for(&self, x: f64) -> f64 {
        let a = (self.to - self.from) / (2.0 * self.duration);
        let b = self.from;
        let root = (b * b + 4.0 * a * x).max(0.0).sqrt();
        let denominator = b + root;
        if denominator <= 0.0 {
            0.0
        } else {
            (2.0 * x / denominator).min(self.duration)
        }
    }
}

/// Arrival times of an open-model run.
#[derive(Debug, Clone)]
pub struct Schedule {
    segments: Vec<Segment>,
    total: f64,
}

impl Schedule {
    /// A schedule holding `warmup` (duration, rate) first, then ramping
    /// from `start_rate` through each stage.
    pub fn new(start_rate: f64, stages: &[Stage], warmup: Option<(Duration, f64)>) -> Self {
        let mut segments = Vec::with_capacity(stages.len() + 1);
        let mut start = 0.0;
        let mut before = 0.0;
        let mut push = |duration: f64, from: f64, to: f64| {
            let s = Segment {
                start,
                duration,
                from: from.max(0.0),
                to: to.max(0.0),
                before,
            };
            start += duration;
            before += s.arrivals();
            segments.push(s);
        };
        if let Some((d, rate)) = warmup {
            if !d.is_zero() {
                push(d.as_secs_f64(), rate, rate);
            }
        }
        let mut from = start_rate;
        for s in stages {
            push(s.duration.as_secs_f64(), from, s.target_rate);
            from = s.target_rate;
        }
        let total = segments.last().map_or(0.0, |s| s.start + s.duration);
        Schedule { segments, total }
    }

    /// How long the schedule runs.
    pub fn duration(&self) -> Duration {
        Duration::from_secs_f64(self.total)
    }

    /// Every arrival the schedule holds.
    pub fn arrivals(&self) -> u64 {
        let n = self
            .segments
            .last()
            .map_or(0.0, |s| s.before + s.arrivals());
        // Arrival k is due where N(t) = k, for k = 0, 1, ...: those below
        // the final N, with a hair of slack against rounding.
        (n - 1e-9).ceil().max(0.0) as u64
    }

    /// The target rate `t` into the schedule, per second.
    pub fn rate_at(&self, t: Duration) -> f64 {
        let t = t.as_secs_f64();
        match self.segment_at(t) {
            Some(s) => s.from + (s.to - s.from) * ((t - s.start) / s.duration),
            None => 0.0,
        }
    }

    /// Arrivals due by `t` into the schedule (fractional).
    pub fn arrivals_by(&self, t: Duration) -> f64 {
        let t = t.as_secs_f64();
        match self.segment_at(t) {
            Some(s) => s.before + s.arrivals_at(t - s.start),
            None if t <= 0.0 => 0.0,
            None => self
                .segments
                .last()
                .map_or(0.0, |s| s.before + s.arrivals()),
        }
    }

    /// When arrival `k` (from 0) is due, from the schedule's start; `None`
    /// past the last one.
    pub fn time_of(&self, k: u64) -> Option<Duration> {
        if k >= self.arrivals() {
            return None;
        }
        let x = k as f64;
        // The last segment whose arrivals reach past x.
        let i = self
            .segments
            .partition_point(|s| s.before + s.arrivals() <= x);
        let s = self.segments.get(i)?;
        let t = s.start + s.time_for(x - s.before);
        Some(Duration::from_secs_f64(t.min(self.total)))
    }

    fn segment_at(&self, t: f64) -> Option<&Segment> {
        if t < 0.0 || t >= self.total {
            return None;
        }
        let i = self.segments.partition_point(|s| s.start + s.duration <= t);
        self.segments.get(i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stage(secs: f64, rate: f64) -> Stage {
        Stage {
            duration: Duration::from_secs_f64(secs),
            target_rate: rate,
        }
    }

    #[test]
    fn a_constant_rate_spaces_arrivals_evenly() {
        let s = Schedule::new(200.0, &[stage(5.0, 200.0)], None);
        assert_eq!(s.arrivals(), 1000);
        assert_eq!(s.time_of(0), Some(Duration::ZERO));
        let t = s.time_of(1).unwrap().as_secs_f64();
        assert!((t - 0.005).abs() < 1e-9, "{t}");
        let t = s.time_of(999).unwrap().as_secs_f64();
        assert!((t - 4.995).abs() < 1e-9, "{t}");
        assert_eq!(s.time_of(1000), None);
    }

    #[test]
    fn a_ramp_from_zero_is_quadratic() {
        // 0 -> 200/s over 4 s: N(t) = 25 t^2, 400 arrivals.
        let s = Schedule::new(0.0, &[stage(4.0, 200.0)], None);
        assert_eq!(s.arrivals(), 400);
        assert!((s.arrivals_by(Duration::from_secs(1)) - 25.0).abs() < 1e-9);
        let t = s.time_of(100).unwrap().as_secs_f64();
        assert!((t - 2.0).abs() < 1e-9, "{t}");
        assert!((s.rate_at(Duration::from_secs(1)) - 50.0).abs() < 1e-9);
    }

    #[test]
    fn times_are_monotonic_across_ramps_holds_and_zero_stages() {
        let s = Schedule::new(
            10.0,
            &[
                stage(2.0, 100.0),
                stage(1.0, 100.0),
                stage(1.0, 0.0),
                stage(1.0, 0.0),
                stage(2.0, 50.0),
            ],
            Some((Duration::from_secs(1), 20.0)),
        );
        let mut last = Duration::ZERO;
        for k in 0..s.arrivals() {
            let t = s.time_of(k).unwrap();
            assert!(t >= last, "arrival {k} at {t:?} before {last:?}");
            // N(t(k)) = k.
            assert!((s.arrivals_by(t) - k as f64).abs() < 1e-6, "{k}");
            last = t;
        }
        // Nothing is due while the rate is 0 (from 5 s to 6 s).
        assert!(!(0..s.arrivals()).any(|k| {
            let t = s.time_of(k).unwrap().as_secs_f64();
            t > 5.0 + 1e-9 && t < 6.0 - 1e-9
        }));
        assert_eq!(s.duration(), Duration::from_secs(8));
    }

    #[test]
    fn a_ramp_down_reaches_its_end() {
        let s = Schedule::new(100.0, &[stage(2.0, 0.0)], None);
        assert_eq!(s.arrivals(), 100);
        let t = s.time_of(99).unwrap().as_secs_f64();
        assert!(t < 2.0 && t > 1.7, "{t}");
    }
}
