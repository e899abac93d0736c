# tfshim.ps1: make `terraform` run tfshim in Windows PowerShell 5.1 and
# PowerShell 7, keeping tab completion for terraform. Not run in CI (no
# PowerShell can be installed there); keep it to what can be checked by
# reading.
#
# What it does:
#   * Set-Alias terraform <path to tfshim>. An alias, not a function: calling
#     it is calling tfshim.exe itself, so every argument (@args) reaches it as
#     PowerShell passes arguments to any program, pipeline input becomes its
#     stdin, $LASTEXITCODE is its exit code, and, because the alias resolves
#     to an application, the native completer below applies to it.
#   * After `terraform shim`, tfshim's own commands and flags (asked from
#     tfshim: `tfshim shim __complete -- WORDS`).
#   * Registers a native argument completer for terraform. terraform has no
#     PowerShell completion of its own, but its completion protocol is
#     shell-neutral: run it with COMP_LINE (the command line up to the
#     cursor) and COMP_POINT (the cursor's byte offset) set, and it prints
#     one candidate per line and exits. bash's `complete -C` does exactly
#     that; the completer below does the same with the real binary.
#   * It prints nothing when loaded. If tfshim is not installed it changes
#     nothing (check with `Get-Command terraform`).
#
# Install: add this line to your profile (the file named by $PROFILE):
#     . /path/to/tfshim/shell/tfshim.ps1
# Set $env:TFSHIM_BIN = 'C:\path\to\tfshim.exe' first if tfshim is not on PATH.
#
# Undo: remove that line and start a new session. In the current session,
# `Remove-Item Alias:terraform` restores the plain binary (the completer
# targets the real terraform, so it can stay).

# A script block keeps the helper variables out of the caller's scope.
& {
    $name = if ($env:TFSHIM_BIN) { $env:TFSHIM_BIN } else { 'tfshim' }
    # -CommandType Application: files only, never aliases or functions, so
    # dot-sourcing this twice still finds the real binaries.
    $bin = Get-Command -Name $name -CommandType Application -ErrorAction Ignore |
        Select-Object -First 1 -ExpandProperty Source
    if (-not $bin) { return }

    # Ask tfshim which terraform it would run (it honours TFSHIM_TERRAFORM
    # and skips itself). An older tfshim without `shim which` prints nothing
    # useful, and then PATH's terraform is used.
    $real = & $bin shim which 2>$null | Select-Object -First 1
    if (-not ($real -and (Test-Path -LiteralPath $real -PathType Leaf))) {
        $real = Get-Command -Name terraform -CommandType Application -ErrorAction Ignore |
            Select-Object -First 1 -ExpandProperty Source
    }

    Set-Alias -Name terraform -Value $bin -Scope Global -Force

    # Native completers are looked up by the command name as typed, so
    # `terraform` matches even though it is now an alias.
    Register-ArgumentCompleter -Native -CommandName terraform -ScriptBlock {
        param($wordToComplete, $commandAst, $cursorPosition)
        # $cursorPosition counts from the start of the whole input; terraform
        # wants the position within this command. The AST stops at the last
        # word, so `terraform <Tab>` needs its trailing space padded back.
        $text = $commandAst.Extent.Text
        $point = $cursorPosition - $commandAst.Extent.StartOffset
        $line = if ($point -le $text.Length) { $text.Substring(0, $point) } else { $text.PadRight($point) }

        # After `shim` (and terraform's -chdir=DIR before it): tfshim's own
        # commands and flags, from tfshim (`shim __complete LINE` prints the
        # candidates for the line's last word). Everywhere else: terraform's.
        $words = @(-split $line)
        if ($line -match '\s$') { $words += '' }
        $i = 1
        while ($i -lt $words.Count - 1 -and $words[$i] -like '-chdir=*') { $i++ }
        if ($i -lt $words.Count - 1 -and $words[$i] -eq 'shim') {
            foreach ($c in (& $bin shim __complete $line 2>$null)) {
                if ($c) { [System.Management.Automation.CompletionResult]::new($c, $c, 'ParameterValue', $c) }
            }
            return
        }
        if (-not $real) { return }

        $saved = $env:COMP_LINE, $env:COMP_POINT
        try {
            $env:COMP_LINE = $line
            # terraform (Go) slices COMP_LINE by bytes, not characters.
            $env:COMP_POINT = [Text.Encoding]::UTF8.GetByteCount($line)
            $candidates = & $real 2>$null
        } finally {
            # Assigning $null removes the variable again when it was unset.
            $env:COMP_LINE, $env:COMP_POINT = $saved
        }

        foreach ($c in $candidates) {
            if (-not $c) { continue }
            # Quote candidates (e.g. file names) that PowerShell would split.
            $insert = if ($c -match '[\s''"`$&|;,(){}@#<>]') { "'" + ($c -replace "'", "''") + "'" } else { $c }
            [System.Management.Automation.CompletionResult]::new($insert, $c, 'ParameterValue', $c)
        }
    }.GetNewClosure()
}
