# tfshim.zsh: make `terraform` run tfshim in interactive zsh, keeping
# terraform's own tab completion.
#
# What it does:
#   * alias terraform=<path to tfshim>; tfshim passes every argument through
#     to the real terraform.
#   * Registers terraform's completion the way `terraform -install-autocomplete`
#     does (bashcompinit + complete -C), but pointing at the real binary, and
#     tfshim's own completion after `terraform shim` (clap's, from
#     `tfshim shim completions zsh`).
#   * If tfshim is not installed, it prints one line to stderr and changes
#     nothing.
#
# Install: add this line to ~/.zshrc, after compinit has run (oh-my-zsh,
# prezto etc. run it for you) and after any `complete -C ... terraform` line
# that `terraform -install-autocomplete` added:
#     source /path/to/tfshim/shell/tfshim.zsh
# Set TFSHIM_BIN=/path/to/tfshim first if tfshim is not on PATH.
#
# Undo: remove the `source` line. To undo it in the current shell, run:
#     unalias terraform; compdef -d terraform tfshim; unfunction _tfshim_complete

() {
    emulate -L zsh
    local bin real
    # `whence -p` searches PATH only, like `command -v` but ignoring aliases
    # and functions, so sourcing this file twice still finds the real files.
    bin=$(whence -p -- "${TFSHIM_BIN:-tfshim}") || bin=
    if [[ -z $bin ]]; then
        print -ru2 -- "tfshim: '${TFSHIM_BIN:-tfshim}' not found; terraform left unchanged (install tfshim or set TFSHIM_BIN)"
        return 0
    fi

    # Completion has to talk to the real terraform: it reads COMP_LINE and
    # prints candidates. Ask tfshim which binary it would run, because it
    # honours TFSHIM_TERRAFORM and skips itself. An older tfshim without
    # `shim which` prints nothing useful, and then we use PATH's terraform.
    real=$("$bin" shim which </dev/null 2>/dev/null | head -n 1)
    [[ -n $real && -x $real ]] || real=$(whence -p terraform) || real=

    alias terraform="${(q)bin}"
    [[ -n $real ]] || return 0

    # This is what `terraform -install-autocomplete` writes, but aimed at the
    # real binary. bashcompinit needs compdef, i.e. compinit, which
    # terraform's installer also adds to ~/.zshrc; run it only if nobody has.
    (( $+functions[compdef] )) || { autoload -Uz compinit && compinit; }
    (( $+functions[complete] )) || { autoload -U +X bashcompinit && bashcompinit; }
    # With COMPLETE_ALIASES unset (the default), zsh expands the alias before
    # completing, so the command word it looks up is tfshim, not terraform.
    # Register both names (terraform ignores the first word of COMP_LINE).
    complete -o nospace -C "${(q)real}" terraform
    complete -o nospace -C "${(q)real}" "${bin:t}"

    # tfshim's own commands and flags after `terraform shim` (and terraform's
    # -chdir=DIR before it): clap's zsh completion for the name terraform,
    # renamed so that it never takes over terraform's, and without its compdef
    # lines. An older tfshim prints nothing; then `shim` completes terraform's.
    eval "$("$bin" shim completions zsh </dev/null 2>/dev/null |
        awk '/^#compdef /{keep = ($2 == "terraform")} keep' |
        sed -e 's/_terraform/_tfshim_clap_terraform/g' -e 's/^\([[:space:]]*\)compdef .*/\1:/')"
    typeset -g _tfshim_real=$real
    compdef _tfshim_complete terraform "${bin:t}"
}

# Completes `terraform …`: tfshim's own after `shim`, terraform's elsewhere
# (the `complete -C` registered above, through bashcompinit).
_tfshim_complete() {
    local i=2
    while (( i < CURRENT )) && [[ $words[i] == -chdir=* ]]; do (( i++ )); done
    if (( i < CURRENT )) && [[ $words[i] == shim ]] && (( $+functions[_tfshim_clap_terraform] )); then
        # clap's function sees `terraform shim …`, the -chdir words left out.
        words=(terraform "${(@)words[i,-1]}")
        (( CURRENT -= i - 2 ))
        _tfshim_clap_terraform "$@"
    else
        _bash_complete -o nospace -C "${(q)_tfshim_real}" "$@"
    fi
}
