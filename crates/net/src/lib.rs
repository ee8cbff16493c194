//! berth-net
