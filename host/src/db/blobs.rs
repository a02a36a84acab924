//! The `artifact_blobs` table: JSON payloads referenced as `blob:<id>`
//! (skill payloads, browser traces).
