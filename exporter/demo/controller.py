"""A scripted stand-in for an operator and the AWS Load Balancer Controller.

It flips preserve_client_ip.enabled on the demo's target groups and replaces the node security
group's rules the way LBC does, with real boto3 calls against the embedded moto, and writes a
CloudTrail record for every call into the LookupEvents store (delivered at once; real CloudTrail
takes minutes). Scenes, in a loop, times divided by the speed:

1. shop/web true -> false, break-before-make (LBC < v2.12): revoke 0.0.0.0/0, pause 20-40 s,
   authorize the NLB subnets: an outage of the pause (cause revoke_before_authorize).
2. payments/ledger false -> true: the attribute first, the VPC CIDR rule a few seconds later (LBC's
   asynchronous reconcile): a short gap (requirement_change).
3. shop/api true -> false: SG mode, the node rule references the NLB's backend SG: no rule
   changes, no gap.
4. shop/web false -> true, make-before-break: the attribute first (a short requirement_change gap
   until 0.0.0.0/0 is authorized), then the subnet rules are revoked.
5. payments/ledger true -> false: revoke the VPC CIDR rule; the subnet rules still admit: no gap.
6. shop/api back to true: no gap.
7. shop/web true -> false, make-before-break (LBC >= v2.12): authorize the subnets, then revoke
   0.0.0.0/0: no gap.
8. shop/web false -> true again, as in 4.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from exporter.daemon.state import GAP_MERGE_TOLERANCE_SECONDS
from exporter.demo.motoworld import TrailStore
from exporter.demo.timing import BREAK_PAUSE, FIRST_SCENE_AFTER, REVOKE_AFTER_FLIP, step
from exporter.demo.trail import Permission, Principal, Record, attributes_record, ingress_record
from exporter.demo.world import PRESERVE, SUBNET_CIDRS, VPC_CIDR, Service, World

CONTROLLER_ROLE = "eks-aws-load-balancer-controller"
OPERATOR_ROLE = "platform-admin"
OLD_AGENT = "elbv2.k8s.aws/v2.7.1 aws-sdk-go/1.50.0 (go1.21.6; linux; amd64)"
NEW_AGENT = "elbv2.k8s.aws/v2.12.0 aws-sdk-go-v2/1.32.6 os/linux lang/go#1.23.4 md/GOOS#linux md/GOARCH#amd64"
CLI_AGENT = (
    "aws-cli/2.15.0 Python/3.11.6 Linux/6.1.0 exe/x86_64.debian.12 prompt/off "
    "command/elbv2.modify-target-group-attributes"
)

#: Seconds (at speed 1) between scenes.
BETWEEN_SCENES = 20.0
#: ... but never less than this, whatever the speed: the exporter merges gaps of one flow that
#: are closer than GAP_MERGE_TOLERANCE_SECONDS (one outage, counted once), and polls every 5 s.
MIN_BETWEEN_SCENES = GAP_MERGE_TOLERANCE_SECONDS + 5.0


class _Stopped(Exception):
    pass


class ScriptedController(threading.Thread):
    """Runs the scenes until `stop()`; `say` receives one line per action and per call.

    Lines are stamped with seconds since `started_at` (time.monotonic(); default: construction).
    """

    def __init__(
        self,
        ec2: Any,
        elbv2: Any,
        world: World,
        trail: TrailStore,
        *,
        speed: float = 1.0,
        say: Callable[[str], None] = print,
        rng: random.Random | None = None,
        first_scene_after: float = FIRST_SCENE_AFTER,
        started_at: float | None = None,
    ) -> None:
        super().__init__(name="demo-controller", daemon=True)
        if speed <= 0:
            raise ValueError("speed must be > 0")
        self.ec2 = ec2
        self.elbv2 = elbv2
        self.world = world
        self.trail = trail
        self.speed = speed
        self.say = say
        self.rng = rng or random.Random()
        self.first_scene_after = first_scene_after
        self.calls = 0
        self.failures = 0
        self.error: BaseException | None = None
        self._stop_event = threading.Event()
        self._started_at = time.monotonic() if started_at is None else started_at
        session = str(time.time_ns())
        node_ip = "10.0.1.11"
        issuer = "oidc.eks.us-east-1.amazonaws.com/id/" + session[-8:] + "D539D4633E53DE1B71E"
        self.old_controller = Principal(
            CONTROLLER_ROLE, session, OLD_AGENT, node_ip, world.account, oidc_issuer=issuer
        )
        self.new_controller = Principal(
            CONTROLLER_ROLE, session, NEW_AGENT, node_ip, world.account, oidc_issuer=issuer
        )
        self.operator = Principal(OPERATOR_ROLE, "alice", CLI_AGENT, "198.51.100.7", world.account)

    # --- lifecycle ------------------------------------------------------------------------
    def stop(self) -> None:
        self._stop_event.set()

    @property
    def stopping(self) -> bool:
        return self._stop_event.is_set()

    def run(self) -> None:
        scenes: Sequence[Callable[[], None]] = (
            self.web_break_before_make,
            self.ledger_preserve_on,
            lambda: self.api_flip("false"),
            self.web_preserve_on,
            self.ledger_preserve_off,
            lambda: self.api_flip("true"),
            self.web_make_before_break,
            self.web_preserve_on,
        )
        try:
            self._wait(self.first_scene_after / self.speed)
            while True:
                for scene in scenes:
                    scene()
                    self._wait(max(BETWEEN_SCENES / self.speed, MIN_BETWEEN_SCENES))
        except _Stopped:
            return
        except BaseException as exc:  # a broken script must say so, not die silently
            self.error = exc
            self.say(f"{self._stamp()} scripted controller stopped: {type(exc).__name__}: {exc}")

    def _wait(self, seconds: float) -> None:
        if self._stop_event.wait(seconds):
            raise _Stopped

    def _step(self, seconds: float) -> None:
        """A pause of `seconds` at speed 1 between two ordered calls."""
        self._wait(step(seconds, self.speed))

    def _stamp(self) -> str:
        return f"[{time.monotonic() - self._started_at:7.1f}s]"

    # --- scenes --------------------------------------------------------------------------------
    def web_break_before_make(self) -> None:
        web, group = self.world.web, self.world.node_group
        pause = self.rng.uniform(*BREAK_PAUSE)
        everyone = Permission("tcp", web.port, web.port, cidrs=("0.0.0.0/0",))
        subnets = Permission("tcp", web.port, web.port, cidrs=SUBNET_CIDRS)
        self.say(
            f"{self._stamp()} break-before-make flip of {web.key}: preserve_client_ip -> false, "
            f"revoke {everyone.text()} on {group}, authorize {subnets.text()} "
            f"in {step(pause, self.speed):.0f} s (LBC v2.7.1: expect a gap)"
        )
        self.set_preserve(web, "false")
        self._step(REVOKE_AFTER_FLIP)
        self.revoke(group, everyone, self.old_controller)
        self._step(pause)
        self.authorize(group, subnets, self.old_controller)

    def web_make_before_break(self) -> None:
        web, group = self.world.web, self.world.node_group
        everyone = Permission("tcp", web.port, web.port, cidrs=("0.0.0.0/0",))
        subnets = Permission("tcp", web.port, web.port, cidrs=SUBNET_CIDRS)
        self.say(
            f"{self._stamp()} make-before-break flip of {web.key}: preserve_client_ip -> false, "
            f"authorize {subnets.text()}, then revoke {everyone.text()} on {group} "
            "(LBC >= v2.12: expect no gap)"
        )
        self.set_preserve(web, "false")
        self._step(1.5)
        self.authorize(group, subnets, self.new_controller)
        self._step(1.5)
        self.revoke(group, everyone, self.new_controller)

    def web_preserve_on(self) -> None:
        web, group = self.world.web, self.world.node_group
        delay = self.rng.uniform(3.0, 6.0)
        everyone = Permission("tcp", web.port, web.port, cidrs=("0.0.0.0/0",))
        subnets = Permission("tcp", web.port, web.port, cidrs=SUBNET_CIDRS)
        self.say(
            f"{self._stamp()} make-before-break flip of {web.key}: preserve_client_ip -> true, "
            f"authorize {everyone.text()} in {step(delay, self.speed):.0f} s, then revoke "
            f"{subnets.text()} (the attribute changes first: expect a short gap)"
        )
        self.set_preserve(web, "true")
        self._step(delay)
        self.authorize(group, everyone, self.new_controller)
        self._step(1.5)
        self.revoke(group, subnets, self.new_controller)

    def ledger_preserve_on(self) -> None:
        ledger, group = self.world.ledger, self.world.node_group
        delay = self.rng.uniform(4.0, 8.0)
        vpc = Permission("tcp", ledger.port, ledger.port, cidrs=(VPC_CIDR,))
        self.say(
            f"{self._stamp()} flip of {ledger.key} (internal, ip targets): preserve_client_ip -> true, "
            f"authorize {vpc.text()} in {step(delay, self.speed):.0f} s; the subnet rules stay "
            "for health checks (expect a short gap)"
        )
        self.set_preserve(ledger, "true")
        self._step(delay)
        self.authorize(group, vpc, self.old_controller)

    def ledger_preserve_off(self) -> None:
        ledger, group = self.world.ledger, self.world.node_group
        vpc = Permission("tcp", ledger.port, ledger.port, cidrs=(VPC_CIDR,))
        self.say(
            f"{self._stamp()} flip of {ledger.key}: preserve_client_ip -> false, revoke {vpc.text()}; "
            "the subnet rules admit the NLB (expect no gap)"
        )
        self.set_preserve(ledger, "false")
        self._step(2.0)
        self.revoke(group, vpc, self.old_controller)

    def api_flip(self, value: str) -> None:
        api = self.world.api
        self.say(
            f"{self._stamp()} flip of {api.key} (SG mode): preserve_client_ip -> {value}; the node rule "
            f"references the backend SG {self.world.backend_group}: nothing to replace (expect no gap)"
        )
        self.set_preserve(api, value)

    # --- calls, each with its CloudTrail record ----------------------------------------------
    def set_preserve(self, service: Service, value: str) -> None:
        when = _now()
        error = self._call(
            self.elbv2.modify_target_group_attributes,
            TargetGroupArn=service.target_group_arn,
            Attributes=[{"Key": PRESERVE, "Value": value}],
        )
        self._record(
            attributes_record(
                target_group_arn=service.target_group_arn,
                attributes={PRESERVE: value},
                when=when,
                who=self.operator,
                region=self.world.region,
                error=error,
            ),
            f"ModifyTargetGroupAttributes {service.target_group} {PRESERVE}={value}",
            error,
        )

    def authorize(self, group_id: str, permission: Permission, who: Principal) -> None:
        when = _now()
        error = self._call(
            self.ec2.authorize_security_group_ingress, GroupId=group_id, IpPermissions=[permission.api()]
        )
        # moto (like older EC2) returns only the last new rule: read all of them back.
        rules = [] if error else self._rules(group_id, permission)
        self._record(
            ingress_record(
                "authorize",
                group_id=group_id,
                permissions=[permission],
                rules=rules,
                when=when,
                who=who,
                region=self.world.region,
                error=error,
            ),
            f"AuthorizeSecurityGroupIngress {group_id} {permission.text()}",
            error,
        )

    def revoke(self, group_id: str, permission: Permission, who: Principal) -> None:
        rules = self._rules(group_id, permission)
        when = _now()
        error = self._call(
            self.ec2.revoke_security_group_ingress, GroupId=group_id, IpPermissions=[permission.api()]
        )
        self._record(
            ingress_record(
                "revoke",
                group_id=group_id,
                permissions=[permission],
                rules=[] if error else rules,
                when=when,
                who=who,
                region=self.world.region,
                error=error,
            ),
            f"RevokeSecurityGroupIngress {group_id} {permission.text()}",
            error,
        )

    def _call(self, method: Callable[..., Any], **kwargs: Any) -> tuple[str, str] | None:
        self.calls += 1
        try:
            method(**kwargs)
        except ClientError as exc:
            self.failures += 1
            info = exc.response.get("Error", {})
            return str(info.get("Code", "Unknown")), str(info.get("Message", exc))
        except BotoCoreError as exc:
            self.failures += 1
            return type(exc).__name__, str(exc)
        return None

    def _rules(self, group_id: str, permission: Permission) -> list[dict[str, Any]]:
        """The group's ingress rules that `permission` covers (DescribeSecurityGroupRules shape)."""
        wanted = set(permission.sources())
        found = []
        pages = self.ec2.get_paginator("describe_security_group_rules").paginate(
            Filters=[{"Name": "group-id", "Values": [group_id]}]
        )
        for page in pages:
            for rule in page.get("SecurityGroupRules", []):
                if rule.get("IsEgress") or rule.get("IpProtocol") != permission.protocol:
                    continue
                if (rule.get("FromPort"), rule.get("ToPort")) != (permission.from_port, permission.to_port):
                    continue
                source = (
                    ("cidr", rule["CidrIpv4"])
                    if rule.get("CidrIpv4")
                    else ("group", (rule.get("ReferencedGroupInfo") or {}).get("GroupId", ""))
                )
                if source in wanted:
                    found.append(rule)
        return found

    def _record(self, record: Record, what: str, error: tuple[str, str] | None) -> None:
        self.trail.add([record])
        who = record["userIdentity"]["sessionContext"]["sessionIssuer"]["userName"]
        outcome = f" FAILED {error[0]}: {error[1]}" if error else ""
        self.say(f"{self._stamp()}   {what} by {who}{outcome}")


def _now() -> datetime:
    return datetime.now(tz=UTC)
