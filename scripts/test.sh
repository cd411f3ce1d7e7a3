#!/usr/bin/env bash
# weir's whole test suite, on a fresh Debian machine: installs what the tests need (the real
# Prometheus server, promtool and Pushgateway; maturin, pytest, pandas and pyarrow (vectorized
# UDFs), the weir-stream package and grafana-foundation-sdk for the dashboards),
# then checks formatting and lints, and runs every unit, property, doc and end-to-end test,
# Rust and Python.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v prometheus >/dev/null || need_apt+=(prometheus)
command -v promtool >/dev/null || need_apt+=(prometheus)
command -v prometheus-pushgateway >/dev/null || need_apt+=(prometheus-pushgateway)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "== installing ${need_apt[*]}"
  sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

echo "== cargo fmt --check"
cargo fmt --all -- --check

echo "== cargo clippy"
cargo clippy --workspace --all-targets --quiet -- -D warnings

echo "== cargo test"
cargo test --workspace 2>&1 | tee /tmp/weir-test.log

# The Python package, built by maturin into the workspace's target/ (release: the tests run
# real jobs), installed into the current Python with what its tests need.
PYTHON="${PYTHON:-python3}"
echo "== pip install ./python-sdk ($($PYTHON --version))"
$PYTHON -m pip install --quiet --disable-pip-version-check --root-user-action=ignore \
  "maturin>=1.5,<2" "pytest>=7" "cloudpickle>=2" "pandas>=1.3" "pyarrow>=10" \
  -r grafana/requirements.txt
CARGO_TARGET_DIR="$PWD/target" $PYTHON -m pip install --quiet --disable-pip-version-check \
  --root-user-action=ignore --force-reinstall --no-deps ./python-sdk

echo "== pytest python-sdk/tests"
$PYTHON -m pytest -q python-sdk/tests

# Dashboards and alert rules: regenerated and compared, promtool, then every panel target
# against a live demo job through real Prometheus servers (-s prints panel -> series counts).
echo "== pytest grafana/tests"
$PYTHON -m pytest -q -s grafana/tests
