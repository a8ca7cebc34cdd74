//! (tests added by the change that closes these holes)
