//! The wire: intact and damaged copies on the serial lines and MQTT, and what they count.

use super::{Damage, Engine, Out, Tx};
use crate::summary::{RecordLine, SensorSummary};
use anyhow::Result;
use std::io::Write;

impl Engine {
    /// Writes `bytes` (already ending in 0x00) on line A after a 0x00; false if refused.
    pub(super) fn put_line(&mut self, name: &'static str, bytes: &[u8], lead_zero: bool) -> bool {
        let line = if name == "A" {
            &self.out.line_a
        } else {
            &self.out.line_b
        };
        let Some(line) = line else { return false };
        let mut buf = Vec::with_capacity(bytes.len() + 1);
        if lead_zero {
            buf.push(0);
        }
        buf.extend_from_slice(bytes);
        let n = buf.len() as u64;
        let ok = line.try_send(buf);
        if let Some(l) = self.lines.get_mut(name) {
            if ok {
                l.bytes += n;
            } else {
                l.dropped += 1;
            }
        }
        ok
    }

    pub(super) fn send_noise(&mut self, bytes: Vec<u8>) {
        if self.put_line("A", &bytes, true) {
            if let Some(l) = self.lines.get_mut("A") {
                l.noise_bursts += 1;
            }
        }
    }

    pub(super) fn send_damaged(&mut self, tx: &Tx, kind: Damage, bytes: Vec<u8>) {
        if !self.put_line("A", &bytes, true) {
            self.count_dropped(tx);
            return;
        }
        let l = self
            .lines
            .get_mut("A")
            .expect("line A is open when it has sensors");
        match kind {
            Damage::Corrupt => l.frames_corrupted += 1,
            Damage::Truncate => l.frames_truncated += 1,
        }
        for item in &tx.items {
            let st = &mut self.sensors[item.sensor].stats;
            note_seq(st, item.seq);
            st.messages += 1;
            match kind {
                Damage::Corrupt => st.frames_corrupted += 1,
                Damage::Truncate => st.frames_truncated += 1,
            }
        }
    }

    pub(super) fn count_dropped(&mut self, tx: &Tx) {
        for item in &tx.items {
            self.sensors[item.sensor].stats.dropped += 1;
        }
    }

    /// Sends an intact copy and counts it; the first intact copy counts the readings.
    pub(super) async fn send_intact(&mut self, tx: &mut Tx, duplicate: bool) -> Result<()> {
        let sent = match &tx.out {
            Out::LineA(frame) => {
                let ok = self.put_line("A", frame, true);
                if ok {
                    self.lines.get_mut("A").expect("line A").frames_sent += 1;
                }
                ok
            }
            Out::LineB(text) => {
                let ok = self.put_line("B", text, false);
                if ok {
                    self.lines.get_mut("B").expect("line B").frames_sent += 1;
                }
                ok
            }
            Out::Mqtt(m) => {
                if let Some(mqtt) = &mut self.out.mqtt {
                    mqtt.publish(&m.topic, m.payload.clone()).await?;
                }
                if let Some((_, w)) = &mut self.out.mqtt_dump {
                    w.write_all(m.topic.as_bytes())?;
                    w.write_all(b"\t")?;
                    w.write_all(&m.payload)?;
                    w.write_all(b"\n")?;
                    if self.out.mqtt.is_none() {
                        self.dump_count += 1;
                        *self.dump_topics.entry(m.topic.clone()).or_default() += 1;
                    }
                }
                true
            }
        };
        if !sent {
            self.count_dropped(tx);
            return Ok(());
        }
        let first = !tx.delivered;
        tx.delivered = true;
        for item in &tx.items {
            let sensor = &mut self.sensors[item.sensor];
            let st = &mut sensor.stats;
            note_seq(st, item.seq);
            st.messages += 1;
            if duplicate {
                st.duplicates_sent += 1;
            }
            if first {
                st.readings += item.decoded.values.len() as u64;
                if let Some(rec) = &mut self.out.record {
                    for &(quantity, value) in &item.decoded.values {
                        let line = RecordLine {
                            sensor: sensor.s.id.clone(),
                            quantity,
                            value,
                            ts_ms: item.decoded.ts_ms,
                            seq: item.seq,
                        };
                        serde_json::to_writer(&mut *rec, &line)?;
                        rec.write_all(b"\n")?;
                    }
                }
            }
        }
        Ok(())
    }
}

fn note_seq(st: &mut SensorSummary, seq: u32) {
    st.seq_first = Some(st.seq_first.map_or(seq, |f| f.min(seq)));
    st.seq_last = Some(st.seq_last.map_or(seq, |l| l.max(seq)));
}
