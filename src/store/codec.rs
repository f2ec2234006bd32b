//! How both backends store a `Softlock`'s lists in a text column: `a:b,a:b`.

/// `a:b,a:b`: compact, readable in a SQL shell, and the same text in any database.
pub(super) fn encode_pairs<A: std::fmt::Display, B: std::fmt::Display>(items: &[(A, B)]) -> String {
    let mut out = String::new();
    for (i, (a, b)) in items.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&format!("{a}:{b}"));
    }
    out
}

pub(super) fn decode_pairs<A: std::str::FromStr, B: std::str::FromStr>(text: &str) -> Vec<(A, B)> {
    text.split(',')
        .filter_map(|item| {
            let (a, b) = item.split_once(':')?;
            Some((a.parse().ok()?, b.parse().ok()?))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::{decode_pairs, encode_pairs};

    #[test]
    fn pairs_round_trip_and_garbage_is_skipped() {
        let items: Vec<(i64, u32)> = vec![(1_700_000_000_000, 3), (-5, 0)];
        assert_eq!(decode_pairs::<i64, u32>(&encode_pairs(&items)), items);
        assert_eq!(decode_pairs::<i64, u32>(""), vec![]);
        assert_eq!(decode_pairs::<i64, u32>("x:1,2:3,4"), vec![(2, 3)]);
    }
}
