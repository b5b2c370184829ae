//! The report as an XLSX workbook: one sheet per table, a bold header row, numbers as numbers.

use super::table::{Cell, Table};
use rust_xlsxwriter::{Format, Workbook, XlsxError};

/// The workbook's bytes.
pub fn to_xlsx(tables: &[Table]) -> Result<Vec<u8>, XlsxError> {
    let mut book = Workbook::new();
    let bold = Format::new().set_bold();
    for t in tables {
        let sheet = book.add_worksheet();
        sheet.set_name(t.name)?;
        for (c, name) in t.columns.iter().enumerate() {
            sheet.write_string_with_format(0, col(c), *name, &bold)?;
        }
        for (r, row) in t.rows.iter().enumerate() {
            let r = u32::try_from(r + 1).map_err(|_| XlsxError::RowColumnLimitError)?;
            for (c, cell) in row.iter().enumerate() {
                match cell {
                    Cell::Text(s) => {
                        sheet.write_string(r, col(c), s)?;
                    }
                    Cell::Int(n) => {
                        sheet.write_number(r, col(c), *n as f64)?;
                    }
                    Cell::Num(Some(v)) => {
                        sheet.write_number(r, col(c), *v)?;
                    }
                    Cell::Num(None) | Cell::Time(None) => {}
                    Cell::Time(Some(_)) => {
                        sheet.write_string(r, col(c), cell.to_csv_field())?;
                    }
                }
            }
        }
    }
    book.save_to_buffer()
}

fn col(c: usize) -> u16 {
    u16::try_from(c).unwrap_or(u16::MAX)
}
