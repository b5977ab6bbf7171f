#!/usr/bin/env bash
# Fetches the runners the job can run on locally into .cache/runners/ (ignored by git), once:
#   prism                                           Beam's Prism runner, built with Go from
#                                                   the Beam release of the installed SDK
#   beam-runners-flink-<flink>-job-server-<beam>.jar  Beam's Flink job server (Maven Central)
# Jobs never download a runner: pass these with --prism_location / --flink_job_server_jar
# (docs/runners.md). Idempotent: what is already there is kept.
# Exit status: 0 when Prism is there (Flink is optional: a registry that does not serve the jar
# is reported in one line); 1 when Prism cannot be had.
set -uo pipefail
cd "$(dirname "$0")/.."
dest=.cache/runners
mkdir -p "$dest"
python=.venv/bin/python
[ -x "$python" ] || python=python3
beam=$("$python" -c 'from importlib.metadata import version; print(version("apache-beam"))') || {
  echo "fetch_runners: apache-beam is not installed (run ./run_tests.sh or scripts/setup_env.sh first)" >&2
  exit 1
}
# The Flink version FlinkRunner uses by default: the newest this SDK publishes a job server for.
flink=${FLINK_VERSION:-$("$python" -c 'from apache_beam.options.pipeline_options import FlinkRunnerOptions as F; print(F.PUBLISHED_FLINK_VERSIONS[-1])')}

fetch_prism() {
  local stamp="$dest/prism.version"
  if [ -x "$dest/prism" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$beam" ]; then
    echo "prism: $dest/prism (Beam $beam), already there"
    return 0
  fi
  rm -f "$dest/prism" "$stamp"
  local package="github.com/apache/beam/sdks/v2/go/cmd/prism@v$beam"
  if command -v go >/dev/null 2>&1; then
    if GOBIN="$PWD/$dest" go install "$package" 2>"$dest/prism.log"; then
      echo "$beam" >"$stamp"
      echo "prism: $dest/prism (Beam $beam, go install $package)"
      return 0
    fi
    echo "prism: not fetched: \`go install $package\` failed (see $dest/prism.log)" >&2
    return 1
  fi
  echo "prism: not fetched: no \`go\` on PATH to run \`go install $package\`" >&2
  return 1
}

# Writes $dest/flink.status: fetched, not-served (the registry has no such artifact), or failed.
fetch_flink() {
  local artifact="org.apache.beam:beam-runners-flink-$flink-job-server:$beam"
  local jar="$dest/beam-runners-flink-$flink-job-server-$beam.jar"
  local status="$dest/flink.status"
  if [ -s "$jar" ]; then
    echo fetched >"$status"
    echo "flink: $jar, already there"
  elif ! command -v mvn >/dev/null 2>&1; then
    echo failed >"$status"
    echo "flink: skipped: no mvn on PATH to fetch $artifact"
  # -U: ask the registry again rather than trust a cached miss.
  elif mvn -q -B -U dependency:copy -Dartifact="$artifact" -DoutputDirectory="$dest" \
    >"$dest/flink.log" 2>&1 && [ -s "$jar" ]; then
    echo fetched >"$status"
    echo "flink: $jar ($artifact)"
  elif grep -q "Could not find artifact\|was not found in" "$dest/flink.log"; then
    echo not-served >"$status"
    echo "flink: skipped: the Maven registry does not serve $artifact" \
      "(\`mvn dependency:copy -Dartifact=$artifact\`: not found; see $dest/flink.log)"
  else
    echo failed >"$status"
    echo "flink: skipped: \`mvn dependency:copy -Dartifact=$artifact\` failed (see $dest/flink.log)"
  fi
  return 0
}

fetch_flink
fetch_prism
