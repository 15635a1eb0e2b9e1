"""The GitHub Actions workflows: valid by GitHub's schema, and saying what docs/ci-cd.md says.

GitHub cannot run here, so this reads the files: the schema, then the promises (CI runs
.ci/run beside PostgreSQL and Redis; one image, built once, deployed by digest to staging,
then to production; rollback only on failure, to the image the stack ran before; least
privilege; no secret in a shell line). The shell the workflows run is parsed with
``bash -n``, the image-naming step runs for real, and deploy.sh runs against a fake ``aws``.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = ROOT / ".github" / "workflows"
CI = WORKFLOWS / "ci.yml"
RELEASE = WORKFLOWS / "release.yml"
ACTION = ROOT / ".github" / "actions" / "deploy" / "action.yml"
DEPLOY_SH = ACTION.parent / "deploy.sh"
AWS_TEMPLATE = ROOT / "deploy" / "aws" / "aidpost.yaml"
CHECK_JSONSCHEMA = Path(sys.executable).parent / "check-jsonschema"
IMAGE_OUTPUT = "${{ needs.build.outputs.image }}"


def load(path: Path) -> dict[str, Any]:
    document: dict[Any, Any] = yaml.safe_load(path.read_text())
    if True in document:  # YAML 1.1 reads the key `on` as true
        document["on"] = document.pop(True)
    return document


def all_workflows() -> list[Path]:
    return sorted(WORKFLOWS.glob("*.yml")) + sorted(WORKFLOWS.glob("*.yaml"))


def jobs(path: Path) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = load(path)["jobs"]
    return found


def action_steps() -> list[dict[str, Any]]:
    steps: list[dict[str, Any]] = load(ACTION)["runs"]["steps"]
    return steps


def all_steps() -> list[tuple[str, dict[str, Any]]]:
    """Every step of every workflow job and of the composite action, with where it is."""
    found = [
        (f"{path.name}:{name}", step)
        for path in all_workflows()
        for name, job in jobs(path).items()
        for step in job.get("steps", [])
    ]
    return found + [(ACTION.name, step) for step in action_steps()]


def step(steps: list[dict[str, Any]], step_id: str) -> dict[str, Any]:
    (found,) = (s for s in steps if s.get("id") == step_id)
    return found


def schema_check(schema: str, *files: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(CHECK_JSONSCHEMA), "--builtin-schema", schema, *map(str, files)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


# -- GitHub's schemas and bash -------------------------------------------------------------


def test_the_workflows_and_the_action_are_valid_by_githubs_schemas(tmp_path: Path) -> None:
    assert [p.name for p in all_workflows()] == ["ci.yml", "release.yml"]
    done = schema_check("vendor.github-workflows", *all_workflows())
    assert done.returncode == 0, done.stdout + done.stderr
    done = schema_check("vendor.github-actions", ACTION)
    assert done.returncode == 0, done.stdout + done.stderr
    # and the check refuses what GitHub would refuse
    broken = tmp_path / "broken.yml"
    broken.write_text(CI.read_text().replace("timeout-minutes: ", "timeout-minute: "))
    assert schema_check("vendor.github-workflows", broken).returncode != 0


def test_every_shell_line_parses(tmp_path: Path) -> None:
    scripts = [DEPLOY_SH]
    for n, (where, s) in enumerate(all_steps()):
        if "run" in s:
            # expressions become words: GitHub substitutes them before bash sees the text
            script = tmp_path / f"{n}.sh"
            script.write_text(re.sub(r"\$\{\{.*?\}\}", "EXPR", s["run"]))
            scripts.append(script)
            assert s.get("shell", "bash") == "bash", where
    for script in scripts:
        done = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
        assert done.returncode == 0, (script, done.stderr)
    assert os.access(DEPLOY_SH, os.X_OK)


# -- CI --------------------------------------------------------------------------------------


def test_ci_runs_dot_ci_run_beside_postgresql_and_redis() -> None:
    ci = load(CI)
    assert {"push", "pull_request", "workflow_call"} <= set(ci["on"])
    assert ci["concurrency"]["cancel-in-progress"] is True
    (job,) = ci["jobs"].values()
    assert job["runs-on"] == "ubuntu-latest"
    assert 0 < job["timeout-minutes"] <= 90
    assert job["env"]["CI"] == "true"
    assert [s["run"] for s in job["steps"] if "run" in s][-1] == "bash .ci/run"
    postgres, redis = job["services"]["postgres"], job["services"]["redis"]
    assert postgres["image"] == "postgres:15"
    assert postgres["env"]["POSTGRES_HOST_AUTH_METHOD"] == "trust"
    assert postgres["ports"] == ["127.0.0.1:5432:5432"]
    assert redis["image"] == "redis:7"
    assert redis["ports"] == ["127.0.0.1:6379:6379"]
    assert "--health-cmd" in postgres["options"] and "--health-cmd" in redis["options"]


def test_release_runs_ci_before_anything_else() -> None:
    release = load(RELEASE)
    assert release["on"]["push"] == {"branches": ["main"], "tags": ["v*"]}
    assert jobs(RELEASE)["ci"]["uses"] == "./.github/workflows/ci.yml"
    assert jobs(RELEASE)["build"]["needs"] == "ci"
    # ci.yml does not run a second time for the same push
    assert load(CI)["on"]["push"] == {"branches-ignore": ["main"]}


# -- least privilege, timeouts, pinned actions ---------------------------------------------


def test_every_job_has_a_timeout_and_its_own_permissions() -> None:
    for path in all_workflows():
        assert load(path)["permissions"] == {}, path.name
        for name, job in jobs(path).items():
            assert isinstance(job.get("permissions"), dict), (path.name, name)
            assert "write-all" not in str(job["permissions"])
            if "uses" in job:  # a called workflow: its own jobs carry the timeouts
                assert (ROOT / job["uses"]).is_file()
            else:
                assert 0 < job["timeout-minutes"] <= 90, (path.name, name)


def test_only_the_build_writes_packages_and_only_deploys_get_oidc_tokens() -> None:
    writers: dict[str, set[str]] = {}
    for path in all_workflows():
        for name, job in jobs(path).items():
            for scope, level in job["permissions"].items():
                if level == "write":
                    writers.setdefault(scope, set()).add(name)
    assert writers == {
        "packages": {"build"},
        "id-token": {"deploy-staging", "deploy-production"},
    }


def test_actions_are_pinned_to_a_major_version_at_least() -> None:
    for where, s in all_steps():
        if "uses" in s and not s["uses"].startswith("./"):
            assert re.fullmatch(r"[\w.-]+/[\w./-]+@(v\d+(\.\d+)*|[0-9a-f]{40})", s["uses"]), (
                where,
                s["uses"],
            )


# -- one image, built once, promoted by digest ---------------------------------------------


def test_the_image_is_built_once_and_deployed_by_digest() -> None:
    builds = [w for w, s in all_steps() if str(s.get("uses", "")).startswith("docker/build-push")]
    assert builds == ["release.yml:build"]
    assert not any("docker build" in s.get("run", "") for _, s in all_steps())
    build = jobs(RELEASE)["build"]
    assert build["outputs"]["image"] == (
        "${{ steps.names.outputs.repository }}@${{ steps.push.outputs.digest }}"
    )
    push = step(build["steps"], "push")
    assert push["with"]["push"] is True
    assert push["with"]["tags"] == "${{ steps.names.outputs.tags }}"
    args = push["with"]["build-args"].splitlines()
    assert args == [
        "AIDPOST_GIT_COMMIT=${{ github.sha }}",
        "AIDPOST_BUILD_TIME=${{ steps.names.outputs.build-time }}",
    ]


def name_the_image(tmp_path: Path, **env: str) -> tuple[int, dict[str, str], str]:
    """Run the build job's naming step as GitHub would, and read what it outputs."""
    run = step(jobs(RELEASE)["build"]["steps"], "names")["run"]
    output = tmp_path / "output"
    output.write_text("")
    done = subprocess.run(
        ["bash", "-eo", "pipefail", "-c", run],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
            "GITHUB_OUTPUT": str(output),
            "GITHUB_SHA": "0123456789abcdef0123456789abcdef01234567",
            "GITHUB_REPOSITORY_OWNER": "Aid-Org",
            "GITHUB_REF_TYPE": "branch",
            "GITHUB_REF_NAME": "main",
            **env,
        },
        check=False,
    )
    values: dict[str, str] = {}
    text = output.read_text()
    for key, value in re.findall(r"^([\w-]+)=(.*)$", text, re.M):
        values[key] = value
    if match := re.search(r"^tags<<(\S+)\n(.*?)\n\1$", text, re.M | re.S):
        values["tags"] = match.group(2)
    return done.returncode, values, done.stdout + done.stderr


def test_the_image_is_tagged_with_version_and_commit(tmp_path: Path) -> None:
    import tomllib

    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    repository = "ghcr.io/aid-org/aidpost"
    code, out, log = name_the_image(tmp_path)
    assert code == 0, log
    assert out["repository"] == repository and out["version"] == version
    assert out["tags"].splitlines() == [
        f"{repository}:{version}-0123456",
        f"{repository}:sha-0123456789abcdef0123456789abcdef01234567",
    ]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", out["build-time"])
    # a release tag adds the bare version, and must be pyproject's version
    code, out, log = name_the_image(tmp_path, GITHUB_REF_TYPE="tag", GITHUB_REF_NAME=f"v{version}")
    assert code == 0, log
    assert out["tags"].splitlines()[-1] == f"{repository}:{version}"
    code, _, log = name_the_image(tmp_path, GITHUB_REF_TYPE="tag", GITHUB_REF_NAME="v999.0.0")
    assert code == 1 and "does not match pyproject.toml's version" in log


def test_production_gets_staging_s_image_after_staging_s_smoke_test() -> None:
    release = jobs(RELEASE)
    staging, production = release["deploy-staging"], release["deploy-production"]
    assert staging["needs"] == "build"
    assert set(production["needs"]) == {"build", "deploy-staging"}
    assert staging["environment"]["name"] == "staging"
    assert production["environment"]["name"] == "production"
    deploys = []
    for job in (staging, production):
        (deploy,) = (s for s in job["steps"] if s.get("uses") == "./.github/actions/deploy")
        deploys.append(deploy["with"])
        assert job["concurrency"]["cancel-in-progress"] is False
    assert [d["stack"] for d in deploys] == ["aidpost-staging", "aidpost-production"]
    assert [d["image"] for d in deploys] == [IMAGE_OUTPUT, IMAGE_OUTPUT]
    assert [d["commit"] for d in deploys] == ["${{ github.sha }}"] * 2
    # the smoke test is the last step of the deploy that can fail the job before rollback
    ids = [s.get("id") for s in action_steps()]
    assert ids[-3:] == ["deploy", "smoke", None]


# -- the deployment: migrate, deploy, smoke, roll back ---------------------------------------


def test_the_deployment_migrates_then_deploys_then_smoke_tests() -> None:
    steps = action_steps()
    ids = [s.get("id") for s in steps]
    assert ids.index("previous") < ids.index("migrate") < ids.index("deploy") < ids.index("smoke")
    assert step(steps, "migrate")["run"].endswith('deploy.sh" migrate "$STACK" "$IMAGE"')
    assert step(steps, "deploy")["run"].endswith('deploy.sh" deploy "$STACK" "$IMAGE" "$TEMPLATE"')
    assert step(steps, "migrate")["env"]["IMAGE"] == "${{ inputs.image }}"
    assert step(steps, "deploy")["env"]["IMAGE"] == "${{ inputs.image }}"
    smoke = step(steps, "smoke")
    assert smoke["run"].startswith('python deploy/smoke.py "$URL" --expect-commit "$COMMIT"')
    assert smoke["env"]["COMMIT"] == "${{ inputs.commit }}"
    credentials = steps[0]
    assert credentials["uses"].startswith("aws-actions/configure-aws-credentials@")
    assert credentials["with"]["role-to-assume"] == "${{ inputs.role-to-assume }}"
    # every step but the rollback runs only while everything before it passed
    assert [s for s in steps if "if" in s] == [steps[-1]]


def test_rollback_runs_only_on_failure_and_puts_the_previous_image_back() -> None:
    rollback = action_steps()[-1]
    condition = " ".join(rollback["if"].split())
    assert condition.startswith("failure() && ")
    assert "steps.deploy.outcome == 'failure' || steps.smoke.outcome == 'failure'" in condition
    assert "steps.previous.outputs.image != ''" in condition
    assert rollback["env"]["PREVIOUS"] == "${{ steps.previous.outputs.image }}"
    assert 'deploy "$STACK" "$PREVIOUS"' in rollback["run"]
    assert rollback["run"].rstrip().endswith("exit 1")  # the run fails after rolling back
    previous = step(action_steps(), "previous")
    assert 'previous-image "$STACK"' in previous["run"]
    assert 'echo "image=$image" >> "$GITHUB_OUTPUT"' in previous["run"]


def test_no_secret_reaches_a_shell_line_or_the_log() -> None:
    texts = [p.read_text() for p in [*all_workflows(), ACTION, DEPLOY_SH]]
    assert not any("aws-access-key-id" in t or "AWS_SECRET_ACCESS_KEY" in t for t in texts)
    assert not any(re.search(r"set -\w*x", t) for t in texts)
    secret_like = re.compile(r"secrets\.|inputs\.(smoke-password|smoke-email|role-to-assume)")
    for where, s in all_steps():
        run = s.get("run", "")
        assert not secret_like.search(run), where  # through env only, never pasted into bash
        for name, value in (s.get("env") or {}).items():
            if secret_like.search(str(value)):
                assert not re.search(rf"(echo|printf)[^\n]*\${{?{name}\b", run), (where, name)
    # secrets are handed to the action by name, nowhere else
    for name, job in jobs(RELEASE).items():
        for s in job.get("steps", []):
            for key, value in (s.get("with") or {}).items():
                if "secrets." in str(value):
                    assert key in {"password", "role-to-assume", "smoke-email", "smoke-password"}
                    assert key != "password" or value == "${{ secrets.GITHUB_TOKEN }}", name


# -- deploy.sh against a fake aws ----------------------------------------------------------

FAKE_AWS = """\
#!{python}
import json, os, sys
state = os.environ["FAKE_AWS"]
args = sys.argv[1:]
call = {{"args": args}}
for arg in args:
    if arg.startswith("file://"):
        call["file"] = json.load(open(arg[len("file://"):]))
with open(os.path.join(state, "calls.jsonl"), "a") as log:
    log.write(json.dumps(call) + "\\n")
answers = json.load(open(os.path.join(state, "answers.json")))
answer = answers.get(" ".join(args[:2]), {{}})
if "stdout" in answer:
    print(json.dumps(answer["stdout"]))
sys.exit(answer.get("code", 0))
"""

STACK = {
    "Stacks": [
        {
            "Parameters": [
                {"ParameterKey": "Environment", "ParameterValue": "staging"},
                {"ParameterKey": "ImageUri", "ParameterValue": "ghcr.io/o/aidpost@sha256:old"},
            ],
            "Outputs": [
                {"OutputKey": "ClusterName", "OutputValue": "aidpost"},
                {"OutputKey": "MigrationTaskDefinitionArn", "OutputValue": "arn:task/migrate:3"},
                {"OutputKey": "TaskSubnetIds", "OutputValue": "subnet-a,subnet-b"},
                {"OutputKey": "TaskSecurityGroupId", "OutputValue": "sg-1"},
            ],
        }
    ]
}
TASK_DEFINITION = {
    "taskDefinition": {
        "taskDefinitionArn": "arn:task/migrate:3",
        "revision": 3,
        "status": "ACTIVE",
        "family": "migrate",
        "registeredAt": "2026-01-01T00:00:00Z",
        "compatibilities": ["FARGATE"],
        "containerDefinitions": [
            {"name": "migrate", "image": "ghcr.io/o/aidpost@sha256:old", "command": ["migrate"]}
        ],
        "cpu": "256",
        "memory": "512",
    }
}


def fake_aws(tmp_path: Path, exit_code: int = 0) -> dict[str, str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    aws = bin_dir / "aws"
    aws.write_text(FAKE_AWS.format(python=sys.executable))
    aws.chmod(0o755)
    stopped = {
        "tasks": [
            {
                "stoppedReason": "Essential container in task exited",
                "containers": [{"name": "migrate", "exitCode": exit_code}],
            }
        ]
    }
    answers = {
        "cloudformation describe-stacks": {"stdout": STACK},
        "ecs describe-task-definition": {"stdout": TASK_DEFINITION},
        "ecs register-task-definition": {
            "stdout": {"taskDefinition": {"taskDefinitionArn": "arn:task/migrate:4"}}
        },
        "ecs run-task": {"stdout": {"tasks": [{"taskArn": "arn:task/run/1"}], "failures": []}},
        "ecs describe-tasks": {"stdout": stopped},
    }
    (tmp_path / "answers.json").write_text(json.dumps(answers))
    return {"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "FAKE_AWS": str(tmp_path)}


def deploy_sh(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(DEPLOY_SH), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, **env, "GITHUB_RUN_ID": "77"},
        timeout=30,
        check=False,
    )


def calls(tmp_path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (tmp_path / "calls.jsonl").read_text().splitlines()]


def test_deploy_sh_reads_the_running_image(tmp_path: Path) -> None:
    done = deploy_sh(fake_aws(tmp_path), "previous-image", "aidpost-staging")
    assert done.returncode == 0, done.stderr
    assert done.stdout == "ghcr.io/o/aidpost@sha256:old\n"


def test_deploy_sh_migrates_with_the_new_image_and_checks_the_exit_code(tmp_path: Path) -> None:
    new = "ghcr.io/o/aidpost@sha256:new"
    done = deploy_sh(fake_aws(tmp_path), "migrate", "aidpost-staging", new)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "container migrate: exit code 0" in done.stdout
    made = {" ".join(c["args"][:2]): c for c in calls(tmp_path)}
    registered = made["ecs register-task-definition"]["file"]
    assert [c["image"] for c in registered["containerDefinitions"]] == [new]
    assert registered["family"] == "migrate"
    assert not {"taskDefinitionArn", "revision", "status", "registeredAt"} & set(registered)
    run = made["ecs run-task"]["args"]
    assert run[run.index("--task-definition") + 1] == "arn:task/migrate:4"
    assert run[run.index("--cluster") + 1] == "aidpost"
    assert "subnets=[subnet-a,subnet-b],securityGroups=[sg-1]" in " ".join(run)
    assert "ecs wait" in made


def test_deploy_sh_fails_when_the_migration_fails(tmp_path: Path) -> None:
    done = deploy_sh(fake_aws(tmp_path, 1), "migrate", "aidpost-staging", "img@sha256:new")
    assert done.returncode == 1
    assert "container migrate: exit code 1" in done.stdout
    assert "the migration failed; nothing was deployed" in done.stderr
    assert not any(c["args"][:2] == ["cloudformation", "deploy"] for c in calls(tmp_path))


def test_deploy_sh_deploys_the_image_as_the_stack_parameter(tmp_path: Path) -> None:
    template = tmp_path / "aidpost.yaml"
    template.write_text("Resources: {}\n")
    done = deploy_sh(fake_aws(tmp_path), "deploy", "aidpost-staging", "img@sha256:x", str(template))
    assert done.returncode == 0, done.stderr
    (call,) = calls(tmp_path)
    args = call["args"]
    assert args[:2] == ["cloudformation", "deploy"]
    assert args[args.index("--stack-name") + 1] == "aidpost-staging"
    assert args[args.index("--template-file") + 1] == str(template)
    assert args[args.index("--parameter-overrides") + 1] == "ImageUri=img@sha256:x"
    assert "--no-fail-on-empty-changeset" in args


def test_deploy_sh_sends_aidposts_template_through_the_bucket(tmp_path: Path) -> None:
    """The real template is over CloudFormation's inline limit: no bucket, no call."""
    template = str(AWS_TEMPLATE)
    assert AWS_TEMPLATE.stat().st_size > 51_200
    aws = fake_aws(tmp_path)
    refused = deploy_sh(aws, "deploy", "aidpost-staging", "img@sha256:x", template)
    assert refused.returncode == 1 and "AIDPOST_CFN_BUCKET" in refused.stderr
    assert not (tmp_path / "calls.jsonl").exists()
    env = {**aws, "AIDPOST_CFN_BUCKET": "aidpost-templates"}
    done = deploy_sh(env, "deploy", "aidpost-staging", "img@sha256:x", template)
    assert done.returncode == 0, done.stderr
    (call,) = calls(tmp_path)
    assert call["args"][call["args"].index("--s3-bucket") + 1] == "aidpost-templates"


@pytest.mark.parametrize("args", [(), ("migrate", "stack"), ("nonsense",)])
def test_deploy_sh_refuses_wrong_usage(tmp_path: Path, args: tuple[str, ...]) -> None:
    done = deploy_sh(fake_aws(tmp_path), *args)
    assert done.returncode == 1 and "usage:" in done.stderr


def test_docs_name_what_the_workflows_need() -> None:
    docs = (ROOT / "docs" / "ci-cd.md").read_text()
    needed = set(re.findall(r"(?:secrets|vars)\.([A-Z_]+)", RELEASE.read_text())) - {"GITHUB_TOKEN"}
    assert needed == {
        "AIDPOST_URL",
        "AIDPOST_CFN_BUCKET",
        "AWS_REGION",
        "AWS_DEPLOY_ROLE_ARN",
        "SMOKE_EMAIL",
        "SMOKE_PASSWORD",
    }
    for name in needed:
        assert f"`{name}`" in docs, name
    for output in (
        "ClusterName",
        "MigrationTaskDefinitionArn",
        "TaskSubnetIds",
        "TaskSecurityGroupId",
    ):
        assert output in DEPLOY_SH.read_text() and f"`{output}`" in docs, output
        assert f"\n  {output}:\n" in AWS_TEMPLATE.read_text(), f"the stack has no {output}"
    assert "\n  ImageUri:\n" in AWS_TEMPLATE.read_text()
    assert "required reviewers" in docs
