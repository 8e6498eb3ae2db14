#!/usr/bin/env bash
# Installs the two Claude Code CLI versions the e2e tests run into .cache/claude/<version>/
# (ignored by git). Idempotent: a version whose binary already answers --version is skipped.
#
#   CLAUDE_CCR_VERSION    (default 2.1.120) newest CLI that accepts a loopback --sdk-url (CCR v2)
#   CLAUDE_STDIO_VERSION  (default 2.1.332) current release, used for the stdio transport
#
# Install scripts: the npm package's bin/claude.exe is a placeholder until its postinstall
# (`node install.cjs`) hard-links the native binary from the platform package
# (@anthropic-ai/claude-code-linux-x64, an optional dependency) over it. npm 11.19 only *warns*
# about unreviewed install scripts ("not yet covered by allowScripts") and still runs them, so a
# plain install works. Under `strict-allow-scripts=true` or `ignore-scripts=true` the postinstall
# is skipped; `--allow-scripts` is rejected for project-scoped installs, so instead we run the
# package's own install.cjs by hand when the binary doesn't answer --version after the install.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cache="$root/.cache/claude"
versions=("${CLAUDE_CCR_VERSION:-2.1.120}" "${CLAUDE_STDIO_VERSION:-2.1.332}")

runs() {
  local bin="$1/node_modules/.bin/claude"
  [[ -x "$bin" ]] && "$bin" --version >/dev/null 2>&1
}

for version in "${versions[@]}"; do
  dir="$cache/$version"
  bin="$dir/node_modules/.bin/claude"
  if runs "$dir"; then
    echo "claude $version: already installed ($("$bin" --version)) at $bin"
    continue
  fi

  echo "claude $version: installing @anthropic-ai/claude-code@$version into $dir (~400 MB)"
  mkdir -p "$dir"
  # The EBADENGINE warning (2.1.332 asks for node >= 22) doesn't matter: the CLI is a native binary.
  npm install --prefix "$dir" --no-audit --no-fund --no-save "@anthropic-ai/claude-code@$version"

  if ! runs "$dir"; then
    echo "claude $version: binary doesn't run; running the package's postinstall (install.cjs)"
    (cd "$dir/node_modules/@anthropic-ai/claude-code" && node install.cjs)
  fi

  if ! runs "$dir"; then
    echo "claude $version: $bin still fails --version; giving up" >&2
    "$bin" --version || true
    exit 1
  fi
  echo "claude $version: installed ($("$bin" --version)) at $bin"
done
