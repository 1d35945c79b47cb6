//! The decoders of the HTTP replies of the SMS and CM ports (shared-storage
//! `ports::kube::decode`): the first byte picks the HTTP status, the rest is the body.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shared_storage::ports::kube::decode;

fuzz_target!(|data: &[u8]| {
    const USUAL: [u16; 8] = [200, 201, 204, 400, 404, 409, 500, 503];
    let (status, body) = match data.split_first() {
        Some((&b, rest)) if b < 0xf0 => (USUAL[usize::from(b) % USUAL.len()], rest),
        Some((_, rest)) if rest.len() >= 2 => (u16::from_le_bytes([rest[0], rest[1]]), &rest[2..]),
        _ => (200, data),
    };
    let body = String::from_utf8_lossy(body);
    let _ = decode::decode_cm_status(status, &body);
    let _ = decode::decode_cm_action(status, &body, &["already exist", "not exist"]);
    let _ = decode::decode_sms_started(status, &body);
    let _ = decode::decode_sms_ready(status, &body);
    let _ = decode::decode_sms_topo(status, &body);
    let _ = decode::decode_sms_owner(status, &body);
    let _ = decode::decode_sms_job_record(&body);
    let _ = decode::server_message(&body);
});
