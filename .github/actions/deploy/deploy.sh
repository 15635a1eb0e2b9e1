#!/usr/bin/env bash
# The AWS half of a deployment, one subcommand per step of .github/actions/deploy:
#
#   deploy.sh previous-image STACK           print the ImageUri the stack runs now
#   deploy.sh migrate STACK IMAGE            run the migration task with IMAGE, wait, check it
#   deploy.sh deploy STACK IMAGE [TEMPLATE]  roll the stack onto IMAGE (and back, on rollback)
#
# It needs the aws CLI with credentials and jq (both on GitHub's Ubuntu runners), and reads
# from the stack's outputs what RunTask needs; their names are the contract with
# deploy/aws/aidpost.yaml (docs/ci-cd.md).
set -euo pipefail

OUTPUT_CLUSTER=ClusterName
OUTPUT_MIGRATION_TASK=MigrationTaskDefinitionArn
OUTPUT_SUBNETS=TaskSubnetIds          # comma-separated
OUTPUT_SECURITY_GROUP=TaskSecurityGroupId
MIGRATION_TIMEOUT_SECONDS=${AIDPOST_MIGRATION_TIMEOUT_SECONDS:-1800}

die() {
  echo "::error::$*" >&2
  exit 1
}

stack_json() {
  aws cloudformation describe-stacks --stack-name "$1" --output json
}

# stack_value STACK_JSON Parameters|Outputs KEY: the value, or nothing
stack_value() {
  local kind=$2 key=$3 field
  field=$([ "$kind" = Parameters ] && echo Parameter || echo Output)
  jq -r --arg key "$key" --arg kind "$kind" --arg field "$field" \
    '.Stacks[0][$kind] // [] | map(select(.[$field + "Key"] == $key)) | .[0][$field + "Value"] // empty' \
    <<<"$1"
}

previous_image() {
  local stack=$1 json image
  json=$(stack_json "$stack") || die "cannot read stack $stack (create it first: docs/ci-cd.md)"
  image=$(stack_value "$json" Parameters ImageUri)
  [ -n "$image" ] || die "stack $stack has no ImageUri parameter"
  echo "$image"
}

migrate() {
  local stack=$1 image=$2 json cluster task_definition subnets security_group
  json=$(stack_json "$stack")
  cluster=$(stack_value "$json" Outputs "$OUTPUT_CLUSTER")
  task_definition=$(stack_value "$json" Outputs "$OUTPUT_MIGRATION_TASK")
  subnets=$(stack_value "$json" Outputs "$OUTPUT_SUBNETS")
  security_group=$(stack_value "$json" Outputs "$OUTPUT_SECURITY_GROUP")
  for output in cluster task_definition subnets security_group; do
    [ -n "${!output}" ] || die "stack $stack lacks the output for $output"
  done

  # The stack's migration task still names the running image: register a revision of it
  # with the new one (every container; one image serves every component).
  local work revision
  work=$(mktemp -d)
  trap 'rm -rf "$work"' RETURN
  aws ecs describe-task-definition --task-definition "$task_definition" --output json |
    jq --arg image "$image" '.taskDefinition
      | .containerDefinitions |= map(.image = $image)
      | del(.taskDefinitionArn, .revision, .status, .requiresAttributes, .compatibilities,
            .registeredAt, .registeredBy, .deregisteredAt)' >"$work/task-definition.json"
  revision=$(aws ecs register-task-definition --cli-input-json "file://$work/task-definition.json" \
    --output json | jq -r '.taskDefinition.taskDefinitionArn')
  echo "migration task definition $revision"

  local network started task
  network="awsvpcConfiguration={subnets=[$subnets],securityGroups=[$security_group],assignPublicIp=DISABLED}"
  started=$(aws ecs run-task --cluster "$cluster" --task-definition "$revision" \
    --launch-type FARGATE --count 1 --network-configuration "$network" \
    --started-by "github-${GITHUB_RUN_ID:-local}" --output json)
  task=$(jq -r '.tasks[0].taskArn // empty' <<<"$started")
  [ -n "$task" ] || die "the migration task did not start: $(jq -c '.failures' <<<"$started")"
  echo "migration task $task"

  # `aws ecs wait` gives up after 10 minutes; migrations may take longer.
  local deadline=$((SECONDS + MIGRATION_TIMEOUT_SECONDS))
  until aws ecs wait tasks-stopped --cluster "$cluster" --tasks "$task"; do
    [ "$SECONDS" -lt "$deadline" ] || die "the migration task still runs after ${MIGRATION_TIMEOUT_SECONDS}s"
  done

  local stopped
  stopped=$(aws ecs describe-tasks --cluster "$cluster" --tasks "$task" --output json)
  jq -r '.tasks[0] | "stopped: \(.stoppedReason // "?")",
    (.containers[] | "container \(.name): exit code \(.exitCode // "none") \(.reason // "")")' \
    <<<"$stopped"
  jq -e '.tasks[0].containers | length > 0 and all(.exitCode == 0)' <<<"$stopped" >/dev/null ||
    die "the migration failed; nothing was deployed (its logs: the task's log stream)"
}

deploy() {
  local stack=$1 image=$2 template=${3:-deploy/aws/aidpost.yaml}
  [ -f "$template" ] || die "no template at $template"
  local args=(--stack-name "$stack" --template-file "$template"
    --parameter-overrides "ImageUri=$image"
    --capabilities CAPABILITY_IAM CAPABILITY_NAMED_IAM
    --no-fail-on-empty-changeset)
  # templates over 51,200 bytes must go through a bucket (aidpost's is about 100 KB)
  if [ -n "${AIDPOST_CFN_BUCKET:-}" ]; then
    args+=(--s3-bucket "$AIDPOST_CFN_BUCKET")
  elif [ "$(wc -c <"$template")" -gt 51200 ]; then
    die "$template is over CloudFormation's 51,200-byte inline limit: set AIDPOST_CFN_BUCKET"
  fi
  # Waits until the services are stable; a rollout the circuit breaker stops fails here,
  # after CloudFormation has put the stack back as it was.
  aws cloudformation deploy "${args[@]}"
  echo "$stack runs $image"
}

case "${1:-}" in
  previous-image) [ $# -eq 2 ] || die "usage: $0 previous-image STACK"; previous_image "$2" ;;
  migrate) [ $# -eq 3 ] || die "usage: $0 migrate STACK IMAGE"; migrate "$2" "$3" ;;
  deploy) [ $# -ge 3 ] || die "usage: $0 deploy STACK IMAGE [TEMPLATE]"; deploy "$2" "$3" "${4:-}" ;;
  *) die "usage: $0 previous-image|migrate|deploy ..." ;;
esac
