# Sourced by scripts/run and scripts/test: install the Debian packages a step needs.
# Only missing packages are installed, so re-runs cost nothing.

# libdnnl-dev: oneDNN, the optional convolution backend (docs/design.md "Convolution");
# zlib1g-dev: examples/digits_cnn reads scikit-learn's gzip'ed digits
# protobuf-c-compiler, libprotobuf-c-dev, libonnx-dev: ONNX export (protoc-c compiles ONNX's
# own onnx.proto at build time; meson feature "onnx")
# libopenmpi-dev: easytorchd --mpi (meson feature "mpi", auto; docs/distributed.md); it brings
# openmpi-bin's mpirun, which the server suite's test_mpi.py runs
BUILD_PKGS="gcc pkg-config meson ninja-build libopenblas-dev libcjson-dev libmicrohttpd-dev check ca-certificates
  libdnnl-dev zlib1g-dev protobuf-c-compiler libprotobuf-c-dev libonnx-dev libopenmpi-dev"
RUN_PKGS="curl"
# PyTorch is the oracle of the differential tests; the rest serve the
# integration, client, dashboard and container tests.  python3-sklearn and
# wamerican hold the examples' data (boston and digits CSVs; the word list
# of the character model, /usr/share/dict/american-english).  python3-jsonschema:
# the contract check against docs/openapi.json; geventhttpclient, gevent,
# rapidjson, aiohttp: NVIDIA's tritonclient (../shared/vendor) as a real OIP client.
# python3-onnx: onnx.checker on the exported ONNX files (the runtime that runs them is
# onnxruntime-web from npm, tests/server/onnx, installed by `npm ci` there via ensure_npm).
TEST_PKGS="python3 python3-torch python3-numpy python3-sklearn python3-venv python3-pip python3-setuptools
  clang libclang-rt-14-dev curl jq chromium nodejs docker.io docker-compose debootstrap procps iproute2
  wrk python3-fastapi python3-uvicorn wamerican python3-jsonschema nginx-light
  python3-geventhttpclient python3-gevent python3-rapidjson python3-aiohttp python3-onnx openmpi-bin"

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

ensure_packages() {
    missing=""
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
    done
    [ -z "$missing" ] && return 0
    echo "==> installing:$missing"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    # shellcheck disable=SC2086
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing
}

# Debian's npm is a separate package; NodeSource's nodejs bundles its own
# (and conflicts with Debian's npm), so install npm only when it is missing.
ensure_npm() {
    command -v npm >/dev/null 2>&1 || ensure_packages npm
}

# meson_build DIR [meson options...]: configure once, then build.
meson_build() {
    dir=$1; shift
    if [ ! -f "$dir/build.ninja" ]; then
        meson setup "$dir" "$@"
    fi
    ninja -C "$dir"
}

# OpenBLAS 0.3.21 does not know some current CPUs (Xeon family 6 model 207 among them) and
# falls back to its Prescott (SSE3) kernels, ~9x slower for sgemm than the AVX-512 ones.
# OPENBLAS_CORETYPE, read when the library is loaded, picks kernels by name instead.
# blas_coretype PROGRAM...: PROGRAM prints openblas_get_corename() (et_bench --blas-core);
# prints the OPENBLAS_CORETYPE to use for this CPU's features, or nothing when OpenBLAS
# recognised the CPU (or OPENBLAS_CORETYPE is already set).  scripts/bench does the same.
blas_coretype() {
    [ -n "${OPENBLAS_CORETYPE:-}" ] && return 0
    core=$("$@" 2>/dev/null) || return 0
    case "$core" in
        Prescott|Core2|Penryn|Dunnington|Nehalem|Atom|Unknown) ;;
        *) return 0 ;;
    esac
    flags=" $(grep -m1 '^flags' /proc/cpuinfo 2>/dev/null) "
    case "$flags" in
        *" avx512_bf16 "*) echo COOPERLAKE ;;
        *" avx512bw "*) echo SKYLAKEX ;;
        *" avx2 "*) echo HASWELL ;;
    esac
}
