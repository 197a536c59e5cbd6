//! Tickets: the byte strings that name server-side objects. Export tickets (`b'e'` + i32 little-endian) are chosen by
//! the client, unique per session and must be released; scope tickets (`b"s/"` + name) name query-scope variables that
//! outlive sessions. This module encodes both (as gRPC tickets and Flight descriptors) and allocates export ids,
//! counting the live ones.

use std::sync::atomic::{AtomicI32, AtomicUsize, Ordering};

use arrow_flight::FlightDescriptor;

use crate::proto::backplane::{table_reference, TableReference, Ticket};

/// An export id, positive and unique within one session.
pub(crate) type ExportId = i32;

/// The ticket of export `id`: `b'e'` followed by `id` as i32 little-endian.
pub(crate) fn export_ticket(id: ExportId) -> Ticket {
    let mut ticket = Vec::with_capacity(5);
    ticket.push(b'e');
    ticket.extend_from_slice(&id.to_le_bytes());
    Ticket { ticket }
}

/// The ticket of query-scope variable `name`: `b"s/"` followed by the name.
pub(crate) fn scope_ticket(name: &str) -> Ticket {
    let mut ticket = Vec::with_capacity(2 + name.len());
    ticket.extend_from_slice(b"s/");
    ticket.extend_from_slice(name.as_bytes());
    Ticket { ticket }
}

/// The Flight descriptor that makes a DoPut create export `id`.
pub(crate) fn export_descriptor(id: ExportId) -> FlightDescriptor {
    FlightDescriptor::new_path(vec!["export".to_owned(), id.to_string()])
}

/// A gRPC ticket as an Arrow Flight ticket (same wire form).
pub(crate) fn flight_ticket(ticket: &Ticket) -> arrow_flight::Ticket {
    arrow_flight::Ticket::new(ticket.ticket.clone())
}

/// A table reference by ticket.
pub(crate) fn table_ref(ticket: Ticket) -> TableReference {
    TableReference { r#ref: Some(table_reference::Ref::Ticket(ticket)) }
}

/// Allocates export ids for one session and counts those not yet released.
#[derive(Debug)]
pub(crate) struct ExportIds {
    next: AtomicI32,
    live: AtomicUsize,
    /// Releases the server did not confirm: the only way an export can outlive its use on the server side.
    unconfirmed: AtomicUsize,
}

impl ExportIds {
    pub(crate) fn new() -> Self {
        Self { next: AtomicI32::new(1), live: AtomicUsize::new(0), unconfirmed: AtomicUsize::new(0) }
    }

    /// A fresh id, or `None` once the session has used every positive i32.
    pub(crate) fn allocate(&self) -> Option<ExportId> {
        let id = self
            .next
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |id| {
                (id > 0).then(|| id.checked_add(1).unwrap_or(i32::MIN))
            })
            .ok()?;
        self.live.fetch_add(1, Ordering::Relaxed);
        Some(id)
    }

    /// Records that an allocated id was released (or can no longer exist); `confirmed` says whether the server
    /// acknowledged the release.
    pub(crate) fn released(&self, confirmed: bool) {
        if !confirmed {
            self.unconfirmed.fetch_add(1, Ordering::Relaxed);
        }
        // Saturating: never wraps below zero even if called once too often.
        let _ = self.live.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
    }

    /// Allocated ids not yet released.
    pub(crate) fn live(&self) -> usize {
        self.live.load(Ordering::Relaxed)
    }

    /// Releases the server did not confirm.
    pub(crate) fn unconfirmed(&self) -> usize {
        self.unconfirmed.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn export_tickets_are_e_plus_i32_le() {
        assert_eq!(export_ticket(1).ticket, vec![b'e', 1, 0, 0, 0]);
        assert_eq!(export_ticket(0x0403_0201).ticket, vec![b'e', 1, 2, 3, 4]);
        assert_eq!(export_ticket(i32::MAX).ticket, vec![b'e', 0xff, 0xff, 0xff, 0x7f]);
    }

    #[test]
    fn scope_tickets_are_s_slash_name() {
        assert_eq!(scope_ticket("Alerts").ticket, b"s/Alerts".to_vec());
        assert_eq!(scope_ticket("é").ticket, "s/é".as_bytes().to_vec());
    }

    #[test]
    fn export_descriptor_is_a_path() {
        let descriptor = export_descriptor(42);
        assert_eq!(descriptor.path, vec!["export".to_owned(), "42".to_owned()]);
        assert_eq!(flight_ticket(&export_ticket(42)).ticket.as_ref(), &[b'e', 42, 0, 0, 0]);
    }

    #[test]
    fn ids_are_positive_unique_and_counted() {
        let ids = ExportIds::new();
        let a = ids.allocate().expect("first id");
        let b = ids.allocate().expect("second id");
        assert_eq!((a, b), (1, 2));
        assert_eq!(ids.live(), 2);
        ids.released(true);
        ids.released(false);
        ids.released(true);
        assert_eq!(ids.live(), 0, "never below zero");
        assert_eq!(ids.unconfirmed(), 1);
    }

    #[test]
    fn ids_run_out_instead_of_wrapping() {
        let ids = ExportIds { next: AtomicI32::new(i32::MAX), ..ExportIds::new() };
        assert_eq!(ids.allocate(), Some(i32::MAX));
        assert_eq!(ids.allocate(), None);
        assert_eq!(ids.allocate(), None);
        assert_eq!(ids.live(), 1);
    }
}
