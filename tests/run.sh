#!/bin/sh
# Runs every test: the C unit tests (TAP through meson) and the end-to-end
# tests in tests/e2e/ (TAP programs against a real bureaud and real guests).
# Ends with one line: "N passed, N failed".
set -u
BUILD=build
IMAGES=var/images
while [ $# -gt 0 ]; do
	case "$1" in
	--build) BUILD=$2; shift 2 ;;
	--images) IMAGES=$2; shift 2 ;;
	*) ONLY="${ONLY:-} $1"; shift ;;
	esac
done
cd "$(dirname "$0")/.."
BUREAU_BUILD=$(cd "$BUILD" && pwd)
BUREAU_IMAGES=$(cd "$IMAGES" && pwd)
export BUREAU_BUILD BUREAU_IMAGES
LOGDIR=$BUREAU_BUILD/test-logs
# A run of everything starts with a clean log folder; a run of a few tests
# replaces only their logs (another run may be using the folder).
[ -n "${ONLY:-}" ] || rm -rf "$LOGDIR"
mkdir -p "$LOGDIR"

# The interpreter scripts/deps.sh installs packages for (python3-yaml).
PYTHON=${PYTHON:-$(command -v /usr/bin/python3 || command -v python3)}

passed=0
failed=0
failures=""

# count FILE: adds a TAP file's results to the totals
count() {
	p=$(grep -cE '^ok [0-9]+' "$1")
	f=$(grep -cE '^not ok [0-9]+' "$1")
	passed=$((passed + p))
	failed=$((failed + f))
	[ "$f" -eq 0 ] || failures="$failures $2"
}

run_tap() { # name, command...
	name=$1; shift
	start=$(date +%s)
	"$@" >"$LOGDIR/$name.tap" 2>"$LOGDIR/$name.err"
	rc=$?
	end=$(date +%s)
	count "$LOGDIR/$name.tap" "$name"
	if [ $rc -ne 0 ] && ! grep -qE '^not ok' "$LOGDIR/$name.tap"; then
		# a crash or a missing plan counts as one failure
		failed=$((failed + 1))
		failures="$failures $name(exit $rc)"
	fi
	echo "$name: $(grep -cE '^ok' "$LOGDIR/$name.tap") ok, $(grep -cE '^not ok' "$LOGDIR/$name.tap") not ok, exit $rc, $((end - start)) s"
	grep -E '^not ok|^#' "$LOGDIR/$name.tap" | head -40
	[ $rc -eq 0 ] || tail -80 "$LOGDIR/$name.err"
}

for t in $(ls "$BUREAU_BUILD"/tests/unit/test_* 2>/dev/null); do
	[ -x "$t" ] || continue
	name=unit-$(basename "$t" | sed 's/^test_//')
	case " ${ONLY:-$name} " in *" $name "*|*" unit "*) ;; *) continue ;; esac
	run_tap "$name" "$t"
done

for t in tests/e2e/test_*.py; do
	name=e2e-$(basename "$t" .py | sed 's/^test_//')
	case " ${ONLY:-$name} " in *" $name "*|*" e2e "*) ;; *) continue ;; esac
	run_tap "$name" "$PYTHON" "$t"
done

[ -z "$failures" ] || echo "failed:$failures"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
