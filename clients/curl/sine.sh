#!/usr/bin/env bash
# Fit y = sin(x) on [-pi, pi] with easytorchd, using nothing but curl and jq.
#
#   EASYTORCH_URL    daemon address        (default http://127.0.0.1:8080)
#   EASYTORCH_TOKEN  bearer token, if the daemon has one
#   NAME             model name            (default sine; an existing model of
#                                           that name is deleted first)
#   HIDDEN           hidden units          (default 5: Linear(1,5)-Tanh-Linear(5,1))
#   EPOCHS           epochs of POST /train (default 2000; 8 minibatches of 32 each)
#   LR MOMENTUM      SGD settings          (default 0.05 and 0.9)
#   OUT              where the safetensors file goes (default ./$NAME.safetensors)
#
# The model stays on the daemon afterwards (open the dashboard at $EASYTORCH_URL/).
# Prints the loss as it trains, then a last line `final: mse=... steps=...`.
set -euo pipefail

URL=${EASYTORCH_URL:-http://127.0.0.1:8080}
URL=${URL%/}
NAME=${NAME:-sine}
HIDDEN=${HIDDEN:-5}
EPOCHS=${EPOCHS:-2000}
LR=${LR:-0.05}
MOMENTUM=${MOMENTUM:-0.9}
OUT=${OUT:-./$NAME.safetensors}
N=256          # samples
BATCH=32       # minibatch size

command -v curl >/dev/null || { echo "sine.sh: curl is required" >&2; exit 2; }
command -v jq >/dev/null || { echo "sine.sh: jq is required" >&2; exit 2; }

AUTH=()
if [ -n "${EASYTORCH_TOKEN:-}" ]; then
  AUTH=(-H "Authorization: Bearer $EASYTORCH_TOKEN")
fi
TMP=$(mktemp -d "${TMPDIR:-/tmp}/easytorch-sine.XXXXXX")
trap 'rm -rf "$TMP"' EXIT

# api METHOD PATH [BODY-FILE] -> prints the JSON answer; on a non-2xx answer
# prints the daemon's {"error": ...} to stderr and exits.
api() {
  local method=$1 path=$2 body=${3:-}
  local args=(-sS -X "$method" "${AUTH[@]}" -o "$TMP/out" -w '%{http_code}')
  if [ -n "$body" ]; then
    args+=(-H 'Content-Type: application/json' --data-binary "@$body")
  fi
  local code
  code=$(curl "${args[@]}" "$URL$path") || { echo "sine.sh: cannot reach $URL" >&2; exit 1; }
  if [ "${code:0:1}" != 2 ]; then
    echo "sine.sh: $method $path -> HTTP $code: $(cat "$TMP/out")" >&2
    return 1
  fi
  cat "$TMP/out"
}

echo "== daemon at $URL: $(api GET /healthz)"

# -- 1. the data: 256 points of sin(x), as [[x], ...] and [[sin x], ...] -----
jq -n --argjson n "$N" '
  [range(0; $n) | (-3.141592653589793 + . * 6.283185307179586 / ($n - 1))]
  | {inputs: map([.]), targets: map([sin])}' > "$TMP/data.json"

# -- 2. define the model (replacing an old one of the same name) --------------
if curl -sS -o /dev/null -w '%{http_code}' "${AUTH[@]}" "$URL/v1/models/$NAME" | grep -q '^200$'; then
  api DELETE "/v1/models/$NAME" >/dev/null
  echo "== deleted the old model $NAME"
fi
jq -n --arg name "$NAME" --argjson h "$HIDDEN" --argjson lr "$LR" --argjson m "$MOMENTUM" '{
  name: $name,
  layers: [
    {type: "Linear", in_features: 1, out_features: $h},
    {type: "Tanh"},
    {type: "Linear", in_features: $h, out_features: 1}
  ],
  loss: {type: "MSELoss"},
  optimizer: {type: "SGD", lr: $lr, momentum: $m},
  seed: 0
}' > "$TMP/spec.json"
api POST /v1/models "$TMP/spec.json" | jq -c '{name, parameters, step}' | sed 's/^/== created /'

# -- 3. by hand: push minibatches (gradients add up), then step ---------------
echo "== one epoch by hand: push each minibatch of $BATCH, step after each"
for ((i = 0; i < N; i += BATCH)); do
  jq -c --argjson i "$i" --argjson b "$BATCH" \
    '{inputs: .inputs[$i:$i+$b], targets: .targets[$i:$i+$b]}' "$TMP/data.json" > "$TMP/batch.json"
  loss=$(api POST "/v1/models/$NAME/batches" "$TMP/batch.json" | jq .loss)
  if [ "$i" = 0 ]; then
    echo "   gradients accumulated by the first batch:"
    api GET "/v1/models/$NAME/gradients" |
      jq -r '.gradients | to_entries[] | "     \(.key): \(.value | flatten | map(. * 1e4 | round / 1e4) | tostring)"'
  fi
  step=$(api POST "/v1/models/$NAME/step")
  echo "   batch $((i / BATCH + 1)): loss $loss -> $(echo "$step" | jq -c .)"
done

# -- 4. the daemon runs the rest: POST /train, watching the loss --------------
echo "== $EPOCHS epochs of POST /train (batch_size $BATCH, shuffle)"
chunk=$(( EPOCHS >= 10 ? EPOCHS / 10 : 1 ))
done_epochs=0
since=$(api GET "/v1/models/$NAME" | jq .step)
while [ "$done_epochs" -lt "$EPOCHS" ]; do
  e=$(( EPOCHS - done_epochs < chunk ? EPOCHS - done_epochs : chunk ))
  jq -c --argjson e "$e" --argjson b "$BATCH" '. + {epochs: $e, batch_size: $b, shuffle: true}' \
    "$TMP/data.json" > "$TMP/train.json"
  api POST "/v1/models/$NAME/train" "$TMP/train.json" > "$TMP/trained.json"
  done_epochs=$((done_epochs + e))
  # the loss history since the last look, as a dashboard polls it
  api GET "/v1/models/$NAME/loss?since=$since" > "$TMP/hist.json"
  since=$(jq .step "$TMP/hist.json")
  jq -r --argjson d "$done_epochs" --argjson t "$EPOCHS" \
    '"   epoch \($d)/\($t)  step \(.step)  loss \(.history[-1][1])  (\(.history | length) new points)"' "$TMP/hist.json"
done

# -- 5. predict and measure ------------------------------------------------
jq -c '{inputs}' "$TMP/data.json" > "$TMP/predict.json"
api POST "/v1/models/$NAME/predict" "$TMP/predict.json" > "$TMP/pred.json"
mse=$(jq -n --slurpfile d "$TMP/data.json" --slurpfile p "$TMP/pred.json" '
  [$d[0].targets, $p[0].outputs] | transpose | map((.[0][0] - .[1][0]) | . * .) | add / length')
echo "== predictions (x, sin x, model):"
jq -n --slurpfile d "$TMP/data.json" --slurpfile p "$TMP/pred.json" -r '
  [$d[0].inputs, $d[0].targets, $p[0].outputs] | transpose | .[range(0; length; 51)]
  | "   x=\(.[0][0] * 1000 | round / 1000)  sin=\(.[1][0] * 10000 | round / 10000)  model=\(.[2][0] * 10000 | round / 10000)"'

# -- 6. gradients of one batch alone, parameters, the safetensors file -----------
jq -c '{inputs: .inputs[0:4], targets: .targets[0:4]}' "$TMP/data.json" > "$TMP/g.json"
api POST "/v1/models/$NAME/gradients" "$TMP/g.json" |
  jq -c '{loss, input_gradient: (.input_gradient | flatten), gradients: (.gradients | keys)}' | sed 's/^/== batch gradients: /'
api GET "/v1/models/$NAME/parameters" |
  jq -r '.parameters | to_entries[] | "== parameter \(.key): \(.value | flatten | length) numbers"'
curl -sS --fail-with-body "${AUTH[@]}" -o "$OUT" "$URL/v1/models/$NAME/parameters?format=safetensors"
hlen=$(od -An -t u8 -N 8 "$OUT" | tr -d ' ')
echo "== saved $OUT ($(wc -c < "$OUT") bytes); header:"
dd if="$OUT" bs=1 skip=8 count="$hlen" 2>/dev/null | jq -c 'del(.__metadata__) | to_entries | map({(.key): .value.shape}) | add' | sed 's/^/   /'

steps=$(api GET "/v1/models/$NAME" | jq .step)
echo "final: mse=$mse steps=$steps hidden=$HIDDEN"
