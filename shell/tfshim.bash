# tfshim.bash: make `terraform` run tfshim in interactive bash, keeping
# terraform's own tab completion.
#
# What it does:
#   * alias terraform=<path to tfshim>; tfshim passes every argument through
#     to the real terraform.
#   * complete -F _tfshim_complete terraform: after `shim` (and terraform's
#     global -chdir=DIR before it) tfshim's own commands and flags, from
#     clap's completion that `tfshim shim completions bash` prints; everywhere
#     else terraform's own, asked from the real binary exactly as the
#     `complete -C <terraform> terraform` line of `terraform
#     -install-autocomplete` would (COMP_LINE/COMP_POINT), but pointing at
#     the real binary rather than at tfshim.
#   * If tfshim is not installed, it prints one line to stderr and changes
#     nothing.
#
# Install: add this line to ~/.bashrc, after any `complete -C ... terraform`
# line that `terraform -install-autocomplete` added:
#     source /path/to/tfshim/shell/tfshim.bash
# Set TFSHIM_BIN=/path/to/tfshim first if tfshim is not on PATH.
#
# Undo: remove the `source` line. To undo it in the current shell, run:
#     unalias terraform; complete -r terraform; unset -f _tfshim_complete
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
    _tfshim_real=$real
    # clap's functions for tfshim's own commands (`_terraform` completes
    # `terraform shim …`), without the `complete` lines that would register
    # them for whole commands: terraform's own words stay terraform's, and
    # `tofu` is left alone. An older tfshim prints nothing; then `shim`
    # completes nothing of its own.
    eval "$("$bin" shim completions bash </dev/null 2>/dev/null |
        sed 's/^\([[:space:]]*\)complete -F .*/\1:/')"
    # Aliases do not affect completion in bash: the spec is looked up by
    # the word as typed, `terraform`.
    complete -F _tfshim_complete terraform
}

# Completes `terraform …`: tfshim's own after `shim`, terraform's elsewhere.
_tfshim_complete() {
    local i=1
    while [ "$i" -lt "$COMP_CWORD" ] && [[ ${COMP_WORDS[i]} == -chdir=* ]]; do
        i=$((i + 1))
    done
    if [ "$i" -lt "$COMP_CWORD" ] && [ "${COMP_WORDS[i]}" = shim ]; then
        declare -F _terraform >/dev/null || { COMPREPLY=(); return 0; }
        # clap's function sees `terraform shim …`, the -chdir words left out.
        local -a COMP_WORDS=("${COMP_WORDS[0]}" "${COMP_WORDS[@]:i}")
        local COMP_CWORD=$((COMP_CWORD - i + 1))
        _terraform "$@"
        return
    fi
    COMPREPLY=()
    [ -n "$_tfshim_real" ] || return 0
    # terraform's completion protocol (what `complete -C` does): the line up
    # to the cursor in COMP_LINE/COMP_POINT, one candidate per output line.
    local line
    while IFS= read -r line; do
        [ -n "$line" ] && COMPREPLY+=("$line")
    done < <(COMP_LINE=$COMP_LINE COMP_POINT=$COMP_POINT "$_tfshim_real" "$1" "$2" "$3" </dev/null 2>/dev/null)
}
_tfshim_setup
unset -f _tfshim_setup
