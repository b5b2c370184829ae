//! The hub's decoders of edge messages on arbitrary bytes: never panic; a batch that opens
//! re-seals to bytes that open to the same batch.
#![no_main]

use libfuzzer_sys::fuzz_target;
use protocol::uplink::{Ack, EdgeStatus, UplinkBatch};

fuzz_target!(|data: &[u8]| {
    if let Ok(unverified) = UplinkBatch::open(data) {
        let batch = unverified.batch.clone();
        // Nobody forges an HMAC-SHA256 tag by mutation.
        assert!(unverified.verify(&[7; 32]).is_err());
        let key = protocol::uplink::mac_key("fuzz");
        let sealed = batch.seal(&key);
        let again = UplinkBatch::open(&sealed).expect("re-sealed batch opens");
        assert_eq!(again.verify(&key).expect("own key verifies").seq, batch.seq);
    }
    assert!(
        Ack::open(data, &[7; 32], "edge-1").is_err(),
        "nobody forges an ack tag by mutation"
    );
    let _ = EdgeStatus::decode(data);
    assert!(
        EdgeStatus::open(data, &[7; 32]).is_err(),
        "nobody forges a status tag by mutation"
    );
});
