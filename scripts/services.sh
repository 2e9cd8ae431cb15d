#!/usr/bin/env bash
# Developer helper: run the test emulators in the background.
#   scripts/services.sh start   install if needed, start, print the exports
#   scripts/services.sh stop    stop them
#   scripts/services.sh status  show whether they run, and the exports
# State (pid files, logs, dev.env) lives in target/test-services/; these use
# the names dev-dynamodb / dev-moto so they never clash with scripts/test.sh.
set -euo pipefail

# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$HERALD_ROOT"

ENV_FILE="$HERALD_SERVICES_DIR/dev.env"

running() {
    pid_alive "$HERALD_SERVICES_DIR/dev-dynamodb.pid" DynamoDBLocal &&
        pid_alive "$HERALD_SERVICES_DIR/dev-moto.pid" moto_server
}

stop_all() {
    stop_service dev-dynamodb DynamoDBLocal
    stop_service dev-moto moto_server
    rm -f "$ENV_FILE"
}

start_all() {
    if running && [[ -f "$ENV_FILE" ]]; then
        log "already running; paste these:"
        cat "$ENV_FILE"
        return 0
    fi
    stop_all # clear half-started leftovers
    install_service_deps
    # If anything below fails, do not leave half the services running.
    trap 'stop_all' EXIT
    start_dynamodb dev-dynamodb
    start_moto dev-moto
    trap - EXIT
    export_test_env
    {
        echo "export HERALD_TEST_DYNAMODB_URL=$HERALD_TEST_DYNAMODB_URL"
        echo "export HERALD_TEST_MOTO_URL=$HERALD_TEST_MOTO_URL"
        echo "export AWS_ACCESS_KEY_ID=$AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY=$AWS_SECRET_ACCESS_KEY"
        echo "export AWS_REGION=$AWS_REGION AWS_EC2_METADATA_DISABLED=$AWS_EC2_METADATA_DISABLED"
    } >"$ENV_FILE"
    log "started (logs in ${HERALD_SERVICES_DIR#"$HERALD_ROOT"/}/); paste these, or: source ${ENV_FILE#"$HERALD_ROOT"/}"
    cat "$ENV_FILE"
}

case "${1:-}" in
start) start_all ;;
stop)
    stop_all
    log "stopped"
    ;;
status)
    if running; then
        log "running"
        cat "$ENV_FILE" 2>/dev/null || true
    else
        log "not running"
        exit 1
    fi
    ;;
*)
    echo "usage: $0 start|stop|status" >&2
    exit 2
    ;;
esac
