//! What the harness reads of one `poa-node` process from `/proc` (the soak, the memory
//! measurement): resident memory and its peak, open descriptors, threads, and TCP connections
//! (the process's sockets found in `/proc/<pid>/net/tcp` and `tcp6` that are not listening).
//! Owns the parsing; Linux only, like the fleet.

use std::collections::HashSet;

use anyhow::{Context, Result, anyhow};

/// The TCP state `/proc/net/tcp` writes for a listening socket.
const TCP_LISTEN: &str = "0A";

/// One reading of one process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Reading {
    /// `VmRSS`, in KiB.
    pub(crate) rss_kib: u64,
    /// `VmHWM`, the peak of `VmRSS` so far, in KiB.
    pub(crate) hwm_kib: u64,
    /// Entries of `/proc/<pid>/fd`.
    pub(crate) descriptors: u64,
    /// `Threads` of `/proc/<pid>/status`.
    pub(crate) threads: u64,
    /// TCP sockets of the process that are not listening (connected, connecting or closing).
    pub(crate) connections: u64,
}

impl Reading {
    /// Reads process `pid` now.
    ///
    /// # Errors
    /// Fails when the process is gone or `/proc` cannot be read.
    pub(crate) fn of_process(pid: u32) -> Result<Self> {
        let status_path = format!("/proc/{pid}/status");
        let status = std::fs::read_to_string(&status_path)
            .with_context(|| format!("cannot read {status_path}"))?;
        let field = |key: &str| {
            status_field(&status, key).ok_or_else(|| anyhow!("no {key} in {status_path}"))
        };
        let (rss_kib, hwm_kib, threads) = (field("VmRSS:")?, field("VmHWM:")?, field("Threads:")?);
        let fd_dir = format!("/proc/{pid}/fd");
        let mut descriptors = 0;
        let mut sockets = HashSet::new();
        for entry in std::fs::read_dir(&fd_dir).with_context(|| format!("cannot list {fd_dir}"))? {
            // A descriptor closed between the listing and the read is simply not counted.
            let Ok(entry) = entry else { continue };
            descriptors += 1;
            if let Ok(target) = std::fs::read_link(entry.path())
                && let Some(inode) = socket_inode(&target.to_string_lossy())
            {
                sockets.insert(inode);
            }
        }
        let mut connections = 0;
        for table in ["tcp", "tcp6"] {
            let path = format!("/proc/{pid}/net/{table}");
            // A kernel without IPv6 has no tcp6 table: nothing to count there.
            if let Ok(text) = std::fs::read_to_string(&path) {
                connections += count_connections(&text, &sockets);
            }
        }
        Ok(Self {
            rss_kib,
            hwm_kib,
            descriptors,
            threads,
            connections,
        })
    }
}

/// The number after `key` in a `/proc/<pid>/status` text (a trailing `kB` is dropped).
fn status_field(text: &str, key: &str) -> Option<u64> {
    let rest = text.lines().find_map(|line| line.strip_prefix(key))?.trim();
    rest.strip_suffix("kB").unwrap_or(rest).trim().parse().ok()
}

/// The inode of a descriptor's link target `socket:[12345]`; `None` for anything else.
fn socket_inode(target: &str) -> Option<u64> {
    target
        .strip_prefix("socket:[")?
        .strip_suffix(']')?
        .parse()
        .ok()
}

/// The rows of a `/proc/net/tcp` table whose inode is one of `sockets` and whose state is not
/// listening.
fn count_connections(table: &str, sockets: &HashSet<u64>) -> u64 {
    let connected = table.lines().skip(1).filter(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (Some(state), Some(inode)) = (fields.get(3), fields.get(9)) else {
            return false;
        };
        *state != TCP_LISTEN && inode.parse().is_ok_and(|inode| sockets.contains(&inode))
    });
    connected.count() as u64
}

#[cfg(test)]
#[allow(non_snake_case)]
mod tests {
    use std::net::{Ipv4Addr, TcpListener, TcpStream};

    use super::*;

    const TCP_TABLE: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 111 1 0000000000000000 100 0 0 10 0\n\
   1: 0100007F:1F90 0100007F:C350 01 00000000:00000000 00:00000000 00000000  1000        0 222 1 0000000000000000 20 4 30 10 -1\n\
   2: 0100007F:C351 0100007F:18EB 01 00000000:00000000 00:00000000 00000000  1000        0 333 1 0000000000000000 20 4 30 10 -1\n\
   3: 0100007F:C352 0100007F:18EB 06 00000000:00000000 03:00000000 00000000     0        0 0 3 0000000000000000\n";

    #[test]
    fn count_connections__when_the_table_mixes_listeners_and_other_processes__then_only_own_connected_sockets()
     {
        // given: the process owns the listener (111) and one connection (222); 333 is another
        // process's, the last row a socket in TIME_WAIT that no process owns
        let sockets: HashSet<u64> = [111, 222].into_iter().collect();

        // when
        let count = count_connections(TCP_TABLE, &sockets);

        // then
        assert_eq!(count, 1);
    }

    #[test]
    fn socket_inode__when_link_targets_vary__then_only_sockets_give_an_inode() {
        // given / when / then
        assert_eq!(socket_inode("socket:[4242]"), Some(4242));
        assert_eq!(socket_inode("pipe:[4242]"), None);
        assert_eq!(socket_inode("/var/lib/poa/chain.redb"), None);
    }

    #[test]
    fn status_field__when_read__then_numbers_with_or_without_unit() {
        // given
        let text = "Name:\tpoa-node\nVmRSS:\t   28672 kB\nThreads:\t5\n";

        // when / then
        assert_eq!(status_field(text, "VmRSS:"), Some(28_672));
        assert_eq!(status_field(text, "Threads:"), Some(5));
        assert_eq!(status_field(text, "VmHWM:"), None);
    }

    #[test]
    fn of_process__when_this_process_holds_a_connection__then_it_is_counted() {
        // given: a listener and a connection to it, both held by this process
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let before = Reading::of_process(std::process::id()).unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();

        // when
        let after = Reading::of_process(std::process::id()).unwrap();

        // then: both ends are this process's sockets, two more descriptors, two connections
        assert!(after.rss_kib > 0 && after.threads >= 1, "{after:?}");
        assert!(after.hwm_kib >= after.rss_kib, "{after:?}");
        assert!(
            after.descriptors >= before.descriptors + 2,
            "{before:?} {after:?}"
        );
        assert!(
            after.connections >= before.connections + 2,
            "{before:?} {after:?}"
        );
        drop((client, server));
    }
}
