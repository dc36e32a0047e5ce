//! [`OverlayBackend`]: a copy-on-write view of the database file for the offline check. Reads
//! come from the file; whatever redb writes while it opens and checks the database (the header
//! flag, a repair) stays in memory, so checking never changes a byte of the file.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::io;
use std::sync::{Mutex, PoisonError};

use redb::StorageBackend;

/// The unit of the in-memory copy: redb's page size.
const PAGE: u64 = 4096;

/// The file, with every write kept in memory instead.
#[derive(Debug)]
pub(crate) struct OverlayBackend {
    file: Box<dyn StorageBackend>,
    written: Mutex<Written>,
}

#[derive(Debug, Default)]
struct Written {
    /// Pages written, by page index.
    pages: HashMap<u64, Vec<u8>>,
    /// The length set by redb, once it set one.
    len: Option<u64>,
}

impl OverlayBackend {
    pub(crate) fn new(file: Box<dyn StorageBackend>) -> Self {
        Self {
            file,
            written: Mutex::new(Written::default()),
        }
    }

    /// One page as the file holds it (zeros past its end).
    fn file_page(&self, index: u64) -> io::Result<Vec<u8>> {
        let mut page = vec![0; PAGE as usize];
        let start = index * PAGE;
        let file_len = self.file.len()?;
        if start < file_len {
            let available = usize::try_from((file_len - start).min(PAGE)).unwrap_or(0);
            page[..available].copy_from_slice(&self.file.read(start, available)?);
        }
        Ok(page)
    }
}

impl StorageBackend for OverlayBackend {
    fn len(&self) -> io::Result<u64> {
        let written = self.written.lock().unwrap_or_else(PoisonError::into_inner);
        match written.len {
            Some(len) => Ok(len),
            None => self.file.len(),
        }
    }

    fn read(&self, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        let written = self.written.lock().unwrap_or_else(PoisonError::into_inner);
        let mut buffer = Vec::with_capacity(len);
        let end = offset + len as u64;
        let mut position = offset;
        while position < end {
            let index = position / PAGE;
            let within = (position % PAGE) as usize;
            let take = ((PAGE as usize) - within).min(usize::try_from(end - position).unwrap_or(0));
            match written.pages.get(&index) {
                Some(page) => buffer.extend_from_slice(&page[within..within + take]),
                None => buffer.extend_from_slice(&self.file_page(index)?[within..within + take]),
            }
            position += take as u64;
        }
        Ok(buffer)
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        let mut written = self.written.lock().unwrap_or_else(PoisonError::into_inner);
        written.len = Some(len);
        Ok(())
    }

    fn sync_data(&self, _eventual: bool) -> io::Result<()> {
        Ok(())
    }

    fn write(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        let mut written = self.written.lock().unwrap_or_else(PoisonError::into_inner);
        let mut position = offset;
        let mut rest = data;
        while !rest.is_empty() {
            let index = position / PAGE;
            let within = (position % PAGE) as usize;
            let take = ((PAGE as usize) - within).min(rest.len());
            let page = match written.pages.entry(index) {
                Entry::Occupied(page) => page.into_mut(),
                Entry::Vacant(vacant) => vacant.insert(self.file_page(index)?),
            };
            page[within..within + take].copy_from_slice(&rest[..take]);
            rest = &rest[take..];
            position += take as u64;
        }
        Ok(())
    }
}
