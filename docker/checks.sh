# Helpers of the container tests (docker/test.sh, docker/compose-test.sh),
# sourced by them: each check prints one ok/FAIL line and failures are
# counted in $failures, so a run reports every broken check, not the first.
failures=0
ok() { echo "ok   $*"; }
fail() { echo "FAIL $*" >&2; failures=$((failures + 1)); }
check() { # check <description> <command...>
  local what=$1
  shift
  if "$@"; then ok "$what"; else fail "$what"; fi
}
