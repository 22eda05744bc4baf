#!/usr/bin/env bash
# Run the product. With a key config (RBV_CONFIG or data/keys.toml): collect on a schedule and serve the
# dashboard. Without one: the demo — stand-in API, real collector, embedded DuckDB file, dashboard.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${VENV:-.venv}/bin/python
PORT=${RBV_DASHBOARD_PORT:-8501}
ADDRESS=${RBV_DASHBOARD_ADDRESS:-127.0.0.1}
CONFIG=${RBV_CONFIG:-}
[ -z "$CONFIG" ] && [ -f data/keys.toml ] && CONFIG=data/keys.toml

pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT INT TERM

if [ -n "$CONFIG" ]; then
  DB=${RBV_DB:-data/monitor.duckdb}
  echo "Collecting keys from $CONFIG into $DB on a schedule"
  "$PY" -m collectors serve --config "$CONFIG" --db "$DB" --run-first &
  pids+=($!)
  DEMO=()
else
  SIM_PORT=${RBV_SIM_PORT:-$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')}
  mkdir -p data/demo
  DB=data/demo/demo.duckdb
  rm -f "$DB" "$DB.wal"
  export RBV_ADMIN_TOKEN=sim-admin-token
  echo "No key config found: starting the DEMO (stand-in API on http://127.0.0.1:$SIM_PORT, its admin token" \
       "$RBV_ADMIN_TOKEN; database $DB; config and ledger in data/demo/)"
  "$PY" -m simulator --port "$SIM_PORT" --write-config data/demo/keys.toml --write-ledger data/demo/ledger.csv &
  pids+=($!)
  for _ in $(seq 1 100); do
    "$PY" -c "import httpx,sys; sys.exit(0 if httpx.get('http://127.0.0.1:$SIM_PORT/health').status_code==200 else 1)" \
      2>/dev/null && break
    sleep 0.2
  done
  "$PY" -m collectors once --config data/demo/keys.toml --db "$DB"
  # One smoke check, so the demo's Key detail page has a history to show (and the smoke jobs their labels).
  "$PY" -m collectors smoke --config data/demo/keys.toml --db "$DB" --key api-gateway-prod || true
  "$PY" -m collectors serve --config data/demo/keys.toml --db "$DB" > data/demo/collector.log 2>&1 &
  pids+=($!)
  CONFIG=data/demo/keys.toml
  DEMO=(--demo)
fi

# Host names the dashboard answers to (DNS-rebinding defence): .streamlit/config.toml lists the loopback
# names; serving on another address or behind a name, list them all in RBV_DASHBOARD_HOSTS (comma-separated).
HOSTS=()
IFS=',' read -ra names <<< "${RBV_DASHBOARD_HOSTS:-}"
for name in "${names[@]}"; do [ -n "$name" ] && HOSTS+=(--server.allowedHosts "$name"); done

echo "Dashboard on http://$ADDRESS:$PORT"
"$PY" -m streamlit run dashboard.py --server.port "$PORT" --server.address "$ADDRESS" "${HOSTS[@]}" \
  --server.headless true --browser.gatherUsageStats false -- --db "$DB" --config "$CONFIG" "${DEMO[@]}"
