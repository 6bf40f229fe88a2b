# The shell side of mleray's offline conda shim: what `conda shell.bash hook` prints (and what
# /opt/conda/etc/profile.d/conda.sh holds). Defines the `conda` function, so that `conda activate NAME`
# activates the venv $MLERAY_CONDA_ROOT/envs/NAME in the calling shell; anything else runs the shim.
__mleray_conda_root=${MLERAY_CONDA_ROOT:-/opt/conda}

__mleray_conda_deactivate() {
    if [ -n "${VIRTUAL_ENV:-}" ] && command -v deactivate >/dev/null 2>&1; then
        deactivate
    fi
    unset CONDA_PREFIX CONDA_DEFAULT_ENV
}

__mleray_conda_activate() {
    __mleray_name=${1:-base}
    case "$__mleray_name" in
        */*) __mleray_prefix=$__mleray_name ;;
        base) __mleray_conda_deactivate
              export CONDA_PREFIX="$__mleray_conda_root" CONDA_DEFAULT_ENV=base CONDA_SHLVL=1
              return 0 ;;
        *) __mleray_prefix="$__mleray_conda_root/envs/$__mleray_name" ;;
    esac
    if [ ! -f "$__mleray_prefix/bin/activate" ]; then
        echo "EnvironmentNameNotFound: Could not find conda environment: $__mleray_name" >&2
        return 1
    fi
    __mleray_conda_deactivate
    VIRTUAL_ENV_DISABLE_PROMPT=1 . "$__mleray_prefix/bin/activate"
    export CONDA_PREFIX="$__mleray_prefix" CONDA_DEFAULT_ENV="$__mleray_name" CONDA_SHLVL=1
}

conda() {
    case "${1:-}" in
        activate) shift; __mleray_conda_activate "$@" ;;
        deactivate) __mleray_conda_deactivate ;;
        *) command "$__mleray_conda_root/bin/conda" "$@" ;;
    esac
}
