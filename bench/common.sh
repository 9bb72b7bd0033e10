# Sourced by the bench scripts: where the binary, the generated models and the real
# text live, each overridable from the environment.
#   STRATA         the strata binary (default: this tree's release build)
#   STRATA_MODELS  where generated models are kept (default: ~/.cache/strata/models)
#   TEXT           real text for --text (default: setup.sh's cached mobydick.txt)
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
strata=${STRATA:-$here/build/release/tools/strata}
models=${STRATA_MODELS:-${XDG_CACHE_HOME:-$HOME/.cache}/strata/models}
cache="${STRATA_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/strata}"
text=${TEXT:-$cache/text/mobydick.txt}
mkdir -p "$models"

# ensure_model FILE MAKE-MODEL-ARGS...: generates FILE under $models on first use.
ensure_model() {
  local file=$1
  shift
  [ -f "$models/$file" ] || "$strata" make-model "$@" -o "$models/$file"
}
