//! Which passwords are refused (NIST SP 800-63B): fewer than 8 or more than
//! 72 bytes (bcrypt reads no further), and the common ones.
//!
//! "Common" is zxcvbn's password dictionary, about 30,000 entries ranked by
//! frequency in leaked password corpora (the zxcvbn crate, MIT). A password
//! is refused when it is one of those entries as a whole, in any letter case
//! and also with zxcvbn's l33t substitutions or reversed ("p@ssw0rd",
//! "drowssap"): those are the first guesses of any attacker.

use zxcvbn::matching::patterns::MatchPattern;

/// True when the whole password is an entry of the common-password list.
pub fn is_common(password: &str) -> bool {
    if password.is_empty() {
        return true;
    }
    let len = password.chars().count();
    let entropy = zxcvbn::zxcvbn(password, &[]);
    entropy.sequence().iter().any(|m| {
        // zxcvbn cannot name its dictionary type outside the crate, but that
        // type's default is the password list.
        m.i == 0
            && m.j + 1 == len
            && matches!(&m.pattern, MatchPattern::Dictionary(d) if d.dictionary_name == Default::default())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_passwords_are_refused_in_their_usual_disguises() {
        for p in [
            "password",
            "Password",
            "PASSWORD",
            "12345678",
            "qwertyuiop",
            "iloveyou",
            "p@ssw0rd",
            "drowssap",
            "baseball",
            "sunshine",
            "trustno1",
            "letmein1",
        ] {
            assert!(is_common(p), "{p} passed");
        }
    }

    #[test]
    fn uncommon_passwords_pass() {
        for p in [
            "correct horse battery staple",
            "Tr0ub4dor&3-xq",
            "pässwörd-ü-✓",
            "hunter2hunter2",
            "mellow yellow kazoo",
        ] {
            assert!(!is_common(p), "{p} refused");
        }
    }
}
