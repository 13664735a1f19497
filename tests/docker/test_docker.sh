#!/usr/bin/env bash
# Container deployment test (meson suite 'docker'): builds docker/Dockerfile, runs the
# image with a volume and a token, trains and predicts over HTTP, restarts and replaces
# the container and checks that models, step counts and optimizer state survive, checks
# that `docker stop` ends the daemon cleanly (SIGTERM -> drain + save -> exit 0), runs
# docker/compose.yaml with its trainer, and reports the image size.
#
#   bash tests/docker/test_docker.sh [SOURCE_ROOT]
#
# Needs root (or a running docker engine), docker, curl and jq; starts dockerd when none
# runs and makes the Debian base images with debootstrap when no registry has them
# (tests/docker/base_images.sh; cached, the first time takes a few minutes).
# Everything it creates is removed on exit, except the base images and the builder's
# cache (untagged images; ET_DOCKER_PRUNE=1 removes those this run added).
# FRESH_DEBIAN=1 (a fresh container without a docker engine) skips with exit code 77.
set -u -o pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
src=$(cd "${1:-$here/../..}" && pwd)

skip() { echo "SKIP: $*"; exit 77; }
if [ "${FRESH_DEBIAN:-0}" = 1 ]; then
    skip "FRESH_DEBIAN=1: no docker engine in a fresh Debian container; the docker test needs one (docker.io, root)."
fi
for tool in docker curl jq; do
    command -v "$tool" >/dev/null || skip "'$tool' is not installed (apt-get install docker.io curl jq)"
done

passed=0
failed=0
exec 3>&1           # results go to fd 3, so a check's own redirections cannot hide them
ok() { passed=$((passed + 1)); echo "ok   - $*" >&3; }
nok() { failed=$((failed + 1)); echo "FAIL - $*" >&3; }
info() { echo "# $*" >&3; }
# check NAME COMMAND...: one test case, passed when COMMAND succeeds.
check() {
    local name=$1
    shift
    if "$@"; then ok "$name"; else nok "$name"; fi
}

run_id=etdt$$                                  # lowercase: also the compose project name
img=easytorch-test:$run_id
trainer_img=easytorch-trainer-test:$run_id
work=$(mktemp -d "/tmp/easytorch-docker-test.XXXXXX")
token=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
containers=()
volumes=()
images=()
compose_up=0
dockerd_pid=
images_before=

compose_cmd=()
if docker-compose version >/dev/null 2>&1; then
    compose_cmd=(docker-compose)                # Debian 12: package docker-compose (1.29)
elif docker compose version >/dev/null 2>&1; then
    compose_cmd=(docker compose)                # the Compose v2 plugin, where installed
fi
compose() {
    EASYTORCH_TOKEN=$token EASYTORCH_PORT= EASYTORCH_IMAGE=$img \
        EASYTORCH_TRAINER_IMAGE=$trainer_img \
        "${compose_cmd[@]}" -p "$run_id" -f "$src/docker/compose.yaml" "$@"
}

# prune_new_images: remove the untagged images (the builder's cache) that appeared during
# this run, leaf first, never one that existed before it.
prune_new_images() {
    local again=1 id
    while [ "$again" = 1 ]; do
        again=0
        for id in $(docker images -q --no-trunc -f dangling=true); do
            grep -qxF "$id" <<<"$images_before" && continue
            docker rmi --no-prune "$id" >/dev/null 2>&1 && again=1
        done
    done
}

cleanup() {
    local c v i
    trap '' INT TERM PIPE
    if [ "$compose_up" = 1 ]; then
        compose down -v --remove-orphans >/dev/null 2>&1
    fi
    for c in "${containers[@]}"; do docker rm -f -v "$c" >/dev/null 2>&1; done
    for v in "${volumes[@]}"; do docker volume rm -f "$v" >/dev/null 2>&1; done
    for i in "${images[@]}"; do docker rmi -f "$i" >/dev/null 2>&1; done
    [ "${ET_DOCKER_PRUNE:-0}" = 1 ] && [ -n "$images_before" ] && prune_new_images
    # Stop the engine we started, unless someone else has containers running on it meanwhile.
    if [ -n "$dockerd_pid" ] && [ -n "$(docker ps -q 2>/dev/null)" ]; then
        echo "# leaving the dockerd we started (pid $dockerd_pid) running: others use it" >&3
    elif [ -n "$dockerd_pid" ]; then
        kill -TERM "$dockerd_pid" 2>/dev/null
        for _ in $(seq 60); do kill -0 "$dockerd_pid" 2>/dev/null || break; sleep 0.5; done
    fi
    if [ "$failed" -eq 0 ]; then
        rm -rf "$work"
    else
        echo "# logs kept in $work" >&3
    fi
}
trap cleanup EXIT
trap 'echo "# interrupted: cleaning up" >&3; exit 130' INT TERM
trap 'exit 141' PIPE

# --- the engine ------------------------------------------------------------------------
if ! docker info >/dev/null 2>&1; then
    command -v dockerd >/dev/null || skip "no docker engine running and no dockerd to start"
    [ "$(id -u)" = 0 ] || skip "no docker engine running and not root to start dockerd"
    info "starting dockerd (log: $work/dockerd.log)"
    dockerd >"$work/dockerd.log" 2>&1 &
    dockerd_pid=$!
    for _ in $(seq 120); do
        docker info >/dev/null 2>&1 && break
        kill -0 "$dockerd_pid" 2>/dev/null || break
        sleep 0.5
    done
    if ! docker info >/dev/null 2>&1; then
        tail -n 30 "$work/dockerd.log"
        nok "dockerd starts"
        echo "$passed passed, $failed failed"
        exit 1
    fi
fi
info "docker engine $(docker version -f '{{.Server.Version}}' 2>/dev/null)"

if ! bash "$here/base_images.sh" >"$work/base.out" 2>"$work/base.err"; then
    cat "$work/base.err"
    nok "base images debian:bookworm and debian:bookworm-slim"
    echo "$passed passed, $failed failed"
    exit 1
fi
sed 's/^/# /' "$work/base.err"

# --- build ---------------------------------------------------------------------------------
# The builder's cache (untagged images) stays for fast reruns; ET_DOCKER_PRUNE=1 removes
# what this run added.
images_before=$(docker images -aq --no-trunc | sort -u)
info "docker build -f docker/Dockerfile (log: $work/build.log)"
images+=("$img")
if docker build --force-rm -f "$src/docker/Dockerfile" -t "$img" --build-arg JOBS=2 "$src" \
        >"$work/build.log" 2>&1; then
    ok "image builds"
else
    tail -n 40 "$work/build.log"
    nok "image builds"
    echo "$passed passed, $failed failed"
    exit 1
fi
size=$(docker image inspect -f '{{.Size}}' "$img")
info "image size: $((size / 1000000)) MB ($size bytes)"
check "runtime image has no compiler" \
    bash -c "! docker run --rm --entrypoint sh '$img' -c 'command -v gcc || command -v cc'"

# --- HTTP helpers ---------------------------------------------------------------------------
base=
code=
body=
# http METHOD PATH [JSON] [TOKEN]: sets $code and $body; TOKEN defaults to $token,
# "-" sends no Authorization header.
http() {
    local method=$1 path=$2 data=${3-} tok=${4-$token}
    local args=(-sS -o "$work/body" -w '%{http_code}' -X "$method" --max-time 120)
    [ "$tok" != - ] && args+=(-H "Authorization: Bearer $tok")
    [ -n "$data" ] && args+=(-H 'Content-Type: application/json' --data-binary "$data")
    : >"$work/body"
    code=$(curl "${args[@]}" "$base$path" 2>"$work/curl.err") || code=000
    body=$(cat "$work/body")
}
# expect NAME STATUS: the last request answered STATUS.
expect() {
    if [ "$code" = "$2" ]; then
        ok "$1"
    else
        nok "$1 (HTTP $code, expected $2: ${body:0:300}$(head -c 300 "$work/curl.err"))"
    fi
}
# use_container NAME: point $base at the container's published port 8080.
use_container() {
    local hp
    hp=$(docker port "$1" 8080/tcp | head -n 1)
    base=http://127.0.0.1:${hp##*:}
}
# wait_healthz: until GET /healthz answers 200 (bounded so a dead daemon fails the test).
wait_healthz() {
    local deadline=$((SECONDS + 120))
    while [ "$SECONDS" -lt "$deadline" ]; do
        http GET /healthz "" -
        [ "$code" = 200 ] && return 0
        sleep 0.5
    done
    return 1
}
# jbody FILTER: the last response body is JSON and FILTER holds for it
# (jq -e alone succeeds on an empty body).
jbody() {
    [ -n "$body" ] && jq -e "$1" <<<"$body" >/dev/null 2>&1
}
# close A B: two JSON documents have the same numbers at the same paths
# (rtol 1e-4, atol 1e-5, as everywhere in the project's tests).
close() {
    jq -en --argjson a "$1" --argjson b "$2" '
        [$a | paths(numbers)] as $pa | [$b | paths(numbers)] as $pb
        | ($pa | length) > 0 and ($pa | sort) == ($pb | sort)
          and all($pa[]; . as $p | ($a | getpath($p)) as $u | ($b | getpath($p)) as $v
                         | (($u - $v) | fabs) <= 1e-5 + 1e-4 * ($v | fabs))' >/dev/null 2>&1
}
run_daemon() {  # run_daemon NAME [docker run options...]: detached, port on 127.0.0.1
    local name=$1
    shift
    containers+=("$name")
    docker run -d --name "$name" -p 127.0.0.1::8080 "$@" "$img" >/dev/null
}
dump_logs() { docker logs --tail 30 "$1" 2>&1 | sed 's/^/#   /'; }

# The spec of the contract's example, with Adam, and 64 points of sin on [-pi, pi].
spec() {
    jq -nc --arg name "$1" '{name: $name,
        layers: [{type: "Linear", in_features: 1, out_features: 16}, {type: "Tanh"},
                 {type: "Linear", in_features: 16, out_features: 1}],
        loss: {type: "MSELoss"}, optimizer: {type: "Adam", lr: 0.01}, seed: 0}'
}
train_body() {
    jq -nc --argjson epochs "$1" '[range(0; 64)] | map(-3.14159265 + . * 6.2831853 / 63)
        | {inputs: map([.]), targets: map([sin]), epochs: $epochs, batch_size: 16}'
}
probe='{"inputs": [[-2.0], [-0.5], [0.0], [0.5], [2.0]]}'

# --- 1. run with a volume and a token ---------------------------------------------------------
vol=$run_id-data
volumes+=("$vol")
docker volume create "$vol" >/dev/null
c1=$run_id-d1
run_daemon "$c1" -e EASYTORCH_TOKEN="$token" -v "$vol:/data"
use_container "$c1"
if wait_healthz; then ok "GET /healthz answers 200"; else nok "GET /healthz answers 200"; dump_logs "$c1"; fi
check "/healthz body is {\"status\":\"ok\"}" jbody '.status == "ok"'
check "easytorchd is PID 1" test "$(docker exec "$c1" cat /proc/1/comm 2>/dev/null)" = easytorchd
check "the daemon does not run as root" \
    test "$(docker exec "$c1" id -u 2>/dev/null)" -ne 0 2>/dev/null

http GET /v1/models "" -
expect "GET /v1/models without a token is 401" 401
http GET /v1/models "" "wrong-$token"
expect "GET /v1/models with a wrong token is 401" 401
http GET /v1/models
expect "GET /v1/models with the token is 200" 200

http POST /v1/models "$(spec sine)"
expect "POST /v1/models defines sine" 201
http POST /v1/models "$(spec twin)"
expect "POST /v1/models defines twin (same spec and seed)" 201
http POST /v1/models/sine/train "$(train_body 20)"
expect "POST /v1/models/sine/train (20 epochs of 4 minibatches)" 200
check "train reports step 80" jbody '.step == 80'
check "the training loss falls" jbody '.losses | length > 1 and .[-1] < .[0]'
http POST /v1/models/twin/train "$(train_body 20)"
expect "POST /v1/models/twin/train" 200
http POST /v1/models/sine/predict "$probe"
expect "POST /v1/models/sine/predict" 200
check "predict gives 5 outputs of 1 feature" \
    jbody '.outputs | length == 5 and all(.[]; length == 1)'
pred_before=$(jq -c .outputs <<<"$body")
http GET /v1/models/sine/parameters
check "GET /v1/models/sine/parameters has 0.weight 0.bias 2.weight 2.bias" \
    jbody '.parameters | keys == ["0.bias", "0.weight", "2.bias", "2.weight"]'
params_before=$(jq -c .parameters <<<"$body")
# The image carries protobuf-c: ONNX export answers a model file, not 409.
http GET '/v1/models/sine/export?format=onnx'
expect "GET /v1/models/sine/export?format=onnx (the image has ONNX support)" 200
check "the export is an ONNX file (ir_version field first, producer easytorch)" \
    sh -c "head -c 1 '$work/body' | od -An -tx1 | grep -q 08 && grep -aq easytorch '$work/body'"

# The reference for "training after a restart continues as if there were none":
# twin takes its next epoch now, sine takes the same epoch after the restart.
http POST /v1/models/twin/train "$(train_body 1)"
twin_losses=$(jq -c .losses <<<"$body")
http GET /v1/models/twin/parameters
twin_params=$(jq -c .parameters <<<"$body")

health=
deadline=$((SECONDS + 120))
while [ "$SECONDS" -lt "$deadline" ]; do
    health=$(docker inspect -f '{{.State.Health.Status}}' "$c1" 2>/dev/null)
    [ "$health" = healthy ] && break
    sleep 1
done
check "docker reports the container healthy (HEALTHCHECK)" test "$health" = healthy

# --- 2. graceful stop and restart ----------------------------------------------------------------
t0=$(date +%s.%N)
docker stop -t 60 "$c1" >/dev/null
t1=$(date +%s.%N)
exit_code=$(docker inspect -f '{{.State.ExitCode}}' "$c1")
info "docker stop took $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }') s"
check "docker stop: SIGTERM ends easytorchd with exit code 0 (got $exit_code)" test "$exit_code" = 0
[ "$exit_code" = 0 ] || dump_logs "$c1"

docker start "$c1" >/dev/null
use_container "$c1"
if wait_healthz; then ok "restarted container serves /healthz"; else nok "restarted container serves /healthz"; dump_logs "$c1"; fi
http GET /v1/models/sine
expect "sine survives the restart" 200
check "sine's step count (80) survives the restart" jbody '.step == 80'
http GET /v1/models/sine/parameters
check "sine's parameters survive the restart" close "$(jq -c .parameters <<<"$body")" "$params_before"
http POST /v1/models/sine/predict "$probe"
check "predictions after the restart are unchanged" close "$(jq -c .outputs <<<"$body")" "$pred_before"
http POST /v1/models/sine/train "$(train_body 1)"
check "training continues after the restart (step 84)" jbody '.step == 84'
check "the epoch after the restart has the losses it has without one" \
    close "$(jq -c .losses <<<"$body")" "$twin_losses"
http GET /v1/models/sine/parameters
check "optimizer state survives: parameters match the model that never restarted" \
    close "$(jq -c .parameters <<<"$body")" "$twin_params"

# --- 3. upgrade: a new container on the same volume --------------------------------------------
docker stop -t 60 "$c1" >/dev/null
c2=$run_id-d2
run_daemon "$c2" -e EASYTORCH_TOKEN="$token" -v "$vol:/data"
use_container "$c2"
wait_healthz || dump_logs "$c2"
http GET /v1/models
check "a new container on the same volume has both models at step 84" \
    jbody '[.models[] | select(.name == "sine" or .name == "twin") | .step] == [84, 84]'
docker stop -t 60 "$c2" >/dev/null

# --- 4. token from a mounted secret; no token at all -----------------------------------------------
printf '%s\n' "$token" >"$work/token"
chmod 0644 "$work/token"
c3=$run_id-d3
run_daemon "$c3" -v "$work/token:/run/secrets/easytorch_token:ro"
use_container "$c3"
if wait_healthz; then
    http GET /v1/models "" -
    expect "secret file /run/secrets/easytorch_token: 401 without the token" 401
    http GET /v1/models
    expect "secret file /run/secrets/easytorch_token: 200 with it" 200
else
    nok "the daemon starts with only the secret file as token"
    dump_logs "$c3"
fi
docker rm -f -v "$c3" >/dev/null

c4=$run_id-d4
containers+=("$c4")
timeout 120 docker run --name "$c4" "$img" >"$work/notoken.log" 2>&1
rc=$?
check "without a token the daemon refuses 0.0.0.0 and exits non-zero (rc $rc)" \
    test "$rc" -ne 0 -a "$rc" -ne 124
docker rm -f -v "$c4" >/dev/null 2>&1

# --- 5. docker/compose.yaml: daemon + trainer ---------------------------------------------------
if [ ${#compose_cmd[@]} -eq 0 ]; then
    info "SKIP compose: neither docker-compose nor 'docker compose' is installed (apt-get install docker-compose)"
else
    info "compose: ${compose_cmd[*]} $("${compose_cmd[@]}" version --short 2>/dev/null)"
    images+=("$trainer_img")
    compose_up=1
    if compose up -d >"$work/compose.log" 2>&1; then
        ok "compose up -d (daemon + trainer image built)"
        cid=$(compose ps -q easytorchd)
        use_container "$cid"
        wait_healthz || compose logs --tail 30 | sed 's/^/#   /'
        step=0
        trainer_rc=
        tid=$(compose ps -q trainer)
        deadline=$((SECONDS + 600))
        while [ "$SECONDS" -lt "$deadline" ]; do
            http GET /v1/models
            step=$(jq '[.models[]?.step] | max // 0' <<<"$body" 2>/dev/null)
            [ "${step:-0}" -gt 0 ] 2>/dev/null && break
            [ -n "$trainer_rc" ] && break       # it had exited before this last look
            trainer_rc=$(docker inspect -f '{{if not .State.Running}}{{.State.ExitCode}}{{end}}' \
                "$tid" 2>/dev/null)
            sleep 1
        done
        if [ "${step:-0}" -gt 0 ] 2>/dev/null; then
            ok "compose: the trainer pushes steps (step $step)"
        else
            nok "compose: the trainer pushes steps (trainer exit ${trainer_rc:-running})"
            compose logs --tail 30 2>&1 | sed 's/^/#   /'
        fi
        http GET / "" -
        expect "compose: the dashboard GET / is served" 200
        deadline=$((SECONDS + 600))
        while [ "$SECONDS" -lt "$deadline" ]; do
            trainer_rc=$(docker inspect -f '{{if not .State.Running}}{{.State.ExitCode}}{{end}}' \
                "$tid" 2>/dev/null)
            [ -n "$trainer_rc" ] && break
            sleep 2
        done
        trainer_log=$(docker logs "$tid" 2>&1)
        if [ "$trainer_rc" = 0 ] && grep -q '^final: ' <<<"$trainer_log"; then
            ok "compose: the trainer (examples/sine.py) finishes: $(grep '^final: ' <<<"$trainer_log")"
        else
            nok "compose: the trainer (examples/sine.py) finishes (exit ${trainer_rc:-running})"
            tail -n 20 <<<"$trainer_log" | sed 's/^/#   /'
        fi
        http GET /v1/models/sine-32
        check "compose: the trainer's model stays on the daemon (--keep)" jbody '.step > 0'
    else
        tail -n 40 "$work/compose.log"
        nok "compose up -d"
    fi
    if compose down -v >>"$work/compose.log" 2>&1; then
        ok "compose down -v"
        compose_up=0
    else
        nok "compose down -v"
    fi
    tsize=$(docker image inspect -f '{{.Size}}' "$trainer_img" 2>/dev/null || echo 0)
    info "trainer image size: $((tsize / 1000000)) MB"
fi

info "image $img: $((size / 1000000)) MB"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
