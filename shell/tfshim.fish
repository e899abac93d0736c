# tfshim.fish: make `terraform` run tfshim in interactive fish, keeping
# terraform tab completion.
#
# What it does:
#   * Defines a function `terraform` that runs tfshim with every argument;
#     tfshim passes them through to the real terraform.
#   * Adds tfshim's own completions after `terraform shim` (below); the rest
#     of completion is left alone: terraform has no fish support of its own
#     (-install-autocomplete covers only bash and zsh); fish ships
#     completions/terraform.fish, which registers `complete -c terraform`.
#     Those completions are keyed by the command name, so they apply to this
#     function just as they did to the binary. The function deliberately has
#     no --wraps: `--wraps terraform` would point at itself, and `alias`
#     would add `--wraps /path/to/tfshim`, which has no completions.
#     (The helper that lists workspaces runs `terraform workspace list`,
#     which now goes through tfshim; that is fine.)
#   * If tfshim is not installed, it prints one line to stderr and changes
#     nothing.
#
# Install: add this line to ~/.config/fish/config.fish:
#     source /path/to/tfshim/shell/tfshim.fish
# Set TFSHIM_BIN=/path/to/tfshim first if tfshim is not on PATH.
#
# Undo: remove the `source` line. To undo it in the current shell, run:
#     functions --erase terraform

set -l name tfshim
set -q TFSHIM_BIN; and set name $TFSHIM_BIN
# fish's `command -v` only looks at executables, never at functions, so
# sourcing this file twice still finds the real tfshim.
set -l bin (command -v -- $name)
if test -n "$bin"
    # --inherit-variable copies $bin into the function at definition time.
    function terraform --inherit-variable bin --description 'terraform, run through tfshim'
        command $bin $argv
    end
    # tfshim's own commands and flags after `terraform shim`: clap's completions
    # for the name terraform (fish adds them to terraform's own, which end once
    # a subcommand such as `shim` is on the line). Only terraform's part: `tofu`
    # and `tfshim` are left alone. An older tfshim prints nothing.
    # (clap writes one section per name, each opening with its optspec function.)
    set -l keep 0
    for line in (command $bin shim completions fish 2>/dev/null)
        string match -q -- '# Print an optspec*' $line; and set keep 0
        string match -q -- 'function __fish_terraform_global_optspecs' $line; and set keep 1
        # fish's own completions/terraform.fish defines __fish_terraform_needs_command
        # too (and is loaded later, at the first completion): clap's helpers are renamed.
        # terraform's -chdir=DIR before `shim` is left out of the words clap's helpers read.
        test $keep = 1; and string replace -a -- __fish_terraform_ __fish_tfshim_terraform_ $line |
            string replace -- 'set -e cmd[1]' 'set -e cmd[1]; set cmd (string match -v -- "-chdir=*" $cmd)'
    end | source
else
    echo "tfshim: '$name' not found; terraform left unchanged (install tfshim or set TFSHIM_BIN)" >&2
end
