//! Loopback addresses for the fixtures: ports for `redis-server` reserved across every test of
//! every process, the `redis://` URL of an address, and free addresses for processes a harness
//! starts itself ([`reserve_loopback_addresses`]).
//!
//! A `redis-server` fixture needs a port it can give up (stop) and take back (restart) without
//! anyone else taking it in between. Two things could: another fixture, in this test process or
//! in another one (nextest runs one process per test), and the kernel handing the port out as the
//! local end of some outgoing connection. Ports are therefore picked *below* the kernel's
//! ephemeral range, and each is reserved with an exclusive `flock` on a per-port file in the temp
//! directory, held for the fixture's whole life. The kernel drops the lock when the process dies,
//! so a crashed test never leaks a reservation. Fixtures that keep their listener open (proxy,
//! half-alive listener) need none of this and bind port 0.

use std::fs::{File, OpenOptions, TryLockError};
use std::hash::{BuildHasher, RandomState};
use std::io;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::ops::Range;
use std::path::PathBuf;

/// Where candidate ports start when the ephemeral range leaves room below it.
const LOWEST_CANDIDATE_PORT: u16 = 20_000;
/// Linux's default ephemeral range, used when `/proc` cannot be read.
const DEFAULT_EPHEMERAL_PORTS: (u16, u16) = (32_768, 60_999);

/// The `redis://` URL of a loopback address.
pub(crate) fn redis_url(addr: SocketAddr) -> String {
    format!("redis://{addr}")
}

/// `count` distinct free loopback addresses (`127.0.0.1:port`), for processes that will
/// listen on them and keep them across restarts (a `poa-node`'s HTTP and admin ports). Every
/// listener stays bound until all ports are chosen, so no two are the same; they are released
/// for the processes when this returns.
///
/// # Errors
///
/// The error of a bind that failed (out of ports or descriptors).
pub fn reserve_loopback_addresses(count: usize) -> io::Result<Vec<SocketAddr>> {
    let reserved = (0..count)
        .map(|_| TcpListener::bind((Ipv4Addr::LOCALHOST, 0)))
        .collect::<io::Result<Vec<_>>>()?;
    reserved.iter().map(TcpListener::local_addr).collect()
}

/// A loopback port no other fixture will use until this value is dropped.
#[derive(Debug)]
pub(crate) struct PortReservation {
    port: u16,
    /// Holding the open, locked file is the reservation; dropping it releases the lock.
    _lock: File,
}

impl PortReservation {
    /// Reserves a port that is free right now, starting the search at a random candidate so that
    /// concurrent processes rarely contend for the same lock.
    pub(crate) fn acquire() -> Self {
        let candidates = candidate_ports();
        let span = u64::from(candidates.end - candidates.start);
        let offset = RandomState::new().hash_one(std::process::id()) % span;
        for step in 0..span {
            let index = u16::try_from((offset + step) % span).unwrap_or_default();
            let port = candidates.start + index;
            if let Some(reservation) = Self::try_reserve(port) {
                return reservation;
            }
        }
        panic!(
            "no free loopback port in {candidates:?} for redis-server: too many servers running, \
             or stale processes hold them (look for stray redis-server processes)"
        );
    }

    /// The reserved port.
    pub(crate) fn port(&self) -> u16 {
        self.port
    }

    fn try_reserve(port: u16) -> Option<Self> {
        let lock = lock_file(port);
        match lock.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => return None,
            Err(TryLockError::Error(err)) => {
                panic!(
                    "cannot lock {} to reserve port {port}: {err}",
                    lock_path(port).display()
                )
            }
        }
        // The lock only keeps fixtures apart; something else may still listen there.
        TcpListener::bind((Ipv4Addr::LOCALHOST, port)).ok()?;
        Some(Self { port, _lock: lock })
    }
}

fn lock_path(port: u16) -> PathBuf {
    std::env::temp_dir()
        .join("poa-test-support-ports")
        .join(format!("{port}.lock"))
}

fn lock_file(port: u16) -> File {
    let path = lock_path(port);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).unwrap_or_else(|err| {
            panic!(
                "cannot create the port lock directory {}: {err}",
                dir.display()
            )
        });
    }
    OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .unwrap_or_else(|err| panic!("cannot open port lock file {}: {err}", path.display()))
}

/// Ports outside the kernel's ephemeral range, so no outgoing connection takes one while its
/// server is stopped.
fn candidate_ports() -> Range<u16> {
    let (ephemeral_low, ephemeral_high) = ephemeral_ports();
    if ephemeral_low >= LOWEST_CANDIDATE_PORT.saturating_add(1_000) {
        LOWEST_CANDIDATE_PORT..ephemeral_low
    } else if ephemeral_high <= 64_000 {
        ephemeral_high.saturating_add(1)..u16::MAX
    } else {
        // The ephemeral range covers nearly everything: collisions stay possible but rare.
        LOWEST_CANDIDATE_PORT..ephemeral_high
    }
}

fn ephemeral_ports() -> (u16, u16) {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|text| {
            let mut bounds = text.split_whitespace().map(str::parse::<u16>);
            Some((bounds.next()?.ok()?, bounds.next()?.ok()?))
        })
        .unwrap_or(DEFAULT_EPHEMERAL_PORTS)
}

#[cfg(test)]
#[allow(non_snake_case)]
mod tests {
    use super::*;

    #[test]
    fn acquire__when_called_twice__then_reserves_two_ports_outside_the_ephemeral_range() {
        // given
        let (ephemeral_low, ephemeral_high) = ephemeral_ports();

        // when
        let first = PortReservation::acquire();
        let second = PortReservation::acquire();

        // then
        assert_ne!(first.port(), second.port());
        for port in [first.port(), second.port()] {
            assert!(
                !(ephemeral_low..=ephemeral_high).contains(&port),
                "port {port}"
            );
        }
    }

    #[test]
    fn reserve_loopback_addresses__when_several__then_distinct_and_free_again() {
        // given / when
        let addresses = reserve_loopback_addresses(6).unwrap();

        // then
        let mut ports: Vec<u16> = addresses.iter().map(SocketAddr::port).collect();
        ports.sort_unstable();
        ports.dedup();
        assert_eq!(ports.len(), 6);
        for address in addresses {
            assert!(address.ip().is_loopback(), "{address}");
            TcpListener::bind(address).expect("released for the process that will listen");
        }
    }

    #[test]
    fn try_reserve__when_port_is_reserved__then_refuses_until_released() {
        // given
        let held = PortReservation::acquire();

        // when
        let while_held = PortReservation::try_reserve(held.port());
        let port = held.port();
        drop(held);
        let after_release = PortReservation::try_reserve(port);

        // then
        assert!(while_held.is_none());
        assert_eq!(
            after_release.map(|reservation| reservation.port()),
            Some(port)
        );
    }
}
