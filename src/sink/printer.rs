//! Prints a received message exactly as Python 3.11's
//! `python -m smtpd -n -c DebuggingServer` does, so that a developer who
//! knows that output (or a script that reads it) sees no difference.
//!
//! DebuggingServer gets the DATA payload without its terminating CRLF, splits
//! it on CRLF, joins the pieces with LF, splits *that* with `bytes.splitlines`
//! (which also breaks at a lone CR), and prints each line as a Python bytes
//! literal, inserting `X-Peer` before the first empty line. The MAIL
//! parameters, upper-cased and split on white space, come first as a Python
//! list when there are any.

pub const BEGIN: &str = "---------- MESSAGE FOLLOWS ----------";
pub const END: &str = "------------ END MESSAGE ------------";

/// Python's `repr()` of a `bytes` value.
pub fn py_bytes_repr(b: &[u8]) -> String {
    let quote = if b.contains(&b'\'') && !b.contains(&b'"') {
        b'"'
    } else {
        b'\''
    };
    let mut out = String::with_capacity(b.len() + 3);
    out.push('b');
    out.push(quote as char);
    for &c in b {
        match c {
            b'\\' => out.push_str("\\\\"),
            b'\t' => out.push_str("\\t"),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            c if c == quote => {
                out.push('\\');
                out.push(c as char);
            }
            0x20..=0x7e => out.push(c as char),
            c => out.push_str(&format!("\\x{c:02x}")),
        }
    }
    out.push(quote as char);
    out
}

/// Python's `repr()` of a `str`, for the ASCII and Latin text SMTP
/// parameters are made of (non-printable code points are escaped).
pub fn py_str_repr(s: &str) -> String {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::with_capacity(s.len() + 2);
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || (0x7f..=0xa0).contains(&(c as u32)) || c == '\u{ad}' => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c => out.push(c),
        }
    }
    out.push(quote);
    out
}

/// Python's `bytes.splitlines()`: breaks at LF, CR and CRLF; no empty tail.
pub fn py_splitlines(b: &[u8]) -> Vec<&[u8]> {
    let mut lines = Vec::new();
    let (mut start, mut i) = (0, 0);
    while i < b.len() {
        match b[i] {
            b'\n' => {
                lines.push(&b[start..i]);
                i += 1;
                start = i;
            }
            b'\r' => {
                lines.push(&b[start..i]);
                i += if b.get(i + 1) == Some(&b'\n') { 2 } else { 1 };
                start = i;
            }
            _ => i += 1,
        }
    }
    if start < b.len() {
        lines.push(&b[start..]);
    }
    lines
}

/// The whole printout of one message. `data` is the unstuffed payload
/// without the CRLF that preceded the terminating dot.
pub fn render(peer_ip: &str, mail_options: &[String], data: &[u8]) -> Vec<u8> {
    let mut out = String::new();
    out.push_str(BEGIN);
    out.push('\n');
    if !mail_options.is_empty() {
        let items: Vec<String> = mail_options.iter().map(|o| py_str_repr(o)).collect();
        out.push_str(&format!("mail options: [{}]\n", items.join(", ")));
    }
    // CRLF → LF as DebuggingServer's channel does before it splits lines.
    let joined = data.split_inclusive(|&c| c == b'\n').fold(
        Vec::with_capacity(data.len()),
        |mut acc, piece| {
            match piece.strip_suffix(b"\r\n") {
                Some(p) => {
                    acc.extend_from_slice(p);
                    acc.push(b'\n');
                }
                None => acc.extend_from_slice(piece),
            }
            acc
        },
    );
    let mut in_headers = true;
    for line in py_splitlines(&joined) {
        if in_headers && line.is_empty() {
            out.push_str(&py_bytes_repr(format!("X-Peer: {peer_ip}").as_bytes()));
            out.push('\n');
            in_headers = false;
        }
        out.push_str(&py_bytes_repr(line));
        out.push('\n');
    }
    out.push_str(END);
    out.push('\n');
    out.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_repr_matches_python() {
        // Expected values from CPython 3.11's repr().
        let cases: &[(&[u8], &str)] = &[
            (b"", "b''"),
            (b"plain", "b'plain'"),
            (b"it's", "b\"it's\""),
            (b"both ' and \"", "b'both \\' and \"'"),
            (b"say \"hi\"", "b'say \"hi\"'"),
            (b"tab\there", "b'tab\\there'"),
            (b"back\\slash", "b'back\\\\slash'"),
            (b"\x00\x1f\x7f\x80\xff", "b'\\x00\\x1f\\x7f\\x80\\xff'"),
            ("jürgen".as_bytes(), "b'j\\xc3\\xbcrgen'"),
        ];
        for (input, want) in cases {
            assert_eq!(py_bytes_repr(input), *want, "{input:?}");
        }
    }

    #[test]
    fn splitlines_matches_python() {
        let lines: Vec<&[u8]> = vec![b"a", b"b", b"", b"c", b"d"];
        assert_eq!(py_splitlines(b"a\nb\r\rc\r\nd"), lines);
        assert_eq!(py_splitlines(b"a\n"), vec![b"a" as &[u8]]);
        assert!(py_splitlines(b"").is_empty());
    }

    #[test]
    fn renders_like_debugging_server() {
        let data = b"Subject: hi\r\nFrom: a@b.org\r\n\r\nbody 'q'\r\n.dot\r\nlast";
        let out = String::from_utf8(render("127.0.0.1", &["BODY=8BITMIME".into()], data)).unwrap();
        assert_eq!(
            out,
            "---------- MESSAGE FOLLOWS ----------\n\
             mail options: ['BODY=8BITMIME']\n\
             b'Subject: hi'\n\
             b'From: a@b.org'\n\
             b'X-Peer: 127.0.0.1'\n\
             b''\n\
             b\"body 'q'\"\n\
             b'.dot'\n\
             b'last'\n\
             ------------ END MESSAGE ------------\n"
        );
    }

    #[test]
    fn no_separator_means_no_peer_line() {
        let out = String::from_utf8(render("::1", &[], b"Subject: x\r\nno body")).unwrap();
        assert!(!out.contains("X-Peer"), "{out}");
        assert!(!out.contains("mail options"), "{out}");
    }

    #[test]
    fn crcrlf_is_one_break_as_in_python() {
        // Python splits on CRLF first: "a\r" + "b" → "a\r\nb" → ["a", "b"].
        let out = String::from_utf8(render("1.2.3.4", &[], b"a\r\r\nb")).unwrap();
        assert!(out.contains("b'a'\nb'b'\n"), "{out}");
    }
}
