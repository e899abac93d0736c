# tfshim @VERSION@ installer for Windows (PowerShell 5.1 or 7). Downloads the x86_64 archive, checks
# its SHA-256 against the checksums below (written in when the release was made, so a mirror cannot
# swap it), installs tfshim.exe into a user directory and adds that directory to the user's PATH; with
# -Link DIR, also makes DIR\terraform.exe a hard link to it. A terraform.exe already in DIR is replaced
# only when it is tfshim (-Force: also a symbolic link to another tfshim.exe); anything else, such as
# the real terraform, is never removed: the installer stops and suggests another DIR.
#
#   irm https://github.com/@REPO@/releases/download/v@VERSION@/tfshim-installer.ps1 | iex
#   & ([scriptblock]::Create((irm …/tfshim-installer.ps1))) -Link "$env:LOCALAPPDATA\tfshim\terraform-bin"
#
# Environment:
#   TFSHIM_INSTALL_DIR   where tfshim.exe goes (default: %LOCALAPPDATA%\tfshim\bin)
#   TFSHIM_DOWNLOAD_URL  where the archives are (default: this release on GitHub): a mirror or a local
#                        copy, as a URL (https://…, http://…, file://…) or a directory's path
#   TFSHIM_NO_MODIFY_PATH=1  leave the user's PATH alone
# This file is shell/release/installer.ps1 with the release's values filled in by package.sh.
param(
    [string]$Link = '',
    [switch]$Force
)
$ErrorActionPreference = 'Stop'
Set-StrictMode -Version 3

$Version = '@VERSION@'
$Repo = '@REPO@'
$Checksums = @'
@SHA256SUMS@
'@

# `throw`, not `exit`: under `irm | iex` an exit would close the user's own PowerShell.
function Fail([string]$Message) {
    throw "tfshim installer: $Message"
}

$Base = if ($env:TFSHIM_DOWNLOAD_URL) { $env:TFSHIM_DOWNLOAD_URL.TrimEnd('/') } else { "https://github.com/$Repo/releases/download/v$Version" }
$Dest = if ($env:TFSHIM_INSTALL_DIR) { $env:TFSHIM_INSTALL_DIR } else { Join-Path $env:LOCALAPPDATA 'tfshim\bin' }

$Arch = $env:PROCESSOR_ARCHITECTURE
if ($Arch -ne 'AMD64' -and $Arch -ne 'ARM64') {
    Fail "no prebuilt tfshim for $Arch; build it from source: cargo install --locked --git https://github.com/$Repo"
}
# ARM64 Windows runs the x86_64 build under emulation.
$Target = 'x86_64-pc-windows-msvc'
$Archive = "tfshim-$Target.zip"
$Expected = ($Checksums -split "`n" | ForEach-Object { $f = $_.Trim() -split '\s+'; if ($f.Count -eq 2 -and $f[1] -eq $Archive) { $f[0] } } | Select-Object -First 1)
if (-not $Expected) { Fail "release $Version has no $Archive" }

$Tmp = Join-Path ([IO.Path]::GetTempPath()) ("tfshim-install-" + [guid]::NewGuid())
New-Item -ItemType Directory -Path $Tmp | Out-Null
try {
    $Zip = Join-Path $Tmp $Archive
    Write-Host "tfshim installer: downloading $Base/$Archive"
    [Net.ServicePointManager]::SecurityProtocol = [Net.ServicePointManager]::SecurityProtocol -bor [Net.SecurityProtocolType]::Tls12
    # A URL is downloaded; file://… or a plain path (a local copy of the release) is copied.
    try {
        if ($Base -match '^[A-Za-z][A-Za-z0-9+.-]*://' -and $Base -notmatch '^file://') {
            Invoke-WebRequest -UseBasicParsing -Uri "$Base/$Archive" -OutFile $Zip
        } else {
            $From = if ($Base -match '^file://') { ([Uri]"$Base/$Archive").LocalPath } else { Join-Path $Base $Archive }
            Copy-Item -LiteralPath $From -Destination $Zip
        }
    } catch {
        Fail "could not download $Base/$Archive ($($_.Exception.Message)); nothing was installed (offline? TFSHIM_DOWNLOAD_URL takes a mirror or a local copy)"
    }
    $Actual = (Get-FileHash -Algorithm SHA256 -Path $Zip).Hash.ToLowerInvariant()
    if ($Actual -ne $Expected) {
        Fail "checksum mismatch for ${Archive}: expected $Expected, got $Actual; nothing was installed (a damaged or altered download: try again, or check TFSHIM_DOWNLOAD_URL)"
    }
    Expand-Archive -Path $Zip -DestinationPath $Tmp
    $Exe = Join-Path $Tmp "tfshim-$Target\tfshim.exe"
    if (-not (Test-Path $Exe)) { Fail "$Archive does not hold tfshim-$Target\tfshim.exe; nothing was installed" }

    New-Item -ItemType Directory -Force -Path $Dest | Out-Null
    $Final = Join-Path $Dest 'tfshim.exe'
    # The tfshim being replaced: a -Link made from it is a hard link, which keeps the old bytes.
    $OldHash = if (Test-Path -LiteralPath $Final) { (Get-FileHash -Algorithm SHA256 -LiteralPath $Final).Hash } else { '' }
    # Copy next to the destination, then rename over it.
    $New = Join-Path $Dest '.tfshim.new.exe'
    Copy-Item -Force $Exe $New
    Move-Item -Force $New $Final
    $NewHash = (Get-FileHash -Algorithm SHA256 -LiteralPath $Final).Hash
    Write-Host "tfshim installer: installed tfshim $Version as $Final"
} finally {
    Remove-Item -Recurse -Force $Tmp -ErrorAction SilentlyContinue
}

if ($Link) {
    New-Item -ItemType Directory -Force -Path $Link | Out-Null
    $LinkDir = (Resolve-Path -LiteralPath $Link).Path
    $LinkPath = Join-Path $LinkDir 'terraform.exe'
    if (Test-Path -LiteralPath $LinkPath) {
        # Only tfshim is ever removed (issue #20, item 9): a terraform.exe that is this install's
        # tfshim (a hard link to it, before or after this upgrade) is replaced; a symbolic link to
        # another tfshim.exe with -Force; anything else — most likely the real terraform — is left as
        # it is, -Force or not, and another directory is suggested.
        $Item = Get-Item -LiteralPath $LinkPath -Force
        $Target = if ($Item.LinkType -eq 'SymbolicLink') { @($Item.Target)[0] } else { '' }
        $Hash = if ($Item.PSIsContainer) { '' } else { (Get-FileHash -Algorithm SHA256 -LiteralPath $LinkPath -ErrorAction SilentlyContinue).Hash }
        $Ours = $Hash -and ($Hash -eq $NewHash -or $Hash -eq $OldHash)
        if (-not $Ours) {
            if ($Target -and (Split-Path -Leaf $Target) -eq 'tfshim.exe') {
                if (-not $Force) { Fail "$LinkPath is a link to another tfshim ($Target); -Force points it at $Final" }
            } else {
                $Other = Join-Path $env:LOCALAPPDATA 'tfshim\terraform-bin'
                if ($Other -eq $LinkDir) { $Other = Join-Path $env:USERPROFILE 'tfshim-bin' }
                Fail "$LinkPath is not tfshim (perhaps the real terraform); it is left as it is, and tfshim ($Final) was not linked there (-Force replaces only a link to tfshim). Link from another directory: rerun with -Link `"$Other`" and put that first on PATH (tfshim runs the terraform it finds further down PATH)"
            }
        }
        Remove-Item -Force -LiteralPath $LinkPath
    }
    # A hard link (no administrator rights needed, unlike a symbolic link); tfshim recognises itself
    # under the name terraform.exe and runs the real terraform found further down PATH.
    New-Item -ItemType HardLink -Path $LinkPath -Target $Final | Out-Null
    Write-Host "tfshim installer: linked $LinkPath -> $Final"
    # The PATH note only when it is needed: the link directory must come before the real terraform.
    $First = Get-Command terraform.exe -CommandType Application -ErrorAction SilentlyContinue | Select-Object -First 1
    if (-not $First -or $First.Source -ne $LinkPath) {
        Write-Host "tfshim installer: put $LinkDir first on PATH, e.g.  `$env:Path = `"$LinkDir;`$env:Path`""
    }
}

if ($env:TFSHIM_NO_MODIFY_PATH -ne '1') {
    $UserPath = [Environment]::GetEnvironmentVariable('Path', 'User')
    if (-not (($UserPath -split ';') -contains $Dest)) {
        [Environment]::SetEnvironmentVariable('Path', "$Dest;$UserPath", 'User')
        Write-Host "tfshim installer: added $Dest to your user PATH (new terminals see it)"
    }
}
