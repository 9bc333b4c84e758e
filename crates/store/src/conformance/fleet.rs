//! Heartbeats: who in the fleet has work for which model group.

use crate::Presence;

use super::Backend;

fn presence(instance: &str, model: &str, heartbeat_at: i64) -> Presence {
    Presence {
        instance: instance.into(),
        model: model.into(),
        heartbeat_at,
    }
}

fn models(names: &[&str]) -> Vec<String> {
    names.iter().map(|s| s.to_string()).collect()
}

pub async fn heartbeats_show_who_works_on_what(b: &Backend) {
    let name = b.name;
    let a = &b.store;
    let other = b.open_again().await;
    assert!(a.heartbeat("inst-a", &[], 100, 0).await.unwrap().is_empty());
    a.heartbeat("inst-a", &models(&["m1", "m2"]), 100, 0)
        .await
        .unwrap();
    // Another instance sees the first, itself included, by model then
    // instance.
    let seen = other
        .heartbeat("inst-b", &models(&["m1"]), 101, 95)
        .await
        .unwrap();
    assert_eq!(
        seen,
        [
            presence("inst-a", "m1", 100),
            presence("inst-b", "m1", 101),
            presence("inst-a", "m2", 100),
        ],
        "{name}"
    );
    // A heartbeat replaces the instance's groups: m2 is gone for inst-a.
    let seen = a
        .heartbeat("inst-a", &models(&["m1"]), 104, 95)
        .await
        .unwrap();
    assert_eq!(
        seen,
        [presence("inst-a", "m1", 104), presence("inst-b", "m1", 101)],
        "{name}"
    );
    // Presences older than `live_since` are not live (inst-b stopped
    // beating); an instance with no work leaves every group at once.
    let seen = a
        .heartbeat("inst-a", &models(&["m1"]), 120, 110)
        .await
        .unwrap();
    assert_eq!(seen, [presence("inst-a", "m1", 120)], "{name}");
    let seen = other.heartbeat("inst-b", &[], 121, 0).await.unwrap();
    assert_eq!(seen, [presence("inst-a", "m1", 120)], "{name}");
    // Read without beating: the same, from any handle.
    assert_eq!(other.presence(0).await.unwrap(), seen, "{name}");
    assert!(other.presence(121).await.unwrap().is_empty(), "{name}");
}
