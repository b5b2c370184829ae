//! Golden table of the quantity wire codes. On the wire a quantity is its code, so the codes are
//! append-only: a code is never changed, removed or given to another quantity. This test fails if
//! one is; a new quantity is appended to `Quantity` and to this table, with the next code.

use protocol::Quantity;

/// (wire code, canonical name, unit), as shipped. Append only.
const GOLDEN: &[(u8, &str, &str)] = &[
    (0, "tilt", "deg"),
    (1, "opened", "bool"),
    (2, "water_level", "cm"),
    (3, "battery", "%"),
    (4, "voltage", "V"),
    (5, "current", "A"),
    (6, "power", "W"),
    (7, "lamp_on", "bool"),
    (8, "pressure", "MPa"),
    (9, "leak", "bool"),
    (10, "smoke", "%obs/m"),
    (11, "alarm", "bool"),
    (12, "gas", "%LEL"),
    (13, "door_open", "bool"),
    (14, "motion", "bool"),
    (15, "trapped", "bool"),
    (16, "fault_code", "code"),
    (17, "residual_current", "mA"),
    (18, "cable_temp", "°C"),
    (19, "fill_level", "%"),
    (20, "pm25", "µg/m³"),
    (21, "noise", "dB(A)"),
    (22, "temperature", "°C"),
    (23, "humidity", "%"),
];

#[test]
fn every_shipped_wire_code_still_names_the_same_quantity() {
    for (i, &(code, name, unit)) in GOLDEN.iter().enumerate() {
        assert_eq!(
            usize::from(code),
            i,
            "golden table: codes are 0, 1, 2, … in order"
        );
        let q = Quantity::from_code(code)
            .unwrap_or_else(|| panic!("wire code {code} ({name}) was removed"));
        assert_eq!(q.name(), name, "wire code {code} was changed or reused");
        assert_eq!(q.unit(), unit, "the unit of {name} (code {code}) changed");
        assert_eq!(
            Quantity::from_name(name),
            Ok(q),
            "{name} moved off code {code}"
        );
        // The postcard encoding is the code itself (a one-byte varint).
        assert_eq!(postcard::to_allocvec(&q).unwrap(), [code], "{name}");
    }
}

#[test]
fn every_quantity_is_in_the_golden_table() {
    assert_eq!(
        Quantity::COUNT,
        GOLDEN.len(),
        "a quantity was added: append it to GOLDEN with code {}",
        GOLDEN.len()
    );
    assert_eq!(Quantity::ALL.len(), Quantity::COUNT);
    assert_eq!(Quantity::from_code(Quantity::COUNT as u8), None);
}
