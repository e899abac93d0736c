# tfshim.zsh: make `terraform` run tfshim in interactive zsh, keeping
# terraform's own tab completion.
#
# What it does:
#   * alias terraform=<path to tfshim>; tfshim passes every argument through
#     to the real terraform.
#   * Registers terraform's completion the way `terraform -install-autocomplete`
#     does (bashcompinit + complete -C), but pointing at the real binary.
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
#     unalias terraform; compdef -d terraform tfshim

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
}
