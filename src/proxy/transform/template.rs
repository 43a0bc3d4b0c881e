//! Header and query values with per-request variables, parsed once.

use http::HeaderValue;

use crate::proxy::ctx::RequestCtx;

/// A value made of text and variables. A variable with nothing to give
/// (no consumer on an open route, a claim the token lacks) is empty.
#[derive(Debug, Clone)]
pub struct Template {
    parts: Vec<Part>,
    /// The value itself when it has no variable, checked once.
    fixed: Option<HeaderValue>,
}

#[derive(Debug, Clone, PartialEq)]
enum Part {
    Text(String),
    ClientIp,
    RequestId,
    Consumer,
    Route,
    Claim(String),
}

impl Template {
    /// Parses `text`; the error names what is wrong.
    pub fn parse(text: &str) -> Result<Template, String> {
        let mut parts = Vec::new();
        let mut rest = text;
        while let Some(start) = rest.find("${") {
            if start > 0 {
                parts.push(Part::Text(rest[..start].to_owned()));
            }
            let after = &rest[start + 2..];
            let Some(end) = after.find('}') else {
                return Err(format!(
                    "{text:?} opens a variable with ${{ but never closes it"
                ));
            };
            parts.push(variable(&after[..end])?);
            rest = &after[end + 1..];
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_owned()));
        }
        let fixed = match parts.as_slice() {
            [] => Some(HeaderValue::from_static("")),
            [Part::Text(t)] => Some(
                HeaderValue::from_str(t).map_err(|_| format!("{text:?} is not a valid value"))?,
            ),
            _ => None,
        };
        Ok(Template { parts, fixed })
    }

    /// The value for this request.
    pub fn render(&self, ctx: &RequestCtx) -> String {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Text(t) => out.push_str(t),
                Part::ClientIp => {
                    if let Some(ip) = ctx.client_ip {
                        out.push_str(&ip.to_string());
                    }
                }
                Part::RequestId => out.push_str(&ctx.request_id),
                Part::Consumer => {
                    if let Some(identity) = &ctx.identity {
                        out.push_str(&identity.consumer.id);
                    }
                }
                Part::Route => out.push_str(ctx.route_id()),
                Part::Claim(name) => {
                    let claim = ctx
                        .identity
                        .as_ref()
                        .and_then(|i| i.claims.as_ref())
                        .and_then(|c| c.get(name));
                    match claim {
                        Some(serde_json::Value::String(s)) => out.push_str(s),
                        Some(other) => out.push_str(&other.to_string()),
                        None => {}
                    }
                }
            }
        }
        out
    }

    /// The value as a header field value, `None` when the rendered text
    /// cannot be one.
    pub fn render_header(&self, ctx: &RequestCtx) -> Option<HeaderValue> {
        match &self.fixed {
            Some(v) => Some(v.clone()),
            None => HeaderValue::from_str(&self.render(ctx)).ok(),
        }
    }
}

fn variable(name: &str) -> Result<Part, String> {
    Ok(match name {
        "client_ip" => Part::ClientIp,
        "request_id" => Part::RequestId,
        "consumer" => Part::Consumer,
        "route" => Part::Route,
        _ => match name.strip_prefix("claim.") {
            Some(claim) if !claim.is_empty() => Part::Claim(claim.to_owned()),
            _ => return Err(format!("unknown variable ${{{name}}}")),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_and_variables_are_split_at_parse_time() {
        let t = Template::parse("id=${consumer}; via ${route}").unwrap();
        assert_eq!(
            t.parts,
            vec![
                Part::Text("id=".into()),
                Part::Consumer,
                Part::Text("; via ".into()),
                Part::Route
            ]
        );
        assert!(t.fixed.is_none());
        let fixed = Template::parse("plain").unwrap();
        assert_eq!(fixed.fixed.unwrap(), "plain");
    }

    #[test]
    fn a_claim_variable_names_its_claim() {
        let t = Template::parse("${claim.sub}").unwrap();
        assert_eq!(t.parts, vec![Part::Claim("sub".into())]);
    }

    #[test]
    fn an_unknown_or_unclosed_variable_is_an_error() {
        assert!(Template::parse("${who}")
            .unwrap_err()
            .contains("unknown variable ${who}"));
        assert!(Template::parse("${claim.}").is_err());
        assert!(Template::parse("a ${consumer")
            .unwrap_err()
            .contains("never closes"));
        assert!(Template::parse("bad\nvalue").is_err());
    }
}
