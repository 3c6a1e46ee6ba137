//! Go's `text/tabwriter` as kubectl configures it (minimum width 0,
//! padding 2, spaces), so text kubectl aligns with tabs (`describe`,
//! `rollout history`) comes out column for column the same.
//!
//! Each line is split into cells at tabs; a cell ended by a tab belongs to
//! a column, the text after a line's last tab does not. A column block is
//! a run of consecutive lines that have a cell in that column: every cell
//! of the block is padded to the block's widest cell plus the padding.

/// Spaces after the widest cell of a column block.
const PADDING: usize = 2;

/// `text` with its tab-separated cells aligned.
pub fn align(text: &str) -> String {
    let lines: Vec<Vec<&str>> = text.split('\n').map(|line| line.split('\t').collect()).collect();
    let mut out = String::with_capacity(text.len());
    let mut widths = Vec::new();
    format(&lines, 0, lines.len(), &mut widths, &mut out);
    out
}

/// Go's `Writer.format`: lays out the column `widths.len()` of lines
/// `first..end`, recursing into the columns to its right block by block.
fn format(lines: &[Vec<&str>], first: usize, end: usize, widths: &mut Vec<usize>, out: &mut String) {
    let column = widths.len();
    let has_cell = |line: &Vec<&str>| column + 1 < line.len();
    let mut written = first;
    let mut this = first;
    while this < end {
        if !has_cell(&lines[this]) {
            this += 1;
            continue;
        }
        write_lines(lines, written, this, widths, out);
        let block = this;
        let mut width = 0;
        while this < end && has_cell(&lines[this]) {
            width = width.max(lines[this][column].chars().count() + PADDING);
            this += 1;
        }
        widths.push(width);
        format(lines, block, this, widths, out);
        widths.pop();
        written = this;
    }
    write_lines(lines, written, end, widths, out);
}

fn write_lines(lines: &[Vec<&str>], first: usize, end: usize, widths: &[usize], out: &mut String) {
    for (index, line) in lines.iter().enumerate().take(end).skip(first) {
        for (j, cell) in line.iter().enumerate() {
            out.push_str(cell);
            if let Some(width) = widths.get(j).filter(|_| j + 1 < line.len()) {
                let pad = width.saturating_sub(cell.chars().count());
                out.extend(std::iter::repeat_n(' ', pad));
            }
        }
        // The text after the last newline is a line without one.
        if index + 1 < lines.len() {
            out.push('\n');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pads_each_column_to_its_widest_cell_plus_two() {
        let text = "REVISION\tCHANGE-CAUSE\n1\t<none>\n12\tkubectl set image\n";
        assert_eq!(
            align(text),
            "REVISION  CHANGE-CAUSE\n1         <none>\n12        kubectl set image\n"
        );
    }

    #[test]
    fn a_line_without_tabs_ends_a_column_block() {
        let text = "Name:\tweb\nPod Template:\n  Labels:\tapp=web\n  Containers:\n   web:\n    Image:\tnginx\n    Port:\t80/TCP\n";
        assert_eq!(
            align(text),
            "Name:  web\nPod Template:\n  Labels:  app=web\n  Containers:\n   web:\n    Image:  nginx\n    Port:   80/TCP\n"
        );
    }

    #[test]
    fn nested_columns_align_within_their_own_blocks() {
        let text = "a\tbb\tc\naaa\tb\tc\nx\ty\n";
        assert_eq!(align(text), "a    bb  c\naaa  b   c\nx    y\n");
    }
}
