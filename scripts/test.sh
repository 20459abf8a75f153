#!/usr/bin/env bash
# The whole test suite, as CI runs it (.ci/run calls this file). It installs what the
# tests need when it is missing, so it runs on a fresh machine with Go.
set -euo pipefail
cd "$(dirname "$0")/.."

export PATH="$PATH:/usr/local/go/bin"
if ! command -v go >/dev/null; then
	echo "test.sh: Go is required (https://go.dev/dl/); go.mod names the version" >&2
	exit 1
fi
go version

echo "== gofmt"
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './.git/*'))
if [ -n "$unformatted" ]; then
	echo "not gofmt-ed:"; echo "$unformatted"; exit 1
fi

echo "== go vet"
go vet ./...

echo "== staticcheck"
go tool staticcheck ./...

echo "== go test (race detector)"
go test -race -count=1 -timeout 25m ./...

echo "== memory per live call (without the race detector, which inflates the heap)"
go test -count=1 -run 'TestMemoryPerLiveCall' -v ./internal/hub/ | grep -E 'heap per live call|^(ok|FAIL|---)'

echo "== fuzz smoke (each target briefly, on top of its corpus in testdata/)"
# Budgets are counts of executions (a few seconds each here), not durations: with a
# duration, go1.26's fuzz coordinator can report a spurious "context deadline
# exceeded" at the end (golang/go#75804). Minimizing new inputs is bounded the same way.
for target in "FuzzApply ./internal/call 20000" "FuzzParse ./internal/phone 100000" "FuzzLoad ./internal/config 20000" \
	"FuzzReader ./internal/asterisk/ami 200000" "FuzzCorrelator ./internal/asterisk 20000" \
	"FuzzReader ./internal/freeswitch/esl 150000" "FuzzCorrelator ./internal/freeswitch 20000" "FuzzListings ./internal/freeswitch 50000"; do
	set -- $target
	go test -run='^$' -fuzz="^$1\$" -fuzztime="$3x" -fuzzminimizetime=100x "$2"
done

echo "== benchmarks compile and run once"
go test -run='^$' -bench=. -benchtime=1x ./... >/dev/null

echo "all tests passed"
