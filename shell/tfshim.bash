# tfshim.bash: make `terraform` run tfshim in interactive bash, keeping
# terraform's own tab completion.
#
# What it does:
#   * alias terraform=<path to tfshim>; tfshim passes every argument through
#     to the real terraform.
#   * complete -C <real terraform> terraform: the same line that
#     `terraform -install-autocomplete` writes, but pointing at the real
#     binary rather than at tfshim.
#   * If tfshim is not installed, it prints one line to stderr and changes
#     nothing.
#
# Install: add this line to ~/.bashrc, after any `complete -C ... terraform`
# line that `terraform -install-autocomplete` added:
#     source /path/to/tfshim/shell/tfshim.bash
# Set TFSHIM_BIN=/path/to/tfshim first if tfshim is not on PATH.
#
# Undo: remove the `source` line. To undo it in the current shell, run:
#     unalias terraform; complete -r terraform
# (then re-run `terraform -install-autocomplete` if you want the stock setup back).

_tfshim_setup() {
    local bin real
    # `type -P` searches PATH only, like `command -v` but ignoring aliases
    # and functions, so sourcing this file twice still finds the real files.
    bin=$(type -P -- "${TFSHIM_BIN:-tfshim}") || bin=
    if [ -z "$bin" ]; then
        echo "tfshim: '${TFSHIM_BIN:-tfshim}' not found; terraform left unchanged (install tfshim or set TFSHIM_BIN)" >&2
        return 0
    fi

    # Completion has to talk to the real terraform: it reads COMP_LINE and
    # prints candidates. Ask tfshim which binary it would run, because it
    # honours TFSHIM_TERRAFORM and skips itself. An older tfshim without
    # `shim which` prints nothing useful, and then we use PATH's terraform.
    real=$("$bin" shim which </dev/null 2>/dev/null | head -n 1)
    [ -n "$real" ] && [ -x "$real" ] || real=$(type -P terraform) || real=

    # shellcheck disable=SC2139 # expanding now is the point
    alias terraform="$(printf '%q' "$bin")"
    # Aliases do not affect completion in bash: the spec is looked up by
    # the word as typed, `terraform`. -C runs its argument as a shell
    # command, so the path is quoted.
    if [ -n "$real" ]; then
        complete -C "$(printf '%q' "$real")" terraform
    fi
}
_tfshim_setup
unset -f _tfshim_setup
