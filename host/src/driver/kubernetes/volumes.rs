//! Cargo volumes as `ReadWriteOnce` PVCs of `default_storage_size`, named by
//! Bay (`driver_ref` is the PVC's name) and labelled like every Bay object.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{PersistentVolumeClaim, PersistentVolumeClaimSpec, VolumeResourceRequirements};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{DeleteParams, ListParams, PostParams};

use super::{KubernetesDriver, api_code, engine, names};
use crate::config::K8sConfig;
use crate::driver::{DriverError, Labels, Named};

/// A storage size as a Kubernetes quantity. Kubernetes suffixes (`1Gi`,
/// `500M`) and plain bytes pass through; Shipyard's and Docker's binary
/// shorthands `1g`/`512m`/`100k` (optionally with `b`) become `1Gi`/`512Mi`/
/// `100Ki` — taken literally, Kubernetes would read `512m` as 0.512 bytes.
pub(crate) fn storage_size(size: &str) -> Result<String, String> {
    let size = size.trim();
    let digits = size.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(size.len());
    let (number, suffix) = size.split_at(digits);
    if number.is_empty() || number.parse::<f64>().is_err() {
        return Err(format!("invalid size {size:?}"));
    }
    let unit = match suffix {
        "" | "Ki" | "Mi" | "Gi" | "Ti" | "Pi" | "M" | "G" | "T" | "P" => return Ok(size.to_owned()),
        s => s.strip_suffix(['b', 'B']).unwrap_or(s).to_ascii_lowercase(),
    };
    let binary = match unit.as_str() {
        "k" => "Ki",
        "m" => "Mi",
        "g" => "Gi",
        "t" => "Ti",
        _ => return Err(format!("invalid size {size:?} (use e.g. 1Gi, 512Mi, 1g, 512m)")),
    };
    Ok(format!("{number}{binary}"))
}

/// The cargo's PVC.
pub(crate) fn pvc(name: &str, labels: &Labels, config: &K8sConfig) -> Result<PersistentVolumeClaim, DriverError> {
    let size = storage_size(&config.default_storage_size).map_err(DriverError::Engine)?;
    let (labels, originals) = names::to_k8s(&config.label_prefix, labels)?;
    Ok(PersistentVolumeClaim {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            labels: Some(labels),
            annotations: (!originals.is_empty()).then_some(originals),
            ..Default::default()
        },
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(vec!["ReadWriteOnce".into()]),
            resources: Some(VolumeResourceRequirements {
                requests: Some(BTreeMap::from([("storage".to_owned(), Quantity(size))])),
                ..Default::default()
            }),
            storage_class_name: config.storage_class.clone(),
            ..Default::default()
        }),
        status: None,
    })
}

impl KubernetesDriver {
    /// Creates the PVC, or adopts it when it exists (a retried create, a restart).
    pub(crate) async fn create_pvc(&self, name: &str, labels: &Labels) -> Result<String, DriverError> {
        let claim = pvc(name, labels, &self.config)?;
        match self.pvcs.create(&PostParams::default(), &claim).await {
            Ok(_) => Ok(name.to_owned()),
            Err(e) if api_code(&e) == Some(409) => Ok(name.to_owned()),
            Err(e) => Err(engine(e)),
        }
    }

    /// Deletes the PVC (a missing one is fine). While a Pod still uses it,
    /// Kubernetes' PVC protection defers the removal until that Pod is gone.
    pub(crate) async fn delete_pvc(&self, name: &str) -> Result<(), DriverError> {
        match self.pvcs.delete(name, &DeleteParams::default()).await {
            Ok(_) => Ok(()),
            Err(e) if api_code(&e) == Some(404) => Ok(()),
            Err(e) => Err(engine(e)),
        }
    }

    pub(crate) async fn pvc_exists(&self, name: &str) -> Result<bool, DriverError> {
        match self.pvcs.get(name).await {
            Ok(_) => Ok(true),
            Err(e) if api_code(&e) == Some(404) => Ok(false),
            Err(e) => Err(engine(e)),
        }
    }

    pub(crate) async fn list_pvcs(&self, labels: &Labels) -> Result<Vec<Named>, DriverError> {
        let prefix = &self.config.label_prefix;
        let list = self.pvcs.list(&ListParams::default().labels(&names::selector(prefix, labels, &[]))).await.map_err(engine)?;
        Ok(list
            .items
            .into_iter()
            .map(|v| Named {
                labels: names::from_k8s(prefix, v.metadata.labels.as_ref(), v.metadata.annotations.as_ref()),
                name: v.metadata.name.unwrap_or_default(),
            })
            .collect())
    }
}
