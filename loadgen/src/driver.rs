//! What each goose user runs: one long transaction that loops journeys,
//! paced by the open model's shared clock or back to back (closed model).

use std::time::Duration;

use goose_reqwest::Client;
use tokio::time::Instant;

use crate::journey::{closed_index, Planner};
use crate::pacer::Pacer;
use crate::runner::{Ctx, Session};
use crate::wake::must_wait;

/// How users are paced.
pub(crate) enum Pace {
    /// Arrival slots from the shared schedule.
    Open(Pacer),
    /// Back to back until `deadline`, with `think` between journeys.
    Closed { deadline: Instant, think: Duration },
}

pub(crate) struct Driver {
    pub ctx: Ctx,
    pub pace: Pace,
    pub planner: Planner,
}

impl Driver {
    /// One goose user's whole life: journeys until the load ends or the
    /// run is cancelled; then its log is handed in.
    pub async fn run_user(&self, client: Client, user: usize) {
        let mut s = self.ctx.session(client, &format!("load-{user}"));
        match &self.pace {
            Pace::Open(pacer) => self.open(pacer, &mut s).await,
            Pace::Closed { deadline, think } => self.closed(user, *deadline, *think, &mut s).await,
        }
        self.ctx.live.logs.lock().push(s.log);
    }

    async fn open(&self, pacer: &Pacer, s: &mut Session) {
        let cancel = s.cancel.clone();
        let end = pacer.end();
        while !cancel.is_cancelled() {
            let Some((k, due)) = pacer.take() else {
                return;
            };
            let now = Instant::now();
            // A slot due within the waking lead (and the window the waking
            // thread wakes together) is sent at once: a wait that short
            // would end later than the slot, or cost more than it keeps.
            if must_wait(due, now) {
                if s.watch
                    .unless_cancelled(pacer.sleep_until(due))
                    .await
                    .is_none()
                {
                    return;
                }
            } else if now >= end {
                // Due before the end but reached only after it (every user
                // was busy): dropped, and counted as missed.
                return;
            }
            let plan = self.planner.plan(k);
            let clock = &self.ctx.clock;
            s.log
                .journey_started(clock.us(due), clock.us(Instant::now()), &self.ctx.live);
            self.ctx.run(s, &plan, due).await;
        }
    }

    async fn closed(&self, user: usize, deadline: Instant, think: Duration, s: &mut Session) {
        let cancel = s.cancel.clone();
        let mut count = 0;
        while !cancel.is_cancelled() && Instant::now() < deadline {
            let plan = self.planner.plan(closed_index(user, count));
            count += 1;
            let now = Instant::now();
            let at = self.ctx.clock.us(now);
            s.log.journey_started(at, at, &self.ctx.live);
            self.ctx.run(s, &plan, now).await;
            if !think.is_zero()
                && s.watch
                    .unless_cancelled(tokio::time::sleep(think))
                    .await
                    .is_none()
            {
                return;
            }
        }
    }
}
