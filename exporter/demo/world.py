"""The demo cluster, created with real boto3 calls against the embedded moto.

EKS cluster `demo`: VPC 10.0.0.0/16, subnets 10.0.1.0/24 and 10.0.2.0/24, three worker nodes in
the node security group (tagged kubernetes.io/cluster/demo), and three Services the AWS Load
Balancer Controller would have made NLBs for:

- shop/web: internet-facing, legacy mode (no NLB security groups), instance targets on NodePort
  31080; the node group admits 0.0.0.0/0 tcp/31080 (preserve_client_ip on: clients' addresses).
- shop/api: internet-facing, SG mode: a frontend SG (clients, tcp/80) and the backend SG
  `k8s-traffic-demo-*`; the node rule admits the backend SG on NodePort 31081.
- payments/ledger: internal, ip targets (pod IPs on VPC CNI ENIs in the node group), port 8080,
  preserve_client_ip off: the node group admits the NLB subnets' CIDRs.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from exporter.demo.trail import Permission

CLUSTER = "demo"
REGION = "us-east-1"
VPC_CIDR = "10.0.0.0/16"
SUBNETS = (("10.0.1.0/24", "us-east-1a"), ("10.0.2.0/24", "us-east-1b"))
SUBNET_CIDRS = tuple(cidr for cidr, _az in SUBNETS)
NODE_IPS = ("10.0.1.11", "10.0.2.12", "10.0.1.13")
POD_IPS = ("10.0.1.50", "10.0.2.50")
WEB_NODE_PORT = 31080
API_NODE_PORT = 31081
LEDGER_POD_PORT = 8080
PRESERVE = "preserve_client_ip.enabled"


def _hash(text: str, size: int = 10) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:size]


def lbc_name(namespace: str, service: str, salt: str = "") -> str:
    """How LBC names an NLB or target group: k8s-<ns>-<svc>-<hash>, at most 32 characters."""
    return f"k8s-{namespace[:8]}-{service[:8]}-{_hash(f'{CLUSTER}/{namespace}/{service}/{salt}')}"


@dataclass(frozen=True)
class Service:
    """One Kubernetes Service of type LoadBalancer and what LBC made for it."""

    namespace: str
    name: str
    load_balancer_arn: str
    target_group_arn: str
    target_group: str
    port: int  # NodePort (instance targets) or pod port (ip targets)
    mode: str  # "legacy" or "sg"
    scheme: str

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True)
class World:
    account: str
    region: str
    vpc_id: str
    subnet_ids: tuple[str, ...]
    node_group: str
    backend_group: str
    frontend_group: str
    instance_ids: tuple[str, ...]
    web: Service
    api: Service
    ledger: Service

    @property
    def services(self) -> tuple[Service, ...]:
        return (self.web, self.api, self.ledger)


def _tags(tags: dict[str, str]) -> list[dict[str, str]]:
    return [{"Key": k, "Value": v} for k, v in tags.items()]


def _lbc_tags(namespace: str, service: str, resource: str) -> dict[str, str]:
    return {
        "elbv2.k8s.aws/cluster": CLUSTER,
        "service.k8s.aws/stack": f"{namespace}/{service}",
        "service.k8s.aws/resource": resource,
    }


def _nlb(
    elbv2: Any,
    *,
    namespace: str,
    name: str,
    scheme: str,
    subnet_ids: tuple[str, ...],
    security_groups: tuple[str, ...] = (),
    target_type: str,
    port: int,
    listener_port: int,
    vpc_id: str,
    targets: list[dict[str, Any]],
    attributes: dict[str, str] | None = None,
) -> Service:
    lb_name = lbc_name(namespace, name)
    kwargs: dict[str, Any] = {
        "Name": lb_name,
        "Subnets": list(subnet_ids),
        "Scheme": scheme,
        "Type": "network",
        "IpAddressType": "ipv4",
        "Tags": _tags(_lbc_tags(namespace, name, "LoadBalancer")),
    }
    if security_groups:
        kwargs["SecurityGroups"] = list(security_groups)
    lb_arn = elbv2.create_load_balancer(**kwargs)["LoadBalancers"][0]["LoadBalancerArn"]
    tg_name = lbc_name(namespace, name, f"{target_type}:{listener_port}")
    tg = elbv2.create_target_group(
        Name=tg_name,
        Protocol="TCP",
        Port=port,
        VpcId=vpc_id,
        TargetType=target_type,
        HealthCheckProtocol="TCP",
        HealthCheckPort="traffic-port",
        Tags=_tags(_lbc_tags(namespace, name, f"{namespace}/{name}:{listener_port}")),
    )["TargetGroups"][0]
    tg_arn = tg["TargetGroupArn"]
    if attributes:
        elbv2.modify_target_group_attributes(
            TargetGroupArn=tg_arn, Attributes=[{"Key": k, "Value": v} for k, v in attributes.items()]
        )
    elbv2.register_targets(TargetGroupArn=tg_arn, Targets=targets)
    elbv2.create_listener(
        LoadBalancerArn=lb_arn,
        Protocol="TCP",
        Port=listener_port,
        DefaultActions=[{"Type": "forward", "TargetGroupArn": tg_arn}],
    )
    return Service(
        namespace=namespace,
        name=name,
        load_balancer_arn=lb_arn,
        target_group_arn=tg_arn,
        target_group=tg_name,
        port=port,
        mode="sg" if security_groups else "legacy",
        scheme=scheme,
    )


def authorize(ec2: Any, group_id: str, *permissions: Permission) -> None:
    ec2.authorize_security_group_ingress(GroupId=group_id, IpPermissions=[p.api() for p in permissions])


def seed(ec2: Any, elbv2: Any, account: str) -> World:
    """Create the demo cluster; returns the ids the scripted controller works with."""
    vpc_id = ec2.create_vpc(
        CidrBlock=VPC_CIDR,
        TagSpecifications=[{"ResourceType": "vpc", "Tags": _tags({"Name": f"eksctl-{CLUSTER}-cluster/VPC"})}],
    )["Vpc"]["VpcId"]
    subnet_ids = tuple(
        ec2.create_subnet(VpcId=vpc_id, CidrBlock=cidr, AvailabilityZone=az)["Subnet"]["SubnetId"]
        for cidr, az in SUBNETS
    )
    node_group = ec2.create_security_group(
        GroupName=f"eks-cluster-sg-{CLUSTER}-{_hash('node', 9)}",
        Description="EKS created security group applied to ENI that is attached to EKS Control Plane"
        " master nodes, as well as any managed workloads.",
        VpcId=vpc_id,
        TagSpecifications=[
            {
                "ResourceType": "security-group",
                "Tags": _tags({f"kubernetes.io/cluster/{CLUSTER}": "owned", "Name": f"{CLUSTER}-nodes"}),
            }
        ],
    )["GroupId"]
    # Nodes talk to each other on every port (EKS's own rule on the cluster security group).
    ec2.authorize_security_group_ingress(
        GroupId=node_group,
        IpPermissions=[{"IpProtocol": "-1", "UserIdGroupPairs": [{"GroupId": node_group}]}],
    )
    backend_group = ec2.create_security_group(
        GroupName=f"k8s-traffic-{CLUSTER}-{_hash('backend')}",
        Description="[k8s] Shared Backend SecurityGroup for LoadBalancer",
        VpcId=vpc_id,
        TagSpecifications=[
            {
                "ResourceType": "security-group",
                "Tags": _tags({"elbv2.k8s.aws/cluster": CLUSTER, "elbv2.k8s.aws/resource": "backend-sg"}),
            }
        ],
    )["GroupId"]
    frontend_group = ec2.create_security_group(
        GroupName=lbc_name("shop", "api"),
        Description="[k8s] Managed SecurityGroup for LoadBalancer",
        VpcId=vpc_id,
        TagSpecifications=[
            {
                "ResourceType": "security-group",
                "Tags": _tags(_lbc_tags("shop", "api", "ManagedLBSecurityGroup")),
            }
        ],
    )["GroupId"]
    authorize(ec2, frontend_group, Permission("tcp", 80, 80, cidrs=("0.0.0.0/0",), description=""))

    images = (
        ec2.describe_images(Owners=["amazon"], Filters=[{"Name": "name", "Values": ["amazon-eks-node-*"]}])[
            "Images"
        ]
        or ec2.describe_images(Owners=["amazon"])["Images"]
    )
    image = images[0]["ImageId"]
    instance_ids: list[str] = []
    for i, ip in enumerate(NODE_IPS):
        subnet = subnet_ids[0] if ip.startswith("10.0.1.") else subnet_ids[1]
        instance = ec2.run_instances(
            ImageId=image,
            InstanceType="m5.large",
            MinCount=1,
            MaxCount=1,
            NetworkInterfaces=[
                {
                    "DeviceIndex": 0,
                    "SubnetId": subnet,
                    "PrivateIpAddress": ip,
                    "Groups": [node_group],
                }
            ],
            TagSpecifications=[
                {
                    "ResourceType": "instance",
                    "Tags": _tags(
                        {
                            "Name": f"{CLUSTER}-ng-{i + 1}",
                            f"kubernetes.io/cluster/{CLUSTER}": "owned",
                            "eks:nodegroup-name": f"{CLUSTER}-ng",
                        }
                    ),
                }
            ],
        )["Instances"][0]
        instance_ids.append(instance["InstanceId"])
    # The ledger pods' addresses live on secondary ENIs the VPC CNI attached to nodes 1 and 2.
    for device, (instance_id, pod_ip) in enumerate(zip(instance_ids, POD_IPS, strict=False)):
        subnet = subnet_ids[0] if pod_ip.startswith("10.0.1.") else subnet_ids[1]
        eni = ec2.create_network_interface(
            SubnetId=subnet,
            PrivateIpAddress=pod_ip,
            Groups=[node_group],
            Description=f"aws-K8S-{instance_id}",
        )["NetworkInterface"]["NetworkInterfaceId"]
        ec2.attach_network_interface(NetworkInterfaceId=eni, InstanceId=instance_id, DeviceIndex=1 + device)

    web = _nlb(
        elbv2,
        namespace="shop",
        name="web",
        scheme="internet-facing",
        subnet_ids=subnet_ids,
        target_type="instance",
        port=WEB_NODE_PORT,
        listener_port=80,
        vpc_id=vpc_id,
        targets=[{"Id": i, "Port": WEB_NODE_PORT} for i in instance_ids],
    )
    authorize(ec2, node_group, Permission("tcp", WEB_NODE_PORT, WEB_NODE_PORT, cidrs=("0.0.0.0/0",)))

    api = _nlb(
        elbv2,
        namespace="shop",
        name="api",
        scheme="internet-facing",
        subnet_ids=subnet_ids,
        security_groups=(frontend_group, backend_group),
        target_type="instance",
        port=API_NODE_PORT,
        listener_port=80,
        vpc_id=vpc_id,
        targets=[{"Id": i, "Port": API_NODE_PORT} for i in instance_ids],
    )
    authorize(ec2, node_group, Permission("tcp", API_NODE_PORT, API_NODE_PORT, groups=(backend_group,)))

    ledger = _nlb(
        elbv2,
        namespace="payments",
        name="ledger",
        scheme="internal",
        subnet_ids=subnet_ids,
        target_type="ip",
        port=LEDGER_POD_PORT,
        listener_port=8080,
        vpc_id=vpc_id,
        targets=[{"Id": ip, "Port": LEDGER_POD_PORT} for ip in POD_IPS],
        attributes={PRESERVE: "false"},
    )
    authorize(ec2, node_group, Permission("tcp", LEDGER_POD_PORT, LEDGER_POD_PORT, cidrs=SUBNET_CIDRS))

    return World(
        account=account,
        region=REGION,
        vpc_id=vpc_id,
        subnet_ids=subnet_ids,
        node_group=node_group,
        backend_group=backend_group,
        frontend_group=frontend_group,
        instance_ids=tuple(instance_ids),
        web=web,
        api=api,
        ledger=ledger,
    )
