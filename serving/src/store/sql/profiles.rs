//! Profiles as written back from the live states: the whole profile as JSON
//! beside the columns audiences filter on, and the log position they are
//! current to.

use async_trait::async_trait;
use features::Profile;

use super::dialect::Param;
use super::rows::{corrupt, BodyRow};
use super::{Engine, SqlStore, INSERT_CHUNK};
use crate::store::{EventRecord, ProfileFilter, Profiles, Result};

/// Topics as stored for filtering: `|a|b|` (`|` inside a name becomes `/`).
fn topic_list(topics: &[String]) -> String {
    let mut out = String::from("|");
    for t in topics {
        out.push_str(&t.replace('|', "/"));
        out.push('|');
    }
    out
}

/// Escapes `LIKE` wildcards (`\` is the escape character).
fn like_escaped(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
}

#[async_trait]
impl<D: Engine> Profiles for SqlStore<D> {
    async fn save_profiles(
        &self,
        profiles: &[Profile],
        announced: &[EventRecord],
        seq: i64,
    ) -> Result<()> {
        let _writing = self.log.profile_write().await;
        let mut tx = self.writers.profiles.begin().await?;
        for chunk in profiles.chunks(INSERT_CHUNK) {
            let bodies = chunk
                .iter()
                .map(serde_json::to_string)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| corrupt(e.to_string()))?;
            let mut stmt = Self::stmt(
                "INSERT INTO profiles (user_id, spending_class, life_stage, \
                 real_life_stage, topics, body, updated_at) VALUES ",
            );
            stmt.values(chunk.iter().zip(bodies), |row, (p, body)| {
                row.extend([
                    Param::from(p.user_id.as_str()),
                    p.about.spending_class.map(i64::from).into(),
                    p.about.acting_life_stage.map(|l| l.as_str()).into(),
                    p.about.real_life_stage.map(|l| l.as_str()).into(),
                    topic_list(&p.topics).into(),
                    body.into(),
                    p.updated_at.timestamp_micros().into(),
                ]);
            });
            stmt.push(
                " ON CONFLICT (user_id) DO UPDATE SET \
                 spending_class = excluded.spending_class, \
                 life_stage = excluded.life_stage, \
                 real_life_stage = excluded.real_life_stage, \
                 topics = excluded.topics, body = excluded.body, \
                 updated_at = excluded.updated_at",
            );
            D::execute_in(&mut tx, &stmt).await?;
        }
        if self.log.outbox_on() {
            for event in announced {
                Self::outbox_in(&mut tx, event).await?;
            }
        }
        Self::set_meta(&mut tx, "profiles_seq", seq).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn profile(&self, user_id: &str) -> Result<Option<Profile>> {
        let stmt = Self::stmt("SELECT body FROM profiles WHERE user_id = ?").arg(user_id);
        Self::read_one::<BodyRow, _>(&self.pool, &stmt).await
    }

    async fn list_profiles(&self, filter: &ProfileFilter) -> Result<Vec<Profile>> {
        let mut stmt = Self::stmt("SELECT body FROM profiles WHERE 1 = 1");
        if let Some(c) = filter.spending_class {
            stmt.push(" AND spending_class = ").bind(i64::from(c));
        }
        if let Some(l) = &filter.life_stage {
            stmt.push(" AND life_stage = ").bind(l.as_str());
        }
        if let Some(l) = &filter.real_life_stage {
            stmt.push(" AND real_life_stage = ").bind(l.as_str());
        }
        if let Some(t) = &filter.topic {
            let pattern = format!("%{}%", like_escaped(&topic_list(std::slice::from_ref(t))));
            stmt.push(" AND topics LIKE ")
                .bind(pattern)
                .push(" ESCAPE '\\'");
        }
        if let Some(after) = &filter.after {
            stmt.push(" AND user_id > ").bind(after.as_str());
        }
        stmt.push(" ORDER BY user_id LIMIT ")
            .bind(filter.limit.max(1) as i64);
        Self::read_all::<BodyRow, _>(&self.pool, &stmt).await
    }

    async fn profile_ids(&self, after: Option<&str>, limit: usize) -> Result<Vec<String>> {
        let stmt =
            Self::stmt("SELECT user_id FROM profiles WHERE user_id > ? ORDER BY user_id LIMIT ?")
                .arg(after.unwrap_or(""))
                .arg(limit as i64);
        Self::column::<String>(&self.pool, &stmt).await
    }

    async fn profiles_seq(&self) -> Result<i64> {
        Self::meta(&self.pool, "profiles_seq").await
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn topic_filters_match_whole_names_only() {
        let stored = super::topic_list(&["outdoor".into(), "baby_care".into()]);
        assert_eq!(stored, "|outdoor|baby_care|");
        assert_eq!(super::like_escaped("|baby_care|"), "|baby\\_care|");
        assert!(!stored.contains(&super::topic_list(&["door".into()])));
    }
}
