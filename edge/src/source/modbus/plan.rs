//! The read plan: a device's points merged into as few requests as the device allows.
//!
//! Points of one table and one poll interval are sorted by address and merged while the
//! merged span stays within the device's `registers_per_request_max` (2000 for bit tables,
//! capped by the protocol) and the unused addresses between two points are at most `gap_max`.
//! One request per block instead of one per point (or per logical device) is what keeps a
//! 9600-baud line with many slaves inside its frame budget.

use super::point::Table;
use super::profile::{DeviceProfile, Point};
use std::time::Duration;

/// One read request of the plan.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    pub table: Table,
    pub address: u16,
    pub count: u16,
    pub poll: Duration,
    /// Indices into the profile's points this request carries.
    pub points: Vec<usize>,
}

impl Request {
    /// The items (registers or bits) of `point` within this request's answer.
    pub fn slice<'a, T>(&self, point: &Point, answer: &'a [T]) -> Option<&'a [T]> {
        let start = usize::from(point.address.checked_sub(self.address)?);
        answer.get(start..start + usize::from(point.ty.width()))
    }
}

/// Merges the profile's points into requests (ordered by poll, table, address).
pub fn plan(profile: &DeviceProfile) -> Vec<Request> {
    let mut order: Vec<usize> = (0..profile.points.len()).collect();
    order.sort_by_key(|&i| {
        let p = &profile.points[i];
        (p.poll, p.table, p.address, p.end())
    });
    let mut out: Vec<Request> = Vec::new();
    for i in order {
        let p = &profile.points[i];
        let max = if p.table.is_bits() {
            Table::Coil.items_per_request_max()
        } else {
            profile.registers_per_request_max
        };
        if let Some(last) = out.last_mut() {
            let last_end = u32::from(last.address) + u32::from(last.count) - 1;
            let end = last_end.max(p.end());
            let fits = last.table == p.table
                && last.poll == p.poll
                && u32::from(p.address) <= last_end + 1 + u32::from(profile.gap_max)
                && end - u32::from(last.address) < u32::from(max);
            if fits {
                last.count = (end - u32::from(last.address) + 1) as u16;
                last.points.push(i);
                continue;
            }
        }
        out.push(Request {
            table: p.table,
            address: p.address,
            count: p.ty.width(),
            poll: p.poll,
            points: vec![i],
        });
    }
    out
}
