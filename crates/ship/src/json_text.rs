//! Writing JSON text straight into a buffer: strings from arbitrary bytes and numbers checked
//! against JSON's grammar, so documents are built without an intermediate tree.

/// Writes `s` as a JSON string literal.
pub fn write_str(out: &mut Vec<u8>, s: &str) {
    // Writing into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
}

/// Writes bytes as a JSON string literal. Bytes that are not UTF-8 are written as the text `\xHH`,
/// as Zeek's JSON writer does.
pub fn write_bytes(out: &mut Vec<u8>, b: &[u8]) {
    match std::str::from_utf8(b) {
        Ok(s) => write_str(out, s),
        Err(_) => {
            let mut s = String::with_capacity(b.len() + 8);
            for chunk in b.utf8_chunks() {
                s.push_str(chunk.valid());
                for byte in chunk.invalid() {
                    s.push_str(&format!("\\x{byte:02x}"));
                }
            }
            write_str(out, &s);
        }
    }
}

/// Writes `"key":` with `key` escaped.
pub fn write_key(out: &mut Vec<u8>, key: &str) {
    write_str(out, key);
    out.push(b':');
}

/// True when `b` is a number in JSON's grammar: `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`.
pub fn is_number(b: &[u8]) -> bool {
    let mut i = 0;
    if b.first() == Some(&b'-') {
        i += 1;
    }
    let digits = |i: &mut usize| {
        let start = *i;
        while *i < b.len() && b[*i].is_ascii_digit() {
            *i += 1;
        }
        *i - start
    };
    let int_start = i;
    let n = digits(&mut i);
    if n == 0 || (n > 1 && b[int_start] == b'0') {
        return false;
    }
    if i < b.len() && b[i] == b'.' {
        i += 1;
        if digits(&mut i) == 0 {
            return false;
        }
    }
    if i < b.len() && matches!(b[i], b'e' | b'E') {
        i += 1;
        if i < b.len() && matches!(b[i], b'+' | b'-') {
            i += 1;
        }
        if digits(&mut i) == 0 {
            return false;
        }
    }
    i == b.len()
}

/// Appends members to a JSON object being written, nested objects included, with the commas.
pub struct ObjectWriter<'o> {
    out: &'o mut Vec<u8>,
    /// Members written so far, per open object (innermost last).
    counts: Vec<usize>,
}

impl<'o> ObjectWriter<'o> {
    /// Continues an object whose opening brace and `members` members are already in `out`.
    pub fn resume(out: &'o mut Vec<u8>, members: usize) -> Self {
        ObjectWriter {
            out,
            counts: vec![members],
        }
    }

    fn key(&mut self, key: &str) {
        let n = self.counts.last_mut().expect("an open object");
        if *n > 0 {
            self.out.push(b',');
        }
        *n += 1;
        write_key(self.out, key);
    }

    /// Opens a nested object under `key`.
    pub fn begin(&mut self, key: &str) {
        self.key(key);
        self.out.push(b'{');
        self.counts.push(0);
    }

    /// Closes the innermost object (the outermost one included).
    pub fn end(&mut self) {
        self.counts.pop();
        self.out.push(b'}');
    }

    /// `"key":"value"`.
    pub fn str(&mut self, key: &str, value: &str) {
        self.key(key);
        write_str(self.out, value);
    }

    /// `"key":value` with `value` already JSON text.
    pub fn raw(&mut self, key: &str, json: &[u8]) {
        self.key(key);
        self.out.extend_from_slice(json);
    }

    /// `"key":n`.
    pub fn u64(&mut self, key: &str, n: u64) {
        self.key(key);
        self.out.extend_from_slice(n.to_string().as_bytes());
    }

    /// The buffer, to write a value by other means right after `key`.
    pub fn value_of(&mut self, key: &str) -> &mut Vec<u8> {
        self.key(key);
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_and_numbers() {
        let mut v = Vec::new();
        write_bytes(&mut v, b"a\"b\t\xffc");
        assert_eq!(v, br#""a\"b\t\\xffc""#);
        for ok in ["0", "-1", "1.5", "1e-05", "1709251200.123456", "2E+3"] {
            assert!(is_number(ok.as_bytes()), "{ok}");
        }
        for bad in ["", "-", "01", "1.", ".5", "nan", "inf", "1e", "0x10", "1 "] {
            assert!(!is_number(bad.as_bytes()), "{bad}");
        }
    }
}
