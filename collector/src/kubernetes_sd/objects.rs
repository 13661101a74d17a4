//! The few fields of Kubernetes API objects that discovery reads. Every
//! field defaults when absent, so partial objects (and bookmarks) parse.

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use serde::Deserialize;

/// `metadata` of any object.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ObjectMeta {
    /// The object's name.
    pub name: String,
    /// Its namespace (empty for cluster-scoped objects).
    pub namespace: String,
    /// Its UID.
    pub uid: String,
    /// The version the object was stored at.
    pub resource_version: String,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Annotations.
    pub annotations: BTreeMap<String, String>,
    /// Owners.
    pub owner_references: Vec<OwnerReference>,
}

/// One `metadata.ownerReferences` entry.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default)]
pub struct OwnerReference {
    /// The owner's kind, e.g. `DaemonSet`.
    pub kind: String,
    /// The owner's name.
    pub name: String,
    /// Whether the owner is the managing controller.
    pub controller: Option<bool>,
}

/// A kind discovery lists and watches.
pub trait Resource: DeserializeOwned + Clone + PartialEq + Send + Sync + 'static {
    /// The plural in the API path, e.g. `pods`.
    const PLURAL: &'static str;
    /// Whether the kind lives in namespaces.
    const NAMESPACED: bool = true;
    /// The object's metadata.
    fn meta(&self) -> &ObjectMeta;
}

/// `v1.Pod`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default)]
pub struct Pod {
    /// Metadata.
    pub metadata: ObjectMeta,
    /// Spec.
    pub spec: PodSpec,
    /// Status.
    pub status: PodStatus,
}

/// `v1.PodSpec`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct PodSpec {
    /// The node the pod runs on.
    pub node_name: String,
    /// The containers.
    pub containers: Vec<Container>,
    /// The init containers.
    pub init_containers: Vec<Container>,
}

/// `v1.Container`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default)]
pub struct Container {
    /// Name.
    pub name: String,
    /// Image.
    pub image: String,
    /// Declared ports.
    pub ports: Vec<ContainerPort>,
}

/// `v1.ContainerPort`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ContainerPort {
    /// Port name.
    pub name: String,
    /// Port number.
    pub container_port: u16,
    /// `TCP`, `UDP` or `SCTP`.
    pub protocol: String,
}

/// `v1.PodStatus`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct PodStatus {
    /// `Pending`, `Running`, ...
    pub phase: String,
    /// The pod's primary IP (empty while starting).
    #[serde(rename = "podIP")]
    pub pod_ip: String,
    /// The node's IP.
    #[serde(rename = "hostIP")]
    pub host_ip: String,
    /// Conditions (`Ready`, ...).
    pub conditions: Vec<Condition>,
    /// Container statuses.
    pub container_statuses: Vec<ContainerStatus>,
    /// Init container statuses.
    pub init_container_statuses: Vec<ContainerStatus>,
}

/// A status condition.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default)]
pub struct Condition {
    /// The condition type.
    #[serde(rename = "type")]
    pub kind: String,
    /// `True`, `False` or `Unknown`.
    pub status: String,
}

/// `v1.ContainerStatus`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ContainerStatus {
    /// The container's name.
    pub name: String,
    /// The runtime's ID, e.g. `containerd://...`.
    #[serde(rename = "containerID")]
    pub container_id: String,
}

impl Resource for Pod {
    const PLURAL: &'static str = "pods";
    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }
}

/// `v1.Service`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default)]
pub struct Service {
    /// Metadata.
    pub metadata: ObjectMeta,
    /// Spec.
    pub spec: ServiceSpec,
}

/// `v1.ServiceSpec`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ServiceSpec {
    /// Ports.
    pub ports: Vec<ServicePort>,
    /// `ClusterIP`, `NodePort`, `LoadBalancer` or `ExternalName`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The cluster IP.
    #[serde(rename = "clusterIP")]
    pub cluster_ip: String,
    /// The external name (`ExternalName` services).
    pub external_name: String,
    /// The requested load balancer IP.
    #[serde(rename = "loadBalancerIP")]
    pub load_balancer_ip: String,
}

/// `v1.ServicePort`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default)]
pub struct ServicePort {
    /// Name.
    pub name: String,
    /// Port number.
    pub port: u16,
    /// Protocol.
    pub protocol: String,
}

impl Resource for Service {
    const PLURAL: &'static str = "services";
    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }
}

/// `v1.Endpoints`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default)]
pub struct Endpoints {
    /// Metadata.
    pub metadata: ObjectMeta,
    /// The address sets.
    pub subsets: Vec<EndpointSubset>,
}

/// `v1.EndpointSubset`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct EndpointSubset {
    /// Ready addresses.
    pub addresses: Vec<EndpointAddress>,
    /// Addresses not ready.
    pub not_ready_addresses: Vec<EndpointAddress>,
    /// Ports.
    pub ports: Vec<ServicePort>,
}

/// `v1.EndpointAddress`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct EndpointAddress {
    /// The IP.
    pub ip: String,
    /// The hostname.
    pub hostname: String,
    /// The node hosting it.
    pub node_name: Option<String>,
    /// What the address belongs to.
    pub target_ref: Option<ObjectReference>,
}

/// `v1.ObjectReference`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default)]
pub struct ObjectReference {
    /// Kind, e.g. `Pod`.
    pub kind: String,
    /// Name.
    pub name: String,
    /// Namespace.
    pub namespace: String,
}

impl Resource for Endpoints {
    const PLURAL: &'static str = "endpoints";
    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }
}

/// `v1.Node`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default)]
pub struct Node {
    /// Metadata.
    pub metadata: ObjectMeta,
    /// Spec.
    pub spec: NodeSpec,
    /// Status.
    pub status: NodeStatus,
}

/// `v1.NodeSpec`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct NodeSpec {
    /// The cloud provider's ID.
    #[serde(rename = "providerID")]
    pub provider_id: String,
}

/// `v1.NodeStatus`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct NodeStatus {
    /// Addresses by type.
    pub addresses: Vec<NodeAddress>,
    /// The kubelet's endpoint.
    pub daemon_endpoints: DaemonEndpoints,
}

/// `v1.NodeAddress`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default)]
pub struct NodeAddress {
    /// `InternalIP`, `ExternalIP`, `Hostname`, ...
    #[serde(rename = "type")]
    pub kind: String,
    /// The address.
    pub address: String,
}

/// `v1.NodeDaemonEndpoints`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct DaemonEndpoints {
    /// The kubelet's port.
    pub kubelet_endpoint: DaemonEndpoint,
}

/// `v1.DaemonEndpoint`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct DaemonEndpoint {
    /// The port.
    pub port: u16,
}

impl Resource for Node {
    const PLURAL: &'static str = "nodes";
    const NAMESPACED: bool = false;
    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }
}

/// A list response: its items and where to continue.
#[derive(Debug, Deserialize)]
#[serde(bound = "T: DeserializeOwned")]
pub struct List<T> {
    /// List metadata.
    #[serde(default)]
    pub metadata: ListMeta,
    /// The objects.
    #[serde(default)]
    pub items: Vec<T>,
}

/// `metadata` of a list.
#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ListMeta {
    /// The version to watch from.
    pub resource_version: String,
    /// The token for the next page, if any.
    #[serde(rename = "continue")]
    pub continue_token: String,
}

/// One line of a watch stream, its object left unparsed until the type is known.
#[derive(Debug, Deserialize)]
pub struct WatchEvent {
    /// `ADDED`, `MODIFIED`, `DELETED`, `BOOKMARK` or `ERROR`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The object (a `Status` for `ERROR`).
    pub object: serde_json::Value,
}

/// `v1.Status`, as an `ERROR` event or an error response carries it.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Status {
    /// The HTTP-like code (410 when the resource version is too old).
    pub code: u16,
    /// The reason, e.g. `Expired`.
    pub reason: String,
    /// The message.
    pub message: String,
}
