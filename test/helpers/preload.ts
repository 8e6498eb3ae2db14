// Loaded before every test file (bunfig.toml). Keeps the developer's shell from leaking
// Claude/Anthropic settings into worker processes the tests start.
for (const key of Object.keys(process.env)) {
  if (key.startsWith('ANTHROPIC_') || key.startsWith('CLAUDE_CODE_') || key.startsWith('CCBROKER_'))
    if (!key.startsWith('CCBROKER_TEST_')) delete process.env[key]
}
