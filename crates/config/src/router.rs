//! From a public model name to its deployments, and from an ID's deployment
//! tag back to the one deployment it pins.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use batchgate_core::Deployment;
use batchgate_ids::DeploymentTag;

/// Routes by model name (round-robin over replicas) and by deployment tag.
#[derive(Debug)]
pub struct Router {
    deployments: Vec<Arc<Deployment>>,
    groups: HashMap<String, Vec<Arc<Deployment>>>,
    by_tag: HashMap<DeploymentTag, Arc<Deployment>>,
    /// Names in config order, for error messages.
    names: Vec<String>,
    next: AtomicUsize,
}

impl Router {
    pub fn new(deployments: Vec<Deployment>) -> Router {
        let deployments: Vec<Arc<Deployment>> = deployments.into_iter().map(Arc::new).collect();
        let mut groups: HashMap<String, Vec<Arc<Deployment>>> = HashMap::new();
        let mut names = Vec::new();
        let mut by_tag = HashMap::new();
        for d in &deployments {
            if !groups.contains_key(&d.model_name) {
                names.push(d.model_name.clone());
            }
            groups
                .entry(d.model_name.clone())
                .or_default()
                .push(d.clone());
            by_tag.insert(DeploymentTag::of(&d.id), d.clone());
        }
        Router {
            deployments,
            groups,
            by_tag,
            names,
            next: AtomicUsize::new(0),
        }
    }

    /// Every deployment in config order.
    pub fn deployments(&self) -> &[Arc<Deployment>] {
        &self.deployments
    }

    /// Public model names in config order.
    pub fn model_names(&self) -> &[String] {
        &self.names
    }

    /// The replicas serving a model name.
    pub fn group(&self, model_name: &str) -> Option<&[Arc<Deployment>]> {
        self.groups.get(model_name).map(|v| v.as_slice())
    }

    /// One replica of a model name, round-robin.
    pub fn pick(&self, model_name: &str) -> Option<Arc<Deployment>> {
        let group = self.groups.get(model_name)?;
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        group.get(n % group.len()).cloned()
    }

    /// The model used when a request names none: the only one configured.
    pub fn sole_model(&self) -> Option<&str> {
        match self.names.as_slice() {
            [only] => Some(only),
            _ => None,
        }
    }

    /// The deployment an ID pins.
    pub fn by_tag(&self, tag: &DeploymentTag) -> Option<Arc<Deployment>> {
        self.by_tag.get(tag).cloned()
    }

    /// The tag to put into IDs of objects living on `deployment`.
    pub fn tag_of(deployment: &Deployment) -> DeploymentTag {
        DeploymentTag::of(&deployment.id)
    }
}
