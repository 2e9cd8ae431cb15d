#!/usr/bin/env bash
# Offline checks of the AWS SAM template infra/template.yaml (run by scripts/test.sh, or alone
# as `bash scripts/test-extra.d/infra.sh`):
#   1. cfn-lint on the SAM template, then its SAM resources against the SAM schemas strictly
#      (cfn-lint skips a function event's properties when one is an intrinsic such as
#      `ApiId: !Ref HttpApi`, so a misspelt key inside them would pass it);
#   2. the template translated by aws-sam-translator (as the AWS::Serverless-2016-10-31
#      transform would, local CodeUri replaced by an s3:// placeholder), and cfn-lint on that:
#      it catches what cfn-lint misses inside SAM resources;
#   3. every crate functions/<crate> has exactly one AWS::Serverless::Function, <Crate>Function,
#      building Binary <crate> (infra/check.py).
# Installs cfn-lint and aws-sam-translator into .tools/venv when missing; the checks themselves
# use no network.
set -euo pipefail

# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
cd "$HERALD_ROOT"

TEMPLATE=infra/template.yaml
SAM_TRANSLATOR_SPEC="aws-sam-translator>=1.110,<2"
export AWS_DEFAULT_REGION=us-east-1 AWS_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true

# cfn-lint comes with the venv (HERALD_PY_SPECS); recent cfn-lint releases no longer depend on
# aws-sam-translator, add it when it is missing.
ensure_venv
PY="$HERALD_VENV/bin/python"
CFN_LINT="$HERALD_VENV/bin/cfn-lint"
[[ -x "$CFN_LINT" ]] || die "cfn-lint missing from ${HERALD_VENV#"$HERALD_ROOT"/} (delete it to reinstall)"
if ! "$PY" -c 'import samtranslator' 2>/dev/null; then
    log "pip install $SAM_TRANSLATOR_SPEC into ${HERALD_VENV#"$HERALD_ROOT"/}"
    "$HERALD_VENV/bin/pip" install --quiet "$SAM_TRANSLATOR_SPEC" >&2
    "$PY" -c 'import samtranslator' || die "aws-sam-translator is not importable after pip install"
fi

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

# cfn-lint exits non-zero on errors and on warnings: both fail the check.
lint() {
    local what="$1" file="$2"
    if ! "$CFN_LINT" --regions us-east-1 --format parseable -- "$file"; then
        die "cfn-lint found problems in $what ($file; see above)"
    fi
    log "cfn-lint: $what clean"
}

log "cfn-lint $("$CFN_LINT" --version 2>&1 | awk '{print $2}'), aws-sam-translator $("$PY" -c 'import samtranslator; print(samtranslator.__version__)')"

# 1. The SAM template as written.
lint "$TEMPLATE" "$TEMPLATE"
"$PY" infra/check.py sam-schema "$TEMPLATE" ||
    die "SAM resources in $TEMPLATE do not match their schemas (see above)"

# 2. Its translation to plain CloudFormation.
"$PY" infra/check.py translate "$TEMPLATE" "$WORK/template.json" ||
    die "aws-sam-translator could not transform $TEMPLATE (see above)"
lint "the SAM translation of $TEMPLATE" "$WORK/template.json"

# 3. One function per crate under functions/.
"$PY" infra/check.py functions "$TEMPLATE" "$HERALD_ROOT" ||
    die "functions/ and $TEMPLATE disagree (see above)"

log "infra checks passed"
