//! Keeping this node's vshards: each [`Ownership::tick`] sends the heartbeat, works out which
//! vshards placement gives this node among the live ones, renews what it holds, takes what it
//! should hold once the previous owner's lease has ended, and reports what it gained, what it
//! lost, and what it holds but should hand over.
//!
//! Handing over is the caller's move: it stops the vshard's work, makes its data durable and
//! checkpointed, then calls [`Ownership::release`], so the next owner starts from complete
//! files without waiting for the lease to run out. A vshard whose lease could not be renewed
//! before its local deadline is reported lost and must not be acted for again (see
//! [`crate::lease`] for why that deadline comes before anyone else can take it).
//!
//! Call `tick` at least every [`Timing::renew_every`]; a node that stops ticking (crashed,
//! paused, cut off) loses its vshards to the others one lease later.

use std::collections::BTreeMap;
use ynni_core::boot_clock::BootInstant;

use sqlx::PgPool;

use crate::lease::{Lease, Leases, Timing};
use crate::registry::Membership;
use crate::{ClusterError, placement};

/// What changed for this node in one tick.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// The node now holds the vshard (a new epoch): replay its log, then serve it.
    Gained(Lease),
    /// The node no longer holds the vshard (lease not renewed in time, or taken over): stop
    /// at once; nothing may be acknowledged or written for it any more.
    Lost(u16),
    /// Placement gives the vshard to another node: stop its work, flush and checkpoint, then
    /// [`Ownership::release`] it.
    HandOver(u16),
}

/// One node's vshard leases, kept by ticking.
#[derive(Debug)]
pub struct Ownership {
    membership: Membership,
    leases: Leases,
    held: BTreeMap<u16, Lease>,
    /// Another process took this node's id: nothing here may act for the cluster any more.
    replaced: bool,
}

impl Ownership {
    /// Starts with no vshards; the first tick takes this node's share.
    pub fn new(pool: PgPool, membership: Membership, timing: Timing) -> Self {
        let leases = Leases::new(pool, membership.node_id(), timing);
        Self {
            membership,
            leases,
            held: BTreeMap::new(),
            replaced: false,
        }
    }

    pub fn node_id(&self) -> &str {
        self.membership.node_id()
    }

    /// The lease on `vshard` if this node may act for it at `now`.
    pub fn valid(&self, vshard: u16, now: BootInstant) -> Option<Lease> {
        self.held.get(&vshard).filter(|l| l.valid(now)).copied()
    }

    /// Whether another process took this node's id (its heartbeat said so): the process
    /// should stop, as it can serve nothing of the cluster's.
    pub fn replaced(&self) -> bool {
        self.replaced
    }

    /// The vshards held now (valid or not yet noticed as lost).
    pub fn held(&self) -> Vec<u16> {
        self.held.keys().copied().collect()
    }

    /// One round; see the module documentation.
    pub async fn tick(&mut self) -> Result<Vec<Change>, ClusterError> {
        let mut changes = Vec::new();
        if let Err(e) = self.membership.heartbeat().await {
            return match e {
                // Replaced by another process with this id: nothing held is ours any more.
                ClusterError::Replaced(_) => {
                    self.replaced = true;
                    changes.extend(self.drop_all());
                    Ok(changes)
                }
                // The database did not answer this time: the leases stay, each until its
                // local deadline (the next round renews them, or finds them lost); dropping
                // them all would stop every vshard here for a lease's length, since none can
                // be taken again before it expires in the database.
                other => Err(other),
            };
        }
        // Leases past their local deadline are lost whatever the database says.
        changes.extend(self.drop_expired());
        for lease in self.held.values().copied().collect::<Vec<_>>() {
            match self.leases.renew(&lease).await? {
                Some(renewed) => {
                    self.held.insert(lease.vshard, renewed);
                }
                None => {
                    self.held.remove(&lease.vshard);
                    changes.push(Change::Lost(lease.vshard));
                }
            }
        }
        let live = self.membership.live().await?;
        let ids: Vec<&str> = live.iter().map(|n| n.node_id.as_str()).collect();
        let wanted = placement::vshards_of(self.node_id(), &ids);
        for v in self.held.keys() {
            if !wanted.contains(v) {
                changes.push(Change::HandOver(*v));
            }
        }
        for v in wanted {
            if self.held.contains_key(&v) {
                continue;
            }
            if let Some(lease) = self.leases.acquire(v).await? {
                self.held.insert(v, lease);
                changes.push(Change::Gained(lease));
            }
        }
        Ok(changes)
    }

    /// A round for a node that cannot use its shared directory now (it stopped answering):
    /// no heartbeat, so the others stop counting this node live after a lease and take its
    /// vshards; no renewal, so those leases end; nothing acquired. Only the leases past their
    /// local deadline are reported lost. Normal rounds take the node's share again once the
    /// directory answers.
    pub fn idle_tick(&mut self) -> Vec<Change> {
        self.drop_expired()
    }

    /// Forgets the leases past their local deadline, reporting each lost.
    fn drop_expired(&mut self) -> Vec<Change> {
        let now = BootInstant::now();
        let expired: Vec<u16> = self
            .held
            .iter()
            .filter(|(_, l)| !l.valid(now))
            .map(|(v, _)| *v)
            .collect();
        expired
            .into_iter()
            .map(|v| {
                self.held.remove(&v);
                Change::Lost(v)
            })
            .collect()
    }

    /// Gives `vshard` up (after its data is durable and checkpointed).
    pub async fn release(&mut self, vshard: u16) -> Result<(), ClusterError> {
        if let Some(lease) = self.held.remove(&vshard) {
            self.leases.release(&lease).await?;
        }
        Ok(())
    }

    /// Gives `vshard` up if this node still holds it under `epoch` (a newer lease on it is
    /// kept).
    pub async fn release_epoch(&mut self, vshard: u16, epoch: i64) -> Result<(), ClusterError> {
        if self.held.get(&vshard).is_some_and(|l| l.epoch == epoch) {
            self.release(vshard).await?;
        }
        Ok(())
    }

    /// Leaves the cluster: releases every vshard (their data must be durable) and the node id.
    pub async fn leave(mut self) -> Result<(), ClusterError> {
        for v in self.held() {
            self.release(v).await?;
        }
        self.membership.leave().await
    }

    fn drop_all(&mut self) -> Vec<Change> {
        let lost = self.held.keys().map(|v| Change::Lost(*v)).collect();
        self.held.clear();
        lost
    }
}
