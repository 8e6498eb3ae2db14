// Loaded before every test file (bunfig.toml). Keeps the developer's shell from leaking
// Claude/Anthropic settings into worker processes the tests start.
for (const key of Object.keys(process.env)) {
  if (key.startsWith('ANTHROPIC_') || key.startsWith('CLAUDE_CODE_') || key.startsWith('CCBROKER_'))
    if (key !== 'CCBROKER_TEST_DATABASE_URL') delete process.env[key]
}
