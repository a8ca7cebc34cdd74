//! KitsuLAN's black-box tests, one binary (so the harness is linked once): each module is the
//! tests of one part of the product, run against the real `kitsulan` binary.

mod accounts;
mod attachments;
mod avatars;
mod backup;
mod calls;
mod conversations;
mod e2ee;
mod foundation;
mod gateway;
mod groups;
mod key_backup;
mod security;
mod webrtc_calls;
