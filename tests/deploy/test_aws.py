"""The AWS template (deploy/aws/aidpost.yaml): cfn-lint finds nothing in it, and what it
deploys is what docs/deployment.md and the settings say: every process with its command,
every edge route to its service, each process's secrets and no others, and the data tier
as docs/deploy-aws.md promises (Multi-AZ, encrypted, backed up, in its own subnets).

The template is read with cfn-lint's decoder, so ``!Ref X`` is ``{"Ref": "X"}`` here.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

import pytest
from cfnlint.api import ManualArgs, lint
from cfnlint.decode import decode_str

from aidpost.core.settings import SECRETS, SHARED_SECRETS

REPO = Path(__file__).resolve().parents[2]
TEMPLATE = REPO / "deploy" / "aws" / "aidpost.yaml"
DEPLOYMENT = REPO / "docs" / "deployment.md"
GUIDE = REPO / "docs" / "deploy-aws.md"
# The template takes its zones and service names from the region it is deployed in.
REGIONS = ["us-east-1", "eu-central-1"]
CACHING_DISABLED = "4135ea2d-6df8-44a3-9df3-4b5a84be39ad"
ALL_VIEWER = "216adef6-5c7f-47e4-b989-5492eafa07d3"
SECRET_NAMES = {name for names in SECRETS.values() for name in names} | set(SHARED_SECRETS)
DATABASE_URLS = {name for name in SECRET_NAMES if name.endswith("_DATABASE_URL")}

Node = dict[str, Any]


# --- reading the template -------------------------------------------------------------


@pytest.fixture(scope="module")
def template() -> Node:
    decoded, errors = decode_str(TEMPLATE.read_text())
    assert not errors, errors
    assert isinstance(decoded, dict)
    return decoded


def resources(template: Node, kind: str) -> dict[str, Node]:
    return {k: v for k, v in template["Resources"].items() if v["Type"] == kind}


def props(template: Node, name: str) -> Node:
    found: Node = template["Resources"][name].get("Properties", {})
    return found


def ref(value: Any) -> str:
    """The logical id in ``{"Ref": id}`` (the value must be one)."""
    assert isinstance(value, dict) and set(value) == {"Ref"}, value
    name: str = value["Ref"]
    return name


def sub_text(value: Any) -> str:
    """A string as ``Fn::Sub`` would write it: a ``Ref`` is ``${X}``, a ``GetAtt`` ``${X.Y}``."""
    if isinstance(value, str):
        return value
    assert isinstance(value, dict) and len(value) == 1, value
    ((function, body),) = value.items()
    if function == "Ref":
        return f"${{{body}}}"
    if function == "Fn::GetAtt":
        return f"${{{'.'.join(body)}}}"
    assert function == "Fn::Sub", value
    text: str = body if isinstance(body, str) else body[0]
    return text


def parts(pattern: str, text: str) -> tuple[str, ...]:
    """The groups of ``pattern`` matching all of ``text`` (which it must)."""
    match = re.fullmatch(pattern, text)
    assert match, (pattern, text)
    return match.groups()


def sub_variables(value: Any) -> dict[str, Any]:
    body = value["Fn::Sub"] if isinstance(value, dict) else value
    return dict(body[1]) if isinstance(body, list) else {}


def resolve(template: Node, value: Any, **parameters: str) -> Any:
    """``value`` with every ``Fn::If`` decided for these parameter values (the others at
    their defaults); other intrinsics stay as they are."""
    if isinstance(value, list):
        return [resolve(template, v, **parameters) for v in value]
    if not isinstance(value, dict):
        return value
    if set(value) == {"Fn::If"}:
        condition, yes, no = value["Fn::If"]
        ((function, operands),) = template["Conditions"][condition].items()
        assert function == "Fn::Equals", condition
        left, right = (
            parameters.get(ref(x), template["Parameters"][ref(x)].get("Default"))
            if isinstance(x, dict)
            else x
            for x in operands
        )
        return resolve(template, yes if left == right else no, **parameters)
    return {k: resolve(template, v, **parameters) for k, v in value.items()}


def container(template: Node, task: str) -> Node:
    (only,) = props(template, task)["ContainerDefinitions"]
    return dict(only)


def env(template: Node, task: str) -> dict[str, Any]:
    return {e["Name"]: e["Value"] for e in container(template, task).get("Environment", [])}


def stream_prefix(template: Node, task: str) -> str:
    options = container(template, task)["LogConfiguration"]["Options"]
    prefix: str = options["awslogs-stream-prefix"]
    return prefix


def aidpost_tasks(template: Node) -> dict[str, str]:
    """Task definitions that run the aidpost image, by their log stream prefix."""
    return {
        stream_prefix(template, name): name
        for name in resources(template, "AWS::ECS::TaskDefinition")
        if resolve(template, container(template, name)["Image"]) == {"Ref": "ImageUri"}
    }


def services(template: Node) -> dict[str, str]:
    """ECS services by the name docs/deployment.md gives them (their task's log prefix)."""
    return {
        stream_prefix(template, ref(p["TaskDefinition"])): name
        for name, p in ((n, props(template, n)) for n in resources(template, "AWS::ECS::Service"))
    }


def secret_json(template: Node, secret: str) -> dict[str, str]:
    """A composed secret's keys and their text, ``${...}`` and ``{{resolve:...}}`` left in."""
    loaded: dict[str, str] = json.loads(sub_text(props(template, secret)["SecretString"]))
    return loaded


# --- reading the docs -----------------------------------------------------------------


def doc_table(first_header: str) -> list[list[str]]:
    """The rows (below the header) of docs/deployment.md's table that starts so."""
    rows: list[list[str]] = []
    for line in [*DEPLOYMENT.read_text().splitlines(), ""]:
        if line.startswith("|"):
            rows.append([cell.strip() for cell in line.strip().strip("|").split("|")])
        elif rows:
            if rows[0][0] == first_header:
                return rows[2:]
            rows = []
    raise AssertionError(f"no table starting with {first_header!r} in {DEPLOYMENT}")


def ticked(cell: str) -> list[str]:
    return re.findall(r"`([^`]+)`", cell)


def documented_processes() -> dict[str, tuple[list[str], dict[str, str], int]]:
    """Each process: its command after ``aidpost``, the variables the table sets and the
    fewest replicas it runs as (0 for a one-shot)."""
    out = {}
    for service, command, replicas, *_ in doc_table("service"):
        (name,) = ticked(service)
        spans = ticked(command)
        words = spans[0].split()
        words = words[1:] if words[0] == "aidpost" else words
        least = re.match(r"(\d+)\+", replicas)
        out[name] = (words, dict(s.split("=", 1) for s in spans[1:]), int(least[1]) if least else 0)
    return out


def documented_routes() -> Iterator[tuple[str, str]]:
    """(path a request asks for, service that must answer it), from the routes table."""
    for prefixes, service in doc_table("path prefix"):
        (name,) = ticked(service)
        for prefix in ticked(prefixes):
            if prefix.endswith("/"):
                yield prefix + "x", name
            else:
                yield prefix, name
                yield prefix + "/x", name


# --- cfn-lint -------------------------------------------------------------------------


def test_cfn_lint_finds_no_error_or_warning() -> None:
    matches = lint(TEMPLATE.read_text(), config=ManualArgs(regions=REGIONS))
    found = [str(m) for m in matches if m.rule.severity in ("error", "warning")]
    assert not found, "\n".join(found)


def test_the_template_fits_cloudformations_limits() -> None:
    text = TEMPLATE.read_text()
    assert text.count("{{resolve:") <= 60  # dynamic references per template
    assert len(text.encode()) <= 1_000_000  # a template body from S3
    if len(text.encode()) > 51_200:  # more than CloudFormation takes inline
        assert "--s3-bucket" in GUIDE.read_text()


def test_every_parameter_is_in_the_guide(template: Node) -> None:
    section = GUIDE.read_text().split("## Parameters", 1)[1].split("\n## ", 1)[0]
    documented = set(re.findall(r"^\| (.+?) \|", section, re.MULTILINE))
    named = {name for cell in documented for name in ticked(cell)}
    assert set(template["Parameters"]) == named


# --- network --------------------------------------------------------------------------


def subnet_tiers(template: Node) -> dict[str, list[str]]:
    """Subnets by where their route table sends 0.0.0.0/0: internet gateway (public), NAT
    (private), nowhere (database)."""
    default_route = {
        ref(p["RouteTableId"]): p
        for p in (props(template, n) for n in resources(template, "AWS::EC2::Route"))
        if p["DestinationCidrBlock"] == "0.0.0.0/0"
    }
    tiers: dict[str, list[str]] = {"public": [], "private": [], "database": []}
    for name in resources(template, "AWS::EC2::SubnetRouteTableAssociation"):
        p = props(template, name)
        route = default_route.get(ref(p["RouteTableId"]))
        tier = "database" if route is None else "public" if "GatewayId" in route else "private"
        tiers[tier].append(ref(p["SubnetId"]))
    return tiers


def zone(template: Node, subnet: str) -> int:
    index, azs = props(template, subnet)["AvailabilityZone"]["Fn::Select"]
    assert azs == {"Fn::GetAZs": ""}
    return int(index)


def test_three_tiers_of_subnets_in_two_zones(template: Node) -> None:
    tiers = subnet_tiers(template)
    every = [subnet for subnets in tiers.values() for subnet in subnets]
    assert sorted(every) == sorted(resources(template, "AWS::EC2::Subnet"))
    for tier, subnets in tiers.items():
        assert sorted(zone(template, s) for s in subnets) == [0, 1], tier


def test_each_private_subnet_leaves_through_the_nat_gateway_of_its_own_zone(
    template: Node,
) -> None:
    tiers = subnet_tiers(template)
    routes = [props(template, n) for n in resources(template, "AWS::EC2::Route")]
    for name in resources(template, "AWS::EC2::SubnetRouteTableAssociation"):
        p = props(template, name)
        subnet = ref(p["SubnetId"])
        if subnet not in tiers["private"]:
            continue
        (nat,) = [
            ref(r["NatGatewayId"])
            for r in routes
            if ref(r["RouteTableId"]) == ref(p["RouteTableId"]) and "NatGatewayId" in r
        ]
        nat_subnet = ref(props(template, nat)["SubnetId"])
        assert nat_subnet in tiers["public"]
        assert zone(template, nat_subnet) == zone(template, subnet)


def test_the_vpc_has_flow_logs(template: Node) -> None:
    (flow_log,) = [props(template, n) for n in resources(template, "AWS::EC2::FlowLog")]
    assert ref(flow_log["ResourceId"]) in resources(template, "AWS::EC2::VPC")
    assert flow_log["TrafficType"] == "ALL"


def rules(template: Node, group: str, direction: str) -> list[Node]:
    """Inline and stand-alone rules of a security group, one direction."""
    inline = props(template, group).get(f"SecurityGroup{direction}", [])
    kind = f"AWS::EC2::SecurityGroup{direction}"
    apart = [
        props(template, n)
        for n in resources(template, kind)
        if ref(props(template, n)["GroupId"]) == group
    ]
    return [dict(r) for r in [*inline, *apart]]


def peer(rule: Node) -> str:
    for key in ("SourceSecurityGroupId", "DestinationSecurityGroupId"):
        if key in rule:
            return ref(rule[key])
    return str(rule.get("CidrIp"))


def test_security_groups_open_only_the_ports_between_the_tiers(template: Node) -> None:
    lb, tasks = "LoadBalancerSecurityGroup", "ServiceSecurityGroup"
    database, redis = "DatabaseSecurityGroup", "RedisSecurityGroup"

    def shape(group: str, direction: str) -> set[tuple[Any, Any, str]]:
        return {(r["FromPort"], r["ToPort"], peer(r)) for r in rules(template, group, direction)}

    for group in resources(template, "AWS::EC2::SecurityGroup"):
        # Without inline egress a group keeps AWS's default rule: everything may go out.
        assert props(template, group)["SecurityGroupEgress"], group
    assert shape(lb, "Egress") == {(8000, 8000, tasks)}
    assert shape(tasks, "Ingress") == {(8000, 8000, lb), (8000, 8000, tasks)}
    assert shape(database, "Ingress") == {(5432, 5432, tasks)}
    assert shape(redis, "Ingress") == {(6379, 6379, tasks)}
    for group in (database, redis):
        assert {peer(r) for r in rules(template, group, "Egress")} == {"127.0.0.1/32"}
    assert (5432, 5432, database) in shape(tasks, "Egress")
    assert (6379, 6379, redis) in shape(tasks, "Egress")


# --- data -----------------------------------------------------------------------------


def parameter_floor(template: Node, value: Any) -> int:
    """The least a numeric property can be: itself, or its parameter's MinValue."""
    if isinstance(value, int):
        return value
    parameter = template["Parameters"][ref(value)]
    assert int(parameter["Default"]) >= int(parameter["MinValue"])
    return int(parameter["MinValue"])


def test_both_databases_are_multi_az_encrypted_backed_up_and_kept(template: Node) -> None:
    instances = resources(template, "AWS::RDS::DBInstance")
    assert sorted(instances) == ["MainDatabase", "ParticipantDatabase"]
    database_subnets = sorted(subnet_tiers(template)["database"])
    for name, resource in instances.items():
        p = resource["Properties"]
        assert p["Engine"] == "postgres", name
        assert p["MultiAZ"] is True, name
        assert p["StorageEncrypted"] is True, name
        assert p["DeletionProtection"] is True, name
        assert p["PubliclyAccessible"] is False, name
        assert resource["DeletionPolicy"] == resource["UpdateReplacePolicy"] == "Snapshot"
        assert parameter_floor(template, p["BackupRetentionPeriod"]) >= 7, name
        group = props(template, ref(p["DBSubnetGroupName"]))
        assert sorted(ref(s) for s in group["SubnetIds"]) == database_subnets, name
        assert "{{resolve:secretsmanager:" in sub_text(p["MasterUserPassword"]), name


def test_redis_has_a_replica_fails_over_and_encrypts(template: Node) -> None:
    (p,) = [props(template, n) for n in resources(template, "AWS::ElastiCache::ReplicationGroup")]
    assert p["NumCacheClusters"] >= 2
    assert p["AutomaticFailoverEnabled"] is True
    assert p["MultiAZEnabled"] is True
    assert p["TransitEncryptionEnabled"] is True
    assert p["AtRestEncryptionEnabled"] is True
    assert sub_text(p["AuthToken"]).startswith("{{resolve:secretsmanager:")
    group = props(template, ref(p["CacheSubnetGroupName"]))
    assert sorted(ref(s) for s in group["SubnetIds"]) == sorted(subnet_tiers(template)["database"])


def database_of(template: Node, secret: str, key: str) -> tuple[str, str]:
    """(RDS instance, database name) a composed database URL points at."""
    value = secret_json(template, secret)[key]
    base, name = parts(r"\$\{(\w+)\}/(\w+)", value)
    url = sub_text(sub_variables(props(template, secret)["SecretString"])[base])
    assert url.startswith("postgresql+asyncpg://"), url
    (instance,) = re.findall(r"@\$\{(\w+)\.Endpoint\.Address\}:", url)
    return instance, name


def test_participant_data_lives_on_its_own_instance_and_every_database_exists(
    template: Node,
) -> None:
    setup = props(template, "DatabaseSetupTaskDefinition")["ContainerDefinitions"][0]
    setup_env = {e["Name"]: e["Value"] for e in setup["Environment"]}
    created = {
        instance: {props(template, instance)["DBName"]}
        for instance in resources(template, "AWS::RDS::DBInstance")
    }
    created[setup_env["PGHOST"]["Fn::GetAtt"][0]] |= set(setup_env["AIDPOST_DATABASES"].split())
    for secret in resources(template, "AWS::SecretsManager::Secret"):
        if "SecretString" not in props(template, secret):
            continue
        for key in secret_json(template, secret).keys() & DATABASE_URLS:
            instance, name = database_of(template, secret, key)
            expected = "Participant" if key.startswith("AIDPOST_PARTICIPANT_") else "Main"
            assert instance == f"{expected}Database", (secret, key)
            assert name in created[instance], (secret, key, name)


# --- edge -----------------------------------------------------------------------------


def listener_rules(template: Node) -> list[Node]:
    found = [
        props(template, n)
        for n in resources(template, "AWS::ElasticLoadBalancingV2::ListenerRule")
        if ref(props(template, n)["ListenerArn"]) == "HttpsListener"
    ]
    return sorted(found, key=lambda p: int(p["Priority"]))


def routed_target_group(template: Node, path: str) -> str:
    """The target group the HTTPS listener forwards ``path`` to: the first rule (lowest
    priority number) whose path pattern matches, else the default action."""
    for rule in listener_rules(template):
        patterns = [
            value
            for condition in rule["Conditions"]
            if condition["Field"] == "path-pattern"
            for value in condition["PathPatternConfig"]["Values"]
        ]
        if any(fnmatchcase(path, pattern) for pattern in patterns):
            (action,) = rule["Actions"]
            return ref(action["TargetGroupArn"])
    (default,) = props(template, "HttpsListener")["DefaultActions"]
    return ref(default["TargetGroupArn"])


def service_behind(template: Node, target_group: str) -> str:
    (name,) = [
        stream_prefix(template, ref(props(template, n)["TaskDefinition"]))
        for n in resources(template, "AWS::ECS::Service")
        for lb in props(template, n).get("LoadBalancers", [])
        if ref(lb["TargetGroupArn"]) == target_group
    ]
    return name


@pytest.mark.parametrize(("path", "service"), list(documented_routes()))
def test_every_documented_route_reaches_its_service(
    template: Node, path: str, service: str
) -> None:
    target_group = routed_target_group(template, path)
    assert service_behind(template, target_group) == service
    health = props(template, target_group)
    assert health["HealthCheckPath"] == "/status"
    assert health["Matcher"] == {"HttpCode": "200"}


def test_the_gateways_get_long_idle_sockets_and_least_outstanding_requests(
    template: Node,
) -> None:
    attributes = {
        a["Key"]: a["Value"] for a in props(template, "LoadBalancer")["LoadBalancerAttributes"]
    }
    assert int(attributes["idle_timeout.timeout_seconds"]) >= 120
    gateway = routed_target_group(template, "/messenger-api/connect")
    algorithm = {a["Key"]: a["Value"] for a in props(template, gateway)["TargetGroupAttributes"]}[
        "load_balancing.algorithm.type"
    ]
    assert algorithm == "least_outstanding_requests"


def test_http_redirects_to_https_with_a_dns_validated_certificate(template: Node) -> None:
    (redirect,) = props(template, "HttpListener")["DefaultActions"]
    assert redirect["Type"] == "redirect"
    assert redirect["RedirectConfig"]["Protocol"] == "HTTPS"
    https = props(template, "HttpsListener")
    assert https["Protocol"] == "HTTPS"
    (certificate,) = https["Certificates"]
    cert = props(template, ref(certificate["CertificateArn"]))
    assert cert["ValidationMethod"] == "DNS"
    zones = {ref(o["HostedZoneId"]) for o in cert["DomainValidationOptions"]}
    assert zones == {"HostedZoneId"}


def test_waf_guards_the_load_balancer_with_the_managed_and_rate_rules(template: Node) -> None:
    (acl_name,) = resources(template, "AWS::WAFv2::WebACL")
    acl = props(template, acl_name)
    assert acl["Scope"] == "REGIONAL"
    managed = {
        r["Statement"]["ManagedRuleGroupStatement"]["Name"]: r
        for r in acl["Rules"]
        if "ManagedRuleGroupStatement" in r["Statement"]
    }
    for group in (
        "AWSManagedRulesSQLiRuleSet",
        "AWSManagedRulesCommonRuleSet",
        "AWSManagedRulesKnownBadInputsRuleSet",
        "AWSManagedRulesBotControlRuleSet",
    ):
        assert managed[group]["OverrideAction"] == {"None": {}}, group  # blocking, not counting
    rate = [r for r in acl["Rules"] if "RateBasedStatement" in r["Statement"]]
    assert [r["Action"] for r in rate] == [{"Block": {}}]
    # Counted by the address CloudFront's function writes, which a viewer cannot forge.
    header = rate[0]["Statement"]["RateBasedStatement"]["ForwardedIPConfig"]["HeaderName"]
    function = props(template, "ViewerAddressFunction")["FunctionCode"]
    assert f"headers['{header.lower()}'] = {{ value: event.viewer.ip }}" in function

    (association,) = [
        props(template, n) for n in resources(template, "AWS::WAFv2::WebACLAssociation")
    ]
    assert ref(association["ResourceArn"]) == "LoadBalancer"
    assert association["WebACLArn"] == {"Fn::GetAtt": [acl_name, "Arn"]}
    (logging,) = [
        props(template, n) for n in resources(template, "AWS::WAFv2::LoggingConfiguration")
    ]
    assert logging["ResourceArn"] == {"Fn::GetAtt": [acl_name, "Arn"]}


def test_waf_admits_only_our_cloudfront_and_our_own_nat(template: Node) -> None:
    acl = props(template, "WebAcl")
    (first,) = [r for r in acl["Rules"] if r["Priority"] == 0]
    assert first["Action"] == {"Block": {}}
    either = first["Statement"]["NotStatement"]["Statement"]["OrStatement"]["Statements"]
    header = either[0]["ByteMatchStatement"]
    origin = props(template, "Distribution")["DistributionConfig"]["Origins"][0]
    (custom,) = origin["OriginCustomHeaders"]
    assert header["FieldToMatch"]["SingleHeader"]["Name"] == custom["HeaderName"].lower()
    assert sub_text(header["SearchString"]) == sub_text(custom["HeaderValue"])
    assert "{{resolve:secretsmanager:" in sub_text(custom["HeaderValue"])
    nat = props(template, either[1]["IPSetReferenceStatement"]["Arn"]["Fn::GetAtt"][0])
    addresses = {sub_text(a) for a in nat["Addresses"]}
    assert addresses == {f"${{{n}.PublicIp}}/32" for n in resources(template, "AWS::EC2::EIP")}


def test_cloudfront_caches_only_the_static_assets(template: Node) -> None:
    config = props(template, "Distribution")["DistributionConfig"]
    assert config["Aliases"] == [{"Ref": "DomainName"}]
    certificate = template["Parameters"][ref(config["ViewerCertificate"]["AcmCertificateArn"])]
    assert certificate["AllowedPattern"].startswith("^arn:aws:acm:us-east-1:")
    default = config["DefaultCacheBehavior"]
    assert default["CachePolicyId"] == CACHING_DISABLED
    assert default["OriginRequestPolicyId"] == ALL_VIEWER  # Upgrade, cookies, everything
    assert {"GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"} <= set(default["AllowedMethods"])
    (static,) = config["CacheBehaviors"]
    assert static["PathPattern"] == "/web/*"
    policy = props(template, ref(static["CachePolicyId"]))["CachePolicyConfig"]
    assert policy["MaxTTL"] > 0
    (origin,) = config["Origins"]
    assert origin["CustomOriginConfig"]["OriginProtocolPolicy"] == "https-only"
    records: dict[tuple[str, str], str] = {
        (sub_text(p["Name"]), p["Type"]): sub_text(p["AliasTarget"]["DNSName"])
        for p in (props(template, n) for n in resources(template, "AWS::Route53::RecordSet"))
    }
    assert records[sub_text(origin["DomainName"]), "A"] == "${LoadBalancer.DNSName}"
    assert records["${DomainName}", "A"] == "${Distribution.DomainName}"
    assert records["${DomainName}", "AAAA"] == "${Distribution.DomainName}"


# --- processes ------------------------------------------------------------------------


def component_of(template: Node, task: str) -> str:
    command = container(template, task)["Command"]
    component: str = command[2] if command[:2] == ["serve", "--component"] else command[0]
    return component  # the scheduled mailer run is "mailer", the migration "migrate"


@pytest.mark.parametrize("process", sorted(documented_processes()))
def test_every_documented_process_has_a_task_with_its_command(template: Node, process: str) -> None:
    command, variables, replicas = documented_processes()[process]
    tasks = aidpost_tasks(template)
    assert process in tasks, f"no task definition logs as {process!r}"
    assert container(template, tasks[process])["Command"] == command
    assert variables.items() <= env(template, tasks[process]).items()
    if command[0] == "serve":
        assert process in services(template), f"{process} is no ECS service"
        count = resolve(template, props(template, services(template)[process])["DesiredCount"])
        assert int(template["Parameters"][ref(count)]["Default"]) >= replicas, process


def test_the_first_deployment_runs_no_task_so_the_databases_can_be_made_first(
    template: Node,
) -> None:
    (schedule,) = resources(template, "AWS::Scheduler::Schedule")
    state = props(template, schedule)["State"]
    assert resolve(template, state) == "ENABLED"
    assert resolve(template, state, StartServices="false") == "DISABLED"
    for service in resources(template, "AWS::ECS::Service"):
        count = props(template, service)["DesiredCount"]
        assert resolve(template, count, StartServices="false") == 0, service
        assert template["Parameters"][ref(resolve(template, count))]["Type"] == "Number"


def test_a_release_can_migrate_with_its_image_before_the_services_move(template: Node) -> None:
    image = container(template, aidpost_tasks(template)["migrate"])["Image"]
    assert resolve(template, image) == {"Ref": "ImageUri"}
    assert resolve(template, image, MigrationImageUri="next") == {"Ref": "MigrationImageUri"}
    for task in aidpost_tasks(template).values():
        if task != aidpost_tasks(template)["migrate"]:
            assert container(template, task)["Image"] == {"Ref": "ImageUri"}, task


def test_the_mailer_sends_on_a_schedule_and_not_in_its_api(template: Node) -> None:
    (schedule,) = [props(template, n) for n in resources(template, "AWS::Scheduler::Schedule")]
    assert schedule["ScheduleExpression"] == "rate(1 minute)"
    target = schedule["Target"]
    assert target["Arn"] == {"Fn::GetAtt": ["Cluster", "Arn"]}
    task = ref(target["EcsParameters"]["TaskDefinitionArn"])
    assert container(template, task)["Command"] == ["mailer", "run", "--once"]
    assert env(template, aidpost_tasks(template)["mailer"])["AIDPOST_MAILER_WORKER"] == "false"
    # The scheduled task reaches SMTP as the mailer service does.
    mailer = props(template, services(template)["mailer"])
    network = mailer["NetworkConfiguration"]["AwsvpcConfiguration"]["SecurityGroups"]
    assert (
        target["EcsParameters"]["NetworkConfiguration"]["AwsvpcConfiguration"]["SecurityGroups"]
        == network
    )


def test_every_task_logs_to_the_one_log_group_under_its_own_prefix(template: Node) -> None:
    tasks = resources(template, "AWS::ECS::TaskDefinition")
    groups = set()
    prefixes = []
    for task in tasks:
        logs = container(template, task)["LogConfiguration"]
        assert logs["LogDriver"] == "awslogs"
        groups.add(ref(logs["Options"]["awslogs-group"]))
        prefixes.append(logs["Options"]["awslogs-stream-prefix"])
    (group,) = groups
    assert template["Resources"][group]["Type"] == "AWS::Logs::LogGroup"
    assert len(prefixes) == len(set(prefixes)) == len(tasks)


def test_every_aidpost_container_runs_unprivileged_with_liveness_on_version(
    template: Node,
) -> None:
    for task in aidpost_tasks(template).values():
        definition = container(template, task)
        assert definition["User"] == "10001", task
        assert definition["ReadonlyRootFilesystem"] is True, task
        assert definition["LinuxParameters"]["Capabilities"]["Drop"] == ["ALL"], task
        if definition["Command"][0] == "serve":
            assert definition["PortMappings"] == [{"ContainerPort": 8000, "Protocol": "tcp"}]
            assert "http://127.0.0.1:8000/version" in " ".join(definition["HealthCheck"]["Command"])
            assert env(template, task)["AIDPOST_PORT"] == "8000", task


def test_every_service_rolls_without_downtime_and_rolls_back(template: Node) -> None:
    for name in resources(template, "AWS::ECS::Service"):
        deployment = props(template, name)["DeploymentConfiguration"]
        assert deployment["MinimumHealthyPercent"] == 100, name
        assert deployment["MaximumPercent"] == 200, name
        assert deployment["DeploymentCircuitBreaker"] == {"Enable": True, "Rollback": True}, name
        network = props(template, name)["NetworkConfiguration"]["AwsvpcConfiguration"]
        assert network["AssignPublicIp"] == "DISABLED"
        assert sorted(ref(s) for s in network["Subnets"]) == sorted(
            subnet_tiers(template)["private"]
        )


def test_every_service_scales_on_cpu_and_the_web_and_gateways_on_requests(
    template: Node,
) -> None:
    targets = {
        parts(r"service/\$\{Cluster\}/\$\{(\w+)\.Name\}", sub_text(p["ResourceId"]))[0]: (n, p)
        for n, p in (
            (n, props(template, n))
            for n in resources(template, "AWS::ApplicationAutoScaling::ScalableTarget")
        )
    }
    policies = [
        props(template, n)
        for n in resources(template, "AWS::ApplicationAutoScaling::ScalingPolicy")
    ]
    by_request = {"web", "messenger-gateway"}
    for process, service in services(template).items():
        target, scaling = targets[service]
        assert scaling["MinCapacity"] == props(template, service)["DesiredCount"], process
        metrics = {
            p["TargetTrackingScalingPolicyConfiguration"]["PredefinedMetricSpecification"][
                "PredefinedMetricType"
            ]: p
            for p in policies
            if ref(p["ScalingTargetId"]) == target
        }
        assert "ECSServiceAverageCPUUtilization" in metrics, process
        if process in by_request:
            label = metrics["ALBRequestCountPerTarget"]["TargetTrackingScalingPolicyConfiguration"][
                "PredefinedMetricSpecification"
            ]["ResourceLabel"]
            (lb,) = props(template, service)["LoadBalancers"]
            assert f"${{{ref(lb['TargetGroupArn'])}.TargetGroupFullName}}" in sub_text(label)
    assert by_request <= services(template).keys()


def test_components_reach_each_other_by_their_discovery_names(template: Node) -> None:
    namespace = sub_text(props(template, "Namespace")["Name"])
    registered = {}
    for process, service in services(template).items():
        for registry in props(template, service).get("ServiceRegistries", []):
            discovery = props(template, registry["RegistryArn"]["Fn::GetAtt"][0])
            assert discovery["Name"] == process  # the name docs/deployment.md uses
            registered[process] = service
    internal = re.compile(r"http://([\w-]+)\.(.+):8000")
    used = set()
    for task in aidpost_tasks(template).values():
        for name, value in env(template, task).items():
            match = internal.fullmatch(sub_text(value))
            if match:
                assert match.group(2) == namespace, (task, name)
                assert match.group(1) in registered, (task, name)
                used.add(match.group(1))
    assert used == {"auth", "participant", "messenger-gateway"}


# --- secrets --------------------------------------------------------------------------


def expected_secrets(template: Node, task: str) -> set[str]:
    component = component_of(template, task)
    if component == "migrate":
        return DATABASE_URLS
    return set(SECRETS[component]) | set(SHARED_SECRETS)


def test_no_task_has_a_secret_in_its_plain_environment(template: Node) -> None:
    for task in resources(template, "AWS::ECS::TaskDefinition"):
        for name, value in env(template, task).items():
            text = sub_text(value)
            assert name not in SECRET_NAMES, (task, name)
            assert not re.search(r"PASSWORD|SECRET|TOKEN|_KEY$", name), (task, name)
            assert "{{resolve:" not in text, (task, name)
            assert not re.search(r"://[^/@]*:[^/@]*@", text), (task, name)  # user:password@


def test_each_process_gets_exactly_its_own_secrets(template: Node) -> None:
    """As ``aidpost.core.settings.SECRETS`` lists them, each from a key of the same name in
    its service's secret, which only its execution role may read."""
    readable: dict[str, set[str]] = {}
    for task in aidpost_tasks(template).values():
        definition = container(template, task)
        names = {s["Name"] for s in definition["Secrets"]}
        assert names == expected_secrets(template, task), task
        role = props(template, task)["ExecutionRoleArn"]["Fn::GetAtt"][0]
        for secret in definition["Secrets"]:
            source, key = parts(r"\$\{(\w+)\}:(\w+)::", sub_text(secret["ValueFrom"]))
            assert key == secret["Name"], task
            assert key in secret_json(template, source), (task, source, key)
            readable.setdefault(role, set()).add(source)
    for role, sources in readable.items():
        (policy,) = props(template, role)["Policies"]
        (statement,) = policy["PolicyDocument"]["Statement"]
        assert statement["Action"] == "secretsmanager:GetSecretValue"
        assert {ref(r) for r in statement["Resource"]} == sources, role


def test_the_bus_and_rate_limits_use_redis_over_tls_with_its_token(template: Node) -> None:
    shared = secret_json(template, "SharedSecret")
    assert shared["AIDPOST_BUS_URL"] == shared["AIDPOST_RATE_LIMIT_STORAGE"] == "${Redis}"
    redis = sub_text(sub_variables(props(template, "SharedSecret")["SecretString"])["Redis"])
    token = sub_text(props(template, "RedisGroup")["AuthToken"])
    assert redis.startswith(f"rediss://:{token}@${{RedisGroup.PrimaryEndPoint.Address}}:")


def test_the_outputs_give_what_run_task_needs(template: Node) -> None:
    outputs = template["Outputs"]
    migrate = ref(outputs["MigrationTaskDefinitionArn"]["Value"])
    assert container(template, migrate)["Command"] == ["migrate"]
    assert ref(outputs["ClusterName"]["Value"]) == "Cluster"
    assert ref(outputs["TaskSecurityGroupId"]["Value"]) == "ServiceSecurityGroup"
    subnets = outputs["TaskSubnetIds"]["Value"]["Fn::Join"][1]
    assert sorted(ref(s) for s in subnets) == sorted(subnet_tiers(template)["private"])
    assert sub_text(outputs["Url"]["Value"]) == "https://${DomainName}"
