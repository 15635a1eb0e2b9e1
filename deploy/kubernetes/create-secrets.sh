#!/usr/bin/env bash
# Create or update the Secrets the manifests read: aidpost-<name> from <env dir>/<name>.env,
# one per env file that `aidpost secrets generate` writes. Safe to run again: each Secret is
# rendered locally and applied, so an existing one is updated in place.
#
#   deploy/kubernetes/create-secrets.sh NAMESPACE [ENV_DIR]    (ENV_DIR: envs/prod/servers)
#
# Running pods keep the values they started with; `kubectl -n NAMESPACE rollout restart
# deployment` makes them read the new ones.
set -euo pipefail

usage="usage: $0 NAMESPACE [ENV_DIR]"
namespace=${1:?$usage}
env_dir=${2:-envs/prod/servers}
names=(auth organizer participant messenger mailer status web)

# Every file first, so that a missing one changes nothing.
for name in "${names[@]}"; do
    if [[ ! -f "$env_dir/$name.env" ]]; then
        echo "$0: $env_dir/$name.env is missing (aidpost secrets generate writes it)" >&2
        exit 1
    fi
done

for name in "${names[@]}"; do
    kubectl create secret generic "aidpost-$name" \
        --namespace "$namespace" \
        --from-env-file "$env_dir/$name.env" \
        --dry-run=client --output yaml \
        | kubectl apply --namespace "$namespace" --filename -
done
