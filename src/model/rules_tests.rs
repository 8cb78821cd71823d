//! Table tests of the record rules (filled in below).
