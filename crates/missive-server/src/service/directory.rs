//! Phone number → user id of registered users, kept in memory so that a send
//! addressed by phone number does not read the database each time.
//!
//! The mapping never goes stale: a user keeps their phone number for life and
//! users are never deleted, so an entry, once read from the store, is true on
//! every node for as long as the process runs. Only found users are kept (an
//! unknown number may register at any moment). The map is bounded: past
//! [`MAX_ENTRIES`] it starts over and refills by use.

use std::collections::HashMap;
use std::sync::RwLock;

use uuid::Uuid;

use crate::domain::PhoneNumber;

/// Numbers kept before the directory starts over (about 80 bytes each).
pub const MAX_ENTRIES: usize = 200_000;

/// Known phone numbers and their users (see the module docs).
#[derive(Default)]
pub struct Directory {
    users: RwLock<HashMap<Box<str>, Uuid>>,
}

impl Directory {
    /// The user registered with `phone`, if it was looked up before.
    pub fn get(&self, phone: &PhoneNumber) -> Option<Uuid> {
        self.users.read().ok()?.get(phone.as_str()).copied()
    }

    /// Remembers that `phone` belongs to `user`.
    pub fn put(&self, phone: &PhoneNumber, user: Uuid) {
        if let Ok(mut users) = self.users.write() {
            if users.len() >= MAX_ENTRIES {
                users.clear();
            }
            users.insert(phone.as_str().into(), user);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn phone(raw: &str) -> PhoneNumber {
        PhoneNumber::parse(raw).expect("a valid number")
    }

    #[test]
    fn a_remembered_number_gives_its_user_and_others_nothing() {
        let directory = Directory::default();
        let alice = Uuid::now_v7();
        assert_eq!(directory.get(&phone("+15550001")), None);
        directory.put(&phone("+15550001"), alice);
        assert_eq!(directory.get(&phone("+15550001")), Some(alice));
        assert_eq!(directory.get(&phone("+15550002")), None);
    }

    #[test]
    fn it_starts_over_when_full() {
        let directory = Directory::default();
        for i in 0..MAX_ENTRIES {
            directory.put(&phone(&format!("+1{i:09}")), Uuid::nil());
        }
        let last = Uuid::now_v7();
        directory.put(&phone("+19999999999"), last);
        assert_eq!(directory.get(&phone("+19999999999")), Some(last));
        assert_eq!(directory.get(&phone("+1000000000")), None);
        assert_eq!(directory.users.read().map(|u| u.len()).ok(), Some(1));
    }
}
