//! The flag set: how it is loaded into an isolate and kept fresh (`live`), how it is laid
//! out in KV and the writer (`store`), how every change is decided by the one writer
//! (`control`), what the admin API accepts (`admin`), and OFREP's request bodies and ETags
//! (`ofrep`).

pub mod admin;
pub mod control;
pub mod live;
pub mod ofrep;
pub mod store;
