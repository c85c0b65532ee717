//! Finding a PHLO by id or by name.

use serde_json::Value;

use crate::client::Gateway;

/// Every PHLO of the account named `name` (after trimming, as the gateway stores names).
pub async fn named(gateway: &Gateway, name: &str) -> anyhow::Result<Vec<Value>> {
    let name = name.trim();
    let mut found = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut query = vec![("limit", "100".to_owned())];
        if let Some(c) = &cursor {
            query.push(("cursor", c.clone()));
        }
        let page = gateway.get("/v1/phlo", &query).await?;
        let objects = page["objects"].as_array().cloned().unwrap_or_default();
        found.extend(objects.into_iter().filter(|p| p["name"] == name));
        match page["meta"]["next"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return Ok(found),
        }
    }
}

/// The id of the PHLO `id_or_name` designates: a UUID as it is, a name when exactly one PHLO has it.
pub async fn resolve(gateway: &Gateway, id_or_name: &str) -> anyhow::Result<String> {
    if uuid::Uuid::parse_str(id_or_name).is_ok() {
        return Ok(id_or_name.to_owned());
    }
    let found = named(gateway, id_or_name).await?;
    match found.as_slice() {
        [one] => Ok(one["phlo_id"].as_str().unwrap_or_default().to_owned()),
        [] => anyhow::bail!(
            "no PHLO is named {id_or_name:?} (nor is it a PHLO id): `phlo apply FILE` creates one"
        ),
        many => anyhow::bail!(
            "{} PHLOs are named {id_or_name:?}: use one of their ids ({})",
            many.len(),
            many.iter()
                .filter_map(|p| p["phlo_id"].as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}
