//! The Modbus TCP server: MBAP-framed requests on any number of connections, each answered by
//! the device with the header's unit id (a gateway with several devices behind it).

use super::frame::{tcp_frame, ReadRequest};
use super::Bus;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Accepts connections until the process stops.
pub async fn serve(listener: TcpListener, bus: Bus) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(connection(stream, bus.clone()));
    }
}

async fn connection(mut s: TcpStream, bus: Bus) {
    let mut head = [0u8; 7];
    loop {
        if s.read_exact(&mut head).await.is_err() {
            return;
        }
        let transaction = u16::from_be_bytes([head[0], head[1]]);
        let len = usize::from(u16::from_be_bytes([head[4], head[5]]));
        if head[2..4] != [0, 0] || !(2..=254).contains(&len) {
            return;
        }
        let mut pdu = vec![0u8; len - 1];
        if s.read_exact(&mut pdu).await.is_err() {
            return;
        }
        if pdu.len() != 5 || !(1..=4).contains(&pdu[0]) {
            let answer = tcp_frame(transaction, head[6], &[pdu[0] | 0x80, 1]);
            if s.write_all(&answer).await.is_err() {
                return;
            }
            continue;
        }
        let req = ReadRequest {
            unit: head[6],
            function: pdu[0],
            address: u16::from_be_bytes([pdu[1], pdu[2]]),
            count: u16::from_be_bytes([pdu[3], pdu[4]]),
        };
        let Some(mut reply) = bus.answer(req) else {
            continue;
        };
        if reply.corrupt {
            // No CRC on TCP: a garbled answer is a wrong byte count.
            if let Some(b) = reply.pdu.get_mut(1) {
                *b = b.wrapping_add(1);
            }
        }
        // A zero sleep would still wait for the timer's next millisecond tick.
        if !reply.delay.is_zero() {
            tokio::time::sleep(reply.delay).await;
        }
        let frame = tcp_frame(transaction, req.unit, &reply.pdu);
        if s.write_all(&frame).await.is_err() {
            return;
        }
        bus.delivered(req.unit, &reply);
    }
}
