//! Archive-wide person clusters.
//!
//! The face stage clusters the faces of one asset (`p0`, `p1`, … local to the asset). After
//! each asset, the engine assigns every local cluster to an archive-wide person: the person
//! whose centroid is nearest to the local cluster's mean descriptor, if closer than
//! [`PERSON_THRESHOLD`], else a new person. Person ids (`person-N`) are never renumbered or
//! reused, so names given to them stay attached; centroids move as faces are added
//! (running mean). Assignment runs inside the Store's atomic
//! [`update_persons`](heimdex_core::Store::update_persons), so concurrent workers, in one
//! process or many, agree on person ids.
//!
//! Known limit: assignment is greedy and incremental, so two persons created early for one
//! real person are not merged later, and re-indexing an asset counts its faces again in
//! the centroids' running means.

use std::collections::BTreeMap;
use std::sync::Mutex as StdMutex;

use heimdex_core::model::{Person, TenantId};
use heimdex_core::sidecar::Sidecar;
use heimdex_core::time_util::now_ms;

use super::{Engine, EngineError};

/// Euclidean distance under which a local face cluster joins an existing person (dlib's
/// same-person threshold is 0.6; centroids are tighter than single faces, so a little less).
pub const PERSON_THRESHOLD: f32 = 0.55;

fn distance(a: &[f32], b: &[f32]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y) * (x - y))
        .sum::<f32>()
        .sqrt()
}

fn is_local_cluster(id: &str) -> bool {
    id.strip_prefix('p')
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

impl Engine {
    /// Replace the asset-local face clusters in `sidecar` by archive-wide person ids,
    /// creating and updating persons in the store.
    pub(crate) async fn assign_persons(
        &self,
        tenant: &TenantId,
        sidecar: &mut Sidecar,
    ) -> Result<(), EngineError> {
        let Some(faces) = sidecar.faces.as_mut() else {
            return Ok(());
        };
        // Local cluster → (sum of descriptors, count), in order of first appearance.
        let mut order: Vec<String> = Vec::new();
        let mut sums: BTreeMap<String, (Vec<f32>, u64)> = BTreeMap::new();
        for d in &faces.data.detections {
            let (Some(c), Some(e)) = (&d.cluster, &d.embedding) else {
                continue;
            };
            if !is_local_cluster(c) {
                continue;
            }
            let entry = sums.entry(c.clone()).or_insert_with(|| {
                order.push(c.clone());
                (vec![0.0; e.len()], 0)
            });
            for (s, x) in entry.0.iter_mut().zip(e) {
                *s += x;
            }
            entry.1 += 1;
        }
        if order.is_empty() {
            return Ok(());
        }
        let clusters: Vec<(String, Vec<f32>, u64)> = order
            .iter()
            .map(|local| {
                let (sum, n) = &sums[local];
                (
                    local.clone(),
                    sum.iter().map(|s| s / *n as f32).collect(),
                    *n,
                )
            })
            .collect();
        // The assignment runs inside the Store's persons transaction, so concurrent workers
        // (in this process or others) see each other's new persons and never mint the same
        // `person-N` twice. The closure may run more than once; its result is the last run's.
        let mapping = StdMutex::new(BTreeMap::new());
        let now = now_ms();
        self.store
            .update_persons(tenant, &|current: &[Person]| {
                let (changed, m) = assign(tenant, current, &clusters, now);
                if let Ok(mut slot) = mapping.lock() {
                    *slot = m;
                }
                changed
            })
            .await?;
        let mapping = mapping.into_inner().unwrap_or_default();
        for d in &mut faces.data.detections {
            if let Some(id) = d.cluster.as_ref().and_then(|c| mapping.get(c)) {
                d.cluster = Some(id.clone());
            }
        }
        Ok(())
    }

    /// The person whose centroid is nearest to a face descriptor, with the distance, if any
    /// person is closer than `max_distance` (0.6 is dlib's same-person threshold).
    pub async fn nearest_person(
        &self,
        tenant: &TenantId,
        descriptor: &[f32],
        max_distance: f32,
    ) -> Result<Option<(Person, f32)>, EngineError> {
        let persons = self.store.list_persons(tenant).await?;
        Ok(persons
            .into_iter()
            .filter(|p| p.centroid.len() == descriptor.len())
            .map(|p| {
                let d = distance(&p.centroid, descriptor);
                (p, d)
            })
            .filter(|(_, d)| *d < max_distance)
            .min_by(|a, b| a.1.total_cmp(&b.1)))
    }

    /// All persons (face clusters) of `tenant`'s archive.
    pub async fn persons(&self, tenant: &TenantId) -> Result<Vec<Person>, EngineError> {
        Ok(self.store.list_persons(tenant).await?)
    }

    /// Give a person of `tenant` a name (`id` is a `person-N` id or the person's current
    /// name).
    pub async fn name_person(
        &self,
        tenant: &TenantId,
        id: &str,
        name: &str,
    ) -> Result<Person, EngineError> {
        let now = now_ms();
        let written = self
            .store
            .update_persons(tenant, &|current: &[Person]| {
                find_person(current, id)
                    .map(|p| {
                        let mut p = p.clone();
                        p.name = Some(name.to_owned());
                        p.updated_ms = now;
                        vec![p]
                    })
                    .unwrap_or_default()
            })
            .await?;
        written
            .into_iter()
            .next()
            .ok_or_else(|| EngineError::UnknownPerson(id.to_owned()))
    }

    /// The person id for a `person-N` id or a name (case-insensitive).
    pub async fn resolve_person(
        &self,
        tenant: &TenantId,
        id_or_name: &str,
    ) -> Result<Option<String>, EngineError> {
        let persons = self.store.list_persons(tenant).await?;
        Ok(find_person(&persons, id_or_name).map(|p| p.id.clone()))
    }
}

/// The person with this id, else the one with this name (case-insensitive).
fn find_person<'a>(persons: &'a [Person], id_or_name: &str) -> Option<&'a Person> {
    persons.iter().find(|p| p.id == id_or_name).or_else(|| {
        persons.iter().find(|p| {
            p.name
                .as_deref()
                .is_some_and(|n| n.eq_ignore_ascii_case(id_or_name))
        })
    })
}

/// Assign each local cluster `(id, mean descriptor, faces)` to the nearest person of
/// `current` closer than [`PERSON_THRESHOLD`], else to a new person. Returns the persons to
/// write (updated centroids and new persons) and the local → person id mapping.
fn assign(
    tenant: &TenantId,
    current: &[Person],
    clusters: &[(String, Vec<f32>, u64)],
    now: i64,
) -> (Vec<Person>, BTreeMap<String, String>) {
    let mut persons = current.to_vec();
    let mut next = persons
        .iter()
        .filter_map(|p| p.id.strip_prefix("person-")?.parse::<u64>().ok())
        .max()
        .unwrap_or(0)
        + 1;
    let mut mapping: BTreeMap<String, String> = BTreeMap::new();
    let mut changed: Vec<usize> = Vec::new();
    for (local, mean, n) in clusters {
        let nearest = persons
            .iter()
            .enumerate()
            .filter(|(_, p)| p.centroid.len() == mean.len())
            .map(|(i, p)| (i, distance(&p.centroid, mean)))
            .min_by(|a, b| a.1.total_cmp(&b.1));
        let idx = match nearest {
            Some((i, d)) if d < PERSON_THRESHOLD => {
                let p = &mut persons[i];
                let total = p.faces + n;
                for (c, m) in p.centroid.iter_mut().zip(mean) {
                    *c = (*c * p.faces as f32 + m * *n as f32) / total as f32;
                }
                p.faces = total;
                p.updated_ms = now;
                i
            }
            _ => {
                persons.push(Person {
                    tenant: tenant.clone(),
                    id: format!("person-{next}"),
                    name: None,
                    centroid: mean.clone(),
                    faces: *n,
                    updated_ms: now,
                });
                next += 1;
                persons.len() - 1
            }
        };
        if !changed.contains(&idx) {
            changed.push(idx);
        }
        mapping.insert(local.clone(), persons[idx].id.clone());
    }
    let written = changed.into_iter().map(|i| persons[i].clone()).collect();
    (written, mapping)
}
