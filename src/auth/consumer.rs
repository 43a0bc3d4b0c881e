//! Consumers: who a request is, once a credential has named them.

use http::HeaderValue;

/// An identified client: configured under `consumers`, or known only from a
/// JWT subject.
#[derive(Debug)]
pub struct Consumer {
    pub id: String,
    pub tier: Option<String>,
    pub groups: Vec<String>,
    /// The header values sent upstream, made once.
    pub(crate) id_value: HeaderValue,
    pub(crate) tier_value: Option<HeaderValue>,
    pub(crate) groups_value: Option<HeaderValue>,
}

impl Consumer {
    /// A consumer whose id, tier and groups can all be sent as header values;
    /// `Err` names the part that cannot.
    pub fn new(id: &str, tier: Option<&str>, groups: &[String]) -> Result<Consumer, &'static str> {
        let id_value = HeaderValue::from_str(id).map_err(|_| "id")?;
        let tier_value = tier
            .map(HeaderValue::from_str)
            .transpose()
            .map_err(|_| "tier")?;
        let groups_value = if groups.is_empty() {
            None
        } else {
            Some(HeaderValue::from_str(&groups.join(",")).map_err(|_| "groups")?)
        };
        Ok(Consumer {
            id: id.to_owned(),
            tier: tier.map(str::to_owned),
            groups: groups.to_vec(),
            id_value,
            tier_value,
            groups_value,
        })
    }
}

/// Whether `text` can be a consumer id, tier or group: printable ASCII
/// without a comma (groups are joined with commas upstream).
pub fn valid_name(text: &str) -> bool {
    !text.trim().is_empty() && text.bytes().all(|b| (0x21..0x7f).contains(&b) && b != b',')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_are_forwarded_joined_with_commas() {
        let c = Consumer::new("app", Some("gold"), &["a".into(), "b".into()]).unwrap();
        assert_eq!(c.groups_value.unwrap(), "a,b");
        assert_eq!(c.tier_value.unwrap(), "gold");
        assert!(Consumer::new("bad\nid", None, &[]).is_err());
    }

    #[test]
    fn names_are_printable_ascii_without_commas_or_spaces() {
        assert!(valid_name("mobile-app_2"));
        assert!(!valid_name("a,b"));
        assert!(!valid_name("a b"));
        assert!(!valid_name(""));
    }
}
