//! Every point type × byte/word order × scaling, decoded from hand-computed register images
//! through the real path (profile text → read plan → answer → report), and the simulator's
//! encoder checked against the same images.

use edge::source::modbus::client::Answer;
use edge::source::modbus::line::Slave;
use edge::source::modbus::plan::plan;
use edge::source::modbus::point::{encode_words, Order, PointType};
use edge::source::modbus::poller::report_of;
use edge::source::modbus::profile::DeviceProfile;
use protocol::Value;
use std::path::Path;

/// (type, raw value, register images in ABCD, CDAB, BADC, DCBA order as hex words), computed
/// by hand from the big-endian bytes of the value.
const IMAGES: &[(&str, f64, [&str; 4])] = &[
    ("u16", 4660.0, ["1234", "1234", "3412", "3412"]),
    ("i16", -2.0, ["FFFE", "FFFE", "FEFF", "FEFF"]),
    (
        "u32",
        305_419_896.0,
        ["1234 5678", "5678 1234", "3412 7856", "7856 3412"],
    ),
    (
        "i32",
        -123_456.0,
        ["FFFE 1DC0", "1DC0 FFFE", "FEFF C01D", "C01D FEFF"],
    ),
    (
        "f32",
        12.5,
        ["4148 0000", "0000 4148", "4841 0000", "0000 4841"],
    ),
    // 0x0001_0203_0405_0607: exact in an f64 (below 2^53).
    (
        "u64",
        283_686_952_306_183.0,
        [
            "0001 0203 0405 0607",
            "0607 0405 0203 0001",
            "0100 0302 0504 0706",
            "0706 0504 0302 0100",
        ],
    ),
    (
        "i64",
        -2.0,
        [
            "FFFF FFFF FFFF FFFE",
            "FFFE FFFF FFFF FFFF",
            "FFFF FFFF FFFF FEFF",
            "FEFF FFFF FFFF FFFF",
        ],
    ),
    (
        "f64",
        -1.5,
        [
            "BFF8 0000 0000 0000",
            "0000 0000 0000 BFF8",
            "F8BF 0000 0000 0000",
            "0000 0000 0000 F8BF",
        ],
    ),
];

/// "1234 5678" → [0x1234, 0x5678].
fn words(hex: &str) -> Vec<u16> {
    hex.split(' ')
        .map(|w| u16::from_str_radix(w, 16).unwrap())
        .collect()
}

const ORDERS: [(&str, Order); 4] = [
    ("ABCD", Order::Abcd),
    ("CDAB", Order::Cdab),
    ("BADC", Order::Badc),
    ("DCBA", Order::Dcba),
];

/// (scale, offset) pairs: identity, a decimal scale, and scale with an offset (°C from raw).
const SCALINGS: [(f64, f64); 3] = [(1.0, 0.0), (0.1, 0.0), (0.01, -40.0)];

fn slave_of(toml: &str) -> Slave {
    let profile = DeviceProfile::parse(toml, Path::new("test.toml")).expect("profile parses");
    Slave {
        unit: 1,
        sensor: "S-1".into(),
        plan: plan(&profile),
        profile,
    }
}

/// The one value a one-point profile decodes from `words`.
fn decode(ty: &str, order: &str, scale: f64, offset: f64, words: &[u16]) -> Value {
    let slave = slave_of(&format!(
        "name = \"t\"\nkind = \"modbus\"\n[[point]]\nquantity = \"temperature\"\n\
         table = \"holding\"\naddress = 7\ntype = \"{ty}\"\norder = \"{order}\"\n\
         scale = {scale:?}\noffset = {offset:?}\n"
    ));
    assert_eq!(slave.plan.len(), 1);
    let r = report_of(&slave, &slave.plan[0], &Answer::Words(words.to_vec()));
    assert_eq!(r.values.len(), 1, "{ty} {order}");
    r.values[0].1
}

#[test]
fn every_type_and_order_decodes_its_hand_computed_image_under_every_scaling() {
    let mut checked = 0;
    for (ty, raw, images) in IMAGES {
        for (k, (order_name, _)) in ORDERS.iter().enumerate() {
            for (scale, offset) in SCALINGS {
                let got = decode(ty, order_name, scale, offset, &words(images[k]));
                let want = raw * scale + offset;
                let Value::Float(got) = got else {
                    panic!("{ty} {order_name}: {got:?} is not a float")
                };
                let tolerance = want.abs() * 1e-12;
                assert!(
                    (got - want).abs() <= tolerance,
                    "{ty} {order_name} ×{scale}+{offset}: got {got}, want {want}"
                );
                checked += 1;
            }
        }
    }
    assert_eq!(checked, IMAGES.len() * 4 * 3);
}

#[test]
fn the_encoder_writes_the_same_images() {
    for (ty, raw, images) in IMAGES {
        let t: PointType = toml::Value::String(ty.to_string()).try_into().unwrap();
        for (k, (name, order)) in ORDERS.iter().enumerate() {
            assert_eq!(
                encode_words(*raw, t, *order),
                words(images[k]),
                "{ty} {name}"
            );
        }
    }
}

#[test]
fn bool_points_read_coils_and_register_bits() {
    let slave = slave_of(
        "name = \"t\"\nkind = \"modbus\"\n\
         [[point]]\nquantity = \"alarm\"\ntable = \"holding\"\naddress = 0\ntype = \"bool\"\nbit = 2\n\
         [[point]]\nquantity = \"leak\"\ntable = \"holding\"\naddress = 0\ntype = \"bool\"\nbit = 1\n\
         [[point]]\nquantity = \"door_open\"\ntable = \"coil\"\naddress = 3\ntype = \"bool\"\n",
    );
    assert_eq!(
        slave.plan.len(),
        2,
        "one register request, one coil request"
    );
    let regs = report_of(&slave, &slave.plan[0], &Answer::Words(vec![0x0004]));
    assert_eq!(
        regs.values,
        vec![
            (protocol::Quantity::Alarm, Value::Bool(true)),
            (protocol::Quantity::Leak, Value::Bool(false)),
        ]
    );
    let coils = report_of(&slave, &slave.plan[1], &Answer::Bits(vec![true]));
    assert_eq!(
        coils.values,
        vec![(protocol::Quantity::DoorOpen, Value::Bool(true))]
    );
}

#[test]
fn a_short_answer_yields_no_value_rather_than_a_wrong_one() {
    let slave = slave_of(
        "name = \"t\"\nkind = \"modbus\"\n[[point]]\nquantity = \"pressure\"\ntable = \"input\"\n\
         address = 0\ntype = \"f32\"\n",
    );
    let r = report_of(&slave, &slave.plan[0], &Answer::Words(vec![0x4148]));
    assert!(r.values.is_empty(), "{:?}", r.values);
}
